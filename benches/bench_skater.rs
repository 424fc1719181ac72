//! Benchmark: SKATER with k = 10 on synthetic rook grids with 5 spatially smooth attributes,
//! and queen contiguity of a grid of ~2,900 polygons with ~100 vertices each.
//!
//! Run: `cargo run --release --example bench_skater -- [--write DIR] [SIDE ...]`
//! (peak memory is printed per grid before the contiguity part runs). REDCAP labels go to
//! `grid_SIDE_redcap_labels.csv`.
//! (default sides 100 173 316, i.e. 10,000, 29,929 and 99,856 cells). With `--write DIR` it
//! also writes, per grid, the attributes (`grid_SIDE.csv`), the rook weights as a GAL file
//! (`grid_SIDE.gal`, ids 1..n) and its labels (`grid_SIDE_labels.csv`), so that pygeoda can be
//! timed on the same input and its partition compared (see docs/performance-cluster.md).

use std::fmt::Write as _;
use std::time::Instant;

use geo::{Coord, LineString, MultiPolygon, Polygon};
use pipeline::methods::contiguity::{ContiguityRule, polygon_contiguity};
use pipeline::methods::pseudo_f::{standardize, sums_of_squares};
use pipeline::methods::redcap::redcap;
use pipeline::methods::skater::skater;
use support::{Noise, cpu_seconds, peak_rss_mib};

mod support;

const VARS: usize = 5;
const K: usize = 10;

/// Row-major attributes of a `side × side` grid and its rook edges.
fn grid(side: usize) -> (Vec<f64>, Vec<(usize, usize)>) {
    let mut rng = Noise::new(42);
    let mut data = Vec::with_capacity(side * side * VARS);
    let s = side as f64;
    for r in 0..side {
        for c in 0..side {
            let (x, y) = (c as f64 / s, r as f64 / s);
            let tau = std::f64::consts::TAU;
            let v = [
                (tau * 1.3 * x).sin() + (tau * 0.7 * y).cos(),
                x * x + 0.5 * y,
                (3.0 * x + 2.0 * y).sin() * (x - y).cos(),
                (-((x - 0.3).powi(2) + (y - 0.6).powi(2)) / 0.1).exp(),
                x * y + 0.2 * (5.0 * y).sin(),
            ];
            for value in v {
                data.push(value + 0.01 * (2.0 * rng.unit() - 1.0));
            }
        }
    }
    let mut edges = Vec::with_capacity(2 * side * side);
    for r in 0..side {
        for c in 0..side {
            let i = r * side + c;
            if c + 1 < side {
                edges.push((i, i + 1));
            }
            if r + 1 < side {
                edges.push((i, i + side));
            }
        }
    }
    (data, edges)
}

fn write_inputs(
    dir: &str,
    side: usize,
    raw: &[f64],
    edges: &[(usize, usize)],
    labels: &[usize],
) -> std::io::Result<()> {
    let n = side * side;
    let mut csv = String::from("id,v1,v2,v3,v4,v5\n");
    for i in 0..n {
        let _ = write!(csv, "{}", i + 1);
        for j in 0..VARS {
            let _ = write!(csv, ",{:?}", raw[i * VARS + j]);
        }
        csv.push('\n');
    }
    std::fs::write(format!("{dir}/grid_{side}.csv"), csv)?;
    let mut nbrs = vec![Vec::new(); n];
    for &(a, b) in edges {
        nbrs[a].push(b + 1);
        nbrs[b].push(a + 1);
    }
    let mut gal = format!("0 {n} grid id\n");
    for (i, list) in nbrs.iter_mut().enumerate() {
        list.sort_unstable();
        let _ = writeln!(gal, "{} {}", i + 1, list.len());
        let line: Vec<String> = list.iter().map(ToString::to_string).collect();
        let _ = writeln!(gal, "{}", line.join(" "));
    }
    std::fs::write(format!("{dir}/grid_{side}.gal"), gal)?;
    let labels: String = labels.iter().map(|l| format!("{}\n", l + 1)).collect();
    std::fs::write(format!("{dir}/grid_{side}_labels.csv"), labels)
}

