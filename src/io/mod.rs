//! The edges: file formats to and from Arrow tables and domain types. Knows formats, not carbon.

pub mod export;
pub mod parquet;
pub mod wkb;
