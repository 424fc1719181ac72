//! Output tables declared once. A [`TableSchema`] lists a table's columns, each with its name,
//! its type and how to read it from one row of the kind's own row type. `outputs()` turns it
//! into the [`OutputDecl`] the plan checks, and `run()` builds the table from its rows with it,
//! so a column's name is written in one place and cannot be declared without being written.

use std::sync::Arc;

use arrow_array::builder::{ArrayBuilder, StringBuilder};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, UInt32Array};
use arrow_schema::{Field, Schema};

use super::TableBuilder;
use crate::engine::stage::{OutputDecl, StageError};

/// How one column reads a row: the Arrow type follows from the variant. Plain functions (a
/// closure that captures nothing) keep a schema free of lifetimes beyond the row's own.
enum Cell<R> {
    Text(for<'r> fn(&'r R) -> &'r str),
    Int(fn(&R) -> i64),
    /// Null where a value is undefined; nullable in the Arrow schema only when a value is null
    /// (say, a count that some inputs do not have).
    IntOrNull(fn(&R) -> Option<i64>),
    /// Never null (non-nullable in the Arrow schema).
    Float(fn(&R) -> f64),
    /// Null where a value is undefined (say, a ratio over zero).
    FloatOrNull(fn(&R) -> Option<f64>),
    Bool(fn(&R) -> bool),
    /// Null where `None`; nullable in the Arrow schema only when some value is null.
    TextOrNull(for<'r> fn(&'r R) -> Option<&'r str>),
    /// One of several columns of one shape whose names come from the parameters (one per
    /// variable, say): the `usize` tells the function which.
    FloatAt(usize, fn(&R, usize) -> f64),
    FloatOrNullAt(usize, fn(&R, usize) -> Option<f64>),
    /// A column of an input table, copied with its Arrow type: the row gives the input row.
    Taken(fn(&R) -> usize),
}

struct Column<R> {
    name: String,
    cell: Cell<R>,
}

/// One output table: its name, its description for the plan, and its columns in order.
pub struct TableSchema<R> {
    name: String,
    doc: String,
    columns: Vec<Column<R>>,
    /// Whether the declaration lists every column (see [`TableSchema::partial`]).
    complete: bool,
    /// Whether every column is nullable in the Arrow schema (see [`TableSchema::nullable`]).
    nullable: bool,
}

