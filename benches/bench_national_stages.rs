//! Times the stages after `landuse` on a national county-level study: the county-level units
//! of mainland China (about 2,850 polygons) × 38 years (1985–2022) of synthetic, spatially
//! smooth per-unit values.
//!
//! Run:
//! `cargo run --release --example bench_national_stages -- [BOUNDARIES.geojson] [--runs N]
//! [--threads N] [--write DIR] [--reference FILE]`
//!
//! - `BOUNDARIES.geojson`: the units (an `adcode` id per feature); by default
//!   `pipelines/data/boundaries/china_counties.geojson`.
//! - `--threads N`: run the stages on a pool of N threads, as `pipeline run --jobs N` does
//!   (default: one per core).
//! - `--write DIR`: also write what the reference tools need to redo the same work
//!   (`values.csv`, `means.csv`, `edges.gal`, `skater_summary.csv`, `redcap_summary.csv`); see
//!   `benches/national/reference_tools.py`.
//! - `--reference FILE`: a CSV (`what,tool,wall_s,cpu_s`) written by that script; the bench
//!   prints each tool's time over ours.
//!
//! Prints, per stage, the best and median wall time and the median CPU time of N runs
//! (default 5) against the target. No assertions on time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow_array::RecordBatch;
use pipeline::engine::stage::{Inputs, Outputs, PreparedStage, StageContext};
use pipeline::stages::{
    autocorrelation, cluster, compensation, contiguity, emission, indices, ingest, sink, zoning,
};
use pipeline::table::{TableBuilder, f64s, polygons, strings};
use support::{CLASSES, FUELS, Noise, cpu_seconds, peak_rss_mib, prepare};

mod support;

const FIRST_YEAR: i64 = 1985;
const YEARS: i64 = 38;
struct Options {
    boundaries: PathBuf,
    runs: usize,
    threads: usize,
    write: Option<PathBuf>,
    reference: Option<PathBuf>,
}

fn options() -> Options {
    let mut o = Options {
        boundaries: PathBuf::from("pipelines/data/boundaries/china_counties.geojson"),
        runs: 5,
        threads: std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
        write: None,
        reference: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--runs" => o.runs = value().parse().expect("--runs takes a number"),
            "--threads" => o.threads = value().parse().expect("--threads takes a number"),
            "--write" => o.write = Some(PathBuf::from(value())),
            "--reference" => o.reference = Some(PathBuf::from(value())),
            _ => o.boundaries = PathBuf::from(a),
        }
    }
    o
}

/// One timed stage: its name and measurements.
struct Timing {
    name: &'static str,
    best_s: f64,
    median_s: f64,
    cpu_s: f64,
}

/// Runs `stage` `runs` times on `inputs` and returns its outputs by name with the timing.
fn time(
    name: &'static str,
    target_s: f64,
    stage: &dyn PreparedStage,
    inputs: &[(&str, &RecordBatch)],
    sources: &BTreeMap<String, PathBuf>,
    runs: usize,
) -> (BTreeMap<String, RecordBatch>, Timing) {
    let inputs = Inputs::new(
        inputs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).clone()))
            .collect(),
    );
    let (mut walls, mut cpus) = (Vec::new(), Vec::new());
    let mut out: Option<Outputs> = None;
    for _ in 0..runs.max(1) {
        let ctx = StageContext::new(name, Path::new("."), sources.clone());
        let (t, c) = (Instant::now(), cpu_seconds());
        out = Some(
            stage
                .run(&inputs, &ctx)
                .unwrap_or_else(|e| panic!("{name}: {e}")),
        );
        walls.push(t.elapsed().as_secs_f64());
        cpus.push(cpu_seconds() - c);
    }
    walls.sort_by(f64::total_cmp);
    cpus.sort_by(f64::total_cmp);
    let timing = Timing {
        name,
        best_s: walls[0],
        median_s: walls[walls.len() / 2],
        cpu_s: cpus[cpus.len() / 2],
    };
    let rows: usize = out.iter().flatten().map(|(_, b)| b.num_rows()).sum();
    println!(
        "{name:<16} best {:>8.3} s   median {:>8.3} s   CPU {:>6.2} s   target < {target_s} s   {}   ({rows} output rows)",
        timing.best_s,
        timing.median_s,
        timing.cpu_s,
        if timing.median_s < target_s {
            "met"
        } else {
            "MISSED"
        },
    );
    (out.unwrap_or_default().into_iter().collect(), timing)
}

