//! Runs a plan: stages in dependency order, independent ones in parallel on a rayon pool, each
//! either served from the cache (a hit reads no table) or computed and committed. Failures are
//! never cached; dependants of a failed stage are skipped; without `keep_going` the run stops
//! scheduling new stages after the first failure.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::time::Instant;

use arrow_array::RecordBatch;
use serde::Serialize;

use crate::engine::cache::{Cache, ENGINE_VERSION, Manifest, OutputRecord, RunRecord};
use crate::engine::error::Diagnostic;
use crate::engine::executor::local::LocalExecutor;
use crate::engine::executor::{ComputeError, Executor, Job};
use crate::engine::interrupt;
use crate::engine::invocation::{InputLocation, Invocation};
use crate::engine::key::{CODE_DIGEST, CacheKey, Digest, KEY_FORMAT_VERSION};
use crate::engine::output_writer::WrittenTable;
use crate::engine::plan::Plan;
use crate::engine::progress::{Event, Reporter};
use crate::engine::stage::{StageError, StageErrorTier};
use crate::engine::warning::{Warning, summarise};

/// The digest that keys an optional source file that does not exist.
const ABSENT: Digest = Digest([0; 32]);

/// How a stage ended in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    Ran,
    Cached,
    Failed,
    Skipped,
    /// `--dry-run`: would be computed.
    WouldRun,
}

impl StageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StageStatus::Ran => "ran",
            StageStatus::Cached => "cached",
            StageStatus::Failed => "failed",
            StageStatus::Skipped => "skipped",
            StageStatus::WouldRun => "would_run",
        }
    }
}

/// One stage's outcome.
#[derive(Debug, Clone)]
pub struct StageResult {
    pub name: String,
    pub status: StageStatus,
    pub reason: Option<String>,
    pub seconds: f64,
    pub key: Option<CacheKey>,
    pub manifest: Option<Manifest>,
    pub error: Option<StageError>,
}

/// All outcomes, in plan order (stages not needed by a partial run are absent).
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub results: Vec<StageResult>,
}

impl RunReport {
    pub fn failed(&self) -> impl Iterator<Item = &StageResult> {
        self.results
            .iter()
            .filter(|r| r.status == StageStatus::Failed)
    }
    pub fn get(&self, name: &str) -> Option<&StageResult> {
        self.results.iter().find(|r| r.name == name)
    }
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Worker threads; 0 means RAYON_NUM_THREADS when set, else one per core.
    pub jobs: usize,
    pub keep_going: bool,
    pub dry_run: bool,
    /// Only these stages and what they need; `None` runs everything.
    pub targets: Option<Vec<usize>>,
}

enum Outcome {
    Done(Box<StageResult>),
    /// An input blob was corrupt: the stage that produced it must run again first.
    UpstreamCorrupt(usize),
}

/// Runs the plan against the cache, computing misses in this process.
pub fn run(
    plan: &Plan,
    cache: &Cache,
    reporter: &dyn Reporter,
    options: &RunOptions,
) -> Result<RunReport, Diagnostic> {
    run_with(plan, cache, reporter, options, &LocalExecutor)
}

/// Runs the plan against the cache, computing misses with `executor`.
pub fn run_with(
    plan: &Plan,
    cache: &Cache,
    reporter: &dyn Reporter,
    options: &RunOptions,
    executor: &dyn Executor,
) -> Result<RunReport, Diagnostic> {
    let _guard = cache.run_guard()?;
    let env = Env {
        plan,
        cache,
        reporter,
        options,
        executor,
    };
    let mut state = State::new(env)?;
    reporter.event(&Event::RunStarted {
        stages: state.needed.iter().filter(|x| **x).count(),
    });
    state.serve_hits();
    if state.remaining() > 0 {
        state.run_pool()?;
    }
    state.skip_unstarted();
    reporter.event(&Event::RunFinished);
    let report = RunReport {
        results: state.results.into_iter().flatten().collect(),
    };
    if !options.dry_run && options.targets.is_none() {
        cache.record_run(&plan.study_id, &run_record(plan, &report))?;
    }
    Ok(report)
}

/// What every part of a run reads and nothing changes: cheap to copy into worker threads.
#[derive(Clone, Copy)]
struct Env<'a> {
    plan: &'a Plan,
    cache: &'a Cache,
    reporter: &'a dyn Reporter,
    options: &'a RunOptions,
    executor: &'a dyn Executor,
}

/// A stage's source digests, or why they could not be read.
type SourceDigests = Result<BTreeMap<String, Digest>, StageError>;

/// Where a run stands: which stages are needed, started, waiting, done.
struct State<'a> {
    env: Env<'a>,
    needed: Vec<bool>,
    sources: Vec<SourceDigests>,
    results: Vec<Option<StageResult>>,
    /// Upstream stages each stage still waits for.
    waiting_on: Vec<BTreeSet<usize>>,
    started: Vec<bool>,
    /// How often each stage was recomputed because its output was found corrupt.
    reruns: Vec<u8>,
    /// Start nothing new: a failure without `keep_going`, or a signal.
    stop: bool,
}

