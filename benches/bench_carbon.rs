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
use support::{Noise, prepare};

mod support;

const UNITS: usize = 3000;
const YEARS: i64 = 21;
const RUNS: usize = 7;

fn unit(i: usize) -> String {
    format!("U{i:05}")
}

fn tables() -> BTreeMap<&'static str, RecordBatch> {
    let mut rng = Noise::new(42);
    let classes = [
        "construction",
        "cultivated",
        "forest",
        "grassland",
        "unused",
        "water",
    ];
    let (mut u, mut y, mut c, mut a) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut eu, mut ey) = (Vec::new(), Vec::new());
    let mut fuels: Vec<Vec<f64>> = vec![Vec::new(); 9];
    let (mut gdp, mut pop, mut eng_u, mut eng_r, mut urb) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut cu, mut cy, mut cc, mut cv) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..UNITS {
        for year in 2000..2000 + YEARS {
            for class in classes {
                u.push(unit(i));
                y.push(year);
                c.push(class);
                a.push(1000.0 + 50_000.0 * rng.unit());
            }
            eu.push(unit(i));
            ey.push(year);
            for f in &mut fuels {
                f.push(10_000.0 * rng.unit());
            }
            gdp.push(1e5 + 1e6 * rng.unit());
            pop.push(10.0 + 100.0 * rng.unit());
            eng_u.push(0.25 + 0.2 * rng.unit());
            eng_r.push(0.3 + 0.2 * rng.unit());
            urb.push(0.2 + 0.6 * rng.unit());
            for crop in ["maize", "rice", "wheat"] {
                cu.push(unit(i));
                cy.push(year);
                cc.push(crop);
                cv.push(1e5 * rng.unit());
            }
        }
    }
    let areas = TableBuilder::new()
        .str("unit_id", &u)
        .i64("year", y)
        .str("class", &c)
        .f64("area_ha", a)
        .build()
        .unwrap();
    let names = [
        "raw_coal",
        "coke",
        "crude_oil",
        "gasoline",
        "kerosene",
        "diesel",
        "fuel_oil",
        "natural_gas",
        "electricity",
    ];
    let mut energy = TableBuilder::new()
        .str("unit_id", &eu)
        .i64("year", ey.clone());
    for (n, v) in names.iter().zip(fuels) {
        energy = energy.f64(n, v);
    }
    let economy = TableBuilder::new()
        .str("unit_id", &eu)
        .i64("year", ey.clone())
        .f64("gdp_10k_yuan", gdp)
        .f64("population", pop)
        .f64("engel_urban", eng_u)
        .f64("engel_rural", eng_r)
        .f64("urbanization_rate", urb)
        .build()
        .unwrap();
    let crops = TableBuilder::new()
        .str("unit_id", &cu)
        .i64("year", cy)
        .str("crop", &cc)
        .f64("yield_t", cv)
        .build()
        .unwrap();
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
    let categories = TableBuilder::new()
        .str("unit_id", &ids)
        .str("category", &cats)
        .build()
        .unwrap();
    BTreeMap::from([
        ("areas", areas),
        ("energy", energy.build().unwrap()),
        ("economy", economy),
        ("crops", crops),
        ("categories", categories),
    ])
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
