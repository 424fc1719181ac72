//! The small study the every-kind test runs each kind on: four 0.5° squares in a 2 × 2 block,
//! two years, and the tables the carbon kinds derive from them. A kind's
//! `declaration_examples` takes its inputs from here, so the examples chain as a study does.

use std::sync::Arc;

use arrow_array::{BinaryArray, RecordBatch};
use geo::polygon;
use serde_json::json;

use crate::stages::testing::run;
use crate::stages::{contiguity, emission, indices, landuse, sink};
use crate::table::TableBuilder;

pub(crate) const UNITS: [&str; 4] = ["a", "b", "c", "d"];

/// The four squares as WKB polygons.
pub(crate) fn units() -> RecordBatch {
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
pub(crate) fn areas() -> RecordBatch {
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

/// GDP, population and the functional-area covariates per unit and year.
pub(crate) fn economy() -> RecordBatch {
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

/// Two conversions between the years.
pub(crate) fn transitions() -> RecordBatch {
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

/// An urban/rural category per unit.
pub(crate) fn categories() -> RecordBatch {
    TableBuilder::new()
        .str("unit_id", &UNITS)
        .str("category", &["urban", "urban", "rural", "rural"])
        .build()
        .unwrap()
}

fn first(outputs: crate::stages::testing::Ran, n: usize) -> RecordBatch {
    outputs.0[n].1.clone()
}

/// `landuse`'s `areas` from the area table.
pub(crate) fn land_areas() -> RecordBatch {
    first(
        run::<landuse::LandUse>(json!({}), vec![("areas", areas())]).unwrap(),
        0,
    )
}

/// `emission`'s table (no construction-land energy).
pub(crate) fn emission() -> RecordBatch {
    let params = json!({"construction": "none"});
    first(
        run::<emission::Emission>(params, vec![("areas", land_areas())]).unwrap(),
        0,
    )
}

/// `sink`'s table.
pub(crate) fn sink() -> RecordBatch {
    first(
        run::<sink::Sink>(json!({}), vec![("areas", land_areas())]).unwrap(),
        0,
    )
}

/// `indices`' per-year table and its means over the years.
pub(crate) fn indices() -> (RecordBatch, RecordBatch) {
    let tables = vec![
        ("emission", emission()),
        ("sink", sink()),
        ("economy", economy()),
    ];
    let ran = run::<indices::Indices>(json!({}), tables).unwrap();
    (ran.0[0].1.clone(), ran.0[1].1.clone())
}

/// The queen-contiguity edges of the four squares.
pub(crate) fn edges() -> RecordBatch {
    first(
        run::<contiguity::Contiguity>(json!({}), vec![("units", units())]).unwrap(),
        0,
    )
}