impl<R> TableSchema<R> {
    pub fn new(name: impl Into<String>, doc: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            doc: doc.into(),
            columns: Vec::new(),
            complete: true,
            nullable: false,
        }
    }

    /// Declares the columns as some of the table's, not all: for a table whose further
    /// columns depend on the data (or on a port being wired), which only `run()` knows.
    #[must_use]
    pub fn partial(mut self) -> Self {
        self.complete = false;
        self
    }

    /// Declares every column nullable in the Arrow schema, whether or not a value is null (the
    /// Parquet bytes record it): for a table first written that way, whose bytes must not move.
    #[must_use]
    pub fn nullable(mut self) -> Self {
        self.nullable = true;
        self
    }

    fn with(mut self, name: impl Into<String>, cell: Cell<R>) -> Self {
        self.columns.push(Column {
            name: name.into(),
            cell,
        });
        self
    }

    /// A text column.
    #[must_use]
    pub fn text(self, name: impl Into<String>, f: for<'r> fn(&'r R) -> &'r str) -> Self {
        self.with(name, Cell::Text(f))
    }

    /// An integer column.
    #[must_use]
    pub fn int(self, name: impl Into<String>, f: fn(&R) -> i64) -> Self {
        self.with(name, Cell::Int(f))
    }

    /// An integer column, null where `f` gives `None`; nullable only when a value is null.
    #[must_use]
    pub fn int_or_null(self, name: impl Into<String>, f: fn(&R) -> Option<i64>) -> Self {
        self.with(name, Cell::IntOrNull(f))
    }
    /// A float column that is never null.
    #[must_use]
    pub fn float(self, name: impl Into<String>, f: fn(&R) -> f64) -> Self {
        self.with(name, Cell::Float(f))
    }

    /// A float column, null where `f` gives `None`.
    #[must_use]
    pub fn float_or_null(self, name: impl Into<String>, f: fn(&R) -> Option<f64>) -> Self {
        self.with(name, Cell::FloatOrNull(f))
    }

    /// A boolean column.
    #[must_use]
    pub fn bool(self, name: impl Into<String>, f: fn(&R) -> bool) -> Self {
        self.with(name, Cell::Bool(f))
    }

    /// A text column, null where `f` gives `None`.
    #[must_use]
    pub fn text_or_null(
        self,
        name: impl Into<String>,
        f: for<'r> fn(&'r R) -> Option<&'r str>,
    ) -> Self {
        self.with(name, Cell::TextOrNull(f))
    }

    /// A float column, one of several of one shape: `f(row, at)` reads it.
    #[must_use]
    pub fn float_at(self, name: impl Into<String>, at: usize, f: fn(&R, usize) -> f64) -> Self {
        self.with(name, Cell::FloatAt(at, f))
    }

    /// As [`TableSchema::float_at`], null where `f` gives `None`.
    #[must_use]
    pub fn float_or_null_at(
        self,
        name: impl Into<String>,
        at: usize,
        f: fn(&R, usize) -> Option<f64>,
    ) -> Self {
        self.with(name, Cell::FloatOrNullAt(at, f))
    }

    /// A column copied from an input table with its type (a grouping key, say): `f` gives
    /// the input row of each output row, and [`TableSchema::build_with`] the input column.
    #[must_use]
    pub fn taken(self, name: impl Into<String>, f: fn(&R) -> usize) -> Self {
        self.with(name, Cell::Taken(f))
    }

    /// Adds the columns only when `yes`: for columns a parameter turns on.
    #[must_use]
    pub fn when(self, yes: bool, add: impl FnOnce(Self) -> Self) -> Self {
        if yes { add(self) } else { self }
    }

    /// Adds the columns only when `value` is given, passing it on: for a column a parameter
    /// names.
    #[must_use]
    pub fn when_some<T>(self, value: Option<T>, add: impl FnOnce(Self, T) -> Self) -> Self {
        match value {
            Some(v) => add(self, v),
            None => self,
        }
    }

    /// The declaration the plan checks downstream ports against.
    pub fn decl(&self) -> OutputDecl {
        let names = self.columns.iter().map(|c| c.name.clone());
        let decl = OutputDecl::new(self.name.as_str(), self.doc.as_str());
        if self.complete {
            decl.with_columns(names)
        } else {
            decl.with_some_columns(names)
        }
    }

    /// The table of `rows`, named, in the rows' order.
    pub fn build(&self, rows: &[R]) -> Result<(String, RecordBatch), StageError> {
        self.build_with(rows, &[])
    }

    /// As [`TableSchema::build`], with the input columns of the [`TableSchema::taken`]
    /// columns, in their order.
    pub fn build_with(
        &self,
        rows: &[R],
        taken: &[&ArrayRef],
    ) -> Result<(String, RecordBatch), StageError> {
        let mut parts = self.parts(rows.len());
        parts.append(rows);
        parts.finish_with(taken)
    }

    /// As [`TableSchema::build`], but the columns named in `kept` are `template`'s own arrays
    /// (a table this schema built from rows with the same keys) rather than built again: runs
    /// that change only the values (a sweep's draws) share their text and key columns, and so
    /// pass the same arrays downstream.
    ///
    /// # Errors
    /// A kept column missing from `template`, or `template` with another number of rows.
    pub fn build_keeping(
        &self,
        rows: &[R],
        template: &RecordBatch,
        kept: &[&str],
    ) -> Result<(String, RecordBatch), StageError> {
        let kept_or_new = |c: &Column<R>| -> Result<Values, StageError> {
            if !kept.contains(&c.name.as_str()) {
                return Ok(Values::new(&c.cell, rows.len()));
            }
            let array = template.column_by_name(&c.name).ok_or_else(|| {
                StageError::internal(format!("the table template has no column `{}`", c.name))
            })?;
            Ok(Values::Kept(Arc::clone(array)))
        };
        let columns = self
            .columns
            .iter()
            .map(kept_or_new)
            .collect::<Result<_, _>>()?;
        let mut parts = TableParts {
            schema: self,
            expected_rows: rows.len(),
            columns,
        };
        parts.append(rows);
        parts.finish()
    }

    /// A table built a part of its rows at a time, about `expected_rows` in all: each part's
    /// rows can be dropped once appended, so a table of millions of rows never has all its
    /// rows beside its columns. The table equals [`TableSchema::build`] of the parts' rows
    /// in order.
    pub fn parts(&self, expected_rows: usize) -> TableParts<'_, R> {
        let columns = self
            .columns
            .iter()
            .map(|c| Values::new(&c.cell, expected_rows))
            .collect();
        TableParts {
            schema: self,
            expected_rows,
            columns,
        }
    }
}

/// A table of a [`TableSchema`] being filled part by part (see [`TableSchema::parts`]).
pub struct TableParts<'s, R> {
    schema: &'s TableSchema<R>,
    expected_rows: usize,
    columns: Vec<Values>,
}

