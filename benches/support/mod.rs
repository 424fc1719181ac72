//! What the benchmarks share, included by each with `mod support;`: value-stable noise, the
//! process's CPU time and peak memory, and a kind prepared as the engine prepares it.

// Each benchmark is a crate of its own and uses only part of this module.
#![allow(dead_code)]

use pipeline::engine::stage::{Entry, PreparedStage, Stage, StageEntry};
use pipeline::methods::rng::SplitMix64;

/// The land classes of the synthetic `areas` tables.
pub const CLASSES: [&str; 6] = [
    "construction",
    "cultivated",
    "forest",
    "grassland",
    "unused",
    "water",
];

/// The fuel columns of the synthetic `energy` tables: the default preset's fuels.
pub const FUELS: [&str; 9] = [
    "raw_coal",
    "coke",
    "crude_oil",
    "gasoline",
    "kerosene",
    "diesel",
    "fuel_oil",
    "natural_gas",
    "electricity",
];

/// Uniform noise in `[0, 1)` from SplitMix64: the same values on every machine and run.
pub struct Noise(SplitMix64);

impl Noise {
    pub fn new(seed: u64) -> Self {
        Self(SplitMix64::new(seed))
    }

    /// The next value in `[0, 1)`: the top 53 bits of the next draw.
    pub fn unit(&mut self) -> f64 {
        #[allow(clippy::cast_precision_loss)] // 53 bits fit an f64's mantissa exactly
        let v = (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        v
    }
}

/// CPU seconds (user + system, all threads) used by this process so far. On a shared machine
/// this says what the work costs, where wall time says mostly how busy the machine was.
pub fn cpu_seconds() -> f64 {
    rusage_seconds(libc::RUSAGE_SELF)
}

/// As [`cpu_seconds`], for the child processes waited for so far.
pub fn children_cpu_seconds() -> f64 {
    rusage_seconds(libc::RUSAGE_CHILDREN)
}

fn rusage_seconds(who: libc::c_int) -> f64 {
    // SAFETY: `getrusage` fills the zeroed struct it is given and touches nothing else.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &raw mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Peak resident memory of this process in MiB (Linux); NaN elsewhere.
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    kib / 1024.0
}

/// Kind `S` with `params`, deserialised and validated as the engine does.
pub fn prepare<S: Stage>(params: serde_json::Value) -> Box<dyn PreparedStage> {
    Entry::<S>::new()
        .prepare(params)
        .unwrap_or_else(|e| panic!("kind `{}`: {e:?}", S::KIND))
}
