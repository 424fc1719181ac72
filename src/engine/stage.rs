//! The `Stage` trait: the one boundary between the generic engine and the stage kinds.
//!
//! The engine sees a stage only through [`StageEntry`] (object-safe) and [`PreparedStage`]
//! (a kind with its parameters deserialised). Stage kinds implement the typed [`Stage`] trait
//! and get both for free through [`Entry`]. Nothing here knows what a stage computes.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arrow_array::{ArrayRef, RecordBatch};

use crate::engine::key::{CacheKey, Digest, KEY_FORMAT_VERSION};
use crate::engine::output_writer::{OutputWriter, TempFiles, WrittenTable};
use crate::engine::param_defaults::{self, DefaultDrift};
use crate::engine::reuse::ReuseStore;
use crate::engine::warning::{GENERAL, Warning};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A named input of a stage, wired in the study to an upstream stage's output.
#[derive(Debug, Clone)]
pub struct Port {
    pub name: &'static str,
    pub doc: &'static str,
    /// A required port must be wired; an optional one may be left out of `inputs:`.
    pub required: bool,
    /// Columns the stage reads from this input. Checked at plan time against what the
    /// upstream declares, and again at run time against the actual table.
    pub columns: Vec<String>,
}

impl Port {
    pub fn required(name: &'static str, doc: &'static str) -> Self {
        Self {
            name,
            doc,
            required: true,
            columns: Vec::new(),
        }
    }
    pub fn optional(name: &'static str, doc: &'static str) -> Self {
        Self {
            name,
            doc,
            required: false,
            columns: Vec::new(),
        }
    }
    /// Declares the columns this port reads.
    #[must_use]
    pub fn with_columns<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Self {
        self.columns = columns.into_iter().map(Into::into).collect();
        self
    }
}

/// A named output table of a stage. The first declared output is the stage's default.
#[derive(Debug, Clone)]
pub struct OutputDecl {
    pub name: String,
    pub doc: String,
    /// Columns the output is guaranteed to have. Empty means "not known before running"
    /// (e.g. `ingest` of a CSV), which turns off the plan-time check downstream.
    pub columns: Vec<String>,
    /// Whether `columns` lists every column. A downstream port asking for a column outside a
    /// complete list is a plan-time error; outside a partial list it is checked at run time.
    pub complete: bool,
}

impl OutputDecl {
    pub fn new(name: impl Into<String>, doc: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            doc: doc.into(),
            columns: Vec::new(),
            complete: false,
        }
    }
    /// Declares every column of the output.
    #[must_use]
    pub fn with_columns<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Self {
        self.columns = columns.into_iter().map(Into::into).collect();
        self.complete = true;
        self
    }
    /// Declares some columns the output will have; others depend on the data.
    #[must_use]
    pub fn with_some_columns<S: Into<String>>(
        mut self,
        columns: impl IntoIterator<Item = S>,
    ) -> Self {
        self.columns = columns.into_iter().map(Into::into).collect();
        self.complete = false;
        self
    }
}

/// A file a stage reads directly (not through a port). The engine resolves `path` against the
/// study's directory, refuses paths outside it unless allowed, and keys the stage on the file's
/// content digest. `name` is how the stage asks for it back through [`StageContext::source`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    pub path: PathBuf,
    /// An optional source may be absent (e.g. a shapefile's `.cpg`); its absence is part of
    /// the key, so the stage reruns when it appears.
    pub optional: bool,
    /// The file name is a pattern (`*`, `?`) expanded when the study is planned into one
    /// source per matching file (see [`crate::engine::pattern`]).
    pub pattern: bool,
}

impl Source {
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            path: path.into(),
            optional: false,
            pattern: false,
        }
    }
    /// Every file whose name matches `path`'s file-name pattern; read them with
    /// [`StageContext::sources_matching`].
    pub fn pattern(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            pattern: true,
            ..Self::new(name, path)
        }
    }
    /// A file the stage reads if it exists.
    pub fn optional(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            optional: true,
            ..Self::new(name, path)
        }
    }
}

/// One parameter as `pipeline stages` documents it.
#[derive(Debug, Clone, Copy)]
pub struct ParamDoc {
    pub name: &'static str,
    pub ty: &'static str,
    /// Empty for most parameters: `pipeline stages` shows the default the code uses (see
    /// [`crate::engine::param_defaults`]). Written only where that value says too little: what
    /// a `null` default means, or when a required parameter is required.
    pub default: &'static str,
    pub doc: &'static str,
}

/// The tables a stage receives, one per wired port.
#[derive(Debug, Default)]
pub struct Inputs {
    tables: BTreeMap<String, RecordBatch>,
    /// Port → the file its table was read from, when the upstream stage reads one.
    origins: BTreeMap<String, String>,
}

