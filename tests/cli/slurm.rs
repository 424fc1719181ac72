//! `--executor slurm` against a real SLURM: the single-node one `scripts/slurm-test-cluster`
//! starts (CI runs it first and sets `PIPELINE_REQUIRE_SLURM=1`, so these tests cannot skip
//! there). Elsewhere they are skipped, saying so, when SLURM is absent or not answering.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{Study, require_tool};

const REQUIRE: &str = "PIPELINE_REQUIRE_SLURM";
/// Where `scripts/slurm-test-cluster` writes its configuration by default.
const TEST_CLUSTER_CONF: &str = "/tmp/pipeline-slurm/slurm.conf";

/// A SLURM that answers, with the `SLURM_CONF` to reach it (the environment's, else the test
/// cluster's; `None`: SLURM's own default).
struct Cluster(Option<PathBuf>);

/// The cluster for the tests, once SLURM answers; `None` (after saying so) to skip.
fn slurm_conf() -> Option<Cluster> {
    require_tool("sbatch", REQUIRE)?;
    let conf = std::env::var_os("SLURM_CONF")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from(TEST_CLUSTER_CONF)).filter(|p| p.exists()));
    let mut sinfo = Command::new("sinfo");
    sinfo.args(["-h", "-o", "%T"]);
    if let Some(c) = &conf {
        sinfo.env("SLURM_CONF", c);
    }
    let up = sinfo.output().is_ok_and(|o| {
        o.status.success()
            && String::from_utf8_lossy(&o.stdout).lines().any(|l| {
                ["idle", "mixed", "allocated"]
                    .iter()
                    .any(|s| l.starts_with(s))
            })
    });
    if up {
        return Some(Cluster(conf));
    }
    let why = "SLURM is installed but no node answers `sinfo`";
    assert!(
        std::env::var_os(REQUIRE).is_none_or(|v| v.is_empty() || v == "0"),
        "{why}, and {REQUIRE} requires it: start one with scripts/slurm-test-cluster"
    );
    eprintln!("SKIPPED: {why}; start one with scripts/slurm-test-cluster");
    None
}

fn with_conf(mut c: Command, conf: Option<&Path>) -> Command {
    if let Some(conf) = conf {
        c.env("SLURM_CONF", conf);
    }
    c
}

