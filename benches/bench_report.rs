//! Renders the report of a national study, 2,850 county-level units × 38 years, on the real
//! county boundaries with synthetic values, and prints the page's size and the render's wall
//! and CPU time on the threads given by `RAYON_NUM_THREADS` (default: every core).
//! Run: `cargo run --release --example bench_report [boundaries.geojson] [years] [out.html]`
//! (defaults: pipelines/data/boundaries/china_counties.geojson, 38 years,
//! target/bench_report/report.html). Open the page in headless Chromium to time its drawing
//! (docs/performance.md gives the command).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use geo::{Centroid, Coord, LineString, MultiPolygon, Polygon};
use pipeline::report::html::{Flow, InequalityRow, ReportData, UnitShape, VARIABLES, render};
use serde_json::Value;
use support::cpu_seconds;

mod support;

fn ring(v: &Value) -> LineString<f64> {
    let coords = v.as_array().map_or(&[][..], Vec::as_slice);
    LineString(
        coords
            .iter()
            .map(|c| Coord {
                x: c[0].as_f64().unwrap_or(0.0),
                y: c[1].as_f64().unwrap_or(0.0),
            })
            .collect(),
    )
}

fn polygon(v: &Value) -> Polygon<f64> {
    let rings = v.as_array().map_or(&[][..], Vec::as_slice);
    Polygon::new(ring(&rings[0]), rings[1..].iter().map(ring).collect())
}

/// Units of a GeoJSON FeatureCollection: id from `adcode`, `name`, (Multi)Polygon geometry.
fn read_units(path: &PathBuf) -> Vec<UnitShape> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).expect("a GeoJSON document");
    let mut units: Vec<UnitShape> = doc["features"]
        .as_array()
        .expect("a FeatureCollection")
        .iter()
        .map(|f| {
            let g = &f["geometry"];
            let shape = match g["type"].as_str() {
                Some("MultiPolygon") => MultiPolygon(
                    g["coordinates"]
                        .as_array()
                        .expect("polygons")
                        .iter()
                        .map(polygon)
                        .collect(),
                ),
                _ => MultiPolygon(vec![polygon(&g["coordinates"])]),
            };
            UnitShape {
                id: f["properties"]["adcode"]
                    .to_string()
                    .trim_matches('"')
                    .to_owned(),
                name: f["properties"]["name"].as_str().unwrap_or("").to_owned(),
                shape,
            }
        })
        .collect();
    units.sort_by(|a, b| a.id.cmp(&b.id));
    units
}

