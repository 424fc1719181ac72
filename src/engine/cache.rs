//! The on-disk cache: content-addressed blobs plus one small manifest per key.
//!
//! Layout under `<cache dir>/v1/`:
//! - `objects/<aa>/<digest>.parquet`: output tables, named by the BLAKE3 of their bytes;
//! - `entries/<aa>/<key>.json`: a [`Manifest`] per key, written last, so an entry exists only
//!   once all its blobs do;
//! - `locks/<key>.lock`: held while a key is computed, so two runs compute it once;
//! - `gc.lock`: shared by runs, exclusive for `gc`, so `gc` never removes what a run writes;
//! - `stat/`, `history/`, `runs/`: the file-stat cache, each stage's last key (for `explain`),
//!   and each study's last run (what `gc` keeps);
//! - `tmp/`: files being written; renamed into place when complete.
//!
//! Every write goes to `tmp/`, is fsynced, and is renamed into place, and OS locks die with
//! their process, so a killed run leaves nothing to clean up by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use arrow_array::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::engine::error::Diagnostic;
use crate::engine::key::{CacheKey, Digest};
use crate::engine::output_writer::WrittenTable;

/// The engine's version, recorded in every manifest.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// One output table of an entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputRecord {
    pub name: String,
    pub digest: Digest,
    pub rows: u64,
    pub bytes: u64,
    /// The blob's inode and mtime when it was stored: a cheap seal. If the file's stat no longer
    /// matches, its bytes are rehashed before the entry is trusted.
    pub seal: (u64, i128),
}

/// What an entry records about the run that made it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub engine_version: String,
    pub key: Digest,
    pub components: CacheKey,
    pub outputs: Vec<OutputRecord>,
    pub seconds: f64,
    #[serde(default)]
    pub warnings: Vec<crate::engine::warning::Warning>,
    /// Intermediate tables the stage memoised: (memo key, blob digest).
    #[serde(default)]
    pub memos: Vec<(Digest, Digest)>,
}

impl Manifest {
    pub fn output(&self, name: &str) -> Option<&OutputRecord> {
        self.outputs.iter().find(|o| o.name == name)
    }
}

/// The cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// An exclusive hold on one key while it is computed. Released on drop, or by the OS if the
/// process dies.
#[derive(Debug)]
pub struct KeyLock {
    _file: File,
}

/// A run's shared hold on the cache, which keeps `gc` out until the run ends, and its entry in
/// `locks/` (`run-<start ns>-<pid>-<n>.lock`, locked while the run lives), whose modification
/// time tells other runs how old the oldest live run is.
#[derive(Debug)]
pub struct RunGuard {
    _file: File,
    live: Option<(File, PathBuf)>,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if let Some((file, path)) = self.live.take() {
            let _ = fs::remove_file(path);
            drop(file);
        }
    }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// A file's modification time in nanoseconds since the epoch, if the platform keeps one.
fn modified_ns(meta: &fs::Metadata) -> Option<u128> {
    let since = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some(since.as_nanos())
}

fn no_time(path: &Path) -> Diagnostic {
    Diagnostic::environment(format!(
        "cache: the file system keeps no modification time for {}",
        path.display()
    ))
    .with_hint("put the cache on a local file system such as ext4, xfs or btrfs")
}

fn io_error(what: &str, path: &Path, e: io::Error) -> Diagnostic {
    Diagnostic::environment(format!("cache: cannot {what} {}", path.display()))
        .caused_by(e)
        .with_hint("check that the cache directory is writable and the disk is not full (`--cache-dir` to use another)")
}

impl Cache {
    /// Opens (creating if needed) the cache under `dir`.
    pub fn open(dir: &Path) -> Result<Self, Diagnostic> {
        let root = dir.join("v1");
        for sub in [
            "objects", "entries", "locks", "tmp", "stat", "history", "runs",
        ] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(|e| io_error("create", &p, e))?;
        }
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn sharded(&self, area: &str, hex: &str, ext: &str) -> PathBuf {
        self.root
            .join(area)
            .join(&hex[..2])
            .join(format!("{hex}.{ext}"))
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.sharded("objects", &digest.to_hex(), "parquet")
    }

    fn entry_path(&self, key: &Digest) -> PathBuf {
        self.sharded("entries", &key.to_hex(), "json")
    }

    /// A fresh path in `tmp/`, unique across processes and threads.
    pub fn tmp_path(&self, ext: &str) -> PathBuf {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        self.root
            .join("tmp")
            .join(format!("{}-{}-{n}.{ext}", std::process::id(), now_ns()))
    }

    /// `gc.lock`, opened (created if missing) but not yet locked: runs hold it shared, `gc`
    /// exclusively.
    fn gc_lock_file(&self) -> Result<(File, PathBuf), Diagnostic> {
        let path = self.root.join("gc.lock");
        let file = open_lock_file(&path)?;
        Ok((file, path))
    }

