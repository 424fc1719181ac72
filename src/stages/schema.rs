//! Output tables declared once. A [`TableSchema`] lists a table's columns, each with its name,
//! its type and how to read it from one row of the kind's own row type. `outputs()` turns it
//! into the [`OutputDecl`] the plan checks, and `run()` builds the table from its rows with it,
//! so a column's name is written in one place and cannot be declared without being written.

use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch};

use crate::engine::stage::{OutputDecl, StageError};
use crate::table::TableBuilder;

/// How one column reads a row: the Arrow type follows from the variant. Plain functions (a
/// closure that captures nothing) keep a schema free of lifetimes beyond the row's own.
enum Cell<R> {
    Text(for<'r> fn(&'r R) -> &'r str),
    Int(fn(&R) -> i64),
    /// Null where a value is undefined; nullable in the Arrow schema only when a value is null
    /// (say, pixel counts that yearbook areas do not have).
    IntOrNull(fn(&R) -> Option<i64>),
    /// Never null (non-nullable in the Arrow schema).
    Float(fn(&R) -> f64),
    /// Null where a value is undefined (say, a ratio over zero).
    FloatOrNull(fn(&R) -> Option<f64>),
    Bool(fn(&R) -> bool),
}

struct Column<R> {
    name: String,
    cell: Cell<R>,
}

/// One output table: its name, its description for the plan, and its columns in order.
pub struct TableSchema<R> {
    name: &'static str,
    doc: &'static str,
    columns: Vec<Column<R>>,
}

impl<R> TableSchema<R> {
    pub fn new(name: &'static str, doc: &'static str) -> Self {
        Self {
            name,
            doc,
            columns: Vec::new(),
        }
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

    /// Adds the columns only when `yes`: for columns a parameter turns on.
    #[must_use]
    pub fn when(self, yes: bool, add: impl FnOnce(Self) -> Self) -> Self {
        if yes { add(self) } else { self }
    }

    /// The declaration the plan checks downstream ports against.
    pub fn decl(&self) -> OutputDecl {
        OutputDecl::new(self.name, self.doc)
            .with_columns(self.columns.iter().map(|c| c.name.clone()))
    }

    /// The table of `rows`, named, in the rows' order.
    pub fn build(&self, rows: &[R]) -> Result<(String, RecordBatch), StageError> {
        let mut table = TableBuilder::new();
        for c in &self.columns {
            let name = c.name.as_str();
            table = match &c.cell {
                Cell::Text(f) => table.str(name, &rows.iter().map(*f).collect::<Vec<&str>>()),
                Cell::Int(f) => table.i64(name, rows.iter().map(*f).collect()),
                Cell::IntOrNull(f) => table.array(
                    name,
                    Arc::new(Int64Array::from(rows.iter().map(*f).collect::<Vec<_>>())),
                ),
                Cell::Float(f) => table.f64(name, rows.iter().map(*f).collect()),
                Cell::FloatOrNull(f) => table.f64_opt(name, rows.iter().map(*f).collect()),
                Cell::Bool(f) => table.bool(name, rows.iter().map(*f).collect()),
            };
        }
        Ok((self.name.to_owned(), table.build()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{column_names, f64s, i64s, ids};

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
}
