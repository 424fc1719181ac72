//! Column access and table building for stage adapters and the engine's own tables: typed
//! columns out of a `RecordBatch` with errors that name the table and column, a small builder
//! for output tables, and output tables declared once ([`schema::TableSchema`]).
//!
//! Unit ids may be integers or strings in the user's files; stages read them with [`ids`],
//! which renders integers in decimal, so every output carries ids as text.

pub mod schema;

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema};

use crate::engine::stage::StageError;

/// The names of a table's columns.
pub fn column_names(batch: &RecordBatch) -> Vec<String> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

/// The column `name`, or an error naming the table and listing the columns it has.
pub fn column<'a>(
    batch: &'a RecordBatch,
    table: &str,
    name: &str,
) -> Result<&'a ArrayRef, StageError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| StageError::column_missing(table, name, &column_names(batch)))
}

/// Whether the table has a column `name`.
pub fn has_column(batch: &RecordBatch, name: &str) -> bool {
    batch.column_by_name(name).is_some()
}

/// A numeric column as `f64`; nulls become NaN. Integers are widened, strings are parsed.
pub fn f64s(batch: &RecordBatch, table: &str, name: &str) -> Result<Vec<f64>, StageError> {
    let col = column(batch, table, name)?;
    let n = col.len();
    macro_rules! prim {
        ($t:ty) => {{
            let a = col.as_primitive::<$t>();
            (0..n)
                .map(|i| {
                    if a.is_null(i) {
                        f64::NAN
                    } else {
                        a.value(i) as f64
                    }
                })
                .collect()
        }};
    }
    let values: Vec<f64> = match col.data_type() {
        DataType::Float64 => prim!(Float64Type),
        DataType::Float32 => prim!(Float32Type),
        DataType::Int64 => prim!(Int64Type),
        DataType::Int32 => prim!(Int32Type),
        DataType::Int16 => prim!(Int16Type),
        DataType::Int8 => prim!(Int8Type),
        DataType::UInt64 => prim!(UInt64Type),
        DataType::UInt32 => prim!(UInt32Type),
        DataType::UInt16 => prim!(UInt16Type),
        DataType::UInt8 => prim!(UInt8Type),
        DataType::Utf8 | DataType::LargeUtf8 => {
            let strings = strings(batch, table, name)?;
            let mut out = Vec::with_capacity(n);
            for (row, s) in strings.iter().enumerate() {
                let s = s.trim();
                if s.is_empty() {
                    out.push(f64::NAN);
                } else {
                    // Rust also parses `NaN` and `inf`; as cells they are words, not numbers
                    // (and a NaN here would later read as an empty cell).
                    let value = s.parse::<f64>().ok().filter(|v| v.is_finite());
                    out.push(value.ok_or_else(|| {
                        StageError::data(format!(
                            "`{table}` row {}: column `{name}` holds `{s}`, not a number",
                            row + 1
                        ))
                        .with_hint("write the value as a finite number, or leave the cell empty if it is missing")
                    })?);
                }
            }
            out
        }
        other => {
            return Err(StageError::data(format!(
                "`{table}`: column `{name}` has type {other}, expected a number"
            )));
        }
    };
    Ok(values)
}

/// An integer column as `i64`, every value exactly. Integer types are read as they are;
/// floats and text (a year in a user's CSV or spreadsheet) must hold whole numbers no larger
/// in magnitude than 2^53, beyond which a float no longer holds every integer, so a larger
/// one may already have been rounded. Nulls, fractions and values beyond that are errors
/// naming the table, row and column.
pub fn i64s(batch: &RecordBatch, table: &str, name: &str) -> Result<Vec<i64>, StageError> {
    let col = column(batch, table, name)?;
    let cell = IntColumn { table, name };
    match col.data_type() {
        DataType::Int64 => exact_ints::<Int64Type>(col, cell),
        DataType::Int32 => exact_ints::<Int32Type>(col, cell),
        DataType::Int16 => exact_ints::<Int16Type>(col, cell),
        DataType::Int8 => exact_ints::<Int8Type>(col, cell),
        DataType::UInt64 => exact_ints::<UInt64Type>(col, cell),
        DataType::UInt32 => exact_ints::<UInt32Type>(col, cell),
        DataType::UInt16 => exact_ints::<UInt16Type>(col, cell),
        DataType::UInt8 => exact_ints::<UInt8Type>(col, cell),
        DataType::Float64 | DataType::Float32 => f64s(batch, table, name)?
            .into_iter()
            .enumerate()
            .map(|(row, v)| cell.whole(row, v))
            .collect(),
        DataType::Utf8 | DataType::LargeUtf8 => text_ints(batch, cell),
        other => Err(StageError::data(format!(
            "`{table}`: column `{name}` has type {other}, expected a whole number"
        ))),
    }
}

