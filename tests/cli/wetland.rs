//! Wetland codes fold into water by default and become a seventh class with `wetland: class`,
//! so a preset's wetland coefficient applies; a preset without one stops the study with a hint.

use crate::common::Study;

/// CLCD codes of one unit: 100 ha wetland (9), 50 ha water (5), 10 ha forest (2).
const AREAS_CSV: &str = "unit_id,year,code,area_ha\na,2000,9,100\na,2000,5,50\na,2000,2,10\n";

fn sink_study(wetland: &str, preset: &str) -> Study {
    let s = Study::new();
    s.file("data/areas.csv", AREAS_CSV).file(
        "study.yaml",
        &format!(
            "study: wetland\noutputs: out\nstages:\n  \
             codes: {{ kind: ingest, path: data/areas.csv }}\n  \
             landuse: {{ kind: landuse, inputs: {{ areas: codes }}, scheme: clcd{wetland} }}\n  \
             sink: {{ kind: sink, inputs: {{ areas: landuse.areas }}, coefficients: {{ preset: {preset} }}, publish: [csv] }}\n"
        ),
    );
    s
}

/// `class → sink_t_c` of the published sink table.
fn sinks(s: &Study) -> Vec<(String, f64)> {
    let text = std::fs::read_to_string(s.path("out/sink.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let class = header.iter().position(|h| *h == "class").unwrap();
    let value = header.iter().position(|h| *h == "sink_t_c").unwrap();
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[class].to_owned(), f[value].parse().unwrap())
        })
        .collect()
}

fn sink_of(rows: &[(String, f64)], class: &str) -> Option<f64> {
    rows.iter().find(|(c, _)| c == class).map(|(_, v)| *v)
}

#[test]
fn wetland_folds_into_water_by_default_and_keeps_its_set2_coefficient_as_a_class() {
    // Default (`wetland: water`): water = 100 + 50 = 150 ha × 0.253 = 37.95 t C;
    // forest 10 ha × 0.644 = 6.44 t C; no wetland row.
    for wetland in ["", ", wetland: water"] {
        let s = sink_study(wetland, "set2");
        let run = s.run(&["run", "study.yaml"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let rows = sinks(&s);
        assert!(
            (sink_of(&rows, "water").unwrap() - 37.95).abs() < 1e-9,
            "{rows:?}"
        );
        assert!(
            (sink_of(&rows, "forest").unwrap() - 6.44).abs() < 1e-9,
            "{rows:?}"
        );
        assert_eq!(sink_of(&rows, "wetland"), None, "{rows:?}");
    }
    // `wetland: class`: water 50 ha × 0.253 = 12.65 t C; wetland 100 ha × 0.567 = 56.7 t C
    // (set2's wetland coefficient); forest unchanged at 6.44 t C.
    let s = sink_study(", wetland: class", "set2");
    let run = s.run(&["run", "study.yaml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows = sinks(&s);
    assert!(
        (sink_of(&rows, "water").unwrap() - 12.65).abs() < 1e-9,
        "{rows:?}"
    );
    assert!(
        (sink_of(&rows, "wetland").unwrap() - 56.7).abs() < 1e-9,
        "{rows:?}"
    );
    assert!(
        (sink_of(&rows, "forest").unwrap() - 6.44).abs() < 1e-9,
        "{rows:?}"
    );
}

#[test]
fn wetland_class_with_a_preset_lacking_wetland_is_an_error_with_the_fix() {
    let s = sink_study(", wetland: class", "set1");
    let run = s.run(&["run", "study.yaml"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    for part in [
        "class `wetland` (unit `a`, year 2000) has no coefficient in preset `set1`",
        "hint:",
        "`wetland: water`",
        "override: { wetland:",
    ] {
        assert!(run.stderr.contains(part), "{part} in {}", run.stderr);
    }
    assert!(!s.path("out/sink.csv").exists(), "nothing published");
}
