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
