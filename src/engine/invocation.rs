//! One stage invocation as data: what to run (kind, parameters), on what (input blobs and source
//! files, with digests), and which outputs to produce. The local executor builds one and runs it
//! in-process; `pipeline worker` runs one read from a file, which is the seam a distributed executor
//! (e.g. SLURM) plugs into.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::key::Digest;
use crate::engine::stage::{Inputs, Outputs, StageContext, StageEntry, StageError};

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
}

/// The outcome of an invocation: outputs and warnings, or the error.
pub struct Executed {
    pub outputs: Outputs,
    pub warnings: Vec<crate::engine::warning::Warning>,
}

impl Invocation {
    /// Runs the invocation here. Input blobs are read and checked against their digests.
    pub fn execute(&self, registry: &[&'static dyn StageEntry]) -> Result<Executed, StageError> {
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
        let prepared = entry.prepare(self.params.clone())?;
        let mut tables = BTreeMap::new();
        for (port, loc) in &self.inputs {
            tables.insert(port.clone(), read_checked(&loc.path, &loc.digest)?);
        }
        let ctx = StageContext::new(&self.stage, &self.study_dir, self.sources.clone());
        let outputs = prepared.run(&Inputs::new(tables), &ctx)?;
        crate::engine::finite::check_outputs(&outputs)?;
        Ok(Executed {
            outputs,
            warnings: ctx.take_warning_records(),
        })
    }
}

/// Reads a Parquet input, refusing bytes that do not match the digest.
pub fn read_checked(path: &Path, digest: &Digest) -> Result<arrow_array::RecordBatch, StageError> {
    let bytes = std::fs::read(path).map_err(|e| {
        StageError::internal(format!("cannot read input {}", path.display())).caused_by(e)
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