/// The values of one column so far, in the form its Arrow array is made from without a copy.
enum Values {
    Text(StringBuilder),
    TextOrNull(StringBuilder),
    Int(Vec<i64>),
    IntOrNull(Vec<Option<i64>>),
    Float(Vec<f64>),
    FloatOrNull(Vec<Option<f64>>),
    Bool(Vec<bool>),
    /// The input rows of a taken column.
    Rows(Vec<u32>),
    /// A template's column, used as it is (see [`TableSchema::build_keeping`]).
    Kept(ArrayRef),
}

impl Values {
    fn new<R>(cell: &Cell<R>, rows: usize) -> Self {
        match cell {
            // Sized at the first part, once the text's bytes a row are known.
            Cell::Text(_) => Self::Text(StringBuilder::with_capacity(0, 0)),
            Cell::TextOrNull(_) => Self::TextOrNull(StringBuilder::with_capacity(0, 0)),
            Cell::Int(_) => Self::Int(Vec::with_capacity(rows)),
            Cell::IntOrNull(_) => Self::IntOrNull(Vec::with_capacity(rows)),
            Cell::Float(_) | Cell::FloatAt(..) => Self::Float(Vec::with_capacity(rows)),
            Cell::FloatOrNull(_) | Cell::FloatOrNullAt(..) => {
                Self::FloatOrNull(Vec::with_capacity(rows))
            }
            Cell::Bool(_) => Self::Bool(Vec::with_capacity(rows)),
            Cell::Taken(_) => Self::Rows(Vec::with_capacity(rows)),
        }
    }
}

impl<R> TableParts<'_, R> {
    /// Appends `rows` after the rows appended so far.
    pub fn append(&mut self, rows: &[R]) {
        let expected = self.expected_rows;
        for (c, values) in self.schema.columns.iter().zip(&mut self.columns) {
            match (&c.cell, values) {
                (Cell::Text(f), Values::Text(b)) => {
                    reserve_text(b, expected, rows.iter().map(|r| f(r).len()));
                    for r in rows {
                        b.append_value(f(r));
                    }
                }
                (Cell::TextOrNull(f), Values::TextOrNull(b)) => {
                    let lens = rows.iter().map(|r| f(r).map_or(0, str::len));
                    reserve_text(b, expected, lens);
                    for r in rows {
                        b.append_option(f(r));
                    }
                }
                (Cell::Int(f), Values::Int(v)) => v.extend(rows.iter().map(*f)),
                (Cell::IntOrNull(f), Values::IntOrNull(v)) => v.extend(rows.iter().map(*f)),
                (Cell::Float(f), Values::Float(v)) => v.extend(rows.iter().map(*f)),
                (Cell::FloatAt(at, f), Values::Float(v)) => {
                    v.extend(rows.iter().map(|r| f(r, *at)));
                }
                (Cell::FloatOrNull(f), Values::FloatOrNull(v)) => v.extend(rows.iter().map(*f)),
                (Cell::FloatOrNullAt(at, f), Values::FloatOrNull(v)) => {
                    v.extend(rows.iter().map(|r| f(r, *at)));
                }
                (Cell::Bool(f), Values::Bool(v)) => v.extend(rows.iter().map(*f)),
                (Cell::Taken(f), Values::Rows(v)) => v.extend(
                    rows.iter()
                        .map(|r| u32::try_from(f(r)).expect("tables have fewer than 2^32 rows")),
                ),
                (_, Values::Kept(_)) => {}
                _ => unreachable!("each column's values are made from its cell"),
            }
        }
    }

    /// The table of every part appended, named.
    pub fn finish(self) -> Result<(String, RecordBatch), StageError> {
        self.finish_with(&[])
    }

    /// As [`TableParts::finish`], with the input columns of the [`TableSchema::taken`]
    /// columns, in their order.
    pub fn finish_with(self, taken: &[&ArrayRef]) -> Result<(String, RecordBatch), StageError> {
        let schema = self.schema;
        let mut table = TableBuilder::new();
        let mut sources = taken.iter();
        for (c, values) in schema.columns.iter().zip(self.columns) {
            let name = c.name.as_str();
            table = match values {
                Values::Text(mut b) | Values::TextOrNull(mut b) => {
                    table.array(name, Arc::new(b.finish()))
                }
                Values::Int(v) => table.i64(name, v),
                Values::IntOrNull(v) => table.array(name, Arc::new(Int64Array::from(v))),
                Values::Float(v) => table.f64(name, v),
                Values::FloatOrNull(v) => table.f64_opt(name, v),
                Values::Bool(v) => table.bool(name, v),
                Values::Kept(array) => table.array(name, array),
                Values::Rows(v) => {
                    let source = sources.next().ok_or_else(|| {
                        StageError::internal(format!("no input column for `{name}`"))
                    })?;
                    table.array(name, take(source, &UInt32Array::from(v))?)
                }
            };
        }
        let table = table.build()?;
        let table = if schema.nullable {
            every_field_nullable(table)?
        } else {
            table
        };
        Ok((schema.name.clone(), table))
    }
}

