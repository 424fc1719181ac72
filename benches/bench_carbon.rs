//! Timing of the carbon-budget stages on a synthetic study of 3,000 units × 21 years.
//!
//! Run: `cargo run --release --example bench_carbon`. Prints the time of each stage, best and
//! median of several runs. No assertions on time.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use pipeline::engine::stage::{Inputs, Outputs, PreparedStage, StageContext};
use pipeline::stages::{compensation, emission, functional_areas, indices, sink};
use pipeline::table::TableBuilder;
use support::{CLASSES, FUELS, Noise, prepare};

mod support;

const UNITS: usize = 3000;
const YEARS: i64 = 21;
const RUNS: usize = 7;

fn unit(i: usize) -> String {
    format!("U{i:05}")
}

const CROPS: [&str; 3] = ["maize", "rice", "wheat"];

/// The synthetic input tables of the carbon stages.
fn tables() -> BTreeMap<&'static str, RecordBatch> {
    let mut tables = Columns::draw().into_tables();
    tables.insert("categories", categories());
    tables
}

/// The input tables' columns. They are drawn unit-year by unit-year from one seeded stream,
/// whose order fixes every value.
#[derive(Default)]
struct Columns {
    area_unit: Vec<String>,
    area_year: Vec<i64>,
    area_class: Vec<&'static str>,
    area_ha: Vec<f64>,
    unit: Vec<String>,
    year: Vec<i64>,
    fuels: [Vec<f64>; FUELS.len()],
    gdp: Vec<f64>,
    population: Vec<f64>,
    engel_urban: Vec<f64>,
    engel_rural: Vec<f64>,
    urbanization: Vec<f64>,
    crop_unit: Vec<String>,
    crop_year: Vec<i64>,
    crop: Vec<&'static str>,
    yield_t: Vec<f64>,
}

impl Columns {
    fn draw() -> Self {
        let mut rng = Noise::new(42);
        let mut c = Self::default();
        for i in 0..UNITS {
            for year in 2000..2000 + YEARS {
                for class in CLASSES {
                    c.area_unit.push(unit(i));
                    c.area_year.push(year);
                    c.area_class.push(class);
                    c.area_ha.push(1000.0 + 50_000.0 * rng.unit());
                }
                c.unit.push(unit(i));
                c.year.push(year);
                for f in &mut c.fuels {
                    f.push(10_000.0 * rng.unit());
                }
                c.gdp.push(1e5 + 1e6 * rng.unit());
                c.population.push(10.0 + 100.0 * rng.unit());
                c.engel_urban.push(0.25 + 0.2 * rng.unit());
                c.engel_rural.push(0.3 + 0.2 * rng.unit());
                c.urbanization.push(0.2 + 0.6 * rng.unit());
                for crop in CROPS {
                    c.crop_unit.push(unit(i));
                    c.crop_year.push(year);
                    c.crop.push(crop);
                    c.yield_t.push(1e5 * rng.unit());
                }
            }
        }
        c
    }

    fn into_tables(self) -> BTreeMap<&'static str, RecordBatch> {
        let areas = TableBuilder::new()
            .str("unit_id", &self.area_unit)
            .i64("year", self.area_year)
            .str("class", &self.area_class)
            .f64("area_ha", self.area_ha);
        let mut energy = TableBuilder::new()
            .str("unit_id", &self.unit)
            .i64("year", self.year.clone());
        for (n, v) in FUELS.iter().zip(self.fuels) {
            energy = energy.f64(n, v);
        }
        let economy = TableBuilder::new()
            .str("unit_id", &self.unit)
            .i64("year", self.year)
            .f64("gdp_10k_yuan", self.gdp)
            .f64("population", self.population)
            .f64("engel_urban", self.engel_urban)
            .f64("engel_rural", self.engel_rural)
            .f64("urbanization_rate", self.urbanization);
        let crops = TableBuilder::new()
            .str("unit_id", &self.crop_unit)
            .i64("year", self.crop_year)
            .str("crop", &self.crop)
            .f64("yield_t", self.yield_t);
        [
            ("areas", areas),
            ("energy", energy),
            ("economy", economy),
            ("crops", crops),
        ]
        .into_iter()
        .map(|(name, table)| (name, table.build().unwrap()))
        .collect()
    }
}

/// Main-functional-area categories, in turn.
fn categories() -> RecordBatch {
    let ids: Vec<String> = (0..UNITS).map(unit).collect();
    let cats: Vec<&str> = (0..UNITS)
        .map(|i| {
            [
                "national_dev",
                "provincial_dev",
                "agricultural",
                "provincial_eco",
                "national_eco",
            ][i % 5]
        })
        .collect();
    TableBuilder::new()
        .str("unit_id", &ids)
        .str("category", &cats)
        .build()
        .unwrap()
}

fn time(
    name: &str,
    stage: &dyn PreparedStage,
    inputs: Vec<(&str, RecordBatch)>,
    total: &mut Duration,
) -> Outputs {
    let inputs = Inputs::new(inputs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
    let mut times = Vec::new();
    let mut out = None;
    for _ in 0..RUNS {
        let ctx = StageContext::new(name, Path::new("."), BTreeMap::new());
        let t = Instant::now();
        out = Some(stage.run(&inputs, &ctx).unwrap());
        times.push(t.elapsed());
    }
    times.sort();
    let rows: usize = out
        .as_ref()
        .unwrap()
        .iter()
        .map(|(_, b)| b.num_rows())
        .sum();
    println!(
        "{name:<18} best {:>8.1} ms   median {:>8.1} ms   ({rows} output rows)",
        ms(times[0]),
        ms(times[RUNS / 2])
    );
    *total += times[RUNS / 2];
    out.unwrap()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let t = tables();
    println!(
        "synthetic study: {UNITS} units × {YEARS} years; areas {} rows, crops {} rows",
        t["areas"].num_rows(),
        t["crops"].num_rows()
    );
    let mut total = Duration::ZERO;
    let e = time(
        "emission",
        &*prepare::<emission::Emission>(serde_json::json!({})),
        vec![
            ("areas", t["areas"].clone()),
            ("energy", t["energy"].clone()),
        ],
        &mut total,
    );
    let s = time(
        "sink",
        &*prepare::<sink::Sink>(serde_json::json!({"cultivated_sink": "crop_yield"})),
        vec![("areas", t["areas"].clone()), ("crops", t["crops"].clone())],
        &mut total,
    );
    let ix = time(
        "indices",
        &*prepare::<indices::Indices>(serde_json::json!({})),
        vec![
            ("emission", e[0].1.clone()),
            ("sink", s[0].1.clone()),
            ("economy", t["economy"].clone()),
        ],
        &mut total,
    );
    time(
        "compensation",
        &*prepare::<compensation::Compensation>(
            serde_json::json!({"price": {"unit": "yuan_per_t_c", "value": 260.9}}),
        ),
        vec![
            ("indices", ix[0].1.clone()),
            ("economy", t["economy"].clone()),
        ],
        &mut total,
    );
    time(
        "functional_areas",
        &*prepare::<functional_areas::FunctionalAreas>(serde_json::json!({})),
        vec![
            ("indices", ix[0].1.clone()),
            ("categories", t["categories"].clone()),
        ],
        &mut total,
    );
    println!("all five stages (sum of medians): {:.1} ms", ms(total));
}