impl<'a> State<'a> {
    fn new(env: Env<'a>) -> Result<Self, Diagnostic> {
        let plan = env.plan;
        let n = plan.stages.len();
        let needed = match &env.options.targets {
            Some(t) => plan.upstream_closure(t),
            None => vec![true; n],
        };
        let sources = source_digests(plan, env.cache, &needed)?;
        Ok(Self {
            env,
            needed,
            sources,
            results: vec![None; n],
            waiting_on: plan
                .stages
                .iter()
                .map(|s| s.deps.iter().copied().collect())
                .collect(),
            started: vec![false; n],
            reruns: vec![0; n],
            stop: false,
        })
    }

    /// Whether stage `i` could start now: needed, not started, its upstream all done.
    fn ready(&self, i: usize) -> bool {
        self.needed[i] && !self.started[i] && self.waiting_on[i].is_empty()
    }

    fn remaining(&self) -> usize {
        (0..self.needed.len())
            .filter(|&i| self.needed[i] && !self.started[i])
            .count()
    }

    /// Hits first, on this thread, in plan order (a topological order, so one pass serves every
    /// stage whose upstream all hit): probing is a small read and a stat, cheaper than handing
    /// each stage to a worker and back, and a run where everything hits starts no thread at all.
    fn serve_hits(&mut self) {
        for i in 0..self.needed.len() {
            if !self.ready(i) {
                continue;
            }
            if let Some(result) = self.env.hit_here(i, &self.results, &self.sources[i]) {
                self.started[i] = true;
                self.finish(i, result);
            }
        }
    }

    /// Runs what remains, each stage as soon as its upstream is done and a slot is free: at
    /// most `jobs` stages at once, each on its own thread with a rayon pool of its own.
    ///
    /// A pool per stage, not one shared pool: a rayon thread that waits in a `join` runs any
    /// task queued in its pool meanwhile, so in a shared pool a cheap stage could pick up a
    /// whole stage or a long parallel loop of another and finish only when that did.
    fn run_pool(&mut self) -> Result<(), Diagnostic> {
        let slots = worker_threads(self.env.options.jobs);
        let (tx, rx) = mpsc::channel::<(usize, Outcome)>();
        std::thread::scope(|scope| {
            let mut queued = std::collections::VecDeque::new();
            let mut in_flight = 0usize;
            loop {
                // Nothing new after SIGINT or SIGTERM.
                self.stop |= interrupt::received().is_some();
                if self.stop {
                    queued.clear();
                } else {
                    queued.extend(self.launchable());
                }
                while in_flight < slots
                    && let Some(i) = queued.pop_front()
                {
                    self.spawn_stage(scope, i, &tx)?;
                    in_flight += 1;
                }
                if in_flight == 0 {
                    return Ok(());
                }
                let (i, outcome) = rx.recv().expect("a stage thread always reports back");
                in_flight -= 1;
                self.take(i, outcome);
            }
        })
    }

