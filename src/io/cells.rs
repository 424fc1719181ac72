//! Values read from text-like files (CSV, XLSX, GeoJSON properties, DBF attributes) before their
//! column's type is decided, the one rule that decides it, and the row-level edits `ingest`
//! makes before building Arrow columns (rename, filter, select, id, sort).
//!
//! Keeping cells until the end means an explicit `types:` entry converts the value as written
//! in the file (so `007` read as text stays `007`), and every conversion error can name the
//! row's place in the file. Knows formats, not carbon.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow_schema::DataType;
use serde::{Deserialize, Serialize};

use crate::io::IoError;
use crate::io::yearbook::{fold_width, plain_number};

/// One value as a file holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// An empty cell, a JSON `null`, a DBF blank.
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Text the file types as text (a JSON string, a DBF character field): it stays text
    /// unless `types:` says otherwise.
    Text(String),
    /// Untyped text (a CSV field, an XLSX text cell): its column's type is inferred from it.
    Raw(String),
}

/// A column type a user can ask for in `types:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// Int64.
    Int,
    /// Float64.
    Float,
    /// Utf8.
    String,
    /// Boolean.
    Bool,
}

impl ColumnType {
    fn noun(self) -> &'static str {
        match self {
            Self::Int => "an integer",
            Self::Float => "a number",
            Self::String => "text",
            Self::Bool => "true or false",
        }
    }
}

