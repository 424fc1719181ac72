//! The edges: file formats to and from Arrow tables and domain types. Knows formats, not carbon.

pub mod geotiff;
pub mod parquet;
pub mod wkb;
