//! Output tables written a part at a time ([`StageContext::output_writer`]), so a stage whose
//! tables are large never holds a whole one. Each part is checked as `commit` checks a whole
//! table (the declared schema, no NaN or ±infinity, named by its row in the table) and then
//! goes either into a temp file in the cache, encoded by the one deterministic Parquet writer
//! and hashed as it is written, or, where nothing stores outputs (a sweep's draws, a worker,
//! unit tests), into memory, and the stage gets the whole table back.
//!
//! A finished file is a [`WrittenTable`]: the scheduler moves it into the blob store when it
//! commits the stage. Until then it is only a temp file, removed when its writer or its
//! `WrittenTable` is dropped (a failed or cancelled stage), so a stage that did not finish
//! leaves no blob and no entry; a killed process leaves a temp file the next run removes.
//!
//! [`StageContext::output_writer`]: crate::engine::stage::StageContext::output_writer

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::engine::key::Digest;
use crate::engine::stage::StageError;
use crate::io::parquet::PartWriter;

/// Where written tables wait for the scheduler: fresh paths on the blob store's file system.
pub trait TempFiles: Send + Sync {
    /// A path no other writer uses, in a folder whose old files a later run removes.
    fn tmp_path(&self, ext: &str) -> PathBuf;
}

impl TempFiles for crate::engine::cache::Cache {
    fn tmp_path(&self, ext: &str) -> PathBuf {
        crate::engine::cache::Cache::tmp_path(self, ext)
    }
}

/// Temp files in a folder of their own: a worker's output folder, which sits in the cache's
/// `jobs/` (the blob store's file system) and goes with its job.
pub struct FolderFiles(pub PathBuf);

static FOLDER_FILE_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl TempFiles for FolderFiles {
    fn tmp_path(&self, ext: &str) -> PathBuf {
        let n = FOLDER_FILE_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.0
            .join(format!("part-{}-{n}.{ext}", std::process::id()))
    }
}

/// An output table a stage finished writing to a temp file, not yet stored. Dropping it
/// removes the file.
#[derive(Debug)]
pub struct WrittenTable {
    pub name: String,
    /// `None` once the file was moved away (see [`WrittenTable::moved`]).
    path: Option<PathBuf>,
    pub digest: Digest,
    pub bytes: u64,
    pub rows: u64,
}

impl WrittenTable {
    /// A table another process finished writing to `path` (a worker's output), taken over as
    /// if written here: the file is hashed now, and dropping the table removes it.
    pub fn adopt(name: &str, path: PathBuf, rows: u64) -> std::io::Result<Self> {
        let bytes = std::fs::metadata(&path)?.len();
        let digest = crate::engine::cache::hash_file(&path, bytes)?;
        Ok(Self {
            name: name.to_owned(),
            path: Some(path),
            digest,
            bytes,
            rows,
        })
    }

    /// The temp file holding the table's Parquet bytes.
    pub fn path(&self) -> &Path {
        self.path
            .as_deref()
            .expect("a written table's file is there until it is moved")
    }

    /// Records that the file was moved (or removed) by its taker, so dropping leaves it alone.
    pub fn moved(mut self) {
        self.path = None;
    }
}

impl Drop for WrittenTable {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A file that hashes (BLAKE3) and counts what is written to it.
struct HashingFile {
    file: File,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Where the parts go.
enum Parts {
    /// Kept to be handed back whole.
    Memory(Vec<RecordBatch>),
    /// Encoded into a temp file; the writer is made with the first part's schema.
    File {
        path: PathBuf,
        parts: Option<Box<PartWriter<HashingFile>>>,
    },
}

/// One output table being written a part at a time (see the module's documentation).
pub struct OutputWriter<'c> {
    name: String,
    schema: Option<SchemaRef>,
    rows: usize,
    /// `None` once finished.
    to: Option<Parts>,
    /// The stage's list of finished files.
    written: &'c Mutex<Vec<WrittenTable>>,
}

impl<'c> OutputWriter<'c> {
    /// A writer of output `name` into memory, or into a file of `files` when given.
    pub(crate) fn new(
        name: &str,
        files: Option<&dyn TempFiles>,
        written: &'c Mutex<Vec<WrittenTable>>,
    ) -> Self {
        let to = match files {
            Some(files) => Parts::File {
                path: files.tmp_path("part"),
                parts: None,
            },
            None => Parts::Memory(Vec::new()),
        };
        Self {
            name: name.to_owned(),
            schema: None,
            rows: 0,
            to: Some(to),
            written,
        }
    }