/// A square with `per_side` vertices on each side (so neighbours share all their vertices).
fn dense_square(x0: f64, y0: f64, per_side: usize) -> MultiPolygon<f64> {
    let step = 1.0 / per_side as f64;
    let mut pts = Vec::with_capacity(4 * per_side + 1);
    for (dx, dy, ox, oy) in [
        (1.0, 0.0, 0.0, 0.0),
        (0.0, 1.0, 1.0, 0.0),
        (-1.0, 0.0, 1.0, 1.0),
        (0.0, -1.0, 0.0, 1.0),
    ] {
        for i in 0..per_side {
            let t = i as f64 * step;
            pts.push(Coord {
                x: (x0 + ox + dx * t) * 0.01,
                y: (y0 + oy + dy * t) * 0.01 + 30.0,
            });
        }
    }
    pts.push(pts[0]);
    MultiPolygon(vec![Polygon::new(LineString(pts), Vec::new())])
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut write_dir = None;
    let mut sides = Vec::new();
    while let Some(a) = args.next() {
        if a == "--write" {
            write_dir = args.next();
        } else {
            sides.push(a.parse::<usize>().expect("sides are integers"));
        }
    }
    if sides.is_empty() {
        sides = vec![100, 173, 316];
    }
    let grids = time_skater(&sides, write_dir.as_deref());
    time_redcap(grids, write_dir.as_deref());
    time_contiguity();
}

/// A grid's standardised attributes and rook edges, as SKATER had them.
struct Grid {
    side: usize,
    data: Vec<f64>,
    edges: Vec<(usize, usize)>,
}

/// SKATER on each grid; with `write_dir`, also its inputs and labels for pygeoda.
fn time_skater(sides: &[usize], write_dir: Option<&str>) -> Vec<Grid> {
    println!("SKATER, k = 10:");
    println!("cells,edges,wall_seconds,cpu_seconds,within_ss,total_ss,peak_rss_mib");
    let mut grids = Vec::new();
    for &side in sides {
        let (raw, edges) = grid(side);
        let (t, c) = (Instant::now(), cpu_seconds());
        let mut data = raw.clone();
        standardize(&mut data, VARS);
        let splits = skater(&data, VARS, &edges, K, None);
        let labels = splits.labels(K);
        let (secs, cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - c);
        let ss = sums_of_squares(&data, VARS, &labels, K);
        println!(
            "{},{},{secs:.3},{cpu:.2},{:.6},{:.6},{:.1}",
            side * side,
            edges.len(),
            ss.within_total,
            ss.total,
            peak_rss_mib()
        );
        if let Some(dir) = write_dir {
            write_inputs(dir, side, &raw, &edges, &labels).expect("writing the benchmark inputs");
        }
        grids.push(Grid { side, data, edges });
    }
    grids
}

/// REDCAP on the grids SKATER ran on; with `write_dir`, also its labels.
fn time_redcap(grids: Vec<Grid>, write_dir: Option<&str>) {
    println!("REDCAP (full-order average linkage), k = 10:");
    println!("cells,wall_seconds,cpu_seconds,within_ss");
    for Grid { side, data, edges } in grids {
        let (t, c) = (Instant::now(), cpu_seconds());
        let labels = redcap(&data, VARS, &edges, K, None).labels(K);
        let (secs, cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - c);
        let ss = sums_of_squares(&data, VARS, &labels, K);
        println!("{},{secs:.3},{cpu:.2},{:.6}", side * side, ss.within_total);
        if let Some(dir) = write_dir {
            let text: String = labels.iter().map(|l| format!("{}\n", l + 1)).collect();
            std::fs::write(format!("{dir}/grid_{side}_redcap_labels.csv"), text)
                .expect("writing the REDCAP labels");
        }
    }
}

/// Queen and rook contiguity of 54 × 54 = 2,916 squares of 100 vertices each.
fn time_contiguity() {
    let units: Vec<MultiPolygon<f64>> = (0..54 * 54)
        .map(|i| {
            let (x, y) = ((i % 54) as f64, (i / 54) as f64);
            dense_square(x, y, 25)
        })
        .collect();
    let (t, c) = (Instant::now(), cpu_seconds());
    let queen = polygon_contiguity(&units, ContiguityRule::Queen, 1e-7);
    let (queen_s, queen_cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - c);
    let (t, c) = (Instant::now(), cpu_seconds());
    let rook = polygon_contiguity(&units, ContiguityRule::Rook, 1e-7);
    let (rook_s, rook_cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - c);
    println!(
        "contiguity, 2916 polygons x 100 vertices: queen {} edges in {queen_s:.3} s wall / {queen_cpu:.2} s CPU, rook {} edges in {rook_s:.3} s wall / {rook_cpu:.2} s CPU",
        queen.len(),
        rook.len()
    );
}
