//! Checks over every kind in [`BUILTIN`]: the defaults `pipeline stages` documents are the ones
//! the code uses, and each kind, run on a small study, writes the tables it declares.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{BinaryArray, RecordBatch};
use geo::polygon;
use serde_json::{Value, json};

use super::BUILTIN;
use crate::engine::stage::{Outputs, StageEntry};
use crate::stages::testing;
use crate::table::TableBuilder;

/// Kinds that give no example of their required parameters yet, so `pipeline stages`
/// shows their written defaults unchecked.
const WRITTEN_DEFAULTS_ONLY: [&str; 1] = ["sweep"];

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

fn entry(kind: &str) -> &'static dyn StageEntry {
    *BUILTIN
        .iter()
        .find(|e| e.kind() == kind)
        .unwrap_or_else(|| panic!("no kind `{kind}`"))
}

/// A small study: four 0.5° squares in a 2 × 2 block, two years.
struct Study {
    dir: tempfile::TempDir,
    ran: BTreeSet<&'static str>,
}

impl Study {
    /// Runs `kind` through the harness, which fails unless it writes what it declares.
    fn run(
        &mut self,
        kind: &'static str,
        params: Value,
        tables: Vec<(&str, RecordBatch)>,
    ) -> Outputs {
        let (outputs, _) = testing::run_entry(entry(kind), self.dir.path(), params, tables)
            .unwrap_or_else(|e| panic!("kind `{kind}`: {e:?}"));
        self.ran.insert(kind);
        outputs
    }
}

const UNITS: [&str; 4] = ["a", "b", "c", "d"];

fn units() -> RecordBatch {
    let wkb: Vec<Vec<u8>> = [(113.0, 34.5), (113.5, 34.5), (113.0, 34.0), (113.5, 34.0)]
        .into_iter()
        .map(|(x, y)| {
            let p = polygon![(x: x, y: y), (x: x + 0.5, y: y), (x: x + 0.5, y: y + 0.5), (x: x, y: y + 0.5), (x: x, y: y)];
            crate::io::wkb::encode(&geo::MultiPolygon(vec![p]))
        })
        .collect();
    TableBuilder::new()
        .str("unit_id", &UNITS)
        .array(
            "geometry",
            Arc::new(BinaryArray::from_iter_values(wkb.iter())),
        )
        .build()
        .unwrap()
}

/// One row per unit, year and class; the areas differ by unit so the indices differ.
fn areas() -> RecordBatch {
    let classes = ["cultivated", "forest", "construction", "water"];
    let (mut u, mut y, mut c, mut a) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, unit) in UNITS.iter().enumerate() {
        for year in [2000, 2005] {
            for (j, class) in classes.iter().enumerate() {
                u.push(*unit);
                y.push(year);
                c.push(*class);
                #[allow(clippy::cast_precision_loss)]
                a.push(
                    100.0 * (1 + (i * 3 + j * 5) % 7) as f64
                        + f64::from(u8::try_from(year - 2000).unwrap()),
                );
            }
        }
    }
    TableBuilder::new()
        .str("unit_id", &u)
        .i64("year", y)
        .str("class", &c)
        .f64("area_ha", a)
        .build()
        .unwrap()
}

fn economy() -> RecordBatch {
    let (mut u, mut y) = (Vec::new(), Vec::new());
    for unit in UNITS {
        for year in [2000, 2005] {
            u.push(unit);
            y.push(year);
        }
    }
    let n = u.len();
    #[allow(clippy::cast_precision_loss)]
    let gdp: Vec<f64> = (0..n).map(|i| 1000.0 + 250.0 * i as f64).collect();
    #[allow(clippy::cast_precision_loss)]
    let population: Vec<f64> = (0..n).map(|i| 500_000.0 + 10_000.0 * i as f64).collect();
    TableBuilder::new()
        .str("unit_id", &u)
        .i64("year", y)
        .f64("gdp_10k_yuan", gdp)
        .f64("population", population)
        .f64("engel_urban", vec![0.3; n])
        .f64("engel_rural", vec![0.4; n])
        .f64("urbanization_rate", vec![0.5; n])
        .f64("gdp_per_capita", vec![3.0; n])
        .build()
        .unwrap()
}

