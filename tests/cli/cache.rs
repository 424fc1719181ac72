//! The cache under stress: killed runs, concurrent runs, corrupt blobs, gc.

use std::time::Duration;

use crate::common::Study;
use crate::run::{RATES_CSV, UNITS_CSV, fixture};

/// A chain of slow copies, each logging that it computed.
fn slow_study() -> Study {
    let s = Study::new();
    s.file("data/units.csv", UNITS_CSV)
        .file("data/rates.csv", RATES_CSV);
    let mut yaml = String::from(
        "study: slow\nstages:\n  units:\n    kind: ingest\n    path: data/units.csv\n    id_column: unit_id\n",
    );
    let mut prev = "units".to_owned();
    for i in 1..=4 {
        yaml.push_str(&format!(
            "  step{i}:\n    kind: command\n    inputs: {{ table: {prev} }}\n    ports: [table]\n    run: [\"sh\", \"-c\", \"echo step{i} >> compute.log; sleep 0.15; cp \\\"$PIPELINE_INPUT_TABLE\\\" \\\"$PIPELINE_OUTPUT_TABLE\\\"\"]\n"
        ));
        prev = format!("step{i}");
    }
    yaml.push_str("  side:\n    kind: command\n    inputs: { table: units }\n    ports: [table]\n    run: [\"sh\", \"-c\", \"echo side >> compute.log; sleep 0.15; cp \\\"$PIPELINE_INPUT_TABLE\\\" \\\"$PIPELINE_OUTPUT_TABLE\\\"\"]\n");
    s.file("study.yaml", &yaml);
    s
}