/// The largest magnitude below which every integer is a float (2^53).
const F64_EXACT_INT_LIMIT: f64 = 9_007_199_254_740_992.0;

/// The integer column being read, named in its errors.
#[derive(Clone, Copy)]
struct IntColumn<'a> {
    table: &'a str,
    name: &'a str,
}

impl IntColumn<'_> {
    fn error(self, row: usize, what: &str) -> StageError {
        StageError::data(format!(
            "`{}` row {}: column `{}` {what}",
            self.table,
            row + 1,
            self.name
        ))
    }

    fn empty(self, row: usize) -> StageError {
        self.error(row, "is empty, expected a whole number")
            .with_hint("fill in the cell")
    }

    /// A float that is exactly an integer an `i64` holds and no float rounding could have made.
    fn whole(self, row: usize, v: f64) -> Result<i64, StageError> {
        if v.is_nan() {
            Err(self.empty(row))
        } else if v.fract() != 0.0 {
            Err(self.error(row, &format!("holds {v}, expected a whole number")))
        } else if v.abs() > F64_EXACT_INT_LIMIT {
            Err(self
                .error(
                    row,
                    &format!(
                        "holds {v}, beyond 2^53, where a float stops holding every whole number"
                    ),
                )
                .with_hint("store the column as integers (Int64), or as text of decimal digits"))
        } else {
            Ok(v as i64)
        }
    }
}

fn exact_ints<T: arrow_array::ArrowPrimitiveType>(
    col: &ArrayRef,
    cell: IntColumn<'_>,
) -> Result<Vec<i64>, StageError>
where
    T::Native: TryInto<i64> + std::fmt::Display,
{
    let a = col.as_primitive::<T>();
    (0..a.len())
        .map(|row| {
            if a.is_null(row) {
                return Err(cell.empty(row));
            }
            let v = a.value(row);
            v.try_into().map_err(|_| {
                cell.error(
                    row,
                    &format!("holds {v}, beyond the largest 64-bit signed integer"),
                )
            })
        })
        .collect()
}

/// Text cells as integers: decimal digits exactly, else a number that is whole (`2000.0`).
fn text_ints(batch: &RecordBatch, cell: IntColumn<'_>) -> Result<Vec<i64>, StageError> {
    let texts = strings(batch, cell.table, cell.name)?;
    let floats = f64s(batch, cell.table, cell.name)?;
    texts
        .iter()
        .zip(floats)
        .enumerate()
        .map(|(row, (text, v))| match text.trim().parse::<i64>() {
            Ok(exact) => Ok(exact),
            Err(_) => cell.whole(row, v),
        })
        .collect()
}

fn text_strings<'a>(cells: impl Iterator<Item = Option<&'a str>>) -> Vec<String> {
    cells.map(|v| v.unwrap_or_default().to_owned()).collect()
}

/// A text column (integers are rendered in decimal). Nulls become empty strings.
pub fn strings(batch: &RecordBatch, table: &str, name: &str) -> Result<Vec<String>, StageError> {
    let col = column(batch, table, name)?;
    Ok(match col.data_type() {
        DataType::Utf8 => text_strings(col.as_string::<i32>().iter()),
        DataType::LargeUtf8 => text_strings(col.as_string::<i64>().iter()),
        DataType::Boolean => col
            .as_boolean()
            .iter()
            .map(|v| v.map(|b| b.to_string()).unwrap_or_default())
            .collect(),
        DataType::Int64 => int_strings::<Int64Type>(col),
        DataType::Int32 => int_strings::<Int32Type>(col),
        DataType::Int16 => int_strings::<Int16Type>(col),
        DataType::Int8 => int_strings::<Int8Type>(col),
        DataType::UInt64 => int_strings::<UInt64Type>(col),
        DataType::UInt32 => int_strings::<UInt32Type>(col),
        DataType::UInt16 => int_strings::<UInt16Type>(col),
        DataType::UInt8 => int_strings::<UInt8Type>(col),
        DataType::Float64 | DataType::Float32 => f64s(batch, table, name)?
            .into_iter()
            .map(|v| {
                if v.is_nan() {
                    String::new()
                } else {
                    format_number(v)
                }
            })
            .collect(),
        other => {
            return Err(StageError::data(format!(
                "`{table}`: column `{name}` has type {other}, expected text or an integer"
            )));
        }
    })
}

