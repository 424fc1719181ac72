//! Row order never reaches an output: every stage of the example studies, given each of its
//! input tables with the rows shuffled, writes byte-identical outputs. Stages run through the
//! worker seam (`Invocation`), with the shuffled tables in place of the cached inputs; a `sweep`
//! is left out, as it cannot go through that seam (the stages it re-runs are all covered).

use std::collections::BTreeMap;
use std::path::PathBuf;

use arrow_array::{RecordBatch, UInt32Array};
use pipeline::engine::cache::Cache;
use pipeline::engine::invocation::InputLocation;
use pipeline::engine::key::Digest;
use pipeline::engine::plan::{self, PlanOptions};
use pipeline::engine::progress::QuietReporter;
use pipeline::engine::scheduler::{self, RunOptions};
use pipeline::engine::spec;
use pipeline::methods::rng::SplitMix64;
use pipeline::stages::BUILTIN;

/// `table` with its rows in the order `order` gives.
fn reorder(table: &RecordBatch, order: &[u32]) -> RecordBatch {
    let indices = UInt32Array::from(order.to_vec());
    let columns = table
        .columns()
        .iter()
        .map(|c| arrow_select::take::take(c.as_ref(), &indices, None).unwrap())
        .collect();
    RecordBatch::try_new(table.schema(), columns).unwrap()
}

/// Two orders unlike the stored one: reversed, and a seeded shuffle.
fn orders(rows: usize) -> Vec<Vec<u32>> {
    let n = u32::try_from(rows).unwrap();
    let mut shuffled: Vec<u32> = (0..n).collect();
    SplitMix64::new(20_250_324).shuffle(&mut shuffled);
    vec![(0..n).rev().collect(), shuffled]
}

/// The stages whose outputs change when one input's rows are shuffled: `stage (port)`.
fn order_dependent_stages(study: &str) -> Vec<String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let spec = spec::load(&root.join(format!("pipelines/{study}.yaml"))).unwrap();
    let plan = plan::build(spec, BUILTIN, PlanOptions::default()).unwrap();
    let cache = Cache::open(&tmp.path().join("cache")).unwrap();
    let report = scheduler::run(&plan, &cache, &QuietReporter, &RunOptions::default()).unwrap();
    let manifests: BTreeMap<usize, _> = plan
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| (i, report.get(&s.name).unwrap().manifest.clone().unwrap()))
        .collect();
    let mut dependent = Vec::new();
    for (i, stage) in plan.stages.iter().enumerate() {
        // A sweep re-runs other stages in memory and cannot go through the worker seam; the
        // stages it re-runs are each covered here, and the sweep's own determinism (threads,
        // replayed draws) is tested with the sweep.
        if stage.inputs.is_empty() || stage.kind == "sweep" {
            continue;
        }
        let upstream = stage
            .deps
            .iter()
            .map(|d| (*d, manifests[d].clone()))
            .collect();
        let original = scheduler::invocation(&plan, &cache, i, &upstream);
        for (port, location) in &original.inputs {
            let table = pipeline::io::parquet::read(&location.path).unwrap();
            for (n, order) in orders(table.num_rows()).into_iter().enumerate() {
                let bytes = pipeline::io::parquet::to_bytes(&reorder(&table, &order)).unwrap();
                let path = tmp
                    .path()
                    .join(format!("{}-{port}-{n}.parquet", stage.name));
                std::fs::write(&path, &bytes).unwrap();
                let mut shuffled = original.clone();
                shuffled.inputs.insert(
                    port.clone(),
                    InputLocation {
                        digest: Digest::of(&bytes),
                        path,
                    },
                );
                let done = shuffled.execute(BUILTIN).unwrap_or_else(|e| {
                    panic!(
                        "{study}: `{}` fails on shuffled `{port}`: {}",
                        stage.name, e.message
                    )
                });
                let shuffled_hex = Digest::of(&bytes).to_hex();
                let same = done.outputs.iter().all(|(name, out)| {
                    let stored = manifests[&i].output(name).unwrap().digest;
                    let bytes = pipeline::io::parquet::to_bytes(out).unwrap();
                    if stored == Digest::of(&bytes) {
                        return true;
                    }
                    // A report lists the digest of each input's bytes (its provenance), which
                    // the shuffle changes by design; nothing else may differ.
                    let text = String::from_utf8(pipeline::io::export::to_csv(out)).unwrap();
                    let stored = pipeline::io::parquet::read(&cache.blob_path(&stored)).unwrap();
                    let stored = String::from_utf8(pipeline::io::export::to_csv(&stored)).unwrap();
                    stage.kind == "report"
                        && text.replace(&shuffled_hex, &location.digest.to_hex()) == stored
                });
                if !same {
                    dependent.push(format!("{} ({port})", stage.name));
                    break;
                }
            }
        }
    }
    dependent
}

#[test]
fn shuffled_input_rows_give_identical_outputs_in_henan() {
    let dependent = order_dependent_stages("henan_counties");
    assert!(
        dependent.is_empty(),
        "row order changes the outputs of {dependent:?}"
    );
}

#[test]
fn shuffled_input_rows_give_identical_outputs_in_yellow_river() {
    let dependent = order_dependent_stages("yellow_river_cities");
    assert!(
        dependent.is_empty(),
        "row order changes the outputs of {dependent:?}"
    );
}