    /// Appends `part` after the parts so far. The first part written fixes the table's schema,
    /// nullability included: a column nullable only where a value is null must be built
    /// nullable in every part, or the part that first holds a null is refused.
    ///
    /// # Errors
    /// A part of another schema (an internal error), a non-finite float cell (a data error
    /// naming its row in the table, as for a whole table), or the file could not be written.
    pub fn write(&mut self, part: RecordBatch) -> Result<(), StageError> {
        let schema = part.schema();
        if self.schema.as_ref().is_some_and(|first| *first != schema) {
            return Err(StageError::internal(format!(
                "output `{}`: the part from row {} has another schema than the parts before it",
                self.name,
                self.rows + 1
            )));
        }
        crate::engine::finite::check_part(&self.name, &part, self.rows)?;
        let rows = part.num_rows();
        match self.to.as_mut().expect("a writer is used until finished") {
            Parts::Memory(parts) => parts.push(part),
            Parts::File { path, parts } => {
                let writer = match parts {
                    Some(w) => w,
                    None => parts.insert(Box::new(open_part_writer(path, schema.clone())?)),
                };
                writer
                    .write(part)
                    .map_err(|e| write_error(&self.name, path).caused_by(e))?;
            }
        }
        // Only a part written fixes the schema, so a file destination with a schema has its writer.
        self.schema.get_or_insert(schema);
        self.rows += rows;
        Ok(())
    }

    /// Ends the table. In memory, returns it whole; written to a file, the file is synced and
    /// left for the scheduler to store, and what returns is the table's schema with no rows:
    /// either way the stage returns it among its outputs under the writer's name.
    ///
    /// # Errors
    /// No part was written (the schema is unknown), or the file could not be written.
    pub fn finish(mut self) -> Result<RecordBatch, StageError> {
        let Some(schema) = self.schema.clone() else {
            return Err(StageError::internal(format!(
                "output `{}` was given no part (write an empty table for an empty output)",
                self.name
            )));
        };
        match self.to.take().expect("a writer is finished once") {
            Parts::Memory(parts) => {
                arrow_select::concat::concat_batches(&schema, &parts).map_err(|e| {
                    StageError::internal(format!("joining output `{}`", self.name)).caused_by(e)
                })
            }
            Parts::File { path, parts } => {
                let parts = parts.expect("the first part opened the file");
                let table = self.close(path, *parts)?;
                self.written
                    .lock()
                    .expect("written-table list lock is never poisoned")
                    .push(table);
                Ok(RecordBatch::new_empty(schema))
            }
        }
    }

    /// Writes the footer and syncs the file; the table's record (which owns the file from here).
    fn close(
        &self,
        path: PathBuf,
        parts: PartWriter<HashingFile>,
    ) -> Result<WrittenTable, StageError> {
        let mut table = WrittenTable {
            name: self.name.clone(),
            path: Some(path),
            digest: Digest::of(b""),
            bytes: 0,
            rows: self.rows as u64,
        };
        let file = parts
            .finish()
            .map_err(|e| write_error(&self.name, table.path()).caused_by(e))?;
        file.file
            .sync_all()
            .map_err(|e| write_error(&self.name, table.path()).caused_by(e))?;
        table.digest = file.hasher.finalize().into();
        table.bytes = file.bytes;
        Ok(table)
    }
}

impl Drop for OutputWriter<'_> {
    fn drop(&mut self) {
        // Not finished: the stage failed or stopped, and its half-written file goes.
        if let Some(Parts::File { path, parts }) = self.to.take() {
            drop(parts);
            let _ = std::fs::remove_file(path);
        }
    }
}

fn open_part_writer(path: &Path, schema: SchemaRef) -> Result<PartWriter<HashingFile>, StageError> {
    let file = File::create(path).map_err(|e| {
        StageError::internal(format!("cannot create {}", path.display()))
            .caused_by(e)
            .with_hint("check that the cache directory is writable and the disk is not full")
    })?;
    let file = HashingFile {
        file,
        hasher: blake3::Hasher::new(),
        bytes: 0,
    };
    PartWriter::new(file, schema)
        .map_err(|e| StageError::internal(format!("cannot start {}", path.display())).caused_by(e))
}

