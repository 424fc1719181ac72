//! The fuzz targets: each format's reader, called directly on one input as a study would call
//! it. Shared by the fuzzer (`cargo run --example fuzz`) and the corpus test in tests/cli.

use std::path::{Path, PathBuf};

use pipeline::io::{csv_table, geotiff, vector, wkb, xlsx};

/// Every target, by the name the fuzzer takes.
pub const TARGETS: &[&str] = &[
    "spec",
    "csv",
    "xlsx",
    "geojson",
    "shapefile",
    "dbf",
    "prj",
    "geotiff",
    "wkb",
];

/// The corpus folder of a target's format.
pub fn corpus_dir(target: &str) -> PathBuf {
    let format = if target == "spec" { "yaml" } else { target };
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/corpus")
        .join(format)
}

/// The extension of the file a target reads.
pub fn extension(target: &str) -> &'static str {
    match target {
        "spec" => "yaml",
        "csv" => "csv",
        "xlsx" => "xlsx",
        "geojson" => "geojson",
        "shapefile" => "shp",
        "dbf" => "dbf",
        "prj" => "prj",
        "geotiff" => "tif",
        "wkb" => "wkb",
        other => panic!("unknown fuzz target `{other}`"),
    }
}

/// Files read with an input, by extension: a `.shp`'s `.dbf`, a `.dbf`'s `.shp`, ...
pub type Companions = Vec<(String, Vec<u8>)>;

/// The corpus inputs of a target (sorted), each with the sibling files of the same stem it
/// is read with (a `.shp` with its `.dbf`, a `.dbf` with its `.shp`, ...).
pub fn corpus(target: &str) -> Vec<(PathBuf, Companions)> {
    let dir = corpus_dir(target);
    let ext = extension(target);
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entries are listable").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    inputs.sort();
    inputs
        .into_iter()
        .map(|input| {
            let companions = ["shp", "shx", "dbf", "prj", "cpg"]
                .iter()
                .filter(|&&e| e != ext)
                .filter_map(|&e| {
                    let bytes = std::fs::read(input.with_extension(e)).ok()?;
                    Some((e.to_owned(), bytes))
                })
                .collect();
            (input, companions)
        })
        .collect()
}

/// Writes `bytes` as `<dir>/<stem>.<ext>` (and the companions beside it) and reads it with
/// the target's reader. `Err` holds the reader's message.
pub fn run(
    target: &str,
    dir: &Path,
    stem: &str,
    bytes: &[u8],
    companions: &[(String, Vec<u8>)],
) -> Result<(), String> {
    let ext = extension(target);
    let path = dir.join(format!("{stem}.{ext}"));
    std::fs::write(&path, bytes).expect("the fuzz directory is writable");
    for (e, b) in companions {
        std::fs::write(path.with_extension(e), b).expect("the fuzz directory is writable");
    }
    let shown = PathBuf::from(format!("{stem}.{ext}"));
    let result = read(target, &path, &shown);
    for (e, _) in companions {
        let _ = std::fs::remove_file(path.with_extension(e));
    }
    result
}

fn read(target: &str, path: &Path, shown: &Path) -> Result<(), String> {
    match target {
        "spec" => pipeline::engine::spec::load(path)
            .map(drop)
            .map_err(|d| d.render()),
        // Both with and without a title above the header (`header_row`).
        "csv" => csv_table::read(path, shown, None, None)
            .and_then(|_| csv_table::read(path, shown, None, Some(2)))
            .map(drop)
            .map_err(|e| e.message),
        "xlsx" => xlsx::read(path, shown, None, None)
            .and_then(|_| xlsx::read(path, shown, None, Some(2)))
            .map(drop)
            .map_err(|e| e.message),
        "geojson" => vector::read_geojson(path, shown)
            .map(drop)
            .map_err(|e| e.message),
        "shapefile" | "dbf" | "prj" => {
            let shp = path.with_extension("shp");
            vector::read_shapefile(&shp, &shown.with_extension("shp"), None)
                .map(drop)
                .map_err(|e| e.message)
        }
        "geotiff" => read_geotiff(path),
        "wkb" => {
            let bytes = std::fs::read(path).expect("the input was just written");
            wkb::decode(&bytes).map(drop).map_err(|e| e.to_string())
        }
        other => panic!("unknown fuzz target `{other}`"),
    }
}

/// Opens a GeoTIFF and decodes its chunks (at most 256 of them: enough to reach every code
/// path, few enough that a small file declaring millions of chunks stays quick).
fn read_geotiff(path: &Path) -> Result<(), String> {
    let info = geotiff::open(path).map_err(|e| e.to_string())?;
    let mut reader = geotiff::ChunkReader::new(&info).map_err(|e| e.to_string())?;
    for index in 0..info.chunk_count().min(256) {
        reader.read(index).map_err(|e| e.to_string())?;
    }
    Ok(())
}
