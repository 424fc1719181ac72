//! Where a stage that misses the cache is computed. The scheduler decides what runs and when,
//! and alone commits results; an [`Executor`] only turns one stage (its key and upstream
//! manifests) into output tables: [`local::LocalExecutor`] in this process, on the worker
//! threads, and [`slurm::SlurmExecutor`] as batch jobs running `pipeline worker`.

pub mod local;
pub mod slurm;
mod slurm_state;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::cache::{Cache, Manifest};
use crate::engine::key::{CacheKey, Digest};
use crate::engine::output_writer::WrittenTable;
use crate::engine::plan::Plan;
use crate::engine::progress::Reporter;
use crate::engine::stage::{Outputs, StageError};
use crate::engine::warning::Warning;

/// One stage to compute: its key missed and the scheduler holds the key's lock.
pub struct Job<'a> {
    pub plan: &'a Plan,
    pub cache: &'a Cache,
    pub reporter: &'a dyn Reporter,
    /// Index into the plan's stages.
    pub index: usize,
    pub key: &'a CacheKey,
    /// The manifests of the stage's upstream stages.
    pub upstream: &'a BTreeMap<usize, Manifest>,
}

/// What a computation gives the scheduler to commit.
pub struct Computed {
    pub outputs: Outputs,
    /// The outputs the stage wrote to files, waiting to be stored; each is among `outputs`
    /// as its schema with no rows.
    pub written: Vec<WrittenTable>,
    pub warnings: Vec<Warning>,
    /// The memo entries used: (memo key, blob digest).
    pub memos: Vec<(Digest, Digest)>,
}

/// Why a computation gave no outputs.
pub enum ComputeError {
    /// The stage failed; the error says why.
    Failed(StageError),
    /// An input blob was corrupt: the stage that produced it (an index) must run again first.
    UpstreamCorrupt(usize),
}

impl From<StageError> for ComputeError {
    fn from(e: StageError) -> Self {
        ComputeError::Failed(e)
    }
}

/// Computes stages that missed the cache. Called from the scheduler's worker threads, one
/// call per stage, so a call may block until its stage is done.
pub trait Executor: Sync {
    fn compute(&self, job: &Job<'_>) -> Result<Computed, ComputeError>;

    /// The threads a stage computes with in this process, given `--jobs` (0: rayon's choice,
    /// `RAYON_NUM_THREADS` else one per core). Here `--jobs` sets both this and how many
    /// stages run at once; an executor that sends work elsewhere, where `--jobs` counts jobs
    /// in flight, gives the machine's own count instead.
    fn local_threads(&self, jobs: usize) -> usize {
        jobs
    }
}

/// What a stage asks of a batch node: `resources:` in the study, or a profile's entry.
/// Never part of a cache key: where a stage ran does not change its output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU cores for the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Memory, as SLURM writes it: `16G`, `500M`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<String>,
    /// Wall-clock limit: `90s`, `30m`, `1h`, `2d`, or SLURM's own `HH:MM:SS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

impl Resources {
    /// Parses and checks a `resources:` mapping.
    pub fn from_value(value: serde_json::Value) -> Result<Self, String> {
        let r: Resources = serde_json::from_value(value).map_err(|e| e.to_string())?;
        r.check()?;
        Ok(r)
    }

    /// Refuses values SLURM would reject only once the job is submitted.
    pub fn check(&self) -> Result<(), String> {
        if self.cpus == Some(0) {
            return Err("`cpus` must be at least 1".to_owned());
        }
        if let Some(mem) = &self.mem {
            memory_mb(mem)?;
        }
        if let Some(time) = &self.time {
            slurm_time(time)?;
        }
        Ok(())
    }