impl Inputs {
    pub fn new(tables: BTreeMap<String, RecordBatch>) -> Self {
        Self {
            tables,
            origins: BTreeMap::new(),
        }
    }

    /// Records which file each port's table came from, for messages.
    #[must_use]
    pub fn with_origins(mut self, origins: BTreeMap<String, String>) -> Self {
        self.origins = origins;
        self
    }

    /// The port's name for messages: `` `energy` (from data/energy.csv) `` when the file is
    /// known, else `` `energy` ``.
    pub fn label(&self, port: &str) -> String {
        match self.origins.get(port) {
            Some(file) => format!("`{port}` (from {file})"),
            None => format!("`{port}`"),
        }
    }

    /// The table wired to `port`. The plan guarantees required ports are wired, so a miss here
    /// is an error in the stage's own port list.
    pub fn table(&self, port: &str) -> Result<&RecordBatch, StageError> {
        self.tables.get(port).ok_or_else(|| {
            StageError::data(format!("input port `{port}` is not wired")).with_hint(format!(
                "add `{port}: <stage>` under this stage's `inputs:`"
            ))
        })
    }

    /// The table wired to an optional port, if any.
    pub fn optional(&self, port: &str) -> Option<&RecordBatch> {
        self.tables.get(port)
    }

    pub fn ports(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }
}

/// Where [`StageContext::memo`] keeps intermediate tables: the engine's cache.
pub trait MemoStore: Send + Sync {
    /// The table stored under `key` and the digest of its bytes.
    fn get(&self, key: &Digest) -> Option<(RecordBatch, Digest)>;
    /// Stores the table; returns the digest of its bytes.
    fn put(&self, key: &Digest, table: &RecordBatch) -> Result<Digest, StageError>;
}

/// What a running stage may ask of the engine: its declared source files, warnings, memoised
/// intermediate tables, files for logs (written, never read), and whether to stop. No clock and
/// no other paths, so results depend only on the key.
pub struct StageContext {
    stage: String,
    study_dir: PathBuf,
    sources: BTreeMap<String, PathBuf>,
    warnings: Mutex<Vec<Warning>>,
    cancelled: AtomicBool,
    memo: Option<(Arc<dyn MemoStore>, MemoScope)>,
    memos_used: Mutex<Vec<(Digest, Digest)>>,
    log_dir: Option<PathBuf>,
    progress: Mutex<Option<ProgressChannel>>,
    reuse: Option<Arc<ReuseStore>>,
    /// Where [`StageContext::output_writer`] writes files; `None`: tables stay in memory.
    output_files: Option<Arc<dyn TempFiles>>,
    written: Mutex<Vec<WrittenTable>>,
}

/// Where [`StageContext::progress`] sends its events, and the last tenth sent.
struct ProgressChannel {
    events: std::sync::mpsc::Sender<crate::engine::progress::Event>,
    tenth: u64,
    /// The last thousandth sent: at most about a thousand events per stage.
    permille: u64,
}

/// What a stage's memo keys are made of besides their own parameters.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct MemoScope {
    pub kind: String,
    pub version: u32,
    /// The stage's key inputs: `port:<name>` and `source:<name>` → content digest.
    pub inputs: BTreeMap<String, Digest>,
}

