//! Publishing: copies the outputs a study marks with `publish:` into its `outputs:` folder, as
//! Parquet, CSV, or (`files`) one file per row of a `name, content` table (reports, GeoJSON).
//! Each file is written to a temp name and renamed, and only when its bytes change, so a crash
//! never leaves a half-written result and unchanged files keep their timestamps. `--check`
//! compares instead of writing.
//!
//! A [`PublishRecord`] in the cache remembers which output (blob digest and format) each file
//! came from and the file's stat when it was last written or verified, so a rerun whose outputs
//! did not change re-derives nothing (the no-op stays cheap), while a file someone edited or
//! deleted is noticed by its stat and rewritten (or reported by `--check`).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;

use serde::{Deserialize, Serialize};

use crate::engine::cache::{Cache, RACY_WINDOW_NS};
use crate::engine::error::Diagnostic;
use crate::engine::plan::Plan;
use crate::engine::scheduler::RunReport;

/// One published file: where it goes, its bytes, and the output and format it comes from.
pub struct PublishedFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub origin: String,
}

/// What the run publishes: files to write or compare, and outputs whose files are known current.
pub struct Publication {
    pub files: Vec<PublishedFile>,
    /// Origins whose files were verified earlier and have not been touched since.
    pub current: Vec<String>,
    /// How many files those current origins stand for.
    pub current_files: usize,
}

/// A file as it was when last written or verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    path: PathBuf,
    size: u64,
    ino: u64,
    mtime_ns: i128,
    recorded_ns: i128,
}

impl Stamp {
    fn of(path: &Path) -> Option<Self> {
        let m = fs::metadata(path).ok()?;
        let recorded_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
        Some(Self {
            path: path.to_path_buf(),
            size: m.size(),
            ino: m.ino(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            recorded_ns,
        })
    }

    /// Unchanged since recorded, and not modified so close to the recording that a later change
    /// could have kept the same mtime.
    fn still_holds(&self) -> bool {
        Self::of(&self.path).is_some_and(|now| {
            now.size == self.size
                && now.ino == self.ino
                && now.mtime_ns == self.mtime_ns
                && self.mtime_ns + RACY_WINDOW_NS < self.recorded_ns
        })
    }
}

/// Origin (output, format and blob digest) → the files published from it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PublishRecord {
    origins: BTreeMap<String, Vec<Stamp>>,
}

impl PublishRecord {
    const AREA: &'static str = "published";