#[test]
fn killed_runs_resume_to_the_same_outputs() {
    let clean = slow_study();
    let (run, reference) = clean.run_study(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    let s = slow_study();
    // Kill at several points: before, during and between stages.
    for delay_ms in [5u64, 60, 170, 260, 420, 555] {
        let mut child = s
            .command(&["run", "study.yaml", "--quiet"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    let (run, summary) = s.run_study(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(summary.digests, reference.digests);
    assert!(summary.with("failed").is_empty());
    // And the cache is consistent: verify finds nothing wrong.
    let verify = s.run(&["verify"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
}

#[test]
fn concurrent_runs_compute_each_stage_once() {
    let s = slow_study();
    let a = s
        .command(&["run", "study.yaml", "--quiet", "--summary-json", "a.json"])
        .spawn()
        .unwrap();
    let b = s
        .command(&["run", "study.yaml", "--quiet", "--summary-json", "b.json"])
        .spawn()
        .unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(
        a.status.success() && b.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    let log = std::fs::read_to_string(s.path("compute.log")).unwrap();
    let mut lines: Vec<&str> = log.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        ["side", "step1", "step2", "step3", "step4"],
        "each stage computed exactly once"
    );
    let sa = crate::common::Summary::parse(&std::fs::read(s.path("a.json")).unwrap());
    let sb = crate::common::Summary::parse(&std::fs::read(s.path("b.json")).unwrap());
    assert_eq!(sa.digests, sb.digests);
    assert_eq!(
        sa.with("ran").len() + sb.with("ran").len(),
        6,
        "{:?} {:?}",
        sa.status,
        sb.status
    );
}

fn blob_paths(s: &Study) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![s.cache.join("v1/objects")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_flipped_byte_is_reported_and_recomputed() {
    let s = fixture();
    let (_, first) = s.run_study(&[]);
    let digest = &first.digests["c.table"];
    let blob = blob_paths(&s)
        .into_iter()
        .find(|p| p.to_string_lossy().contains(digest.as_str()))
        .expect("c's blob is stored");
    let mut perms = std::fs::metadata(&blob).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&blob, perms).unwrap();
    let mut bytes = std::fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&blob, &bytes).unwrap();

    let verify = s.run(&["verify"]);
    assert_eq!(verify.code, 1);
    assert!(verify.stdout.contains("corrupt blob:"), "{}", verify.stdout);

    // `c` copies `rates`, so both outputs are one blob: the first stage to meet the corrupt blob
    // (`rates`, upstream) recomputes it, and `c` then finds it intact again.
    let (run, summary) = s.run_study(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(summary.with("ran"), ["rates"]);
    assert_eq!(&summary.digests["c.table"], digest);
    assert_eq!(s.run(&["verify"]).code, 0);
}

#[test]
fn a_corrupt_shared_blob_is_recomputed_by_its_first_producer() {
    let s = fixture();
    let (_, first) = s.run_study(&[]);
    // Corrupt `a`'s output (same size, new bytes).
    let digest = &first.digests["a.table"];
    let blob = blob_paths(&s)
        .into_iter()
        .find(|p| p.to_string_lossy().contains(digest.as_str()))
        .unwrap();
    let mut perms = std::fs::metadata(&blob).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&blob, perms).unwrap();
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[20] ^= 0x40;
    std::fs::write(&blob, &bytes).unwrap();
    let (run, summary) = s.run_study(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // `units`, `a` and `b` share that blob (each copies the one before); `units` meets it first.
    assert_eq!(summary.with("ran"), ["units"], "{:?}", summary.status);
    assert_eq!(summary.digests, first.digests);
}

#[test]
fn gc_keeps_what_the_last_run_used() {
    let s = fixture();
    assert_eq!(s.run_study(&[]).0.code, 0);
    s.file(
        "data/rates.csv",
        "unit_id,rate\n410100,1\n410200,2\n410300,3\n",
    );
    assert_eq!(s.run_study(&[]).0.code, 0);
    let before = blob_paths(&s).len();
    let gc = s.run(&["gc"]);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    // The old `rates` and `c` outputs are one blob (c copies rates): it goes, with both entries.
    assert_eq!(blob_paths(&s).len(), before - 1, "{}", gc.stdout);
    assert!(
        gc.stdout.starts_with("removed 2 entries, 1 blobs"),
        "{}",
        gc.stdout
    );
    let (_, summary) = s.run_study(&[]);
    assert!(summary.with("ran").is_empty(), "{:?}", summary.status);
}

fn memo_files(s: &Study) -> Vec<(std::path::PathBuf, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![s.cache.join("v1/memo")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path(), e.metadata().unwrap().modified().unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The `landuse` stage memoises its histograms: after `gc`, a new reclassification table still
/// reruns only the reclassification (the memo is neither recomputed nor rewritten).
#[test]
fn memoised_histograms_survive_gc_and_serve_a_new_scheme() {
    let s = Study::new();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/landuse");
    std::fs::create_dir_all(s.path("data")).unwrap();
    for f in [
        "units_proj_lonlat.geojson",
        "proj_u8_tiled_deflate.tif",
        "proj_u8_tiled_deflate_2020.tif",
    ] {
        std::fs::copy(fixtures.join(f), s.path(&format!("data/{f}"))).unwrap();
    }
    let scheme = "code,class\n1,cultivated\n2,forest\n3,forest\n4,grassland\n5,water\n6,unused\n7,unused\n8,construction\n9,water\n12,unused\n";
    s.file("data/scheme.csv", scheme);
    s.file(
        "study.yaml",
        "study: lu\nstages:\n  units:\n    kind: ingest\n    path: data/units_proj_lonlat.geojson\n    id_column: unit_id\n  landuse:\n    kind: landuse\n    inputs: { units: units }\n    rasters: { 2000: data/proj_u8_tiled_deflate.tif, 2020: data/proj_u8_tiled_deflate_2020.tif }\n    scheme: data/scheme.csv\n    allow_empty_units: true\n",
    );
    let (run, first) = s.run_study(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let memos = memo_files(&s);
    assert_eq!(
        memos.len(),
        3,
        "one histogram pass, memoised per year (2) and pair of years (1)"
    );
    assert_eq!(s.run(&["gc"]).code, 0);
    assert_eq!(memo_files(&s), memos, "gc keeps what the last run used");

    s.file(
        "data/scheme.csv",
        &scheme.replace("2,forest", "2,grassland"),
    );
    let (run, second) = s.run_study(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(second.with("ran"), ["landuse"]);
    assert_ne!(
        first.digests["landuse.areas"],
        second.digests["landuse.areas"]
    );
    assert_eq!(
        memo_files(&s),
        memos,
        "the histograms were served from the memo"
    );
}

#[test]
fn gc_max_size_drops_results_that_do_not_fit_and_rejects_bad_sizes() {
    let s = fixture();
    assert_eq!(s.run_study(&[]).0.code, 0);
    let bad = s.run(&["gc", "--max-size", "lots"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("is not a size"), "{}", bad.stderr);
    let dry = s.run(&["gc", "--max-size", "1", "--dry-run"]);
    assert_eq!(dry.code, 0);
    assert!(dry.stdout.starts_with("would remove"), "{}", dry.stdout);
    assert!(!blob_paths(&s).is_empty(), "--dry-run removes nothing");
    let gc = s.run(&["gc", "--max-size", "1"]);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    assert!(
        blob_paths(&s).is_empty(),
        "nothing fits in one byte: {}",
        gc.stdout
    );
    let (_, summary) = s.run_study(&[]);
    assert_eq!(summary.with("ran").len(), 5, "everything is recomputed");
}

/// Flips one byte of the blob with `digest` in place, keeping its inode and mtime, so the
/// stat seal still matches and only reading the bytes can tell.
fn corrupt_keeping_the_seal(s: &Study, digest: &str) {
    let blob = blob_paths(s)
        .into_iter()
        .find(|p| p.to_string_lossy().contains(digest))
        .expect("the blob is stored");
    let meta = std::fs::metadata(&blob).unwrap();
    let mut perms = meta.permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&blob, perms).unwrap();
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[30] ^= 0x01;
    let f = std::fs::File::options().write(true).open(&blob).unwrap();
    std::io::Write::write_all(&mut &f, &bytes).unwrap();
    f.set_modified(meta.modified().unwrap()).unwrap();
}

#[test]
fn a_corrupt_blob_with_its_seal_intact_is_recomputed_when_published() {
    let s = fixture();
    let (_, first) = s.run_study(&[]);
    corrupt_keeping_the_seal(&s, &first.digests["b.table"]);
    // Publishing must read the blob again: the published files are gone.
    std::fs::remove_file(s.path("out/b.csv")).unwrap();
    std::fs::remove_file(s.path("out/b.parquet")).unwrap();
    let (run, summary) = s.run_study(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(summary.digests, first.digests);
    assert_eq!(
        std::fs::read_to_string(s.path("out/b.csv")).unwrap(),
        UNITS_CSV
    );
    assert_eq!(s.run(&["verify"]).code, 0);
    // And every later run is a plain hit.
    let (run, summary) = s.run_study(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(summary.with("ran").is_empty());
}

#[test]
fn show_recomputes_a_corrupt_blob_with_its_seal_intact() {
    let s = fixture();
    let (_, first) = s.run_study(&[]);
    corrupt_keeping_the_seal(&s, &first.digests["c.table"]);
    let run = s.run(&["show", "study.yaml", "c", "--format", "csv"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, RATES_CSV);
}

#[test]
fn verify_reports_a_directory_in_place_of_a_blob() {
    let s = fixture();
    let (_, first) = s.run_study(&[]);
    let blob = blob_paths(&s)
        .into_iter()
        .find(|p| {
            p.to_string_lossy()
                .contains(first.digests["c.table"].as_str())
        })
        .unwrap();
    std::fs::remove_file(&blob).unwrap();
    std::fs::create_dir_all(blob.join("x")).unwrap();
    let verify = s.run(&["verify"]);
    assert_eq!(verify.code, 1, "{}", verify.stdout);
    assert!(verify.stdout.contains("corrupt blob:"), "{}", verify.stdout);
    let repair = s.run(&["verify", "--repair"]);
    assert_eq!(repair.code, 0, "{}{}", repair.stdout, repair.stderr);
    assert!(!blob.exists());
    let (run, summary) = s.run_study(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(summary.digests, first.digests);
}

/// Entries a build of other code made must not be hits. Before keys knew the code, an entry's
/// name was the key without the code, so moving each entry there is what an older binary left.
#[test]
fn entries_of_a_build_with_other_code_are_not_hits() {
    let s = fixture();
    let (run, _) = s.run_study(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.path("summary.json")).unwrap()).unwrap();
    for stage in summary["stages"].as_array().unwrap() {
        let key = stage["key"].as_str().unwrap();
        let old = stage["key_without_code"].as_str().unwrap();
        assert_ne!(key, old);
        let entries = s.cache.join("v1/entries");
        let from = entries.join(&key[..2]).join(format!("{key}.json"));
        let to = entries.join(&old[..2]).join(format!("{old}.json"));
        let text = std::fs::read_to_string(&from).unwrap().replace(key, old);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(&to, text).unwrap();
        std::fs::remove_file(&from).unwrap();
    }
    let (run, summary) = s.run_study(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(summary.with("cached").is_empty(), "{:?}", summary.status);
    let explain = s.run(&["explain", "study.yaml", "units"]);
    assert!(explain.stdout.contains("  code: "), "{}", explain.stdout);
}