impl std::fmt::Debug for StageContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageContext")
            .field("stage", &self.stage)
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl StageContext {
    pub fn new(stage: &str, study_dir: &Path, sources: BTreeMap<String, PathBuf>) -> Self {
        Self {
            stage: stage.to_owned(),
            study_dir: study_dir.to_owned(),
            sources,
            warnings: Mutex::new(Vec::new()),
            cancelled: AtomicBool::new(false),
            memo: None,
            memos_used: Mutex::new(Vec::new()),
            log_dir: None,
            progress: Mutex::new(None),
            reuse: None,
            output_files: None,
            written: Mutex::new(Vec::new()),
        }
    }

    /// Lets [`StageContext::output_writer`] write tables to files of `files` (the cache's
    /// temp folder) for the scheduler to store, instead of keeping them in memory.
    #[must_use]
    pub fn with_output_files(mut self, files: Arc<dyn TempFiles>) -> Self {
        self.output_files = Some(files);
        self
    }

    /// A writer of output `name` a part at a time, for a table too large to hold whole. Its
    /// `finish` gives what the stage returns under `name` among its outputs: the whole table
    /// where the engine keeps outputs in memory (a sweep's draws, a worker, unit tests), or,
    /// where it writes them to the cache, the table's schema with no rows while the rows wait
    /// in a file the scheduler stores on commit (see [`crate::engine::output_writer`]).
    pub fn output_writer(&self, name: &str) -> OutputWriter<'_> {
        OutputWriter::new(name, self.output_files.as_deref(), &self.written)
    }

    /// The tables finished by [`StageContext::output_writer`] into files, for the scheduler.
    pub fn take_written(&self) -> Vec<WrittenTable> {
        std::mem::take(
            &mut *self
                .written
                .lock()
                .expect("written-table list lock is never poisoned"),
        )
    }

    /// Lets [`StageContext::reuse`] share values with the other runs that use `store`.
    #[must_use]
    pub fn with_reuse(mut self, store: Arc<ReuseStore>) -> Self {
        self.reuse = Some(store);
        self
    }

    /// A value computed only from the tables of `ports` and from `params` (say, a table's rows
    /// sorted and grouped): when the stage runs many times over the same tables in one process,
    /// as in a sweep's draws, the first run computes it and the others share it. Otherwise, or
    /// when a port's table changes between runs, it is just computed. `compute` must read
    /// nothing else, or runs would share a value they should each have computed.
    pub fn reuse<T: Send + Sync + 'static>(
        &self,
        name: &str,
        ports: &[&str],
        params: &impl Serialize,
        compute: impl FnOnce() -> Result<T, StageError>,
    ) -> Result<Arc<T>, StageError> {
        match &self.reuse {
            Some(store) if store.covers(ports) => {
                let params = serde_json::to_string(params)
                    .map_err(|e| StageError::internal("keying a reused value").caused_by(e))?;
                store.get_or_compute(name, params, compute)
            }
            _ => compute().map(Arc::new),
        }
    }

    /// A value computed only from `columns` and `params`, whichever stage produced the columns
    /// (the key columns of an upstream stage's output, say, which stay the same while its
    /// values change): when the stage runs many times in one process, as in a sweep's draws, a
    /// run whose columns hold the same values as the last computation's shares its value, and
    /// other runs compute it again. `compute` must read nothing else.
    ///
    /// # Errors
    /// What `compute` returns.
    pub fn reuse_over<T: Send + Sync + 'static>(
        &self,
        name: &str,
        columns: &[ArrayRef],
        params: &impl Serialize,
        compute: impl FnOnce() -> Result<T, StageError>,
    ) -> Result<Arc<T>, StageError> {
        match &self.reuse {
            Some(store) => {
                let params = serde_json::to_string(params)
                    .map_err(|e| StageError::internal("keying a reused value").caused_by(e))?;
                store.get_or_compute_over(name, params, columns, compute)
            }
            None => compute().map(Arc::new),
        }
    }

    /// Whether anything reads output `name` of this run. Always true in a study; a sweep's
    /// draws read only what the stages after them and the collected names read, so a stage
    /// may leave another output empty (with its declared columns) rather than build it.
    pub fn output_read(&self, name: &str) -> bool {
        self.reuse.as_ref().is_none_or(|store| store.reads(name))
    }

    /// Sends [`StageContext::progress`] reports to `events` until [`StageContext::end_progress`].
    #[must_use]
    pub fn with_progress(
        self,
        events: std::sync::mpsc::Sender<crate::engine::progress::Event>,
    ) -> Self {
        *self
            .progress
            .lock()
            .expect("progress lock is never poisoned") = Some(ProgressChannel {
            events,
            tenth: 0,
            permille: 0,
        });
        self
    }

    /// Stops sending progress (closes the channel, so its reader ends).
    pub fn end_progress(&self) {
        self.progress
            .lock()
            .expect("progress lock is never poisoned")
            .take();
    }

    /// Reports that `done` of `total` steps (`unit`: `tiles`, `years`, …) of the stage's long
    /// part are finished; shown as a bar with an ETA on a terminal, as a line per tenth in logs.
    /// Call it from any thread; it never affects results.
    pub fn progress(&self, done: u64, total: u64, unit: &str) {
        let mut guard = self
            .progress
            .lock()
            .expect("progress lock is never poisoned");
        let Some(channel) = guard.as_mut() else {
            return;
        };
        let permille = (done * 1000).checked_div(total).unwrap_or(1000);
        if permille <= channel.permille && done != 0 {
            return;
        }
        channel.permille = permille;
        let tenth = permille / 100;
        let milestone = tenth > channel.tenth;
        channel.tenth = channel.tenth.max(tenth);
        let _ = channel
            .events
            .send(crate::engine::progress::Event::StageProgress {
                stage: self.stage.clone(),
                done,
                total,
                unit: unit.to_owned(),
                milestone,
            });
    }

    /// Lets [`StageContext::log_file`] keep logs in `dir` (in the cache).
    #[must_use]
    pub fn with_log_dir(mut self, dir: PathBuf) -> Self {
        self.log_dir = Some(dir);
        self
    }

    /// A file for a log of this stage's run (an external program's output, say), named after
    /// the stage and `what`, replacing the previous run's. Logs are written, never read back,
    /// so they cannot change a result. `None` without a log directory (in unit tests) or when
    /// it cannot be created.
    pub fn log_file(&self, what: &str) -> Option<PathBuf> {
        let dir = self.log_dir.as_ref()?;
        std::fs::create_dir_all(dir).ok()?;
        Some(dir.join(format!("{}.{what}.log", self.stage)))
    }

    /// Lets [`StageContext::memo`] keep tables across runs.
    #[must_use]
    pub fn with_memo(mut self, store: Arc<dyn MemoStore>, scope: MemoScope) -> Self {
        self.memo = Some((store, scope));
        self
    }

    /// An intermediate table that depends on only some of the stage's inputs and parameters,
    /// kept in the cache across runs. When a parameter outside `params` changes (say, a
    /// reclassification table), the stage reruns but finds its expensive intermediate here.
    ///
    /// The memo key is the kind, its version, `name`, `params`, and the digests of the inputs
    /// named in `depends_on` (`port:<name>` or `source:<name>`, as in the stage's key). Without a
    /// store (in unit tests) the table is just computed.
    pub fn memo(
        &self,
        name: &str,
        depends_on: &[String],
        params: &serde_json::Value,
        compute: impl FnOnce() -> Result<RecordBatch, StageError>,
    ) -> Result<RecordBatch, StageError> {
        if self.memo.is_none() {
            return compute();
        }
        if let Some(table) = self.memo_lookup(name, depends_on, params)? {
            return Ok(table);
        }
        let table = compute()?;
        self.memo_store(name, depends_on, params, &table)?;
        Ok(table)
    }

    /// The memoised table, if the store has it (see [`StageContext::memo`]); `None` without a
    /// store. For a stage that computes several memos in one pass when any is missing.
    pub fn memo_lookup(
        &self,
        name: &str,
        depends_on: &[String],
        params: &serde_json::Value,
    ) -> Result<Option<RecordBatch>, StageError> {
        let Some((store, _)) = &self.memo else {
            return Ok(None);
        };
        let key = self.memo_key(name, depends_on, params)?;
        Ok(store.get(&key).map(|(table, digest)| {
            self.used_memo(key, digest);
            table
        }))
    }

    /// Stores a table [`StageContext::memo_lookup`] did not find; nothing without a store.
    pub fn memo_store(
        &self,
        name: &str,
        depends_on: &[String],
        params: &serde_json::Value,
        table: &RecordBatch,
    ) -> Result<(), StageError> {
        let Some((store, _)) = &self.memo else {
            return Ok(());
        };
        let key = self.memo_key(name, depends_on, params)?;
        let digest = store.put(&key, table)?;
        self.used_memo(key, digest);
        Ok(())
    }

    fn used_memo(&self, key: Digest, digest: Digest) {
        self.memos_used
            .lock()
            .expect("memo list lock is never poisoned")
            .push((key, digest));
    }

    /// The memo key: the kind, its version, `name`, `params`, and the digests of `depends_on`.
    fn memo_key(
        &self,
        name: &str,
        depends_on: &[String],
        params: &serde_json::Value,
    ) -> Result<Digest, StageError> {
        let Some((_, scope)) = &self.memo else {
            return Err(StageError::internal("memo keys need a memo store"));
        };
        let mut inputs = BTreeMap::new();
        for input in depends_on {
            let digest = scope.inputs.get(input).ok_or_else(|| {
                StageError::internal(format!(
                    "memo `{name}` depends on `{input}`, which is not an input of this stage"
                ))
            })?;
            inputs.insert(input.clone(), *digest);
        }
        Ok(CacheKey {
            format: KEY_FORMAT_VERSION,
            kind: format!("{}#{name}", scope.kind),
            version: scope.version,
            params: params.clone(),
            inputs,
            code: crate::engine::key::CODE_DIGEST,
        }
        .digest())
    }

    /// The names of the key inputs a memo may depend on (`port:<name>`, `source:<name>`);
    /// none without a store.
    pub fn memo_inputs(&self) -> Vec<String> {
        self.memo.as_ref().map_or_else(Vec::new, |(_, scope)| {
            scope.inputs.keys().cloned().collect()
        })
    }

    /// The memo entries this run used: (memo key, blob digest).
    pub fn take_memos(&self) -> Vec<(Digest, Digest)> {
        std::mem::take(
            &mut *self
                .memos_used
                .lock()
                .expect("memo list lock is never poisoned"),
        )
    }

    /// The stage's name in the study (for messages).
    pub fn stage(&self) -> &str {
        &self.stage
    }

    /// The study file's directory. Only for resolving paths inside data files (e.g. a
    /// shapefile's sidecars); every file read must still be declared as a [`Source`].
    pub fn study_dir(&self) -> &Path {
        &self.study_dir
    }

    /// The resolved path of a declared source file.
    pub fn source(&self, name: &str) -> Result<&Path, StageError> {
        self.sources.get(name).map(PathBuf::as_path).ok_or_else(|| {
            StageError::internal(format!("source `{name}` was not declared by the stage"))
        })
    }

    /// The files of source `name`: itself when declared as one file, else the files its
    /// pattern matched, in file-name order, each with its source name.
    pub fn sources_matching(&self, name: &str) -> Vec<(String, &Path)> {
        if let Some(p) = self.sources.get(name) {
            return vec![(name.to_owned(), p.as_path())];
        }
        (0..)
            .map(|i| crate::engine::pattern::expanded_name(name, i))
            .map_while(|n| self.sources.get(&n).map(|p| (n, p.as_path())))
            .collect()
    }

    /// Records a warning of the [`GENERAL`] kind, shown on its own line. It is stored with the
    /// cache entry, so a cached rerun can summarise it and `pipeline explain` list it.
    pub fn warn(&self, message: impl Into<String>) {
        self.push_warning(Warning::new(GENERAL, message, None));
    }

    /// Records a warning of a named kind: a run shows one line per kind (the count and the
    /// first), so a stage may warn once per unit.
    pub fn warn_kind(&self, kind: &str, message: impl Into<String>) {
        self.push_warning(Warning::new(kind, message, None));
    }

    /// As [`StageContext::warn_kind`], with a severity: the summary shows the highest.
    pub fn warn_scored(&self, kind: &str, severity: f64, message: impl Into<String>) {
        self.push_warning(Warning::new(kind, message, Some(severity)));
    }

    fn push_warning(&self, warning: Warning) {
        self.warnings
            .lock()
            .expect("warning list lock is never poisoned")
            .push(warning);
    }

    /// The warnings' messages (for tests of stage kinds).
    pub fn take_warnings(&self) -> Vec<String> {
        self.take_warning_records()
            .into_iter()
            .map(|w| w.message)
            .collect()
    }

    /// The warnings with their kinds and severities, as the engine stores them.
    pub fn take_warning_records(&self) -> Vec<Warning> {
        std::mem::take(
            &mut *self
                .warnings
                .lock()
                .expect("warning list lock is never poisoned"),
        )
    }

    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// Long stages poll this between chunks and return early when set: the run was cancelled,
    /// or `pipeline` received SIGINT or SIGTERM.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed) || crate::engine::interrupt::received().is_some()
    }
}