    /// Takes the run's shared hold (see [`RunGuard`]).
    pub fn run_guard(&self) -> Result<RunGuard, Diagnostic> {
        let (file, path) = self.gc_lock_file()?;
        file.lock_shared().map_err(|e| io_error("lock", &path, e))?;
        let live = self.register_live_run()?;
        let oldest_ns = self.oldest_live_run_ns().min(live.1);
        self.remove_tmp_older_than(oldest_ns);
        Ok(RunGuard {
            _file: file,
            live: Some((live.0, live.2)),
        })
    }

    /// Creates and locks this run's file in `locks/`. It is locked under a name other runs do
    /// not look at, then renamed, so no run ever sees it unlocked and takes it for dead. The
    /// run's start is the lock file's own modification time: the file system stamps temp
    /// files from the same (coarse) clock, so a file written after the start is never older
    /// than it, which `SystemTime::now()` cannot promise.
    fn register_live_run(&self) -> Result<(File, u128, PathBuf), Diagnostic> {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("run-{}-{}-{n}", now_ns(), std::process::id());
        let locks = self.root.join("locks");
        let new = locks.join(format!("{name}.new"));
        let path = locks.join(format!("{name}.lock"));
        let file = File::create(&new).map_err(|e| io_error("create", &new, e))?;
        file.lock().map_err(|e| io_error("lock", &new, e))?;
        fs::rename(&new, &path).map_err(|e| io_error("rename into", &path, e))?;
        let started_ns = file
            .metadata()
            .map_err(|e| io_error("read the time of", &path, e))
            .and_then(|m| modified_ns(&m).ok_or_else(|| no_time(&path)))?;
        Ok((file, started_ns, path))
    }

