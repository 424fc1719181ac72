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

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use arrow_array::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::engine::cache::{Cache, OutputRecord, RACY_WINDOW_NS};
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

/// An output whose blob did not match its digest when publishing read it. The blob has been
/// removed, so running the plan again recomputes the stage that made it.
#[derive(Debug, Clone)]
pub struct CorruptOutput {
    pub stage: String,
    pub output: String,
}

impl CorruptOutput {
    /// The error when the output is corrupt again right after being recomputed.
    pub fn diagnostic(&self) -> Diagnostic {
        Diagnostic::environment(format!(
            "cache: the output `{}.{}` is corrupt again right after it was recomputed",
            self.stage, self.output
        ))
        .with_hint(
            "the cache's disk may be failing: run `pipeline verify`, or use another `--cache-dir`",
        )
    }
}

/// What gathering the files found: the publication, or an output to recompute first.
pub type Gathered = Result<Publication, CorruptOutput>;

/// The files the run's results publish, in a fixed order, except those of outputs whose files
/// `known` says are current. Stages that did not complete publish nothing.
pub fn files(
    plan: &Plan,
    cache: &Cache,
    report: &RunReport,
    known: &PublishRecord,
) -> Result<Gathered, Diagnostic> {
    match gather(plan, cache, report, known) {
        Ok(publication) => Ok(Ok(publication)),
        Err(Stop::Corrupt(output)) => Ok(Err(output)),
        Err(Stop::Failed(diagnostic)) => Err(diagnostic),
    }
}

/// Why gathering stopped early: a blob to recompute first, or an error.
enum Stop {
    Corrupt(CorruptOutput),
    Failed(Diagnostic),
}

impl From<Diagnostic> for Stop {
    fn from(d: Diagnostic) -> Self {
        Self::Failed(d)
    }
}

/// Published files by path, with their bytes and origin; a map, so they come out in path order.
type FilesByPath = BTreeMap<PathBuf, (Vec<u8>, String)>;

