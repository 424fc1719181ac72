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

/// `{HEAD}` plus one stage of `kind` with the given parameter lines (four-space indented).
fn with_stage(kind: &str, params: &str) -> String {
    format!("{HEAD}  step:\n    kind: {kind}\n    inputs: {{ table: units }}\n{params}")
}

#[test]
fn cluster_count_of_the_wrong_type_names_the_parameter_at_its_value() {
    insta::assert_snapshot!(check_fails(
        &with_stage("cluster", "    variables: [pop]\n    k: many\n"),
        &[]
    ));
}

#[test]
fn permutations_that_are_not_a_number_name_the_parameter() {
    insta::assert_snapshot!(check_fails(
        &with_stage("autocorrelation", "    permutations: many\n"),
        &[]
    ));
}

#[test]
fn a_list_where_a_seed_belongs_names_the_parameter() {
    insta::assert_snapshot!(check_fails(
        &format!(
            "{HEAD}  step: {{ kind: autocorrelation, inputs: {{ table: units }}, seed: [1, 2] }}\n"
        ),
        &[]
    ));
}

#[test]
fn a_single_name_where_a_list_belongs_suggests_the_list() {
    insta::assert_snapshot!(check_fails(
        &with_stage("cluster", "    variables: ecc\n"),
        &[]
    ));
}

#[test]
fn a_flag_that_is_neither_true_nor_false_names_the_parameter() {
    insta::assert_snapshot!(check_fails(
        &with_stage("report", "    demo_data: maybe\n"),
        &[]
    ));
}

#[test]
fn a_path_naming_a_directory_says_so() {
    insta::assert_snapshot!(check_fails(
        "study: bad\nstages:\n  units:\n    kind: ingest\n    path: data\n",
        &[]
    ));
}

#[test]
fn a_duplicate_key_is_named_in_the_users_words() {
    insta::assert_snapshot!(check_fails(
        "study: bad\nstages:\n  units:\n    kind: ingest\n    path: data/units.csv\n    path: data/rates.csv\n",
        &[]
    ));
}

#[test]
fn an_alias_bomb_is_refused_in_the_users_words() {
    // Ten anchors, each nine copies of the one before: 9^10 (3.5 billion) scalars expanded.
    let mut yaml = String::from(
        "study: bad\nstages:\n  units:\n    kind: ingest\n    a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..10 {
        let p = i - 1;
        yaml.push_str(&format!(
            "    a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    insta::assert_snapshot!(check_fails(&yaml, &[]));
}

/// Study files saved as UTF-16 (Windows "Unicode") or in a legacy code page.
#[test]
fn a_study_file_that_is_not_utf8_says_how_to_resave_it() {
    let s = Study::new();
    s.file("data/units.csv", UNITS_CSV);
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(HEAD.encode_utf16().flat_map(u16::to_le_bytes));
    std::fs::write(s.path("utf16.yaml"), utf16).unwrap();
    let run = s.run(&["check", "utf16.yaml"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    insta::assert_snapshot!("utf16_study_file", s.redact(&run.stderr));

    // "# 郑州" in GBK: 0xD6 0xA3 0xD6 0xDD is not UTF-8.
    let mut gbk = b"study: bad\n# \xD6\xA3\xD6\xDD\n".to_vec();
    gbk.extend_from_slice(b"stages: {}\n");
    std::fs::write(s.path("gbk.yaml"), gbk).unwrap();
    let run = s.run(&["check", "gbk.yaml"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    insta::assert_snapshot!("gbk_study_file", s.redact(&run.stderr));

    // A UTF-8 byte-order mark is fine.
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend_from_slice(HEAD.as_bytes());
    std::fs::write(s.path("bom.yaml"), bom).unwrap();
    let run = s.run(&["check", "bom.yaml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn a_nan_cell_is_not_a_number_rather_than_empty() {
    insta::assert_snapshot!(check_fails(
        &format!(
            "{HEAD}  step:\n    kind: inequality\n    inputs: {{ table: units }}\n    value: pop\n    weight: equal\n"
        ),
        &[(
            "data/units.csv",
            "unit_id,name,pop\n410100,Zhengzhou,1260\n410200,Kaifeng,NaN\n410300,Luoyang,707\n"
        )]
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