    /// When the oldest run still alive started (its lock file's modification time); files of
    /// dead runs are removed on the way.
    fn oldest_live_run_ns(&self) -> u128 {
        let mut oldest = u128::MAX;
        let Ok(read) = fs::read_dir(self.root.join("locks")) else {
            return oldest;
        };
        for entry in read.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("run-") && name.ends_with(".lock")) {
                continue;
            }
            let Ok(file) = File::options().write(true).open(entry.path()) else {
                continue;
            };
            match file.try_lock() {
                // Nobody holds it: its run died (or just ended).
                Ok(()) => {
                    let _ = fs::remove_file(entry.path());
                }
                // A live run whose start cannot be read protects every temp file.
                Err(_) => {
                    let started = file.metadata().ok().and_then(|m| modified_ns(&m));
                    oldest = oldest.min(started.unwrap_or(0));
                }
            }
        }
        oldest
    }

    /// Removes files in `tmp/` last modified before `ns`: no live run wrote them.
    fn remove_tmp_older_than(&self, ns: u128) {
        for path in walk_files(&self.root.join("tmp")) {
            let modified = fs::metadata(&path).ok().and_then(|m| modified_ns(&m));
            if modified.is_some_and(|m| m < ns) {
                let _ = fs::remove_file(path);
            }
        }
    }

    /// Waits for the exclusive hold on `key`.
    pub fn lock_key(&self, key: &Digest) -> Result<KeyLock, Diagnostic> {
        let path = self
            .root
            .join("locks")
            .join(format!("{}.lock", key.to_hex()));
        let file = open_lock_file(&path)?;
        file.lock().map_err(|e| io_error("lock", &path, e))?;
        Ok(KeyLock { _file: file })
    }

    /// The entry for `key`, if it exists and its blobs are intact. The hit path reads no blob:
    /// it compares each blob's stat with the seal taken when it was stored, and rehashes only a
    /// blob whose stat moved. A corrupt or missing blob drops the entry and returns `None`, so
    /// the stage reruns. (`verify` rehashes everything; readers rehash what they read.)
    pub fn probe(&self, key: &Digest) -> Option<Manifest> {
        let path = self.entry_path(key);
        let bytes = fs::read(&path).ok()?;
        let manifest: Manifest = serde_json::from_slice(&bytes).ok()?;
        if manifest.key != *key {
            return None;
        }
        for out in &manifest.outputs {
            let blob = self.blob_path(&out.digest);
            let intact = match fs::metadata(&blob) {
                Ok(m) if !m.is_file() => false,
                Ok(m) if m.len() == out.bytes && seal_of(&m) == out.seal => true,
                Ok(m) if m.len() == out.bytes => {
                    hash_file(&blob, m.len()).is_ok_and(|d| d == out.digest)
                }
                _ => false,
            };
            if !intact {
                remove_any(&blob);
                let _ = fs::remove_file(&path);
                return None;
            }
        }
        Some(manifest)
    }

    /// Removes an entry (used when one of its blobs turned out corrupt).
    pub fn drop_entry(&self, key: &Digest) {
        let _ = fs::remove_file(self.entry_path(key));
    }

    /// Writes bytes to `tmp/`, fsyncs, and renames to `dest` (no-op if `dest` exists).
    fn place(&self, dest: &Path, bytes: &[u8], read_only: bool) -> Result<(), Diagnostic> {
        let tmp = self.tmp_path("part");
        let mut f = File::create(&tmp).map_err(|e| io_error("write", &tmp, e))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| io_error("write", &tmp, e))?;
        drop(f);
        Self::move_into(&tmp, dest, read_only)
    }

    /// Renames the synced file `tmp` to `dest` (made read-only first if asked) and syncs the
    /// folder, so `dest` is either absent or whole.
    fn move_into(tmp: &Path, dest: &Path, read_only: bool) -> Result<(), Diagnostic> {
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(|e| io_error("create", parent, e))?;
        }
        if read_only {
            let mut perms = fs::metadata(tmp)
                .map_err(|e| io_error("stat", tmp, e))?
                .permissions();
            perms.set_readonly(true);
            let _ = fs::set_permissions(tmp, perms);
        }
        fs::rename(tmp, dest).map_err(|e| io_error("rename into", dest, e))?;
        if let Some(parent) = dest.parent()
            && let Ok(dir) = File::open(parent)
        {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Whether `dest` holds exactly the `len` bytes of `digest`. A stored blob of the right
    /// size may still hold other bytes, so it is rehashed.
    fn intact_blob(dest: &Path, len: u64, digest: Digest) -> bool {
        fs::metadata(dest).is_ok_and(|m| {
            m.is_file() && m.len() == len && hash_file(dest, m.len()).is_ok_and(|d| d == digest)
        })
    }

    /// Stores an output table a stage wrote to a temp file (see
    /// [`crate::engine::output_writer`]), as [`Cache::put_blob`] stores encoded bytes: moved
    /// into place by rename, read-only; a blob already stored intact is kept and the file
    /// removed.
    pub fn put_written(&self, table: WrittenTable) -> Result<OutputRecord, Diagnostic> {
        let dest = self.blob_path(&table.digest);
        if Self::intact_blob(&dest, table.bytes, table.digest) {
            let _ = fs::remove_file(table.path());
        } else {
            remove_any(&dest);
            Self::move_into(table.path(), &dest, true)?;
        }
        let record = Self::blob_record(&table.name, &dest, table.digest, table.rows, table.bytes);
        table.moved();
        record
    }

    fn blob_record(
        name: &str,
        dest: &Path,
        digest: Digest,
        rows: u64,
        bytes: u64,
    ) -> Result<OutputRecord, Diagnostic> {
        let seal = fs::metadata(dest)
            .map(|m| seal_of(&m))
            .map_err(|e| io_error("stat", dest, e))?;
        Ok(OutputRecord {
            name: name.to_owned(),
            digest,
            rows,
            bytes,
            seal,
        })
    }

    /// Stores one encoded output table and returns its record.
    pub fn put_blob(
        &self,
        name: &str,
        bytes: &[u8],
        rows: u64,
    ) -> Result<OutputRecord, Diagnostic> {
        let digest = Digest::of(bytes);
        let dest = self.blob_path(&digest);
        if !Self::intact_blob(&dest, bytes.len() as u64, digest) {
            remove_any(&dest);
            self.place(&dest, bytes, true)?;
        }
        Self::blob_record(name, &dest, digest, rows, bytes.len() as u64)
    }

    /// Commits an entry: its blobs must already be stored with [`Cache::put_blob`].
    pub fn commit(&self, manifest: &Manifest) -> Result<(), Diagnostic> {
        let json = serde_json::to_vec_pretty(manifest).expect("manifests serialise");
        self.place(&self.entry_path(&manifest.key), &json, false)
    }

    /// Reads an output blob, checking its bytes against the digest. A mismatch removes the blob
    /// (the caller then reruns the stage that made it) and is reported as `Err(None)`.
    pub fn read_blob(&self, digest: &Digest) -> Result<RecordBatch, Option<Diagnostic>> {
        let path = self.blob_path(digest);
        let bytes = fs::read(&path).map_err(|_| None)?;
        if Digest::of(&bytes) != *digest {
            remove_any(&path);
            return Err(None);
        }
        crate::io::parquet::from_bytes(bytes).map_err(|e| {
            Some(
                Diagnostic::environment(format!("cache: cannot decode {}", path.display()))
                    .caused_by(e),
            )
        })
    }

    /// An output blob's bytes, if they match the digest; a mismatching blob is removed, as in
    /// [`Cache::read_blob`].
    pub fn read_blob_bytes(&self, digest: &Digest) -> Option<Vec<u8>> {
        let path = self.blob_path(digest);
        let bytes = fs::read(&path).ok()?;
        if Digest::of(&bytes) != *digest {
            remove_any(&path);
            return None;
        }
        Some(bytes)
    }

    // ---- intermediate tables of stages (`StageContext::memo`) ----

    fn memo_path(&self, key: &Digest) -> PathBuf {
        self.sharded("memo", &key.to_hex(), "json")
    }

    /// The memoised table under `key`, checked against its digest.
    pub fn memo_get(&self, key: &Digest) -> Option<(RecordBatch, Digest)> {
        let record: OutputRecord =
            serde_json::from_slice(&fs::read(self.memo_path(key)).ok()?).ok()?;
        match self.read_blob(&record.digest) {
            Ok(table) => Some((table, record.digest)),
            Err(_) => {
                let _ = fs::remove_file(self.memo_path(key));
                None
            }
        }
    }

    /// Stores a memoised table; the index file is written after the blob.
    pub fn memo_put(&self, key: &Digest, table: &RecordBatch) -> Result<Digest, Diagnostic> {
        let bytes = crate::io::parquet::to_bytes(table).map_err(|e| {
            Diagnostic::environment("cache: cannot encode a memoised table").caused_by(e)
        })?;
        let record = self.put_blob("memo", &bytes, table.num_rows() as u64)?;
        self.place(
            &self.memo_path(key),
            &serde_json::to_vec(&record).expect("records serialise"),
            false,
        )?;
        Ok(record.digest)
    }

    // ---- small documents other engine parts keep per study (e.g. the publish record) ----

    /// Reads `<area>/<name>.json`, if present.
    pub fn read_aux(&self, area: &str, name: &str) -> Option<Vec<u8>> {
        fs::read(self.root.join(area).join(format!("{name}.json"))).ok()
    }

    /// Writes `<area>/<name>.json` atomically.
    pub fn write_aux(&self, area: &str, name: &str, bytes: &[u8]) -> Result<(), Diagnostic> {
        self.place(
            &self.root.join(area).join(format!("{name}.json")),
            bytes,
            false,
        )
    }

    // ---- the last key of each stage, for `explain` ----

    fn history_path(&self, study_id: &Digest, stage: &str) -> PathBuf {
        self.root
            .join("history")
            .join(study_id.to_hex())
            .join(format!("{stage}.json"))
    }

    pub fn last_key(&self, study_id: &Digest, stage: &str) -> Option<CacheKey> {
        serde_json::from_slice(&fs::read(self.history_path(study_id, stage)).ok()?).ok()
    }

    pub fn save_last_key(
        &self,
        study_id: &Digest,
        stage: &str,
        key: &CacheKey,
    ) -> Result<(), Diagnostic> {
        let path = self.history_path(study_id, stage);
        if self.last_key(study_id, stage).as_ref() == Some(key) {
            return Ok(());
        }
        self.place(
            &path,
            &serde_json::to_vec_pretty(key).expect("keys serialise"),
            false,
        )
    }

    // ---- what each study's last run used, for `gc` ----

    /// Records what a study's run used. A record that only differs from the stored one by being
    /// newer, by less than [`RUN_RECORD_REFRESH_NS`], is not written: a no-op rerun then writes
    /// (and fsyncs) nothing, and `gc`, which ages records in days, is not affected.
    pub fn record_run(&self, study_id: &Digest, record: &RunRecord) -> Result<(), Diagnostic> {
        let path = self
            .root
            .join("runs")
            .join(format!("{}.json", study_id.to_hex()));
        let stored = fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<RunRecord>(&b).ok());
        if let Some(stored) = stored
            && stored.study == record.study
            && stored.entries == record.entries
            && stored.blobs == record.blobs
            && stored.memos == record.memos
            && record.finished_unix_ns >= stored.finished_unix_ns
            && record.finished_unix_ns - stored.finished_unix_ns < RUN_RECORD_REFRESH_NS
        {
            return Ok(());
        }
        self.place(
            &path,
            &serde_json::to_vec_pretty(record).expect("run records serialise"),
            false,
        )
    }

    // ---- source file digests with a stat cache ----

    pub fn stat_cache(&self, study_id: &Digest) -> StatCache {
        let path = self
            .root
            .join("stat")
            .join(format!("{}.json", study_id.to_hex()));
        let records = fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        StatCache {
            path,
            records,
            dirty: false,
        }
    }

    pub fn save_stat_cache(&self, stat: &StatCache) -> Result<(), Diagnostic> {
        if !stat.dirty {
            return Ok(());
        }
        self.place(
            &stat.path,
            &serde_json::to_vec(&stat.records).expect("stat records serialise"),
            false,
        )
    }

    // ---- maintenance ----

    /// Every entry in the cache.
    pub fn entries(&self) -> Vec<(PathBuf, Option<Manifest>)> {
        let mut out = Vec::new();
        for path in walk_files(&self.root.join("entries")) {
            let manifest = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            out.push((path, manifest));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Rehashes every blob. Returns the corrupt ones (anything in `objects/<aa>/` that is not a
    /// file holding the bytes its name promises); with `repair`, removes them and every entry
    /// that refers to them, so the next run recomputes those stages, and lists what it could
    /// not remove.
    pub fn verify(&self, repair: bool) -> VerifyReport {
        let mut report = VerifyReport::default();
        let mut corrupt = BTreeSet::new();
        for path in blob_slots(&self.root.join("objects")) {
            report.blobs += 1;
            let name = stem(&path);
            let ok = Digest::from_hex(name).is_some_and(|d| {
                fs::symlink_metadata(&path)
                    .is_ok_and(|m| m.is_file() && hash_file(&path, m.len()).is_ok_and(|h| h == d))
            });
            if !ok {
                corrupt.insert(name.to_owned());
                report.corrupt_blobs.push(path.clone());
            }
        }
        for (path, manifest) in self.entries() {
            report.entries += 1;
            let bad = match &manifest {
                None => true,
                Some(m) => m.outputs.iter().any(|o| {
                    corrupt.contains(&o.digest.to_hex()) || !self.blob_path(&o.digest).is_file()
                }),
            };
            if bad {
                report.broken_entries.push(path);
            }
        }
        if repair {
            report.remove_found(try_remove_any);
        }
        report
    }

    /// Removes entries and blobs that no recent run references. Waits for running `pipeline run`s
    /// to finish first (they hold `gc.lock` shared).
    pub fn gc(&self, options: &GcOptions) -> Result<GcReport, Diagnostic> {
        let (lock, lock_path) = self.gc_lock_file()?;
        lock.lock().map_err(|e| io_error("lock", &lock_path, e))?;
        let kept = self.runs_to_keep(options);
        let remove = |path: &PathBuf| {
            if !options.dry_run {
                let _ = fs::remove_file(path);
            }
        };
        let mut report = GcReport {
            kept_bytes: kept.bytes,
            ..GcReport::default()
        };
        for path in self.unkept("entries", &kept.entries) {
            report.entries += 1;
            remove(&path);
        }
        for path in self.unkept("objects", &kept.blobs) {
            report.blobs += 1;
            report.bytes += fs::metadata(&path).map_or(0, |m| m.len());
            remove(&path);
        }
        self.unkept("memo", &kept.memos).iter().for_each(remove);
        // Temp files of runs that died; no run is active while we hold the lock.
        for path in walk_files(&self.root.join("tmp")) {
            report.tmp_files += 1;
            remove(&path);
        }
        kept.dropped_runs.iter().for_each(remove);
        Ok(report)
    }

    /// Walks the run records newest first, so that under `--max-size` the oldest studies'
    /// results go first, keeping each run that is recent enough and still fits.
    fn runs_to_keep(&self, options: &GcOptions) -> KeptRuns {
        let now = now_ns();
        let max_age_ns = u128::from(options.keep_days) * 86_400 * 1_000_000_000;
        let mut kept = KeptRuns::default();
        for (path, run) in self.runs_newest_first() {
            let young = now.saturating_sub(run.finished_unix_ns) <= max_age_ns;
            let run_bytes = self.bytes_not_yet_kept(&run, &kept.blobs);
            let fits = options
                .max_size
                .is_none_or(|max| kept.bytes + run_bytes <= max);
            if young && fits {
                kept.bytes += run_bytes;
                kept.entries.extend(run.entries);
                kept.blobs.extend(run.blobs);
                kept.memos.extend(run.memos);
            } else {
                kept.dropped_runs.push(path);
            }
        }
        kept
    }

    /// The readable run records, newest first (ties by path, for a fixed order).
    fn runs_newest_first(&self) -> Vec<(PathBuf, RunRecord)> {
        let mut runs: Vec<(PathBuf, RunRecord)> = walk_files(&self.root.join("runs"))
            .into_iter()
            .filter_map(|p| {
                let run = serde_json::from_slice::<RunRecord>(&fs::read(&p).ok()?).ok()?;
                Some((p, run))
            })
            .collect();
        runs.sort_by(|a, b| {
            b.1.finished_unix_ns
                .cmp(&a.1.finished_unix_ns)
                .then(a.0.cmp(&b.0))
        });
        runs
    }

    /// The size of the blobs `run` uses that are not among `kept` yet.
    fn bytes_not_yet_kept(&self, run: &RunRecord, kept: &BTreeSet<String>) -> u64 {
        run.blobs
            .iter()
            .filter(|b| !kept.contains(*b))
            .filter_map(|b| Digest::from_hex(b))
            .map(|d| fs::metadata(self.blob_path(&d)).map_or(0, |m| m.len()))
            .sum()
    }

    /// The files of `area` not named in `kept` (entries, blobs and memo indexes are all named
    /// after their key or digest).
    fn unkept(&self, area: &str, kept: &BTreeSet<String>) -> Vec<PathBuf> {
        walk_files(&self.root.join(area))
            .into_iter()
            .filter(|p| !kept.contains(stem(p)))
            .collect()
    }
}

/// What the runs `gc` keeps refer to, and the records of the runs it drops.
#[derive(Default)]
struct KeptRuns {
    entries: BTreeSet<String>,
    blobs: BTreeSet<String>,
    memos: BTreeSet<String>,
    bytes: u64,
    dropped_runs: Vec<PathBuf>,
}

/// What `gc` removes.
#[derive(Debug, Clone)]
pub struct GcOptions {
    pub dry_run: bool,
    /// Keep what runs of the last `keep_days` days used.
    pub keep_days: u32,
    /// Beyond this many bytes, drop the oldest studies' results.
    pub max_size: Option<u64>,
}

#[derive(Debug, Default)]
pub struct GcReport {
    pub entries: usize,
    pub blobs: usize,
    pub bytes: u64,
    pub tmp_files: usize,
    pub kept_bytes: u64,
}

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub blobs: usize,
    pub entries: usize,
    pub corrupt_blobs: Vec<PathBuf>,
    pub broken_entries: Vec<PathBuf>,
    /// With `repair`: what could not be removed, and why.
    pub unremovable: Vec<(PathBuf, String)>,
}

impl VerifyReport {
    /// Removes the corrupt blobs and broken entries with `remove`, keeping what it could not
    /// remove in [`VerifyReport::unremovable`] so the caller never claims a repair it did not do.
    fn remove_found(&mut self, remove: impl Fn(&Path) -> io::Result<()>) {
        for p in self.corrupt_blobs.iter().chain(&self.broken_entries) {
            if let Err(e) = remove(p) {
                self.unremovable.push((p.clone(), e.to_string()));
            }
        }
    }
}

/// How stale an unchanged run record may get before a run rewrites it (an hour).
pub const RUN_RECORD_REFRESH_NS: u128 = 3_600 * 1_000_000_000;

/// The entries and blobs a study's last run used.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunRecord {
    pub study: String,
    pub finished_unix_ns: u128,
    pub entries: BTreeSet<String>,
    pub blobs: BTreeSet<String>,
    #[serde(default)]
    pub memos: BTreeSet<String>,
}

