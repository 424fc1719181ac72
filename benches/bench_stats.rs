//! Times the `inequality` and `autocorrelation` stages on a synthetic study of the size the
//! study size docs/performance.md targets: 3,000 units × 21 years, a hexagonal-style grid (6 neighbours inside), 999
//! permutations. Run: `cargo run --release --example bench_stats [units] [years]`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use pipeline::engine::stage::{Inputs, Stage, StageContext};
use pipeline::stages::autocorrelation::Autocorrelation;
use pipeline::stages::inequality::Inequality;
use pipeline::table::TableBuilder;
use support::cpu_seconds;

mod support;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let units = args.first().copied().unwrap_or(3_000);
    let years = args.get(1).copied().unwrap_or(21);
    let cols = 60;
    let rows = units.div_ceil(cols);
    let id = |r: usize, c: usize| format!("u{:05}", r * cols + c);
    let exists = |r: usize, c: usize| r * cols + c < units;

    let (mut from, mut to) = (Vec::new(), Vec::new());
    for r in 0..rows {
        for c in 0..cols {
            if !exists(r, c) {
                continue;
            }
            for (dr, dc) in [(0, 1), (1, 0), (1, 1)] {
                let (r2, c2) = (r + dr, c + dc);
                if c2 < cols && exists(r2, c2) {
                    from.push(id(r, c));
                    to.push(id(r2, c2));
                }
            }
        }
    }
    let (mut ids, mut year, mut ce, mut cs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for y in 0..years {
        for u in 0..units {
            let (r, c) = (u / cols, u % cols);
            let smooth = (r as f64 / 7.0).sin() + (c as f64 / 5.0).cos();
            let noise = ((u * 7919 + y * 104_729) % 1000) as f64 / 1000.0;
            ids.push(id(r, c));
            year.push(2000 + i64::try_from(y).unwrap());
            ce.push(100.0 * (2.0 + smooth) + 50.0 * noise);
            cs.push(10.0 + 40.0 * noise);
        }
    }
    let table = TableBuilder::new()
        .str("unit_id", &ids)
        .i64("year", year)
        .f64("ce_t_c", ce)
        .f64("cs_t_c", cs)
        .build()
        .unwrap();
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

    let ctx = StageContext::new("bench", Path::new("."), BTreeMap::new());
    let inputs = Inputs::new(BTreeMap::from([
        ("table".to_owned(), table),
        ("edges".to_owned(), edges),
    ]));

    let params: <Inequality as Stage>::Params =
        serde_json::from_value(serde_json::json!({ "by": "year" })).unwrap();
    let (t, c) = (Instant::now(), cpu_seconds());
    let out = Inequality::run(&params, &inputs, &ctx).unwrap();
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
    let out = Autocorrelation::run(&params, &inputs, &ctx).unwrap();
    println!(
        "autocorrelation: {:>8.1} ms wall, {:>6.2} s CPU ({} groups, {} local rows, 999 permutations)",
        t.elapsed().as_secs_f64() * 1e3,
        cpu_seconds() - c,
        out[0].1.num_rows(),
        out[1].1.num_rows()
    );

    // One year through the methods alone, to see where the time goes.
    let index: BTreeMap<&str, usize> = ids[..units]
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let pairs: Vec<(usize, usize)> = from
        .iter()
        .zip(&to)
        .map(|(a, b)| (index[a.as_str()], index[b.as_str()]))
        .collect();
    let w = pipeline::methods::weights::SpatialWeights::row_standardised(units, &pairs).unwrap();
    let x = pipeline::table::f64s(inputs.table("table").unwrap(), "t", "ce_t_c").unwrap();
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
