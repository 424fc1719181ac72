//! The SLURM executor: a stage that misses runs as a batch job, `pipeline worker` on a node,
//! and this process only submits (`sbatch`), watches (`sacct`, else `scontrol show job`, else
//! the job's exit file) and commits. SLURM does the scheduling; nothing here is a daemon.
//!
//! Each job has a folder under the cache, `jobs/<run>/<stage>[-<shard>]/`, holding its
//! invocation, its script, `stdout.log`, `stderr.log`, the worker's outputs and an exit file.
//! Workers read input blobs and write only into their own folder and the memo store (blobs
//! through temporary files and renames); the cache entries are written here, after a job has
//! completed, so nothing half-written is ever a hit.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use serde::Deserialize;

use crate::engine::cache::{ENGINE_VERSION, Manifest};
use crate::engine::error::Diagnostic;
use crate::engine::executor::local::LocalExecutor;
use crate::engine::executor::slurm_state::{Board, JobState};
use crate::engine::executor::{ComputeError, Computed, Executor, Job, Resources, slurm_time};
use crate::engine::interrupt;
use crate::engine::invocation::MemoAccess;
use crate::engine::key::{CacheKey, Digest};
use crate::engine::output_writer::WrittenTable;
use crate::engine::progress::Event;
use crate::engine::stage::{MemoScope, Shard, StageError, StageErrorTier};
use crate::engine::warning::Warning;

/// How often a job that ended on a lost node or was preempted is submitted again.
const RESUBMISSIONS: u32 = 2;
/// Lines of a failed job's stderr shown in the error.
const STDERR_TAIL: usize = 15;

/// `slurm.yaml`: how to submit jobs on one machine room. Not part of the study, so it never
/// enters a cache key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmProfile {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// Further `sbatch` options, passed as given.
    #[serde(default)]
    pub sbatch_args: Vec<String>,
    /// Resources of every job, unless the study or `stages` says otherwise.
    #[serde(default)]
    pub default: Resources,
    /// Resources per stage name; these win over the study's `resources:`.
    #[serde(default)]
    pub stages: BTreeMap<String, Resources>,
    /// The command that runs `pipeline` on a node (default: this binary's path).
    pub worker: Option<String>,
    /// Time between two looks at a job (default `2s`); the first looks come sooner.
    pub poll: Option<String>,
}

impl SlurmProfile {
    /// Reads and checks a profile.
    pub fn load(path: &Path) -> Result<Self, Diagnostic> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostic::user(format!("cannot read executor config {}", path.display())).caused_by(e)
        })?;
        let profile: SlurmProfile = serde_saphyr::from_str(&text).map_err(|e| {
            Diagnostic::user(format!("invalid executor config {}", path.display()))
                .caused_by(e.without_snippet())
                .with_hint("it takes `partition`, `account`, `qos`, `sbatch_args`, `default`, `stages`, `worker` and `poll` (see the SLURM page of the docs)")
        })?;
        profile.check().map_err(|message| {
            Diagnostic::user(format!(
                "invalid executor config {}: {message}",
                path.display()
            ))
            .with_hint(
                "memory as `16G` or `500M`; times as `30m`, `2h` or `HH:MM:SS`; `poll` as `2s`",
            )
        })?;
        Ok(profile)
    }

    fn check(&self) -> Result<(), String> {
        self.default
            .check()
            .map_err(|e| format!("`default`: {e}"))?;
        for (stage, r) in &self.stages {
            r.check().map_err(|e| format!("`stages.{stage}`: {e}"))?;
        }
        if let Some(poll) = &self.poll {
            match super::duration_ms(poll) {
                Some(ms) if ms > 0 => {}
                _ => return Err(format!("`poll: {poll}` is not a duration such as `2s`")),
            }
        }
        Ok(())
    }

    fn poll(&self) -> Duration {
        let ms = self.poll.as_deref().and_then(super::duration_ms);
        Duration::from_millis(ms.unwrap_or(2000))
    }
}

