//! The one Parquet writer and reader. Writer properties are pinned here so that the same table
//! always gives the same bytes: a fixed `created_by`, fixed compression, fixed row-group size,
//! and one canonical slicing of the rows into write calls.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};

/// Rows per write call and per row group. Changing it changes every output's bytes, so it is
/// part of the cache key format version.
pub const ROWS_PER_GROUP: usize = 65_536;

fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_created_by("pipeline".to_owned())
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("3 is a valid zstd level")))
        .set_max_row_group_row_count(Some(ROWS_PER_GROUP))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .build()
}

/// Encodes a table as Parquet bytes, deterministically.
pub fn to_bytes(batch: &RecordBatch) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), Some(writer_properties()))?;
    let mut offset = 0;
    while offset < batch.num_rows() {
        let len = ROWS_PER_GROUP.min(batch.num_rows() - offset);
        writer.write(&batch.slice(offset, len))?;
        writer.flush()?;
        offset += len;
    }
    writer.close()?;
    Ok(buf)
}

/// Writes a table to `path` (not atomically: callers write to a temp path and rename).
pub fn write(path: &Path, batch: &RecordBatch) -> std::io::Result<()> {
    let bytes = to_bytes(batch).map_err(std::io::Error::other)?;
    let mut f = File::create(path)?;
    f.write_all(&bytes)?;
    f.sync_all()
}

/// Decodes Parquet bytes into one table.
pub fn from_bytes(bytes: Vec<u8>) -> Result<RecordBatch, parquet::errors::ParquetError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))?.with_batch_size(ROWS_PER_GROUP).build()?;
    let schema = arrow_array::RecordBatchReader::schema(&reader);
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    arrow_select::concat::concat_batches(&schema, &batches).map_err(Into::into)
}

/// Reads a Parquet file into one table.
pub fn read(path: &Path) -> std::io::Result<RecordBatch> {
    let bytes = std::fs::read(path)?;
    from_bytes(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::TableBuilder;

    #[test]
    fn same_table_gives_same_bytes_and_round_trips() {
        let t = TableBuilder::new().str("unit_id", &["a", "b"]).f64("area_ha", vec![1.5, 2.0]).build().unwrap();
        let a = to_bytes(&t).unwrap();
        let b = to_bytes(&t).unwrap();
        assert_eq!(a, b);
        let back = from_bytes(a).unwrap();
        assert_eq!(back, t);
    }
}