fn transitions() -> RecordBatch {
    TableBuilder::new()
        .str("unit_id", &["a", "b"])
        .i64("year_from", vec![2000; 2])
        .i64("year_to", vec![2005; 2])
        .str("class_from", &["cultivated", "forest"])
        .str("class_to", &["construction", "cultivated"])
        .f64("area_ha", vec![20.0, 10.0])
        .build()
        .unwrap()
}

/// Every kind in [`BUILTIN`], run on the small study, writes exactly the tables and columns
/// it declares (the harness asserts it on each run).
#[test]
fn every_kind_writes_the_tables_it_declares() {
    let mut s = Study {
        dir: tempfile::tempdir().unwrap(),
        ran: BTreeSet::new(),
    };
    std::fs::write(
        s.dir.path().join("economy.csv"),
        "unit_id,year,gdp_10k_yuan\na,2000,1.5\n",
    )
    .unwrap();
    s.run("ingest", json!({"path": "economy.csv"}), vec![]);
    s.run(
        "command",
        json!({"run": "cp \"$PIPELINE_INPUT_UNITS\" \"$PIPELINE_OUTPUT_TABLE\"", "ports": ["units"]}),
        vec![("units", units())],
    );
    let land = s.run("landuse", json!({}), vec![("areas", areas())]);
    let areas = land[0].1.clone();
    let emission = s.run(
        "emission",
        json!({"construction": "none"}),
        vec![("areas", areas.clone())],
    );
    let sink = s.run("sink", json!({}), vec![("areas", areas)]);
    s.run(
        "transition_carbon",
        json!({}),
        vec![("transitions", transitions())],
    );
    let ix = s.run(
        "indices",
        json!({}),
        vec![
            ("emission", emission[0].1.clone()),
            ("sink", sink[0].1.clone()),
            ("economy", economy()),
        ],
    );
    let (indices, means) = (ix[0].1.clone(), ix[1].1.clone());
    s.run(
        "inequality",
        json!({"by": "year", "indices": ["gini", "theil"]}),
        vec![("table", indices.clone())],
    );
    let edges = s.run("contiguity", json!({}), vec![("units", units())])[0]
        .1
        .clone();
    for hotspots in [false, true] {
        s.run(
            "autocorrelation",
            json!({"variable": "nce_t_c", "permutations": 99, "hotspots": hotspots}),
            vec![("table", means.clone()), ("edges", edges.clone())],
        );
    }
    s.run(
        "cluster",
        json!({"variables": ["ecc", "esc"], "k": 2, "min_size": 1}),
        vec![("table", means.clone()), ("edges", edges)],
    );
    s.run(
        "zoning",
        json!({"default": "other"}),
        vec![("table", means)],
    );
    for money_unit in ["yuan", "10k_yuan"] {
        s.run(
            "compensation",
            json!({"price": {"unit": "yuan_per_t_c", "value": 100.0}, "money_unit": money_unit}),
            vec![("indices", indices.clone()), ("economy", economy())],
        );
    }
    let categories = TableBuilder::new()
        .str("unit_id", &UNITS)
        .str("category", &["urban", "urban", "rural", "rural"])
        .build()
        .unwrap();
    s.run(
        "functional_areas",
        json!({}),
        vec![("indices", indices.clone()), ("categories", categories)],
    );
    s.run(
        "report",
        json!({}),
        vec![("units", units()), ("indices", indices)],
    );

    // A sweep is expanded by the engine when it plans the study, which writes its tables;
    // the kind itself only refuses to run alone.
    let unrun: Vec<&str> = BUILTIN
        .iter()
        .map(|e| e.kind())
        .filter(|k| !s.ran.contains(k) && *k != "sweep")
        .collect();
    assert!(unrun.is_empty(), "kinds not run here: {unrun:?}");
    assert!(Path::new(s.dir.path()).is_dir());
}

/// Every file directly in `src/stages/` but the harness and the shared declarations is one kind
/// of `BUILTIN`, named after it; what several kinds use lives in `stages/shared/`.
#[test]
fn every_file_of_the_stages_folder_is_one_kind() {
    const NOT_KINDS: [&str; 5] = ["mod", "schema", "testing", "tests", "presets"];
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
