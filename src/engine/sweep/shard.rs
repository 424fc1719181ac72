//! A sweep's draws in chunks, so an executor that spreads work over batch jobs can give each
//! chunk a job of its own. A chunk is a shard ([`PreparedStage::shards`]): its job evaluates
//! the chunk's draws and keeps, as memos, what each draw collected and the warnings the draws
//! gave. The sweep's own run then takes every chunk it finds kept and evaluates the others, and
//! computes the summaries and sensitivities once, over all draws in draw order. A draw depends
//! only on its index and the sample (seed, draws, sampling), so how the draws are chunked, and
//! where each chunk ran, cannot change a byte of the outputs.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};

use super::PreparedSweep;
use super::{Feed, Sample};
use crate::engine::stage::{Inputs, PreparedStage, Shard, StageContext, StageError};
use crate::table::TableBuilder;

/// Draws per chunk, hence per batch job: a 10,000-draw sweep makes 40 jobs, each long enough
/// to outweigh the cost of starting a job and planning the study again.
pub const DRAWS_PER_CHUNK: usize = 250;

/// The column a kept chunk puts first: the draw each row belongs to.
const DRAW_COLUMN: &str = "sweep_draw";

/// The memo holding the warnings of a chunk's draws.
const WARNINGS_MEMO: &str = "warnings";

/// The draws `0..draws` cut into chunks of [`DRAWS_PER_CHUNK`], in order.
fn chunk_ranges(draws: usize) -> Vec<Range<usize>> {
    (0..draws)
        .step_by(DRAWS_PER_CHUNK)
        .map(|a| a..(a + DRAWS_PER_CHUNK).min(draws))
        .collect()
}

/// `draws0-249`: the shard's name, and the suffix of its job's name.
fn chunk_name(range: &Range<usize>) -> String {
    format!("draws{}-{}", range.start, range.end - 1)
}

/// The memo of the values collected under `name`.
fn values_memo(name: &str) -> String {
    format!("values/{name}")
}

/// One draw's collected tables (one per collected name, in the sweep's order).
type DrawTables = Vec<RecordBatch>;

/// A kept chunk: its draws' collected tables, in draw order, and its draws' warnings.
type KeptChunk = (Vec<DrawTables>, Vec<String>);

impl PreparedSweep {
    /// One shard per chunk of draws; each depends on every input of the sweep.
    pub(super) fn chunk_shards(&self) -> Vec<Shard> {
        let mut depends_on = BTreeSet::new();
        for r in &self.reruns {
            for feed in r.feeds.values() {
                if let Feed::Outside(input) = feed {
                    depends_on.insert(format!("port:{input}"));
                }
            }
        }
        for s in &self.study_sources {
            depends_on.insert(format!("source:{}", s.name));
        }
        let depends_on: Vec<String> = depends_on.into_iter().collect();
        chunk_ranges(self.params.draws)
            .iter()
            .map(|r| Shard {
                name: chunk_name(r),
                depends_on: depends_on.clone(),
            })
            .collect()
    }

    /// Evaluates the chunk named `shard` and keeps its draws' values and warnings as memos.
    pub(super) fn run_chunk(
        &self,
        shard: &str,
        inputs: &Inputs,
        ctx: &StageContext,
    ) -> Result<(), StageError> {
        let range = chunk_ranges(self.params.draws)
            .into_iter()
            .find(|r| chunk_name(r) == shard)
            .ok_or_else(|| StageError::internal(format!("this sweep has no shard `{shard}`")))?;
        let samples = self.sample();
        let warnings = Mutex::new(BTreeSet::new());
        let draws = self.evaluate_range(range.clone(), &samples, inputs, ctx, &warnings)?;
        let warnings = warnings
            .into_inner()
            .expect("warning set lock is never poisoned");
        self.keep_chunk(&range, &draws, &warnings, ctx)
    }

