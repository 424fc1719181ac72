//! One function per command. Each returns an exit code or a [`Diagnostic`]; `main` renders
//! diagnostics, so nothing here prints errors itself.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use serde_json::json;

use crate::cli::{
    Cli, Command, DagFormat, ExecutorKind, RunArgs, ShowFormat, StagesFormat, StudyArgs,
};
use crate::engine::cache::{Cache, GcOptions};
use crate::engine::error::{Diagnostic, Tier};
use crate::engine::executor::slurm::{SlurmExecutor, SlurmProfile};
use crate::engine::key::{CacheKey, differences};
use crate::engine::plan::{self, Plan, PlanOptions};
use crate::engine::progress::{PlainReporter, QuietReporter, Reporter, TerminalReporter};
use crate::engine::scheduler::{self, RunOptions, RunReport, StageStatus};
use crate::engine::stage::{StageEntry, StageError, StageErrorTier};
use crate::engine::{interrupt, publish, spec};
use crate::stages::BUILTIN;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<u8, Diagnostic> {
    let cache_dir = cli
        .cache_dir
        .clone()
        .or_else(|| std::env::var_os("PIPELINE_CACHE_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("cache"));
    match cli.command {
        Command::Run(args) => run_command(args, &cache_dir),
        Command::Check { study } => check(&study),
        Command::Explain { study, stage } => explain(&study, &cache_dir, &stage),
        Command::Show {
            study,
            target,
            format,
            limit,
        } => {
            interrupt::install();
            show(&study, &cache_dir, &target, format, limit)
        }
        Command::Dag { study, format } => dag(&study, &cache_dir, format),
        Command::Gc {
            dry_run,
            max_size,
            keep_days,
        } => gc(&cache_dir, dry_run, max_size.as_deref(), keep_days),
        Command::Verify { repair } => verify(&cache_dir, repair),
        Command::Stages { format } => stages(format),
        Command::Worker { invocation, out } => {
            interrupt::install();
            worker(&invocation, &out)
        }
        Command::DemoData {
            national: true,
            resolution,
            years,
            out,
            format,
            data_dir,
            jobs,
            ..
        } => demo_national(&data_dir, &out, resolution, &years, format, jobs),
        Command::DemoData {
            data_dir, study, ..
        } => demo_data(&data_dir, study),
    }
}

/// `pipeline run`: checks that the flags go together, then runs the studies in turn.
fn run_command(args: RunArgs, cache_dir: &Path) -> Result<u8, Diagnostic> {
    if args.studies.len() > 1 && args.summary_json.is_some() {
        return Err(Diagnostic::user("`--summary-json` takes one study")
            .with_hint("run the studies one at a time to get a summary of each"));
    }
    let executor = ExecutorChoice::new(args.executor, args.executor_config.as_deref())?;
    let settings = RunSettings {
        cache_dir,
        options: RunOptions {
            jobs: executor.jobs(args.jobs),
            keep_going: args.keep_going,
            dry_run: args.dry_run,
            targets: None,
        },
        executor,
        summary_json: args.summary_json.as_deref(),
        quiet: args.quiet,
        check: args.check,
    };
    run_studies(args.studies, args.allow_outside, &settings)
}

/// `pipeline stages`: every stage kind, then the built-in coefficient presets.
fn stages(format: StagesFormat) -> Result<u8, Diagnostic> {
    let presets = crate::stages::presets::presets_doc(matches!(format, StagesFormat::Markdown));
    emit(&(stages_doc(BUILTIN, format) + &presets))?;
    Ok(0)
}

/// Writes to standard output. A reader that went away (`pipeline run … | head -1`) is not an
/// error: the rest of the output is dropped quietly and the command still finishes its work
/// (publishing, saving its records) and exits as it would have.
fn emit(text: &str) -> Result<(), Diagnostic> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Diagnostic::environment("cannot write to standard output").caused_by(e))
        }
        _ => Ok(()),
    }
}

/// More threads than this per core only add memory and contention.
const MAX_JOBS_PER_CORE: usize = 4;

/// `--jobs`, capped at [`MAX_JOBS_PER_CORE`] × the available parallelism with a warning.
/// Without `--jobs`, `RAYON_NUM_THREADS` (a positive integer) sets it, as it would for rayon's
/// own pool, else one worker per core ([`scheduler::worker_threads`]).
fn capped_jobs(jobs: usize) -> usize {
    let jobs = scheduler::worker_threads(jobs);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let cap = cores.saturating_mul(MAX_JOBS_PER_CORE);
    if jobs > cap {
        eprintln!(
            "warning: --jobs {jobs} is more than {MAX_JOBS_PER_CORE} per core on this machine ({cores} cores); using {cap}"
        );
        return cap;
    }
    jobs
}

