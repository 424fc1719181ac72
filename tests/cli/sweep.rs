//! `sweep`: each draw replays exactly as an ordinary study with the sampled values written into
//! it, on both example studies; results do not depend on the thread count; bad `vary` and
//! `collect` entries are plan-time errors pointing at the YAML field.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::common::Study;

/// A study in a temp dir that reads the example data through a link (`--allow-outside`).
fn with_example_data() -> Study {
    let study = Study::new();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/data");
    std::os::unix::fs::symlink(data, study.path("data")).unwrap();
    study
}

/// The example study's stages up to zones, inequality and compensation (no report, no
/// published files), as a JSON value (JSON is YAML, so it is written back as it is).
fn example_core(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("pipelines/{name}.yaml"));
    let mut study: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    study.as_object_mut().unwrap().remove("outputs");
    let stages = study["stages"].as_object_mut().unwrap();
    for drop in [
        "report",
        "autocorrelation",
        "functional_areas",
        "robustness",
        "clusters_auto",
    ] {
        stages.remove(drop);
    }
    for stage in stages.values_mut() {
        stage.as_object_mut().unwrap().remove("publish");
    }
    study
}

fn sweep(draws: u32) -> Value {
    json!({
        "kind": "sweep",
        "draws": draws,
        "seed": 11,
        "vary": {
            "sink.coefficients.override.forest": { "uniform": [-0.644, -0.581] },
            "emission.coefficients.override.cultivated": { "triangular": [0.422, 0.422, 0.497] },
            "emission.energy_factors.override.raw_coal.f_t_c_per_tce": { "normal": [0.7559, 0.02] },
            "emission.coefficients.preset": { "choice": ["mixed", "set1", "set2"] },
        },
        "collect": {
            "zone": "zones.zone",
            "nce": "indices.nce_t_c",
            "centralization": "inequality.centralization",
            "role": "compensation.role",
        }
    })
}

fn write(study: &Study, value: &Value) {
    study.file("study.yaml", &serde_json::to_string_pretty(value).unwrap());
}