/// Names of this user's jobs SLURM still lists.
fn queued(conf: Option<&Path>, name: &str) -> Vec<String> {
    let mut squeue = with_conf(Command::new("squeue"), conf);
    squeue.args(["-h", "-o", "%i %j %T", "-n", name]);
    let out = squeue.output().expect("squeue runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The job folders of a cache's runs, by name.
fn job_folders(cache: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for run in std::fs::read_dir(cache.join("v1/jobs"))
        .into_iter()
        .flatten()
    {
        for job in std::fs::read_dir(run.unwrap().path()).unwrap() {
            names.push(job.unwrap().file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    names
}

/// `pipeline run STUDY --executor slurm --check` in the repository, asserting that the
/// published outputs equal the committed ones, which the local executor reproduces (see
/// `studies.rs`).
fn check_example_through_slurm(conf: Option<&Path>, cache: &Path, study: &str) {
    let mut c = with_conf(Command::new(crate::common::bin()), conf);
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CI", "1")
        .arg("--cache-dir")
        .arg(cache)
        .args(["run", study, "--executor", "slurm", "--check"]);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{study}: the SLURM run differs from the committed (local) outputs:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Henan example through SLURM publishes exactly the committed outputs (which the local
/// executor reproduces, see `studies.rs`); `landuse` fans out into one job per year and per
/// pair of years; a second run submits nothing.
#[test]
fn henan_through_slurm_gives_the_local_bytes() {
    let Some(Cluster(conf)) = slurm_conf() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let run =
        || check_example_through_slurm(conf.as_deref(), &cache, "pipelines/henan_counties.yaml");
    run();
    let jobs = job_folders(&cache);
    let landuse = jobs.iter().filter(|j| j.starts_with("landuse")).count();
    assert!(
        landuse >= 5,
        "landuse ran as {landuse} job(s), not one per year: {jobs:?}"
    );
    assert!(jobs.contains(&"landuse-2000".to_owned()), "{jobs:?}");
    assert!(jobs.contains(&"landuse-2015-2020".to_owned()), "{jobs:?}");
    assert!(
        !jobs.iter().any(|j| j == "units" || j == "edges"),
        "quick kinds run in place: {jobs:?}"
    );
    for run_dir in std::fs::read_dir(cache.join("v1/jobs")).unwrap() {
        let landuse_dir = run_dir.unwrap().path().join("landuse");
        assert!(landuse_dir.join("stdout.log").exists());
        assert!(landuse_dir.join("stderr.log").exists());
    }

    run();
    assert_eq!(
        job_folders(&cache).len(),
        jobs.len(),
        "a run where everything hits submits no job"
    );
}

/// The Yellow River example through SLURM publishes exactly the committed (local) outputs,
/// with its stages run as batch jobs.
#[test]
fn yellow_river_through_slurm_gives_the_local_bytes() {
    let Some(Cluster(conf)) = slurm_conf() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    check_example_through_slurm(
        conf.as_deref(),
        &cache,
        "pipelines/yellow_river_cities.yaml",
    );
    let jobs = job_folders(&cache);
    assert!(
        jobs.iter().any(|j| j.starts_with("landuse")),
        "landuse ran as a batch job: {jobs:?}"
    );
    assert!(jobs.len() >= 5, "only {} job(s): {jobs:?}", jobs.len());
}

fn small_study(stages: &str) -> Study {
    let s = Study::new();
    s.file("data/units.csv", "unit_id,x\nb,2\na,1\n");
    s.file(
        "study.yaml",
        &format!(
            "study: slurm-small\nstages:\n  units:\n    kind: ingest\n    path: data/units.csv\n    id_column: unit_id\n{stages}"
        ),
    );
    s
}

/// A stage whose job fails: the error names the stage, the job, its state and the last lines
/// of its stderr, exits by the stage error's tier, and records nothing.
#[test]
fn a_failing_slurm_job_reports_its_stderr() {
    let Some(Cluster(conf)) = slurm_conf() else {
        return;
    };
    let s = small_study(
        "  broken:\n    kind: command\n    inputs: { table: units }\n    ports: [table]\n    resources: { cpus: 1, time: 5m }\n    run: [\"sh\", \"-c\", \"echo the-tool-says-no >&2; exit 7\"]\n",
    );
    let out = with_conf(
        s.command(&["run", "study.yaml", "--executor", "slurm"]),
        conf.as_deref(),
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for expected in [
        "stage `broken` failed",
        "(`pipeline-broken`) ended FAILED",
        "stderr.log",
        "the-tool-says-no",
    ] {
        assert!(stderr.contains(expected), "no `{expected}` in:\n{stderr}");
    }
    let (_, summary) = s.run_study(&[]);
    assert_eq!(summary.status["units"], "cached");
    assert_eq!(
        summary.status["broken"], "failed",
        "a failure is never cached"
    );
}

/// Ctrl-C while a job runs: `scancel` leaves nothing in `squeue`, the exit code is 130, and
/// nothing is published.
#[test]
fn an_interrupted_slurm_run_cancels_its_jobs() {
    let Some(Cluster(conf)) = slurm_conf() else {
        return;
    };
    let s = small_study(
        "  slow_for_cancel:\n    kind: command\n    inputs: { table: units }\n    ports: [table]\n    run: [\"sleep\", \"300\"]\n    publish: [csv]\noutputs: out\n",
    );
    let name = "pipeline-slow_for_cancel";
    let child = with_conf(
        s.command(&["run", "study.yaml", "--executor", "slurm"]),
        conf.as_deref(),
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    while queued(conf.as_deref(), name).is_empty() {
        assert!(Instant::now() < until, "the job was never submitted");
        std::thread::sleep(Duration::from_millis(200));
    }
    // SAFETY: kill(2) on the child's pid, which has not been waited for, so it is ours.
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    // A cancelled job may show as COMPLETING for a moment.
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let left = queued(conf.as_deref(), name);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < until, "jobs left in squeue: {left:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(!s.path("out").exists(), "nothing is published");
}

/// Runs `study.yaml` of `s` with `executor`, asserts success, and returns the published files
/// (removing them, so the next run publishes afresh).
fn run_and_collect(
    conf: Option<&Path>,
    s: &Study,
    cache: &Path,
    executor: &str,
) -> Vec<(String, Vec<u8>)> {
    let mut c = with_conf(Command::new(crate::common::bin()), conf);
    let out = c
        .current_dir(s.path(""))
        .env("CI", "1")
        .env_remove("PIPELINE_CACHE_DIR")
        .arg("--cache-dir")
        .arg(cache)
        .args(["run", "study.yaml", "--executor", executor])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{executor}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = published(&s.path("out"));
    std::fs::remove_dir_all(s.path("out")).unwrap();
    files
}

/// The `.parquet` files a run published, by name.
fn published(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// `cluster` with `k: auto` fans out into one array task per chunk of k (`k_range: [2, 8]`
/// gives chunks 2–5 and 6–8), each writing into its shard's folder, then a merge job; the
/// published tables are byte-identical to a local run's.
#[test]
fn k_auto_clusters_fan_out_through_slurm_with_the_local_bytes() {
    let Some(Cluster(conf)) = slurm_conf() else {
        return;
    };
    let s = crate::sweep::grid_study(
        "study: slurm-k-auto\noutputs: out\nstages:\n  units:\n    kind: ingest\n    path: data/units.csv\n    id_column: unit_id\n  edges:\n    kind: ingest\n    path: data/edges.csv\n  zones:\n    kind: cluster\n    inputs: { table: units, edges: edges }\n    variables: [x]\n    standardize: none\n    k: auto\n    k_range: [2, 8]\n    publish: [parquet]\n",
    );
    let run = |cache: &Path, executor: &str| run_and_collect(conf.as_deref(), &s, cache, executor);
    let local = run(&s.path("cache-local"), "local");
    assert_eq!(local.len(), 3, "labels, summary and profiles");
    let slurm_cache = s.path("cache-slurm");
    let slurm = run(&slurm_cache, "slurm");
    assert!(slurm == local, "the SLURM run published other bytes");
    let jobs = job_folders(&slurm_cache);
    for folder in ["zones-k2-5", "zones-k6-8", "zones.tasks", "zones"] {
        assert!(jobs.contains(&folder.to_owned()), "no {folder} in {jobs:?}");
    }
    let run_dir = std::fs::read_dir(slurm_cache.join("v1/jobs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for shard in ["zones-k2-5", "zones-k6-8"] {
        assert!(
            run_dir.join(shard).join("stdout.log").exists(),
            "the array task of {shard} wrote no stdout.log into its folder"
        );
        assert_eq!(
            std::fs::read_to_string(run_dir.join(shard).join("exit"))
                .unwrap()
                .trim(),
            "0"
        );
    }
    let script = std::fs::read_to_string(run_dir.join("zones.tasks/array.sh")).unwrap();
    assert!(script.contains("SLURM_ARRAY_TASK_ID"), "{script}");
}

/// A sweep of 260 draws fans out into one array task per chunk of draws (0–249 and 250–259),
/// each worker planning the study again; the merge runs in the coordinator, and the published
/// tables are byte-identical to a local run's.
#[test]
fn sweep_draw_chunks_fan_out_through_slurm_with_the_local_bytes() {
    let Some(Cluster(conf)) = slurm_conf() else {
        return;
    };
    let s = crate::sweep::chunked_sweep_study();
    let run = |cache: &Path, executor: &str| run_and_collect(conf.as_deref(), &s, cache, executor);
    let local = run(&s.path("cache-local"), "local");
    assert!(
        local.iter().any(|(name, _)| name.contains("zone_summary")),
        "{:?}",
        local.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    let slurm_cache = s.path("cache-slurm");
    let slurm = run(&slurm_cache, "slurm");
    assert!(slurm == local, "the SLURM run published other bytes");
    let jobs = job_folders(&slurm_cache);
    for folder in [
        "robustness-draws0-249",
        "robustness-draws250-259",
        "robustness.tasks",
    ] {
        assert!(jobs.contains(&folder.to_owned()), "no {folder} in {jobs:?}");
    }
    assert!(
        !jobs.contains(&"robustness".to_owned()),
        "the merge runs in the coordinator: {jobs:?}"
    );
    let run_dir = std::fs::read_dir(slurm_cache.join("v1/jobs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let merges: Vec<usize> = std::fs::read_dir(slurm_cache.join("v1/entries"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .filter_map(|e| {
            let entry: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap();
            (entry["components"]["kind"] == "sweep")
                .then(|| entry["memos"].as_array().map_or(0, Vec::len))
        })
        .collect();
    assert_eq!(
        merges,
        [4],
        "the merge took both chunks' values and warnings as kept"
    );
    for chunk in ["robustness-draws0-249", "robustness-draws250-259"] {
        assert_eq!(
            std::fs::read_to_string(run_dir.join(chunk).join("exit"))
                .unwrap()
                .trim(),
            "0",
            "{chunk}"
        );
    }
}

/// Writes columns `cols` × rows `rows` of a lon/lat grid of 0.01° pixels whose top-left corner
/// is (113° E, 35° N), NoData 0, with the codes `code(col, row)` (grid coordinates).
fn write_lonlat_tile(
    path: &Path,
    cols: std::ops::Range<usize>,
    rows: std::ops::Range<usize>,
    code: impl Fn(usize, usize) -> u8,
) {
    use pipeline::io::geotiff_writer::{CategoricalRaster, Crs, GridPlacement, write_categorical};
    let codes: Vec<u8> = rows
        .clone()
        .flat_map(|r| cols.clone().map(move |c| (c, r)))
        .map(|(c, r)| code(c, r))
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let raster = CategoricalRaster {
        width: u32::try_from(cols.len()).unwrap(),
        height: u32::try_from(rows.len()).unwrap(),
        codes: &codes,
        placement: GridPlacement {
            x_min: 113.0 + 0.01 * cols.start as f64,
            y_max: 35.0 - 0.01 * rows.start as f64,
            pixel_width: 0.01,
            pixel_height: 0.01,
        },
        crs: Crs::Epsg4326,
        nodata: Some(0),
        description: None,
    };
    write_categorical(path, &raster).unwrap();
}

/// Bands of CLCD codes 1–8 at (col, row).
fn band_code(c: usize, r: usize) -> u8 {
    [1, 2, 4, 5, 8, 1, 2, 7][(c / 5 + r / 6) % 8]
}

/// A study whose year 2000 is three overlapping tiles of different extents on a lon/lat grid
/// (tile 0: columns 0..24 × rows 0..22, NoData where col ≥ 20 and row ≥ 20; tile 1: columns
/// 16..40 × rows 6..36; tile 2: columns 0..14 × rows 20..36; columns 14..16 of rows 22..36 in
/// no tile); unit A straddles the edge of tiles 0 and 1, B the gap.
fn tiled_year_study() -> Study {
    let s = Study::new();
    std::fs::create_dir_all(s.path("data")).unwrap();
    write_lonlat_tile(&s.path("data/t0.tif"), 0..24, 0..22, |c, r| {
        if c >= 20 && r >= 20 {
            0
        } else {
            band_code(c, r)
        }
    });
    write_lonlat_tile(&s.path("data/t1.tif"), 16..40, 6..36, band_code);
    write_lonlat_tile(&s.path("data/t2.tif"), 0..14, 20..36, band_code);
    let square = |x0: f64, y0: f64, x1: f64, y1: f64| {
        format!("[[[{x0},{y0}],[{x1},{y0}],[{x1},{y1}],[{x0},{y1}],[{x0},{y0}]]]")
    };
    let feature = |id: &str, rings: String| {
        format!(
            "{{\"type\":\"Feature\",\"properties\":{{\"unit_id\":\"{id}\"}},\"geometry\":{{\"type\":\"Polygon\",\"coordinates\":{rings}}}}}"
        )
    };
    s.file(
        "data/units.geojson",
        &format!(
            "{{\"type\":\"FeatureCollection\",\"features\":[{},{},{}]}}",
            feature("A", square(113.10, 34.80, 113.30, 34.95)),
            feature("B", square(113.05, 34.66, 113.25, 34.78)),
            feature("C", square(113.32, 34.70, 113.38, 34.90)),
        ),
    );
    s.file(
        "study.yaml",
        "study: slurm-tiles\noutputs: out\nstages:\n  units:\n    kind: ingest\n    path: data/units.geojson\n    id_column: unit_id\n  landuse:\n    kind: landuse\n    inputs: { units: units }\n    rasters:\n      2000: [data/t0.tif, data/t1.tif, data/t2.tif]\n    scheme: clcd\n    publish: [parquet]\n",
    );
    s
}

/// The cache's run folders (one per SLURM run, holding its jobs' folders).
fn run_folders(cache: &Path) -> std::collections::BTreeSet<PathBuf> {
    std::fs::read_dir(cache.join("v1/jobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// The job folders of the one run folder that is not among `earlier`. Found by name rather
/// than by modification time, which two runs close together can share on a coarse clock.
fn jobs_of_the_new_run(cache: &Path, earlier: &std::collections::BTreeSet<PathBuf>) -> Vec<String> {
    let new: Vec<PathBuf> = run_folders(cache).difference(earlier).cloned().collect();
    assert_eq!(new.len(), 1, "one new run folder: {new:?}");
    let mut names: Vec<String> = std::fs::read_dir(&new[0])
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A year of several tiles fans out into one array task per tile and one for the overlaps
/// and gaps, and the published tables are byte-identical to a local run's; after one tile
/// changes, a rerun submits that tile's shard, the overlaps and the merge, nothing else.
#[test]
fn tile_shards_run_as_jobs_through_slurm_with_the_local_bytes() {
    let Some(Cluster(conf)) = slurm_conf() else {
        return;
    };
    let s = tiled_year_study();
    let run = |cache: &Path, executor: &str| run_and_collect(conf.as_deref(), &s, cache, executor);
    let local = run(&s.path("cache-local"), "local");
    assert_eq!(local.len(), 6, "the six landuse tables");
    let slurm_cache = s.path("cache-slurm");
    let slurm = run(&slurm_cache, "slurm");
    assert!(slurm == local, "the SLURM run published other bytes");
    let jobs = job_folders(&slurm_cache);
    for folder in [
        "landuse-2000-t0",
        "landuse-2000-t1",
        "landuse-2000-t2",
        "landuse-2000-overlaps",
        "landuse.tasks",
        "landuse",
    ] {
        assert!(jobs.contains(&folder.to_owned()), "no {folder} in {jobs:?}");
    }
    assert!(!jobs.contains(&"landuse-2000".to_owned()), "{jobs:?}");

    // Tile 1 gets a new code in a pixel of unit C that only it covers (column 35, row 25).
    write_lonlat_tile(&s.path("data/t1.tif"), 16..40, 6..36, |c, r| {
        if (c, r) == (35, 25) {
            8
        } else {
            band_code(c, r)
        }
    });
    let before = local;
    let local = run(&s.path("cache-local"), "local");
    assert!(local != before, "the changed pixel changes the tables");
    let earlier = run_folders(&slurm_cache);
    let slurm = run(&slurm_cache, "slurm");
    assert!(slurm == local, "the SLURM rerun published other bytes");
    let rerun: Vec<String> = jobs_of_the_new_run(&slurm_cache, &earlier)
        .into_iter()
        .filter(|j| j != "landuse.tasks")
        .collect();
    assert_eq!(
        rerun,
        ["landuse", "landuse-2000-overlaps", "landuse-2000-t1"]
    );
}