/// Why a stage failed. The tier decides the exit code: bad user data is the user's to fix (2),
/// a computation that failed is 1, the environment or a bug is 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageErrorTier {
    /// The input data or parameters are wrong: the message says where and the hint how to fix it.
    Data,
    /// The computation failed (e.g. an external command exited non-zero).
    Failed,
    /// The machine or a bug: disk full, permission denied, an invariant broken.
    Internal,
}

/// A stage's failure: a message, the chain of causes, and a hint.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct StageError {
    pub tier: StageErrorTier,
    pub message: String,
    pub causes: Vec<String>,
    pub hint: Option<String>,
}

impl StageError {
    fn with_tier(tier: StageErrorTier, message: impl Into<String>) -> Self {
        Self {
            tier,
            message: message.into(),
            causes: Vec::new(),
            hint: None,
        }
    }
    /// Bad input data or parameters (exit 2).
    pub fn data(message: impl Into<String>) -> Self {
        Self::with_tier(StageErrorTier::Data, message)
    }
    /// A computation that failed (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        Self::with_tier(StageErrorTier::Failed, message)
    }
    /// The environment or a broken invariant (exit 3).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::with_tier(StageErrorTier::Internal, message)
    }
    /// A missing column in an input table.
    pub fn column_missing(table: &str, column: &str, present: &[String]) -> Self {
        let mut err = Self::data(format!("input `{table}` has no column `{column}`"));
        err.hint = Some(
            match crate::engine::suggest::did_you_mean(column, present.iter().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`? (columns: {})", present.join(", ")),
                None => format!("the columns are: {}", present.join(", ")),
            },
        );
        err
    }
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    #[must_use]
    pub fn caused_by(mut self, cause: impl std::fmt::Display) -> Self {
        self.causes.push(cause.to_string());
        self
    }
}

impl std::fmt::Display for StageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StageError {}

/// A stage's results: named tables, in the order of [`Stage::outputs`]. A table written with
/// [`StageContext::output_writer`] is returned as its `finish` gave it.
pub type Outputs = Vec<(String, RecordBatch)>;

/// A stage kind. Implement this on a unit struct and add one line to the registry.
///
/// Rows must come out in a defined order (sort by id, then year, …): the engine writes the
/// tables as given and relies on that for byte-identical Parquet.
pub trait Stage: Send + Sync + 'static {
    /// The YAML `kind:`. Part of every cache key: never rename.
    const KIND: &'static str;
    /// Bump when the same inputs and parameters would now give a different output.
    const VERSION: u32;
    /// One paragraph for `pipeline stages`.
    const DOC: &'static str;
    /// Parameters as documented by `pipeline stages`.
    const PARAMS: &'static [ParamDoc];
    /// Example values of the required parameters (none by default). The documented defaults
    /// of the others are these deserialised into [`Stage::Params`] and serialised again.
    fn required_example() -> serde_json::Value {
        serde_json::Value::Object(serde_json::Map::new())
    }
    /// Parameters whose default is better said in words than shown as a value, because it
    /// depends on other parameters or is long; `pipeline stages` shows their written default.
    const DESCRIBED_DEFAULTS: &'static [&'static str] = &[];
    /// Typed parameters: every key of the stage's YAML mapping except `kind`, `inputs`, `publish`.
    /// Use `#[serde(deny_unknown_fields)]` so typos are caught.
    type Params: DeserializeOwned + Serialize + Send + Sync + 'static;

    /// Input ports.
    fn ports(params: &Self::Params) -> Vec<Port>;
    /// Output tables; the first is the default.
    fn outputs(params: &Self::Params) -> Vec<OutputDecl>;
    /// Files the stage reads directly.
    fn sources(_params: &Self::Params) -> Vec<Source> {
        Vec::new()
    }
    /// Checks parameters beyond their types (ranges, combinations). Runs at plan time.
    fn validate(_params: &Self::Params) -> Result<(), StageError> {
        Ok(())
    }
    /// Computes the outputs.
    fn run(
        params: &Self::Params,
        inputs: &Inputs,
        ctx: &StageContext,
    ) -> Result<Outputs, StageError>;
    /// A kind that takes well under a second (reading a small table, say): a batch executor
    /// runs it in the coordinating process instead of submitting a job for it.
    const QUICK: bool = false;
    /// Parts of the work that may run as separate jobs, each filling memos (see
    /// [`StageContext::memo`]) that [`Stage::run`] then finds, so `run` only merges. Empty,
    /// the default: the stage runs whole. Local runs ignore shards; `run` must compute any
    /// memo it does not find.
    fn shards(_params: &Self::Params) -> Vec<Shard> {
        Vec::new()
    }
    /// Runs of this kind on small tables, for the test that every registered kind writes the
    /// tables it declares; that test fails for a kind that gives none. Test builds only.
    #[cfg(test)]
    fn declaration_examples() -> Vec<Example> {
        Vec::new()
    }
    /// Computes the memos of one shard named by [`Stage::shards`].
    fn run_shard(
        _params: &Self::Params,
        shard: &str,
        _inputs: &Inputs,
        _ctx: &StageContext,
    ) -> Result<(), StageError> {
        Err(StageError::internal(format!(
            "kind `{}` has no shard `{shard}`",
            Self::KIND
        )))
    }
}

/// One shard of a stage: a name (`2005`, say) and the inputs its memos depend on
/// (`port:<name>`, `source:<name>`), which key the shard, so a rerun recomputes only the
/// shards whose inputs changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub name: String,
    pub depends_on: Vec<String>,
}

/// One run of a kind on small tables (see [`Stage::declaration_examples`]).
#[cfg(test)]
pub struct Example {
    /// The stage's parameters.
    pub params: serde_json::Value,
    /// Port → table.
    pub tables: Vec<(&'static str, RecordBatch)>,
    /// Files written into the study folder first: relative path → contents.
    pub files: Vec<(&'static str, &'static str)>,
}

#[cfg(test)]
impl Example {
    pub fn new(params: serde_json::Value, tables: Vec<(&'static str, RecordBatch)>) -> Self {
        Self {
            params,
            tables,
            files: Vec::new(),
        }
    }

    #[must_use]
    pub fn with_file(mut self, path: &'static str, contents: &'static str) -> Self {
        self.files.push((path, contents));
        self
    }
}

/// A kind as the registry holds it: object-safe, parameters not yet known.
pub trait StageEntry: Send + Sync {
    fn kind(&self) -> &'static str;
    fn version(&self) -> u32;
    fn doc(&self) -> &'static str;
    /// Parameters with their defaults as the code has them.
    fn params_doc(&self) -> &'static [ParamDoc];
    /// The written defaults that contradict the code's; an error if the kind's example of its
    /// required parameters does not deserialise.
    fn default_drifts(&self) -> Result<Vec<DefaultDrift>, StageError>;
    /// Deserialises and validates the parameters.
    fn prepare(&self, params: serde_json::Value) -> Result<Box<dyn PreparedStage>, StageError>;
    /// See [`Stage::declaration_examples`].
    #[cfg(test)]
    fn declaration_examples(&self) -> Vec<Example>;
}

/// A kind with its parameters: what the plan holds for each stage.
pub trait PreparedStage: Send + Sync {
    /// Parameters after deserialisation, defaults filled in: this, not the YAML text, is keyed,
    /// so spelling out a default does not change the key.
    fn canonical_params(&self) -> serde_json::Value;
    fn ports(&self) -> Vec<Port>;
    fn outputs(&self) -> Vec<OutputDecl>;
    fn sources(&self) -> Vec<Source>;
    fn run(&self, inputs: &Inputs, ctx: &StageContext) -> Result<Outputs, StageError>;
    /// See [`Stage::QUICK`].
    fn quick(&self) -> bool {
        false
    }
    /// Whether `pipeline worker` can run this stage from its invocation (kind and canonical
    /// parameters). A stage built by the engine from other stages cannot, and runs in place.
    fn has_invocation(&self) -> bool {
        true
    }
    /// See [`Stage::shards`].
    fn shards(&self) -> Vec<Shard> {
        Vec::new()
    }
    /// See [`Stage::run_shard`].
    fn run_shard(
        &self,
        shard: &str,
        _inputs: &Inputs,
        _ctx: &StageContext,
    ) -> Result<(), StageError> {
        Err(StageError::internal(format!(
            "this stage has no shard `{shard}`"
        )))
    }
}

/// Makes any [`Stage`] a [`StageEntry`]; `const`-constructible for the static registry.
pub struct Entry<S>(PhantomData<fn() -> S>);

impl<S> Entry<S> {
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<S> Default for Entry<S> {
    fn default() -> Self {
        Self::new()
    }
}

struct Prepared<S: Stage> {
    params: S::Params,
}

impl<S: Stage> StageEntry for Entry<S> {
    fn kind(&self) -> &'static str {
        S::KIND
    }
    #[cfg(test)]
    fn declaration_examples(&self) -> Vec<Example> {
        S::declaration_examples()
    }
    fn version(&self) -> u32 {
        S::VERSION
    }
    fn doc(&self) -> &'static str {
        S::DOC
    }
    fn params_doc(&self) -> &'static [ParamDoc] {
        // Derived once per kind and kept for the life of the process, like the registry.
        static DOCS: Mutex<BTreeMap<&'static str, &'static [ParamDoc]>> =
            Mutex::new(BTreeMap::new());
        let mut docs = DOCS.lock().expect("parameter docs lock is never poisoned");
        docs.entry(S::KIND).or_insert_with(|| {
            let defaults = default_params::<S>().ok();
            let derived = param_defaults::documented(
                S::PARAMS,
                &S::required_example(),
                defaults.as_ref(),
                S::DESCRIBED_DEFAULTS,
            );
            Box::leak(derived.into_boxed_slice())
        })
    }
    fn default_drifts(&self) -> Result<Vec<DefaultDrift>, StageError> {
        Ok(param_defaults::drifts(
            S::PARAMS,
            &S::required_example(),
            &default_params::<S>()?,
            S::DESCRIBED_DEFAULTS,
        ))
    }
    fn prepare(&self, params: serde_json::Value) -> Result<Box<dyn PreparedStage>, StageError> {
        let params: S::Params = serde_json::from_value(params).map_err(|e| {
            let mut err =
                StageError::data(format!("invalid parameters for kind `{}`: {e}", S::KIND));
            let known: Vec<&str> = S::PARAMS.iter().map(|p| p.name).collect();
            err.hint = Some(if known.is_empty() {
                format!("kind `{}` takes no parameters besides `inputs`", S::KIND)
            } else {
                format!(
                    "kind `{}` takes: {} (see `pipeline stages`)",
                    S::KIND,
                    known.join(", ")
                )
            });
            err
        })?;
        S::validate(&params)?;
        Ok(Box::new(Prepared::<S> { params }))
    }
}

/// The parameters deserialised from the kind's example of its required ones, serialised: every
/// default filled in.
fn default_params<S: Stage>() -> Result<serde_json::Value, StageError> {
    let params: S::Params = serde_json::from_value(S::required_example()).map_err(|e| {
        StageError::internal(format!(
            "kind `{}`: its example of the required parameters does not deserialise: {e}",
            S::KIND
        ))
    })?;
    serde_json::to_value(&params).map_err(|e| StageError::internal(e.to_string()))
}

impl<S: Stage> PreparedStage for Prepared<S> {
    fn canonical_params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).expect("stage parameters serialise to JSON")
    }
    fn ports(&self) -> Vec<Port> {
        S::ports(&self.params)
    }
    fn outputs(&self) -> Vec<OutputDecl> {
        S::outputs(&self.params)
    }
    fn sources(&self) -> Vec<Source> {
        S::sources(&self.params)
    }
    fn run(&self, inputs: &Inputs, ctx: &StageContext) -> Result<Outputs, StageError> {
        S::run(&self.params, inputs, ctx)
    }
    fn quick(&self) -> bool {
        S::QUICK
    }
    fn shards(&self) -> Vec<Shard> {
        S::shards(&self.params)
    }
    fn run_shard(
        &self,
        shard: &str,
        inputs: &Inputs,
        ctx: &StageContext,
    ) -> Result<(), StageError> {
        S::run_shard(&self.params, shard, inputs, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_thinned_to_thousandths_with_one_milestone_per_tenth() {
        use crate::engine::progress::Event;
        let (tx, rx) = std::sync::mpsc::channel();
        let ctx = StageContext::new("s", Path::new("."), BTreeMap::new()).with_progress(tx);
        for done in 0..=5_000u64 {
            ctx.progress(done, 5_000, "tiles");
        }
        ctx.end_progress();
        ctx.progress(1, 1, "tiles"); // After the end: dropped.
        let events: Vec<Event> = rx.iter().collect();
        // 0, then every 5th step (one per thousandth): 1 + 1000 events.
        assert_eq!(events.len(), 1_001);
        let milestones: Vec<u64> = events
            .iter()
            .filter_map(|e| match e {
                Event::StageProgress {
                    done,
                    milestone: true,
                    ..
                } => Some(*done),
                _ => None,
            })
            .collect();
        assert_eq!(milestones, (1..=10).map(|t| t * 500).collect::<Vec<_>>());
        assert!(matches!(
            events.last(),
            Some(Event::StageProgress {
                done: 5_000,
                total: 5_000,
                ..
            })
        ));
        // Without a channel, progress is a no-op.
        StageContext::new("s", Path::new("."), BTreeMap::new()).progress(1, 2, "x");
    }

    #[derive(Default)]
    struct MapStore(Mutex<BTreeMap<Digest, RecordBatch>>);

    impl MemoStore for MapStore {
        fn get(&self, key: &Digest) -> Option<(RecordBatch, Digest)> {
            self.0
                .lock()
                .unwrap()
                .get(key)
                .map(|t| (t.clone(), Digest::of(b"t")))
        }
        fn put(&self, key: &Digest, table: &RecordBatch) -> Result<Digest, StageError> {
            self.0.lock().unwrap().insert(*key, table.clone());
            Ok(Digest::of(b"t"))
        }
    }

    fn ctx(store: &Arc<MapStore>, scheme: &[u8]) -> StageContext {
        let inputs = BTreeMap::from([
            ("source:raster".to_owned(), Digest::of(b"raster")),
            ("source:scheme".to_owned(), Digest::of(scheme)),
        ]);
        StageContext::new("s", Path::new("."), BTreeMap::new()).with_memo(
            store.clone(),
            MemoScope {
                kind: "k".into(),
                version: 1,
                inputs,
            },
        )
    }

    #[test]
    fn memo_is_reused_when_only_other_inputs_change() {
        let store = Arc::new(MapStore::default());
        let table = || {
            Ok(RecordBatch::new_empty(Arc::new(
                arrow_schema::Schema::empty(),
            )))
        };
        let depends = ["source:raster".to_owned()];
        let mut computed = 0;
        for scheme in [b"a".as_slice(), b"b".as_slice()] {
            let c = ctx(&store, scheme);
            c.memo("hist", &depends, &serde_json::json!({}), || {
                computed += 1;
                table()
            })
            .unwrap();
            assert_eq!(c.take_memos().len(), 1);
        }
        assert_eq!(computed, 1, "a change outside the memo's inputs reuses it");
        let c = ctx(&store, b"a");
        c.memo("hist", &depends, &serde_json::json!({"cell": 2}), || {
            computed += 1;
            table()
        })
        .unwrap();
        assert_eq!(
            computed, 2,
            "a change in the memo's own parameters recomputes it"
        );
        let err = c
            .memo(
                "hist",
                &["port:nothing".to_owned()],
                &serde_json::json!({}),
                table,
            )
            .unwrap_err();
        assert!(err.message.contains("not an input"), "{}", err.message);
    }
}
