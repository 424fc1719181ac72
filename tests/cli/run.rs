//! Running studies: incremental reruns, early cutoff, determinism, publishing.

use crate::common::{Study, touch};

pub const UNITS_CSV: &str =
    "unit_id,name,pop\n410100,Zhengzhou,1260\n410200,Kaifeng,480\n410300,Luoyang,707\n";
pub const RATES_CSV: &str = "unit_id,rate\n410100,0.5\n410200,0.25\n410300,0.125\n";

/// Two ingests, three copy commands: `units → a → b` and `rates → c`.
pub fn study_yaml(units_extra: &str, a_label: &str) -> String {
    format!(
        r#"study: engine-fixture
outputs: out
stages:
  units:
    kind: ingest
    path: data/units.csv
    id_column: unit_id{units_extra}
  rates:
    kind: ingest
    path: data/rates.csv
    id_column: unit_id
  a:
    kind: command
    inputs: {{ table: units }}
    ports: [table]
    run: ["sh", "-c", "cp \"$PIPELINE_INPUT_TABLE\" \"$PIPELINE_OUTPUT_TABLE\""]
    env: {{ LABEL: "{a_label}" }}
  b:
    kind: command
    inputs: {{ table: a }}
    ports: [table]
    run: ["sh", "-c", "cp \"$PIPELINE_INPUT_TABLE\" \"$PIPELINE_OUTPUT_TABLE\""]
    publish: [parquet, csv]
  c:
    kind: command
    inputs: {{ table: rates }}
    ports: [table]
    run: ["sh", "-c", "cp \"$PIPELINE_INPUT_TABLE\" \"$PIPELINE_OUTPUT_TABLE\""]
"#
    )
}

pub fn fixture() -> Study {
    let s = Study::new();
    s.file("data/units.csv", UNITS_CSV)
        .file("data/rates.csv", RATES_CSV)
        .file("study.yaml", &study_yaml("", "one"));
    s
}

