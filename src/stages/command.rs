//! The `command` stage: runs an external program for a custom step and reads back the tables
//! it writes. It owns the contract with the program:
//!
//! - each input port's table is written as Parquet to a private scratch directory, and its
//!   path is given as `$PIPELINE_INPUT_<PORT>` and as the `{input.<port>}` placeholder;
//! - the program writes each declared output (Parquet, or CSV with `format: csv`) to the path in
//!   `$PIPELINE_OUTPUT_<NAME>` / `{output.<name>}`;
//! - declared `scripts` are digested into the cache key (through the engine's sources) and
//!   given as `$PIPELINE_SCRIPT_<i>` / `{script.<i>}`;
//! - the program runs in the study file's directory, inherits the environment plus `env`,
//!   and must exit 0; its stdin is empty, and the last 20 lines it printed (stderr, else
//!   stdout) become the causes of the error when it fails. Only the last 64 KiB of each
//!   stream is kept in memory; the whole of it is written to `logs/` in the cache, and the
//!   error names those files;
//! - the program runs in its own process group, so stopping it also stops what it started:
//!   after `timeout` (default 1 h), or when `pipeline` receives SIGINT or SIGTERM, the group
//!   gets SIGTERM and, 5 s later, SIGKILL; the scratch directory is removed either way.
//!
//! `run` is either an argument vector (no shell) or one string for `sh -c`. In the string
//! form a placeholder becomes the bare path when the shell would read it literally, and a
//! single-quoted path otherwise; `"$PIPELINE_INPUT_<PORT>"` is the robust spelling.
//!
//! Rows are kept in the order the program writes them, so the program must write them in a
//! defined order (sorted by unit id, say) for the cache to stay byte-identical. The inherited
//! environment and the programs themselves (beyond `scripts`) are not part of the key.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::engine::stage::{
    Inputs, OutputDecl, Outputs, ParamDoc, Port, Source, Stage, StageContext, StageError,
};
use crate::table::TableBuilder;

/// The `command` kind.
pub struct Command;

/// What to run: an argument vector (no shell) or one string for `sh -c`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Run {
    /// `[program, arg, ...]`, run directly; placeholders are replaced in each argument.
    Argv(Vec<String>),
    /// A shell command line for `sh -c`; placeholders become paths, single-quoted when they
    /// hold characters the shell would interpret.
    Shell(String),
}

impl<'de> Deserialize<'de> for Run {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RunVisitor;
        impl<'de> Visitor<'de> for RunVisitor {
            type Value = Run;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of arguments ([program, arg, ...]) or a shell command string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Run, E> {
                Ok(Run::Shell(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Run, A::Error> {
                let mut argv = Vec::new();
                while let Some(arg) = seq.next_element::<String>()? {
                    argv.push(arg);
                }
                Ok(Run::Argv(argv))
            }
        }
        deserializer.deserialize_any(RunVisitor)
    }
}

/// The format the program writes its outputs in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Parquet,
    /// A header row, then rows; column types are inferred as `ingest` does.
    Csv,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
        }
    }
}

/// How long a program may run: a whole number and a unit, `s`, `m` or `h` (`90s`, `10m`,
/// `1h`). Written back the same way, so it reads in `explain` as in the study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timeout {
    seconds: u64,
}

impl Timeout {
    /// One hour: long enough for a model run, short enough that a hung program does not hold
    /// a run (and the cache's lock) for a day.
    pub const DEFAULT: Timeout = Timeout { seconds: 3600 };

    pub fn duration(self) -> Duration {
        Duration::from_secs(self.seconds)
    }

    fn is_default(&self) -> bool {
        *self == Self::DEFAULT
    }
}

impl Default for Timeout {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<String> for Timeout {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let bad = || format!("`{text}` is not a duration: write e.g. 90s, 10m or 1h");
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (number, unit) = t.split_at(split);
        let unit_s = match unit.trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            _ => return Err(bad()),
        };
        let seconds = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(unit_s))
            .filter(|&s| s > 0)
            .ok_or_else(bad)?;
        Ok(Timeout { seconds })
    }
}

impl From<Timeout> for String {
    fn from(t: Timeout) -> String {
        match t.seconds {
            s if s % 3600 == 0 => format!("{}h", s / 3600),
            s if s % 60 == 0 => format!("{}m", s / 60),
            s => format!("{s}s"),
        }
    }
}

impl std::fmt::Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from(*self))
    }
}

fn default_outputs() -> Vec<String> {
    vec!["table".to_owned()]
}