impl RunRecord {
    pub fn new(study: &str) -> Self {
        Self {
            study: study.to_owned(),
            finished_unix_ns: now_ns(),
            ..Self::default()
        }
    }
}

/// What identifies a file's content without reading it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatRecord {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub digest: Digest,
    pub hashed_at_ns: i128,
}

/// Source file digests, trusted while the file's stat is unchanged.
///
/// Racy-timestamp guard (as git's index): a file modified within [`RACY_WINDOW_NS`] before it was
/// hashed could change again without its mtime moving, so such a record is not trusted and the
/// file is hashed again next time.
#[derive(Debug)]
pub struct StatCache {
    path: PathBuf,
    records: BTreeMap<String, StatRecord>,
    dirty: bool,
}

/// How close to its hashing a file's mtime may be before the record is untrusted.
pub const RACY_WINDOW_NS: i128 = 50_000_000;

fn seal_of(m: &fs::Metadata) -> (u64, i128) {
    (
        m.ino(),
        i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    )
}

fn stat_of(m: &fs::Metadata) -> (u64, u64, u64, i128, i128) {
    (
        m.dev(),
        m.ino(),
        m.size(),
        i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
    )
}

impl StatCache {
    /// The digest of the file at `path` (absolute), from the stat cache when trustworthy.
    /// Returns whether the file had to be hashed.
    pub fn digest(&mut self, path: &Path) -> io::Result<(Digest, bool)> {
        let meta = fs::metadata(path)?;
        let (dev, ino, size, mtime_ns, ctime_ns) = stat_of(&meta);
        let key = path.to_string_lossy().into_owned();
        if let Some(r) = self.records.get(&key) {
            let same = r.dev == dev
                && r.ino == ino
                && r.size == size
                && r.mtime_ns == mtime_ns
                && r.ctime_ns == ctime_ns;
            if same && mtime_ns.max(ctime_ns) + RACY_WINDOW_NS < r.hashed_at_ns {
                return Ok((r.digest, false));
            }
        }
        let hashed_at_ns = i128::try_from(now_ns()).unwrap_or(i128::MAX);
        let digest = hash_file(path, size)?;
        self.records.insert(
            key,
            StatRecord {
                dev,
                ino,
                size,
                mtime_ns,
                ctime_ns,
                digest,
                hashed_at_ns,
            },
        );
        self.dirty = true;
        Ok((digest, true))
    }
}