    /// Starts stage `i` on a thread of its own, which is the first thread of the stage's pool.
    fn spawn_stage<'scope>(
        &self,
        scope: &'scope std::thread::Scope<'scope, '_>,
        i: usize,
        tx: &mpsc::Sender<(usize, Outcome)>,
    ) -> Result<(), Diagnostic>
    where
        'a: 'scope,
    {
        let upstream = upstream_manifests(self.env.plan, &self.results, i);
        let sources = self.sources[i].clone();
        let jobs = self.env.executor.local_threads(self.env.options.jobs);
        let (tx, env) = (tx.clone(), self.env);
        let name = self.env.plan.stages[i].name.clone();
        let cannot = |e| Diagnostic::environment("cannot start worker threads").caused_by(e);
        std::thread::Builder::new()
            // `0:STAGE`, and `1:STAGE`, … for its pool: `top -H` shows which stage works.
            .name(format!("0:{name}"))
            .spawn_scoped(scope, move || {
                let outcome = match stage_pool(jobs, &name) {
                    Ok(pool) => pool.install(|| env.execute(i, &upstream, sources)),
                    Err(e) => env.fail(i, StageError::internal(e.to_string()), 0.0, None),
                };
                let _ = tx.send((i, outcome));
            })
            .map_err(cannot)?;
        Ok(())
    }

    /// Marks every ready stage started and returns those to compute, in plan order; a stage
    /// whose upstream failed is skipped, and a hit is served here.
    fn launchable(&mut self) -> Vec<usize> {
        let mut launch = Vec::new();
        for i in 0..self.needed.len() {
            if !self.ready(i) {
                continue;
            }
            self.started[i] = true;
            if let Some(reason) = self.upstream_failure(i) {
                self.env.reporter.event(&Event::StageSkipped {
                    stage: self.env.plan.stages[i].name.clone(),
                    reason: reason.clone(),
                });
                self.finish(i, skipped(&self.env.plan.stages[i].name, reason));
            } else if let Some(result) = self.env.hit_here(i, &self.results, &self.sources[i]) {
                self.finish(i, result);
            } else {
                launch.push(i);
            }
        }
        launch
    }

    /// Why stage `i` cannot run: an upstream stage failed or was skipped.
    fn upstream_failure(&self, i: usize) -> Option<String> {
        let plan = self.env.plan;
        plan.stages[i]
            .deps
            .iter()
            .find(|&&d| {
                self.results[d]
                    .as_ref()
                    .is_some_and(|r| matches!(r.status, StageStatus::Failed | StageStatus::Skipped))
            })
            .map(|&bad| format!("upstream `{}` did not complete", plan.stages[bad].name))
    }

    /// Takes a worker's outcome for stage `i`.
    fn take(&mut self, i: usize, outcome: Outcome) {
        let plan = self.env.plan;
        match outcome {
            Outcome::UpstreamCorrupt(up) if self.reruns[up] < 2 => {
                self.reruns[up] += 1;
                self.results[up] = None;
                self.started[up] = false;
                self.started[i] = false;
                self.waiting_on[i].insert(up);
                // Dependants of `up` that have not started wait for it again too.
                for (d, stage) in plan.stages.iter().enumerate() {
                    if !self.started[d] && stage.deps.contains(&up) {
                        self.waiting_on[d].insert(up);
                    }
                }
            }
            Outcome::UpstreamCorrupt(up) => {
                let err = StageError::internal(format!(
                    "the output of `{}` is corrupt again after recomputing it",
                    plan.stages[up].name
                ));
                self.env.reporter.event(&Event::StageFailed {
                    stage: plan.stages[i].name.clone(),
                    message: err.message.clone(),
                });
                self.finish(i, failed(&plan.stages[i].name, err, 0.0, None));
                self.stop |= !self.env.options.keep_going;
            }
            Outcome::Done(result) => {
                self.stop |= result.status == StageStatus::Failed && !self.env.options.keep_going;
                self.finish(i, *result);
            }
        }
    }

    /// Records stage `i`'s result and releases the stages waiting for it.
    fn finish(&mut self, done: usize, result: StageResult) {
        self.results[done] = Some(result);
        for (d, stage) in self.env.plan.stages.iter().enumerate() {
            if stage.deps.contains(&done) {
                self.waiting_on[d].remove(&done);
            }
        }
    }

    /// Whatever never started was stopped by a failure or a signal.
    fn skip_unstarted(&mut self) {
        for i in 0..self.needed.len() {
            if !self.needed[i] || self.results[i].is_some() {
                continue;
            }
            let reason = match interrupt::received() {
                Some(signal) => format!(
                    "not run: the run was stopped by {}",
                    interrupt::name(signal)
                ),
                None => "not run: the run stopped after a failure (use --keep-going to continue)"
                    .to_owned(),
            };
            let name = &self.env.plan.stages[i].name;
            self.env.reporter.event(&Event::StageSkipped {
                stage: name.clone(),
                reason: reason.clone(),
            });
            self.results[i] = Some(skipped(name, reason));
        }
    }
}

/// How many stages run at once, and how many threads each stage's pool has (the CLI sizes its
/// other pools by it too): `jobs`, or without it (0) what rayon would choose,
/// `RAYON_NUM_THREADS` else one per core.
pub fn worker_threads(jobs: usize) -> usize {
    if jobs > 0 {
        return jobs;
    }
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
}

/// The pool stage `name` computes on: the calling thread and `jobs − 1` more, so the stage's
/// serial parts run on its own thread and its parallel loops share work only among its own.
fn stage_pool(jobs: usize, name: &str) -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    let name = name.to_owned();
    rayon::ThreadPoolBuilder::new()
        .num_threads(worker_threads(jobs))
        .use_current_thread()
        .thread_name(move |k| format!("{k}:{name}"))
        .build()
}

/// Source digests of the needed stages: stat-cached, so a no-op run hashes nothing.
fn source_digests(
    plan: &Plan,
    cache: &Cache,
    needed: &[bool],
) -> Result<Vec<SourceDigests>, Diagnostic> {
    let mut stat = cache.stat_cache(&plan.study_id);
    let mut out = Vec::with_capacity(plan.stages.len());
    for (i, stage) in plan.stages.iter().enumerate() {
        if !needed[i] {
            out.push(Ok(BTreeMap::new()));
            continue;
        }
        let mut digests = BTreeMap::new();
        let mut failure = None;
        for (name, path) in &stage.sources {
            if stage.optional_sources.contains(name) && !path.exists() {
                digests.insert(name.clone(), ABSENT);
                continue;
            }
            match stat.digest(path) {
                Ok((d, _)) => {
                    digests.insert(name.clone(), d);
                }
                Err(e) => {
                    failure = Some(
                        StageError::data(format!("cannot read input file {}", path.display()))
                            .caused_by(e),
                    );
                    break;
                }
            }
        }
        out.push(failure.map_or(Ok(digests), Err));
    }
    cache.save_stat_cache(&stat)?;
    Ok(out)
}

/// What the run used, so `gc` keeps it.
fn run_record(plan: &Plan, report: &RunReport) -> RunRecord {
    let mut record = RunRecord::new(&plan.spec.study);
    for r in &report.results {
        if let Some(m) = &r.manifest {
            record.entries.insert(m.key.to_hex());
            record
                .blobs
                .extend(m.outputs.iter().map(|o| o.digest.to_hex()));
            record.blobs.extend(m.memos.iter().map(|(_, d)| d.to_hex()));
            record.memos.extend(m.memos.iter().map(|(k, _)| k.to_hex()));
        }
    }
    record
}

