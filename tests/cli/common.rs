//! A small builder for CLI tests: a study directory with files, a private cache, and runs of the
//! real binary whose output can be asserted on.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Study {
    pub dir: tempfile::TempDir,
    pub cache: PathBuf,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pipeline")
}

impl Study {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = dir.path().join(".cache");
        Self { dir, cache }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn file(&self, rel: &str, content: &str) -> &Self {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.current_dir(self.dir.path())
            .env("CI", "1")
            .env_remove("PIPELINE_CACHE_DIR")
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("the binary runs"))
    }

    /// `pipeline run study.yaml --summary-json`, returning each stage's status.
    pub fn run_study(&self, extra: &[&str]) -> (Run, Summary) {
        let summary_path = self.path("summary.json");
        let _ = std::fs::remove_file(&summary_path);
        let mut args = vec![
            "run",
            "study.yaml",
            "--summary-json",
            summary_path.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let run = self.run(&args);
        let summary = std::fs::read(&summary_path)
            .map(|b| Summary::parse(&b))
            .unwrap_or_default();
        (run, summary)
    }

    /// Replaces temp paths so messages can be compared as snapshots.
    pub fn redact(&self, text: &str) -> String {
        let real = self.dir.path().canonicalize().unwrap();
        text.replace(&real.display().to_string(), "[STUDY]")
            .replace(&self.dir.path().display().to_string(), "[STUDY]")
    }
}

/// The parsed `--summary-json`.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub status: BTreeMap<String, String>,
    pub digests: BTreeMap<String, String>,
}

impl Summary {
    pub fn parse(bytes: &[u8]) -> Self {
        let v: serde_json::Value = serde_json::from_slice(bytes).expect("summary is JSON");
        let mut s = Summary::default();
        for st in v["stages"].as_array().expect("stages array") {
            let name = st["name"].as_str().unwrap().to_owned();
            s.status
                .insert(name.clone(), st["status"].as_str().unwrap().to_owned());
            if let Some(outs) = st["outputs"].as_object() {
                for (o, rec) in outs {
                    s.digests.insert(
                        format!("{name}.{o}"),
                        rec["digest"].as_str().unwrap().to_owned(),
                    );
                }
            }
        }
        s
    }

    /// Stage names with the given status, sorted.
    pub fn with(&self, status: &str) -> Vec<String> {
        self.status
            .iter()
            .filter(|(_, s)| *s == status)
            .map(|(n, _)| n.clone())
            .collect()
    }
}

pub fn touch(path: &Path) {
    let f = std::fs::File::options().append(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::now()).unwrap();
}

/// The path of an executable on `PATH`, if there is one.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// An external tool a test needs (a browser, a batch scheduler). A fresh machine may lack it:
/// then the test prints `SKIPPED: …` with the reason and the caller returns early. Where the
/// tool must be present (CI sets `env_var=1`), its absence fails the test instead.
pub fn require_tool(name: &str, env_var: &str) -> Option<PathBuf> {
    if let Some(found) = find_on_path(name) {
        return Some(found);
    }
    let why = format!("`{name}` is not on PATH");
    assert!(
        std::env::var_os(env_var).is_none_or(|v| v.is_empty() || v == "0"),
        "{why}, and {env_var} requires it (install it, or unset {env_var} to skip this test)"
    );
    // Written to the process's stderr, not through `eprintln!`, which the test harness
    // captures and hides for a test that passes.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {why}; install it to run this test (set {env_var}=1 to make this a failure)"
    );
    None
}
