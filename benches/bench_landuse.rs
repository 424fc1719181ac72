//! Times the `landuse` stage on a large raster (the whole-Henan 30 m design goal in docs/performance.md).
//!
//! ```text
//! /tmp/venv-landuse/bin/python benches/landuse/reference_tools.py make henan_units123.geojson /tmp/lubench_full 1
//! cargo run --release --example bench_landuse -- /tmp/lubench_full/lu_2000.tif /tmp/lubench_full/units_lonlat.geojson [runs] [second_year.tif]
//! ```
//!
//! Prints wall time per run and the process's peak resident memory (VmHWM).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::BinaryArray;
use pipeline::engine::stage::{Entry, Inputs, StageContext, StageEntry};
use pipeline::stages::landuse::LandUse;
use pipeline::table::TableBuilder;

fn units_table(path: &str) -> arrow_array::RecordBatch {
    let text = std::fs::read_to_string(path).expect("units GeoJSON is readable");
    let fc: geojson::FeatureCollection = text.parse().expect("units file is a FeatureCollection");
    let mut ids = Vec::new();
    let mut wkb = Vec::new();
    for f in fc.features {
        let props = f.properties.as_ref().expect("features have properties");
        let id = match &props["unit_id"] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let g: geo::Geometry<f64> =
            geo::Geometry::try_from(&f.geometry.expect("features have geometry").value)
                .expect("valid geometry");
        let mp = match g {
            geo::Geometry::Polygon(p) => geo::MultiPolygon(vec![p]),
            geo::Geometry::MultiPolygon(m) => m,
            _ => panic!("unit {id} is not a polygon"),
        };
        ids.push(id);
        wkb.push(pipeline::io::wkb::encode(&mp));
    }
    TableBuilder::new()
        .str("unit_id", &ids)
        .array(
            "geometry",
            Arc::new(BinaryArray::from_iter_values(wkb.iter())),
        )
        .build()
        .expect("units table builds")
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: bench_landuse RASTER.tif UNITS_LONLAT.geojson [runs] [SECOND_YEAR.tif]");
        std::process::exit(2);
    }
    let runs: usize = args
        .get(3)
        .map_or(3, |s| s.parse().expect("runs is a number"));
    let units = units_table(&args[2]);
    let mut rasters = serde_json::Map::new();
    rasters.insert("2000".into(), serde_json::Value::String(args[1].clone()));
    if let Some(second) = args.get(4) {
        rasters.insert("2020".into(), serde_json::Value::String(second.clone()));
    }
    let params = serde_json::json!({ "rasters": rasters, "scheme": "clcd" });
    let prepared = Entry::<LandUse>::new()
        .prepare(params)
        .expect("parameters are valid");
    let sources: BTreeMap<String, PathBuf> = prepared
        .sources()
        .into_iter()
        .map(|s| (s.name, s.path))
        .collect();
    println!(
        "threads: {}, units: {}",
        rayon::current_num_threads(),
        units.num_rows()
    );
    for run in 0..runs {
        let ctx = StageContext::new("landuse", std::path::Path::new("."), sources.clone());
        let inputs = Inputs::new(BTreeMap::from([("units".to_owned(), units.clone())]));
        let t = Instant::now();
        let out = prepared.run(&inputs, &ctx).expect("stage runs");
        let secs = t.elapsed().as_secs_f64();
        let rows: Vec<String> = out
            .iter()
            .map(|(n, b)| format!("{n}={}", b.num_rows()))
            .collect();
        let areas = &out[0].1;
        let px: i64 = pipeline::table::i64s(areas, "areas", "pixels")
            .expect("pixels")
            .iter()
            .sum();
        let ha: f64 = pipeline::table::f64s(areas, "areas", "area_ha")
            .expect("area_ha")
            .iter()
            .sum();
        println!(
            "run {run}: {secs:.3} s  ({})  classified pixels {px}, {:.1} km²  peak RSS {:.0} MB",
            rows.join(" "),
            ha / 100.0,
            peak_rss_mb()
        );
        if run == 0
            && let Ok(path) = std::env::var("LANDUSE_BENCH_CODES")
        {
            // unit_id,code,pixels of the first year, for comparison with the Python references.
            let codes = &out[3].1;
            let ids = pipeline::table::ids(codes, "codes", "unit_id").expect("unit_id");
            let code = pipeline::table::i64s(codes, "codes", "code").expect("code");
            let px = pipeline::table::i64s(codes, "codes", "pixels").expect("pixels");
            let lines: Vec<String> = (0..ids.len())
                .map(|i| format!("{},{},{}", ids[i], code[i], px[i]))
                .collect();
            std::fs::write(path, lines.join("\n") + "\n").expect("codes file is writable");
        }
        if run == 0 {
            for w in ctx.take_warnings().iter().take(5) {
                println!("  warning: {w}");
            }
        }
    }
}