/// Per-unit tables for every year: land-use areas, energy, economy. Values are smooth in the
/// unit's centroid (so that Moran's I and the clusters have structure) plus noise.
fn synthetic_tables(ids: &[String], centroids: &[[f64; 2]]) -> BTreeMap<&'static str, RecordBatch> {
    let mut rng = Noise::new(42);
    let (mut u, mut y, mut c, mut a) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut eu, mut ey) = (Vec::new(), Vec::new());
    let mut fuels: Vec<Vec<f64>> = vec![Vec::new(); FUELS.len()];
    let mut economy: Vec<Vec<f64>> = vec![Vec::new(); 5];
    for (id, &[lon, lat]) in ids.iter().zip(centroids) {
        let smooth = 1.5 + (lon / 6.0).sin() * (lat / 4.0).cos();
        for year in FIRST_YEAR..FIRST_YEAR + YEARS {
            #[allow(clippy::cast_precision_loss)]
            let trend = 1.0 + 0.02 * (year - FIRST_YEAR) as f64;
            for class in CLASSES {
                u.push(id.clone());
                y.push(year);
                c.push(class);
                a.push(1000.0 + 50_000.0 * rng.unit() * (2.5 - smooth));
            }
            eu.push(id.clone());
            ey.push(year);
            for f in &mut fuels {
                f.push(10_000.0 * smooth * trend * (0.8 + 0.4 * rng.unit()));
            }
            let e = [
                (1e5 + 1e6 * rng.unit()) * smooth * trend,
                10.0 + 100.0 * rng.unit(),
                0.25 + 0.2 * rng.unit(),
                0.3 + 0.2 * rng.unit(),
                0.2 + 0.6 * rng.unit(),
            ];
            for (col, v) in economy.iter_mut().zip(e) {
                col.push(v);
            }
        }
    }
    let areas = TableBuilder::new()
        .str("unit_id", &u)
        .i64("year", y)
        .str("class", &c)
        .f64("area_ha", a)
        .build()
        .expect("areas table");
    let mut energy = TableBuilder::new()
        .str("unit_id", &eu)
        .i64("year", ey.clone());
    for (name, v) in FUELS.iter().zip(fuels) {
        energy = energy.f64(name, v);
    }
    let mut econ = TableBuilder::new().str("unit_id", &eu).i64("year", ey);
    let names = [
        "gdp_10k_yuan",
        "population",
        "engel_urban",
        "engel_rural",
        "urbanization_rate",
    ];
    for (name, v) in names.iter().zip(economy) {
        econ = econ.f64(name, v);
    }
    BTreeMap::from([
        ("areas", areas),
        ("energy", energy.build().expect("energy table")),
        ("economy", econ.build().expect("economy table")),
    ])
}

/// One row of the reference tools' timings.
struct Reference {
    what: String,
    tool: String,
    wall_s: f64,
    cpu_s: f64,
}

/// Reads `what,tool,wall_s,cpu_s` rows.
fn read_reference(path: &Path) -> Vec<Reference> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            Some(Reference {
                what: (*f.first()?).to_owned(),
                tool: (*f.get(1)?).to_owned(),
                wall_s: f.get(2)?.trim().parse().ok()?,
                cpu_s: f.get(3)?.trim().parse().ok()?,
            })
        })
        .collect()
}