fn gather(
    plan: &Plan,
    cache: &Cache,
    report: &RunReport,
    known: &PublishRecord,
) -> Result<Publication, Stop> {
    let mut publication = Publication {
        files: Vec::new(),
        current: Vec::new(),
        current_files: 0,
    };
    let Some(dir) = &plan.outputs_dir else {
        return Ok(publication);
    };
    let mut out = FilesByPath::new();
    for stage in plan.stages.iter().filter(|s| !s.publish.is_empty()) {
        let Some(manifest) = report.get(&stage.name).and_then(|r| r.manifest.as_ref()) else {
            continue;
        };
        for (n, record) in manifest.outputs.iter().enumerate() {
            let output = Output {
                cache,
                dir,
                stage: &stage.name,
                record,
                // The first output is the stage's main table and publishes under its name.
                base: if n == 0 {
                    stage.name.clone()
                } else {
                    format!("{}.{}", stage.name, record.name)
                },
            };
            for format in &stage.publish {
                let origin = output.origin(format);
                if known.current(&origin) {
                    publication.current_files += known.origins[&origin].len();
                    publication.current.push(origin);
                } else {
                    output.render(format, origin, &mut out)?;
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

/// One output of a completed stage, about to be published.
struct Output<'a> {
    cache: &'a Cache,
    dir: &'a Path,
    stage: &'a str,
    record: &'a OutputRecord,
    /// The file name before its extension.
    base: String,
}

impl Output<'_> {
    /// Names the output, the format and the bytes, so a record of it goes stale when any changes.
    fn origin(&self, format: &str) -> String {
        format!(
            "{}.{}:{format}:{}",
            self.stage, self.record.name, self.record.digest
        )
    }

    fn corrupt(&self) -> Stop {
        Stop::Corrupt(CorruptOutput {
            stage: self.stage.to_owned(),
            output: self.record.name.clone(),
        })
    }

    /// The output's table; a corrupt blob (now removed) stops the gathering.
    fn table(&self) -> Result<RecordBatch, Stop> {
        match self.cache.read_blob(&self.record.digest) {
            Ok(t) => Ok(t),
            Err(None) => Err(self.corrupt()),
            Err(Some(d)) => Err(Stop::Failed(d)),
        }
    }

    /// Adds the files `format` makes of the output to `out`.
    fn render(&self, format: &str, origin: String, out: &mut FilesByPath) -> Result<(), Stop> {
        match format {
            "parquet" => {
                let Some(bytes) = self.cache.read_blob_bytes(&self.record.digest) else {
                    return Err(self.corrupt());
                };
                out.insert(
                    self.dir.join(format!("{}.parquet", self.base)),
                    (bytes, origin),
                );
            }
            "csv" => {
                let csv = crate::io::export::to_csv(&self.table()?);
                out.insert(self.dir.join(format!("{}.csv", self.base)), (csv, origin));
            }
            "files" => self.named_files(&self.table()?, &origin, out)?,
            _ => unreachable!("publish formats are checked by the plan"),
        }
        Ok(())
    }

    /// One file per row of a `name, content` table; other tables publish no files.
    fn named_files(
        &self,
        table: &RecordBatch,
        origin: &str,
        out: &mut FilesByPath,
    ) -> Result<(), Diagnostic> {
        let (Some(names), Some(contents)) = (
            table.column_by_name("name"),
            table.column_by_name("content"),
        ) else {
            return Ok(());
        };
        for row in 0..table.num_rows() {
            let name = crate::io::export::cell(names.as_ref(), row).to_text();
            if !is_plain_relative(Path::new(&name)) {
                return Err(Diagnostic::user(format!(
                    "stage `{}` wants to publish a file named `{name}`, which is not a plain relative path",
                    self.stage
                )));
            }
            let content = match crate::io::export::cell(contents.as_ref(), row) {
                crate::io::export::Cell::Bytes(b) => b,
                other => other.to_text().into_bytes(),
            };
            out.insert(self.dir.join(name), (content, origin.to_owned()));
        }
        Ok(())
    }
}

/// A relative path of plain names that does not reach into publishing's own working names.
fn is_plain_relative(p: &Path) -> bool {
    !p.as_os_str().is_empty()
        && p.components().all(|c| matches!(c, Component::Normal(_)))
        && !p
            .components()
            .next()
            .is_some_and(|c| c.as_os_str().to_string_lossy().starts_with(".pipeline-"))
}

/// The folder, inside the outputs folder, where a publish stages its files before moving them.
const STAGING: &str = ".pipeline-publish";
/// The staging folder's list of moves; its presence is the commit point of a publish.
const JOURNAL: &str = "journal.json";
/// Temp files an earlier version of publishing left beside the files it wrote.
const OLD_TMP_PREFIX: &str = ".pipeline-tmp-";

/// Writes the files whose bytes differ from what is on disk, as one set. Returns how many.
///
/// POSIX renames one file atomically but offers no rename of a set, and renaming a folder over
/// a non-empty one fails, so the set is made atomic with a journal: every changed file is
/// written and fsynced under `<outputs>/.pipeline-publish/`, then the list of moves is written
/// and renamed into place (the commit point), then each file is renamed over its target. A
/// publish killed before the commit point leaves the old files untouched and its staging
/// folder is discarded; one killed after it is finished by the next publish (which first
/// completes or discards what it finds). Files the study does not publish are never touched.
pub fn write(dir: &Path, files: &[PublishedFile]) -> Result<usize, Diagnostic> {
    recover(dir)?;
    let changed: Vec<&PublishedFile> = files
        .iter()
        .filter(|f| !fs::read(&f.path).is_ok_and(|old| old == f.bytes))
        .collect();
    if changed.is_empty() {
        return Ok(0);
    }
    let staging = dir.join(STAGING);
    let fail = |what: &str, path: &Path, e: std::io::Error| {
        Diagnostic::environment(format!("cannot {what} {}", path.display()))
            .caused_by(e)
            .with_hint(
                "check that the outputs folder is writable; the files there were left as they were",
            )
    };
    fs::create_dir_all(&staging).map_err(|e| fail("create", &staging, e))?;
    let mut moves: Vec<(String, PathBuf)> = Vec::with_capacity(changed.len());
    for (n, f) in changed.iter().enumerate() {
        let name = format!("{n}");
        write_synced(&staging.join(&name), &f.bytes).map_err(|e| fail("write", &staging, e))?;
        moves.push((name, f.path.clone()));
    }
    let journal = serde_json::to_vec(&moves).expect("moves serialise");
    let part = staging.join(format!("{JOURNAL}.part"));
    write_synced(&part, &journal).map_err(|e| fail("write", &part, e))?;
    fs::rename(&part, staging.join(JOURNAL)).map_err(|e| fail("commit", &staging, e))?;
    sync_dir(&staging);
    finish(&staging, &moves)?;
    Ok(changed.len())
}

/// Completes a publish whose journal was committed, or discards one that was not, and removes
/// the temp files earlier versions could leave behind after a kill.
pub fn recover(dir: &Path) -> Result<(), Diagnostic> {
    let staging = dir.join(STAGING);
    if staging.exists() {
        let journal = fs::read(staging.join(JOURNAL))
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<(String, PathBuf)>>(&b).ok());
        match journal {
            Some(moves) => finish(&staging, &moves)?,
            None => fs::remove_dir_all(&staging).map_err(|e| {
                Diagnostic::environment(format!("cannot remove {}", staging.display())).caused_by(e)
            })?,
        }
    }
    for path in leftovers(dir) {
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(OLD_TMP_PREFIX))
        {
            let _ = fs::remove_file(path);
        }
    }
    Ok(())
}

/// Moves each staged file over its target (skipping those an interrupted attempt already
/// moved), then removes the staging folder.
fn finish(staging: &Path, moves: &[(String, PathBuf)]) -> Result<(), Diagnostic> {
    let mut parents = BTreeSet::new();
    for (name, target) in moves {
        let staged = staging.join(name);
        if !staged.exists() {
            continue;
        }
        let parent = target.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(parent)
            .and_then(|()| fs::rename(&staged, target))
            .map_err(|e| {
                Diagnostic::environment(format!("cannot publish {}", target.display()))
                    .caused_by(e)
                    .with_hint("the new files are kept in the staging folder; fix the cause and run again to finish publishing them")
            })?;
        parents.insert(parent.to_path_buf());
    }
    for p in &parents {
        sync_dir(p);
    }
    fs::remove_dir_all(staging).map_err(|e| {
        Diagnostic::environment(format!("cannot remove {}", staging.display())).caused_by(e)
    })
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// What an interrupted publish can leave in the outputs folder: its staging folder, and the
/// `.pipeline-tmp-*` files of earlier versions (searched in subfolders too).
pub fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(read) = fs::read_dir(&d) else { continue };
        for entry in read.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if (d == dir && name == STAGING) || name.starts_with(OLD_TMP_PREFIX) {
                out.push(path);
            } else if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The published files whose bytes on disk differ from what the run produces (missing
/// included), then what an interrupted publish left in the outputs folder (`unexpected`).
/// Other files there are the user's and are not reported.
pub fn differences(dir: Option<&Path>, files: &[PublishedFile]) -> Vec<(PathBuf, &'static str)> {
    let mut out: Vec<(PathBuf, &'static str)> = files
        .iter()
        .filter_map(|f| match fs::read(&f.path) {
            Ok(old) if old == f.bytes => None,
            Ok(_) => Some((f.path.clone(), "differs")),
            Err(_) => Some((f.path.clone(), "missing")),
        })
        .collect();
    if let Some(dir) = dir {
        out.extend(leftovers(dir).into_iter().map(|p| (p, "unexpected")));
    }
    out
}