/// The manifests of stage `i`'s upstream stages that have one.
fn upstream_manifests(
    plan: &Plan,
    results: &[Option<StageResult>],
    i: usize,
) -> BTreeMap<usize, Manifest> {
    plan.stages[i]
        .deps
        .iter()
        .filter_map(|&d| {
            results[d]
                .as_ref()
                .and_then(|r| r.manifest.clone())
                .map(|m| (d, m))
        })
        .collect()
}

fn skipped(name: &str, reason: String) -> StageResult {
    StageResult {
        name: name.to_owned(),
        status: StageStatus::Skipped,
        reason: Some(reason),
        seconds: 0.0,
        key: None,
        manifest: None,
        error: None,
    }
}

fn failed(name: &str, error: StageError, seconds: f64, key: Option<CacheKey>) -> StageResult {
    StageResult {
        name: name.to_owned(),
        status: StageStatus::Failed,
        reason: Some(error.message.clone()),
        seconds,
        key,
        manifest: None,
        error: Some(error),
    }
}

/// The key of stage `i` given its upstream manifests and source digests.
pub fn stage_key(
    plan: &Plan,
    i: usize,
    upstream: &BTreeMap<usize, Manifest>,
    sources: &BTreeMap<String, Digest>,
) -> Result<CacheKey, StageError> {
    let stage = &plan.stages[i];
    let mut inputs = BTreeMap::new();
    for (port, wire) in &stage.inputs {
        let manifest = upstream.get(&wire.stage).ok_or_else(|| {
            StageError::internal(format!(
                "upstream `{}` has no result",
                plan.stages[wire.stage].name
            ))
        })?;
        let out = manifest.output(&wire.output).ok_or_else(|| {
            StageError::internal(format!(
                "upstream `{}` has no output `{}`",
                plan.stages[wire.stage].name, wire.output
            ))
        })?;
        inputs.insert(format!("port:{port}"), out.digest);
    }
    for (name, d) in sources {
        inputs.insert(format!("source:{name}"), *d);
    }
    Ok(CacheKey {
        format: KEY_FORMAT_VERSION,
        kind: stage.kind.to_owned(),
        version: stage.version,
        params: stage.prepared.canonical_params(),
        inputs,
        code: CODE_DIGEST,
    })
}

/// Serves stage `i` from the cache when `digest` (the digest of `key`) has an intact entry.
fn try_hit(
    plan: &Plan,
    cache: &Cache,
    reporter: &dyn Reporter,
    options: &RunOptions,
    i: usize,
    key: &CacheKey,
    digest: &Digest,
) -> Option<StageResult> {
    let manifest = cache.probe(digest)?;
    let name = &plan.stages[i].name;
    if !options.dry_run {
        let _ = cache.save_last_key(&plan.study_id, name, key);
    }
    // A hit does not replay every warning: one line per kind, marked as cached.
    for line in summarise(&manifest.warnings) {
        reporter.event(&Event::Warning {
            stage: name.clone(),
            message: format!("{line} (cached)"),
        });
    }
    reporter.event(&Event::StageCached {
        stage: name.clone(),
    });
    Some(StageResult {
        name: name.clone(),
        status: StageStatus::Cached,
        reason: None,
        seconds: 0.0,
        key: Some(key.clone()),
        manifest: Some(manifest),
        error: None,
    })
}

