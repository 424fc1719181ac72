//! A stable-Rust fuzzer for the file readers (no nightly, so no libFuzzer): it mutates the
//! seed corpus of tests/fixtures/corpus deterministically from a seed, runs the target's
//! reader on each mutant under `catch_unwind`, and fails on the first panic or on a single
//! allocation larger than the input justifies ([`alloc::bound`]). The failing input is saved
//! under `--crashes` (default target/fuzz-crashes) to be added to the corpus with a fix.
//!
//! ```text
//! cargo run --example fuzz -- <target|all> [--seconds N] [--seed S] [--crashes DIR]
//! ```
//! Targets: spec, csv, xlsx, geojson, shapefile, dbf, prj, geotiff, wkb. With `all`, each
//! target gets N seconds (default 30).

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use pipeline::methods::rng::SplitMix64;

mod alloc;
mod targets;

#[global_allocator]
static COUNTING: alloc::Counting = alloc::Counting;

/// The crate's SplitMix64 ([`SplitMix64`]), drawing indices: mutants are fully determined by
/// the seed.
struct Rng(SplitMix64);

impl Rng {
    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.0.below(n as u64)).expect("below n fits in usize")
    }
}

/// Values that sit on the edges of the integer types readers parse: counts and sizes set to
/// these find missing bounds checks.
const INTERESTING: &[u64] = &[
    0,
    1,
    0x7F,
    0x80,
    0xFF,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
    0x7FFF_FFFF_FFFF_FFFF,
    u64::MAX,
];

/// Overwrites `width` bytes at `at` with an interesting integer, little- or big-endian.
fn put_interesting(data: &mut [u8], rng: &mut Rng) {
    let width = [1, 2, 4, 8][rng.below(4)];
    if data.len() < width {
        return;
    }
    // Headers hold the sizes and counts: aim at the first 128 bytes half of the time.
    let span = if rng.below(2) == 0 {
        data.len().min(128)
    } else {
        data.len()
    };
    let at = rng.below(span - width + 1);
    let value = INTERESTING[rng.below(INTERESTING.len())];
    let bytes = if rng.below(2) == 0 {
        value.to_le_bytes()
    } else {
        value.to_be_bytes()
    };
    let start = if bytes[0] == 0 && rng.below(2) == 1 {
        8 - width
    } else {
        0
    };
    data[at..at + width].copy_from_slice(&bytes[start..start + width]);
}

/// One mutant of `seed` (with `other`, a second seed, for splicing).
fn mutate(seed: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(8) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = u8::try_from(rng.below(256)).expect("below 256");
            }
            2 => {
                let i = rng.below(data.len() + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n)
                    .map(|_| u8::try_from(rng.below(256)).expect("below 256"))
                    .collect();
                data.splice(i..i, bytes);
            }
            3 if !data.is_empty() => {
                let i = rng.below(data.len());
                let n = 1 + rng.below((data.len() - i).min(64));
                data.drain(i..i + n);
            }
            4 if !data.is_empty() => data.truncate(rng.below(data.len())),
            5 if !other.is_empty() => {
                let cut = rng.below(data.len() + 1);
                let from = rng.below(other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            6 if !data.is_empty() => {
                // Repeat a slice: long runs, duplicated records.
                let i = rng.below(data.len());
                let n = 1 + rng.below((data.len() - i).min(256));
                let slice = data[i..i + n].to_vec();
                for _ in 0..=rng.below(8) {
                    data.splice(i..i, slice.iter().copied());
                }
            }
            _ => put_interesting(&mut data, rng),
        }
    }
    data
}

