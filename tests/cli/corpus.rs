//! The malformed-input corpus (tests/fixtures/corpus, made by its make_corpus.py): every file
//! must be refused by its reader with a clean error that names the file, without a panic and
//! with no single allocation larger than the input justifies.

use std::panic::AssertUnwindSafe;

#[path = "../fuzz/alloc.rs"]
mod alloc;
#[path = "../fuzz/targets.rs"]
mod targets;

#[global_allocator]
static COUNTING: alloc::Counting = alloc::Counting;

/// What went wrong with one corpus file, if anything.
fn check(
    target: &str,
    input: &std::path::Path,
    companions: &[(String, Vec<u8>)],
) -> Option<String> {
    let bytes = std::fs::read(input).unwrap();
    let stem = input.file_stem().unwrap().to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input_len = bytes.len() + companions.iter().map(|(_, b)| b.len()).sum::<usize>();
    alloc::arm();
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        targets::run(target, dir.path(), stem, &bytes, companions)
    }));
    let largest = alloc::largest();
    let name = input.file_name().unwrap().to_string_lossy();
    match outcome {
        Err(_) => Some(format!("{name}: the reader panicked")),
        Ok(Ok(())) => Some(format!("{name}: read without an error")),
        Ok(Err(_)) if largest > alloc::bound(input_len) => Some(format!(
            "{name}: one allocation of {largest} bytes for {input_len} bytes of input"
        )),
        // WKB values are cells of a table, not files: their errors name the row elsewhere.
        Ok(Err(message)) if target != "wkb" && !message.contains(&format!("{stem}.")) => Some(
            format!("{name}: the message does not name the file: {message}"),
        ),
        Ok(Err(_)) => None,
    }
}

#[test]
fn every_corpus_file_is_refused_cleanly_with_bounded_memory() {
    let mut problems = Vec::new();
    let mut count = 0;
    for target in targets::TARGETS {
        for (input, companions) in targets::corpus(target) {
            count += 1;
            problems.extend(check(target, &input, &companions));
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {count} corpus files:\n{}",
        problems.len(),
        problems.join("\n")
    );
    // The corpus is the one make_corpus.py writes: at least 200 cases over 9 formats.
    assert!(count >= 200, "{count} corpus files");
}

/// A study that ingests one corpus file (with its companions) fails with exit 2 and an error
/// naming the file; nothing panics.
fn ingest_fails_cleanly(target: &str, input: &std::path::Path, companions: &[(String, Vec<u8>)]) {
    let study = crate::common::Study::new();
    let name = format!("units.{}", targets::extension(target));
    let data = study.path("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join(&name), std::fs::read(input).unwrap()).unwrap();
    for (ext, bytes) in companions {
        std::fs::write(data.join(format!("units.{ext}")), bytes).unwrap();
    }
    let path = if matches!(target, "dbf" | "prj") {
        "data/units.shp".to_owned()
    } else {
        format!("data/{name}")
    };
    study.file(
        "study.yaml",
        &format!("study: corpus\nstages:\n  units:\n    kind: ingest\n    path: {path}\n"),
    );
    let run = study.run(&["run", "study.yaml", "--quiet"]);
    let file = input.file_name().unwrap().to_string_lossy();
    assert_eq!(run.code, 2, "{file}: {}", run.stderr);
    assert!(run.stderr.contains("data/units."), "{file}: {}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{file}: {}", run.stderr);
}

#[test]
fn corpus_files_fail_an_ingesting_study_with_exit_2() {
    for target in ["csv", "xlsx", "geojson", "shapefile", "dbf", "prj"] {
        // Every fourth case of each format keeps the test quick; the library test reads all.
        for (input, companions) in targets::corpus(target).iter().step_by(4) {
            ingest_fails_cleanly(target, input, companions);
        }
    }
    let (input, companions) = targets::corpus("geojson")
        .into_iter()
        .find(|(p, _)| p.ends_with("vertex_1e308.geojson"))
        .unwrap();
    ingest_fails_cleanly("geojson", &input, &companions);
}
