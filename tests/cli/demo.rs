//! `pipeline demo-data` regenerates the committed demonstration inputs byte for byte.

use std::path::{Path, PathBuf};
use std::process::Command;

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn regenerating_the_demo_data_gives_the_committed_bytes() {
    let committed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pipelines/data");
    let tmp = tempfile::tempdir().unwrap();
    let boundaries = tmp.path().join("boundaries");
    std::fs::create_dir_all(&boundaries).unwrap();
    for f in ["henan_units123.geojson", "yrb_cities.geojson"] {
        std::fs::copy(committed.join("boundaries").join(f), boundaries.join(f)).unwrap();
    }
    let out = Command::new(crate::common::bin())
        .args(["demo-data", "--data-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for study in ["henan", "henan_yearbook", "yellow_river"] {
        let made = files_under(&tmp.path().join(study));
        let kept = files_under(&committed.join(study));
        let names = |v: &[PathBuf]| {
            v.iter()
                .map(|p| p.file_name().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&made), names(&kept), "{study}: the same files");
        for (a, b) in made.iter().zip(&kept) {
            assert!(
                std::fs::read(a).unwrap() == std::fs::read(b).unwrap(),
                "{} differs from a regeneration",
                b.display()
            );
        }
    }
}