struct Options {
    targets: Vec<String>,
    seconds: u64,
    seed: u64,
    crashes: PathBuf,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        targets: Vec::new(),
        seconds: 30,
        seed: 1,
        crashes: Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-crashes"),
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--seconds" => {
                options.seconds = value("--seconds")?
                    .parse()
                    .map_err(|e| format!("--seconds: {e}"))?;
            }
            "--seed" => {
                options.seed = value("--seed")?
                    .parse()
                    .map_err(|e| format!("--seed: {e}"))?
            }
            "--crashes" => options.crashes = PathBuf::from(value("--crashes")?),
            "all" => options
                .targets
                .extend(targets::TARGETS.iter().map(|t| (*t).to_owned())),
            t if targets::TARGETS.contains(&t) => options.targets.push(t.to_owned()),
            other => {
                return Err(format!(
                    "unknown argument `{other}`; targets: all, {}",
                    targets::TARGETS.join(", ")
                ));
            }
        }
    }
    if options.targets.is_empty() {
        return Err(format!(
            "name a target: all, {}",
            targets::TARGETS.join(", ")
        ));
    }
    Ok(options)
}

/// Fuzzes one target for `seconds`; the failing input's path, if one failed.
fn fuzz(target: &str, options: &Options) -> Result<usize, String> {
    let seeds = targets::corpus(target);
    let work = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/fuzz-work")
        .join(target);
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let mut seed_bytes: Vec<Vec<u8>> = seeds
        .iter()
        .map(|(p, _)| std::fs::read(p).expect("corpus files are readable"))
        .collect();
    // The valid files the corpus was broken from are good seeds too.
    let control =
        targets::corpus_dir(target).join(format!("valid.{}.control", targets::extension(target)));
    if let Ok(bytes) = std::fs::read(control) {
        seed_bytes.push(bytes);
    }
    let mut rng = Rng(SplitMix64::new(
        options.seed ^ (target.len() as u64).wrapping_mul(0x1000_0000_01B3),
    ));
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let mut runs = 0;
    eprintln!(
        "fuzz {target}: {} seeds, {} s; if the process aborts, the input that did it is {}",
        seed_bytes.len(),
        options.seconds,
        work.join(format!("input.{}", targets::extension(target)))
            .display()
    );
    while Instant::now() < deadline {
        let s = rng.below(seed_bytes.len());
        let companions = seeds.get(s).map_or(&[][..], |(_, c)| c.as_slice());
        let other = &seed_bytes[rng.below(seed_bytes.len())];
        let input = mutate(&seed_bytes[s], other, &mut rng);
        let input_len = input.len() + companions.iter().map(|(_, b)| b.len()).sum::<usize>();
        alloc::arm();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            targets::run(target, &work, "input", &input, companions)
        }));
        let largest = alloc::largest();
        runs += 1;
        let failure = match outcome {
            Err(_) => Some("the reader panicked".to_owned()),
            Ok(_) if largest > alloc::bound(input_len) => Some(format!(
                "one allocation of {largest} bytes for {input_len} bytes of input"
            )),
            Ok(_) => None,
        };
        if let Some(why) = failure {
            std::fs::create_dir_all(&options.crashes).map_err(|e| e.to_string())?;
            let digest = blake3::hash(&input).to_hex();
            let saved = options.crashes.join(format!(
                "{target}-{}.{}",
                &digest.as_str()[..16],
                targets::extension(target)
            ));
            std::fs::write(&saved, &input).map_err(|e| e.to_string())?;
            for (ext, bytes) in companions {
                std::fs::write(saved.with_extension(ext), bytes).map_err(|e| e.to_string())?;
            }
            return Err(format!(
                "fuzz {target}: {why} after {runs} runs; the input is {}",
                saved.display()
            ));
        }
    }
    Ok(runs)
}

fn main() -> ExitCode {
    let options = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Readers must return errors, not panic; the hook stays quiet so the report is one line.
    std::panic::set_hook(Box::new(|info| eprintln!("panic: {info}")));
    for target in &options.targets {
        match fuzz(target, &options) {
            Ok(runs) => eprintln!("fuzz {target}: {runs} runs, no panic, memory bounded"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}