/// Parameters of `command`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The program and its arguments, or a shell command line.
    pub run: Run,
    /// Input port names (all required), wired under `inputs:`. Default: none.
    #[serde(default)]
    pub ports: Vec<String>,
    /// Output table names; the first is the default output. Default: `[table]`.
    #[serde(default = "default_outputs")]
    pub outputs: Vec<String>,
    /// Files the program uses (scripts, configuration), relative to the study file; their
    /// content is part of the cache key. Default: none.
    #[serde(default)]
    pub scripts: Vec<PathBuf>,
    /// The format of the files the program writes. Default: `parquet`.
    #[serde(default)]
    pub format: Format,
    /// Extra environment variables. Default: none.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// How long the program may run before its process group is stopped. Default: `1h`.
    /// Left out of the key when it is the default, so adding it kept existing keys; it never
    /// changes a successful output.
    #[serde(default, skip_serializing_if = "Timeout::is_default")]
    pub timeout: Timeout,
}

/// Port names must be `&'static str`; user-chosen ones are leaked once per distinct name (a
/// study has a handful), so repeated planning does not grow memory.
fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut names = NAMES
        .lock()
        .expect("the port-name set lock is never poisoned");
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

fn env_suffix(name: &str) -> String {
    name.to_ascii_uppercase()
}

/// A path as one `sh` word: as it is when the shell would read it literally (so it also works
/// inside the user's own double quotes), else `'...'` with embedded quotes closed, escaped and
/// reopened.
fn shell_quote(s: &str) -> String {
    let literal = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%,=".contains(c));
    if literal {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Replaces `{input.x}`, `{output.x}` and `{script.i}` in `template` through `lookup`;
/// `{{` and `}}` stand for literal braces. Errors name the unknown placeholder.
fn substitute(template: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if tail.starts_with('}') {
            return Err("a `}` without its `{` (write `}}` for a literal brace)".to_owned());
        }
        let end = tail
            .find('}')
            .ok_or("a `{` without its `}` (write `{{` for a literal brace)")?;
        let key = &tail[1..end];
        out.push_str(&lookup(key).ok_or_else(|| format!("unknown placeholder `{{{key}}}`"))?);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The placeholders and environment variables of one run.
struct Paths {
    inputs: BTreeMap<String, PathBuf>,
    outputs: BTreeMap<String, PathBuf>,
    scripts: Vec<PathBuf>,
}

impl Paths {
    fn lookup(&self, key: &str) -> Option<&Path> {
        let (kind, name) = key.split_once('.')?;
        match kind {
            "input" => self.inputs.get(name).map(PathBuf::as_path),
            "output" => self.outputs.get(name).map(PathBuf::as_path),
            "script" => self
                .scripts
                .get(name.parse::<usize>().ok()?)
                .map(PathBuf::as_path),
            _ => None,
        }
    }

    fn env(&self) -> Vec<(String, &Path)> {
        let inputs = self
            .inputs
            .iter()
            .map(|(n, p)| (format!("PIPELINE_INPUT_{}", env_suffix(n)), p.as_path()));
        let outputs = self
            .outputs
            .iter()
            .map(|(n, p)| (format!("PIPELINE_OUTPUT_{}", env_suffix(n)), p.as_path()));
        let scripts = self
            .scripts
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("PIPELINE_SCRIPT_{i}"), p.as_path()));
        inputs.chain(outputs).chain(scripts).collect()
    }

    /// The program and arguments to execute, placeholders replaced.
    fn argv(&self, run: &Run) -> Result<Vec<String>, String> {
        match run {
            Run::Argv(args) => args
                .iter()
                .map(|a| substitute(a, &|k| self.lookup(k).map(|p| p.display().to_string())))
                .collect(),
            Run::Shell(line) => {
                let line = substitute(line, &|k| {
                    self.lookup(k)
                        .map(|p| shell_quote(&p.display().to_string()))
                })?;
                Ok(vec!["sh".to_owned(), "-c".to_owned(), line])
            }
        }
    }
}

fn check_names(what: &str, names: &[String]) -> Result<(), StageError> {
    let mut seen = BTreeSet::new();
    for name in names {
        let ok = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(StageError::data(format!(
                "{what} name `{name}` is not a plain identifier"
            ))
            .with_hint(
                "use letters, digits and `_` (it becomes part of an environment variable name)",
            ));
        }
        if !seen.insert(env_suffix(name)) {
            return Err(StageError::data(format!(
                "{what} name `{name}` is given twice (names are compared ignoring case)"
            )));
        }
    }
    Ok(())
}

/// The last `n` lines of a program's output, for error messages. When the capture was cut
/// at its front, its first (partial) line is left out.
fn tail_lines(stream: &Captured, n: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(&stream.tail);
    let mut lines: Vec<&str> = text.lines().collect();
    if stream.truncated && lines.len() > 1 {
        lines.remove(0);
    }
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| (*l).to_owned())
        .collect()
}

/// Bytes of each output stream kept in memory for the error message.
const TAIL_BYTES: usize = 64 * 1024;

