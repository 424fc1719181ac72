//! Values a stage derives from inputs that stay the same while the stage runs many times in one
//! process (the draws of a sweep): computed by the first run that needs one, then shared by the
//! others. It owns only the bookkeeping; what is worth keeping is the stage's choice, through
//! [`StageContext::reuse`](crate::engine::stage::StageContext::reuse).

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use crate::engine::stage::StageError;

/// A computed value, type-erased so one store serves any stage.
type Shared = Arc<dyn Any + Send + Sync>;

/// One value's slot: locked while the first run computes it, so the others wait for it rather
/// than computing it again.
type Slot = Arc<Mutex<Option<Shared>>>;

/// The values kept for one stage across its runs, and which of its input ports stay the same.
#[derive(Default)]
pub struct ReuseStore {
    /// Ports whose table is the same in every run that shares this store.
    fixed_ports: BTreeSet<String>,
    /// (value name, its parameters as canonical JSON) → slot.
    slots: Mutex<BTreeMap<(String, String), Slot>>,
}

impl ReuseStore {
    /// A store for runs in which the tables of `fixed_ports` never change.
    pub fn new(fixed_ports: impl IntoIterator<Item = String>) -> Self {
        Self {
            fixed_ports: fixed_ports.into_iter().collect(),
            slots: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whether a value read from `ports` may be shared: all of them stay the same.
    pub fn covers(&self, ports: &[&str]) -> bool {
        ports.iter().all(|p| self.fixed_ports.contains(*p))
    }

    /// The value `name` for `params`, computed by `compute` if no run has computed it yet. A
    /// failure is not kept: the next run computes (and reports) it again.
    pub fn get_or_compute<T: Send + Sync + 'static>(
        &self,
        name: &str,
        params: String,
        compute: impl FnOnce() -> Result<T, StageError>,
    ) -> Result<Arc<T>, StageError> {
        let slot = Arc::clone(
            self.slots
                .lock()
                .expect("reuse store lock is never poisoned")
                .entry((name.to_owned(), params))
                .or_default(),
        );
        let mut value = slot.lock().expect("reuse slot lock is never poisoned");
        if let Some(shared) = value.as_ref() {
            return Arc::clone(shared).downcast::<T>().map_err(|_| {
                StageError::internal(format!("reused value `{name}` was kept with another type"))
            });
        }
        let computed = Arc::new(compute()?);
        *value = Some(Arc::clone(&computed) as Shared);
        Ok(computed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_computed_once_per_name_and_parameters() {
        let store = ReuseStore::new(["table".to_owned()]);
        let mut computed = 0;
        for _ in 0..3 {
            let v = store
                .get_or_compute("sum", "{\"k\":1}".to_owned(), || {
                    computed += 1;
                    Ok(41 + 1)
                })
                .unwrap();
            assert_eq!(*v, 42);
        }
        assert_eq!(computed, 1);
        store
            .get_or_compute("sum", "{\"k\":2}".to_owned(), || {
                computed += 1;
                Ok(7)
            })
            .unwrap();
        assert_eq!(computed, 2, "other parameters compute their own value");
    }

    #[test]
    fn a_failure_is_not_kept() {
        let store = ReuseStore::default();
        let err = store
            .get_or_compute::<u8>("x", String::new(), || Err(StageError::data("bad row")))
            .unwrap_err();
        assert_eq!(err.message, "bad row");
        let v = store
            .get_or_compute("x", String::new(), || Ok(3u8))
            .unwrap();
        assert_eq!(*v, 3);
    }

    #[test]
    fn only_fixed_ports_are_covered() {
        let store = ReuseStore::new(["a".to_owned()]);
        assert!(store.covers(&["a"]));
        assert!(!store.covers(&["a", "b"]));
        assert!(store.covers(&[]));
    }
}
