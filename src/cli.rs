//! The command line, parsed with clap. Only shapes here; `app` gives them meaning.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Reproducible regional carbon-budget studies: YAML-defined DAGs of cached stages.
///
/// Exit codes: 0 ok; 1 a stage failed (or `run --check` found differences); 2 bad study, data or
/// usage; 3 environment or internal error; 130/143 stopped by SIGINT/SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "pipeline", version, about, long_about = None)]
pub struct Cli {
    /// Cache directory (default: $PIPELINE_CACHE_DIR, else ./cache).
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by the commands that read a study.
#[derive(Debug, Args)]
pub struct StudyArgs {
    /// The study file (YAML).
    pub study: PathBuf,
    /// Allow the study to read files outside its own directory tree.
    #[arg(long)]
    pub allow_outside: bool,
}

// The options of `pipeline run`. A plain comment, so that the command's description stays
// the one on `Command::Run`.
#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools)] // independent command-line switches, not a state
pub struct RunArgs {
    /// The study file(s) (YAML); several run one after another.
    #[arg(required = true)]
    pub studies: Vec<PathBuf>,
    /// Allow the study to read files outside its own directory tree.
    #[arg(long)]
    pub allow_outside: bool,
    /// Threads each stage computes with, and the most stages computed at once (default:
    /// RAYON_NUM_THREADS when set, else one per core; at most 4 per core).
    #[arg(long, short, default_value_t = 0)]
    pub jobs: usize,
    /// Keep running independent stages after a failure.
    #[arg(long)]
    pub keep_going: bool,
    /// Show what would run; compute nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the run summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
    /// Print only warnings and errors.
    #[arg(long, short)]
    pub quiet: bool,
    /// Do not publish: exit 1 listing published files that differ from what the run produces.
    #[arg(long)]
    pub check: bool,
    /// Where stages that miss are computed: here, or as SLURM batch jobs (`--jobs` then
    /// caps the jobs in flight; default 32).
    #[arg(long, value_enum, default_value_t = ExecutorKind::Local)]
    pub executor: ExecutorKind,
    /// The executor's settings (for slurm: partition, account, resources; see docs/cluster.md).
    #[arg(long, value_name = "FILE")]
    pub executor_config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a study: compute what changed, reuse the rest, publish outputs.
    Run(RunArgs),
    /// Parse and plan a study, check input schemas; run nothing.
    Check {
        #[command(flatten)]
        study: StudyArgs,
    },
    /// Show a stage's cache key, whether it hits, and what changed since its last run.
    Explain {
        #[command(flatten)]
        study: StudyArgs,
        /// The stage.
        stage: String,
    },
    /// Print a stage's output, running what it needs first.
    Show {
        #[command(flatten)]
        study: StudyArgs,
        /// `stage` or `stage.output`.
        target: String,
        #[arg(long, value_enum, default_value_t = ShowFormat::Table)]
        format: ShowFormat,
        /// At most this many rows (default: all for csv and json; a preview of 20 for table).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Print the study's DAG, coloured by cache status.
    Dag {
        #[command(flatten)]
        study: StudyArgs,
        #[arg(long, value_enum, default_value_t = DagFormat::Dot)]
        format: DagFormat,
    },
    /// Remove cache entries and blobs that no recent run used.
    Gc {
        /// List what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Keep the cache under this size (e.g. 500M, 2G), dropping the oldest studies' results.
        #[arg(long, value_name = "SIZE")]
        max_size: Option<String>,
        /// Keep what runs of the last N days used.
        #[arg(long, default_value_t = 30)]
        keep_days: u32,
    },
    /// Rehash every cached blob and report corrupt ones.
    Verify {
        /// Remove corrupt blobs and the entries using them, so the next run recomputes them.
        #[arg(long)]
        repair: bool,
    },
    /// List every stage kind with its parameters.
    Stages {
        #[arg(long, value_enum, default_value_t = StagesFormat::Text)]
        format: StagesFormat,
    },
    /// Regenerate the demonstration data of the example studies (deterministic, seeded).
    DemoData {
        /// The data folder: boundaries are read from `<dir>/boundaries/`, and each study's
        /// files are written to `<dir>/henan/` and `<dir>/yellow_river/`.
        #[arg(long, value_name = "DIR", default_value = "pipelines/data")]
        data_dir: PathBuf,
        /// Which study's data.
        #[arg(long, value_enum, default_value_t = DemoStudy::All)]
        study: DemoStudy,
        /// Instead: national CLCD-like rasters of mainland China's county-level units and their
        /// tables (generated on demand, not committed), into `--out`.
        #[arg(long)]
        national: bool,
        /// Pixel size of the national rasters, metres.
        #[arg(long, value_name = "METRES", default_value_t = crate::demo::national::DEFAULT_RESOLUTION_M, requires = "national")]
        resolution: f64,
        /// Years of the national rasters, `FIRST..LAST` (inclusive).
        #[arg(
            long,
            value_name = "FIRST..LAST",
            default_value = "1985..2022",
            requires = "national"
        )]
        years: String,
        /// Where the national data go.
        #[arg(
            long,
            value_name = "DIR",
            default_value = "pipelines/data/national",
            requires = "national"
        )]
        out: PathBuf,
        /// Raster layout of the national data: LZW strips (as CLCD ships), DEFLATE tiles, or both.
        #[arg(long, value_enum, default_value_t = RasterFormat::Lzw, requires = "national")]
        format: RasterFormat,
        /// Worker threads for the national data (default: RAYON_NUM_THREADS when set, else one
        /// per core); the files are the same whatever the number.
        #[arg(long, short, default_value_t = 0, requires = "national")]
        jobs: usize,
    },
    /// Execute one serialised stage invocation (the seam for cluster executors).
    Worker {
        /// The invocation (JSON).
        invocation: PathBuf,
        /// Where to write `<output>.parquet` files and `result.json`.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExecutorKind {
    Local,
    Slurm,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ShowFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DagFormat {
    Dot,
    Mermaid,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StagesFormat {
    Text,
    Markdown,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DemoStudy {
    Henan,
    YellowRiver,
    All,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RasterFormat {
    Lzw,
    Deflate,
    Both,
}