/// Submits stages as SLURM jobs; see the module documentation.
pub struct SlurmExecutor {
    profile: SlurmProfile,
    /// The study's `resources:` per stage name.
    study_resources: BTreeMap<String, Resources>,
    worker: String,
    /// This run's job folders.
    run_dir: PathBuf,
    /// Jobs (and array tasks) submitted and not yet seen to end, so a signal can cancel them.
    in_flight: Mutex<BTreeSet<String>>,
    /// Free job slots (`--jobs`).
    slots: (Mutex<usize>, Condvar),
    /// The last look at the jobs in flight, shared by the stages waiting.
    board: Board,
}

impl SlurmExecutor {
    /// An executor for one run. Fails when `sbatch` cannot be run here.
    pub fn new(
        profile: SlurmProfile,
        study_resources: BTreeMap<String, Resources>,
        run_dir: PathBuf,
        max_jobs: usize,
    ) -> Result<Self, Diagnostic> {
        let probe = Command::new("sbatch").arg("--version").output();
        if !probe.as_ref().is_ok_and(|o| o.status.success()) {
            let mut d = Diagnostic::environment("`--executor slurm` cannot run `sbatch`")
                .with_hint("run on a SLURM login node (SLURM's commands on PATH), or use `--executor local`");
            match probe {
                Err(e) => d = d.caused_by(e),
                Ok(o) => d = d.caused_by(String::from_utf8_lossy(&o.stderr).trim()),
            }
            return Err(d);
        }
        let worker = match &profile.worker {
            Some(w) => w.clone(),
            None => {
                let exe = std::env::current_exe().map_err(|e| {
                    Diagnostic::environment("cannot find the running pipeline binary")
                        .caused_by(e)
                        .with_hint("set `worker:` in the executor config")
                })?;
                shell_quote(&exe.display().to_string())
            }
        };
        Ok(Self {
            profile,
            study_resources,
            worker,
            run_dir,
            in_flight: Mutex::new(BTreeSet::new()),
            slots: (Mutex::new(max_jobs.max(1)), Condvar::new()),
            board: Board::default(),
        })
    }

    /// The resources of stage `name`: the profile's default, then the study's `resources:`,
    /// then the profile's entry for the stage.
    fn resources(&self, name: &str) -> Resources {
        let mut r = self.profile.default.clone();
        if let Some(study) = self.study_resources.get(name) {
            r = r.overridden_by(study);
        }
        if let Some(profile) = self.profile.stages.get(name) {
            r = r.overridden_by(profile);
        }
        r
    }

    /// Whether the stage runs here: it cannot go through a worker, or its kind is quick and
    /// neither the study nor the profile asks for a job.
    fn runs_here(&self, job: &Job<'_>) -> bool {
        let stage = &job.plan.stages[job.index];
        !stage.prepared.has_invocation()
            || (stage.prepared.quick()
                && !self.study_resources.contains_key(&stage.name)
                && !self.profile.stages.contains_key(&stage.name))
    }
}

impl Executor for SlurmExecutor {
    /// `--jobs` counts jobs in flight (32 by default), not threads here: a stage that runs in
    /// this process (a merge, a sweep's summary) takes rayon's own count.
    fn local_threads(&self, _jobs: usize) -> usize {
        0
    }

    fn compute(&self, job: &Job<'_>) -> Result<Computed, ComputeError> {
        let shards = job.plan.stages[job.index].prepared.shards();
        if self.runs_here(job) {
            // A stage built from the study's other stages (a sweep) has no job of its own, but
            // its shards do: their jobs plan the study again, and the merge runs here.
            if !job.plan.stages[job.index].prepared.has_invocation() && !shards.is_empty() {
                self.run_shards(job, &shards, &mut Watch::new(job))?;
            }
            return LocalExecutor.compute(job);
        }
        let mut watch = Watch::new(job);
        if !shards.is_empty() {
            self.run_shards(job, &shards, &mut watch)?;
        }
        let spec = self.job_spec(job, None)?;
        watch.total += 1;
        self.run_job(&spec, &mut watch)
    }
}