    /// `self`, with each field `over` gives replaced by it.
    #[must_use]
    pub fn overridden_by(&self, over: &Resources) -> Resources {
        Resources {
            cpus: over.cpus.or(self.cpus),
            mem: over.mem.clone().or_else(|| self.mem.clone()),
            time: over.time.clone().or_else(|| self.time.clone()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self == &Resources::default()
    }
}

/// `16G` → 16384: megabytes, SLURM's unit for `--mem` (binary multiples, as SLURM reads them).
pub fn memory_mb(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("memory `{text}` is not a number with a unit (e.g. 500M, 16G)"))?;
    let factor = match unit.to_ascii_uppercase().as_str() {
        "K" => return Ok(n.div_ceil(1024)),
        "" | "M" => 1,
        "G" => 1 << 10,
        "T" => 1 << 20,
        _ => return Err(format!("memory `{text}`: the unit must be K, M, G or T")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("memory `{text}` is too large"))
}

/// `90s`, `30m`, `1h`, `2d` → SLURM's `D-HH:MM:SS`; SLURM's own forms (`HH:MM:SS`, `D-HH`,
/// plain minutes) pass through.
pub fn slurm_time(text: &str) -> Result<String, String> {
    let t = text.trim();
    if !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_digit() || c == ':' || c == '-')
    {
        return Ok(t.to_owned());
    }
    let seconds = duration_seconds(t).ok_or_else(|| {
        format!("time `{text}` is not a duration (e.g. 90s, 30m, 1h, 2d or HH:MM:SS)")
    })?;
    if seconds == 0 {
        return Err(format!("time `{text}` must be more than zero"));
    }
    // SLURM counts whole minutes; round up so a 90 s limit is not cut to one minute.
    let minutes = seconds.div_ceil(60);
    Ok(format!(
        "{}-{:02}:{:02}:00",
        minutes / 1440,
        minutes / 60 % 24,
        minutes % 60
    ))
}

/// `500ms`, `2s`, `30m`, `1h`, `2d` → seconds (rounded down), or `None`.
pub fn duration_seconds(text: &str) -> Option<u64> {
    duration_ms(text).map(|ms| ms / 1000)
}

/// `500ms`, `2s`, `30m`, `1h`, `2d` → milliseconds, or `None`.
pub fn duration_ms(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let factor = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_reads_slurm_suffixes_in_binary_megabytes() {
        assert_eq!(memory_mb("16G"), Ok(16_384));
        assert_eq!(memory_mb("500M"), Ok(500));
        assert_eq!(memory_mb("500"), Ok(500), "SLURM's default unit is M");
        assert_eq!(memory_mb("1536K"), Ok(2), "rounded up");
        assert!(memory_mb("16GB").is_err());
        assert!(memory_mb("lots").is_err());
    }

    #[test]
    fn times_become_slurm_day_hour_minute_second() {
        assert_eq!(slurm_time("1h").unwrap(), "0-01:00:00");
        assert_eq!(
            slurm_time("90s").unwrap(),
            "0-00:02:00",
            "rounded up to minutes"
        );
        assert_eq!(slurm_time("2d").unwrap(), "2-00:00:00");
        assert_eq!(slurm_time("1500m").unwrap(), "1-01:00:00");
        assert_eq!(slurm_time("12:30:00").unwrap(), "12:30:00");
        assert!(slurm_time("0s").is_err());
        assert!(slurm_time("an hour").is_err());
        assert_eq!(duration_ms("2s"), Some(2000));
        assert_eq!(duration_ms("250ms"), Some(250));
        assert_eq!(duration_ms("2"), None, "a duration needs its unit");
    }

    #[test]
    fn the_profile_wins_where_both_speak() {
        let study = Resources {
            cpus: Some(8),
            mem: Some("16G".into()),
            time: None,
        };
        let profile = Resources {
            cpus: Some(2),
            mem: None,
            time: Some("1h".into()),
        };
        assert_eq!(
            study.overridden_by(&profile),
            Resources {
                cpus: Some(2),
                mem: Some("16G".into()),
                time: Some("1h".into()),
            }
        );
    }
}