/// What a program printed on one stream: the end of it, and the log holding all of it.
#[derive(Debug, Default)]
struct Captured {
    tail: Vec<u8>,
    /// Whether bytes before `tail` were dropped.
    truncated: bool,
    log: Option<PathBuf>,
}

/// Reads a pipe to its end on a thread, so a chatty program cannot fill it and block. The
/// whole stream goes to `log` (when given and writable); only its last [`TAIL_BYTES`] stay in
/// memory.
fn capture(
    pipe: Option<impl Read + Send + 'static>,
    log: Option<PathBuf>,
) -> std::thread::JoinHandle<Captured> {
    std::thread::spawn(move || {
        let mut file = log
            .as_ref()
            .and_then(|p| std::fs::File::create(p).ok())
            .map(std::io::BufWriter::new);
        let mut captured = Captured::default();
        let Some(mut pipe) = pipe else {
            return captured;
        };
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            // A read error just ends the capture: the output is only used for messages.
            let n = match pipe.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(f) = &mut file
                && std::io::Write::write_all(f, &chunk[..n]).is_err()
            {
                file = None;
            }
            captured.tail.extend_from_slice(&chunk[..n]);
            if captured.tail.len() > 2 * TAIL_BYTES {
                let cut = captured.tail.len() - TAIL_BYTES;
                captured.tail.drain(..cut);
                captured.truncated = true;
            }
        }
        let written = file.is_some_and(|mut f| std::io::Write::flush(&mut f).is_ok());
        if captured.tail.len() > TAIL_BYTES {
            let cut = captured.tail.len() - TAIL_BYTES;
            captured.tail.drain(..cut);
            captured.truncated = true;
        }
        captured.log = log.filter(|_| written);
        captured
    })
}

/// Why a program stopped.
enum Ending {
    Exited(ExitStatus),
    /// It ran past its timeout and was stopped.
    TimedOut,
    /// The run was cancelled (or `pipeline` got SIGINT or SIGTERM) and it was stopped.
    Cancelled,
}

/// How a program ended and what it printed.
struct Finished {
    ending: Ending,
    stdout: Captured,
    stderr: Captured,
}

impl Finished {
    /// The stream the error shows: stderr, or stdout when the program printed no errors.
    fn shown(&self) -> &Captured {
        if self.stderr.tail.is_empty() {
            &self.stdout
        } else {
            &self.stderr
        }
    }

    /// "; all it printed is in A and B", naming the logs that exist.
    fn logs_note(&self) -> String {
        let logs: Vec<String> = [&self.stdout.log, &self.stderr.log]
            .into_iter()
            .flatten()
            .map(|p| p.display().to_string())
            .collect();
        if logs.is_empty() {
            String::new()
        } else {
            format!("; all it printed is in {}", logs.join(" and "))
        }
    }
}

/// How long a stopped program's group has between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// Sends `signal` to every process in the group led by `child` (started with
/// `process_group(0)`, so the group id is its pid). A group already gone is not an error.
#[cfg(unix)]
fn signal_group(child: &Child, signal: libc::c_int) {
    let Ok(group) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: `kill` takes plain integers; a negative pid addresses the process group that
    // `child` leads, which this stage created, so no unrelated process is signalled.
    unsafe {
        libc::kill(-group, signal);
    }
}