    pub fn load(cache: &Cache, study: &crate::engine::key::Digest) -> Self {
        cache
            .read_aux(Self::AREA, &study.to_hex())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn save(
        &self,
        cache: &Cache,
        study: &crate::engine::key::Digest,
    ) -> Result<(), Diagnostic> {
        let json = serde_json::to_vec(self).expect("publish records serialise");
        cache.write_aux(Self::AREA, &study.to_hex(), &json)
    }

    fn current(&self, origin: &str) -> bool {
        self.origins
            .get(origin)
            .is_some_and(|stamps| !stamps.is_empty() && stamps.iter().all(Stamp::still_holds))
    }

    /// Records the files now on disk for `publication`'s origins and forgets all others.
    pub fn update(&mut self, publication: &Publication) {
        let keep: BTreeSet<&str> = publication
            .current
            .iter()
            .map(String::as_str)
            .chain(publication.files.iter().map(|f| f.origin.as_str()))
            .collect();
        self.origins.retain(|o, _| keep.contains(o.as_str()));
        let mut fresh: BTreeMap<&str, Vec<Stamp>> = BTreeMap::new();
        for f in &publication.files {
            let stamps = fresh.entry(f.origin.as_str()).or_default();
            match fs::read(&f.path) {
                Ok(bytes) if bytes == f.bytes => stamps.extend(Stamp::of(&f.path)),
                // Not on disk as published (a `--check` that found a difference): no stamp,
                // so the next run derives it again.
                _ => {}
            }
        }
        for (origin, stamps) in fresh {
            let expected = publication
                .files
                .iter()
                .filter(|f| f.origin == origin)
                .count();
            if stamps.len() == expected {
                self.origins.insert(origin.to_owned(), stamps);
            } else {
                self.origins.remove(origin);
            }
        }
    }
}

/// The files the run's results publish, in a fixed order, except those of outputs whose files
/// `known` says are current. Stages that did not complete publish nothing.
pub fn files(
    plan: &Plan,
    cache: &Cache,
    report: &RunReport,
    known: &PublishRecord,
) -> Result<Publication, Diagnostic> {
    let mut publication = Publication {
        files: Vec::new(),
        current: Vec::new(),
        current_files: 0,
    };
    let Some(dir) = &plan.outputs_dir else {
        return Ok(publication);
    };
    let mut out: BTreeMap<PathBuf, (Vec<u8>, String)> = BTreeMap::new();
    for stage in &plan.stages {
        if stage.publish.is_empty() {
            continue;
        }
        let Some(manifest) = report.get(&stage.name).and_then(|r| r.manifest.as_ref()) else {
            continue;
        };
        for (n, record) in manifest.outputs.iter().enumerate() {
            let base = if n == 0 {
                stage.name.clone()
            } else {
                format!("{}.{}", stage.name, record.name)
            };
            let table = || {
                cache.read_blob(&record.digest).map_err(|e| {
                    e.unwrap_or_else(|| {
                        Diagnostic::environment(format!(
                            "cache: the output `{}.{}` is corrupt",
                            stage.name, record.name
                        ))
                        .with_hint("run `pipeline verify --repair`, then run again")
                    })
                })
            };
            for format in &stage.publish {
                let origin = format!("{}.{}:{format}:{}", stage.name, record.name, record.digest);
                if known.current(&origin) {
                    publication.current_files += known.origins[&origin].len();
                    publication.current.push(origin);
                    continue;
                }
                match format.as_str() {
                    "parquet" => {
                        let bytes = fs::read(cache.blob_path(&record.digest)).map_err(|e| {
                            Diagnostic::environment("cache: cannot read an output").caused_by(e)
                        })?;
                        if crate::engine::key::Digest::of(&bytes) != record.digest {
                            return Err(Diagnostic::environment(format!(
                                "cache: the output `{}.{}` is corrupt",
                                stage.name, record.name
                            ))
                            .with_hint("run `pipeline verify --repair`, then run again"));
                        }
                        out.insert(dir.join(format!("{base}.parquet")), (bytes, origin));
                    }
                    "csv" => {
                        out.insert(
                            dir.join(format!("{base}.csv")),
                            (crate::io::export::to_csv(&table()?), origin),
                        );
                    }
                    "files" => {
                        let t = table()?;
                        let (Some(names), Some(contents)) =
                            (t.column_by_name("name"), t.column_by_name("content"))
                        else {
                            // Only `name, content` tables publish as files; others are skipped.
                            continue;
                        };
                        for row in 0..t.num_rows() {
                            let name = crate::io::export::cell(names.as_ref(), row).to_text();
                            if !is_plain_relative(Path::new(&name)) {
                                return Err(Diagnostic::user(format!(
                                    "stage `{}` wants to publish a file named `{name}`, which is not a plain relative path",
                                    stage.name
                                )));
                            }
                            let content = match crate::io::export::cell(contents.as_ref(), row) {
                                crate::io::export::Cell::Bytes(b) => b,
                                other => other.to_text().into_bytes(),
                            };
                            out.insert(dir.join(name), (content, origin.clone()));
                        }
                    }
                    _ => unreachable!("publish formats are checked by the plan"),
                }
            }
        }
    }
    publication.files = out
        .into_iter()
        .map(|(path, (bytes, origin))| PublishedFile {
            path,
            bytes,
            origin,
        })
        .collect();
    Ok(publication)
}

fn is_plain_relative(p: &Path) -> bool {
    !p.as_os_str().is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Writes the files whose bytes differ from what is on disk. Returns how many were written.
pub fn write(files: &[PublishedFile]) -> Result<usize, Diagnostic> {
    let mut written = 0;
    for f in files {
        if fs::read(&f.path).is_ok_and(|old| old == f.bytes) {
            continue;
        }
        let parent = f.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(|e| {
            Diagnostic::environment(format!("cannot create {}", parent.display())).caused_by(e)
        })?;
        let tmp = parent.join(format!(
            ".pipeline-tmp-{}-{}",
            std::process::id(),
            f.path.file_name().and_then(|s| s.to_str()).unwrap_or("out")
        ));
        let result = (|| {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&f.bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, &f.path)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(
                Diagnostic::environment(format!("cannot publish {}", f.path.display()))
                    .caused_by(e),
            );
        }
        written += 1;
    }
    Ok(written)
}

/// The published files whose bytes on disk differ from what the run produces (missing included).
pub fn differences(files: &[PublishedFile]) -> Vec<(PathBuf, &'static str)> {
    files
        .iter()
        .filter_map(|f| match fs::read(&f.path) {
            Ok(old) if old == f.bytes => None,
            Ok(_) => Some((f.path.clone(), "differs")),
            Err(_) => Some((f.path.clone(), "missing")),
        })
        .collect()
}
