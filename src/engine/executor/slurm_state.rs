//! What SLURM says of the jobs a run has in flight: one `sacct` (where SLURM keeps
//! accounting) or one `squeue --states=all` per look, for every job of every stage at once,
//! shared by the threads that wait for them. A job neither lists is looked up in its exit
//! file by the caller.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long one look serves every waiting thread.
const FRESH: Duration = Duration::from_millis(200);

/// A job's state as SLURM names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum JobState {
    /// Pending, running, completing, suspended: look again later.
    Waiting(String),
    /// Ended on a failed node or preempted: worth submitting again.
    Lost(String),
    /// Any other end: COMPLETED, FAILED, TIMEOUT, OUT_OF_MEMORY, CANCELLED, …
    Ended(String),
    /// SLURM does not know the job and it left no exit file (yet).
    Unknown,
}

impl JobState {
    /// `RUNNING`, `CANCELLED by 0`, `NODE_FAIL` → the state.
    pub(super) fn from_word(text: &str) -> Self {
        let word = text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches('+');
        match word {
            "" => JobState::Unknown,
            "PENDING" | "CONFIGURING" | "RUNNING" | "COMPLETING" | "SUSPENDED" | "REQUEUED"
            | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESIZING" | "SIGNALING" | "STAGE_OUT" => {
                JobState::Waiting(word.to_owned())
            }
            "NODE_FAIL" | "PREEMPTED" => JobState::Lost(word.to_owned()),
            _ => JobState::Ended(word.to_owned()),
        }
    }
}

/// The last look at the jobs in flight, shared by the waiting threads.
pub(super) struct Board {
    last: Mutex<Look>,
    /// How long one look serves every waiting thread.
    fresh: Duration,
    /// Whether `sacct` failed (without an accounting database it always does).
    no_accounting: AtomicBool,
    /// Looks taken so far.
    looks: AtomicUsize,
}

impl Default for Board {
    fn default() -> Self {
        Self {
            last: Mutex::default(),
            fresh: FRESH,
            no_accounting: AtomicBool::new(false),
            looks: AtomicUsize::new(0),
        }
    }
}

#[derive(Default)]
struct Look {
    at: Option<Instant>,
    /// The ids asked about.
    asked: BTreeSet<String>,
    /// What SLURM listed, by job id (`123`) or array task id (`123_4`).
    states: BTreeMap<String, JobState>,
}

impl Board {
    /// The states of `ids` (`None`: SLURM did not list it). Looks again, for all of
    /// `in_flight` at once, unless the last look is fresh and asked about every one of `ids`.
    pub(super) fn states(
        &self,
        ids: &[String],
        in_flight: &BTreeSet<String>,
    ) -> Vec<Option<JobState>> {
        let mut look = self.last.lock().expect("look lock is never poisoned");
        let fresh = look.at.is_some_and(|t| t.elapsed() < self.fresh)
            && ids.iter().all(|id| look.asked.contains(id));
        if !fresh {
            let mut asked = in_flight.clone();
            asked.extend(ids.iter().cloned());
            self.looks.fetch_add(1, Ordering::Relaxed);
            look.states = self.query(&asked);
            look.asked = asked;
            look.at = Some(Instant::now());
        }
        ids.iter().map(|id| look.states.get(id).cloned()).collect()
    }

    /// One `sacct` for all `ids`, where accounting answers; else (or for the ids it did not
    /// list) one `squeue --states=all`, which also lists jobs ended in the last few minutes.
    fn query(&self, ids: &BTreeSet<String>) -> BTreeMap<String, JobState> {
        let jobs = job_list(ids);
        if jobs.is_empty() {
            return BTreeMap::new();
        }
        let mut states = BTreeMap::new();
        if !self.no_accounting.load(Ordering::Relaxed) {
            let sacct = ["-n", "-P", "-X", "-o", "JobID,State", "-j", jobs.as_str()];
            match run("sacct", &sacct) {
                Some(text) => states = parse_listing(&text),
                None => self.no_accounting.store(true, Ordering::Relaxed),
            }
        }
        if ids.iter().any(|id| !states.contains_key(id)) {
            let squeue = [
                "-h",
                "-r",
                "--states=all",
                "-o",
                "%i|%T",
                "--jobs",
                jobs.as_str(),
            ];
            // squeue fails when its only job is unknown; then nothing is listed.
            if let Some(text) = run("squeue", &squeue) {
                for (id, state) in parse_listing(&text) {
                    states.entry(id).or_insert(state);
                }
            }
        }
        states
    }
}

