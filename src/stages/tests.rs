//! Checks over every kind in [`BUILTIN`]: the defaults `pipeline stages` documents are the ones
//! the code uses, and each kind, run on its own examples, writes the tables it declares.

use std::collections::BTreeSet;
use std::path::Path;

use super::BUILTIN;
use crate::stages::testing;

/// Kinds that give no example of their required parameters yet, so `pipeline stages`
/// shows their written defaults unchecked.
const WRITTEN_DEFAULTS_ONLY: [&str; 0] = [];

/// Every kind's documented defaults are the ones its parameters deserialise to.
#[test]
fn every_kind_documents_the_defaults_its_code_uses() {
    let mut problems = Vec::new();
    for entry in BUILTIN {
        let kind = entry.kind();
        match entry.default_drifts() {
            Ok(_) if WRITTEN_DEFAULTS_ONLY.contains(&kind) => problems.push(format!(
                "{kind}: its example now deserialises: take it off WRITTEN_DEFAULTS_ONLY"
            )),
            Ok(drifts) => problems.extend(drifts.iter().map(|d| format!("{kind}: {d:?}"))),
            Err(_) if WRITTEN_DEFAULTS_ONLY.contains(&kind) => {}
            Err(e) => problems.push(format!("{kind}: {e}")),
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Kinds the engine expands when it plans a study instead of running them as a stage, so
/// they have no run of their own to check (a sweep's tables are checked against its
/// declarations in `engine::sweep::output_tables`).
const EXPANDED_BY_THE_ENGINE: [&str; 1] = ["sweep"];

/// Every kind in [`BUILTIN`], run on each of its own `declaration_examples` (the small study
/// of `stages::testing::study`), writes exactly the tables and columns it declares: the harness
/// asserts it on each run. A kind that gives no example fails here, so a new kind is covered
/// by its own file alone.
#[test]
fn every_kind_writes_the_tables_it_declares() {
    let mut unrun = Vec::new();
    for entry in BUILTIN {
        let kind = entry.kind();
        let examples = entry.declaration_examples();
        if examples.is_empty() && !EXPANDED_BY_THE_ENGINE.contains(&kind) {
            unrun.push(kind);
        }
        for example in examples {
            let dir = tempfile::tempdir().unwrap();
            for (path, contents) in &example.files {
                std::fs::write(dir.path().join(path), contents).unwrap();
            }
            testing::run_entry(*entry, dir.path(), example.params, example.tables)
                .unwrap_or_else(|e| panic!("kind `{kind}`: {e:?}"));
        }
    }
    assert!(
        unrun.is_empty(),
        "kinds that give no `declaration_examples`: {unrun:?}"
    );
}

/// Every file directly in `src/stages/` but the harness and the shared declarations is one kind
/// of `BUILTIN`, named after it; what several kinds use lives in `stages/shared/`.
#[test]
fn every_file_of_the_stages_folder_is_one_kind() {
    const NOT_KINDS: [&str; 4] = ["mod", "testing", "tests", "presets"];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/stages");
    let kinds: BTreeSet<&str> = BUILTIN.iter().map(|e| e.kind()).collect();
    let mut strays = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("src/stages is readable") {
        let path = entry.expect("a directory entry").path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "rs")
            && !NOT_KINDS.contains(&stem)
            && !kinds.contains(stem)
        {
            strays.push(stem.to_owned());
        }
    }
    assert!(
        strays.is_empty(),
        "files in src/stages/ that are not kinds (move them to src/stages/shared/): {strays:?}"
    );
}
