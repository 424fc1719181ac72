//! The edges: file formats to and from Arrow tables and domain types. Knows formats, not carbon.

pub mod cells;
pub mod crs;
pub mod csv_table;
pub mod error;
pub mod export;
pub mod geotiff;
pub mod geotiff_writer;
pub mod lzw;
pub mod mosaic;
pub mod mosaic_parts;
pub mod parquet;
pub mod raster_crs;
pub mod raster_pass;
pub mod raster_region;
pub mod vector;
pub mod wkb;
pub mod xlsx;
pub mod xlsx_writer;
pub mod yearbook;

pub use error::{IoError, IoErrorTier};

#[cfg(test)]
mod tests {
    /// The readers and writers know file formats, not the engine or the stages: they return
    /// their own [`super::IoError`], which a stage turns into its own error. Their tests may
    /// build tables with the stages' helpers, so only the code above `#[cfg(test)]` is checked.
    #[test]
    fn io_knows_neither_engine_nor_stages() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/io");
        let forbidden = [
            "crate::engine",
            "crate::stages",
            "crate::table",
            "crate::report",
            "crate::app",
            "crate::demo",
        ];
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n == "mod.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for word in forbidden {
                assert!(!code.contains(word), "{} names `{word}`", path.display());
            }
        }
    }
}