/// Runs a SLURM query; its output when it succeeds.
fn run(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The jobs to ask about, comma-separated: array tasks (`123_4`) by their array (`123`),
/// which lists every task.
pub(super) fn job_list(ids: &BTreeSet<String>) -> String {
    let jobs: BTreeSet<&str> = ids
        .iter()
        .map(|id| id.split_once('_').map_or(id.as_str(), |(job, _)| job))
        .collect();
    jobs.into_iter().collect::<Vec<_>>().join(",")
}

/// `id|STATE` lines → states by id. Array tasks not yet started may be listed as a range,
/// `123_[2-4,7%2]`: each task of it gets the state.
pub(super) fn parse_listing(text: &str) -> BTreeMap<String, JobState> {
    let mut states = BTreeMap::new();
    for line in text.lines() {
        let Some((id, state)) = line.trim().split_once('|') else {
            continue;
        };
        let state = JobState::from_word(state);
        match id.split_once("_[") {
            Some((job, ranges)) => {
                let ranges = ranges.trim_end_matches(']');
                let ranges = ranges.split_once('%').map_or(ranges, |(r, _)| r);
                for task in expand_ranges(ranges) {
                    states.insert(format!("{job}_{task}"), state.clone());
                }
            }
            None => {
                states.insert(id.to_owned(), state);
            }
        }
    }
    states
}

/// `2-4,7` → 2, 3, 4, 7; parts that are not numbers are skipped.
fn expand_ranges(text: &str) -> Vec<u64> {
    let mut tasks = Vec::new();
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u64>(), b.parse::<u64>()) {
                    tasks.extend(a..=b);
                }
            }
            None => tasks.extend(part.parse::<u64>().ok()),
        }
    }
    tasks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_states_sort_into_waiting_lost_and_ended() {
        assert_eq!(
            JobState::from_word("RUNNING"),
            JobState::Waiting("RUNNING".into())
        );
        assert_eq!(
            JobState::from_word("PENDING\n"),
            JobState::Waiting("PENDING".into())
        );
        assert_eq!(
            JobState::from_word("NODE_FAIL"),
            JobState::Lost("NODE_FAIL".into())
        );
        assert_eq!(
            JobState::from_word("PREEMPTED"),
            JobState::Lost("PREEMPTED".into())
        );
        assert_eq!(
            JobState::from_word("CANCELLED by 0"),
            JobState::Ended("CANCELLED".into())
        );
        assert_eq!(
            JobState::from_word("OUT_OF_MEMORY"),
            JobState::Ended("OUT_OF_MEMORY".into())
        );
        assert_eq!(JobState::from_word(""), JobState::Unknown);
    }

    #[test]
    fn one_look_serves_every_job_it_asked_about() {
        // Whatever SLURM answers here (or not at all), what counts is when the board looks.
        let board = Board {
            fresh: Duration::from_secs(3600),
            ..Board::default()
        };
        let ids = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let in_flight: BTreeSet<String> = ids(&["900001_0", "900001_1", "900002"])
            .into_iter()
            .collect();
        board.states(&ids(&["900001_0"]), &in_flight);
        assert_eq!(board.looks.load(Ordering::Relaxed), 1);
        board.states(&ids(&["900001_1", "900002"]), &in_flight);
        assert_eq!(
            board.looks.load(Ordering::Relaxed),
            1,
            "the first look asked about every job in flight"
        );
        board.states(&ids(&["900003"]), &in_flight);
        assert_eq!(
            board.looks.load(Ordering::Relaxed),
            2,
            "a new job needs a new look"
        );
    }

    #[test]
    fn one_query_names_each_job_once_and_arrays_by_their_id() {
        let ids: BTreeSet<String> = ["251_0", "251_3", "260", "7_1"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(job_list(&ids), "251,260,7");
    }

    #[test]
    fn listings_expand_pending_task_ranges() {
        // As sacct prints an array whose last tasks have not started, and a plain job.
        let text = "251_0|COMPLETED\n251_1|FAILED\n251_[2-4,7%2]|PENDING\n260|RUNNING\nbad line\n";
        let states = parse_listing(text);
        assert_eq!(states["251_0"], JobState::Ended("COMPLETED".into()));
        assert_eq!(states["251_1"], JobState::Ended("FAILED".into()));
        for task in ["251_2", "251_3", "251_4", "251_7"] {
            assert_eq!(states[task], JobState::Waiting("PENDING".into()), "{task}");
        }
        assert!(!states.contains_key("251_5"));
        assert_eq!(states["260"], JobState::Waiting("RUNNING".into()));
        assert_eq!(states.len(), 7);
    }
}