fn load_plan(args: &StudyArgs) -> Result<Plan, Diagnostic> {
    let spec = spec::load(&args.study)?;
    plan::build(
        spec,
        BUILTIN,
        PlanOptions {
            allow_outside: args.allow_outside,
        },
    )
}

fn reporter(quiet: bool) -> Box<dyn Reporter> {
    if quiet {
        Box::new(QuietReporter)
    } else if std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() {
        Box::new(TerminalReporter::new())
    } else {
        Box::new(PlainReporter::default())
    }
}

/// How `pipeline run` runs each of its studies: the command line's options.
struct RunSettings<'a> {
    cache_dir: &'a Path,
    options: RunOptions,
    executor: ExecutorChoice,
    summary_json: Option<&'a Path>,
    quiet: bool,
    check: bool,
}

/// Runs the studies one after another until one is interrupted; the exit code is the worst.
fn run_studies(
    studies: Vec<PathBuf>,
    allow_outside: bool,
    settings: &RunSettings<'_>,
) -> Result<u8, Diagnostic> {
    interrupt::install();
    let mut code = 0;
    for study in studies {
        if interrupt::received().is_some() {
            break;
        }
        let args = StudyArgs {
            study,
            allow_outside,
        };
        code = code.max(run_study(&args, settings)?);
    }
    Ok(code)
}

fn run_study(args: &StudyArgs, settings: &RunSettings<'_>) -> Result<u8, Diagnostic> {
    let RunSettings {
        cache_dir,
        ref options,
        ref executor,
        summary_json,
        quiet,
        check,
    } = *settings;
    let plan = load_plan(args)?;
    // Batch jobs start in another working directory: they need the cache's absolute path.
    let cache_dir = match executor {
        ExecutorChoice::Slurm(_) => std::path::absolute(cache_dir).unwrap_or(cache_dir.into()),
        ExecutorChoice::Local => cache_dir.to_path_buf(),
    };
    let cache = Cache::open(&cache_dir)?;
    // Held until publishing is done, so `gc` cannot remove what is about to be published.
    let _hold = cache.run_guard()?;
    let reporter = reporter(quiet);
    let mut report = executor.run(&plan, &cache, reporter.as_ref(), options)?;
    if let Some(signal) = interrupt::received() {
        return Err(interrupted(signal));
    }
    let mut record = publish::PublishRecord::load(&cache, &plan.study_id);
    let publication = if options.dry_run {
        None
    } else {
        let p = gather_publication(
            &plan,
            &cache,
            &mut report,
            &record,
            reporter.as_ref(),
            options,
        );
        Some(p?)
    };
    if !quiet {
        emit(&summary_table(&report))?;
    }
    if let Some(path) = summary_json {
        write_summary_json(path, &report)?;
    }
    let mut code = scheduler::failure_tier(&report).map_or(0, Tier::exit_code);
    print_failures(&report, Tier::StageFailed);
    let Some(publication) = publication else {
        return Ok(code);
    };
    if check {
        code = code.max(check_outputs(&plan, args, &publication, quiet)?);
    } else {
        publish_outputs(&plan, &report, &publication, quiet)?;
    }
    record.update(&publication);
    record.save(&cache, &plan.study_id)?;
    Ok(code)
}

/// `--summary-json`: the run's summary as JSON in `path`.
fn write_summary_json(path: &Path, report: &RunReport) -> Result<(), Diagnostic> {
    let text =
        serde_json::to_string_pretty(&summary_json_value(report)).expect("summaries serialise");
    std::fs::write(path, text + "\n").map_err(|e| {
        Diagnostic::environment(format!("cannot write {}", path.display())).caused_by(e)
    })
}

/// `--check`: 0 if the outputs folder holds what the study publishes, else 1 with the list of
/// files that differ.
fn check_outputs(
    plan: &Plan,
    args: &StudyArgs,
    publication: &publish::Publication,
    quiet: bool,
) -> Result<u8, Diagnostic> {
    let diffs = publish::differences(plan.outputs_dir.as_deref(), &publication.files);
    if diffs.is_empty() {
        if !quiet {
            let total = publication.files.len() + publication.current_files;
            emit(&format!(
                "check: {total} published file(s) are up to date\n"
            ))?;
        }
        return Ok(0);
    }
    eprintln!(
        "error: {} file(s) in the outputs folder differ from what the study publishes:",
        diffs.len()
    );
    for (path, what) in &diffs {
        eprintln!("  {what}: {}", path.display());
    }
    eprintln!(
        "hint: run `pipeline run {}` and commit the updated outputs",
        args.study.display()
    );
    Ok(1)
}

