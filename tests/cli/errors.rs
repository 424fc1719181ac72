//! Bad studies and bad data: exit 2 and a message that names the file, line and column.
//! The messages are snapshots (tests/cli/snapshots), with temp paths redacted.

use crate::common::Study;
use crate::run::{RATES_CSV, UNITS_CSV};

fn check_fails(yaml: &str, files: &[(&str, &str)]) -> String {
    let s = Study::new();
    s.file("data/units.csv", UNITS_CSV)
        .file("data/rates.csv", RATES_CSV);
    for (p, c) in files {
        s.file(p, c);
    }
    s.file("study.yaml", yaml);
    let run = s.run(&["run", "study.yaml", "--quiet"]);
    assert_eq!(
        run.code, 2,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("RUST_BACKTRACE"),
        "{}",
        run.stderr
    );
    s.redact(&run.stderr)
}

const HEAD: &str = "study: bad\nstages:\n  units:\n    kind: ingest\n    path: data/units.csv\n    id_column: unit_id\n";

#[test]
fn yaml_syntax_error() {
    insta::assert_snapshot!(check_fails(
        "study: bad\nstages:\n  units: { kind: ingest, path: data/units.csv\n  other: 1\n",
        &[]
    ));
}

#[test]
fn unknown_top_level_field() {
    insta::assert_snapshot!(check_fails(
        "study: bad\nstage:\n  units:\n    kind: ingest\n",
        &[]
    ));
}

#[test]
fn unknown_parameter() {
    insta::assert_snapshot!(check_fails(&format!("{HEAD}    id_colum: unit_id\n"), &[]));
}

#[test]
fn unknown_kind() {
    insta::assert_snapshot!(check_fails(
        &format!("{HEAD}  emission:\n    kind: emision\n    inputs: {{ areas: units }}\n"),
        &[]
    ));
}

#[test]
fn missing_input_stage() {
    insta::assert_snapshot!(check_fails(
        &format!(
            "{HEAD}  copy:\n    kind: command\n    ports: [table]\n    inputs: {{ table: unitz }}\n    run: [\"true\"]\n"
        ),
        &[]
    ));
}

#[test]
fn cycle() {
    let cmd = |name: &str, from: &str| {
        format!(
            "  {name}:\n    kind: command\n    ports: [table]\n    inputs: {{ table: {from} }}\n    run: [\"true\"]\n"
        )
    };
    insta::assert_snapshot!(check_fails(
        &format!(
            "study: bad\nstages:\n{}{}{}",
            cmd("a", "c"),
            cmd("b", "a"),
            cmd("c", "b")
        ),
        &[]
    ));
}

#[test]
fn missing_file() {
    insta::assert_snapshot!(check_fails(
        "study: bad\nstages:\n  units:\n    kind: ingest\n    path: data/nothere.csv\n",
        &[]
    ));
}

#[test]
fn csv_with_a_bad_row() {
    insta::assert_snapshot!(check_fails(
        "study: bad\nstages:\n  units:\n    kind: ingest\n    path: data/bad.csv\n    id_column: unit_id\n    types: { pop: int }\n",
        &[(
            "data/bad.csv",
            "unit_id,name,pop\n410100,Zhengzhou,1260\n410200,Kaifeng,many\n"
        )]
    ));
}

#[test]
fn duplicate_ids() {
    insta::assert_snapshot!(check_fails(
        "study: bad\nstages:\n  units:\n    kind: ingest\n    path: data/dup.csv\n    id_column: unit_id\n",
        &[(
            "data/dup.csv",
            "unit_id,name\n410100,Zhengzhou\n410200,Kaifeng\n410100,Again\n"
        )]
    ));
}

#[test]
fn path_outside_the_study() {
    insta::assert_snapshot!(check_fails(
        "study: bad\nstages:\n  units:\n    kind: ingest\n    path: ../elsewhere/units.csv\n",
        &[]
    ));
}

#[test]
fn raster_pattern_that_matches_no_file_names_the_pattern() {
    let err = check_fails(
        "study: bad\nstages:\n  lu:\n    kind: landuse\n    rasters: { 2000: \"tiles/lu_2000_*.tif\" }\n    scheme: clcd\n",
        &[("tiles/lu_2001_a.tif", "not a raster")],
    );
    assert!(
        err.contains("stage `lu`") && err.contains("`tiles/lu_2000_*.tif` matches no file"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
}
