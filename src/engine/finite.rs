//! The non-finite guarantee: no output table leaves a stage with NaN or ±infinity in a float
//! column. Nulls are missing values and allowed; a non-finite number is always a wrong result
//! (an absurd input cell that overflowed, a zero denominator), so the stage fails with a data
//! error naming the output, the column, the row and the row's identifying cells.
//!
//! The check knows Arrow types only: a row is identified by its text and integer cells, whatever
//! they mean.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;

use crate::engine::stage::StageError;

/// How many identifying cells a message shows at most.
const KEY_CELLS: usize = 4;

/// The first non-finite cell of a float column: (row, value), and how many there are.
fn non_finite(column: &dyn Array) -> Option<((usize, f64), usize)> {
    let values: Box<dyn Iterator<Item = (usize, f64)>> = match column.data_type() {
        DataType::Float64 => {
            let a = column.as_primitive::<Float64Type>();
            Box::new(
                (0..a.len())
                    .filter(|&i| a.is_valid(i))
                    .map(|i| (i, a.value(i))),
            )
        }
        DataType::Float32 => {
            let a = column.as_primitive::<Float32Type>();
            Box::new(
                (0..a.len())
                    .filter(|&i| a.is_valid(i))
                    .map(|i| (i, f64::from(a.value(i)))),
            )
        }
        _ => return None,
    };
    let mut first = None;
    let mut count = 0;
    for (row, v) in values.filter(|(_, v)| !v.is_finite()) {
        first.get_or_insert((row, v));
        count += 1;
    }
    first.map(|f| (f, count))
}

/// A text or integer cell as text; `None` for other types and nulls.
fn key_cell(column: &dyn Array, row: usize) -> Option<String> {
    if column.is_null(row) {
        return None;
    }
    macro_rules! int {
        ($t:ty) => {
            Some(column.as_primitive::<$t>().value(row).to_string())
        };
    }
    match column.data_type() {
        DataType::Utf8 => Some(format!("`{}`", column.as_string::<i32>().value(row))),
        DataType::LargeUtf8 => Some(format!("`{}`", column.as_string::<i64>().value(row))),
        DataType::Int64 => int!(Int64Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int8 => int!(Int8Type),
        DataType::UInt64 => int!(UInt64Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt8 => int!(UInt8Type),
        _ => None,
    }
}

/// "not a number", "+inf" or "-inf".
fn describe(v: f64) -> &'static str {
    if v.is_nan() {
        "not a number (NaN)"
    } else if v > 0.0 {
        "+infinity"
    } else {
        "-infinity"
    }
}

/// Fails when any float column of `batch` holds NaN or ±infinity.
///
/// # Errors
/// A data error naming the output, the first offending column and row (with the row's text and
/// integer cells), and how many such cells the output has. The stage's name is added where the
/// failure is rendered.
pub fn check_output(output: &str, batch: &RecordBatch) -> Result<(), StageError> {
    check_rows(output, batch, 0, "this output")
}

/// As [`check_output`], for a part of an output whose first row is row `first_row` (from 0)
/// of the whole table, so the message names the row in the table.
///
/// # Errors
/// As [`check_output`].
pub fn check_part(output: &str, batch: &RecordBatch, first_row: usize) -> Result<(), StageError> {
    let rows = format!(
        "rows {}–{} of this output",
        first_row + 1,
        first_row + batch.num_rows()
    );
    check_rows(output, batch, first_row, &rows)
}

/// The check of `batch`, rows `first_row` on of `output`; `scope` says which rows in the count
/// of other non-finite cells.
fn check_rows(
    output: &str,
    batch: &RecordBatch,
    first_row: usize,
    scope: &str,
) -> Result<(), StageError> {
    let schema = batch.schema();
    let mut first = None;
    let mut total = 0usize;
    for (c, column) in batch.columns().iter().enumerate() {
        if let Some((cell, count)) = non_finite(column.as_ref()) {
            first.get_or_insert((c, cell));
            total += count;
        }
    }
    let Some((c, (row, value))) = first else {
        return Ok(());
    };
    let keys: Vec<String> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .filter_map(|(f, col)| key_cell(col.as_ref(), row).map(|v| format!("{} = {v}", f.name())))
        .take(KEY_CELLS)
        .collect();
    let at = if keys.is_empty() {
        String::new()
    } else {
        format!(" ({})", keys.join(", "))
    };
    let others = match total {
        1 => String::new(),
        n => format!("; {} more non-finite cell(s) in {scope}", n - 1),
    };
    Err(StageError::data(format!(
        "output `{output}` column `{}` row {}{at} is {}{others}",
        schema.field(c).name(),
        first_row + row + 1,
        describe(value),
    ))
    .with_hint(
        "a non-finite result comes from an input value out of range (e.g. 1e308, which \
         overflows when multiplied) or a division by zero: check this stage's inputs for that \
         row and fix the value in the source table",
    ))
}

/// Checks every output of a stage.
///
/// # Errors
/// The first output with a non-finite cell, as [`check_output`].
pub fn check_outputs(outputs: &[(String, RecordBatch)]) -> Result<(), StageError> {
    outputs
        .iter()
        .try_for_each(|(name, batch)| check_output(name, batch))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float64Array, Int64Array, StringArray};

    use super::*;

    fn table(values: Vec<Option<f64>>) -> RecordBatch {
        let n = values.len();
        let ids: Vec<String> = (0..n).map(|i| format!("u{i}")).collect();
        let years: Vec<i64> = (0..n).map(|i| 2000 + i as i64).collect();
        RecordBatch::try_from_iter([
            ("id", Arc::new(StringArray::from(ids)) as ArrayRef),
            ("year", Arc::new(Int64Array::from(years)) as ArrayRef),
            ("x", Arc::new(Float64Array::from(values)) as ArrayRef),
        ])
        .unwrap()
    }

    #[test]
    fn finite_numbers_and_nulls_pass() {
        check_output("o", &table(vec![Some(1.0), None, Some(-0.0)])).unwrap();
    }

    #[test]
    fn infinity_names_output_column_row_and_keys() {
        let batch = table(vec![Some(1.0), Some(f64::INFINITY), Some(f64::NAN)]);
        let err = check_output("transfers", &batch).unwrap_err();
        assert_eq!(err.tier, crate::engine::stage::StageErrorTier::Data);
        assert_eq!(
            err.message,
            "output `transfers` column `x` row 2 (id = `u1`, year = 2001) is \
             +infinity; 1 more non-finite cell(s) in this output"
        );
        assert!(err.hint.unwrap().contains("1e308"));
    }

    #[test]
    fn a_part_names_the_row_in_the_whole_table() {
        let batch = table(vec![Some(1.0), Some(f64::NAN), Some(f64::NEG_INFINITY)]);
        let err = check_part("o", &batch, 65_536).unwrap_err();
        assert_eq!(
            err.message,
            "output `o` column `x` row 65538 (id = `u1`, year = 2001) is not a number (NaN); \
             1 more non-finite cell(s) in rows 65537–65539 of this output"
        );
    }

    #[test]
    fn nan_is_named_as_not_a_number() {
        let err = check_outputs(&[("o".into(), table(vec![Some(f64::NAN)]))]).unwrap_err();
        assert!(
            err.message
                .contains("row 1 (id = `u0`, year = 2000) is not a number")
        );
    }
}