/// A smooth field over the map with a trend over the years and per-unit noise (SplitMix-like
/// hash), so classes form regions as real data do.
fn value(lon: f64, lat: f64, year: usize, unit: usize, column: usize) -> f64 {
    let mut h = (unit as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (year * 31 + column) as u64;
    h ^= h >> 31;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let noise = (h >> 11) as f64 / (1u64 << 53) as f64;
    let field = (lon / 9.0).sin() + (lat / 6.0).cos() + 0.03 * year as f64;
    match column {
        2 => (field - 0.8) * 2e5 + noise * 5e4,
        4 | 5 => 0.5 + field * 0.4 + noise * 0.3,
        _ => (field + 2.5) * 1e5 * (0.5 + noise),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = PathBuf::from(args.first().map_or(
        "pipelines/data/boundaries/china_counties.geojson",
        String::as_str,
    ));
    let n_years: usize = args.get(1).map_or(38, |a| a.parse().expect("years"));
    let out = PathBuf::from(
        args.get(2)
            .map_or("target/bench_report/report.html", String::as_str),
    );
    let data = synthetic_report(read_units(&path), n_years);

    let (cpu0, start) = (cpu_seconds(), Instant::now());
    let html = render(&data);
    let (seconds, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).expect("creating the output folder");
    }
    std::fs::write(&out, &html).expect("writing the report");
    println!(
        "{} units × {n_years} years: report.html {:.2} MB ({} bytes), {} maps, {} unit shapes, rendered in {seconds:.2} s wall, {cpu:.2} s CPU on {} threads → {}",
        data.units.len(),
        html.len() as f64 / 1e6,
        html.len(),
        html.matches("<svg class=\"map\"").count(),
        html.matches("class=\"unit\"").count(),
        rayon::current_num_threads(),
        out.display()
    );
}

/// Every section of a report filled with synthetic values over `units` and `n_years` years
/// from 1985.
fn synthetic_report(units: Vec<UnitShape>, n_years: usize) -> ReportData {
    let years: Vec<i64> = (0..n_years).map(|k| 1985 + k as i64).collect();
    let centroids: Vec<(f64, f64)> = units
        .iter()
        .map(|u| u.shape.centroid().map_or((105.0, 35.0), |c| (c.x(), c.y())))
        .collect();
    let mut data = ReportData {
        title: format!(
            "National report benchmark: {} units × {n_years} years",
            units.len()
        ),
        demo_data: true,
        year: *years.last().expect("at least one year"),
        n_classes: 5,
        ..ReportData::default()
    };
    fill_indices(&mut data, &units, &centroids, &years);
    fill_lisa_and_inequality(&mut data, &units, &centroids, &years);
    data.inequality_weight = Some("cs_t_c".into());
    data.clusters = Some(
        units
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id.clone(), ((centroids[i].0 - 73.0) / 6.0) as i64))
            .collect(),
    );
    data.zones = Some(
        units
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let zone = ["balance", "carbon_sink", "carbon_source", "high_emission"]
                    [((centroids[i].1 - 18.0) / 9.0).clamp(0.0, 3.0) as usize];
                (u.id.clone(), zone.to_owned())
            })
            .collect(),
    );
    data.flows = Some((
        "proportional".into(),
        "value_yuan".into(),
        flows(&data, &units),
    ));
    data.units = units;
    data
}

/// Every index of every unit in every year.
fn fill_indices(
    data: &mut ReportData,
    units: &[UnitShape],
    centroids: &[(f64, f64)],
    years: &[i64],
) {
    for (c, var) in VARIABLES.iter().enumerate() {
        let mut m = BTreeMap::new();
        for (k, &y) in years.iter().enumerate() {
            for (i, u) in units.iter().enumerate() {
                let (lon, lat) = centroids[i];
                m.insert((u.id.clone(), y), value(lon, lat, k, i, c));
            }
        }
        data.indices.insert(var.column.to_owned(), m);
    }
}

/// LISA classes per unit and the inequality indices, per year.
fn fill_lisa_and_inequality(
    data: &mut ReportData,
    units: &[UnitShape],
    centroids: &[(f64, f64)],
    years: &[i64],
) {
    const LISA: [&str; 5] = ["HH", "LL", "LH", "HL", "ns"];
    for (k, &y) in years.iter().enumerate() {
        let classes = units
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let (lon, lat) = centroids[i];
                let v = value(lon, lat, k, i, 2);
                (
                    u.id.clone(),
                    LISA[(v.abs() as usize / 40_000).min(4)].to_owned(),
                )
            })
            .collect();
        data.lisa.insert(y, classes);
        data.inequality.push(InequalityRow {
            year: y,
            gini: 0.3 + 0.002 * k as f64,
            centralization: 0.35 + 0.002 * k as f64,
            gini_plain: Some(0.32 + 0.002 * k as f64),
        });
    }
}

/// Payers and receivers by the sign of each unit's net emission in the report's year.
fn flows(data: &ReportData, units: &[UnitShape]) -> Vec<Flow> {
    let nce = &data.indices["nce_t_c"];
    units
        .iter()
        .map(|u| {
            let q = nce[&(u.id.clone(), data.year)];
            Flow {
                unit_id: u.id.clone(),
                role: if q > 0.0 { "payer" } else { "receiver" }.to_owned(),
                quantity_t_c: q,
                amount: q * 50.0,
            }
        })
        .collect()
}
