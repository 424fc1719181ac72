//! Times the `inequality` and `autocorrelation` stages on a synthetic study of the size the
//! study size docs/performance.md targets: 3,000 units × 21 years, a hexagonal-style grid (6 neighbours inside), 999
//! permutations. Run: `cargo run --release --example bench_stats [units] [years]`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use arrow_array::RecordBatch;
use pipeline::engine::stage::{Inputs, Stage, StageContext};
use pipeline::stages::autocorrelation::Autocorrelation;
use pipeline::stages::inequality::Inequality;
use pipeline::table::TableBuilder;
use support::cpu_seconds;

mod support;

/// Units sit on a grid this many columns wide.
const COLS: usize = 60;

fn unit_id(r: usize, c: usize) -> String {
    format!("u{:05}", r * COLS + c)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let units = args.first().copied().unwrap_or(3_000);
    let years = args.get(1).copied().unwrap_or(21);
    let (from, to) = grid_edges(units);
    let edges = TableBuilder::new()
        .str("from", &from)
        .str("to", &to)
        .build()
        .unwrap();
    println!(
        "{units} units × {years} years, {} edges, {} threads",
        from.len(),
        rayon::current_num_threads()
    );
    let inputs = Inputs::new(BTreeMap::from([
        ("table".to_owned(), panel(units, years)),
        ("edges".to_owned(), edges),
    ]));
    time_stages(&inputs);
    time_one_year(&inputs, units, &from, &to);
}

/// Each unit's edges to its right, lower and lower-right neighbours that exist.
fn grid_edges(units: usize) -> (Vec<String>, Vec<String>) {
    let exists = |r: usize, c: usize| r * COLS + c < units;
    let (mut from, mut to) = (Vec::new(), Vec::new());
    for r in 0..units.div_ceil(COLS) {
        for c in (0..COLS).filter(|&c| exists(r, c)) {
            for (dr, dc) in [(0, 1), (1, 0), (1, 1)] {
                let (r2, c2) = (r + dr, c + dc);
                if c2 < COLS && exists(r2, c2) {
                    from.push(unit_id(r, c));
                    to.push(unit_id(r2, c2));
                }
            }
        }
    }
    (from, to)
}

/// Emission and sink per unit and year: a smooth spatial pattern plus deterministic noise.
fn panel(units: usize, years: usize) -> RecordBatch {
    let (mut ids, mut year, mut ce, mut cs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for y in 0..years {
        for u in 0..units {
            let (r, c) = (u / COLS, u % COLS);
            let smooth = (r as f64 / 7.0).sin() + (c as f64 / 5.0).cos();
            let noise = ((u * 7919 + y * 104_729) % 1000) as f64 / 1000.0;
            ids.push(unit_id(r, c));
            year.push(2000 + i64::try_from(y).unwrap());
            ce.push(100.0 * (2.0 + smooth) + 50.0 * noise);
            cs.push(10.0 + 40.0 * noise);
        }
    }
    TableBuilder::new()
        .str("unit_id", &ids)
        .i64("year", year)
        .f64("ce_t_c", ce)
        .f64("cs_t_c", cs)
        .build()
        .unwrap()
}

/// Both stages over every year.
fn time_stages(inputs: &Inputs) {
    let ctx = StageContext::new("bench", Path::new("."), BTreeMap::new());
    let params: <Inequality as Stage>::Params =
        serde_json::from_value(serde_json::json!({ "by": "year" })).unwrap();
    let (t, c) = (Instant::now(), cpu_seconds());
    let out = Inequality::run(&params, inputs, &ctx).unwrap();
    println!(
        "inequality:      {:>8.1} ms wall, {:>6.2} s CPU ({} groups, {} Lorenz points)",
        t.elapsed().as_secs_f64() * 1e3,
        cpu_seconds() - c,
        out[0].1.num_rows(),
        out[1].1.num_rows()
    );

    let params: <Autocorrelation as Stage>::Params =
        serde_json::from_value(serde_json::json!({ "variable": "ce_t_c", "by": "year" })).unwrap();
    let (t, c) = (Instant::now(), cpu_seconds());
    let out = Autocorrelation::run(&params, inputs, &ctx).unwrap();
    println!(
        "autocorrelation: {:>8.1} ms wall, {:>6.2} s CPU ({} groups, {} local rows, 999 permutations)",
        t.elapsed().as_secs_f64() * 1e3,
        cpu_seconds() - c,
        out[0].1.num_rows(),
        out[1].1.num_rows()
    );
}

/// One year through the methods alone, to see where the time goes.
fn time_one_year(inputs: &Inputs, units: usize, from: &[String], to: &[String]) {
    let table = inputs.table("table").unwrap();
    let ids = pipeline::table::strings(table, "t", "unit_id").unwrap();
    let index: BTreeMap<&str, usize> = ids[..units]
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let pairs: Vec<(usize, usize)> = from
        .iter()
        .zip(to)
        .map(|(a, b)| (index[a.as_str()], index[b.as_str()]))
        .collect();
    let w = pipeline::methods::weights::SpatialWeights::row_standardised(units, &pairs).unwrap();
    let x = pipeline::table::f64s(table, "t", "ce_t_c").unwrap();
    let x = &x[..units];
    let t = Instant::now();
    let g = pipeline::methods::moran::global_moran(x, &w, 999, 1).unwrap();
    println!(
        "one year, global Moran + 999 permutations: {:>7.1} ms (I = {:.4})",
        t.elapsed().as_secs_f64() * 1e3,
        g.moran_i
    );
    let t = Instant::now();
    let l = pipeline::methods::moran::local_moran(x, &w, 999, 1).unwrap();
    println!(
        "one year, local Moran + 999 permutations:  {:>7.1} ms ({} units)",
        t.elapsed().as_secs_f64() * 1e3,
        l.ii.len()
    );
}