/// Writes the publication to the outputs folder, if the study has one and every stage completed.
fn publish_outputs(
    plan: &Plan,
    report: &RunReport,
    publication: &publish::Publication,
    quiet: bool,
) -> Result<(), Diagnostic> {
    let Some(dir) = &plan.outputs_dir else {
        return Ok(());
    };
    if report.results.iter().any(|r| r.manifest.is_none()) {
        // Publishing part of a run would mix its tables with files from an earlier one.
        eprintln!(
            "nothing published: not every stage completed, so the outputs folder keeps the files of the last complete run"
        );
        return Ok(());
    }
    let written = publish::write(dir, &publication.files)?;
    let total = publication.files.len() + publication.current_files;
    if !quiet && total > 0 {
        emit(&format!(
            "published {total} file(s) to {} ({written} changed)\n",
            dir.display()
        ))?;
    }
    Ok(())
}

/// Prints each failed stage's error, with its causes and hint, as a diagnostic of `tier`.
fn print_failures(report: &RunReport, tier: Tier) {
    for r in report.failed() {
        if let Some(e) = &r.error {
            let mut d = Diagnostic::new(tier, format!("stage `{}` failed: {}", r.name, e.message));
            d.causes = e.causes.clone();
            d.hint = e.hint.clone();
            eprint!("{}", d.render());
        }
    }
}

/// `--executor` and its config, checked before any study runs.
enum ExecutorChoice {
    Local,
    Slurm(Box<SlurmProfile>),
}

impl ExecutorChoice {
    fn new(kind: ExecutorKind, config: Option<&Path>) -> Result<Self, Diagnostic> {
        match (kind, config) {
            (ExecutorKind::Local, None) => Ok(Self::Local),
            (ExecutorKind::Local, Some(_)) => Err(Diagnostic::user(
                "`--executor-config` configures a batch executor; the local one takes none",
            )
            .with_hint("add `--executor slurm`, or drop `--executor-config`")),
            (ExecutorKind::Slurm, None) => Ok(Self::Slurm(Box::default())),
            (ExecutorKind::Slurm, Some(path)) => {
                Ok(Self::Slurm(Box::new(SlurmProfile::load(path)?)))
            }
        }
    }

    /// `--jobs`: worker threads here, jobs in flight on SLURM.
    fn jobs(&self, jobs: usize) -> usize {
        match self {
            Self::Local => capped_jobs(jobs),
            Self::Slurm(_) if jobs == 0 => 32,
            Self::Slurm(_) => jobs,
        }
    }

    fn run(
        &self,
        plan: &Plan,
        cache: &Cache,
        reporter: &dyn Reporter,
        options: &RunOptions,
    ) -> Result<RunReport, Diagnostic> {
        let Self::Slurm(profile) = self else {
            return scheduler::run(plan, cache, reporter, options);
        };
        let resources = plan
            .spec
            .stages
            .iter()
            .filter_map(|s| Some((s.name.clone(), s.resources.clone()?)))
            .collect();
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let run_dir = cache
            .root()
            .join("jobs")
            .join(format!("{stamp}-{}", std::process::id()));
        let slurm = SlurmExecutor::new((**profile).clone(), resources, run_dir, options.jobs)?;
        scheduler::run_with(plan, cache, reporter, options, &slurm)
    }
}

/// A run stopped by SIGINT or SIGTERM: the stages that finished are cached, nothing is
/// published, and the exit code is the shell's 128 + signal.
fn interrupted(signal: i32) -> Diagnostic {
    Diagnostic::new(
        Tier::Interrupted(interrupt::exit_code(signal)),
        format!(
            "stopped by {}: nothing was published",
            interrupt::name(signal)
        ),
    )
    .with_hint("stages that finished are cached; run the study again to continue")
}

/// The files to publish. A corrupt blob met on the way has been removed, so running the plan
/// again recomputes the stage that made it (a hit checks blobs only by their stat seal).
fn gather_publication(
    plan: &Plan,
    cache: &Cache,
    report: &mut RunReport,
    record: &publish::PublishRecord,
    reporter: &dyn Reporter,
    options: &RunOptions,
) -> Result<publish::Publication, Diagnostic> {
    let mut recomputed = false;
    loop {
        match publish::files(plan, cache, report, record)? {
            Ok(publication) => return Ok(publication),
            Err(_) if !recomputed => {
                recomputed = true;
                *report = scheduler::run(plan, cache, reporter, options)?;
            }
            Err(corrupt) => return Err(corrupt.diagnostic()),
        }
    }
}

