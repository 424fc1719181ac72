//! One stage invocation as data: what to run (kind, parameters), on what (input blobs and source
//! files, with digests), and which outputs to produce. The local executor builds one and runs it
//! in-process; `pipeline worker` runs one read from a file, which is the seam a distributed executor
//! (e.g. SLURM) plugs into.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::engine::cache::{Cache, CacheMemo};
use crate::engine::key::Digest;
use crate::engine::stage::{
    Inputs, MemoScope, Outputs, PreparedStage, StageContext, StageEntry, StageError,
};

/// An input table: its content digest and where its Parquet bytes are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputLocation {
    pub digest: Digest,
    pub path: PathBuf,
}

/// Everything a worker needs to compute a stage's outputs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invocation {
    pub stage: String,
    pub kind: String,
    pub version: u32,
    pub params: serde_json::Value,
    pub study_dir: PathBuf,
    pub inputs: BTreeMap<String, InputLocation>,
    pub sources: BTreeMap<String, PathBuf>,
    pub outputs: Vec<String>,
    /// Compute only this shard's memos (see [`crate::engine::stage::Stage::shards`]); no
    /// outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// The cache whose memos the stage may use and fill; without it nothing is memoised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<MemoAccess>,
    /// For a stage the plan builds from the study's other stages (a sweep), which its kind and
    /// parameters alone cannot rebuild: the study file (absolute), planned again here to take
    /// the stage of this name, whose parameters must still be `params`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study: Option<PathBuf>,
}

/// Where a worker finds memoised tables: a cache directory (one the coordinator shares with
/// the worker's machine) and the stage's memo scope.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoAccess {
    pub cache_dir: PathBuf,
    pub scope: MemoScope,
}

/// The outcome of an invocation: outputs and warnings, or the error.
pub struct Executed {
    pub outputs: Outputs,
    pub warnings: Vec<crate::engine::warning::Warning>,
    /// The memo entries used: (memo key, blob digest).
    pub memos: Vec<(Digest, Digest)>,
    /// The outputs written in parts to files (each among `outputs` as its schema alone).
    pub written: Vec<crate::engine::output_writer::WrittenTable>,
}

impl Invocation {
    /// Runs the invocation here. Input blobs are read and checked against their digests.
    pub fn execute(&self, registry: &[&'static dyn StageEntry]) -> Result<Executed, StageError> {
        self.execute_to(registry, None)
    }

    /// [`Invocation::execute`], letting the stage write large outputs in parts to files of
    /// `files` (see [`StageContext::output_writer`]) instead of holding them whole.
    pub fn execute_to(
        &self,
        registry: &[&'static dyn StageEntry],
        files: Option<Arc<dyn crate::engine::output_writer::TempFiles>>,
    ) -> Result<Executed, StageError> {
        let entry = registry
            .iter()
            .find(|e| e.kind() == self.kind)
            .ok_or_else(|| {
                StageError::internal(format!("this build has no stage kind `{}`", self.kind))
            })?;
        if entry.version() != self.version {
            return Err(StageError::internal(format!(
                "kind `{}` is version {} here, the invocation wants {}",
                self.kind,
                entry.version(),
                self.version
            )));
        }
        let prepared = match &self.study {
            Some(study) => self.replanned(study, registry)?,
            None => entry.prepare(self.params.clone())?,
        };
        let mut tables = BTreeMap::new();
        for (port, loc) in &self.inputs {
            tables.insert(port.clone(), read_checked(&loc.path, &loc.digest)?);
        }
        let mut ctx = StageContext::new(&self.stage, &self.study_dir, self.sources.clone());
        if let Some(memo) = &self.memo {
            ctx = ctx.with_memo(
                Arc::new(CacheMemo(shared_cache(&memo.cache_dir)?)),
                memo.scope.clone(),
            );
        }
        if let Some(files) = files {
            ctx = ctx.with_output_files(files);
        }
        let inputs = Inputs::new(tables);
        let outputs = match &self.shard {
            Some(shard) => prepared
                .run_shard(shard, &inputs, &ctx)
                .map(|()| Vec::new())?,
            None => prepared.run(&inputs, &ctx)?,
        };
        crate::engine::finite::check_outputs(&outputs)?;
        Ok(Executed {
            outputs,
            warnings: ctx.take_warning_records(),
            memos: ctx.take_memos(),
            written: ctx.take_written(),
        })
    }
}

impl Invocation {
    /// The stage of this name in the study planned again. Source paths were checked when the
    /// coordinator planned the study, so they are allowed anywhere here.
    fn replanned(
        &self,
        study: &Path,
        registry: &[&'static dyn StageEntry],
    ) -> Result<Box<dyn PreparedStage>, StageError> {
        let unplanned = |d: crate::engine::error::Diagnostic| {
            let mut e = StageError::internal(format!(
                "cannot plan the study {} again on {}: {}",
                study.display(),
                host_name(),
                d.message
            ))
            .with_hint("the study file must be on a filesystem every node mounts at the same path, unchanged while the run lasts");
            e.causes.extend(d.causes);
            e
        };
        let spec = crate::engine::spec::load(study).map_err(unplanned)?;
        let options = crate::engine::plan::PlanOptions {
            allow_outside: true,
        };
        let mut plan = crate::engine::plan::build(spec, registry, options).map_err(unplanned)?;
        let at = plan.index_of(&self.stage).ok_or_else(|| {
            StageError::internal(format!(
                "the study {} has no stage `{}` any more",
                study.display(),
                self.stage
            ))
            .with_hint("the study file changed while the run lasted: run it again")
        })?;
        let stage = plan.stages.swap_remove(at);
        if stage.kind != self.kind || stage.prepared.canonical_params() != self.params {
            return Err(StageError::internal(format!(
                "stage `{}` of {} is not the one the run planned",
                self.stage,
                study.display()
            ))
            .with_hint("the study file changed while the run lasted: run it again"));
        }
        Ok(stage.prepared)
    }
}

/// The coordinator's cache, which must already exist here: a worker on another machine sees
/// it only through a shared filesystem.
fn shared_cache(dir: &Path) -> Result<Cache, StageError> {
    if !dir.join("v1").is_dir() {
        return Err(StageError::internal(format!(
            "the cache directory {} is not visible on this machine ({})",
            dir.display(),
            host_name()
        ))
        .with_hint("the cache must be on a filesystem every node mounts at the same path (use `--cache-dir` on shared storage)"));
    }
    Cache::open(dir).map_err(|d| StageError::internal(d.message).caused_by(d.causes.join("; ")))
}

/// This machine's name, for messages.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "this host".to_owned())
}

/// Reads a Parquet input, refusing bytes that do not match the digest.
pub fn read_checked(path: &Path, digest: &Digest) -> Result<arrow_array::RecordBatch, StageError> {
    let bytes = std::fs::read(path).map_err(|e| {
        StageError::internal(format!(
            "cannot read input {} on {}",
            path.display(),
            host_name()
        ))
        .caused_by(e)
        .with_hint("the cache must be on a filesystem every node mounts at the same path")
    })?;
    if Digest::of(&bytes) != *digest {
        return Err(StageError::internal(format!(
            "input {} does not match its digest (corrupt cache blob)",
            path.display()
        )));
    }
    crate::io::parquet::from_bytes(bytes)
        .map_err(|e| StageError::internal(format!("cannot decode {}", path.display())).caused_by(e))
}