fn int_strings<T: arrow_array::ArrowPrimitiveType>(col: &ArrayRef) -> Vec<String>
where
    T::Native: std::fmt::Display,
{
    let a = col.as_primitive::<T>();
    (0..a.len())
        .map(|i| {
            if a.is_null(i) {
                String::new()
            } else {
                a.value(i).to_string()
            }
        })
        .collect()
}

/// Unit ids as text, checked non-empty.
pub fn ids(batch: &RecordBatch, table: &str, name: &str) -> Result<Vec<String>, StageError> {
    let ids = strings(batch, table, name)?;
    if let Some(row) = ids.iter().position(String::is_empty) {
        return Err(StageError::data(format!(
            "`{table}` row {}: id column `{name}` is empty",
            row + 1
        ))
        .with_hint("every row needs an id"));
    }
    Ok(ids)
}

/// A boolean column; nulls are false. Text `true`/`false` and 0/1 are accepted.
pub fn bools(batch: &RecordBatch, table: &str, name: &str) -> Result<Vec<bool>, StageError> {
    let col = column(batch, table, name)?;
    if let DataType::Boolean = col.data_type() {
        let a = col.as_boolean();
        return Ok((0..a.len()).map(|i| !a.is_null(i) && a.value(i)).collect());
    }
    strings(batch, table, name)?
        .iter()
        .enumerate()
        .map(|(row, s)| match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" | "" => Ok(false),
            other => Err(StageError::data(format!(
                "`{table}` row {}: column `{name}` holds `{other}`, expected true or false",
                row + 1
            ))),
        })
        .collect()
}

/// Formats a float the shortest way that reads back to the same value (`1` not `1.0`).
pub fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// Builds an output table column by column.
#[derive(Default)]
pub struct TableBuilder {
    fields: Vec<Field>,
    columns: Vec<ArrayRef>,
}

impl TableBuilder {
    pub fn new() -> Self {
        Self::default()
    }
    #[must_use]
    pub fn str<S: AsRef<str>>(mut self, name: &str, values: &[S]) -> Self {
        self.fields.push(Field::new(name, DataType::Utf8, false));
        self.columns.push(Arc::new(StringArray::from_iter_values(
            values.iter().map(AsRef::as_ref),
        )));
        self
    }
    #[must_use]
    pub fn f64(mut self, name: &str, values: Vec<f64>) -> Self {
        self.fields.push(Field::new(name, DataType::Float64, false));
        self.columns.push(Arc::new(Float64Array::from(values)));
        self
    }
    /// A float column where `None` is null (e.g. an index undefined for a unit).
    #[must_use]
    pub fn f64_opt(mut self, name: &str, values: Vec<Option<f64>>) -> Self {
        self.fields.push(Field::new(name, DataType::Float64, true));
        self.columns.push(Arc::new(Float64Array::from(values)));
        self
    }
    #[must_use]
    pub fn i64(mut self, name: &str, values: Vec<i64>) -> Self {
        self.fields.push(Field::new(name, DataType::Int64, false));
        self.columns.push(Arc::new(Int64Array::from(values)));
        self
    }
    #[must_use]
    pub fn bool(mut self, name: &str, values: Vec<bool>) -> Self {
        self.fields.push(Field::new(name, DataType::Boolean, false));
        self.columns.push(Arc::new(BooleanArray::from(values)));
        self
    }
    /// Adds an already-built column.
    #[must_use]
    pub fn array(mut self, name: &str, array: ArrayRef) -> Self {
        self.fields.push(Field::new(
            name,
            array.data_type().clone(),
            array.null_count() > 0,
        ));
        self.columns.push(array);
        self
    }
    pub fn build(self) -> Result<RecordBatch, StageError> {
        let schema = Arc::new(Schema::new(self.fields));
        if self.columns.is_empty() {
            return Ok(RecordBatch::new_empty(schema));
        }
        RecordBatch::try_new(schema, self.columns)
            .map_err(|e| StageError::internal(format!("building an output table: {e}")))
    }
}

