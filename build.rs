//! Computes the code digest: BLAKE3 over every file under `src/` (path and bytes, in sorted
//! order) and `Cargo.lock`, once per build. Cache keys include it, so a binary built from
//! different code or dependencies never serves results computed by another.

use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.lock");
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let mut files = Vec::new();
    collect(&root.join("src"), &mut files);
    files.sort();
    files.push(root.join("Cargo.lock"));
    let mut hasher = blake3::Hasher::new();
    for path in &files {
        let rel = path.strip_prefix(&root).unwrap_or(path);
        let name = rel.to_string_lossy();
        let bytes = fs::read(path).unwrap_or_default();
        // Length-prefixed fields, so no two file sets encode alike.
        hasher.update(&(name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    fs::write(out.join("code_digest.bin"), hasher.finalize().as_bytes())
        .expect("OUT_DIR is writable");
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(read) = fs::read_dir(dir) else { return };
    for entry in read.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect(&path, out),
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
}