impl Env<'_> {
    /// Serves stage `i` from the cache on the calling thread, if its upstream stages all have
    /// results and its key has an intact entry.
    fn hit_here(
        &self,
        i: usize,
        results: &[Option<StageResult>],
        sources: &Result<BTreeMap<String, Digest>, StageError>,
    ) -> Option<StageResult> {
        let sources = sources.as_ref().ok()?;
        let upstream = upstream_manifests(self.plan, results, i);
        let key = stage_key(self.plan, i, &upstream, sources).ok()?;
        try_hit(
            self.plan,
            self.cache,
            self.reporter,
            self.options,
            i,
            &key,
            &key.digest(),
        )
    }

    /// The stage's failure, reported.
    fn fail(&self, i: usize, err: StageError, seconds: f64, key: Option<CacheKey>) -> Outcome {
        let name = &self.plan.stages[i].name;
        self.reporter.event(&Event::StageFailed {
            stage: name.clone(),
            message: err.message.clone(),
        });
        Outcome::Done(Box::new(failed(name, err, seconds, key)))
    }

    /// Stage `i` on a worker thread: a hit, a dry run's "would run", or computed and committed.
    fn execute(
        &self,
        i: usize,
        upstream: &BTreeMap<usize, Manifest>,
        sources: Result<BTreeMap<String, Digest>, StageError>,
    ) -> Outcome {
        let stage = &self.plan.stages[i];
        let sources = match sources {
            Ok(s) => s,
            Err(e) => return self.fail(i, e, 0.0, None),
        };
        if let Some(&missing) = stage.deps.iter().find(|d| !upstream.contains_key(d)) {
            // Only a dry run gets here: the upstream would run, so its output digest is unknown.
            let reason = format!(
                "upstream `{}` would run first",
                self.plan.stages[missing].name
            );
            return Outcome::Done(Box::new(would_run(&stage.name, Some(reason), None)));
        }
        let key = match stage_key(self.plan, i, upstream, &sources) {
            Ok(k) => k,
            Err(e) => return self.fail(i, e, 0.0, None),
        };
        let digest = key.digest();
        let hit = || {
            let (plan, cache, reporter, options) =
                (self.plan, self.cache, self.reporter, self.options);
            try_hit(plan, cache, reporter, options, i, &key, &digest)
        };
        if let Some(result) = hit() {
            return Outcome::Done(Box::new(result));
        }
        if self.options.dry_run {
            return Outcome::Done(Box::new(would_run(&stage.name, None, Some(key))));
        }
        // Miss: hold the key so a concurrent run of the same study waits instead of recomputing.
        let _lock = match self.cache.lock_key(&digest) {
            Ok(l) => l,
            Err(d) => {
                let err = cache_failure(&d);
                return self.fail(i, err, 0.0, Some(key));
            }
        };
        if let Some(result) = hit() {
            return Outcome::Done(Box::new(result));
        }
        self.compute_and_commit(i, upstream, key)
    }

    /// Computes stage `i` (its key missed and is locked) with the executor, then commits it.
    fn compute_and_commit(
        &self,
        i: usize,
        upstream: &BTreeMap<usize, Manifest>,
        key: CacheKey,
    ) -> Outcome {
        let stage = &self.plan.stages[i];
        let name = stage.name.clone();
        self.reporter.event(&Event::StageStarted {
            stage: name.clone(),
        });
        let started = Instant::now();
        let job = Job {
            plan: self.plan,
            cache: self.cache,
            reporter: self.reporter,
            index: i,
            key: &key,
            upstream,
        };
        let computed = self.executor.compute(&job);
        let seconds = started.elapsed().as_secs_f64();
        let computed = match computed {
            Ok(c) => c,
            Err(ComputeError::UpstreamCorrupt(up)) => return Outcome::UpstreamCorrupt(up),
            Err(ComputeError::Failed(e)) => return self.fail(i, e, seconds, Some(key)),
        };
        for line in summarise(&computed.warnings) {
            self.reporter.event(&Event::Warning {
                stage: name.clone(),
                message: line,
            });
        }
        let extras = Extras {
            seconds,
            warnings: computed.warnings,
            memos: computed.memos,
        };
        let outputs = Produced {
            tables: computed.outputs,
            written: computed.written,
        };
        match commit(self.cache, stage, &key, key.digest(), outputs, extras) {
            Ok(manifest) => {
                let _ = self.cache.save_last_key(&self.plan.study_id, &name, &key);
                let rows = manifest.outputs.first().map_or(0, |o| o.rows);
                self.reporter.event(&Event::StageFinished {
                    stage: name.clone(),
                    seconds,
                    rows,
                });
                Outcome::Done(Box::new(StageResult {
                    name,
                    status: StageStatus::Ran,
                    reason: None,
                    seconds,
                    key: Some(key),
                    manifest: Some(manifest),
                    error: None,
                }))
            }
            Err(e) => self.fail(i, e, seconds, Some(key)),
        }
    }
}

fn would_run(name: &str, reason: Option<String>, key: Option<CacheKey>) -> StageResult {
    StageResult {
        name: name.to_owned(),
        status: StageStatus::WouldRun,
        reason,
        seconds: 0.0,
        key,
        manifest: None,
        error: None,
    }
}

/// A computation's outputs: every table in declared order, and those of them written to files
/// (returned in `tables` as their schema with no rows).
struct Produced {
    tables: crate::engine::stage::Outputs,
    written: Vec<WrittenTable>,
}

/// What a computation records besides its outputs.
struct Extras {
    seconds: f64,
    warnings: Vec<Warning>,
    memos: Vec<(Digest, Digest)>,
}

fn commit(
    cache: &Cache,
    stage: &crate::engine::plan::PlannedStage,
    key: &CacheKey,
    digest: Digest,
    outputs: Produced,
    extras: Extras,
) -> Result<Manifest, StageError> {
    let Produced {
        tables: outputs,
        mut written,
    } = outputs;
    let declared: Vec<&str> = stage.outputs.iter().map(|o| o.name.as_str()).collect();
    let produced: Vec<&str> = outputs.iter().map(|(n, _)| n.as_str()).collect();
    if declared != produced {
        return Err(StageError::internal(format!(
            "kind `{}` declared outputs [{}] but produced [{}]",
            stage.kind,
            declared.join(", "),
            produced.join(", ")
        )));
    }
    crate::engine::finite::check_outputs(&outputs)?;
    let mut records = Vec::with_capacity(outputs.len());
    for ((name, batch), decl) in outputs.iter().zip(&stage.outputs) {
        if let Some(missing) = decl
            .columns
            .iter()
            .find(|c| batch.column_by_name(c).is_none())
        {
            return Err(StageError::internal(format!(
                "kind `{}` output `{name}` lacks declared column `{missing}`",
                stage.kind
            )));
        }
        let record = match written.iter().position(|w| w.name == *name) {
            Some(i) => store_written(cache, stage.kind, written.swap_remove(i), batch)?,
            None => store_table(cache, name, batch)?,
        };
        records.push(record);
    }
    if let Some(extra) = written.first() {
        return Err(StageError::internal(format!(
            "kind `{}` wrote output `{}` in parts but did not return it",
            stage.kind, extra.name
        )));
    }
    let manifest = Manifest {
        engine_version: ENGINE_VERSION.to_owned(),
        key: digest,
        components: key.clone(),
        outputs: records,
        seconds: extras.seconds,
        warnings: extras.warnings,
        memos: extras.memos,
    };
    cache.commit(&manifest).map_err(|d| cache_failure(&d))?;
    Ok(manifest)
}

