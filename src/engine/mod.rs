//! The generic engine: study spec, plan, cache, scheduler, progress. It sees stages only through
//! the [`stage::Stage`] trait and knows nothing about what they compute.

pub mod cache;
pub mod error;
pub mod executor;
pub mod finite;
pub mod interrupt;
pub mod invocation;
pub mod key;
pub mod output_writer;
pub mod param_defaults;
pub mod pattern;
pub mod plan;
pub mod progress;
pub mod publish;
pub mod reuse;
pub mod scheduler;
pub mod spec;
pub mod stage;
// "Did you mean" is shared with the file readers, so it lives at the crate's top level.
pub use crate::suggest;
pub mod sweep;
pub mod sweep_sample;
pub mod sweep_stats;
pub mod warning;

#[cfg(test)]
mod tests {
    /// The engine must stay generic: no stage kinds, no domain methods, no domain words.
    #[test]
    fn engine_knows_nothing_of_the_domain() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine");
        let forbidden = [
            "stages::",
            "methods::",
            "carbon",
            "emission",
            "sink",
            "landuse",
            "gini",
            "moran",
            "cluster",
            "zoning",
            "unit_id",
        ];
        let mut files = Vec::new();
        let mut dirs = vec![dir];
        while let Some(d) = dirs.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        for path in files {
            if path.ends_with("src/engine/mod.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap().to_lowercase();
            for word in forbidden {
                assert!(!text.contains(word), "{} mentions `{word}`", path.display());
            }
        }
    }
}
