//! Command-line hygiene: whole tables for other programs, bounded flags, a closed stdout,
//! interrupted runs and commands that run too long.

use std::fmt::Write as _;
use std::process::Stdio;

use crate::common::Study;

/// A study of one ingest whose table has `rows` rows.
fn rows_study(rows: usize) -> Study {
    let s = Study::new();
    let mut csv = String::from("unit_id,value\n");
    for i in 0..rows {
        let _ = writeln!(csv, "u{i:03},{i}");
    }
    s.file("data/units.csv", &csv).file(
        "study.yaml",
        "study: rows\noutputs: out\nstages:\n  units:\n    kind: ingest\n    path: data/units.csv\n    id_column: unit_id\n    publish: [csv]\n",
    );
    s
}

#[test]
fn show_as_csv_or_json_prints_every_row_unless_limited() {
    let s = rows_study(25);
    let csv = s.run(&["show", "study.yaml", "units", "--format", "csv"]);
    assert_eq!(csv.code, 0, "{}", csv.stderr);
    assert_eq!(
        csv.stdout.lines().count(),
        1 + 25,
        "a header and all 25 rows"
    );
    assert!(csv.stdout.ends_with("u024,24\n"), "{}", csv.stdout);

    let json = s.run(&["show", "study.yaml", "units", "--format", "json"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(25));

    let limited = s.run(&[
        "show",
        "study.yaml",
        "units",
        "--format",
        "csv",
        "--limit",
        "3",
    ]);
    assert_eq!(limited.stdout.lines().count(), 1 + 3);
}

#[test]
fn show_as_a_table_previews_twenty_rows_and_counts_the_rest() {
    let s = rows_study(25);
    let table = s.run(&["show", "study.yaml", "units"]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(table.stdout.contains("u019"), "{}", table.stdout);
    assert!(!table.stdout.contains("u020"), "{}", table.stdout);
    assert!(
        table.stdout.ends_with("… 5 more rows\n"),
        "{}",
        table.stdout
    );
    let all = s.run(&["show", "study.yaml", "units", "--limit", "30"]);
    assert!(all.stdout.contains("u024") && !all.stdout.contains("more rows"));
}

#[test]
fn an_overflowing_gc_max_size_is_a_usage_error() {
    let s = Study::new();
    let run = s.run(&["gc", "--max-size", "99999999999T"]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("`--max-size 99999999999T`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
    assert!(
        run.stdout.is_empty(),
        "nothing was collected: {}",
        run.stdout
    );
}

/// One summary file cannot hold several studies' summaries: refused before anything runs.
#[test]
fn a_summary_of_several_studies_is_a_usage_error() {
    let s = rows_study(3);
    let run = s.run(&[
        "run",
        "study.yaml",
        "study.yaml",
        "--summary-json",
        "summary.json",
    ]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("`--summary-json` takes one study"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
    assert!(!s.path("summary.json").exists());
    assert!(!s.path("out").exists(), "nothing ran or was published");
}

#[test]
fn an_absurd_jobs_count_is_capped_with_a_warning() {
    let s = rows_study(3);
    let run = s.run(&["run", "study.yaml", "--jobs", "100000"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("warning: --jobs 100000 is more than 4 per core"),
        "{}",
        run.stderr
    );
}

/// `pipeline run … | head -1`: the reader is gone before anything is printed. The run must
/// neither panic nor lose its work: it publishes and exits 0, printing nothing on stderr.
#[test]
fn a_closed_stdout_is_quiet_and_the_run_still_publishes() {
    let s = rows_study(3);
    for args in [
        &["run", "study.yaml"][..],
        &["show", "study.yaml", "units"],
        &["dag", "study.yaml"],
        &["explain", "study.yaml", "units"],
        &["check", "study.yaml"],
        &["stages"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = s
            .command(args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    assert!(s.path("out/units.csv").is_file(), "the run published");
}

/// Whether process `pid` has ended: gone, or a zombie waiting to be reaped.
fn ended(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'))
    })
}

/// Whether process `pid` ends within `patience`. A SIGKILL to a group is delivered
/// asynchronously: a killed process may be listed for a moment after `kill` returns, longer on
/// a loaded machine, so it is polled before being called alive.
fn ends_within(pid: &str, patience: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + patience;
    while !ended(pid) {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    true
}

/// Waits up to a minute for a file the command writes once it is running.
fn wait_for(path: &std::path::Path) -> String {
    for _ in 0..600 {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text.trim().to_owned();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{} never appeared", path.display());
}

/// SIGINT or SIGTERM to `pipeline` stops the running command's whole process group, removes
/// its scratch folder, publishes nothing, records nothing for the unfinished stage, and exits
/// as shells report a signal: 130 and 143.
#[test]
fn a_signal_stops_running_commands_and_exits_with_the_shells_code() {
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let s = rows_study(3);
        s.file(
            "study.yaml",
            "study: slow\noutputs: out\nstages:\n  units:\n    kind: ingest\n    path: data/units.csv\n    id_column: unit_id\n    publish: [csv]\n  slow:\n    kind: command\n    inputs: { table: units }\n    ports: [table]\n    run: 'echo \"$PIPELINE_INPUT_TABLE\" > scratch.txt; sleep 60 & echo $! > child.pid; wait'\n",
        );
        let child = s
            .command(&["run", "study.yaml"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let sleeper = wait_for(&s.path("child.pid"));
        let input = wait_for(&s.path("scratch.txt"));
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "SIG{signal}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "error: stopped by SIG{signal}: nothing was published"
            )),
            "{stderr}"
        );
        assert!(
            ends_within(&sleeper, std::time::Duration::from_secs(10)),
            "SIG{signal}: the command's `sleep` (pid {sleeper}) still runs 10 s after the run ended"
        );
        let scratch = std::path::Path::new(&input)
            .parent()
            .unwrap()
            .parent()
            .unwrap();
        assert!(!scratch.exists(), "{} is left behind", scratch.display());
        assert!(!s.path("out").exists(), "nothing is published");
        let explain = s.run(&["explain", "study.yaml", "slow"]);
        assert!(
            explain.stdout.contains("miss (would run)"),
            "{}",
            explain.stdout
        );
    }
}