/// One job to submit: a stage, or one shard of it.
struct JobSpec {
    /// `pipeline-<stage>` or `pipeline-<stage>-<shard>`.
    name: String,
    stage: String,
    /// The stage's outputs, in declared order.
    outputs: Vec<String>,
    dir: PathBuf,
}

/// A submitted job, or one task of an array job.
struct Submitted {
    /// `123`, or `123_4` for task 4 of array job 123.
    id: String,
    spec_index: usize,
    resubmitted: u32,
}

impl SlurmExecutor {
    /// Writes a job's folder: invocation and script.
    fn job_spec(&self, job: &Job<'_>, shard: Option<&Shard>) -> Result<JobSpec, StageError> {
        let stage = &job.plan.stages[job.index];
        let suffix = shard.map_or(String::new(), |s| format!("-{}", s.name));
        let dir = self.run_dir.join(format!("{}{suffix}", stage.name));
        let mut invocation =
            crate::engine::scheduler::invocation(job.plan, job.cache, job.index, job.upstream);
        invocation.shard = shard.map(|s| s.name.clone());
        if !stage.prepared.has_invocation() {
            invocation.study = Some(study_path(job.plan)?);
        }
        invocation.memo = Some(MemoAccess {
            cache_dir: job
                .cache
                .root()
                .parent()
                .expect("the cache root is a folder inside the cache directory")
                .to_path_buf(),
            scope: MemoScope {
                kind: job.key.kind.clone(),
                version: job.key.version,
                inputs: job.key.inputs.clone(),
            },
        });
        let io = |e: std::io::Error| {
            StageError::internal(format!("cannot write the job folder {}", dir.display()))
                .caused_by(e)
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let inv = dir.join("invocation.json");
        let text = serde_json::to_vec_pretty(&invocation).expect("invocations serialise");
        std::fs::write(&inv, text).map_err(io)?;
        let script = format!(
            "#!/bin/sh\n# {name}: written by `pipeline run --executor slurm`.\n{worker} worker {inv} --out {out}\ncode=$?\necho $code > {exit}.tmp && mv {exit}.tmp {exit}\nexit $code\n",
            name = stage.name,
            worker = self.worker,
            inv = shell_quote(&inv.display().to_string()),
            out = shell_quote(&dir.join("out").display().to_string()),
            exit = shell_quote(&dir.join("exit").display().to_string()),
        );
        std::fs::write(dir.join("job.sh"), script).map_err(io)?;
        Ok(JobSpec {
            name: format!("pipeline-{}{suffix}", stage.name),
            stage: stage.name.clone(),
            outputs: invocation.outputs.clone(),
            dir,
        })
    }

    /// Runs the shards whose keys miss, as one array job (one task per shard; a lone shard as
    /// a plain job), and records each shard as it completes.
    fn run_shards(
        &self,
        job: &Job<'_>,
        shards: &[Shard],
        watch: &mut Watch<'_>,
    ) -> Result<(), ComputeError> {
        let mut specs = Vec::new();
        let mut keys = Vec::new();
        for shard in shards {
            let key = shard_key(job.key, shard);
            if job.cache.probe(&key.digest()).is_some() {
                continue;
            }
            specs.push(self.job_spec(job, Some(shard))?);
            keys.push(key);
        }
        if specs.is_empty() {
            return Ok(());
        }
        watch.total += specs.len();
        let (jobs, held) = if specs.len() == 1 {
            let held = self.take_slots(1);
            match self.sbatch(&specs[0]) {
                Ok(id) => (vec![self.submitted(id, 0)], held),
                Err(e) => {
                    self.release_slots(held);
                    return Err(e.into());
                }
            }
        } else {
            let held = self.take_slots(specs.len());
            match self.sbatch_array(job, &specs, held) {
                Ok(id) => (
                    (0..specs.len())
                        .map(|k| self.submitted(format!("{id}_{k}"), k))
                        .collect(),
                    held,
                ),
                Err(e) => {
                    self.release_slots(held);
                    return Err(e.into());
                }
            }
        };
        let results = self.wait_all(&specs, jobs, held, watch);
        watch.done_before += specs.len();
        for (k, result) in results {
            let computed = result?;
            let key = &keys[k];
            let manifest = Manifest {
                engine_version: ENGINE_VERSION.to_owned(),
                key: key.digest(),
                components: key.clone(),
                outputs: Vec::new(),
                seconds: 0.0,
                warnings: computed.warnings,
                memos: computed.memos,
            };
            // A shard that is not recorded only runs again next time: not worth failing for.
            let _ = job.cache.commit(&manifest);
        }
        Ok(())
    }

    /// Submits one job and waits for it.
    fn run_job(&self, spec: &JobSpec, watch: &mut Watch<'_>) -> Result<Computed, ComputeError> {
        let held = self.take_slots(1);
        let id = self
            .sbatch(spec)
            .inspect_err(|_| self.release_slots(held))?;
        let jobs = vec![self.submitted(id, 0)];
        let mut results = self.wait_all(std::slice::from_ref(spec), jobs, held, watch);
        results.pop().expect("one job, one result").1
    }

    /// Notes a job (or array task) as in flight, so a signal cancels it.
    fn submitted(&self, id: String, spec_index: usize) -> Submitted {
        self.in_flight
            .lock()
            .expect("job list lock is never poisoned")
            .insert(id.clone());
        Submitted {
            id,
            spec_index,
            resubmitted: 0,
        }
    }

    /// Takes between one and `want` job slots (`--jobs`), waiting for at least one.
    fn take_slots(&self, want: usize) -> usize {
        let (free, freed) = &self.slots;
        let mut free = free.lock().expect("slot lock is never poisoned");
        while *free == 0 {
            free = freed.wait(free).expect("slot lock is never poisoned");
        }
        let taken = want.clamp(1, *free);
        *free -= taken;
        taken
    }

    fn release_slots(&self, n: usize) {
        if n == 0 {
            return;
        }
        let (free, freed) = &self.slots;
        *free.lock().expect("slot lock is never poisoned") += n;
        freed.notify_all();
    }

    /// `sbatch` with the options every job gets: name, no requeue, the profile's partition,
    /// account and QOS, the resources of `stage`, and the profile's own arguments.
    fn sbatch_command(&self, name: &str, stage: &str) -> Result<Command, StageError> {
        let mut cmd = Command::new("sbatch");
        cmd.arg("--parsable")
            .arg(format!("--job-name={name}"))
            // Lost nodes and preemption are resubmitted here, counted, rather than requeued.
            .arg("--no-requeue");
        for (flag, value) in [
            ("partition", &self.profile.partition),
            ("account", &self.profile.account),
            ("qos", &self.profile.qos),
        ] {
            if let Some(v) = value {
                cmd.arg(format!("--{flag}={v}"));
            }
        }
        let r = self.resources(stage);
        if let Some(cpus) = r.cpus {
            cmd.arg(format!("--cpus-per-task={cpus}"));
        }
        if let Some(mem) = &r.mem {
            cmd.arg(format!("--mem={mem}"));
        }
        if let Some(time) = &r.time {
            cmd.arg(format!(
                "--time={}",
                slurm_time(time).map_err(StageError::data)?
            ));
        }
        cmd.args(&self.profile.sbatch_args);
        Ok(cmd)
    }

    /// `sbatch` one job: its id.
    fn sbatch(&self, spec: &JobSpec) -> Result<String, StageError> {
        clear_stale(spec);
        let mut cmd = self.sbatch_command(&spec.name, &spec.stage)?;
        cmd.arg(format!(
            "--output={}",
            spec.dir.join("stdout.log").display()
        ))
        .arg(format!("--error={}", spec.dir.join("stderr.log").display()))
        .arg(format!("--chdir={}", spec.dir.display()))
        .arg(spec.dir.join("job.sh"));
        submit_command(cmd, &spec.stage, &spec.name)
    }

    /// `sbatch --array=0-(n-1)%held`: one task per shard, named `pipeline-<stage>` (SLURM
    /// gives all tasks of an array one name). Task `i` runs the job of folder `<stage>.tasks/i`,
    /// a link to the shard's folder `<stage>-<shard>`, where its stdout and stderr go too.
    fn sbatch_array(
        &self,
        job: &Job<'_>,
        specs: &[JobSpec],
        held: usize,
    ) -> Result<String, StageError> {
        let stage = &job.plan.stages[job.index].name;
        let tasks = self.run_dir.join(format!("{stage}.tasks"));
        let io = |e: std::io::Error| {
            StageError::internal(format!("cannot write the job folder {}", tasks.display()))
                .caused_by(e)
        };
        std::fs::create_dir_all(&tasks).map_err(io)?;
        for (i, spec) in specs.iter().enumerate() {
            clear_stale(spec);
            let link = tasks.join(i.to_string());
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&spec.dir, &link).map_err(io)?;
        }
        let script = format!(
            "#!/bin/sh\n# pipeline-{stage}: one task per shard; task i runs the job in folder i.\nexec sh \"$SLURM_ARRAY_TASK_ID/job.sh\"\n"
        );
        std::fs::write(tasks.join("array.sh"), script).map_err(io)?;
        let name = format!("pipeline-{stage}");
        let mut cmd = self.sbatch_command(&name, stage)?;
        cmd.arg(format!("--array=0-{}%{held}", specs.len() - 1))
            .arg(format!(
                "--output={}",
                tasks.join("%a/stdout.log").display()
            ))
            .arg(format!("--error={}", tasks.join("%a/stderr.log").display()))
            .arg(format!("--chdir={}", tasks.display()))
            .arg(tasks.join("array.sh"));
        submit_command(cmd, stage, &name)
    }