    /// Every draw's collected tables, in draw order: the chunks kept in the memo store as they
    /// are, the others evaluated here. Warnings of kept chunks join `warnings`.
    pub(super) fn all_draws(
        &self,
        samples: &[Vec<Sample>],
        inputs: &Inputs,
        ctx: &StageContext,
        warnings: &Mutex<BTreeSet<String>>,
    ) -> Result<Vec<DrawTables>, StageError> {
        let ranges = chunk_ranges(self.params.draws);
        let mut kept = Vec::with_capacity(ranges.len());
        for r in &ranges {
            kept.push(self.kept_chunk(r, ctx)?);
        }
        if kept.iter().all(Option::is_none) {
            return self.evaluate_range(0..self.params.draws, samples, inputs, ctx, warnings);
        }
        let mut draws = Vec::with_capacity(self.params.draws);
        for (r, chunk) in ranges.into_iter().zip(kept) {
            match chunk {
                Some((tables, kept_warnings)) => {
                    warnings
                        .lock()
                        .expect("warning set lock is never poisoned")
                        .extend(kept_warnings);
                    draws.extend(tables);
                }
                None => draws.extend(self.evaluate_range(r, samples, inputs, ctx, warnings)?),
            }
        }
        Ok(draws)
    }

    /// What a chunk's memos are keyed on besides their name: the sweep (its parameters and
    /// the stages it re-runs) and the chunk's draws.
    fn chunk_params(&self, range: &Range<usize>) -> serde_json::Value {
        serde_json::json!({
            "sweep": PreparedStage::canonical_params(self),
            "draws": [range.start, range.end],
        })
    }

    /// Stores a chunk's memos. A collected output whose columns differ between draws cannot be
    /// kept as one table: then nothing is kept and the sweep's run evaluates the chunk itself.
    fn keep_chunk(
        &self,
        range: &Range<usize>,
        draws: &[DrawTables],
        warnings: &BTreeSet<String>,
        ctx: &StageContext,
    ) -> Result<(), StageError> {
        let mut tables = Vec::with_capacity(self.collected.len());
        for c in 0..self.collected.len() {
            match chunk_table(range.start, draws, c) {
                Some(t) => tables.push(t),
                None => return Ok(()),
            }
        }
        let params = self.chunk_params(range);
        let depends_on = ctx.memo_inputs();
        for ((name, _), table) in self.collected.iter().zip(&tables) {
            ctx.memo_store(&values_memo(name), &depends_on, &params, table)?;
        }
        ctx.memo_store(
            WARNINGS_MEMO,
            &depends_on,
            &params,
            &warnings_table(warnings)?,
        )
    }

    /// A chunk's draws and warnings, if all its memos are kept and well formed.
    fn kept_chunk(
        &self,
        range: &Range<usize>,
        ctx: &StageContext,
    ) -> Result<Option<KeptChunk>, StageError> {
        let params = self.chunk_params(range);
        let depends_on = ctx.memo_inputs();
        let Some(kept_warnings) = ctx.memo_lookup(WARNINGS_MEMO, &depends_on, &params)? else {
            return Ok(None);
        };
        let Some(kept_warnings) = warnings_of(&kept_warnings) else {
            return Ok(None);
        };
        let mut draws: Vec<DrawTables> =
            vec![Vec::with_capacity(self.collected.len()); range.len()];
        for (name, _) in &self.collected {
            let Some(table) = ctx.memo_lookup(&values_memo(name), &depends_on, &params)? else {
                return Ok(None);
            };
            let Some(per_draw) = split_by_draw(&table, range) else {
                return Ok(None);
            };
            for (d, t) in draws.iter_mut().zip(per_draw) {
                d.push(t);
            }
        }
        Ok(Some((draws, kept_warnings)))
    }
}

