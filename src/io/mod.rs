//! The edges: file formats to and from Arrow tables and domain types. Knows formats, not carbon.

pub mod cells;
pub mod crs;
pub mod csv_table;
pub mod export;
pub mod geotiff;
pub mod geotiff_writer;
pub mod lzw;
pub mod mosaic;
pub mod parquet;
pub mod vector;
pub mod wkb;
pub mod xlsx;
pub mod xlsx_writer;
pub mod yearbook;
