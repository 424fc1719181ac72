//! Values a stage derives from inputs that stay the same while the stage runs many times in one
//! process (the draws of a sweep): computed by the first run that needs one, then shared by the
//! others. It owns only the bookkeeping; what is worth keeping is the stage's choice, through
//! [`StageContext::reuse`](crate::engine::stage::StageContext::reuse) and
//! [`StageContext::reuse_over`](crate::engine::stage::StageContext::reuse_over). It also
//! records which of the stage's outputs those runs are read for
//! ([`StageContext::output_read`](crate::engine::stage::StageContext::output_read)).

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use arrow_array::ArrayRef;

use crate::engine::stage::StageError;

/// A computed value, type-erased so one store serves any stage.
type Shared = Arc<dyn Any + Send + Sync>;

/// One value's slot: locked while the first run computes it, so the others wait for it rather
/// than computing it again.
type Slot = Arc<Mutex<Option<Shared>>>;

/// A value derived from some columns, kept with those columns so that a later run can tell
/// whether its own columns hold the same values.
type ColumnSlot = Arc<Mutex<Option<(Vec<ArrayRef>, Shared)>>>;

/// The values kept for one stage across its runs, which of its input ports stay the same, and
/// which of its outputs are read.
#[derive(Default)]
pub struct ReuseStore {
    /// Ports whose table is the same in every run that shares this store.
    fixed_ports: BTreeSet<String>,
    /// The outputs something reads after these runs; `None` when all of them may be.
    read_outputs: Option<BTreeSet<String>>,
    /// (value name, its parameters as canonical JSON) → slot.
    slots: Mutex<BTreeMap<(String, String), Slot>>,
    /// (value name, its parameters as canonical JSON) → the last value derived from columns.
    column_slots: Mutex<BTreeMap<(String, String), ColumnSlot>>,
}

impl ReuseStore {
    /// A store for runs in which the tables of `fixed_ports` never change.
    pub fn new(fixed_ports: impl IntoIterator<Item = String>) -> Self {
        Self {
            fixed_ports: fixed_ports.into_iter().collect(),
            ..Self::default()
        }
    }

    /// Declares that only `outputs` of these runs are read: a stage may leave the others empty.
    #[must_use]
    pub fn reading_only(mut self, outputs: impl IntoIterator<Item = String>) -> Self {
        self.read_outputs = Some(outputs.into_iter().collect());
        self
    }

    /// Whether output `name` of these runs is read by anything.
    pub fn reads(&self, name: &str) -> bool {
        self.read_outputs.as_ref().is_none_or(|o| o.contains(name))
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

    /// The value `name` for `params` derived from `columns`: the kept one when it was derived
    /// from columns holding the same values (the same arrays, as an upstream stage that shares
    /// its key columns between runs passes them, or equal ones), otherwise computed by
    /// `compute` and kept in place of the last. A failure is not kept.
    pub fn get_or_compute_over<T: Send + Sync + 'static>(
        &self,
        name: &str,
        params: String,
        columns: &[ArrayRef],
        compute: impl FnOnce() -> Result<T, StageError>,
    ) -> Result<Arc<T>, StageError> {
        let slot = Arc::clone(
            self.column_slots
                .lock()
                .expect("reuse store lock is never poisoned")
                .entry((name.to_owned(), params))
                .or_default(),
        );
        let mut kept = slot.lock().expect("reuse slot lock is never poisoned");
        if let Some((from, shared)) = kept.as_ref()
            && same_values(from, columns)
        {
            return Arc::clone(shared).downcast::<T>().map_err(|_| {
                StageError::internal(format!("reused value `{name}` was kept with another type"))
            });
        }
        let computed = Arc::new(compute()?);
        *kept = Some((columns.to_vec(), Arc::clone(&computed) as Shared));
        Ok(computed)
    }
}

/// Whether two lists of columns hold the same values: the same arrays (a pointer comparison)
/// or, failing that, equal contents.
fn same_values(kept: &[ArrayRef], now: &[ArrayRef]) -> bool {
    kept.len() == now.len()
        && kept
            .iter()
            .zip(now)
            .all(|(a, b)| Arc::ptr_eq(a, b) || a.as_ref() == b.as_ref())
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
    fn a_value_over_columns_is_kept_while_the_columns_hold_the_same_values() {
        use arrow_array::StringArray;
        let store = ReuseStore::default();
        let ids: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        let equal: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        let other: ArrayRef = Arc::new(StringArray::from(vec!["a", "c"]));
        let mut computed = 0;
        let mut run = |columns: &ArrayRef| {
            *store
                .get_or_compute_over("rows", String::new(), &[Arc::clone(columns)], || {
                    computed += 1;
                    Ok(computed)
                })
                .unwrap()
        };
        assert_eq!(run(&ids), 1);
        assert_eq!(run(&ids), 1, "the same array");
        assert_eq!(run(&equal), 1, "another array with the same values");
        assert_eq!(run(&other), 2, "other values compute it again");
        assert_eq!(run(&ids), 3, "only the last value is kept");
    }

    #[test]
    fn all_outputs_are_read_unless_declared() {
        let store = ReuseStore::default();
        assert!(store.reads("anything"));
        let store = ReuseStore::default().reading_only(["a".to_owned()]);
        assert!(store.reads("a"));
        assert!(!store.reads("b"));
    }

    #[test]
    fn only_fixed_ports_are_covered() {
        let store = ReuseStore::new(["a".to_owned()]);
        assert!(store.covers(&["a"]));
        assert!(!store.covers(&["a", "b"]));
        assert!(store.covers(&[]));
    }
}
