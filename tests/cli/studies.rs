//! The example studies under `pipelines/`: they reproduce their committed outputs byte for byte,
//! and every stage's output digest is pinned to its cache key, so a change in a stage's output
//! for the same key (same inputs, parameters and VERSION) fails here instead of serving stale
//! cache entries.
//!
//! After an intended change: bump the kind's VERSION, rerun the studies (`cargo run --release --
//! run pipelines/*.yaml`), and regenerate the pins with `UPDATE_GOLDEN=1 cargo test --test cli studies`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a study with `--check` on a private cache; returns the summary JSON.
fn check_study(name: &str) -> Value {
    let tmp = tempfile::tempdir().unwrap();
    let summary = tmp.path().join("summary.json");
    let out = Command::new(crate::common::bin())
        .current_dir(repo())
        .env("CI", "1")
        .args([
            "--cache-dir",
            tmp.path().join("cache").to_str().unwrap(),
            "run",
        ])
        .arg(format!("pipelines/{name}.yaml"))
        .args([
            "--check",
            "--quiet",
            "--summary-json",
            summary.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pipelines/{name}.yaml does not reproduce its committed outputs:\n{stderr}\nhint: rerun the study and commit pipelines/out"
    );
    serde_json::from_slice(&std::fs::read(summary).unwrap()).unwrap()
}

/// `stage → (kind, version, {output: digest})`
fn pins(summary: &Value) -> BTreeMap<String, Value> {
    summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let outputs: BTreeMap<String, String> = s["outputs"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v["digest"].as_str().unwrap().to_owned()))
                .collect();
            (
                s["name"].as_str().unwrap().to_owned(),
                // The key without the code digest: pins must survive code edits.
                serde_json::json!({"key": s["key_without_code"], "kind": s["kind"], "version": s["version"], "outputs": outputs}),
            )
        })
        .collect()
}

fn check_pins(study: &str) {
    let current = pins(&check_study(study));
    let path = repo().join(format!("tests/cli/golden/{study}.json"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&current).unwrap() + "\n",
        )
        .unwrap();
        return;
    }
    let golden: BTreeMap<String, Value> = serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|_| panic!("{} is missing", path.display())),
    )
    .unwrap();
    for (stage, now) in &current {
        let Some(then) = golden.get(stage) else {
            panic!("stage `{stage}` of {study} has no pin; regenerate with UPDATE_GOLDEN=1")
        };
        if now["outputs"] != then["outputs"] {
            // The same key (same kind, VERSION, parameters and input bytes) must give the same
            // output; a different key (an edited study or input) just needs new pins.
            assert_ne!(
                now["key"], then["key"],
                "stage `{stage}` of {study}: kind {} version {} now gives different output for the same inputs; bump the kind's VERSION (then UPDATE_GOLDEN=1)",
                now["kind"], now["version"]
            );
            panic!(
                "stage `{stage}` of {study}: its inputs, parameters or version changed; regenerate the pins with UPDATE_GOLDEN=1"
            );
        }
    }
    assert_eq!(
        current.len(),
        golden.len(),
        "stages were added or removed; regenerate with UPDATE_GOLDEN=1"
    );
}

#[test]
fn henan_reproduces_committed_outputs_and_pins() {
    check_pins("henan_counties");
}

#[test]
fn yellow_river_reproduces_committed_outputs_and_pins() {
    check_pins("yellow_river_cities");
}

#[test]
fn henan_yearbook_reproduces_committed_outputs_and_pins() {
    check_pins("henan_yearbook");
}

/// One CSV field of two studies' outputs agrees: equal text, or numbers within 1e-9 relative
/// to the larger of 1, the value and `row_scale`. A residual that is zero up to rounding (the sum
/// of a zero-sum convention's quantities) is a difference of numbers of the row's magnitude, so
/// its rounding noise is measured against that magnitude, not against its own.
fn fields_agree(a: &str, b: &str, row_scale: f64) -> bool {
    a == b
        || matches!((a.parse::<f64>(), b.parse::<f64>()), (Ok(x), Ok(y))
            if (x - y).abs() <= 1e-9 * x.abs().max(row_scale).max(1.0))
}

/// The largest magnitude among a CSV line's numeric fields.
fn row_scale(fields: &[&str]) -> f64 {
    fields
        .iter()
        .filter_map(|f| f.parse::<f64>().ok())
        .filter(|x| x.is_finite())
        .fold(0.0, |m, x| m.max(x.abs()))
}

/// The yearbook-shaped inputs, read with `ingest` parameters only, give the demonstration
/// study's results: every published table (the report's title differs, so it is left out).
/// The committed outputs are compared; `henan_yearbook_reproduces_committed_outputs_and_pins`
/// and `henan_reproduces_committed_outputs_and_pins` check that they are current.
#[test]
fn yearbook_study_equals_the_demonstration_study() {
    let out = repo().join("pipelines/out");
    let mut compared = 0;
    for entry in std::fs::read_dir(out.join("henan")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "csv") {
            continue;
        }
        let name = path.file_name().unwrap().to_owned();
        let theirs = std::fs::read_to_string(&path).unwrap();
        let ours = std::fs::read_to_string(out.join("henan_yearbook").join(&name))
            .unwrap_or_else(|e| panic!("henan_yearbook has no {name:?}: {e}"));
        let (a, b): (Vec<&str>, Vec<&str>) = (theirs.lines().collect(), ours.lines().collect());
        assert_eq!(a.len(), b.len(), "{name:?}: row counts");
        for (line, (x, y)) in a.iter().zip(&b).enumerate() {
            let (xs, ys): (Vec<&str>, Vec<&str>) = (x.split(',').collect(), y.split(',').collect());
            let scale = row_scale(&xs);
            assert!(
                xs.len() == ys.len() && xs.iter().zip(&ys).all(|(p, q)| fields_agree(p, q, scale)),
                "{name:?} line {}: {x} vs {y}",
                line + 1
            );
        }
        compared += 1;
    }
    assert!(compared >= 20, "only {compared} tables compared");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        // The national data are generated on demand (and large); no test here reads them.
        if entry.path().ends_with("data/national") {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A research group's CI: after a coefficient is edited, `--check` fails and lists the
/// published files that are now out of date, without touching them.
#[test]
fn check_fails_after_a_coefficient_edit() {
    let tmp = tempfile::tempdir().unwrap();
    let study_dir = tmp.path().join("pipelines");
    copy_dir(&repo().join("pipelines"), &study_dir);
    let yaml = study_dir.join("yellow_river_cities.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    // Both stages that use the land-use coefficients get the edit (the sink stage reads forest's).
    let edited = text.replace(
        "coefficients: { preset: mixed }",
        "coefficients: { preset: mixed, override: { forest: -0.60 } }",
    );
    assert_ne!(text, edited, "the study sets its coefficients");
    std::fs::write(&yaml, edited).unwrap();
    let before = std::fs::read(study_dir.join("out/yellow_river/indices.csv")).unwrap();
    let out = Command::new(crate::common::bin())
        .current_dir(tmp.path())
        .env("CI", "1")
        .args([
            "--cache-dir",
            tmp.path().join("cache").to_str().unwrap(),
            "run",
            "pipelines/yellow_river_cities.yaml",
            "--check",
            "--quiet",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("differs: ") && stderr.contains("indices.csv"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("landuse.csv"),
        "land use does not depend on the coefficients: {stderr}"
    );
    assert_eq!(
        std::fs::read(study_dir.join("out/yellow_river/indices.csv")).unwrap(),
        before,
        "--check writes nothing"
    );
}
