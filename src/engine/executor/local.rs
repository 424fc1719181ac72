//! The local executor: a stage runs on the scheduler's worker thread, in this process. This is
//! the default and what every other executor falls back to for quick stages.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use crate::engine::cache::CacheMemo;
use crate::engine::executor::{ComputeError, Computed, Executor, Job};
use crate::engine::plan::Plan;
use crate::engine::stage::{Inputs, MemoScope, StageContext, StageError};

/// Runs stages in this process.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalExecutor;

impl Executor for LocalExecutor {
    fn compute(&self, job: &Job<'_>) -> Result<Computed, ComputeError> {
        let stage = &job.plan.stages[job.index];
        let mut tables = BTreeMap::new();
        for (port, wire) in &stage.inputs {
            let upstream = &job.upstream[&wire.stage];
            let out = upstream
                .output(&wire.output)
                .expect("checked when building the key");
            match job.cache.read_blob(&out.digest) {
                Ok(t) => {
                    tables.insert(port.clone(), t);
                }
                Err(None) => {
                    job.cache.drop_entry(&upstream.key);
                    return Err(ComputeError::UpstreamCorrupt(wire.stage));
                }
                Err(Some(d)) => return Err(StageError::internal(d.message).into()),
            }
        }
        let (progress_tx, progress_rx) = std::sync::mpsc::channel();
        let ctx = context(job).with_progress(progress_tx);
        let inputs = Inputs::new(tables).with_origins(input_origins(job.plan, job.index));
        // Progress events reach the reporter from a helper thread while the stage runs.
        let reporter = job.reporter;
        let ran = std::thread::scope(|scope| {
            scope.spawn(move || progress_rx.into_iter().for_each(|e| reporter.event(&e)));
            let ran =
                std::panic::catch_unwind(AssertUnwindSafe(|| stage.prepared.run(&inputs, &ctx)));
            ctx.end_progress();
            ran
        });
        let warnings = ctx.take_warning_records();
        let memos = ctx.take_memos();
        match ran {
            Ok(Ok(outputs)) => Ok(Computed {
                outputs,
                written: ctx.take_written(),
                warnings,
                memos,
            }),
            Ok(Err(e)) => Err(ComputeError::Failed(e)),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                Err(ComputeError::Failed(
                    StageError::internal(format!("stage kind `{}` panicked: {what}", stage.kind))
                        .with_hint(
                            "this is a bug in pipeline; please report it with the study file",
                        ),
                ))
            }
        }
    }
}

/// The context a stage runs in here: its sources, the cache's memos, its temp files for
/// outputs written in parts, and its log folder.
fn context(job: &Job<'_>) -> StageContext {
    let stage = &job.plan.stages[job.index];
    let scope = MemoScope {
        kind: job.key.kind.clone(),
        version: job.key.version,
        inputs: job.key.inputs.clone(),
    };
    StageContext::new(&stage.name, &job.plan.study_dir, stage.sources.clone())
        .with_memo(Arc::new(CacheMemo(job.cache.clone())), scope)
        .with_output_files(Arc::new(job.cache.clone()))
        .with_log_dir(
            job.cache
                .root()
                .join("logs")
                .join(job.plan.study_id.to_hex()),
        )
}

/// Port → the file the upstream stage read (its `path:` source, else its first required one),
/// relative to the study's folder, so a stage can name the file a bad table came from.
pub fn input_origins(plan: &Plan, i: usize) -> BTreeMap<String, String> {
    plan.stages[i]
        .inputs
        .iter()
        .filter_map(|(port, wire)| {
            let up = &plan.stages[wire.stage];
            let path = up.sources.get("path").or_else(|| {
                up.sources
                    .iter()
                    .find(|(name, _)| !up.optional_sources.contains(*name))
                    .map(|(_, p)| p)
            })?;
            let shown = path.strip_prefix(&plan.study_dir).unwrap_or(path);
            Some((port.clone(), shown.display().to_string()))
        })
        .collect()
}