/// Collected name `c` of every draw of a chunk starting at draw `first`, as one table with
/// [`DRAW_COLUMN`] first; `None` when the draws' tables have different columns.
fn chunk_table(first: usize, draws: &[DrawTables], c: usize) -> Option<RecordBatch> {
    let own = draws.first()?[c].schema();
    let mut fields = vec![Arc::new(Field::new(DRAW_COLUMN, DataType::Int64, false))];
    fields.extend(own.fields().iter().cloned());
    let schema = Arc::new(Schema::new_with_metadata(fields, own.metadata().clone()));
    let mut parts = Vec::with_capacity(draws.len());
    for (k, d) in draws.iter().enumerate() {
        let t = &d[c];
        if t.schema() != own {
            return None;
        }
        let draw = i64::try_from(first + k).ok()?;
        let mut columns: Vec<Arc<dyn Array>> =
            vec![Arc::new(Int64Array::from(vec![draw; t.num_rows()]))];
        columns.extend(t.columns().iter().cloned());
        parts.push(RecordBatch::try_new(Arc::clone(&schema), columns).ok()?);
    }
    arrow_select::concat::concat_batches(&schema, &parts).ok()
}

/// A kept chunk table cut back into one table per draw of `range`, [`DRAW_COLUMN`] removed;
/// `None` unless its draws are those of `range`, in order.
fn split_by_draw(table: &RecordBatch, range: &Range<usize>) -> Option<Vec<RecordBatch>> {
    let draw = table.columns().first()?.as_primitive_opt::<Int64Type>()?;
    if draw.null_count() > 0 {
        return None;
    }
    let rest: Vec<usize> = (1..table.num_columns()).collect();
    let values = table.project(&rest).ok()?;
    let mut out = Vec::with_capacity(range.len());
    let mut row = 0;
    for d in range.clone() {
        let d = i64::try_from(d).ok()?;
        let start = row;
        while row < draw.len() && draw.value(row) == d {
            row += 1;
        }
        out.push(values.slice(start, row - start));
    }
    (row == draw.len()).then_some(out)
}

fn warnings_table(warnings: &BTreeSet<String>) -> Result<RecordBatch, StageError> {
    let warnings: Vec<&String> = warnings.iter().collect();
    TableBuilder::new().str("warning", &warnings).build()
}

fn warnings_of(table: &RecordBatch) -> Option<Vec<String>> {
    let column = table.columns().first()?.as_string_opt::<i32>()?;
    column.iter().map(|w| w.map(str::to_owned)).collect()
}

#[cfg(test)]
mod tests {
    use arrow_array::StringArray;

    use super::*;

    #[test]
    fn chunks_cover_the_draws_in_order() {
        assert_eq!(chunk_ranges(2), vec![0..2]);
        assert_eq!(chunk_ranges(250), vec![0..250]);
        assert_eq!(chunk_ranges(260), vec![0..250, 250..260]);
        assert_eq!(chunk_name(&(250..260)), "draws250-259");
    }

    /// Draws with two, zero and one rows, kept as one table and cut back, are the same tables.
    #[test]
    fn a_kept_chunk_splits_back_into_its_draws() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("value", DataType::Float64, true),
        ]));
        let table = |ids: &[&str], values: &[f64]| {
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(StringArray::from(ids.to_vec())),
                    Arc::new(arrow_array::Float64Array::from(values.to_vec())),
                ],
            )
            .unwrap()
        };
        let draws = vec![
            vec![table(&["a", "b"], &[1.0, 2.0])],
            vec![table(&[], &[])],
            vec![table(&["a"], &[-0.5])],
        ];
        let kept = chunk_table(250, &draws, 0).unwrap();
        assert_eq!(kept.num_rows(), 3);
        let back = split_by_draw(&kept, &(250..253)).unwrap();
        let expected: Vec<RecordBatch> = draws.iter().map(|d| d[0].clone()).collect();
        assert_eq!(back, expected);
        assert!(
            split_by_draw(&kept, &(0..3)).is_none(),
            "rows of other draws are refused"
        );
    }

    #[test]
    fn draws_with_different_columns_are_not_kept() {
        let a = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)])),
            vec![Arc::new(Int64Array::from(vec![1]))],
        )
        .unwrap();
        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("y", DataType::Int64, true)])),
            vec![Arc::new(Int64Array::from(vec![1]))],
        )
        .unwrap();
        assert!(chunk_table(0, &[vec![a], vec![b]], 0).is_none());
    }
}
