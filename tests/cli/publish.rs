//! Publishing: confined to the study's folder, checked before anything runs, one set per run,
//! and tidy after a kill.

use std::time::Duration;

use crate::common::Study;
use crate::run::{RATES_CSV, UNITS_CSV, fixture, study_yaml};

fn with_outputs(outputs: &str) -> Study {
    let s = Study::new();
    let yaml = study_yaml("", "one").replace("outputs: out", &format!("outputs: {outputs}"));
    s.file("data/units.csv", UNITS_CSV)
        .file("data/rates.csv", RATES_CSV)
        .file("study.yaml", &yaml);
    s
}

#[test]
fn outputs_outside_the_study_folder_are_refused_before_any_stage_runs() {
    let s = with_outputs("../elsewhere");
    let (run, summary) = s.run_study(&[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("outside the study's directory")
            && run.stderr.contains("study.yaml:2:")
            && run.stderr.contains("--allow-outside"),
        "{}",
        run.stderr
    );
    assert!(summary.status.is_empty(), "no stage ran");
    assert!(!s.dir.path().parent().unwrap().join("elsewhere").exists());

    // A symbolic link out of the study is outside too.
    let s = with_outputs("link/out");
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), s.path("link")).unwrap();
    let (run, _) = s.run_study(&[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);

    // With --allow-outside the user takes responsibility.
    let s = with_outputs("../elsewhere-allowed");
    let (run, _) = s.run_study(&["--allow-outside"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let target = s.dir.path().parent().unwrap().join("elsewhere-allowed");
    assert!(target.join("b.csv").exists());
    std::fs::remove_dir_all(target).unwrap();
}

#[test]
fn outputs_naming_an_existing_file_is_a_plan_error_with_its_line() {
    let s = with_outputs("indices.csv");
    s.file("indices.csv", "the user's own table\n");
    let (run, summary) = s.run_study(&[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("is a file, not a folder") && run.stderr.contains("study.yaml:2:"),
        "{}",
        run.stderr
    );
    assert!(summary.status.is_empty(), "no stage ran");
    assert_eq!(
        std::fs::read_to_string(s.path("indices.csv")).unwrap(),
        "the user's own table\n"
    );
    // `pipeline check` stops there too.
    assert_eq!(s.run(&["check", "study.yaml"]).code, 2);
}

#[test]
fn leftovers_of_a_killed_publish_are_reported_by_check_and_removed_by_the_next_run() {
    let s = fixture();
    assert_eq!(s.run_study(&[]).0.code, 0);
    // What a publish killed mid-way leaves: an earlier version's temp file, and a staging
    // folder without its journal (killed before the commit point).
    s.file("out/.pipeline-tmp-4242-b.csv", "half a tab");
    s.file("out/.pipeline-publish/0", "half a table");
    s.file("out/README.md", "the user's notes\n");
    let (run, _) = s.run_study(&["--check"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("unexpected: ")
            && run.stderr.contains(".pipeline-tmp-4242-b.csv")
            && run.stderr.contains(".pipeline-publish"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("README.md"), "{}", run.stderr);

    let (run, _) = s.run_study(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!s.path("out/.pipeline-tmp-4242-b.csv").exists());
    assert!(!s.path("out/.pipeline-publish").exists());
    assert_eq!(
        std::fs::read_to_string(s.path("out/README.md")).unwrap(),
        "the user's notes\n"
    );
    let (run, _) = s.run_study(&["--check"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn a_run_with_a_failed_stage_publishes_nothing() {
    let s = fixture();
    assert_eq!(s.run_study(&[]).0.code, 0);
    let before = std::fs::read(s.path("out/b.csv")).unwrap();
    // New data for `b`, while `c` now fails: publishing `b` alone would mix two runs.
    s.file("data/units.csv", &UNITS_CSV.replace("1260", "1261"));
    // `c` (the last stage) now exits 1 before copying.
    let failing = study_yaml("", "one").replace(
        "inputs: { table: rates }\n    ports: [table]\n    run: [\"sh\", \"-c\", \"cp",
        "inputs: { table: rates }\n    ports: [table]\n    run: [\"sh\", \"-c\", \"exit 1; cp",
    );
    assert_ne!(failing, study_yaml("", "one"));
    s.file("study.yaml", &failing);
    let (run, summary) = s.run_study(&["--keep-going"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(summary.status["c"], "failed");
    assert_eq!(summary.status["b"], "ran");
    assert!(run.stderr.contains("nothing published"), "{}", run.stderr);
    assert_eq!(std::fs::read(s.path("out/b.csv")).unwrap(), before);
}

/// Kills a run at many points while it publishes large files; the next run always finishes
/// with the complete new set and nothing left over.
#[test]
fn publish_survives_kill_during_rename() {
    let s = Study::new();
    let mut rows = String::from("unit_id,name,pop\n");
    for i in 0..20_000 {
        rows.push_str(&format!("{},unit {i},{}\n", 100_000 + i, i % 977));
    }
    s.file("data/units.csv", &rows)
        .file("data/rates.csv", RATES_CSV)
        .file("study.yaml", &study_yaml("", "one"));
    assert_eq!(s.run_study(&[]).0.code, 0);
    let old_csv = std::fs::read(s.path("out/b.csv")).unwrap();
    let old_parquet = std::fs::read(s.path("out/b.parquet")).unwrap();
    s.file("data/units.csv", &rows.replace(",unit ", ",Unit "));
    for delay_ms in [20u64, 40, 60, 80, 100, 130, 160, 200, 250] {
        let mut child = s
            .command(&["run", "study.yaml", "--quiet"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let csv_is_old = std::fs::read(s.path("out/b.csv")).unwrap() == old_csv;
        let parquet_is_old = std::fs::read(s.path("out/b.parquet")).unwrap() == old_parquet;
        // Both files are from one run, or the kill came between the renames of a committed
        // set, whose journal the next publish completes.
        assert!(
            csv_is_old == parquet_is_old || s.path("out/.pipeline-publish/journal.json").exists(),
            "killed after {delay_ms} ms: b.csv old {csv_is_old}, b.parquet old {parquet_is_old}"
        );
    }
    let (run, _) = s.run_study(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        String::from_utf8_lossy(&std::fs::read(s.path("out/b.csv")).unwrap()).contains(",Unit ")
    );
    let left: Vec<_> = std::fs::read_dir(s.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut left = left;
    left.sort();
    assert_eq!(left, ["b.csv", "b.parquet"]);
    assert_eq!(s.run_study(&["--check"]).0.code, 0);
}