#[test]
fn first_run_computes_everything_and_second_run_hits() {
    let s = fixture();
    let (run, summary) = s.run_study(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(summary.with("ran"), ["a", "b", "c", "rates", "units"]);
    let (run, summary) = s.run_study(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(summary.with("cached"), ["a", "b", "c", "rates", "units"]);
    assert!(summary.with("ran").is_empty());
    // Published: the default output as Parquet and CSV.
    let csv = std::fs::read_to_string(s.path("out/b.csv")).unwrap();
    assert_eq!(
        csv,
        "unit_id,name,pop\n410100,Zhengzhou,1260\n410200,Kaifeng,480\n410300,Luoyang,707\n"
    );
    assert!(s.path("out/b.parquet").exists());
}

#[test]
fn changing_a_parameter_reruns_only_what_depends_on_changed_bytes() {
    let s = fixture();
    assert_eq!(s.run_study(&[]).0.code, 0);

    // A parameter of `units` that changes its output: units and everything below rerun.
    s.file(
        "study.yaml",
        &study_yaml("\n    rename: { pop: population }", "one"),
    );
    let (run, summary) = s.run_study(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(summary.with("ran"), ["a", "b", "units"]);
    assert_eq!(summary.with("cached"), ["c", "rates"]);

    // A parameter of `a` that does not change its bytes: `a` reruns, `b` is cut off early.
    s.file(
        "study.yaml",
        &study_yaml("\n    rename: { pop: population }", "two"),
    );
    let (run, summary) = s.run_study(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(summary.with("ran"), ["a"]);
    assert_eq!(summary.with("cached"), ["b", "c", "rates", "units"]);

    // Back to the first parameters: all hits, nothing lost.
    s.file("study.yaml", &study_yaml("", "one"));
    let (_, summary) = s.run_study(&[]);
    assert!(summary.with("ran").is_empty(), "{:?}", summary.status);
}

#[test]
fn touch_reruns_nothing_and_editing_content_reruns_dependants() {
    let s = fixture();
    assert_eq!(s.run_study(&[]).0.code, 0);
    for f in ["data/units.csv", "data/rates.csv", "study.yaml"] {
        touch(&s.path(f));
    }
    let (_, summary) = s.run_study(&[]);
    assert!(summary.with("ran").is_empty(), "{:?}", summary.status);

    s.file(
        "data/rates.csv",
        "unit_id,rate\n410100,0.5\n410200,0.25\n410300,0.5\n",
    );
    let (_, summary) = s.run_study(&[]);
    assert_eq!(summary.with("ran"), ["c", "rates"]);
}

#[test]
fn two_clean_runs_give_identical_digests() {
    let one = fixture();
    let two = fixture();
    let (_, a) = one.run_study(&[]);
    let (_, b) = two.run_study(&["--jobs", "1"]);
    assert_eq!(a.digests.len(), 5);
    assert_eq!(a.digests, b.digests);
    assert_eq!(
        std::fs::read(one.path("out/b.parquet")).unwrap(),
        std::fs::read(two.path("out/b.parquet")).unwrap()
    );
}

#[test]
fn dry_run_computes_nothing() {
    let s = fixture();
    let (run, summary) = s.run_study(&["--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(summary.with("would_run").len(), 5);
    let (_, summary) = s.run_study(&[]);
    assert_eq!(summary.with("ran").len(), 5);
}

#[test]
fn check_flag_reports_stale_published_outputs() {
    let s = fixture();
    assert_eq!(s.run_study(&[]).0.code, 0);
    let (run, _) = s.run_study(&["--check"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    s.file(
        "data/units.csv",
        "unit_id,name,pop\n410100,Zhengzhou,1261\n410200,Kaifeng,480\n410300,Luoyang,707\n",
    );
    let (run, _) = s.run_study(&["--check"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("differs: ") && run.stderr.contains("b.csv"),
        "{}",
        run.stderr
    );
    // --check writes nothing.
    assert!(
        std::fs::read_to_string(s.path("out/b.csv"))
            .unwrap()
            .contains(",1260")
    );
}

#[test]
fn show_prints_an_output_running_what_it_needs() {
    let s = fixture();
    let run = s.run(&["show", "study.yaml", "a", "--format", "csv"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, UNITS_CSV);
    let (_, summary) = s.run_study(&["--dry-run"]);
    assert_eq!(summary.with("cached"), ["a", "units"]);
}

#[test]
fn explain_names_the_changed_parameter() {
    let s = fixture();
    assert_eq!(s.run_study(&[]).0.code, 0);
    s.file("study.yaml", &study_yaml("", "two"));
    let run = s.run(&["explain", "study.yaml", "a"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("status: miss"), "{}", run.stdout);
    assert!(
        run.stdout.contains(r#"parameter env.LABEL: "one" → "two""#),
        "{}",
        run.stdout
    );
    let run = s.run(&["explain", "study.yaml", "c"]);
    assert!(run.stdout.contains("status: hit"), "{}", run.stdout);
}

#[test]
fn dag_and_stages_print() {
    let s = fixture();
    let run = s.run(&["dag", "study.yaml", "--format", "mermaid"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("units -->|table| a"), "{}", run.stdout);
    let run = s.run(&["stages"]);
    assert!(run.stdout.contains("ingest (version"), "{}", run.stdout);
}

#[test]
fn a_shapefile_sidecar_appearing_reruns_the_ingest() {
    let s = Study::new();
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ingest/gbk_units");
    std::fs::create_dir_all(s.path("data")).unwrap();
    for ext in ["shp", "shx", "dbf"] {
        std::fs::copy(
            fixtures.with_extension(ext),
            s.path(&format!("data/units.{ext}")),
        )
        .unwrap();
    }
    s.file(
        "study.yaml",
        "study: shp\nstages:\n  units:\n    kind: ingest\n    path: data/units.shp\n",
    );
    // Without its .cpg the GBK attribute table is read as UTF-8 and fails, with a hint.
    let (run, summary) = s.run_study(&[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(summary.with("failed"), ["units"]);
    assert!(run.stderr.contains("encoding: GBK"), "{}", run.stderr);
    // The encoding file appears: the stage's key changes and it reruns, now correctly.
    s.file("data/units.cpg", "GBK");
    let (run, summary) = s.run_study(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(summary.with("ran"), ["units"]);
    let (_, summary) = s.run_study(&[]);
    assert_eq!(summary.with("cached"), ["units"]);
}

#[test]
fn docs_stages_md_is_generated_from_the_code() {
    let generated = Study::new().run(&["stages", "--format", "markdown"]);
    assert_eq!(generated.code, 0);
    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/stages.md"),
    )
    .unwrap();
    assert!(
        generated.stdout == committed,
        "docs/stages.md is stale: run `cargo run -- stages --format markdown > docs/stages.md`"
    );
}

#[test]
fn a_hand_edited_published_file_is_noticed_and_restored() {
    let s = fixture();
    for _ in 0..3 {
        // The second and third runs trust the publish record and derive nothing.
        assert_eq!(s.run_study(&[]).0.code, 0);
    }
    let published = s.path("out/b.csv");
    let original = std::fs::read_to_string(&published).unwrap();
    std::fs::write(&published, original.replace("Kaifeng", "Kaifeng (edited)")).unwrap();
    let (run, _) = s.run_study(&["--check"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("differs: ") && run.stderr.contains("b.csv"),
        "{}",
        run.stderr
    );
    std::fs::remove_file(s.path("out/b.parquet")).unwrap();
    let (run, summary) = s.run_study(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(summary.with("ran").is_empty());
    assert_eq!(std::fs::read_to_string(&published).unwrap(), original);
    assert!(s.path("out/b.parquet").exists());
}

/// The worker seam: a stage invocation written as JSON and run by `pipeline worker` gives the
/// same bytes as the local executor.
#[test]
fn a_worker_process_computes_what_the_local_executor_does() {
    let s = fixture();
    let (run, summary) = s.run_study(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let local = &summary.digests["units.table"];

    let study_dir = s.dir.path().canonicalize().unwrap();
    let invocation = serde_json::json!({
        "stage": "units",
        "kind": "ingest",
        "version": 2,
        "params": { "path": "data/units.csv", "id_column": "unit_id" },
        "study_dir": study_dir,
        "inputs": {},
        "sources": { "path": study_dir.join("data/units.csv") },
        "outputs": ["table"],
    });
    s.file("invocation.json", &invocation.to_string());
    let out = s.run(&["worker", "invocation.json", "--out", "worker-out"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.path("worker-out/result.json")).unwrap()).unwrap();
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["outputs"]["table"]["rows"], 3);
    let bytes = std::fs::read(s.path("worker-out/table.parquet")).unwrap();
    assert_eq!(
        &blake3::hash(&bytes).to_hex().to_string(),
        local,
        "same bytes as the cached output"
    );
}

/// `pipeline worker` exits as `run` does (2 for bad data, 3 for an internal error) and prints
/// the error on stderr as well as in `result.json`.
#[test]
fn a_failing_worker_prints_its_error_and_exits_by_tier() {
    let s = fixture();
    let study_dir = s.dir.path().canonicalize().unwrap();
    let invocation = serde_json::json!({
        "stage": "units",
        "kind": "ingest",
        "version": 2,
        "params": { "path": "data/missing.csv", "id_column": "unit_id" },
        "study_dir": study_dir,
        "inputs": {},
        "sources": { "path": study_dir.join("data/missing.csv") },
        "outputs": ["table"],
    });
    s.file("bad.json", &invocation.to_string());
    let out = s.run(&["worker", "bad.json", "--out", "worker-bad"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("error: stage `units` failed:")
            && out.stderr.contains("missing.csv"),
        "{}",
        out.stderr
    );
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.path("worker-bad/result.json")).unwrap()).unwrap();
    assert_eq!(result["status"], "failed");
    assert_eq!(result["error"]["tier"], "data", "{result}");

    // A version this build does not have is internal: exit 3.
    s.file(
        "old.json",
        &invocation
            .to_string()
            .replace("\"version\":2", "\"version\":99"),
    );
    let out = s.run(&["worker", "old.json", "--out", "worker-old"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("version"), "{}", out.stderr);
}