/// Stops the program and everything it started: SIGTERM to the group, then SIGKILL after
/// [`KILL_GRACE`] (to stragglers too, even when the leader obeyed), then reaps the leader.
fn stop(child: &mut Child) {
    #[cfg(unix)]
    {
        signal_group(child, libc::SIGTERM);
        let deadline = Instant::now() + KILL_GRACE;
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(10));
        }
        signal_group(child, libc::SIGKILL);
    }
    #[cfg(not(unix))]
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits for the child, stopping its process group at the timeout or when the run is
/// cancelled.
fn wait(mut child: Child, timeout: Duration, ctx: &StageContext) -> Result<Finished, StageError> {
    let stdout = capture(child.stdout.take(), ctx.log_file("stdout"));
    let stderr = capture(child.stderr.take(), ctx.log_file("stderr"));
    // A timeout past the clock's range (years) never fires.
    let deadline = Instant::now().checked_add(timeout);
    // Poll often at first (a quick program is reaped within a millisecond), then back off.
    let mut nap = Duration::from_millis(1);
    let ending = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| StageError::internal(format!("waiting for the command: {e}")))?
        {
            break Ending::Exited(status);
        }
        if ctx.is_cancelled() {
            stop(&mut child);
            break Ending::Cancelled;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            stop(&mut child);
            break Ending::TimedOut;
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    };
    Ok(Finished {
        ending,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

const TAIL_LINES: usize = 20;

impl Stage for Command {
    const KIND: &'static str = "command";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Runs an external program for a custom step. Input tables are written as Parquet to \
        $PIPELINE_INPUT_<PORT> ({input.<port>} in `run`); the program writes each output to $PIPELINE_OUTPUT_<NAME> \
        ({output.<name>}) as Parquet or CSV and must exit 0. It runs in the study's directory; `scripts` are part of \
        the cache key. Rows are kept in the order written, so write them sorted.";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "run",
            ty: "list of text | text",
            default: "",
            doc: "[program, arg, ...] run directly, or one command line for `sh -c`; {input.<port>}, {output.<name>}, \
                  {script.<i>} are replaced by paths ({{ and }} for literal braces).",
        },
        ParamDoc {
            name: "ports",
            ty: "list of names",
            default: "",
            doc: "Input ports (all required), wired under `inputs:`.",
        },
        ParamDoc {
            name: "outputs",
            ty: "list of names",
            default: "",
            doc: "Tables the program writes; the first is the default output.",
        },
        ParamDoc {
            name: "scripts",
            ty: "list of paths",
            default: "",
            doc: "Files the program uses, relative to the study file; their content is part of the cache key.",
        },
        ParamDoc {
            name: "format",
            ty: "parquet | csv",
            default: "",
            doc: "The format the program writes its outputs in.",
        },
        ParamDoc {
            name: "env",
            ty: "map name → value",
            default: "",
            doc: "Extra environment variables for the program.",
        },
        ParamDoc {
            name: "timeout",
            ty: "duration (90s, 10m, 1h)",
            default: "1h",
            doc: "How long the program may run; then its process group gets SIGTERM and, 5 s later, SIGKILL.",
        },
    ];
    type Params = Params;

    #[cfg(test)]
    fn declaration_examples() -> Vec<crate::engine::stage::Example> {
        use crate::engine::stage::Example;
        use crate::stages::testing::study;
        use serde_json::json;
        vec![Example::new(
            json!({"run": "cp \"$PIPELINE_INPUT_UNITS\" \"$PIPELINE_OUTPUT_TABLE\"", "ports": ["units"]}),
            vec![("units", study::units())],
        )]
    }
    fn required_example() -> serde_json::Value {
        serde_json::json!({"run": "./make_table.sh"})
    }

    fn ports(params: &Params) -> Vec<Port> {
        params
            .ports
            .iter()
            .map(|p| {
                Port::required(
                    intern(p),
                    "A table for the command, written as Parquet to $PIPELINE_INPUT_<PORT>.",
                )
            })
            .collect()
    }

    fn outputs(params: &Params) -> Vec<OutputDecl> {
        params
            .outputs
            .iter()
            .map(|o| OutputDecl::new(o, "A table the command writes."))
            .collect()
    }

    fn sources(params: &Params) -> Vec<Source> {
        params
            .scripts
            .iter()
            .enumerate()
            .map(|(i, p)| Source::new(format!("script.{i}"), p))
            .collect()
    }

    fn validate(params: &Params) -> Result<(), StageError> {
        if params.outputs.is_empty() {
            return Err(StageError::data("`outputs` is empty")
                .with_hint("a command stage must write at least one table"));
        }
        check_names("port", &params.ports)?;
        check_names("output", &params.outputs)?;
        if let Some(key) = params.env.keys().find(|k| k.starts_with("PIPELINE_")) {
            return Err(StageError::data(format!(
                "`env` sets `{key}`, but PIPELINE_* variables are set by the stage"
            ))
            .with_hint("choose another name"));
        }
        match &params.run {
            Run::Argv(args) if args.is_empty() => {
                return Err(StageError::data("`run` is an empty list")
                    .with_hint("give the program first, then its arguments"));
            }
            Run::Shell(line) if line.trim().is_empty() => {
                return Err(StageError::data("`run` is empty"));
            }
            _ => {}
        }
        // Check every placeholder against the declared names, with stand-in paths.
        let stand_in = |names: &[String]| {
            names
                .iter()
                .map(|n| (n.clone(), PathBuf::from(n)))
                .collect()
        };
        let paths = Paths {
            inputs: stand_in(&params.ports),
            outputs: stand_in(&params.outputs),
            scripts: params.scripts.clone(),
        };
        paths.argv(&params.run).map_err(|e| {
            let mut known: Vec<String> = params
                .ports
                .iter()
                .map(|p| format!("{{input.{p}}}"))
                .collect();
            known.extend(params.outputs.iter().map(|o| format!("{{output.{o}}}")));
            known.extend((0..params.scripts.len()).map(|i| format!("{{script.{i}}}")));
            StageError::data(format!("`run`: {e}")).with_hint(if known.is_empty() {
                "this stage declares no ports, outputs or scripts to refer to".to_owned()
            } else {
                format!("the placeholders are: {}", known.join(", "))
            })
        })?;
        Ok(())
    }

    fn run(params: &Params, inputs: &Inputs, ctx: &StageContext) -> Result<Outputs, StageError> {
        let scratch = tempfile::Builder::new()
            .prefix("pipeline-command-")
            .tempdir_in(std::env::temp_dir())
            .map_err(|e| StageError::internal(format!("creating a scratch directory: {e}")))?;
        let paths = Paths::prepare(params, inputs, ctx, scratch.path())?;
        let argv = paths
            .argv(&params.run)
            .map_err(|e| StageError::data(format!("`run`: {e}")))?;
        let shown = match &params.run {
            Run::Argv(_) => argv.join(" "),
            Run::Shell(_) => argv[2].clone(),
        };
        let finished = execute(&argv, params, &paths, ctx)?;
        let log = tail_lines(finished.shown(), TAIL_LINES);
        let with_log = |mut err: StageError| {
            err.causes.extend(log.iter().cloned());
            err
        };
        let status = match finished.ending {
            Ending::Exited(status) => status,
            Ending::Cancelled => {
                return Err(StageError::failed(format!(
                    "`{shown}` was stopped: the run was cancelled"
                )));
            }
            Ending::TimedOut => {
                return Err(with_log(StageError::failed(format!(
                    "`{shown}` ran longer than its timeout of {} and was stopped",
                    params.timeout
                )))
                .with_hint(format!(
                    "raise `timeout:` if it needs longer (e.g. `timeout: 4h`){}",
                    finished.logs_note()
                )));
            }
        };
        if !status.success() {
            return Err(with_log(StageError::failed(format!(
                "`{shown}` {}",
                describe(status)
            )))
            .with_hint(format!(
                "it ran in {}; the last lines it printed are shown above{}",
                ctx.study_dir().display(),
                finished.logs_note()
            )));
        }
        let mut outputs = Vec::with_capacity(params.outputs.len());
        for name in &params.outputs {
            let path = &paths.outputs[name];
            if !path.is_file() {
                return Err(with_log(StageError::failed(format!(
                    "`{shown}` exited 0 but did not write output `{name}`"
                )))
                .with_hint(format!(
                    "write it to $PIPELINE_OUTPUT_{} or {{output.{name}}} (as {})",
                    env_suffix(name),
                    params.format.extension()
                )));
            }
            let table = read_output(params.format, path, name).map_err(|e| {
                StageError::failed(format!(
                    "`{shown}` wrote output `{name}`, but it cannot be read: {}",
                    e.message
                ))
            })?;
            outputs.push((name.clone(), table));
        }
        Ok(outputs)
    }
}

