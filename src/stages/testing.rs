//! The one harness for the stage kinds' unit tests: runs a kind on in-memory tables as the
//! engine would (parameters deserialised and validated, sources resolved against a folder,
//! patterns expanded) and checks that the tables it wrote are the ones it declared.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;

use crate::engine::stage::{
    Entry, Inputs, OutputDecl, Outputs, Stage, StageContext, StageEntry, StageError,
};
use crate::table::column_names;

pub(crate) mod study;

/// A stage's outputs and the messages of the warnings it recorded.
pub(crate) type Ran = (Outputs, Vec<String>);

/// Runs kind `S` with `params` on `tables` (port → table); source files resolve against the
/// current directory.
pub(crate) fn run<S: Stage>(
    params: serde_json::Value,
    tables: Vec<(&str, RecordBatch)>,
) -> Result<Ran, StageError> {
    run_in::<S>(Path::new("."), params, tables)
}

/// As [`run`], with source files resolved against `dir` (the study's directory).
pub(crate) fn run_in<S: Stage>(
    dir: &Path,
    params: serde_json::Value,
    tables: Vec<(&str, RecordBatch)>,
) -> Result<Ran, StageError> {
    run_entry(&Entry::<S>::new(), dir, params, tables)
}

/// As [`run`], sharing reused values ([`StageContext::reuse`]) with the other runs given
/// `store`, as the draws of a sweep do.
pub(crate) fn run_sharing<S: Stage>(
    store: &std::sync::Arc<crate::engine::reuse::ReuseStore>,
    params: serde_json::Value,
    tables: Vec<(&str, RecordBatch)>,
) -> Result<Ran, StageError> {
    run_with(
        &Entry::<S>::new(),
        Path::new("."),
        params,
        tables,
        Some(store),
    )
}

/// Runs a registered kind. Panics if the outputs differ from the kind's declaration: that is
/// a bug in the kind, whatever the test is about.
pub(crate) fn run_entry(
    entry: &dyn StageEntry,
    dir: &Path,
    params: serde_json::Value,
    tables: Vec<(&str, RecordBatch)>,
) -> Result<Ran, StageError> {
    run_with(entry, dir, params, tables, None)
}

fn run_with(
    entry: &dyn StageEntry,
    dir: &Path,
    params: serde_json::Value,
    tables: Vec<(&str, RecordBatch)>,
    store: Option<&std::sync::Arc<crate::engine::reuse::ReuseStore>>,
) -> Result<Ran, StageError> {
    let prepared = entry.prepare(params)?;
    let sources: BTreeMap<String, PathBuf> =
        crate::engine::pattern::expand(dir, prepared.sources())
            .map_err(StageError::data)?
            .into_iter()
            .map(|s| (s.name, dir.join(s.path)))
            .collect();
    let mut ctx = StageContext::new(entry.kind(), dir, sources);
    if let Some(store) = store {
        ctx = ctx.with_reuse(std::sync::Arc::clone(store));
    }
    let inputs = Inputs::new(
        tables
            .into_iter()
            .map(|(port, table)| (port.to_owned(), table))
            .collect(),
    );
    let outputs = prepared.run(&inputs, &ctx)?;
    assert_declared(entry.kind(), &prepared.outputs(), &outputs);
    Ok((outputs, ctx.take_warnings()))
}

/// Asserts that `outputs` are the declared tables, in the declared order, each with exactly
/// the declared columns in order (or, for a partial declaration, at least them).
pub(crate) fn assert_declared(kind: &str, declared: &[OutputDecl], outputs: &Outputs) {
    let names = |o: &Outputs| o.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let declared_names: Vec<String> = declared.iter().map(|d| d.name.clone()).collect();
    assert_eq!(
        names(outputs),
        declared_names,
        "kind `{kind}` wrote other tables than it declared"
    );
    for (decl, (name, table)) in declared.iter().zip(outputs) {
        let written = column_names(table);
        if decl.complete {
            assert_eq!(
                written, decl.columns,
                "kind `{kind}`, output `{name}`: written columns differ from the declared ones"
            );
        } else {
            let missing: Vec<&String> = decl
                .columns
                .iter()
                .filter(|c| !written.contains(c))
                .collect();
            assert!(
                missing.is_empty(),
                "kind `{kind}`, output `{name}`: declared columns {missing:?} were not written"
            );
        }
    }
}

/// Column `name` of `t` as floats, `None` where null. Panics if the column is missing or not
/// Float64: a test's table is the kind's own output.
pub(crate) fn nullable_f64s(t: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    use arrow_array::cast::AsArray;
    t.column_by_name(name)
        .unwrap_or_else(|| panic!("no column `{name}`"))
        .as_primitive::<arrow_array::types::Float64Type>()
        .iter()
        .collect()
}

/// A memo store in memory that counts what is stored, for tests of kinds that keep memos
/// (shards, reused histograms).
#[derive(Default)]
pub(crate) struct MemoryStore {
    tables: std::sync::Mutex<BTreeMap<crate::engine::key::Digest, RecordBatch>>,
    puts: std::sync::atomic::AtomicUsize,
}

impl MemoryStore {
    /// How many memos were stored so far.
    pub(crate) fn puts(&self) -> usize {
        self.puts.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl crate::engine::stage::MemoStore for MemoryStore {
    fn get(
        &self,
        key: &crate::engine::key::Digest,
    ) -> Option<(RecordBatch, crate::engine::key::Digest)> {
        let t = self.tables.lock().unwrap().get(key).cloned()?;
        Some((t, crate::engine::key::Digest::of(b"memo")))
    }
    fn put(
        &self,
        key: &crate::engine::key::Digest,
        table: &RecordBatch,
    ) -> Result<crate::engine::key::Digest, StageError> {
        self.puts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.tables.lock().unwrap().insert(*key, table.clone());
        Ok(crate::engine::key::Digest::of(b"memo"))
    }
}