    /// Waits until every job has ended: resubmits lost ones (a lost array task as a job of
    /// its own, `pipeline-<stage>-<shard>`), cancels all on a signal, and gives back the `held`
    /// job slots as fewer jobs remain than it holds.
    fn wait_all(
        &self,
        specs: &[JobSpec],
        mut jobs: Vec<Submitted>,
        mut held: usize,
        watch: &mut Watch<'_>,
    ) -> Vec<(usize, Result<Computed, ComputeError>)> {
        let mut done = Vec::new();
        let mut unknown: BTreeMap<String, u32> = BTreeMap::new();
        let mut nap = Duration::from_millis(250).min(self.profile.poll());
        while !jobs.is_empty() {
            if Self::sleep_unless_signalled(nap) {
                self.cancel(&jobs);
                for j in jobs.drain(..) {
                    done.push((j.spec_index, Err(cancelled(&specs[j.spec_index]))));
                }
                break;
            }
            nap = (nap * 2).min(self.profile.poll());
            let states = self.states(&jobs, specs);
            let mut still = Vec::new();
            for (mut j, state) in jobs.drain(..).zip(states.iter().cloned()) {
                let spec = &specs[j.spec_index];
                match state {
                    JobState::Waiting(_) => still.push(j),
                    JobState::Unknown if *unknown.entry(j.id.clone()).or_default() < 5 => {
                        *unknown.get_mut(&j.id).expect("just counted") += 1;
                        still.push(j);
                    }
                    JobState::Lost(_) if j.resubmitted < RESUBMISSIONS => {
                        self.ended(&j.id);
                        j.resubmitted += 1;
                        match self.sbatch(spec) {
                            Ok(id) => {
                                self.in_flight
                                    .lock()
                                    .expect("job list lock is never poisoned")
                                    .insert(id.clone());
                                j.id = id;
                                still.push(j);
                            }
                            Err(e) => done.push((j.spec_index, Err(e.into()))),
                        }
                    }
                    ended => {
                        self.ended(&j.id);
                        done.push((j.spec_index, finished(spec, &j.id, &ended)));
                    }
                }
            }
            watch.update(&states, done.len());
            jobs = still;
            let spare = held.saturating_sub(jobs.len());
            self.release_slots(spare);
            held -= spare;
        }
        self.release_slots(held);
        done.sort_by_key(|(k, _)| *k);
        done
    }