impl Paths {
    /// Writes the input tables into `scratch/in` and chooses the output paths in `scratch/out`.
    fn prepare(
        params: &Params,
        inputs: &Inputs,
        ctx: &StageContext,
        scratch: &Path,
    ) -> Result<Self, StageError> {
        let (in_dir, out_dir) = (scratch.join("in"), scratch.join("out"));
        for dir in [&in_dir, &out_dir] {
            std::fs::create_dir(dir)
                .map_err(|e| StageError::internal(format!("creating {}: {e}", dir.display())))?;
        }
        let mut paths = Paths {
            inputs: BTreeMap::new(),
            outputs: BTreeMap::new(),
            scripts: Vec::new(),
        };
        for port in &params.ports {
            let path = in_dir.join(format!("{port}.parquet"));
            crate::io::parquet::write(&path, inputs.table(port)?).map_err(|e| {
                StageError::internal(format!("writing input `{port}` to {}: {e}", path.display()))
            })?;
            paths.inputs.insert(port.clone(), path);
        }
        for name in &params.outputs {
            paths.outputs.insert(
                name.clone(),
                out_dir.join(format!("{name}.{}", params.format.extension())),
            );
        }
        for i in 0..params.scripts.len() {
            paths
                .scripts
                .push(ctx.source(&format!("script.{i}"))?.to_path_buf());
        }
        Ok(paths)
    }
}

/// Starts the program in the study directory, in a process group of its own, and waits for it.
fn execute(
    argv: &[String],
    params: &Params,
    paths: &Paths,
    ctx: &StageContext,
) -> Result<Finished, StageError> {
    let mut command = std::process::Command::new(&argv[0]);
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = command
        .args(&argv[1..])
        .current_dir(ctx.study_dir())
        .envs(&params.env)
        .envs(paths.env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            let err = StageError::data(format!("cannot start `{}`: {e}", argv[0]));
            if e.kind() == std::io::ErrorKind::NotFound {
                err.with_hint("check the program name in `run:`; is it installed and on PATH?")
            } else {
                err
            }
        })?;
    wait(child, params.timeout.duration(), ctx)
}