/// Sizes an empty text column's buffers from its first part: as many bytes a row as that
/// part has, for the rows expected. Neither a list of every row's text beside the array nor
/// a values buffer grown by doubling (millions of rows); a later part that does not fit grows
/// it as usual.
fn reserve_text(b: &mut StringBuilder, expected_rows: usize, lens: impl Iterator<Item = usize>) {
    if !b.is_empty() {
        return;
    }
    let (rows, bytes) = lens.fold((0usize, 0usize), |(n, s), l| (n + 1, s + l));
    if rows == 0 {
        return;
    }
    let expected_rows = expected_rows.max(rows);
    // Proportional to the rows, not to a rounded length a row: no slack on millions of rows.
    let expected_bytes = bytes
        .checked_mul(expected_rows)
        .map_or(bytes, |b| b.div_ceil(rows));
    *b = StringBuilder::with_capacity(expected_rows, expected_bytes);
}

/// `table` with every field of its schema nullable.
fn every_field_nullable(table: RecordBatch) -> Result<RecordBatch, StageError> {
    if table.num_columns() == 0 {
        return Ok(table);
    }
    let schema = table.schema();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    RecordBatch::try_new(Arc::new(schema), table.columns().to_vec())
        .map_err(|e| StageError::internal(format!("building an output table: {e}")))
}