/// Sorted order of rows by a list of text keys then numeric keys: a helper for the
/// "rows in a defined order" rule.
pub fn sorted_order<K: Ord>(keys: &[K]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
    order
}

/// Takes rows of a batch in the given order.
pub fn take_rows(batch: &RecordBatch, order: &[usize]) -> Result<RecordBatch, StageError> {
    let idx = arrow_array::UInt32Array::from_iter_values(
        order
            .iter()
            .map(|&i| u32::try_from(i).expect("tables have fewer than 2^32 rows")),
    );
    arrow_select::take::take_record_batch(batch, &idx)
        .map_err(|e| StageError::internal(format!("reordering rows: {e}")))
}

/// The unit polygons of a table's WKB `geometry` column.
pub fn polygons(
    batch: &RecordBatch,
    table: &str,
    name: &str,
) -> Result<Vec<geo::MultiPolygon<f64>>, StageError> {
    let col = column(batch, table, name)?;
    let bin = col.as_binary_opt::<i32>().ok_or_else(|| {
        StageError::data(format!(
            "`{table}`: column `{name}` is not a WKB geometry column"
        ))
    })?;
    (0..bin.len())
        .map(|i| {
            if bin.is_null(i) {
                return Err(StageError::data(format!(
                    "`{table}` row {}: geometry is missing",
                    i + 1
                )));
            }
            crate::io::wkb::decode(bin.value(i))
                .map_err(|e| StageError::data(format!("`{table}` row {}: {e}", i + 1)))
        })
        .collect()
}

