//! Wrong studies must not look finished: a misspelt fuel column, an input value that overflows,
//! an absurd contiguity tolerance exit 2 naming the file, column, row or value; warnings are
//! summarised per kind and listed in full by `explain`.

use crate::common::Study;

const AREAS_CSV: &str = "unit_id,year,class,area_ha\n\
    a,2000,construction,100\na,2000,forest,50\n\
    b,2000,construction,80\nb,2000,forest,20\n";

const FUELS: [&str; 8] = [
    "raw_coal_t",
    "coke_t",
    "crude_oil_t",
    "gasoline_t",
    "kerosene_t",
    "diesel_t",
    "fuel_oil_t",
    "natural_gas_10k_m3",
];

/// An energy table with the given header (after `unit_id,year`) and the value `cell` in the
/// last column of unit `b`; every other fuel value is 1.
fn energy_csv(header: &[&str], cell: &str) -> String {
    let ones = vec!["1"; header.len()];
    let mut b = ones.clone();
    *b.last_mut().unwrap() = cell;
    format!(
        "unit_id,year,{}\na,2000,{}\nb,2000,{}\n",
        header.join(","),
        ones.join(","),
        b.join(",")
    )
}

fn emission_study(energy: &str, extra: &str) -> Study {
    let s = Study::new();
    s.file("data/areas.csv", AREAS_CSV)
        .file("data/energy.csv", energy)
        .file(
            "study.yaml",
            &format!(
                "study: mistakes\noutputs: out\nstages:\n  \
                 areas: {{ kind: ingest, path: data/areas.csv }}\n  \
                 energy: {{ kind: ingest, path: data/energy.csv }}\n  \
                 emission: {{ kind: emission, inputs: {{ areas: areas, energy: energy }}, publish: [csv]{extra} }}\n"
            ),
        );
    s
}

#[test]
fn misspelt_fuel_column_is_an_error_naming_file_column_and_the_fix() {
    let mut header = FUELS.to_vec();
    header[0] = "raw_coal_tonnes";
    let s = emission_study(&energy_csv(&header, "1"), "");
    let run = s.run(&["run", "study.yaml"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    for part in [
        "data/energy.csv",
        "`raw_coal_tonnes`",
        "did you mean `raw_coal_t`?",
        "ignore_columns",
    ] {
        assert!(run.stderr.contains(part), "{part} in {}", run.stderr);
    }
    assert!(!s.path("out/emission.csv").exists(), "nothing published");
}

#[test]
fn missing_fuel_column_is_an_error_unless_declared_absent() {
    let header: Vec<&str> = FUELS
        .iter()
        .copied()
        .filter(|f| *f != "kerosene_t")
        .collect();
    let s = emission_study(&energy_csv(&header, "1"), "");
    let run = s.run(&["run", "study.yaml"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("no column for fuel `kerosene`")
            && run.stderr.contains("absent_fuels: [kerosene]"),
        "{}",
        run.stderr
    );

    let s = emission_study(&energy_csv(&header, "1"), ", absent_fuels: [kerosene]");
    let run = s.run(&["run", "study.yaml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn an_unread_column_is_accepted_only_when_ignored_on_purpose() {
    let mut header = FUELS.to_vec();
    header.push("note");
    let s = emission_study(&energy_csv(&header, "7"), "");
    let run = s.run(&["run", "study.yaml"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("column `note`"), "{}", run.stderr);

    let s = emission_study(&energy_csv(&header, "7"), ", ignore_columns: [note]");
    let run = s.run(&["run", "study.yaml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn an_input_value_that_overflows_fails_the_stage_instead_of_publishing_infinity() {
    // 1e308 (10^4 m³) of natural gas is finite, but × 13.3 tce per 10^4 m³ it is not.
    let s = emission_study(&energy_csv(&FUELS, "1e308"), "");
    let run = s.run(&["run", "study.yaml"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    for part in [
        "stage `emission` failed: output `emission` column `emission_t_c`",
        "unit_id = `b`, year = 2000",
        "+infinity",
        "hint:",
    ] {
        assert!(run.stderr.contains(part), "{part} in {}", run.stderr);
    }
    assert!(!s.path("out/emission.csv").exists(), "nothing published");
}

/// `n` squares of 0.1° in a row, `gap` degrees apart, as GeoJSON features with `id`.
fn squares_geojson(n: usize, gap: f64) -> String {
    let features: Vec<String> = (0..n)
        .map(|i| {
            let x = 113.0 + i as f64 * (0.1 + gap);
            let (x1, y0, y1) = (x + 0.1, 34.0, 34.1);
            format!(
                r#"{{"type":"Feature","properties":{{"id":"u{i}"}},"geometry":{{"type":"Polygon","coordinates":[[[{x},{y0}],[{x1},{y0}],[{x1},{y1}],[{x},{y1}],[{x},{y0}]]]}}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"type":"FeatureCollection","features":[{}]}}"#,
        features.join(",")
    )
}

fn contiguity_study(params: &str, n: usize, gap: f64) -> Study {
    let s = Study::new();
    s.file("data/units.geojson", &squares_geojson(n, gap)).file(
        "study.yaml",
        &format!(
            "study: tolerance\nstages:\n  \
                 units: {{ kind: ingest, path: data/units.geojson, id_column: id }}\n  \
                 edges: {{ kind: contiguity, inputs: {{ units: units }}{params} }}\n"
        ),
    );
    s
}

#[test]
fn a_tolerance_wider_than_the_units_is_an_error_unless_allowed() {
    let s = contiguity_study(", tolerance_m: 1e12", 3, 0.0);
    let run = s.run(&["run", "study.yaml"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    // The squares' diagonal: 0.1·√2 degrees × 111,320 m per degree = 15,743 m.
    assert!(
        run.stderr.contains("`tolerance_m: 1000000000000`")
            && run.stderr.contains("median size, 15743 m")
            && run.stderr.contains("allow_large_tolerance"),
        "{}",
        run.stderr
    );
    let s = contiguity_study(", tolerance_m: 1e12, allow_large_tolerance: true", 3, 0.0);
    let run = s.run(&["run", "study.yaml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn per_unit_warnings_are_summarised_and_a_cached_rerun_does_not_replay_them() {
    // Six squares apart from each other: five links join them, one warning each.
    let s = contiguity_study(", islands: nearest", 6, 0.05);
    let run = s.run(&["run", "study.yaml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("island_linked"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(lines[0].starts_with("warning edges: 5 `island_linked` warnings (first: linked `u"));
    assert!(
        !run.stderr.contains("\nwarning edges: linked"),
        "{}",
        run.stderr
    );

    let rerun = s.run(&["run", "study.yaml"]);
    assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    let cached: Vec<&str> = rerun
        .stderr
        .lines()
        .filter(|l| l.contains("warning edges"))
        .collect();
    assert_eq!(cached.len(), 1, "{}", rerun.stderr);
    assert!(cached[0].ends_with("(cached)"), "{}", cached[0]);

    let explain = s.run(&["explain", "study.yaml", "edges"]);
    assert_eq!(explain.code, 0, "{}", explain.stderr);
    assert!(
        explain.stdout.contains("warnings (5):"),
        "{}",
        explain.stdout
    );
    assert_eq!(
        explain
            .stdout
            .matches("  [island_linked] linked `u")
            .count(),
        5,
        "{}",
        explain.stdout
    );
}