fn write_csv(path: &Path, header: &str, rows: impl Iterator<Item = String>) {
    let mut text = format!("{header}\n");
    for r in rows {
        text.push_str(&r);
        text.push('\n');
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// The inputs of the reference tools: yearly and mean values, and the contiguity edges as a
/// GAL file (after island linking) so that esda and pygeoda use exactly our weights.
fn write_reference_inputs(
    dir: &Path,
    ids: &[String],
    outs: &BTreeMap<&str, BTreeMap<String, RecordBatch>>,
) {
    std::fs::create_dir_all(dir).expect("creating the --write directory");
    let yearly = &outs["indices"]["indices"];
    let (u, y) = (
        strings(yearly, "indices", "unit_id").expect("unit_id"),
        pipeline::table::i64s(yearly, "indices", "year").expect("year"),
    );
    let nce = f64s(yearly, "indices", "nce_t_c").expect("nce_t_c");
    write_csv(
        &dir.join("values.csv"),
        "unit_id,year,nce_t_c",
        (0..u.len()).map(|i| format!("{},{},{:?}", u[i], y[i], nce[i])),
    );
    let means = &outs["indices"]["means"];
    let mu = strings(means, "means", "unit_id").expect("unit_id");
    let cols: Vec<Vec<f64>> = ["ecc", "esc", "nce_t_c"]
        .iter()
        .map(|c| f64s(means, "means", c).expect("means column"))
        .collect();
    write_csv(
        &dir.join("means.csv"),
        "unit_id,ecc,esc,nce_t_c",
        (0..mu.len()).map(|i| {
            format!(
                "{},{:?},{:?},{:?}",
                mu[i], cols[0][i], cols[1][i], cols[2][i]
            )
        }),
    );
    let edges = &outs["contiguity"]["edges"];
    let (from, to) = (
        strings(edges, "edges", "from").expect("from"),
        strings(edges, "edges", "to").expect("to"),
    );
    let mut nbrs: BTreeMap<&str, Vec<&str>> =
        ids.iter().map(|i| (i.as_str(), Vec::new())).collect();
    for (a, b) in from.iter().zip(&to) {
        nbrs.get_mut(a.as_str()).expect("known id").push(b);
        nbrs.get_mut(b.as_str()).expect("known id").push(a);
    }
    let mut gal = format!("0 {} units unit_id\n", ids.len());
    for (id, list) in &nbrs {
        let _ = writeln!(gal, "{id} {}\n{}", list.len(), list.join(" "));
    }
    std::fs::write(dir.join("edges.gal"), gal).expect("writing edges.gal");
    for method in ["skater", "redcap"] {
        let summary = &outs[method]["summary"];
        let k = pipeline::table::i64s(summary, "summary", "k").expect("k");
        let within = f64s(summary, "summary", "within_ss").expect("within_ss");
        write_csv(
            &dir.join(format!("{method}_summary.csv")),
            "k,within_ss",
            k.iter().zip(&within).map(|(k, w)| format!("{k},{w:?}")),
        );
    }
}

/// A stage's outputs by name.
type Tables = BTreeMap<String, RecordBatch>;

fn run_all(o: &Options) -> Vec<Timing> {
    let mut timings = Vec::new();
    let mut outs: BTreeMap<&str, Tables> = BTreeMap::new();
    let runs = o.runs;

    let units = time_ingest(o, &mut timings);
    let ids = strings(&units, "units", "unit_id").expect("unit_id");
    let centroids = pipeline::methods::contiguity::centroids(
        &polygons(&units, "units", "geometry").expect("geometry"),
    );
    let tables = synthetic_tables(&ids, &centroids);
    println!(
        "{} units × {YEARS} years; areas {} rows; {} threads",
        ids.len(),
        tables["areas"].num_rows(),
        rayon::current_num_threads()
    );
    outs.insert("contiguity", time_contiguity(&units, runs, &mut timings));
    outs.insert("indices", time_indices(&tables, runs, &mut timings));
    // Clones share their buffers; they let `outs` take the clusters below.
    let yearly = &outs["indices"]["indices"].clone();
    let means = &outs["indices"]["means"].clone();
    let edges = &outs["contiguity"]["edges"].clone();
    let none = BTreeMap::new();

    let stage = prepare::<compensation::Compensation>(
        serde_json::json!({ "price": { "unit": "yuan_per_t_c", "value": 260.9 } }),
    );
    let c = [("indices", yearly), ("economy", &tables["economy"])];
    timings.push(time("compensation", 1.0, &*stage, &c, &none, runs).1);

    let stage = prepare::<autocorrelation::Autocorrelation>(serde_json::json!({
        "variable": "nce_t_c", "by": "year", "permutations": 999, "seed": 20_250_324
    }));
    let m = [("table", yearly), ("edges", edges)];
    timings.push(time("autocorrelation", 10.0, &*stage, &m, &none, runs).1);

    for (method, name) in [("skater", "skater k: auto"), ("redcap", "redcap k: auto")] {
        let stage = prepare::<cluster::Cluster>(serde_json::json!({
            "method": method, "variables": ["ecc", "esc", "nce_t_c"], "standardize": "zscore", "k": "auto"
        }));
        let inputs = [("table", means), ("edges", edges)];
        let (out, t) = time(name, 5.0, &*stage, &inputs, &none, runs);
        timings.push(t);
        outs.insert(method, out);
    }

    let stage = prepare::<zoning::Zoning>(serde_json::json!({ "scheme": "five_type" }));
    let z = [("table", means), ("clusters", &outs["skater"]["labels"])];
    timings.push(time("zoning", 1.0, &*stage, &z, &none, runs).1);

    if let Some(dir) = &o.write {
        write_reference_inputs(dir, &ids, &outs);
        println!("wrote the reference tools' inputs to {}", dir.display());
    }
    timings
}

/// The units table, read once: reading is not what this benchmark measures.
fn time_ingest(o: &Options, timings: &mut Vec<Timing>) -> RecordBatch {
    let sources = BTreeMap::from([("path".to_owned(), o.boundaries.clone())]);
    let ingest = prepare::<ingest::Ingest>(serde_json::json!({
        "path": o.boundaries, "id_column": "adcode"
    }));
    let (mut units, t) = time("ingest", f64::INFINITY, &*ingest, &[], &sources, 1);
    timings.push(t);
    units.remove("table").expect("the ingest table")
}

/// The units' contiguity, islands linked to their nearest neighbours.
fn time_contiguity(units: &RecordBatch, runs: usize, timings: &mut Vec<Timing>) -> Tables {
    let stage = prepare::<contiguity::Contiguity>(serde_json::json!({ "islands": "nearest" }));
    let (edges, t) = time(
        "contiguity",
        2.0,
        &*stage,
        &[("units", units)],
        &BTreeMap::new(),
        runs,
    );
    timings.push(t);
    let islands = pipeline::table::bools(&edges["components"], "components", "island")
        .expect("island")
        .iter()
        .filter(|&&b| b)
        .count();
    println!(
        "                 {} edges after linking {islands} islands",
        edges["edges"].num_rows()
    );
    edges
}

/// The indices, after emission and sink (timed once, for scale, with no target of their own
/// here).
fn time_indices(
    tables: &BTreeMap<&str, RecordBatch>,
    runs: usize,
    timings: &mut Vec<Timing>,
) -> Tables {
    let none = BTreeMap::new();
    let stage = prepare::<emission::Emission>(serde_json::json!({}));
    let a = [("areas", &tables["areas"]), ("energy", &tables["energy"])];
    let (em, t) = time("emission", f64::INFINITY, &*stage, &a, &none, 1);
    timings.push(t);
    let stage = prepare::<sink::Sink>(serde_json::json!({}));
    let a = [("areas", &tables["areas"])];
    let (sk, t) = time("sink", f64::INFINITY, &*stage, &a, &none, 1);
    timings.push(t);

    let stage = prepare::<indices::Indices>(serde_json::json!({}));
    let i = [
        ("emission", &em["emission"]),
        ("sink", &sk["sink"]),
        ("economy", &tables["economy"]),
    ];
    let (ix, t) = time("indices", 1.0, &*stage, &i, &none, runs);
    timings.push(t);
    ix
}

fn main() {
    let o = options();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(o.threads)
        .build()
        .expect("a thread pool");
    let timings = pool.install(|| run_all(&o));
    println!("peak RSS {:.0} MiB", peak_rss_mib());
    if let Some(path) = &o.reference {
        println!("reference tools: their time / our median, wall and CPU:");
        for r in read_reference(path) {
            match timings.iter().find(|t| t.name == r.what) {
                Some(t) => println!(
                    "{:<16} {:<44} {:>8.3} s wall {:>7.1}×   {:>8.3} s CPU {:>7.1}×",
                    r.what,
                    r.tool,
                    r.wall_s,
                    r.wall_s / t.median_s,
                    r.cpu_s,
                    r.cpu_s / t.cpu_s
                ),
                None => println!("{:<16} {:<44} (no matching stage)", r.what, r.tool),
            }
        }
    }
}