/// A cache error (taking a key's lock, storing a blob or an entry) as the stage's internal
/// failure.
fn cache_failure(d: &Diagnostic) -> StageError {
    StageError::internal(d.message.clone()).caused_by(d.causes.join("; "))
}

/// Encodes a table returned whole and stores it.
fn store_table(cache: &Cache, name: &str, batch: &RecordBatch) -> Result<OutputRecord, StageError> {
    let bytes = crate::io::parquet::to_bytes(batch)
        .map_err(|e| StageError::internal(format!("encoding output `{name}`")).caused_by(e))?;
    cache
        .put_blob(name, &bytes, batch.num_rows() as u64)
        .map_err(|d| cache_failure(&d))
}

/// Stores a table written in parts; what the stage returned for it must be its schema alone
/// (checked against the declaration like a whole table; its rows were checked part by part).
fn store_written(
    cache: &Cache,
    kind: &str,
    table: WrittenTable,
    returned: &RecordBatch,
) -> Result<OutputRecord, StageError> {
    if returned.num_rows() != 0 {
        return Err(StageError::internal(format!(
            "kind `{kind}` returned rows for output `{}`, which it wrote in parts",
            table.name
        )));
    }
    cache.put_written(table).map_err(|d| cache_failure(&d))
}

/// The invocation that computes stage `i`, for a worker process.
pub fn invocation(
    plan: &Plan,
    cache: &Cache,
    i: usize,
    upstream: &BTreeMap<usize, Manifest>,
) -> Invocation {
    let stage = &plan.stages[i];
    let inputs = stage
        .inputs
        .iter()
        .filter_map(|(port, wire)| {
            let out = upstream.get(&wire.stage)?.output(&wire.output)?;
            Some((
                port.clone(),
                InputLocation {
                    digest: out.digest,
                    path: cache.blob_path(&out.digest),
                },
            ))
        })
        .collect();
    Invocation {
        stage: stage.name.clone(),
        kind: stage.kind.to_owned(),
        version: stage.version,
        params: stage.prepared.canonical_params(),
        study_dir: plan.study_dir.clone(),
        inputs,
        sources: stage.sources.clone(),
        outputs: stage.outputs.iter().map(|o| o.name.clone()).collect(),
        shard: None,
        memo: None,
        study: None,
    }
}