fn write_error(name: &str, path: &Path) -> StageError {
    StageError::internal(format!("writing output `{name}` to {}", path.display()))
        .with_hint("check that the cache directory is writable and the disk is not full")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::engine::stage::StageContext;
    use crate::table::TableBuilder;

    fn rows(from: i64, to: i64) -> RecordBatch {
        let names: Vec<String> = (from..to).map(|i| format!("r{i}")).collect();
        TableBuilder::new()
            .str("name", &names)
            .f64_opt(
                "x",
                (from..to)
                    .map(|i| (i % 3 != 0).then_some(0.5 * i as f64))
                    .collect(),
            )
            .build()
            .unwrap()
    }

    fn contexts() -> (tempfile::TempDir, StageContext, StageContext) {
        let dir = tempfile::tempdir().unwrap();
        let files = Arc::new(FolderFiles(dir.path().to_owned()));
        let on_disk = StageContext::new("s", dir.path(), BTreeMap::new()).with_output_files(files);
        let in_memory = StageContext::new("s", dir.path(), BTreeMap::new());
        (dir, on_disk, in_memory)
    }

    fn files_in(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn in_memory_the_parts_come_back_as_the_whole_table() {
        let (_dir, _, ctx) = contexts();
        let mut writer = ctx.output_writer("t");
        for (a, b) in [(0, 10), (10, 10), (10, 25)] {
            writer.write(rows(a, b)).unwrap();
        }
        assert_eq!(writer.finish().unwrap(), rows(0, 25));
        assert!(ctx.take_written().is_empty());
    }

    #[test]
    fn on_disk_the_file_holds_the_whole_tables_bytes_until_dropped() {
        let (dir, ctx, _) = contexts();
        let mut writer = ctx.output_writer("t");
        writer.write(rows(0, 70_000)).unwrap();
        writer.write(rows(70_000, 70_001)).unwrap();
        let returned = writer.finish().unwrap();
        assert_eq!(
            (returned.num_rows(), returned.schema()),
            (0, rows(0, 1).schema())
        );
        let mut written = ctx.take_written();
        let table = written.pop().unwrap();
        let whole = crate::io::parquet::to_bytes(&rows(0, 70_001)).unwrap();
        assert_eq!(std::fs::read(table.path()).unwrap(), whole);
        assert_eq!(
            (table.digest, table.bytes),
            (Digest::of(&whole), whole.len() as u64)
        );
        assert_eq!((table.name.as_str(), table.rows), ("t", 70_001));
        drop(table);
        assert_eq!(
            files_in(dir.path()),
            0,
            "an unstored table's file is removed"
        );
    }

    #[test]
    fn a_file_another_process_wrote_is_adopted_with_its_digest() {
        // As `pipeline worker` leaves an output for the coordinator to store.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        crate::io::parquet::write(&path, &rows(0, 1_000)).unwrap();
        let whole = crate::io::parquet::to_bytes(&rows(0, 1_000)).unwrap();
        let table = WrittenTable::adopt("t", path.clone(), 1_000).unwrap();
        assert_eq!(
            (table.digest, table.bytes, table.rows),
            (Digest::of(&whole), whole.len() as u64, 1_000)
        );
        assert_eq!(
            crate::io::parquet::schema_of(&path).unwrap(),
            rows(0, 1).schema()
        );
        drop(table);
        assert!(
            !path.exists(),
            "an adopted table's file goes when it is dropped unstored"
        );
    }

    #[test]
    fn an_unfinished_or_failed_writer_leaves_no_file() {
        let (dir, ctx, _) = contexts();
        let mut writer = ctx.output_writer("t");
        writer.write(rows(0, 100_000)).unwrap();
        assert_eq!(files_in(dir.path()), 1);
        drop(writer);
        assert_eq!(files_in(dir.path()), 0);

        let mut writer = ctx.output_writer("t");
        writer.write(rows(0, 5)).unwrap();
        let other = TableBuilder::new().i64("n", vec![1]).build().unwrap();
        let err = writer.write(other).unwrap_err();
        assert_eq!(
            err.message,
            "output `t`: the part from row 6 has another schema than the parts before it"
        );
        drop(writer);
        assert_eq!(files_in(dir.path()), 0);

        let err = ctx.output_writer("empty").finish().unwrap_err();
        assert!(err.message.contains("given no part"), "{}", err.message);
        assert!(ctx.take_written().is_empty());
    }
}
