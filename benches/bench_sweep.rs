//! Timing of `sweep` on the Henan example (123 units × 5 years): 1,000 draws re-running
//! emission → sink → indices → zones and inequality in memory, against the same parameter edits
//! made the way a workflow tool's parameter sweep would: one edited study per draw, each run by
//! the `pipeline` binary with the rest of the study cached.
//!
//! Run: `cargo build --release --example bench_sweep --bin pipeline && target/release/examples/bench_sweep`.
//! Prints times; no assertions on time. `EDITED_RUNS` edited studies are timed and extrapolated
//! to 1,000.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use pipeline::engine::cache::Cache;
use pipeline::engine::plan::{self, PlanOptions};
use pipeline::engine::progress::QuietReporter;
use pipeline::engine::scheduler::{self, RunOptions, StageStatus};
use pipeline::engine::spec;
use support::{children_cpu_seconds, cpu_seconds};

mod support;

const DRAWS: usize = 1000;
const SWEEP_RUNS: u64 = 3;
const EDITED_RUNS: usize = 20;

/// The Henan study's stages that the sweep re-runs, and what they read.
const STUDY: &str = r"study: bench-sweep
stages:
  units: { kind: ingest, path: data/boundaries/henan_units123.geojson, id_column: adcode }
  landuse:
    kind: landuse
    inputs: { units: units }
    rasters:
      2000: data/henan/landuse_2000.tif
      2005: data/henan/landuse_2005.tif
      2010: data/henan/landuse_2010.tif
      2015: data/henan/landuse_2015.tif
      2020: data/henan/landuse_2020.tif
    scheme: clcd
  economy: { kind: ingest, path: data/henan/economy.csv, types: { unit_id: string } }
  energy: { kind: ingest, path: data/henan/energy.csv, types: { unit_id: string } }
  crops: { kind: ingest, path: data/henan/crops.csv, types: { unit_id: string } }
  emission:
    kind: emission
    inputs: { areas: landuse, energy: energy }
    coefficients: { preset: mixed }
    construction: energy
    energy_factors: { preset: liu2017 }
    include_electricity: false
  sink:
    kind: sink
    inputs: { areas: landuse, crops: crops }
    coefficients: { preset: mixed, override: { forest: FOREST } }
    cultivated_sink: crop_yield
    crop_parameters: { preset: tian }
  indices: { kind: indices, inputs: { emission: emission, sink: sink, economy: economy } }
  inequality: { kind: inequality, inputs: { table: indices }, value: ce_t_c, weight: cs_t_c, by: year }
  zones: { kind: zoning, inputs: { table: indices.means }, scheme: five_type }
";

const SWEEP: &str = r"  robustness:
    kind: sweep
    draws: DRAWS
    seed: SEED
    vary:
      sink.coefficients.override.forest: { uniform: [-0.644, -0.581] }
      emission.coefficients.override.cultivated: { triangular: [0.422, 0.422, 0.497] }
      emission.energy_factors.override.raw_coal.f_t_c_per_tce: { uniform: [0.726, 0.7559] }
      emission.energy_factors.override.natural_gas.theta: { uniform: [1.2143, 1.33] }
    collect:
      zone: zones.zone
      nce: indices.nce_t_c
      centralization: inequality.centralization
";

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::symlink(root.join("pipelines/data"), dir.path().join("data"))
        .expect("link the example data");
    time_sweeps(dir.path());
    let bin = root.join("target/release/pipeline");
    if bin.exists() {
        time_edited_studies(&bin, dir.path());
    } else {
        println!("edited studies: build the binary first (`cargo build --release --bin pipeline`)");
    }
}

/// The sweep under `SWEEP_RUNS` seeds, after a warm-up run that caches the stages upstream.
fn time_sweeps(dir: &Path) {
    let cache = Cache::open(&dir.join("cache")).expect("cache");
    let study = dir.join("study.yaml");
    let options = PlanOptions {
        allow_outside: true,
    };
    println!(
        "sweep: {DRAWS} draws, {} threads",
        rayon::current_num_threads()
    );
    for seed in 0..=SWEEP_RUNS {
        let text = STUDY.replace("FOREST", "-0.644")
            + &SWEEP
                .replace("DRAWS", &DRAWS.to_string())
                .replace("SEED", &seed.to_string());
        std::fs::write(&study, text).expect("write study");
        let plan = plan::build(
            spec::load(&study).expect("spec"),
            pipeline::stages::BUILTIN,
            options,
        )
        .expect("plan");
        let cpu_before = cpu_seconds();
        let report =
            scheduler::run(&plan, &cache, &QuietReporter, &RunOptions::default()).expect("run");
        let cpu = cpu_seconds() - cpu_before;
        let sweep = report.get("robustness").expect("the sweep ran");
        assert_eq!(sweep.status, StageStatus::Ran, "{:?}", sweep.error);
        if seed == 0 {
            println!("  warm-up (upstream stages computed and cached)");
        } else {
            println!(
                "  seed {seed}: {:.3} s ({cpu:.3} s of CPU over all threads, study included)",
                sweep.seconds
            );
        }
    }
}

/// The alternative to a sweep: edit the study and run the binary, `EDITED_RUNS` times, and
/// extrapolate to `DRAWS` runs.
fn time_edited_studies(bin: &Path, dir: &Path) {
    let study = dir.join("study.yaml");
    let started = Instant::now();
    let cpu_before = children_cpu_seconds();
    for k in 0..EDITED_RUNS {
        let forest = -0.644 + 0.063 * (k as f64 + 0.5) / EDITED_RUNS as f64;
        std::fs::write(&study, STUDY.replace("FOREST", &forest.to_string())).expect("write study");
        let status = Command::new(bin)
            .args(["--cache-dir"])
            .arg(dir.join("cache"))
            .args(["run", "--allow-outside", "-q"])
            .arg(&study)
            .status()
            .expect("run the binary");
        assert!(status.success());
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = children_cpu_seconds() - cpu_before;
    println!(
        "edited studies: {EDITED_RUNS} runs in {seconds:.2} s ({:.3} s each) → {DRAWS} runs ≈ {:.0} s; CPU {cpu:.2} s ({:.3} s each) → ≈ {:.0} s",
        seconds / EDITED_RUNS as f64,
        seconds / EDITED_RUNS as f64 * DRAWS as f64,
        cpu / EDITED_RUNS as f64,
        cpu / EDITED_RUNS as f64 * DRAWS as f64
    );
}