    /// The states of `jobs`, from one look at every job in flight; a job SLURM no longer lists
    /// from its exit file.
    fn states(&self, jobs: &[Submitted], specs: &[JobSpec]) -> Vec<JobState> {
        let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
        let in_flight = self
            .in_flight
            .lock()
            .expect("job list lock is never poisoned")
            .clone();
        let listed = self.board.states(&ids, &in_flight);
        jobs.iter()
            .zip(listed)
            .map(|(j, state)| state.unwrap_or_else(|| exit_file_state(&specs[j.spec_index].dir)))
            .collect()
    }

    /// Sleeps `nap` in short steps; true as soon as SIGINT or SIGTERM has come.
    fn sleep_unless_signalled(nap: Duration) -> bool {
        let until = Instant::now() + nap;
        while Instant::now() < until {
            if interrupt::received().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50).min(nap));
        }
        interrupt::received().is_some()
    }

    fn ended(&self, id: &str) {
        self.in_flight
            .lock()
            .expect("job list lock is never poisoned")
            .remove(id);
    }

    /// `scancel` the jobs (array tasks by their own ids).
    fn cancel(&self, jobs: &[Submitted]) {
        if jobs.is_empty() {
            return;
        }
        let _ = Command::new("scancel")
            .args(jobs.iter().map(|j| j.id.as_str()))
            .output();
        for j in jobs {
            self.ended(&j.id);
        }
    }
}