/// The exit tier of a finished run: the worst failure.
pub fn failure_tier(report: &RunReport) -> Option<crate::engine::error::Tier> {
    use crate::engine::error::Tier;
    report
        .failed()
        .map(|r| match r.error.as_ref().map(|e| e.tier) {
            Some(StageErrorTier::Data) => Tier::User,
            Some(StageErrorTier::Internal) => Tier::Environment,
            Some(StageErrorTier::Failed) | None => Tier::StageFailed,
        })
        .max()
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::engine::plan::PlanOptions;
    use crate::engine::progress::RecordingReporter;
    use crate::engine::stage::{
        Entry, Inputs, OutputDecl, Outputs, ParamDoc, Port, Stage, StageContext, StageEntry,
    };
    use crate::engine::{plan, spec};

    /// A test kind: one table `table` with one row `x = value`, whatever its input.
    struct Constant;

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ConstantParams {
        value: f64,
        #[serde(default)]
        follows: bool,
    }

    impl Stage for Constant {
        const KIND: &'static str = "constant";
        const VERSION: u32 = 1;
        const DOC: &'static str = "A one-row table.";
        const PARAMS: &'static [ParamDoc] = &[];
        type Params = ConstantParams;

        fn ports(params: &ConstantParams) -> Vec<Port> {
            if params.follows {
                vec![Port::required("up", "any table")]
            } else {
                Vec::new()
            }
        }

        fn outputs(_: &ConstantParams) -> Vec<OutputDecl> {
            vec![OutputDecl::new("table", "x")]
        }

        fn run(
            params: &ConstantParams,
            _: &Inputs,
            _: &StageContext,
        ) -> Result<Outputs, StageError> {
            let table = crate::table::TableBuilder::new()
                .f64("x", vec![params.value])
                .build()?;
            Ok(vec![("table".to_owned(), table)])
        }
    }

    /// A test kind writing `rows` rows in parts of `part` rows (a NaN at row `nan_at`, from 1),
    /// and a small second output returned whole.
    struct Streamed;

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct StreamedParams {
        rows: usize,
        part: usize,
        #[serde(default)]
        nan_at: Option<usize>,
    }

    /// Rows `from..to` of the streamed test table.
    fn streamed_rows(from: usize, to: usize, nan_at: Option<usize>) -> RecordBatch {
        let ids: Vec<String> = (from..to).map(|i| format!("id{}", i % 977)).collect();
        let values = (from..to)
            .map(|i| {
                if nan_at == Some(i + 1) {
                    f64::NAN
                } else {
                    i as f64 / 3.0
                }
            })
            .collect();
        crate::table::TableBuilder::new()
            .str("id", &ids)
            .i64("n", (from..to).map(|i| i as i64 % 5).collect())
            .f64("v", values)
            .build()
            .unwrap()
    }

    impl Stage for Streamed {
        const KIND: &'static str = "streamed";
        const VERSION: u32 = 1;
        const DOC: &'static str = "A table written in parts.";
        const PARAMS: &'static [ParamDoc] = &[];
        type Params = StreamedParams;

        fn ports(_: &StreamedParams) -> Vec<Port> {
            Vec::new()
        }

        fn outputs(_: &StreamedParams) -> Vec<OutputDecl> {
            vec![
                OutputDecl::new("big", "parts").with_columns(["id", "n", "v"]),
                OutputDecl::new("small", "whole"),
            ]
        }

        fn run(p: &StreamedParams, _: &Inputs, ctx: &StageContext) -> Result<Outputs, StageError> {
            let mut writer = ctx.output_writer("big");
            writer.write(streamed_rows(0, 0, None))?;
            for from in (0..p.rows).step_by(p.part) {
                writer.write(streamed_rows(from, p.rows.min(from + p.part), p.nan_at))?;
            }
            let big = writer.finish()?;
            let small = crate::table::TableBuilder::new()
                .f64("x", vec![1.0])
                .build()?;
            Ok(vec![("big".to_owned(), big), ("small".to_owned(), small)])
        }
    }

    #[test]
    fn a_table_written_in_parts_is_stored_with_the_bytes_of_the_whole_table() {
        static PARTS: &[&dyn StageEntry] = &[&Entry::<Streamed>::new()];
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("cache")).unwrap();
        let plan_of = |extra: &str| {
            let path = dir.path().join("study.yaml");
            let text = format!(
                "study: parts\nstages:\n  s: {{ kind: streamed, rows: 150000, part: 7001{extra} }}\n"
            );
            std::fs::write(&path, text).unwrap();
            plan::build(spec::load(&path).unwrap(), PARTS, PlanOptions::default()).unwrap()
        };
        let tmp_files = || std::fs::read_dir(cache.root().join("tmp")).unwrap().count();
        let reporter = RecordingReporter::default();
        let report = run(&plan_of(""), &cache, &reporter, &RunOptions::default()).unwrap();
        let manifest = report.get("s").unwrap().manifest.as_ref().unwrap();
        let whole = crate::io::parquet::to_bytes(&streamed_rows(0, 150_000, None)).unwrap();
        let big = &manifest.outputs[0];
        assert_eq!((big.digest, big.rows), (Digest::of(&whole), 150_000));
        assert_eq!(std::fs::read(cache.blob_path(&big.digest)).unwrap(), whole);
        assert_eq!(
            tmp_files(),
            0,
            "the temp file was moved into the blob store"
        );

        // A NaN in a later part fails the stage, naming its row in the table; nothing is kept.
        let report = run(
            &plan_of(", nan_at: 100000"),
            &cache,
            &reporter,
            &RunOptions::default(),
        )
        .unwrap();
        let failed = report.get("s").unwrap();
        assert_eq!(failed.status, StageStatus::Failed);
        let message = &failed.error.as_ref().unwrap().message;
        assert!(message.contains("column `v` row 100000 "), "{message}");
        assert!(failed.manifest.is_none());
        assert_eq!(tmp_files(), 0, "the half-written file is removed");
    }

    static REGISTRY: &[&dyn StageEntry] = &[&Entry::<Constant>::new()];

    /// `a → b → c` and `d`, with the given values.
    fn plan_with(dir: &std::path::Path, [a, b, c, d]: [f64; 4]) -> Plan {
        let path = dir.join("study.yaml");
        let text = format!(
            "study: sched\nstages:\n  \
             a: {{ kind: constant, value: {a} }}\n  \
             b: {{ kind: constant, value: {b}, follows: true, inputs: {{ up: a }} }}\n  \
             c: {{ kind: constant, value: {c}, follows: true, inputs: {{ up: b }} }}\n  \
             d: {{ kind: constant, value: {d} }}\n"
        );
        std::fs::write(&path, &text).unwrap();
        plan::build(spec::load(&path).unwrap(), REGISTRY, PlanOptions::default()).unwrap()
    }

    fn statuses(report: &RunReport) -> Vec<(String, StageStatus)> {
        let mut out: Vec<_> = report
            .results
            .iter()
            .map(|r| (r.name.clone(), r.status))
            .collect();
        out.sort_by(|x, y| x.0.cmp(&y.0));
        out
    }

    fn expect(list: [(&str, StageStatus); 4]) -> Vec<(String, StageStatus)> {
        list.iter().map(|(n, s)| ((*n).to_owned(), *s)).collect()
    }

    #[test]
    fn hits_are_served_before_and_after_misses() {
        use StageStatus::{Cached, Ran};
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("cache")).unwrap();
        let options = RunOptions::default();
        let run = |plan: &Plan| {
            let reporter = RecordingReporter::default();
            let report = run(plan, &cache, &reporter, &options).unwrap();
            (report, reporter.events.into_inner().unwrap())
        };

        let plan = plan_with(dir.path(), [1.0, 2.0, 3.0, 4.0]);
        let (report, _) = run(&plan);
        assert_eq!(
            statuses(&report),
            expect([("a", Ran), ("b", Ran), ("c", Ran), ("d", Ran)])
        );

        // Everything hits: one event per stage, in plan order, between start and finish.
        let (report, events) = run(&plan);
        assert_eq!(
            statuses(&report),
            expect([("a", Cached), ("b", Cached), ("c", Cached), ("d", Cached)])
        );
        let mut expected = vec![Event::RunStarted { stages: 4 }];
        expected.extend(plan.stages.iter().map(|s| Event::StageCached {
            stage: s.name.clone(),
        }));
        expected.push(Event::RunFinished);
        assert_eq!(events, expected);

        // A miss at the end of the chain: the hits above it are served first.
        let plan = plan_with(dir.path(), [1.0, 2.0, 5.0, 4.0]);
        let (report, _) = run(&plan);
        assert_eq!(
            statuses(&report),
            expect([("a", Cached), ("b", Cached), ("c", Ran), ("d", Cached)])
        );

        // A miss at the top: `b` reruns on its new input and writes the same bytes, so `c` is
        // a hit found after the misses (early cutoff); `d` is a hit found before them.
        let plan = plan_with(dir.path(), [7.0, 2.0, 5.0, 4.0]);
        let (report, _) = run(&plan);
        assert_eq!(
            statuses(&report),
            expect([("a", Ran), ("b", Ran), ("c", Cached), ("d", Cached)])
        );
    }

    /// A test kind whose parallel loop, with `waits`, holds every thread of its pool until the
    /// gate opens (or a minute passes); without it, a cheap parallel loop.
    struct Gated;

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct GatedParams {
        waits: bool,
    }

    /// Opened when the cheap stage has finished; records whether the waiting stage saw it open.
    static GATE: (std::sync::Mutex<bool>, std::sync::Condvar) =
        (std::sync::Mutex::new(false), std::sync::Condvar::new());
    static GATE_SEEN_OPEN: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(false);

    fn wait_for_gate() -> bool {
        let (lock, opened) = &GATE;
        let guard = lock.lock().unwrap();
        let (guard, _) = opened
            .wait_timeout_while(guard, std::time::Duration::from_secs(60), |open| !*open)
            .unwrap();
        *guard
    }

    impl Stage for Gated {
        const KIND: &'static str = "gated";
        const VERSION: u32 = 1;
        const DOC: &'static str = "A parallel loop, optionally held by a gate.";
        const PARAMS: &'static [ParamDoc] = &[];
        type Params = GatedParams;

        fn ports(_: &GatedParams) -> Vec<Port> {
            Vec::new()
        }

        fn outputs(_: &GatedParams) -> Vec<OutputDecl> {
            vec![OutputDecl::new("table", "x")]
        }

        fn run(params: &GatedParams, _: &Inputs, _: &StageContext) -> Result<Outputs, StageError> {
            use rayon::prelude::*;
            let x = if params.waits {
                // More tasks than threads, each blocking: every thread of the pool is held.
                let all_open = (0..64).into_par_iter().map(|_| wait_for_gate()).all(|o| o);
                GATE_SEEN_OPEN.store(all_open, std::sync::atomic::Ordering::SeqCst);
                1.0
            } else {
                (0..100_000u32).into_par_iter().map(f64::from).sum::<f64>()
            };
            let table = crate::table::TableBuilder::new()
                .f64("x", vec![x])
                .build()?;
            Ok(vec![("table".to_owned(), table)])
        }
    }

    /// Records events and opens the gate when `cheap` finishes.
    #[derive(Default)]
    struct GateOpener(RecordingReporter);

    impl Reporter for GateOpener {
        fn event(&self, event: &Event) {
            self.0.event(event);
            if matches!(event, Event::StageFinished { stage, .. } if stage == "cheap") {
                *GATE.0.lock().unwrap() = true;
                GATE.1.notify_all();
            }
        }
    }

    #[test]
    fn a_cheap_stage_does_not_wait_for_the_work_of_a_long_one() {
        static KINDS: &[&dyn StageEntry] = &[&Entry::<Gated>::new()];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("study.yaml");
        // `busy` comes first in plan order, so its loop holds its threads before `cheap` starts.
        let text = "study: gates\nstages:\n  \
                    busy: { kind: gated, waits: true }\n  \
                    cheap: { kind: gated, waits: false }\n";
        std::fs::write(&path, text).unwrap();
        let plan = plan::build(spec::load(&path).unwrap(), KINDS, PlanOptions::default()).unwrap();
        let cache = Cache::open(&dir.path().join("cache")).unwrap();
        let options = RunOptions {
            jobs: 2,
            ..RunOptions::default()
        };
        let reporter = GateOpener::default();
        let report = run(&plan, &cache, &reporter, &options).unwrap();

        assert!(report.failed().next().is_none());
        assert!(
            GATE_SEEN_OPEN.load(std::sync::atomic::Ordering::SeqCst),
            "`busy` gave up waiting: `cheap` could not run while `busy` held the threads"
        );
        let finished: Vec<String> = (reporter.0.events.into_inner().unwrap().into_iter())
            .filter_map(|e| match e {
                Event::StageFinished { stage, .. } => Some(stage),
                _ => None,
            })
            .collect();
        assert_eq!(finished, ["cheap", "busy"]);
    }
}