/// The rows of `table` for one year. A table without a `year` column, or with a single year,
/// is used whole; with several years `year` must pick one.
pub fn select_year(
    table: &RecordBatch,
    name: &str,
    year: Option<i64>,
) -> Result<RecordBatch, StageError> {
    if !has_column(table, "year") {
        if let Some(y) = year {
            return Err(StageError::data(format!(
                "`year: {y}` is set but `{name}` has no `year` column"
            ))
            .with_hint("remove `year:`, or wire a table with one row per unit and year"));
        }
        return Ok(table.clone());
    }
    let years = i64s(table, name, "year")?;
    let distinct: BTreeSet<i64> = years.iter().copied().collect();
    let list = distinct
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match year {
        Some(y) => {
            let rows: Vec<usize> = (0..years.len()).filter(|&i| years[i] == y).collect();
            if rows.is_empty() {
                return Err(
                    StageError::data(format!("`{name}` has no rows for year {y}"))
                        .with_hint(format!("the years present are: {list}")),
                );
            }
            take_rows(table, &rows)
        }
        None if distinct.len() > 1 => Err(StageError::data(format!(
            "`{name}` has {} years ({list}) and one row per unit is needed",
            distinct.len()
        ))
        .with_hint(
            "set `year:` to one of them, or wire the multi-year means (e.g. `indices.means`)",
        )),
        None => Ok(table.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_numbers_and_ids_across_types() {
        let t = TableBuilder::new()
            .i64("id", vec![3, 1])
            .str("x", &["1.5", " 2 "])
            .build()
            .unwrap();
        assert_eq!(ids(&t, "t", "id").unwrap(), vec!["3", "1"]);
        assert_eq!(f64s(&t, "t", "x").unwrap(), vec![1.5, 2.0]);
        let err = f64s(&t, "t", "y").unwrap_err();
        assert!(err.message.contains("no column `y`"), "{}", err.message);
    }

    #[test]
    fn a_nan_text_cell_is_not_a_number_and_an_empty_one_is_missing() {
        let t = TableBuilder::new()
            .str("x", &["1", "", "NaN"])
            .str("y", &["inf", "2", "3"])
            .build()
            .unwrap();
        let err = f64s(&t, "energy", "x").unwrap_err();
        assert_eq!(
            err.message,
            "`energy` row 3: column `x` holds `NaN`, not a number"
        );
        let err = f64s(&t, "energy", "y").unwrap_err();
        assert_eq!(
            err.message,
            "`energy` row 1: column `y` holds `inf`, not a number"
        );
        let t = TableBuilder::new().str("x", &["1", " "]).build().unwrap();
        let values = f64s(&t, "energy", "x").unwrap();
        assert!(
            values[0] == 1.0 && values[1].is_nan(),
            "an empty cell is missing: {values:?}"
        );
    }

    /// 2^53 + 1, the first integer a float cannot hold (it rounds to 2^53).
    const BEYOND_F64: i64 = 9_007_199_254_740_993;

    fn one_column(array: ArrayRef) -> RecordBatch {
        TableBuilder::new().array("n", array).build().unwrap()
    }

    #[test]
    fn integer_columns_read_exactly_beyond_what_a_float_holds() {
        use arrow_array::{Int8Array, UInt32Array, UInt64Array};
        let t = TableBuilder::new()
            .i64("n", vec![BEYOND_F64, i64::MAX - 1, i64::MIN + 1, -7])
            .build()
            .unwrap();
        assert_eq!(
            i64s(&t, "t", "n").unwrap(),
            [BEYOND_F64, i64::MAX - 1, i64::MIN + 1, -7]
        );
        let unsigned = one_column(Arc::new(UInt64Array::from(vec![9_007_199_254_740_993, 0])));
        assert_eq!(i64s(&unsigned, "t", "n").unwrap(), [BEYOND_F64, 0]);
        let small = one_column(Arc::new(Int8Array::from(vec![-128, 127])));
        assert_eq!(i64s(&small, "t", "n").unwrap(), [-128, 127]);
        let wide = one_column(Arc::new(UInt32Array::from(vec![u32::MAX])));
        assert_eq!(i64s(&wide, "t", "n").unwrap(), [i64::from(u32::MAX)]);
        // An 18-digit id written as text is read digit for digit too.
        let text = TableBuilder::new()
            .str("n", &[" 410100000000000001 ", "2000.0"])
            .build()
            .unwrap();
        assert_eq!(
            i64s(&text, "t", "n").unwrap(),
            [410_100_000_000_000_001, 2000]
        );
    }

    #[test]
    fn integers_that_would_change_are_errors_naming_row_and_column() {
        use arrow_array::{Int32Array, UInt64Array};
        let message = |t: &RecordBatch| i64s(t, "energy", "n").unwrap_err().message;
        let huge = one_column(Arc::new(UInt64Array::from(vec![1, u64::MAX])));
        assert_eq!(
            message(&huge),
            "`energy` row 2: column `n` holds 18446744073709551615, beyond the largest 64-bit signed integer"
        );
        let rounded = TableBuilder::new()
            .f64("n", vec![2000.0, 1e17])
            .build()
            .unwrap();
        assert_eq!(
            message(&rounded),
            "`energy` row 2: column `n` holds 100000000000000000, beyond 2^53, where a float stops holding every whole number"
        );
        let fraction = TableBuilder::new().f64("n", vec![2.5]).build().unwrap();
        assert_eq!(
            message(&fraction),
            "`energy` row 1: column `n` holds 2.5, expected a whole number"
        );
        let null = one_column(Arc::new(Int32Array::from(vec![Some(1), None])));
        assert_eq!(
            message(&null),
            "`energy` row 2: column `n` is empty, expected a whole number"
        );
    }

    #[test]
    fn whole_floats_still_read_as_integers() {
        // A year column that a spreadsheet or a CSV reader stored as floats.
        let t = TableBuilder::new()
            .f64("year", vec![2000.0, -3.0, 9_007_199_254_740_992.0])
            .build()
            .unwrap();
        assert_eq!(i64s(&t, "t", "year").unwrap(), [2000, -3, 1 << 53]);
    }

    #[test]
    fn formats_whole_numbers_without_fraction() {
        assert_eq!(format_number(410_100.0), "410100");
        assert_eq!(format_number(0.25), "0.25");
    }
}