/// BLAKE3 of a file; memory-mapped and multi-threaded for large files.
pub fn hash_file(path: &Path, size: u64) -> io::Result<Digest> {
    let mut h = blake3::Hasher::new();
    if size >= 8 << 20 {
        h.update_mmap_rayon(path)?;
    } else {
        h.update(&fs::read(path)?);
    }
    Ok(h.finalize().into())
}

/// A cache file's name without its extension: the key or digest it is stored under.
fn stem(path: &Path) -> &str {
    path.file_stem().and_then(|s| s.to_str()).unwrap_or("")
}

/// Everything stored where blobs live (`objects/<aa>/*`), files or not: a directory or a link
/// in a blob's place is a corrupt blob, not something to skip.
fn blob_slots(objects: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(shards) = fs::read_dir(objects) else {
        return out;
    };
    for shard in shards.flatten() {
        if !shard.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(shard.path());
            continue;
        }
        let Ok(read) = fs::read_dir(shard.path()) else {
            continue;
        };
        out.extend(read.flatten().map(|e| e.path()));
    }
    out.sort();
    out
}

/// Removes a file, or a directory tree standing where a cache file should be.
fn try_remove_any(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

/// [`try_remove_any`] where failure shows up later anyway (the write that follows fails).
fn remove_any(path: &Path) {
    let _ = try_remove_any(path);
}

/// A lock file, created if missing and never truncated (its holders keep it open).
fn open_lock_file(path: &Path) -> Result<File, Diagnostic> {
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| io_error("open", path, e))
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(read) = fs::read_dir(&d) else { continue };
        for entry in read.flatten() {
            let p = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cache_trusts_unchanged_files_and_rehashes_edits() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let file = dir.path().join("a.csv");
        fs::write(&file, "x\n1\n").unwrap();
        let study = Digest::of(b"study");
        let mut stat = cache.stat_cache(&study);
        let (d1, hashed) = stat.digest(&file).unwrap();
        assert!(hashed);
        assert_eq!(d1, Digest::of(b"x\n1\n"));
        // Make the record old enough to be outside the racy window.
        for r in stat.records.values_mut() {
            r.hashed_at_ns += 10 * RACY_WINDOW_NS;
        }
        let (d2, hashed) = stat.digest(&file).unwrap();
        assert!(!hashed);
        assert_eq!(d1, d2);
        fs::write(&file, "x\n2\n").unwrap();
        let (d3, hashed) = stat.digest(&file).unwrap();
        assert!(hashed);
        assert_ne!(d1, d3);
    }

    #[test]
    fn unchanged_run_records_are_rewritten_only_when_stale() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let study = Digest::of(b"study");
        let path = cache
            .root()
            .join("runs")
            .join(format!("{}.json", study.to_hex()));
        let stored = |path: &Path| -> RunRecord {
            serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
        };
        let mut first = RunRecord::new("s");
        first.entries.insert("e1".to_owned());
        first.blobs.insert("b1".to_owned());
        cache.record_run(&study, &first).unwrap();
        assert_eq!(stored(&path).finished_unix_ns, first.finished_unix_ns);

        // Same entries a minute later: the stored record stays as it is.
        let mut same = first.clone();
        same.finished_unix_ns += 60 * 1_000_000_000;
        cache.record_run(&study, &same).unwrap();
        assert_eq!(stored(&path).finished_unix_ns, first.finished_unix_ns);

        // Same entries past the refresh interval: rewritten with the new time.
        let mut later = first.clone();
        later.finished_unix_ns += RUN_RECORD_REFRESH_NS;
        cache.record_run(&study, &later).unwrap();
        assert_eq!(stored(&path).finished_unix_ns, later.finished_unix_ns);

        // Different entries: rewritten at once.
        let mut changed = later.clone();
        changed.finished_unix_ns += 1;
        changed.entries.insert("e2".to_owned());
        cache.record_run(&study, &changed).unwrap();
        assert_eq!(stored(&path).entries, changed.entries);
        assert_eq!(stored(&path).finished_unix_ns, changed.finished_unix_ns);
    }

    /// The table [`stored_blob`] stores.
    fn blob_table() -> RecordBatch {
        crate::table::TableBuilder::new()
            .f64("x", vec![1.0, 2.0])
            .build()
            .unwrap()
    }

    /// A blob to corrupt: [`blob_table`] stored through `put_blob`, then made writable.
    fn stored_blob(cache: &Cache) -> (Vec<u8>, OutputRecord, PathBuf) {
        let bytes = crate::io::parquet::to_bytes(&blob_table()).unwrap();
        let rec = cache.put_blob("table", &bytes, 2).unwrap();
        let path = cache.blob_path(&rec.digest);
        let mut perms = fs::metadata(&path).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        fs::set_permissions(&path, perms).unwrap();
        (bytes, rec, path)
    }

    /// Overwrites the blob at `path` with its `bytes`, one byte flipped.
    fn write_corrupted(path: &Path, bytes: &[u8]) {
        let mut corrupted = bytes.to_vec();
        corrupted[10] ^= 0xff;
        fs::write(path, &corrupted).unwrap();
    }

    #[test]
    fn put_blob_replaces_a_same_size_blob_with_other_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let (bytes, rec, path) = stored_blob(&cache);
        write_corrupted(&path, &bytes);
        let again = cache.put_blob("table", &bytes, 2).unwrap();
        assert_eq!(again.digest, rec.digest);
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }

    #[test]
    fn verify_reports_a_directory_in_place_of_a_blob() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let (_, _, path) = stored_blob(&cache);
        fs::remove_file(&path).unwrap();
        fs::create_dir_all(path.join("inner")).unwrap();
        let report = cache.verify(false);
        assert_eq!(report.corrupt_blobs, vec![path.clone()]);
        let report = cache.verify(true);
        assert!(report.unremovable.is_empty(), "{:?}", report.unremovable);
        assert!(!path.exists());
        // A blob that is a directory is not an intact blob for `put_blob` either.
        fs::create_dir_all(&path).unwrap();
        let (bytes, rec, _) = stored_blob(&cache);
        assert!(path.is_file());
        assert_eq!(fs::read(cache.blob_path(&rec.digest)).unwrap(), bytes);
    }

    #[test]
    fn repair_lists_what_it_could_not_remove() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let (bytes, _, path) = stored_blob(&cache);
        write_corrupted(&path, &bytes);
        let mut report = cache.verify(false);
        // A read-only cache refuses removal (as root, permissions would not, so simulate it).
        report.remove_found(|_| Err(io::Error::from(io::ErrorKind::PermissionDenied)));
        assert_eq!(report.unremovable.len(), 1);
        assert_eq!(report.unremovable[0].0, path);
        assert!(path.exists());
    }

    #[test]
    fn a_run_removes_temp_files_older_than_the_oldest_live_run() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let an_hour_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
        let part = |name: &str| {
            let p = cache.root().join("tmp").join(name);
            fs::write(&p, b"half").unwrap();
            p
        };
        // A dead run's file (nobody holds its lock) and its half-written blob.
        let dead = cache.root().join("locks/run-1-4242-0.lock");
        fs::write(&dead, b"").unwrap();
        let stale = part("4242-1-0.part");
        File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();

        let first = cache.run_guard().unwrap();
        assert!(!stale.exists(), "a dead run's temp file is removed");
        assert!(!dead.exists(), "a dead run's lock file is removed");
        // Written while `first` lives: a later run must leave it alone. Files are stamped by
        // the file system's coarse clock, which can lag the system clock by a tick, so try it
        // often enough to land right after a tick.
        let live = part("live.part");
        for i in 0..50 {
            let newer = cache.run_guard().unwrap();
            let just_written = part(&format!("just-written-{i}.part"));
            let second = cache.run_guard().unwrap();
            assert!(live.exists() && just_written.exists(), "attempt {i}");
            drop((second, newer));
            fs::remove_file(just_written).unwrap();
        }
        drop(first);
        // Once every run that could have written it is gone, the next run removes it (set
        // back a second, as if that much time had passed).
        let a_second_ago = SystemTime::now() - std::time::Duration::from_secs(1);
        File::options()
            .write(true)
            .open(&live)
            .unwrap()
            .set_modified(a_second_ago)
            .unwrap();
        let third = cache.run_guard().unwrap();
        assert!(!live.exists());
        drop(third);
        let left: Vec<_> = fs::read_dir(cache.root().join("locks")).unwrap().collect();
        assert!(left.is_empty(), "runs remove their lock files: {left:?}");
    }

    #[test]
    fn corrupt_blob_is_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let (bytes, rec, path) = stored_blob(&cache);
        assert_eq!(cache.read_blob(&rec.digest).unwrap(), blob_table());
        write_corrupted(&path, &bytes);
        assert!(matches!(cache.read_blob(&rec.digest), Err(None)));
        assert!(!path.exists());
        assert_eq!(cache.verify(false).corrupt_blobs.len(), 0);
    }
}

/// The cache as a [`MemoStore`] for running stages.
#[derive(Debug, Clone)]
pub struct CacheMemo(pub Cache);

impl crate::engine::stage::MemoStore for CacheMemo {
    fn get(&self, key: &Digest) -> Option<(RecordBatch, Digest)> {
        self.0.memo_get(key)
    }
    fn put(
        &self,
        key: &Digest,
        table: &RecordBatch,
    ) -> Result<Digest, crate::engine::stage::StageError> {
        self.0.memo_put(key, table).map_err(|d| {
            crate::engine::stage::StageError::internal(d.message.clone())
                .caused_by(d.causes.join("; "))
        })
    }
}