/// "exited with code 3" or "was killed by signal 9".
fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with code {code}");
    }
    #[cfg(unix)]
    let signal = std::os::unix::process::ExitStatusExt::signal(&status)
        .map(|s| format!(" {s}"))
        .unwrap_or_default();
    #[cfg(not(unix))]
    let signal = String::new();
    format!("was killed by signal{signal}")
}

/// Reads one output file the program wrote.
fn read_output(format: Format, path: &Path, name: &str) -> Result<RecordBatch, StageError> {
    match format {
        Format::Parquet => {
            crate::io::parquet::read(path).map_err(|e| StageError::failed(e.to_string()))
        }
        Format::Csv => {
            let shown = PathBuf::from(format!("{name}.csv"));
            let columns =
                crate::io::csv_table::read_maybe_empty(path, &shown)?.build(&BTreeMap::new())?;
            columns
                .into_iter()
                .fold(TableBuilder::new(), |b, (n, a)| b.array(&n, a))
                .build()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::table::{column_names, f64s, ids};

    struct Study {
        dir: tempfile::TempDir,
    }

    impl Study {
        fn new() -> Self {
            Self {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn run(
            &self,
            params: serde_json::Value,
            inputs: &[(&str, RecordBatch)],
        ) -> Result<Outputs, StageError> {
            let tables = inputs.iter().map(|(p, t)| (*p, t.clone())).collect();
            crate::stages::testing::run_in::<Command>(self.dir.path(), params, tables)
                .map(|(outputs, _)| outputs)
        }
    }

    fn units() -> RecordBatch {
        TableBuilder::new()
            .str("unit_id", &["a", "b"])
            .f64("x", vec![1.5, 2.0])
            .build()
            .unwrap()
    }

    #[test]
    fn shell_copy_of_input_is_the_output() {
        let out = Study::new()
            .run(json!({"run": "cp \"$PIPELINE_INPUT_UNITS\" \"$PIPELINE_OUTPUT_TABLE\"", "ports": ["units"]}), &[("units", units())])
            .unwrap();
        assert_eq!(out, vec![("table".to_owned(), units())]);
    }

    #[test]
    fn argv_placeholders_and_two_outputs() {
        let out = Study::new()
            .run(
                json!({"run": ["sh", "-c", "cp \"$1\" \"$2\" && cp \"$1\" \"$3\"", "sh", "{input.units}", "{output.first}", "{output.second}"],
                       "ports": ["units"], "outputs": ["first", "second"]}),
                &[("units", units())],
            )
            .unwrap();
        assert_eq!(
            out.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["first", "second"]
        );
        assert!(out.iter().all(|(_, t)| *t == units()));
    }

    #[test]
    fn csv_output_keeps_rows_as_written_and_runs_in_the_study_dir() {
        let study = Study::new();
        std::fs::write(study.dir.path().join("data.csv"), "unit_id,x\nb,2\na,1.5\n").unwrap();
        let out = study
            .run(
                json!({"run": "cp data.csv {output.table}", "format": "csv"}),
                &[],
            )
            .unwrap();
        let t = &out[0].1;
        assert_eq!(column_names(t), ["unit_id", "x"]);
        assert_eq!(ids(t, "t", "unit_id").unwrap(), ["b", "a"]);
        assert_eq!(f64s(t, "t", "x").unwrap(), [2.0, 1.5]);
    }

    #[test]
    fn scripts_and_env_reach_the_program() {
        let study = Study::new();
        std::fs::write(
            study.dir.path().join("make.sh"),
            "printf 'unit_id,label\\nu1,%s\\n' \"$LABEL\" > \"$PIPELINE_OUTPUT_TABLE\"\n",
        )
        .unwrap();
        let out = study.run(json!({"run": ["sh", "{script.0}"], "scripts": ["make.sh"], "format": "csv", "env": {"LABEL": "hello"}}), &[]).unwrap();
        assert_eq!(
            crate::table::strings(&out[0].1, "t", "label").unwrap(),
            ["hello"]
        );
    }

    #[test]
    fn failure_reports_exit_code_and_stderr_tail() {
        let script = "for i in $(seq 1 30); do echo line$i >&2; done; exit 3";
        let err = Study::new().run(json!({"run": script}), &[]).unwrap_err();
        assert_eq!(err.tier, crate::engine::stage::StageErrorTier::Failed);
        assert!(
            err.message.ends_with("exited with code 3"),
            "{}",
            err.message
        );
        // The last 20 of 30 lines: line11 ..= line30.
        assert_eq!(err.causes.len(), 20);
        assert_eq!(
            (err.causes[0].as_str(), err.causes[19].as_str()),
            ("line11", "line30")
        );
    }

    #[test]
    fn missing_output_is_a_failure_naming_it() {
        let err = Study::new()
            .run(json!({"run": ["true"], "outputs": ["result"]}), &[])
            .unwrap_err();
        assert_eq!(err.tier, crate::engine::stage::StageErrorTier::Failed);
        assert_eq!(
            err.message,
            "`true` exited 0 but did not write output `result`"
        );
        assert!(err.hint.unwrap().contains("$PIPELINE_OUTPUT_RESULT"));
    }

    #[test]
    fn unreadable_output_is_a_failure_and_header_only_csv_is_empty() {
        let err = Study::new()
            .run(json!({"run": "echo not parquet > {output.table}"}), &[])
            .unwrap_err();
        assert_eq!(err.tier, crate::engine::stage::StageErrorTier::Failed);
        assert!(
            err.message
                .contains("wrote output `table`, but it cannot be read"),
            "{}",
            err.message
        );
        let out = Study::new()
            .run(
                json!({"run": "echo unit_id,x > {output.table}", "format": "csv"}),
                &[],
            )
            .unwrap();
        assert_eq!(
            (column_names(&out[0].1), out[0].1.num_rows()),
            (vec!["unit_id".to_owned(), "x".to_owned()], 0)
        );
    }

    #[test]
    fn cancelled_run_stops_the_program() {
        let params: Params = serde_json::from_value(json!({"run": ["sleep", "30"]})).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ctx = StageContext::new("slow", dir.path(), BTreeMap::new());
        ctx.cancel();
        let err = Command::run(&params, &Inputs::default(), &ctx).unwrap_err();
        assert_eq!(err.message, "`sleep 30` was stopped: the run was cancelled");
    }

    #[test]
    fn unknown_program_and_placeholder_are_data_errors() {
        let err = Study::new()
            .run(json!({"run": ["no-such-program-here"]}), &[])
            .unwrap_err();
        assert_eq!(err.tier, crate::engine::stage::StageErrorTier::Data);
        assert!(err.hint.unwrap().contains("PATH"));
        let err = Study::new()
            .run(json!({"run": "cat {input.unit}", "ports": ["units"]}), &[])
            .unwrap_err();
        assert_eq!(err.message, "`run`: unknown placeholder `{input.unit}`");
        assert!(err.hint.unwrap().contains("{input.units}"));
        let err = Study::new()
            .run(json!({"run": ["x"], "ports": ["a-b"]}), &[])
            .unwrap_err();
        assert!(
            err.message.contains("not a plain identifier"),
            "{}",
            err.message
        );
    }

    #[test]
    fn placeholders_quote_for_the_shell_and_escape_braces() {
        let paths = Paths {
            inputs: BTreeMap::from([("a".to_owned(), PathBuf::from("/tmp/it's here.parquet"))]),
            outputs: BTreeMap::new(),
            scripts: Vec::new(),
        };
        let argv = paths
            .argv(&Run::Shell("awk '{{print}}' {input.a}".to_owned()))
            .unwrap();
        assert_eq!(argv[2], r"awk '{print}' '/tmp/it'\''s here.parquet'");
        let argv = paths
            .argv(&Run::Argv(vec!["cat".to_owned(), "{input.a}".to_owned()]))
            .unwrap();
        assert_eq!(argv[1], "/tmp/it's here.parquet");
        // A path the shell reads literally is left bare, so `"{input.b}"` also works.
        let paths = Paths {
            inputs: BTreeMap::from([(
                "b".to_owned(),
                PathBuf::from("/tmp/pipeline-command-x1/in/b.parquet"),
            )]),
            outputs: BTreeMap::new(),
            scripts: Vec::new(),
        };
        let argv = paths
            .argv(&Run::Shell("cat \"{input.b}\"".to_owned()))
            .unwrap();
        assert_eq!(argv[2], "cat \"/tmp/pipeline-command-x1/in/b.parquet\"");
    }

    #[test]
    fn timeouts_read_as_whole_seconds_minutes_or_hours() {
        let t = |s: &str| Timeout::try_from(s.to_owned()).map(|t| t.seconds);
        assert_eq!(t("90s"), Ok(90));
        assert_eq!(t("10m"), Ok(600));
        assert_eq!(t("1h"), Ok(3600));
        assert_eq!(t(" 2h "), Ok(7200));
        for bad in [
            "",
            "10",
            "1.5h",
            "0s",
            "-5m",
            "5 days",
            "h",
            "99999999999999999999h",
        ] {
            let err = t(bad).unwrap_err();
            assert!(err.contains("90s, 10m or 1h"), "{bad}: {err}");
        }
        assert_eq!(String::from(Timeout { seconds: 5400 }), "90m");
        assert_eq!(String::from(Timeout { seconds: 90 }), "90s");
        assert_eq!(Timeout::default().to_string(), "1h");
        // The largest whole number of hours in 64 bits of seconds: accepted, and never fires.
        assert_eq!(t("5124095576030431h"), Ok(5_124_095_576_030_431 * 3600));
    }

    /// The default is left out of the serialised parameters (so it is not derived from them):
    /// the text `pipeline stages` shows is checked against the code here.
    #[test]
    fn the_documented_timeout_is_the_default_one() {
        let doc = Command::PARAMS
            .iter()
            .find(|p| p.name == "timeout")
            .unwrap();
        assert_eq!(doc.default, Timeout::DEFAULT.to_string());
    }

    #[test]
    fn a_default_timeout_stays_out_of_the_canonical_params() {
        let params: Params = serde_json::from_value(json!({"run": "true"})).unwrap();
        assert_eq!(params.timeout, Timeout::DEFAULT);
        let canonical = serde_json::to_value(&params).unwrap();
        assert!(canonical.get("timeout").is_none(), "{canonical}");
        let params: Params =
            serde_json::from_value(json!({"run": "true", "timeout": "90s"})).unwrap();
        assert_eq!(serde_json::to_value(&params).unwrap()["timeout"], "90s");
    }

    /// Whether `pid` has ended: gone, or a zombie waiting for its (re)parent to reap it.
    fn ended(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'))
        })
    }

    /// SIGKILL to a group is delivered asynchronously: a killed process may be listed for a
    /// moment after `kill` returns, so give it a short while before calling it alive.
    fn ends_within(pid: &str, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        while !ended(pid) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    #[test]
    fn a_timeout_stops_the_program_and_what_it_started() {
        let study = Study::new();
        // A background grandchild records its pid, then both wait far beyond the timeout.
        let started = Instant::now();
        let err = study
            .run(
                json!({"run": "sleep 30 & echo $! > grandchild.pid; echo working >&2; sleep 30",
                       "timeout": "1s"}),
                &[],
            )
            .unwrap_err();
        // The timeout (1 s) plus the group's grace after SIGTERM (5 s at most) is well below
        // the program's own 30 s, so this tells a stopped program from one that ran out, with
        // room for a loaded machine.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(err.tier, crate::engine::stage::StageErrorTier::Failed);
        assert_eq!(
            err.message,
            "`sleep 30 & echo $! > grandchild.pid; echo working >&2; sleep 30` ran longer than its timeout of 1s and was stopped"
        );
        assert_eq!(err.causes, ["working"]);
        assert!(err.hint.unwrap().contains("timeout:"));
        let pid = std::fs::read_to_string(study.dir.path().join("grandchild.pid")).unwrap();
        assert!(
            ends_within(pid.trim(), Duration::from_secs(10)),
            "the background `sleep` (pid {pid}) still runs 10 s after the stage stopped"
        );
    }

    #[test]
    fn a_timeout_beyond_the_clocks_range_never_fires() {
        let out = Study::new()
            .run(
                json!({"run": "echo unit_id > {output.table}", "format": "csv",
                       "timeout": "5124095576030431h"}),
                &[],
            )
            .unwrap();
        assert_eq!(out[0].1.num_rows(), 0);
    }

    #[test]
    fn long_output_keeps_its_last_lines_in_memory_and_all_of_it_in_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        let ctx =
            StageContext::new("chatty", dir.path(), BTreeMap::new()).with_log_dir(logs.clone());
        // 200 000 lines of about 11 bytes (2.2 MB), far beyond the 64 KiB kept in memory.
        let params: Params =
            serde_json::from_value(json!({"run": "seq 1 200000 | sed 's/^/line /'; exit 4"}))
                .unwrap();
        let err = Command::run(&params, &Inputs::default(), &ctx).unwrap_err();
        assert!(
            err.message.ends_with("exited with code 4"),
            "{}",
            err.message
        );
        assert_eq!(err.causes.len(), TAIL_LINES);
        assert_eq!(
            (err.causes[0].as_str(), err.causes[19].as_str()),
            ("line 199981", "line 200000")
        );
        let log = logs.join("chatty.stdout.log");
        let hint = err.hint.unwrap();
        assert!(hint.contains(&log.display().to_string()), "{hint}");
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text.lines().count(), 200_000);
        assert!(text.starts_with("line 1\nline 2\n"));
    }

    #[test]
    fn ports_come_from_params() {
        let params: Params =
            serde_json::from_value(json!({"run": "true", "ports": ["units", "edges"]})).unwrap();
        let ports = Command::ports(&params);
        assert_eq!(
            ports.iter().map(|p| p.name).collect::<Vec<_>>(),
            ["units", "edges"]
        );
        assert!(ports.iter().all(|p| p.required));
        assert!(
            std::ptr::eq(intern("units"), ports[0].name),
            "names are interned once"
        );
        assert_eq!(Command::outputs(&params)[0].name, "table");
    }
}