impl Drop for SlurmExecutor {
    /// Cancels whatever is still submitted when the run ends early.
    fn drop(&mut self) {
        let ids: Vec<String> = self
            .in_flight
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        if !ids.is_empty() {
            let _ = Command::new("scancel").args(&ids).output();
        }
    }
}

/// Removes what a previous submission of the job left: its exit file and result.
fn clear_stale(spec: &JobSpec) {
    for stale in ["exit", "out/result.json"] {
        let _ = std::fs::remove_file(spec.dir.join(stale));
    }
}

/// Runs a prepared `sbatch`: the job's id.
fn submit_command(mut cmd: Command, stage: &str, name: &str) -> Result<String, StageError> {
    let out = cmd.output().map_err(|e| {
        StageError::internal(format!("stage `{stage}`: cannot run sbatch")).caused_by(e)
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let id = stdout.trim().split(';').next().unwrap_or("").to_owned();
    if !out.status.success() || id.is_empty() {
        return Err(
            StageError::internal(format!("stage `{stage}`: sbatch refused job `{name}`"))
                .caused_by(String::from_utf8_lossy(&out.stderr).trim())
                .with_hint(
                    "check `partition`, `account`, `qos` and `sbatch_args` in the executor config",
                ),
        );
    }
    Ok(id)
}

/// The state a job's exit file tells, for a job SLURM has already forgotten.
fn exit_file_state(dir: &Path) -> JobState {
    match std::fs::read_to_string(dir.join("exit")) {
        Ok(code) if code.trim() == "0" => JobState::Ended("COMPLETED".to_owned()),
        Ok(_) => JobState::Ended("FAILED".to_owned()),
        Err(_) => JobState::Unknown,
    }
}

/// What the worker wrote in `out/result.json`.
#[derive(Deserialize)]
struct WorkerResult {
    status: String,
    #[serde(default)]
    outputs: BTreeMap<String, WorkerOutput>,
    #[serde(default)]
    warnings: Vec<Warning>,
    #[serde(default)]
    memos: Vec<(Digest, Digest)>,
    error: Option<StageError>,
}

#[derive(Deserialize)]
struct WorkerOutput {
    path: PathBuf,
    rows: u64,
}

/// A job that ended: its outputs, or the failure with the state and its stderr's last lines.
fn finished(spec: &JobSpec, id: &str, state: &JobState) -> Result<Computed, ComputeError> {
    let word = match state {
        JobState::Ended(w) | JobState::Lost(w) | JobState::Waiting(w) => w.as_str(),
        JobState::Unknown => "UNKNOWN",
    };
    let result: Option<WorkerResult> = std::fs::read(spec.dir.join("out/result.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    match result {
        Some(r) if word == "COMPLETED" && r.status == "ok" => read_outputs(spec, r),
        result => Err(job_failure(spec, id, word, result.and_then(|r| r.error)).into()),
    }
}

/// The worker's output tables in the stage's declared order, each taken over as a written
/// file (their bytes are what the scheduler stores, so nothing is decoded and encoded again,
/// and no table is held whole here); only each file's schema is read.
fn read_outputs(spec: &JobSpec, mut result: WorkerResult) -> Result<Computed, ComputeError> {
    let mut outputs = Vec::with_capacity(result.outputs.len());
    let mut written = Vec::with_capacity(result.outputs.len());
    let declared = spec
        .outputs
        .iter()
        .filter_map(|n| result.outputs.remove_entry(n));
    for (name, out) in declared.collect::<Vec<_>>() {
        let cannot = |what: &str, e: String| {
            StageError::internal(format!(
                "stage `{}`: cannot {what} the job's output {}",
                spec.stage,
                out.path.display()
            ))
            .caused_by(e)
        };
        let schema = crate::io::parquet::schema_of(&out.path)
            .map_err(|e| cannot("read the schema of", e.to_string()))?;
        let table = WrittenTable::adopt(&name, out.path.clone(), out.rows)
            .map_err(|e| cannot("hash", e.to_string()))?;
        outputs.push((name, RecordBatch::new_empty(schema)));
        written.push(table);
    }
    Ok(Computed {
        outputs,
        written,
        warnings: result.warnings,
        memos: result.memos,
    })
}

/// The job's failure: the worker's own error when it wrote one, with the job, its state and
/// the last lines of its stderr.
fn job_failure(spec: &JobSpec, id: &str, state: &str, worker: Option<StageError>) -> StageError {
    let stderr = spec.dir.join("stderr.log");
    let mut err = worker.unwrap_or_else(|| {
        let tier = if state == "FAILED" {
            StageErrorTier::Internal
        } else {
            StageErrorTier::Failed
        };
        let mut e = StageError::failed(format!("its SLURM job ended {state}"));
        e.tier = tier;
        e
    });
    err.causes.push(format!(
        "SLURM job {id} (`{}`) ended {state}; stdout and stderr are in {}",
        spec.name,
        spec.dir.display()
    ));
    let tail = tail_lines(&stderr, STDERR_TAIL);
    if !tail.is_empty() {
        let mut text = format!("last lines of {}:", stderr.display());
        for line in tail {
            let _ = write!(text, "\n    {line}");
        }
        err.causes.push(text);
    }
    let hint = match state {
        "TIMEOUT" => Some(format!(
            "give the stage more time: `time:` under `stages: {{ {}: … }}` in the executor config, or in the stage's `resources:`",
            spec.stage
        )),
        "OUT_OF_MEMORY" => Some(format!(
            "give the stage more memory: `mem:` under `stages: {{ {}: … }}` in the executor config, or in the stage's `resources:`",
            spec.stage
        )),
        _ => None,
    };
    if let Some(h) = hint {
        err.hint = Some(h);
    } else if err.hint.is_none() {
        err.hint = Some(format!("see {}", stderr.display()));
    }
    err
}

/// The last `n` lines of a file, or none.
fn tail_lines(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| (*l).to_owned())
        .collect()
}

fn cancelled(spec: &JobSpec) -> ComputeError {
    ComputeError::Failed(StageError::failed(format!(
        "cancelled: SLURM job `{}` was cancelled with scancel",
        spec.name
    )))
}

/// The study file as a worker on another machine finds it: absolute.
fn study_path(plan: &crate::engine::plan::Plan) -> Result<PathBuf, StageError> {
    std::path::absolute(&plan.spec.source.path).map_err(|e| {
        StageError::internal(format!(
            "cannot make the study path {} absolute",
            plan.spec.source.path.display()
        ))
        .caused_by(e)
    })
}

/// A shard's key: the stage's kind and version, the shard's name, the stage's parameters and
/// the digests of the inputs the shard depends on (a pattern source's files included).
fn shard_key(stage: &CacheKey, shard: &Shard) -> CacheKey {
    let inputs = stage
        .inputs
        .iter()
        .filter(|(name, _)| {
            shard.depends_on.iter().any(|dep| {
                name.strip_prefix(dep.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
        })
        .map(|(name, d)| (name.clone(), *d))
        .collect();
    CacheKey {
        format: stage.format,
        kind: format!("{}@{}", stage.kind, shard.name),
        version: stage.version,
        params: stage.params.clone(),
        inputs,
        code: stage.code,
    }
}

/// Reports a stage's jobs pending, running and done as they change.
struct Watch<'a> {
    job: &'a Job<'a>,
    /// The stage's jobs: its shards' and its own.
    total: usize,
    /// Jobs of the stage done before the current wait (its shards, while the merge runs).
    done_before: usize,
    last: (usize, usize, usize),
}

impl<'a> Watch<'a> {
    fn new(job: &'a Job<'a>) -> Self {
        Self {
            job,
            total: 0,
            done_before: 0,
            last: (usize::MAX, 0, 0),
        }
    }

    fn update(&mut self, states: &[JobState], done: usize) {
        let done = self.done_before + done;
        let running = states
            .iter()
            .filter(|s| matches!(s, JobState::Waiting(w) if w != "PENDING"))
            .count();
        let pending = self.total.saturating_sub(running + done);
        let now = (pending, running, done);
        if now != self.last {
            self.last = now;
            self.job.reporter.event(&Event::Jobs {
                stage: self.job.plan.stages[self.job.index].name.clone(),
                pending,
                running,
                done,
            });
        }
    }
}

/// `text` in single quotes for `sh`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_refuse_unknown_keys_and_bad_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slurm.yaml");
        std::fs::write(
            &path,
            "partition: short\nsbatch_args: [--exclusive]\ndefault: { cpus: 2, mem: 4G, time: 1h }\nstages: { big: { cpus: 8 } }\npoll: 500ms\n",
        )
        .unwrap();
        let p = SlurmProfile::load(&path).unwrap();
        assert_eq!(p.partition.as_deref(), Some("short"));
        assert_eq!(p.stages["big"].cpus, Some(8));
        assert_eq!(p.poll(), Duration::from_millis(500));

        std::fs::write(&path, "partitions: short\n").unwrap();
        let err = SlurmProfile::load(&path).unwrap_err();
        assert!(
            err.message.contains("invalid executor config"),
            "{}",
            err.message
        );
        std::fs::write(&path, "default: { mem: lots }\n").unwrap();
        let err = SlurmProfile::load(&path).unwrap_err();
        assert!(
            err.message.contains("`default`: memory `lots`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn shard_keys_depend_only_on_their_own_inputs() {
        let stage = CacheKey {
            format: 1,
            kind: "k".into(),
            version: 3,
            params: serde_json::json!({"a": 1}),
            inputs: BTreeMap::from([
                ("source:y1".to_owned(), Digest::of(b"1")),
                ("source:y2".to_owned(), Digest::of(b"2")),
            ]),
            code: Digest::of(b"code"),
        };
        let shard = Shard {
            name: "y1".into(),
            depends_on: vec!["source:y1".into()],
        };
        let mut changed = stage.clone();
        changed
            .inputs
            .insert("source:y2".to_owned(), Digest::of(b"two"));
        assert_eq!(shard_key(&stage, &shard), shard_key(&changed, &shard));
        changed
            .inputs
            .insert("source:y1".to_owned(), Digest::of(b"one"));
        assert_ne!(shard_key(&stage, &shard), shard_key(&changed, &shard));
    }

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
