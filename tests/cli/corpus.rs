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
