//! Publishing: copies the outputs a study marks with `publish:` into its `outputs:` folder, as
//! Parquet, CSV, or (`files`) one file per row of a `name, content` table (reports, GeoJSON).
//! Each file is written to a temp name and renamed, and only when its bytes change, so a crash
//! never leaves a half-written result and unchanged files keep their timestamps. `--check`
//! compares instead of writing.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use crate::engine::cache::Cache;
use crate::engine::error::Diagnostic;
use crate::engine::plan::Plan;
use crate::engine::scheduler::RunReport;

/// One published file: where it goes and its bytes.
pub struct PublishedFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

/// The files the run's results publish, in a fixed order. Stages that did not complete
/// publish nothing.
pub fn files(
    plan: &Plan,
    cache: &Cache,
    report: &RunReport,
) -> Result<Vec<PublishedFile>, Diagnostic> {
    let Some(dir) = &plan.outputs_dir else {
        return Ok(Vec::new());
    };
    let mut out = BTreeMap::new();
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
                        out.insert(dir.join(format!("{base}.parquet")), bytes);
                    }
                    "csv" => {
                        out.insert(
                            dir.join(format!("{base}.csv")),
                            crate::io::export::to_csv(&table()?),
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
                            out.insert(dir.join(name), content);
                        }
                    }
                    _ => unreachable!("publish formats are checked by the plan"),
                }
            }
        }
    }
    Ok(out
        .into_iter()
        .map(|(path, bytes)| PublishedFile { path, bytes })
        .collect())
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
