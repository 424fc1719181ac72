//! The one Parquet writer and reader. Writer properties are pinned here so that the same table
//! always gives the same bytes: a fixed `created_by`, fixed compression, fixed row-group size,
//! and one canonical slicing of the rows into write calls.

use std::collections::VecDeque;
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
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("3 is a valid zstd level"),
        ))
        .set_max_row_group_row_count(Some(ROWS_PER_GROUP))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .build()
}

/// Encodes a table as Parquet bytes, deterministically: the whole table is the one part of a
/// [`PartWriter`], so a table written in any parts has exactly these bytes.
pub fn to_bytes(batch: &RecordBatch) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let mut writer = PartWriter::new(Vec::new(), batch.schema())?;
    writer.write(batch.clone())?;
    writer.finish()
}

/// A table written a part at a time, with the one canonical slicing of its rows: parts are
/// gathered into row groups of exactly [`ROWS_PER_GROUP`] rows, each one `write` and one
/// `flush`, so the bytes do not depend on where the parts end ([`to_bytes`] is one part). At
/// most one row group of parts is held (plus the part that completes it).
pub struct PartWriter<W: Write + Send> {
    writer: ArrowWriter<W>,
    /// Parts not yet written, in order, and their rows.
    pending: VecDeque<RecordBatch>,
    pending_rows: usize,
}

impl<W: Write + Send> PartWriter<W> {
    /// A writer of tables of `schema` into `sink`.
    pub fn new(
        sink: W,
        schema: arrow_schema::SchemaRef,
    ) -> Result<Self, parquet::errors::ParquetError> {
        Ok(Self {
            writer: ArrowWriter::try_new(sink, schema, Some(writer_properties()))?,
            pending: VecDeque::new(),
            pending_rows: 0,
        })
    }

    /// Appends `part` (of the writer's schema) after the parts so far; writes every row group
    /// completed.
    pub fn write(&mut self, part: RecordBatch) -> Result<(), parquet::errors::ParquetError> {
        self.pending_rows += part.num_rows();
        self.pending.push_back(part);
        while self.pending_rows >= ROWS_PER_GROUP {
            let group = self.take_rows(ROWS_PER_GROUP)?;
            self.write_group(&group)?;
        }
        Ok(())
    }

    /// Writes the last (short) row group and the footer; returns the sink.
    pub fn finish(mut self) -> Result<W, parquet::errors::ParquetError> {
        if self.pending_rows > 0 {
            let group = self.take_rows(self.pending_rows)?;
            self.write_group(&group)?;
        }
        self.writer.into_inner()
    }

    fn write_group(&mut self, group: &RecordBatch) -> Result<(), parquet::errors::ParquetError> {
        self.writer.write(group)?;
        self.writer.flush()
    }

    /// The first `n` pending rows as one batch (a slice when one part holds them all).
    fn take_rows(&mut self, n: usize) -> Result<RecordBatch, parquet::errors::ParquetError> {
        let mut taken = Vec::new();
        let mut left = n;
        while left > 0 {
            let part = self
                .pending
                .pop_front()
                .expect("pending parts hold the rows counted");
            if part.num_rows() > left {
                taken.push(part.slice(0, left));
                self.pending
                    .push_front(part.slice(left, part.num_rows() - left));
                left = 0;
            } else {
                left -= part.num_rows();
                taken.push(part);
            }
        }
        self.pending_rows -= n;
        match taken.len() {
            1 => Ok(taken.pop().expect("one batch taken")),
            _ => {
                arrow_select::concat::concat_batches(&taken[0].schema(), &taken).map_err(Into::into)
            }
        }
    }
}

/// Writes a table to `path` (not atomically: callers write to a temp path and rename).
pub fn write(path: &Path, batch: &RecordBatch) -> std::io::Result<()> {
    let bytes = to_bytes(batch).map_err(std::io::Error::other)?;
    let mut f = File::create(path)?;
    f.write_all(&bytes)?;
    f.sync_all()
}

/// The schema of the Parquet file at `path`, from its footer alone.
pub fn schema_of(path: &Path) -> Result<arrow_schema::SchemaRef, parquet::errors::ParquetError> {
    let file = File::open(path)?;
    Ok(ParquetRecordBatchReaderBuilder::try_new(file)?
        .schema()
        .clone())
}

/// Decodes Parquet bytes into one table.
pub fn from_bytes(bytes: Vec<u8>) -> Result<RecordBatch, parquet::errors::ParquetError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))?
        .with_batch_size(ROWS_PER_GROUP)
        .build()?;
    let schema = arrow_array::RecordBatchReader::schema(&reader);
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    arrow_select::concat::concat_batches(&schema, &batches).map_err(Into::into)
}

/// Reads a Parquet file into one table.
pub fn read(path: &Path) -> std::io::Result<RecordBatch> {
    let bytes = std::fs::read(path)?;
    from_bytes(bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::TableBuilder;

    #[test]
    fn same_table_gives_same_bytes_and_round_trips() {
        let t = TableBuilder::new()
            .str("unit_id", &["a", "b"])
            .f64("area_ha", vec![1.5, 2.0])
            .build()
            .unwrap();
        let a = to_bytes(&t).unwrap();
        let b = to_bytes(&t).unwrap();
        assert_eq!(a, b);
        let back = from_bytes(a).unwrap();
        assert_eq!(back, t);
    }

    /// A table of `rows` rows with text, number and null cells drawn from `seed`.
    fn mixed_table(rows: usize, seed: u64) -> RecordBatch {
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            state >> 33
        };
        let (mut ids, mut counts, mut values) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rows {
            ids.push(format!("u{}", next() % 3_000));
            counts.push(i64::try_from(next() % 1_000).unwrap() - 500);
            values.push((next() % 5 != 0).then(|| next() as f64 / 7.0));
        }
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        TableBuilder::new()
            .str("unit_id", &ids)
            .i64("count", counts)
            .f64_opt("value", values)
            .build()
            .unwrap()
    }

    /// The table cut into parts of random sizes (empty ones too), in order.
    fn random_parts(table: &RecordBatch, seed: u64) -> Vec<RecordBatch> {
        let mut state = seed | 1;
        let mut parts = Vec::new();
        let mut offset = 0;
        while offset < table.num_rows() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let limit = [0, 1, 1_000, 40_000, 70_000, 200_000][(state % 6) as usize];
            let len = usize::try_from(state >> 8).unwrap() % (limit + 1);
            let len = len.min(table.num_rows() - offset);
            let part = table.slice(offset, len);
            // Every other part has buffers of its own, as a part built from rows has.
            parts.push(if parts.len() % 2 == 0 {
                part
            } else {
                arrow_select::concat::concat_batches(&table.schema(), [&part]).unwrap()
            });
            offset += len;
        }
        parts
    }

    #[test]
    fn a_table_written_in_parts_has_the_bytes_of_the_whole_table() {
        let sizes = [0, 1, 65_535, 65_536, 65_537, 150_000, 300_001];
        for (i, &rows) in sizes.iter().enumerate() {
            let table = mixed_table(rows, i as u64);
            let whole = to_bytes(&table).unwrap();
            for seed in 1..4 {
                let mut writer = PartWriter::new(Vec::new(), table.schema()).unwrap();
                for part in random_parts(&table, seed * 7_919 + i as u64) {
                    writer.write(part).unwrap();
                }
                let streamed = writer.finish().unwrap();
                assert!(
                    streamed == whole,
                    "{rows} rows, part seed {seed}: bytes differ"
                );
            }
        }
    }
}