/// What a piece of untyped text looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RawKind {
    Int,
    Float,
    Bool,
    Text,
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// A finite decimal number (`1`, `-2.5`, `1e3`); rejects `NaN`, `inf` and other words Rust's
/// float parser accepts.
/// Yearbook print (`5,758,213.8`, full-width digits, surrounding blanks) is read through
/// [`crate::io::yearbook::plain_number`] first.
fn parse_number(s: &str) -> Option<f64> {
    let plain = plain_number(s);
    let s = plain.as_ref();
    if !s.bytes().any(|b| b.is_ascii_digit())
        || s.bytes()
            .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E')
    {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn raw_kind(s: &str) -> RawKind {
    if parse_bool(s).is_some() {
        return RawKind::Bool;
    }
    let plain = plain_number(s);
    let t = plain.as_ref();
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    // A leading zero (`007`, `0410`) marks a code, not a quantity: keep such columns as text.
    let leading_zero =
        digits.len() > 1 && digits.starts_with('0') && digits.as_bytes()[1].is_ascii_digit();
    if leading_zero {
        return RawKind::Text;
    }
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && t.parse::<i64>().is_ok()
    {
        return RawKind::Int;
    }
    if parse_number(t).is_some() {
        RawKind::Float
    } else {
        RawKind::Text
    }
}

impl Cell {
    /// Untyped text from a file; an empty or all-blank field is a null.
    pub fn raw(s: &str) -> Self {
        if s.trim().is_empty() {
            Cell::Null
        } else {
            Cell::Raw(s.to_owned())
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Cell::Null)
    }

    /// The value as text, as it would appear in a string column (`None` for null).
    pub fn text(&self) -> Option<String> {
        match self {
            Cell::Null => None,
            Cell::Bool(b) => Some(b.to_string()),
            Cell::Int(v) => Some(v.to_string()),
            // Whole numbers print without a fraction (`3.0` as `3`), as a spreadsheet shows them.
            Cell::Float(v) => Some(v.to_string()),
            Cell::Text(s) | Cell::Raw(s) => Some(s.clone()),
        }
    }

    fn as_int(&self) -> Option<i64> {
        match self {
            Cell::Int(v) => Some(*v),
            Cell::Float(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Some(*v as i64),
            Cell::Text(s) | Cell::Raw(s) => {
                let t = plain_number(s);
                t.parse::<i64>()
                    .ok()
                    .or_else(|| Cell::Float(parse_number(&t)?).as_int())
            }
            _ => None,
        }
    }

    fn as_float(&self) -> Option<f64> {
        match self {
            Cell::Int(v) => Some(*v as f64),
            Cell::Float(v) => Some(*v),
            Cell::Text(s) | Cell::Raw(s) => parse_number(s),
            _ => None,
        }
    }

    fn as_bool(&self) -> Option<bool> {
        match self {
            Cell::Bool(b) => Some(*b),
            Cell::Int(0) => Some(false),
            Cell::Int(1) => Some(true),
            Cell::Text(s) | Cell::Raw(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Some(true),
                "false" | "no" | "0" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }
}

/// The type a column of cells gets when `types:` does not name it. Over the non-null cells:
/// all booleans (or the words `true`/`false`) → bool; all integers → int; all numbers → float;
/// anything else, or no value at all, → string. Untyped text with a leading zero (`007`)
/// counts as text, so codes keep their zeros.
pub fn infer(cells: &[Cell]) -> ColumnType {
    let mut all_bool = true;
    let mut all_int = true;
    let mut all_number = true;
    let mut any = false;
    for cell in cells {
        let kind = match cell {
            Cell::Null => continue,
            Cell::Bool(_) => RawKind::Bool,
            Cell::Int(_) => RawKind::Int,
            Cell::Float(_) => RawKind::Float,
            Cell::Text(_) => RawKind::Text,
            Cell::Raw(s) => raw_kind(s),
        };
        any = true;
        all_bool &= kind == RawKind::Bool;
        all_int &= kind == RawKind::Int;
        all_number &= matches!(kind, RawKind::Int | RawKind::Float);
    }
    match (any, all_bool, all_int, all_number) {
        (false, ..) => ColumnType::String,
        (true, true, ..) => ColumnType::Bool,
        (true, _, true, _) => ColumnType::Int,
        (true, _, _, true) => ColumnType::Float,
        _ => ColumnType::String,
    }
}

/// A cell that does not convert to the column's type.
#[derive(Debug, Clone, PartialEq)]
pub struct BadCell {
    /// Row index in the column.
    pub row: usize,
    /// The value as written.
    pub value: String,
    pub expected: ColumnType,
}

impl std::fmt::Display for BadCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` is not {}", self.value, self.expected.noun())
    }
}

/// Builds an Arrow column of type `ty` (nullable) from cells.
pub fn build(cells: &[Cell], ty: ColumnType) -> Result<ArrayRef, BadCell> {
    fn convert<T>(
        cells: &[Cell],
        ty: ColumnType,
        f: impl Fn(&Cell) -> Option<T>,
    ) -> Result<Vec<Option<T>>, BadCell> {
        cells
            .iter()
            .enumerate()
            .map(|(row, c)| match c {
                Cell::Null => Ok(None),
                c => f(c).map(Some).ok_or_else(|| BadCell {
                    row,
                    value: c.text().unwrap_or_default(),
                    expected: ty,
                }),
            })
            .collect()
    }
    Ok(match ty {
        ColumnType::Int => Arc::new(Int64Array::from(convert(cells, ty, Cell::as_int)?)),
        ColumnType::Float => Arc::new(Float64Array::from(convert(cells, ty, Cell::as_float)?)),
        ColumnType::Bool => Arc::new(BooleanArray::from(convert(cells, ty, Cell::as_bool)?)),
        ColumnType::String => Arc::new(StringArray::from(
            cells.iter().map(Cell::text).collect::<Vec<_>>(),
        )),
    })
}

/// The cells of an Arrow column (integers, floats, text, booleans), or `None` for another type.
pub fn from_array(array: &ArrayRef) -> Option<Vec<Cell>> {
    let n = array.len();
    macro_rules! prim {
        ($t:ty, $cell:expr) => {{
            let a = array.as_primitive::<$t>();
            (0..n)
                .map(|i| {
                    if a.is_null(i) {
                        Cell::Null
                    } else {
                        $cell(a.value(i))
                    }
                })
                .collect()
        }};
    }
    Some(match array.data_type() {
        DataType::Int64 => prim!(Int64Type, Cell::Int),
        DataType::Int32 => prim!(Int32Type, |v| Cell::Int(i64::from(v))),
        DataType::Int16 => prim!(Int16Type, |v| Cell::Int(i64::from(v))),
        DataType::Int8 => prim!(Int8Type, |v| Cell::Int(i64::from(v))),
        DataType::UInt32 => prim!(UInt32Type, |v| Cell::Int(i64::from(v))),
        DataType::UInt16 => prim!(UInt16Type, |v| Cell::Int(i64::from(v))),
        DataType::UInt8 => prim!(UInt8Type, |v| Cell::Int(i64::from(v))),
        DataType::UInt64 => prim!(UInt64Type, |v: u64| i64::try_from(v)
            .map_or(Cell::Float(v as f64), Cell::Int)),
        DataType::Float64 => prim!(Float64Type, Cell::Float),
        DataType::Float32 => prim!(Float32Type, |v| Cell::Float(f64::from(v))),
        DataType::Utf8 => text_cells(array.as_string::<i32>().iter()),
        DataType::LargeUtf8 => text_cells(array.as_string::<i64>().iter()),
        DataType::Boolean => array
            .as_boolean()
            .iter()
            .map(|v| v.map_or(Cell::Null, Cell::Bool))
            .collect(),
        _ => return None,
    })
}

fn text_cells<'a>(values: impl Iterator<Item = Option<&'a str>>) -> Vec<Cell> {
    values
        .map(|v| v.map_or(Cell::Null, |t| Cell::Text(t.to_owned())))
        .collect()
}

/// A column of a [`CellTable`]: cells still to be typed, or an Arrow column read as is
/// (from Parquet).
#[derive(Debug, Clone)]
pub enum Column {
    Cells(Vec<Cell>),
    Array(ArrayRef),
}

impl Column {
    fn take(&self, order: &[usize]) -> Result<Column, IoError> {
        Ok(match self {
            Column::Cells(c) => Column::Cells(order.iter().map(|&i| c[i].clone()).collect()),
            Column::Array(a) => {
                let idx = arrow_array::UInt32Array::from_iter_values(
                    order
                        .iter()
                        .map(|&i| u32::try_from(i).expect("tables have fewer than 2^32 rows")),
                );
                Column::Array(
                    arrow_select::take::take(a.as_ref(), &idx, None)
                        .map_err(|e| IoError::internal(format!("reordering rows: {e}")))?,
                )
            }
        })
    }

    /// The column as cells, if its type allows (`name` and `source` for the message).
    pub(crate) fn cells(
        &self,
        source: &str,
        name: &str,
    ) -> Result<std::borrow::Cow<'_, [Cell]>, IoError> {
        match self {
            Column::Cells(c) => Ok(std::borrow::Cow::Borrowed(c)),
            Column::Array(a) => from_array(a).map(std::borrow::Cow::Owned).ok_or_else(|| {
                IoError::data(format!("{source}: column `{name}` has type {}, which `ingest` cannot compare or convert", a.data_type()))
            }),
        }
    }
}

/// A table read from a file: named columns, where each row came from, and the unit geometries
/// of a vector file. Row edits keep all three aligned.
#[derive(Debug, Clone)]
pub struct CellTable {
    /// The file as the user wrote it, for messages.
    pub source: String,
    pub columns: Vec<(String, Column)>,
    /// Where each row is in the file, e.g. `data.csv:12` or `units.geojson: feature index 3`.
    pub rows: Vec<String>,
    /// One (multi)polygon per row, for vector formats.
    pub geometry: Option<Vec<geo::MultiPolygon<f64>>>,
    /// Things the reader noticed that the user should hear about (shown as warnings).
    pub notes: Vec<String>,
    /// Each row's number as a spreadsheet shows the file (XLSX row, CSV line); empty for
    /// formats without one (GeoJSON, DBF, Parquet).
    pub sheet_rows: Vec<u32>,
    /// Each column's place in the spreadsheet (0-based, A = 0), by column name.
    pub sheet_columns: BTreeMap<String, SheetColumn>,
}

/// Where a column's cells are in the spreadsheet: one column, or (after `melt`) one per row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SheetColumn {
    Fixed(u32),
    PerRow(Vec<u32>),
}

/// Column letters for a 0-based column index (0 → A, 26 → AA), as Excel names them.
pub fn column_letters(mut col: u32) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(char::from(
            b'A' + u8::try_from(col % 26).expect("a remainder of 26 fits in u8"),
        ));
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    letters.iter().rev().collect()
}

/// The column every unit table is keyed on.
pub const UNIT_ID: &str = "unit_id";

impl CellTable {
    /// A table of cell columns. Columns without a name are dropped when they hold no value
    /// (a trailing comma, an empty spreadsheet column) and are an error otherwise; repeated
    /// names are an error.
    pub fn new(
        source: &Path,
        columns: Vec<(String, Vec<Cell>)>,
        rows: Vec<String>,
    ) -> Result<Self, IoError> {
        let source = source.display().to_string();
        let mut seen = BTreeSet::new();
        for (i, (name, cells)) in columns.iter().enumerate() {
            if name.trim().is_empty() {
                if cells.iter().all(Cell::is_null) {
                    continue; // A trailing comma or a formatted but empty spreadsheet column.
                }
                return Err(IoError::data(format!(
                    "{source}: column {} has values but no name",
                    i + 1
                ))
                .with_hint("give every column with values a header"));
            }
            if !seen.insert(name.as_str()) {
                return Err(IoError::data(format!(
                    "{source}: column `{name}` appears twice in the header"
                ))
                .with_hint("rename one of them in the file"));
            }
            debug_assert_eq!(cells.len(), rows.len(), "every column has one cell per row");
        }
        let sheet_columns = columns
            .iter()
            .enumerate()
            .filter(|(_, (n, _))| !n.trim().is_empty())
            .map(|(i, (n, _))| {
                let i = u32::try_from(i).expect("files have fewer than 2^32 columns");
                (n.clone(), SheetColumn::Fixed(i))
            })
            .collect();
        let columns = columns
            .into_iter()
            .filter(|(n, _)| !n.trim().is_empty())
            .map(|(n, c)| (n, Column::Cells(c)))
            .collect();
        Ok(Self {
            source,
            columns,
            rows,
            geometry: None,
            notes: Vec::new(),
            sheet_rows: Vec::new(),
            sheet_columns,
        })
    }

    /// A table of Arrow columns read as they are (e.g. from Parquet); rows are labelled
    /// `source: row N` (1-based).
    pub fn from_arrays(source: &Path, columns: Vec<(String, ArrayRef)>, num_rows: usize) -> Self {
        let source = source.display().to_string();
        let rows = (1..=num_rows)
            .map(|i| format!("{source}: row {i}"))
            .collect();
        let columns = columns
            .into_iter()
            .map(|(n, a)| (n, Column::Array(a)))
            .collect();
        Self {
            source,
            columns,
            rows,
            geometry: None,
            notes: Vec::new(),
            sheet_rows: Vec::new(),
            sheet_columns: BTreeMap::new(),
        }
    }

    pub fn num_rows(&self) -> usize {
        self.rows.len()
    }

    pub fn names(&self) -> Vec<String> {
        self.columns.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The spreadsheet cell (`D7`) of `column` in `row`, when the format has one.
    pub fn cell_ref(&self, column: &str, row: usize) -> Option<String> {
        let line = self.sheet_rows.get(row)?;
        let col = match self.sheet_columns.get(column)? {
            SheetColumn::Fixed(c) => *c,
            SheetColumn::PerRow(cs) => *cs.get(row)?,
        };
        Some(format!("{}{line}", column_letters(col)))
    }

    /// Where a cell is, for messages: `file:12, cell C12`, or the row alone.
    pub fn at(&self, column: &str, row: usize) -> String {
        match self.cell_ref(column, row) {
            Some(cell) => format!("{}, cell {cell}", self.rows[row]),
            None => self.rows[row].clone(),
        }
    }

    /// The index of column `name`; a header written with full-width brackets or blanks
    /// (`人口（万人）`) also answers to its half-width spelling.
    pub fn position(&self, name: &str) -> Result<usize, IoError> {
        let folded = |n: &str| fold_width(n).split_whitespace().collect::<String>();
        self.columns
            .iter()
            .position(|(n, _)| n == name)
            .or_else(|| {
                let wanted = folded(name);
                let mut same = self
                    .columns
                    .iter()
                    .enumerate()
                    .filter(|(_, (n, _))| folded(n) == wanted);
                match (same.next(), same.next()) {
                    (Some((i, _)), None) => Some(i),
                    _ => None,
                }
            })
            .ok_or_else(|| {
                let mut err = IoError::column_missing(&self.source, name, &self.names());
                err.message = format!("{} has no column `{name}`", self.source);
                err
            })
    }

    /// Renames columns (`old → new`).
    pub fn rename(&mut self, renames: &BTreeMap<String, String>) -> Result<(), IoError> {
        for (old, new) in renames {
            let i = self.position(old)?;
            if old != new && self.columns.iter().any(|(n, _)| n == new) {
                return Err(IoError::data(format!(
                    "{}: cannot rename `{old}` to `{new}`: a column `{new}` already exists",
                    self.source
                ))
                .with_hint("rename or drop the other column first"));
            }
            if let Some(place) = self.sheet_columns.remove(&self.columns[i].0) {
                self.sheet_columns.insert(new.clone(), place);
            }
            self.columns[i].0.clone_from(new);
        }
        Ok(())
    }

    /// Keeps the rows in `order`, in that order.
    pub fn take(&mut self, order: &[usize]) -> Result<(), IoError> {
        for (_, col) in &mut self.columns {
            *col = col.take(order)?;
        }
        self.rows = order.iter().map(|&i| self.rows[i].clone()).collect();
        if !self.sheet_rows.is_empty() {
            self.sheet_rows = order.iter().map(|&i| self.sheet_rows[i]).collect();
        }
        for place in self.sheet_columns.values_mut() {
            if let SheetColumn::PerRow(cs) = place {
                *cs = order.iter().map(|&i| cs[i]).collect();
            }
        }
        if let Some(g) = &mut self.geometry {
            *g = order.iter().map(|&i| g[i].clone()).collect();
        }
        Ok(())
    }

    /// Keeps the rows where `column` equals `value`: as booleans if both read as
    /// `true`/`false`, as numbers if both are numbers, else as text.
    pub fn filter(&mut self, column: &str, value: &Cell) -> Result<(), IoError> {
        let i = self.position(column)?;
        let cells = self.columns[i].1.cells(&self.source, column)?;
        let keep: Vec<usize> = cells
            .iter()
            .enumerate()
            .filter(|(_, c)| cells_equal(c, value))
            .map(|(r, _)| r)
            .collect();
        if keep.is_empty() && !cells.is_empty() {
            let seen: BTreeSet<String> = cells.iter().filter_map(Cell::text).collect();
            let mut listed: Vec<&str> = seen.iter().map(String::as_str).take(10).collect();
            if seen.len() > listed.len() {
                listed.push("...");
            }
            return Err(IoError::data(format!(
                "{}: no row has `{column}` equal to `{}`",
                self.source,
                value.text().unwrap_or_else(|| "null".to_owned())
            ))
            .with_hint(format!("the column holds: {}", listed.join(", "))));
        }
        self.take(&keep)
    }

    /// Keeps only `keep` (in the table's order), plus `unit_id` and `geometry`.
    pub fn select(&mut self, keep: &[String]) -> Result<(), IoError> {
        for name in keep {
            self.position(name)?;
        }
        let always = [UNIT_ID, crate::io::wkb::GEOMETRY_COLUMN];
        self.columns
            .retain(|(n, _)| always.contains(&n.as_str()) || keep.contains(n));
        Ok(())
    }

    /// Makes `column` the `unit_id` column: text, first, non-empty, unique; rows sorted by it.
    pub fn set_unit_id(&mut self, column: &str) -> Result<(), IoError> {
        let i = self.position(column)?;
        if column != UNIT_ID && self.columns.iter().any(|(n, _)| n == UNIT_ID) {
            return Err(IoError::data(format!(
                "{}: `id_column: {column}` would replace the existing column `unit_id`",
                self.source
            ))
            .with_hint(
                "rename the existing `unit_id` column with `rename:`, or use it as `id_column`",
            ));
        }
        let cells = self.columns[i].1.cells(&self.source, column)?;
        let mut ids = Vec::with_capacity(cells.len());
        let mut first_row: BTreeMap<String, usize> = BTreeMap::new();
        for (row, cell) in cells.iter().enumerate() {
            let id = cell.text().map(|s| s.trim().to_owned()).unwrap_or_default();
            if id.is_empty() {
                return Err(IoError::data(format!(
                    "{}: id column `{column}` is empty",
                    self.rows[row]
                ))
                .with_hint("every row needs a unit id"));
            }
            if let Some(&other) = first_row.get(&id) {
                return Err(IoError::data(format!(
                    "{}: unit id `{id}` (column `{column}`) appears twice: {} and {}",
                    self.source, self.rows[other], self.rows[row]
                ))
                .with_hint("unit ids must be unique; fix the file or `filter:` the rows first"));
            }
            first_row.insert(id.clone(), row);
            ids.push(id);
        }
        self.columns.remove(i);
        self.columns.insert(
            0,
            (
                UNIT_ID.to_owned(),
                Column::Cells(ids.iter().cloned().map(Cell::Text).collect()),
            ),
        );
        let order: Vec<usize> = first_row.into_values().collect();
        self.take(&order)
    }

    /// Builds the Arrow columns: cell columns get the type `types` names, or the inferred one.
    pub fn build(
        self,
        types: &BTreeMap<String, ColumnType>,
    ) -> Result<Vec<(String, ArrayRef)>, IoError> {
        for name in types.keys() {
            self.position(name)?;
        }
        let mut out = Vec::with_capacity(self.columns.len());
        for (name, column) in &self.columns {
            let forced = types.get(name).copied();
            let cells = match (column, forced) {
                (Column::Array(a), None) => {
                    out.push((name.clone(), a.clone()));
                    continue;
                }
                (c, _) => c.cells(&self.source, name)?,
            };
            let ty = forced.unwrap_or_else(|| infer(&cells));
            let array = build(&cells, ty).map_err(|bad| {
                let err = IoError::data(format!(
                    "{}: column `{name}`: {bad}",
                    self.at(name, bad.row)
                ));
                if forced.is_some() {
                    err.with_hint(format!(
                        "fix the value, or drop `{name}` from `types:` to read it as it is"
                    ))
                } else {
                    err
                }
            })?;
            out.push((name.clone(), array));
        }
        Ok(out)
    }
}

fn cells_equal(cell: &Cell, value: &Cell) -> bool {
    let (Some(a), Some(b)) = (cell.text(), value.text()) else {
        return cell.is_null() && value.is_null();
    };
    if let (Some(x), Some(y)) = (parse_bool(&a), parse_bool(&b)) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (parse_number(&a), parse_number(&b)) {
        return x == y;
    }
    a.trim() == b.trim()
}

/// The text encoding a label names, as found in shapefile `.cpg` files and the `encoding:`
/// parameter: `UTF-8`/`65001`, `GBK`/`936`/`CP936`/`GB2312`, `GB18030`, `BIG5`/`950`,
/// code page numbers (`1252` → windows-1252) and any WHATWG label (`latin1`, `cp1251`, ...).
pub fn encoding_for_label(label: &str) -> Option<&'static encoding_rs::Encoding> {
    let label = label.trim().trim_start_matches('\u{feff}').trim();
    let named = match label.to_ascii_uppercase().as_str() {
        "UTF-8" | "UTF8" | "65001" => Some(encoding_rs::UTF_8),
        "GBK" | "936" | "CP936" | "MS936" | "WINDOWS-936" | "GB2312" => Some(encoding_rs::GBK),
        "GB18030" | "54936" => Some(encoding_rs::GB18030),
        "BIG5" | "BIG-5" | "950" | "CP950" => Some(encoding_rs::BIG5),
        "SHIFT_JIS" | "SJIS" | "932" | "CP932" => Some(encoding_rs::SHIFT_JIS),
        "EUC-KR" | "949" | "CP949" => Some(encoding_rs::EUC_KR),
        _ => None,
    };
    named.or_else(|| {
        if !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit()) {
            encoding_rs::Encoding::for_label(format!("windows-{label}").as_bytes())
        } else {
            encoding_rs::Encoding::for_label(label.as_bytes())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(values: &[&str]) -> Vec<Cell> {
        values.iter().map(|s| Cell::raw(s)).collect()
    }

    #[test]
    fn float_cells_read_as_text_like_a_spreadsheet_shows_them() {
        // Whole numbers lose the fraction, others keep the shortest exact digits.
        assert_eq!(Cell::Float(3.0).text().as_deref(), Some("3"));
        assert_eq!(Cell::Float(-0.0).text().as_deref(), Some("-0"));
        assert_eq!(Cell::Float(2.5).text().as_deref(), Some("2.5"));
        assert_eq!(
            Cell::Float(1e15).text().as_deref(),
            Some("1000000000000000")
        );
        assert_eq!(
            Cell::Float(0.1 + 0.2).text().as_deref(),
            Some("0.30000000000000004")
        );
    }

    #[test]
    fn infers_the_narrowest_type_over_all_values() {
        assert_eq!(infer(&raw(&["1", "", "-3"])), ColumnType::Int);
        assert_eq!(infer(&raw(&["1", "2.5", "1e3"])), ColumnType::Float);
        assert_eq!(infer(&raw(&["true", "FALSE", ""])), ColumnType::Bool);
        assert_eq!(infer(&raw(&["1", "x"])), ColumnType::String);
        assert_eq!(infer(&raw(&["", ""])), ColumnType::String);
        // Codes with leading zeros stay text; `NaN` and `inf` are words, not numbers.
        assert_eq!(infer(&raw(&["007", "123"])), ColumnType::String);
        assert_eq!(infer(&raw(&["1", "NaN"])), ColumnType::String);
        assert_eq!(infer(&raw(&["0", "10"])), ColumnType::Int);
        // Typed text stays text even when it looks like a number.
        assert_eq!(infer(&[Cell::Text("410100".into())]), ColumnType::String);
        assert_eq!(infer(&[Cell::Int(1), Cell::Float(0.5)]), ColumnType::Float);
    }

    #[test]
    fn forced_types_convert_or_name_the_bad_row() {
        let cells = raw(&["12", "", "12.0"]);
        let a = build(&cells, ColumnType::Int).unwrap();
        let a = a.as_primitive::<Int64Type>();
        assert_eq!((a.value(0), a.is_null(1), a.value(2)), (12, true, 12));
        let bad = build(&raw(&["1", "1.5"]), ColumnType::Int).unwrap_err();
        assert_eq!((bad.row, bad.value.as_str()), (1, "1.5"));
        let s = build(&raw(&["007"]), ColumnType::String).unwrap();
        assert_eq!(s.as_string::<i32>().value(0), "007");
        let b = build(&raw(&["yes", "0"]), ColumnType::Bool).unwrap();
        assert_eq!(
            (b.as_boolean().value(0), b.as_boolean().value(1)),
            (true, false)
        );
    }

    #[test]
    fn filter_compares_booleans_numbers_and_text() {
        assert!(cells_equal(&Cell::Bool(true), &Cell::Raw("True".into())));
        assert!(cells_equal(
            &Cell::Int(410_100),
            &Cell::Text("410100".into())
        ));
        assert!(cells_equal(&Cell::Float(2.0), &Cell::Int(2)));
        assert!(!cells_equal(
            &Cell::Text("a".into()),
            &Cell::Text("b".into())
        ));
        assert!(!cells_equal(&Cell::Null, &Cell::Text("b".into())));
    }

    #[test]
    fn encoding_labels_from_cpg_files() {
        for label in ["GBK", "936", "CP936", " cp936\n", "gb2312"] {
            assert_eq!(encoding_for_label(label), Some(encoding_rs::GBK), "{label}");
        }
        assert_eq!(encoding_for_label("UTF-8"), Some(encoding_rs::UTF_8));
        assert_eq!(encoding_for_label("1252"), Some(encoding_rs::WINDOWS_1252));
        assert_eq!(
            encoding_for_label("latin1"),
            Some(encoding_rs::WINDOWS_1252)
        );
        assert_eq!(encoding_for_label("klingon"), None);
    }

    #[test]
    fn unit_ids_are_checked_and_sorted() {
        let rows = vec!["f:2".to_owned(), "f:3".to_owned(), "f:4".to_owned()];
        let mut t = CellTable::new(
            Path::new("f"),
            vec![
                ("code".into(), raw(&["b", "a", "c"])),
                ("x".into(), raw(&["1", "2", "3"])),
            ],
            rows.clone(),
        )
        .unwrap();
        t.set_unit_id("code").unwrap();
        assert_eq!(t.names(), ["unit_id", "x"]);
        assert_eq!(t.rows, ["f:3", "f:2", "f:4"]);
        let mut dup = CellTable::new(
            Path::new("f"),
            vec![("code".into(), raw(&["b", "a", "b"]))],
            rows,
        )
        .unwrap();
        let err = dup.set_unit_id("code").unwrap_err();
        assert!(
            err.message.contains("`b`") && err.message.contains("f:2 and f:4"),
            "{}",
            err.message
        );
    }
}