/// `pipeline show … --format csv` as rows of cells.
fn show(study: &Study, target: &str) -> Vec<Vec<String>> {
    let run = study.run(&[
        "show",
        "--allow-outside",
        "study.yaml",
        target,
        "--format",
        "csv",
        "--limit",
        "1000000",
    ]);
    assert_eq!(run.code, 0, "show {target}: {}", run.stderr);
    run.stdout
        .lines()
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

/// Rows of `table` projected on `columns`, header dropped.
fn project(table: &[Vec<String>], columns: &[&str]) -> Vec<Vec<String>> {
    let idx: Vec<usize> = columns
        .iter()
        .map(|c| table[0].iter().position(|h| h == c).unwrap())
        .collect();
    table[1..]
        .iter()
        .map(|r| idx.iter().map(|&i| r[i].clone()).collect())
        .collect()
}

fn replay_matches_draws(example: &str) {
    let study = with_example_data();
    let mut value = example_core(example);
    value["stages"]["robustness"] = sweep(8);
    write(&study, &value);
    let (run, first) = study.run_study(&["--allow-outside"]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    // The same draws on one thread give the same bytes.
    let one_thread = with_example_data();
    write(&one_thread, &value);
    let (run, single) = one_thread.run_study(&["--allow-outside", "--jobs", "1"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let sweep_digests = |s: &crate::common::Summary| -> BTreeMap<String, String> {
        s.digests
            .iter()
            .filter(|(k, _)| k.starts_with("robustness."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    assert_eq!(sweep_digests(&first), sweep_digests(&single));
    assert!(!sweep_digests(&first).is_empty());

    let draws = show(&study, "robustness.draws");
    let collected = [
        ("zone", "zones", vec!["unit_id"], "zone"),
        ("nce", "indices", vec!["unit_id", "year"], "nce_t_c"),
        (
            "centralization",
            "inequality",
            vec!["year"],
            "centralization",
        ),
        (
            "role",
            "compensation",
            vec!["unit_id", "year", "convention"],
            "role",
        ),
    ];
    let per_draw: Vec<Vec<Vec<String>>> = collected
        .iter()
        .map(|(name, ..)| show(&study, &format!("robustness.{name}")))
        .collect();
    for d in ["0", "3", "7"] {
        let mut replay = value.clone();
        replay["stages"]
            .as_object_mut()
            .unwrap()
            .remove("robustness");
        for row in project(&draws, &["draw", "parameter", "value"]) {
            if row[0] != d {
                continue;
            }
            // `str::parse` rounds correctly; serde_json's default float parser may not.
            let sampled = row[2]
                .parse::<f64>()
                .map_or_else(|_| Value::String(row[2].clone()), |x| json!(x));
            let (stage, path) = row[1].split_once('.').unwrap();
            let mut here = &mut replay["stages"][stage];
            for segment in path.split('.') {
                here = &mut here[segment];
            }
            *here = sampled;
        }
        write(&study, &replay);
        let (run, _) = study.run_study(&["--allow-outside"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        for ((name, stage, keys, column), table) in collected.iter().zip(&per_draw) {
            let mut header: Vec<&str> = vec!["draw"];
            header.extend(keys);
            header.push("value");
            let from_sweep: Vec<Vec<String>> = project(table, &header)
                .into_iter()
                .filter(|r| r[0] == d)
                .map(|r| r[1..].to_vec())
                .collect();
            let mut wanted: Vec<&str> = keys.clone();
            wanted.push(column);
            let replayed = project(&show(&study, stage), &wanted);
            assert!(
                !from_sweep.is_empty(),
                "{example}: no rows for draw {d} of {name}"
            );
            let differing: Vec<_> = from_sweep
                .iter()
                .zip(&replayed)
                .filter(|(a, b)| a != b)
                .take(3)
                .collect();
            assert!(
                from_sweep.len() == replayed.len() && differing.is_empty(),
                "{example}: draw {d} of `{name}` differs from the replayed study: {differing:?}"
            );
        }
    }
}

#[test]
fn sweep_draws_replay_exactly_on_the_henan_example() {
    replay_matches_draws("henan_counties");
}

#[test]
fn sweep_draws_replay_exactly_on_the_yellow_river_example() {
    replay_matches_draws("yellow_river_cities");
}

/// `pipeline check` on the Henan core with one sweep entry replaced; returns (code, stderr).
fn check_with(vary: Value, collect: Value) -> (i32, String) {
    let study = with_example_data();
    let mut value = example_core("henan_counties");
    let mut s = sweep(10);
    s["vary"] = vary;
    s["collect"] = collect;
    value["stages"]["robustness"] = s;
    write(&study, &value);
    let run = study.run(&["check", "--allow-outside", "study.yaml"]);
    (run.code, run.stderr)
}

#[test]
fn sweep_rejects_a_path_that_names_no_parameter() {
    let (code, stderr) = check_with(
        json!({ "sink.coefficients.overide.forest": { "uniform": [-0.7, -0.6] } }),
        json!({ "zone": "zones.zone" }),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("vary `sink.coefficients.overide.forest`"),
        "{stderr}"
    );
    assert!(stderr.contains("overide"), "{stderr}");
    assert!(
        stderr.contains('^'),
        "a caret points at the field: {stderr}"
    );
}

#[test]
fn sweep_rejects_a_distribution_the_parameter_cannot_take() {
    let (code, stderr) = check_with(
        json!({ "sink.cultivated_sink": { "uniform": [0.0, 1.0] } }),
        json!({ "zone": "zones.zone" }),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("does not take"), "{stderr}");
    assert!(stderr.contains('^'), "{stderr}");
}

#[test]
fn sweep_rejects_a_collect_not_downstream_of_a_vary() {
    let (code, stderr) = check_with(
        json!({ "sink.coefficients.override.forest": { "uniform": [-0.7, -0.6] } }),
        json!({ "zone": "zones.zone", "areas": "landuse.area_ha" }),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no varied parameter reaches"), "{stderr}");
    assert!(stderr.contains("landuse.area_ha"), "{stderr}");
}

/// A study of nine units on a 3×3 rook grid (`data/units.csv` with one variable `x`, low
/// values bottom left and high ones top right; `data/edges.csv`) and the given `study.yaml`.
pub fn grid_study(study_yaml: &str) -> Study {
    let s = Study::new();
    s.file(
        "data/units.csv",
        "unit_id,x\ng0,0\ng1,1\ng2,2\ng3,1\ng4,2\ng5,8\ng6,9\ng7,8\ng8,9\n",
    );
    s.file(
        "data/edges.csv",
        "from,to\ng0,g1\ng1,g2\ng3,g4\ng4,g5\ng6,g7\ng7,g8\ng0,g3\ng3,g6\ng1,g4\ng4,g7\ng2,g5\ng5,g8\n",
    );
    s.file("study.yaml", study_yaml);
    s
}

/// A small study whose sweep spans two chunks of draws (250 and 10): nine units clustered
/// with a sampled k, the labels collected and published.
pub fn chunked_sweep_study() -> Study {
    grid_study(
        "study: sweep-chunks\noutputs: out\nstages:\n  units:\n    kind: ingest\n    path: data/units.csv\n    id_column: unit_id\n  edges:\n    kind: ingest\n    path: data/edges.csv\n  zones:\n    kind: cluster\n    inputs: { table: units, edges: edges }\n    variables: [x]\n    standardize: none\n    k: 3\n  robustness:\n    kind: sweep\n    draws: 260\n    seed: 5\n    vary:\n      zones.k: { choice: [2, 3, 4] }\n    collect:\n      zone: zones.labels.cluster\n    publish: [parquet]\n",
    )
}

/// The draws of a sweep evaluated chunk by chunk through the worker seam (each worker plans
/// the study again and keeps its chunk as memos), then merged by the sweep's run, give the
/// bytes one evaluation of all draws gives.
#[test]
fn sweep_chunks_run_by_workers_merge_to_the_bytes_of_one_evaluation() {
    use pipeline::engine::cache::Cache;
    use pipeline::engine::invocation::MemoAccess;
    use pipeline::engine::plan::{self, PlanOptions};
    use pipeline::engine::progress::QuietReporter;
    use pipeline::engine::scheduler::{self, RunOptions};
    use pipeline::engine::stage::MemoScope;
    use pipeline::stages::BUILTIN;

    let s = chunked_sweep_study();
    let study = std::path::absolute(s.path("study.yaml")).unwrap();
    let spec = pipeline::engine::spec::load(&study).unwrap();
    let plan = plan::build(spec, BUILTIN, PlanOptions::default()).unwrap();
    let cache_dir = s.path("cache");
    let cache = Cache::open(&cache_dir).unwrap();
    let options = RunOptions::default();
    let report = scheduler::run(&plan, &cache, &QuietReporter, &options).unwrap();
    let manifest = |report: &scheduler::RunReport, name: &str| {
        report.get(name).unwrap().manifest.clone().unwrap()
    };
    let whole = manifest(&report, "robustness");
    assert!(whole.memos.is_empty(), "a local run keeps no chunk");

    let i = plan.index_of("robustness").unwrap();
    let shards = plan.stages[i].prepared.shards();
    let names: Vec<&str> = shards.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["draws0-249", "draws250-259"]);
    let upstream: BTreeMap<usize, _> = plan.stages[i]
        .deps
        .iter()
        .map(|&d| (d, manifest(&report, &plan.stages[d].name)))
        .collect();
    for shard in &shards {
        let mut invocation = scheduler::invocation(&plan, &cache, i, &upstream);
        invocation.shard = Some(shard.name.clone());
        invocation.study = Some(study.clone());
        invocation.memo = Some(MemoAccess {
            cache_dir: cache_dir.clone(),
            scope: MemoScope {
                kind: whole.components.kind.clone(),
                version: whole.components.version,
                inputs: whole.components.inputs.clone(),
            },
        });
        // Through JSON, as a worker on another machine reads it.
        let text = serde_json::to_string(&invocation).unwrap();
        let invocation: pipeline::engine::invocation::Invocation =
            serde_json::from_str(&text).unwrap();
        let done = invocation
            .execute(BUILTIN)
            .unwrap_or_else(|e| panic!("{}: {}", shard.name, e.message));
        assert!(done.outputs.is_empty(), "a shard only keeps memos");
        assert_eq!(
            done.memos.len(),
            2,
            "the values of `zone`, and the warnings"
        );
    }

    // A study edited while its chunks wait for a node is refused, not half-used.
    let mut stale = scheduler::invocation(&plan, &cache, i, &upstream);
    stale.shard = Some("draws0-249".to_owned());
    stale.study = Some(study.clone());
    let written = std::fs::read_to_string(&study).unwrap();
    s.file("study.yaml", &written.replace("seed: 5", "seed: 6"));
    let Err(e) = stale.execute(BUILTIN) else {
        panic!("a chunk of the edited study ran");
    };
    assert!(
        e.message.contains("not the one the run planned"),
        "{}",
        e.message
    );
    assert!(e.hint.unwrap().contains("run it again"));
    s.file("study.yaml", &written);

    cache.drop_entry(&whole.key);
    let again = scheduler::run(&plan, &cache, &QuietReporter, &options).unwrap();
    let merged = manifest(&again, "robustness");
    assert_eq!(merged.memos.len(), 4, "the merge took both chunks as kept");
    let digests = |m: &pipeline::engine::cache::Manifest| {
        m.outputs
            .iter()
            .map(|o| (o.name.clone(), o.digest))
            .collect::<Vec<_>>()
    };
    assert_eq!(digests(&merged), digests(&whole));
}