/// The values of `source` at the input rows `index`, in that order.
fn take(source: &ArrayRef, index: &UInt32Array) -> Result<ArrayRef, StageError> {
    arrow_select::take::take(source.as_ref(), index, None)
        .map_err(|e| StageError::internal(format!("copying an input column: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{column_names, f64s, i64s, ids};
    use arrow_array::Array;

    struct Row {
        unit: String,
        year: i64,
        ratio: Option<f64>,
    }

    #[test]
    fn a_table_is_built_from_its_declaration() {
        let schema = TableSchema::<Row>::new("t", "a test table")
            .text("unit_id", |r| &r.unit)
            .int("year", |r| r.year)
            .when(true, |s| s.float_or_null("ratio", |r| r.ratio))
            .when(false, |s| s.float("left_out", |_| 0.0));
        let rows = [
            Row {
                unit: "b".into(),
                year: 2000,
                ratio: Some(0.5),
            },
            Row {
                unit: "a".into(),
                year: 2005,
                ratio: None,
            },
        ];
        let decl = schema.decl();
        assert_eq!(decl.columns, ["unit_id", "year", "ratio"]);
        assert!(decl.complete);
        let (name, t) = schema.build(&rows).unwrap();
        assert_eq!(name, "t");
        assert_eq!(column_names(&t), decl.columns);
        assert_eq!(ids(&t, "t", "unit_id").unwrap(), ["b", "a"]);
        assert_eq!(i64s(&t, "t", "year").unwrap(), [2000, 2005]);
        let ratio = f64s(&t, "t", "ratio").unwrap();
        assert!(ratio[0] == 0.5 && ratio[1].is_nan(), "{ratio:?}");
        assert!(t.schema().field(2).is_nullable() && !t.schema().field(1).is_nullable());
        // No rows still gives the declared columns.
        assert_eq!(column_names(&schema.build(&[]).unwrap().1), decl.columns);
    }

    #[test]
    fn a_nullable_table_marks_every_column_nullable_and_keeps_its_values() {
        let schema = || {
            TableSchema::<Row>::new("t", "a test table")
                .text("unit_id", |r| &r.unit)
                .int("year", |r| r.year)
        };
        let rows = [Row {
            unit: "a".into(),
            year: 2000,
            ratio: None,
        }];
        let (_, plain) = schema().build(&rows).unwrap();
        let (_, nullable) = schema().nullable().build(&rows).unwrap();
        let flags = |t: &RecordBatch| -> Vec<bool> {
            t.schema()
                .fields()
                .iter()
                .map(|f| f.is_nullable())
                .collect()
        };
        assert_eq!(flags(&plain), [false, false]);
        assert_eq!(flags(&nullable), [true, true]);
        assert_eq!(plain.columns(), nullable.columns());
        assert_eq!(schema().nullable().decl().columns, ["unit_id", "year"]);
    }

    #[test]
    fn a_table_built_keeping_template_columns_shares_their_arrays() {
        let schema = TableSchema::<Row>::new("t", "a test table")
            .text("unit_id", |r| &r.unit)
            .int("year", |r| r.year)
            .float_or_null("ratio", |r| r.ratio);
        let row = |ratio| Row {
            unit: "a".into(),
            year: 2000,
            ratio,
        };
        let (_, template) = schema.build(&[row(None)]).unwrap();
        let (_, kept) = schema
            .build_keeping(&[row(Some(0.5))], &template, &["unit_id", "year"])
            .unwrap();
        let (_, built) = schema.build(&[row(Some(0.5))]).unwrap();
        assert_eq!(kept, built, "the same table as one built from the rows");
        assert!(Arc::ptr_eq(kept.column(0), template.column(0)));
        assert!(Arc::ptr_eq(kept.column(1), template.column(1)));
        assert!(
            schema
                .build_keeping(&[row(None), row(None)], &template, &["unit_id"])
                .is_err(),
            "a template of another length"
        );
    }

    struct Point {
        input_row: usize,
        unit: Option<String>,
        values: [f64; 2],
    }

    #[test]
    fn taken_nullable_text_and_indexed_columns_follow_the_declaration() {
        let schema = TableSchema::<Point>::new("p", "points")
            .when_some(Some("year"), |s, by| s.taken(by, |r| r.input_row))
            .text_or_null("unit_id", |r| r.unit.as_deref())
            .float_at("a_mean", 0, |r, j| r.values[j])
            .float_or_null_at("b_mean", 1, |r, j| Some(r.values[j]).filter(|v| *v > 0.0))
            .partial();
        let decl = schema.decl();
        assert_eq!(decl.columns, ["year", "unit_id", "a_mean", "b_mean"]);
        assert!(!decl.complete);
        let rows = [
            Point {
                input_row: 2,
                unit: None,
                values: [1.5, -1.0],
            },
            Point {
                input_row: 0,
                unit: Some("a".into()),
                values: [2.5, 3.0],
            },
        ];
        // The key column keeps the input's type and takes the rows named: 2030, then 2010.
        let years: ArrayRef = Arc::new(arrow_array::Int32Array::from(vec![2010, 2020, 2030]));
        let (_, t) = schema.build_with(&rows, &[&years]).unwrap();
        assert_eq!(t.schema().field(0).data_type(), years.data_type());
        assert_eq!(i64s(&t, "p", "year").unwrap(), [2030, 2010]);
        assert!(t.schema().field(1).is_nullable() && t.column(1).is_null(0));
        assert_eq!(f64s(&t, "p", "a_mean").unwrap(), [1.5, 2.5]);
        let b = f64s(&t, "p", "b_mean").unwrap();
        assert!(b[0].is_nan() && b[1] == 3.0, "{b:?}");
        // A taken column without its input column is an internal error, not a panic.
        assert!(schema.build(&rows).is_err());
    }

    #[test]
    fn a_table_built_in_parts_equals_the_table_built_at_once() {
        let schema = TableSchema::<Point>::new("p", "points")
            .taken("year", |r| r.input_row)
            .text_or_null("unit_id", |r| r.unit.as_deref())
            .float_at("a_mean", 0, |r, j| r.values[j])
            .float_or_null_at("b_mean", 1, |r, j| Some(r.values[j]).filter(|v| *v > 0.0));
        let point = |i: usize, unit: Option<&str>| Point {
            input_row: i % 3,
            unit: unit.map(str::to_owned),
            values: [i as f64, 1.0 - i as f64],
        };
        // The first part's short ids size the text buffers too small for the later parts.
        let rows: Vec<Point> = (0..7)
            .map(|i| point(i, [Some("a"), None, Some("a much longer id")][i.min(2)]))
            .collect();
        let years: ArrayRef = Arc::new(Int64Array::from(vec![2010, 2020, 2030]));
        let whole = schema.build_with(&rows, &[&years]).unwrap();
        let mut parts = schema.parts(5);
        for part in [&rows[..1], &rows[1..1], &rows[1..4], &rows[4..]] {
            parts.append(part);
        }
        let in_parts = parts.finish_with(&[&years]).unwrap();
        assert_eq!(in_parts, whole);
        assert_eq!(in_parts.1.num_rows(), 7);
        assert!(
            schema.parts(0).finish().is_err(),
            "a taken column needs its input"
        );
    }
}