/// The end-of-run table: each stage's status, time and rows.
pub fn summary_table(report: &RunReport) -> String {
    let width = report
        .results
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!(
        "{:width$}  {:9}  {:>8}  {:>9}\n",
        "stage", "status", "seconds", "rows"
    );
    for r in &report.results {
        let rows = r
            .manifest
            .as_ref()
            .and_then(|m| m.outputs.first())
            .map_or(String::from("-"), |o| o.rows.to_string());
        let _ = writeln!(
            out,
            "{:width$}  {:9}  {:>8.2}  {:>9}",
            r.name,
            r.status.as_str(),
            r.seconds,
            rows
        );
    }
    let count = |s: StageStatus| report.results.iter().filter(|r| r.status == s).count();
    let _ = writeln!(
        out,
        "{} ran, {} cached, {} failed, {} skipped",
        count(StageStatus::Ran),
        count(StageStatus::Cached),
        count(StageStatus::Failed),
        count(StageStatus::Skipped)
    );
    out
}

/// `--summary-json`: `{"stages":[{"name","status","reason","seconds","outputs":{name:{"rows","digest"}}}]}`.
pub fn summary_json_value(report: &RunReport) -> serde_json::Value {
    let stages: Vec<serde_json::Value> = report
        .results
        .iter()
        .map(|r| {
            let outputs: serde_json::Map<String, serde_json::Value> = r
                .manifest
                .as_ref()
                .map(|m| {
                    m.outputs
                        .iter()
                        .map(|o| {
                            (
                                o.name.clone(),
                                json!({"rows": o.rows, "digest": o.digest.to_hex()}),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "name": r.name,
                "key": r.key.as_ref().map(|k| k.digest().to_hex()),
                "key_without_code": r.key.as_ref().map(|k| k.digest_without_code().to_hex()),
                "kind": r.key.as_ref().map(|k| k.kind.clone()),
                "version": r.key.as_ref().map(|k| k.version),
                "status": r.status.as_str(),
                "reason": r.reason,
                "seconds": r.seconds,
                "outputs": outputs,
            })
        })
        .collect();
    json!({ "stages": stages })
}

fn check(args: &StudyArgs) -> Result<u8, Diagnostic> {
    let plan = load_plan(args)?;
    let mut out = format!(
        "study `{}`: {} stages, plan ok\n",
        plan.spec.study,
        plan.stages.len()
    );
    for s in &plan.stages {
        let inputs: Vec<String> = s
            .inputs
            .iter()
            .map(|(p, w)| format!("{p} ← {}.{}", plan.stages[w.stage].name, w.output))
            .collect();
        let _ = writeln!(out, "  {:20} {:16} {}", s.name, s.kind, inputs.join(", "));
    }
    emit(&out)?;
    Ok(0)
}

/// What a run of `targets` (all stages by default) would do, quietly, computing nothing.
fn dry_run(
    plan: &Plan,
    cache: &Cache,
    targets: Option<Vec<usize>>,
) -> Result<RunReport, Diagnostic> {
    let options = RunOptions {
        dry_run: true,
        targets,
        ..RunOptions::default()
    };
    scheduler::run(plan, cache, &QuietReporter, &options)
}

fn explain(args: &StudyArgs, cache_dir: &Path, stage: &str) -> Result<u8, Diagnostic> {
    let plan = load_plan(args)?;
    let (idx, _) = plan.resolve_target(stage)?;
    let cache = Cache::open(cache_dir)?;
    let report = dry_run(&plan, &cache, Some(vec![idx]))?;
    let name = &plan.stages[idx].name;
    let result = report
        .get(name)
        .expect("the target is part of its own closure");
    let mut out = format!(
        "stage `{name}` (kind `{}`, version {})\n",
        plan.stages[idx].kind, plan.stages[idx].version
    );
    match &result.key {
        None => {
            let _ = writeln!(
                out,
                "status: would run ({})",
                result
                    .reason
                    .as_deref()
                    .unwrap_or("its inputs are not computed yet")
            );
            let _ = writeln!(
                out,
                "the key depends on upstream outputs that are not in the cache; run the study to compute them"
            );
        }
        Some(key) => {
            let hit = result.status == StageStatus::Cached;
            describe_key(&mut out, key, hit);
            if let Some(m) = result.manifest.as_ref().filter(|m| !m.warnings.is_empty()) {
                let _ = writeln!(out, "warnings ({}):", m.warnings.len());
                for w in &m.warnings {
                    let _ = writeln!(out, "  [{}] {}", w.kind, w.message);
                }
            }
            if !hit {
                changes_since_last_run(&mut out, cache.last_key(&plan.study_id, name), key);
            }
        }
    }
    emit(&out)?;
    Ok(0)
}

/// The key's digest, each of its fields, and whether the cache holds its entry.
fn describe_key(out: &mut String, key: &CacheKey, hit: bool) {
    let _ = writeln!(out, "key: {}", key.digest());
    let _ = writeln!(out, "  format: {}", key.format);
    let _ = writeln!(out, "  kind: {} (version {})", key.kind, key.version);
    let _ = writeln!(out, "  code: {}", key.code);
    let _ = writeln!(
        out,
        "  params: {}",
        serde_json::to_string(&key.params).expect("params serialise")
    );
    for (input, digest) in &key.inputs {
        let _ = writeln!(out, "  {input}: {digest}");
    }
    let status = if hit {
        "hit (cached)"
    } else {
        "miss (would run)"
    };
    let _ = writeln!(out, "status: {status}");
}

/// What differs between the key of the stage's last recorded run and `key`.
fn changes_since_last_run(out: &mut String, last: Option<CacheKey>, key: &CacheKey) {
    let Some(old) = last else {
        let _ = writeln!(
            out,
            "no earlier run of this stage is recorded in this cache"
        );
        return;
    };
    let diffs = differences(&old, key);
    let _ = writeln!(out, "changed since the last run:");
    if diffs.is_empty() {
        let _ = writeln!(
            out,
            "  nothing in the key (the entry was removed by gc, verify or a corrupt blob)"
        );
    }
    for d in diffs {
        let _ = writeln!(out, "  {d}");
    }
}

/// Rows `show --format table` prints before "… N more rows", unless `--limit` says otherwise.
/// CSV and JSON are for other programs, so they print every row.
const TABLE_PREVIEW_ROWS: usize = 20;

fn show(
    args: &StudyArgs,
    cache_dir: &Path,
    target: &str,
    format: ShowFormat,
    limit: Option<usize>,
) -> Result<u8, Diagnostic> {
    let plan = load_plan(args)?;
    let (idx, output) = plan.resolve_target(target)?;
    let cache = Cache::open(cache_dir)?;
    let _hold = cache.run_guard()?;
    let options = RunOptions {
        targets: Some(vec![idx]),
        ..RunOptions::default()
    };
    let mut report = scheduler::run(&plan, &cache, reporter(true).as_ref(), &options)?;
    if let Some(signal) = interrupt::received() {
        return Err(interrupted(signal));
    }
    let name = plan.stages[idx].name.clone();
    let table = read_output(&plan, &cache, &options, &mut report, &name, &output)?;
    if let Some(tier) = scheduler::failure_tier(&report) {
        print_failures(&report, tier);
        return Ok(tier.exit_code());
    }
    let table = table.expect("a run without failures yields the table");
    emit(&table_text(&table, format, limit))?;
    Ok(0)
}

/// The table of output `name.output`, or `None` if a stage of the run failed. A corrupt blob
/// is removed when met, so the stage is run once more to recompute it.
fn read_output(
    plan: &Plan,
    cache: &Cache,
    options: &RunOptions,
    report: &mut RunReport,
    name: &str,
    output: &str,
) -> Result<Option<RecordBatch>, Diagnostic> {
    let mut recomputed = false;
    loop {
        if scheduler::failure_tier(report).is_some() {
            return Ok(None);
        }
        let manifest = report
            .get(name)
            .and_then(|r| r.manifest.as_ref())
            .expect("a completed stage has a manifest");
        let record = manifest.output(output).expect("resolved outputs exist");
        match cache.read_blob(&record.digest) {
            Ok(table) => return Ok(Some(table)),
            Err(Some(d)) => return Err(d),
            Err(None) if !recomputed => {
                recomputed = true;
                *report = scheduler::run(plan, cache, reporter(true).as_ref(), options)?;
            }
            Err(None) => {
                return Err(Diagnostic::environment(format!(
                    "cache: the output `{name}.{output}` is corrupt again right after it was recomputed"
                ))
                .with_hint("the cache's disk may be failing: run `pipeline verify`, or use another `--cache-dir`"));
            }
        }
    }
}

/// The first `limit` rows of `table` in `format`; a text table stops at
/// [`TABLE_PREVIEW_ROWS`] unless `limit` says otherwise.
fn table_text(table: &RecordBatch, format: ShowFormat, limit: Option<usize>) -> String {
    match format {
        ShowFormat::Table => {
            crate::io::export::to_text_table(table, limit.unwrap_or(TABLE_PREVIEW_ROWS))
        }
        ShowFormat::Csv => {
            let head = table.slice(0, limit.unwrap_or(usize::MAX).min(table.num_rows()));
            String::from_utf8(crate::io::export::to_csv(&head))
                .expect("CSV of UTF-8 cells is UTF-8")
        }
        ShowFormat::Json => {
            serde_json::to_string_pretty(&crate::io::export::to_json_rows(
                table,
                limit.unwrap_or(usize::MAX),
            ))
            .expect("rows serialise")
                + "\n"
        }
    }
}

fn dag(args: &StudyArgs, cache_dir: &Path, format: DagFormat) -> Result<u8, Diagnostic> {
    let plan = load_plan(args)?;
    let cache = Cache::open(cache_dir)?;
    let report = dry_run(&plan, &cache, None)?;
    let cached = |name: &str| {
        report
            .get(name)
            .is_some_and(|r| r.status == StageStatus::Cached)
    };
    let out = match format {
        DagFormat::Dot => dot_graph(&plan, &cached),
        DagFormat::Mermaid => mermaid_graph(&plan, &cached),
    };
    emit(&out)?;
    Ok(0)
}

/// Each wire of the plan as (upstream stage, downstream stage, port).
fn wires(plan: &Plan) -> impl Iterator<Item = (&str, &str, &str)> {
    plan.stages.iter().flat_map(move |s| {
        s.inputs.iter().map(move |(port, w)| {
            (
                plan.stages[w.stage].name.as_str(),
                s.name.as_str(),
                port.as_str(),
            )
        })
    })
}

/// The plan as a Graphviz digraph, cached stages in green.
fn dot_graph(plan: &Plan, cached: &dyn Fn(&str) -> bool) -> String {
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, style=filled];\n",
        plan.spec.study
    );
    for s in &plan.stages {
        let colour = if cached(&s.name) {
            "palegreen"
        } else {
            "lightgoldenrod1"
        };
        let _ = writeln!(
            out,
            "  {} [label=\"{}\\n{}\", fillcolor={colour}];",
            s.name, s.name, s.kind
        );
    }
    for (from, to, port) in wires(plan) {
        let _ = writeln!(out, "  {from} -> {to} [label=\"{port}\"];");
    }
    out.push_str("}\n");
    out
}

/// The plan as a Mermaid flowchart, cached stages in green.
fn mermaid_graph(plan: &Plan, cached: &dyn Fn(&str) -> bool) -> String {
    let mut out = String::from("flowchart LR\n");
    for s in &plan.stages {
        let class = if cached(&s.name) { "cached" } else { "stale" };
        let _ = writeln!(out, "  {}[\"{}<br/>{}\"]:::{class}", s.name, s.name, s.kind);
    }
    for (from, to, port) in wires(plan) {
        let _ = writeln!(out, "  {from} -->|{port}| {to}");
    }
    out.push_str("  classDef cached fill:#b7e4c7\n  classDef stale fill:#ffe8a1\n");
    out
}

/// Parses sizes such as `500M`, `2G`, `1024`; `None` also when the size overflows 64 bits.
fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, mult) = match t.chars().last()?.to_ascii_uppercase() {
        'K' => (&t[..t.len() - 1], 1u64 << 10),
        'M' => (&t[..t.len() - 1], 1 << 20),
        'G' => (&t[..t.len() - 1], 1 << 30),
        'T' => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

fn gc(
    cache_dir: &Path,
    dry_run: bool,
    max_size: Option<&str>,
    keep_days: u32,
) -> Result<u8, Diagnostic> {
    let max_size = match max_size {
        None => None,
        Some(s) => Some(parse_size(s).ok_or_else(|| {
            Diagnostic::user(format!(
                "`--max-size {s}` is not a size of at most 16 exbibytes"
            ))
            .with_hint("write e.g. 500M, 2G or 1T")
        })?),
    };
    let cache = Cache::open(cache_dir)?;
    let r = cache.gc(&GcOptions {
        dry_run,
        keep_days,
        max_size,
    })?;
    let verb = if dry_run { "would remove" } else { "removed" };
    emit(&format!(
        "{verb} {} entries, {} blobs ({} bytes), {} temp files; kept {} bytes\n",
        r.entries, r.blobs, r.bytes, r.tmp_files, r.kept_bytes
    ))?;
    Ok(0)
}

fn verify(cache_dir: &Path, repair: bool) -> Result<u8, Diagnostic> {
    let cache = Cache::open(cache_dir)?;
    let r = cache.verify(repair);
    println!("checked {} blobs and {} entries", r.blobs, r.entries);
    for p in &r.corrupt_blobs {
        println!("corrupt blob: {}", p.display());
    }
    for p in &r.broken_entries {
        println!("entry using a corrupt or missing blob: {}", p.display());
    }
    if r.corrupt_blobs.is_empty() && r.broken_entries.is_empty() {
        println!("all blobs match their digests");
        return Ok(0);
    }
    if repair {
        if r.unremovable.is_empty() {
            println!("removed them; the next run recomputes those stages");
            return Ok(0);
        }
        let mut d = Diagnostic::environment(format!(
            "cache: could not remove {} of them",
            r.unremovable.len()
        ))
        .with_hint(
            "make the cache directory writable (or remove those paths by hand), then run `pipeline verify --repair` again",
        );
        for (path, why) in &r.unremovable {
            d = d.caused_by(format!("{}: {why}", path.display()));
        }
        Err(d)
    } else {
        println!("run `pipeline verify --repair` to remove them");
        Ok(1)
    }
}

/// `pipeline stages`: generated from the registry, so it cannot drift from the code.
pub fn stages_doc(registry: &[&dyn StageEntry], format: StagesFormat) -> String {
    let mut out = String::new();
    if let StagesFormat::Markdown = format {
        out.push_str("# Stage kinds\n\nGenerated by `pipeline stages --format markdown`; do not edit by hand.\n\n");
    }
    for e in registry {
        match format {
            StagesFormat::Text => {
                let _ = writeln!(out, "{} (version {})", e.kind(), e.version());
                for line in e.doc().lines() {
                    let _ = writeln!(out, "    {line}");
                }
                for p in e.params_doc() {
                    let _ = writeln!(
                        out,
                        "  {:18} {:14} default: {:10} {}",
                        p.name, p.ty, p.default, p.doc
                    );
                }
                out.push('\n');
            }
            StagesFormat::Markdown => {
                let _ = writeln!(
                    out,
                    "## `{}` (version {})\n\n{}\n",
                    e.kind(),
                    e.version(),
                    e.doc()
                );
                if !e.params_doc().is_empty() {
                    out.push_str("| parameter | type | default | meaning |\n|---|---|---|---|\n");
                    for p in e.params_doc() {
                        let _ = writeln!(
                            out,
                            "| `{}` | {} | {} | {} |",
                            p.name,
                            p.ty.replace('|', "\\|"),
                            p.default.replace('|', "\\|"),
                            p.doc.replace('|', "\\|")
                        );
                    }
                    out.push('\n');
                }
            }
        }
    }
    out
}

fn demo_data(data_dir: &Path, study: crate::cli::DemoStudy) -> Result<u8, Diagnostic> {
    use crate::cli::DemoStudy;
    use crate::demo::{Config, Study, generate_with};
    let studies = match study {
        DemoStudy::Henan => vec![Study::Henan],
        DemoStudy::YellowRiver => vec![Study::YellowRiver],
        DemoStudy::All => vec![Study::Henan, Study::YellowRiver],
    };
    for s in studies {
        let generated = generate_with(data_dir, &Config::full(s)).map_err(|e| {
            Diagnostic::user(format!("cannot generate the {} demonstration data", s.folder()))
                .caused_by(e)
                .with_hint("run from the repository's top level, or pass --data-dir pointing at pipelines/data")
        })?;
        emit(&format!(
            "{}wrote {} files to {}\n",
            generated.summary,
            generated.files.len(),
            data_dir.join(s.folder()).display()
        ))?;
    }
    Ok(0)
}

fn demo_national(
    data_dir: &Path,
    out: &Path,
    resolution_m: f64,
    years: &str,
    format: crate::cli::RasterFormat,
    jobs: usize,
) -> Result<u8, Diagnostic> {
    use crate::cli::RasterFormat;
    use crate::demo::national::{BOUNDARY_FILE, Formats, NationalConfig, generate};
    let bad_years = || {
        Diagnostic::user(format!("--years `{years}` is not a range of years"))
            .with_hint("write the first and last year with two dots, e.g. `--years 1985..2022`")
    };
    let (first, last) = years.split_once("..").ok_or_else(bad_years)?;
    let parse = |y: &str| y.trim().parse::<i64>().map_err(|_| bad_years());
    let config = NationalConfig {
        boundaries: data_dir.join("boundaries").join(BOUNDARY_FILE),
        out: out.to_owned(),
        resolution_m,
        years: (parse(first)?, parse(last)?),
        formats: match format {
            RasterFormat::Lzw => Formats::Lzw,
            RasterFormat::Deflate => Formats::Deflate,
            RasterFormat::Both => Formats::Both,
        },
        seed: 20_250_324,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(capped_jobs(jobs))
        .build()
        .map_err(|e| Diagnostic::environment("cannot start worker threads").caused_by(e))?;
    let bar = crate::engine::progress::work_bar("demo-data", "rows");
    let generated = pool.install(|| generate(&config, &|done, total| bar.update(done, total)));
    let generated = generated.map_err(|e| {
        Diagnostic::user("cannot generate the national demonstration data")
            .caused_by(e)
            .with_hint("run from the repository's top level, or pass --data-dir pointing at the folder holding boundaries/china_counties.geojson")
    })?;
    bar.finish();
    emit(&format!(
        "{}\nwrote {} files to {}\n",
        generated.summary,
        generated.files.len(),
        out.display()
    ))?;
    Ok(0)
}

fn worker(invocation: &Path, out: &Path) -> Result<u8, Diagnostic> {
    let text = std::fs::read(invocation).map_err(|e| {
        Diagnostic::user(format!("cannot read {}", invocation.display())).caused_by(e)
    })?;
    let inv: crate::engine::invocation::Invocation =
        serde_json::from_slice(&text).map_err(|e| {
            Diagnostic::user(format!(
                "{} is not a stage invocation",
                invocation.display()
            ))
            .caused_by(e)
        })?;
    std::fs::create_dir_all(out).map_err(|e| {
        Diagnostic::environment(format!("cannot create {}", out.display())).caused_by(e)
    })?;
    let files = crate::engine::output_writer::FolderFiles(out.to_path_buf());
    let executed = inv.execute_to(BUILTIN, Some(std::sync::Arc::new(files)));
    let (result, failure) = match executed {
        Ok(done) => {
            let outputs = worker_outputs(out, done.outputs, done.written)?;
            let result = json!({"status": "ok", "outputs": outputs, "warnings": done.warnings, "memos": done.memos});
            (result, None)
        }
        Err(e) => (json!({"status": "failed", "error": e}), Some(e)),
    };
    std::fs::write(
        out.join("result.json"),
        serde_json::to_vec_pretty(&result).expect("results serialise"),
    )
    .map_err(|e| Diagnostic::environment("cannot write result.json").caused_by(e))?;
    if let Some(signal) = interrupt::received() {
        return Err(interrupted(signal));
    }
    // A failure also goes to stderr as `run` prints it, with the documented exit code.
    failure.map_or(Ok(0), |e| Err(stage_failure(&inv.stage, e)))
}

/// Puts each output of a worker's stage in `out/<name>.parquet`: a table written in parts is
/// renamed there, a whole one encoded. Both are the bytes the coordinator stores.
fn worker_outputs(
    out: &Path,
    tables: crate::engine::stage::Outputs,
    mut written: Vec<crate::engine::output_writer::WrittenTable>,
) -> Result<serde_json::Map<String, serde_json::Value>, Diagnostic> {
    let mut outputs = serde_json::Map::new();
    for (name, table) in tables {
        let path = out.join(format!("{name}.parquet"));
        let cannot = |e: std::io::Error| {
            Diagnostic::environment(format!("cannot write {}", path.display())).caused_by(e)
        };
        let rows = match written.iter().position(|w| w.name == name) {
            Some(i) => {
                let file = written.swap_remove(i);
                std::fs::rename(file.path(), &path).map_err(cannot)?;
                let rows = file.rows;
                file.moved();
                rows
            }
            None => {
                crate::io::parquet::write(&path, &table).map_err(cannot)?;
                table.num_rows() as u64
            }
        };
        outputs.insert(name, json!({"rows": rows, "path": path}));
    }
    Ok(outputs)
}

/// A stage's error as the diagnostic `main` renders; its tier picks the exit code (1 failed,
/// 2 bad data or parameters, 3 environment or internal).
fn stage_failure(stage: &str, e: StageError) -> Diagnostic {
    let tier = match e.tier {
        StageErrorTier::Data => Tier::User,
        StageErrorTier::Failed => Tier::StageFailed,
        StageErrorTier::Internal => Tier::Environment,
    };
    let mut d = Diagnostic::new(tier, format!("stage `{stage}` failed: {}", e.message));
    d.causes = e.causes;
    d.hint = e.hint;
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("500M"), Some(500 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("16777215T"), Some(16_777_215 << 40));
        assert_eq!(parse_size("16777216T"), None, "2^64 bytes overflows");
        assert_eq!(parse_size("99999999999T"), None);
    }
}
