//! The edges: file formats to and from Arrow tables and domain types. Knows formats, not carbon.

pub mod geotiff_writer;
pub mod parquet;
pub mod wkb;
