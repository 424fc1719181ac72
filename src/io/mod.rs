//! The edges: file formats to and from Arrow tables and domain types. Knows formats, not carbon.

pub mod parquet;
pub mod wkb;
pub mod geotiff;
