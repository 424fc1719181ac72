//! Excel workbooks (`.xlsx`) into a [`CellTable`] through calamine: one sheet, its first
//! non-empty row as the header, every later non-empty row a data row.
//!
//! Numbers are stored as floats in XLSX, so whole numbers are read as integers (a year or a
//! code); text cells are untyped like CSV fields, so a sheet of numbers stored as text still
//! reads as numbers. Dates become their Excel serial number. Knows formats, not carbon.

use std::path::Path;

use calamine::{Data, Reader, Xlsx, open_workbook};

use crate::io::IoError;
use crate::io::cells::{Cell, CellTable, SheetColumn, column_letters};
use crate::io::yearbook::footnote_note;

fn cell(value: &Data) -> Result<Cell, String> {
    Ok(match value {
        Data::Empty => Cell::Null,
        Data::Int(v) => Cell::Int(*v),
        Data::Float(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Cell::Int(*v as i64),
        Data::Float(v) => Cell::Float(*v),
        Data::String(s) => Cell::raw(s.trim()),
        Data::Bool(b) => Cell::Bool(*b),
        Data::DateTime(d) => Cell::Float(d.as_f64()),
        Data::DateTimeIso(s) | Data::DurationIso(s) => Cell::Text(s.clone()),
        Data::Error(e) => return Err(format!("the cell holds the Excel error {e}")),
    })
}

/// Cells the sheet's rectangle may span beyond 16 per cell that holds a value.
const SPARSE_ALLOWANCE: u64 = 100_000;

/// Refuses a sheet whose values are scattered over a rectangle far larger than they fill:
/// calamine reserves the whole rectangle (from the first to the last value) at once, so one
/// stray value at XFD1048576 would ask for gigabytes. Memory stays bounded by the values the
/// file holds, not by the cell references it declares.
fn check_extent<R: std::io::Read + std::io::Seek>(
    workbook: &mut Xlsx<R>,
    sheet: &str,
    file: &str,
) -> Result<(), IoError> {
    let unreadable = |e: calamine::XlsxError| {
        IoError::data(format!("cannot read sheet `{sheet}` of {file}: {e}"))
    };
    let mut cells = workbook.worksheet_cells_reader(sheet).map_err(unreadable)?;
    let (mut first, mut last, mut values) = ((u32::MAX, u32::MAX), (0, 0), 0u64);
    while let Some(cell) = cells.next_cell().map_err(unreadable)? {
        if matches!(cell.get_value(), calamine::DataRef::Empty) {
            continue;
        }
        let (row, col) = cell.get_position();
        first = (first.0.min(row), first.1.min(col));
        last = (last.0.max(row), last.1.max(col));
        values += 1;
    }
    if values == 0 {
        return Ok(());
    }
    let span = u64::from(last.0 - first.0 + 1) * u64::from(last.1 - first.1 + 1);
    if span > SPARSE_ALLOWANCE + 16 * values {
        return Err(IoError::data(format!(
            "{file}: sheet `{sheet}` has {values} values spread over {}{}:{}{} ({span} cells)",
            column_letters(first.1),
            first.0 + 1,
            column_letters(last.1),
            last.0 + 1
        ))
        .with_hint("delete the stray values far from the table (Ctrl+End in Excel shows the last one), or copy the table to a new sheet"));
    }
    Ok(())
}

/// Reads `sheet` (the first sheet when `None`) of the workbook at `path`; `header_row` (1-based,
/// as Excel numbers rows) marks the header below a title.
pub fn read(
    path: &Path,
    shown: &Path,
    sheet: Option<&str>,
    header_row: Option<u32>,
) -> Result<CellTable, IoError> {
    let file = shown.display();
    let mut workbook: Xlsx<_> = open_workbook(path).map_err(|e| {
        IoError::data(format!("cannot open {file} as an XLSX workbook: {e}"))
            .with_hint("only .xlsx is read; save .xls files as .xlsx")
    })?;
    let names = workbook.sheet_names();
    let sheet = match sheet {
        Some(s) => {
            if !names.iter().any(|n| n == s) {
                let mut err = IoError::data(format!("{file} has no sheet `{s}`"));
                err.hint = Some(
                    match crate::suggest::did_you_mean(s, names.iter().map(String::as_str)) {
                        Some(m) => format!("did you mean `{m}`? (sheets: {})", names.join(", ")),
                        None => format!("the sheets are: {}", names.join(", ")),
                    },
                );
                return Err(err);
            }
            s.to_owned()
        }
        None => names
            .first()
            .cloned()
            .ok_or_else(|| IoError::data(format!("{file} has no sheets")))?,
    };
    check_extent(&mut workbook, &sheet, &file.to_string())?;
    let range = workbook
        .worksheet_range(&sheet)
        .map_err(|e| IoError::data(format!("cannot read sheet `{sheet}` of {file}: {e}")))?;
    let place = format!("{file}: sheet `{sheet}`");
    let mut table = table_of(&range, shown, &place, header_row)?;
    let (_, col0) = range.start().unwrap_or((0, 0));
    for c in table.sheet_columns.values_mut() {
        if let SheetColumn::Fixed(i) = c {
            *i += col0;
        }
    }
    Ok(table)
}

/// What the rows of a sheet are: skipped (above the header), the header, data, or, after
/// the first empty row below a `header_row`, ignored (footnotes).
#[derive(Default)]
struct SheetRows {
    header: Option<Vec<String>>,
    columns: Vec<Vec<Cell>>,
    labels: Vec<String>,
    numbers: Vec<u32>,
    /// The first empty row below the header, when `header_row` is given.
    end: Option<u32>,
    ignored: Vec<(u32, String)>,
}

impl SheetRows {
    fn set_header(&mut self, values: &[Data]) {
        self.header = Some(
            values
                .iter()
                .map(|v| v.to_string().trim().to_owned())
                .collect(),
        );
        self.columns = vec![Vec::new(); values.len()];
    }

    /// Adds a data row, Excel row `excel_row` of a sheet whose first column is `col0`; an
    /// error names the cell that is not a value.
    fn push_data(
        &mut self,
        values: &[Data],
        label: String,
        excel_row: u32,
        col0: u32,
    ) -> Result<(), IoError> {
        let names = self.header.as_ref().expect("data rows follow the header");
        for (j, (column, value)) in self.columns.iter_mut().zip(values).enumerate() {
            let c = cell(value).map_err(|e| {
                let col = column_letters(
                    col0 + u32::try_from(j).expect("sheets have fewer than 2^32 columns"),
                );
                IoError::data(format!(
                    "{label}, cell {col}{excel_row}: column `{}`: {e}",
                    names[j]
                ))
            })?;
            column.push(c);
        }
        self.labels.push(label);
        self.numbers.push(excel_row);
        Ok(())
    }
}

fn row_text(values: &[Data]) -> String {
    values
        .iter()
        .filter(|v| !matches!(v, Data::Empty))
        .map(|v| v.to_string().trim().to_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The table of a sheet: without `header_row`, its first non-empty row is the header and
/// blank rows are skipped; with it, rows above it are titles and the table ends at the first
/// empty row below it (later rows are footnotes, noted once).
fn table_of(
    range: &calamine::Range<Data>,
    shown: &Path,
    place: &str,
    header_row: Option<u32>,
) -> Result<CellTable, IoError> {
    let (row0, col0) = range.start().unwrap_or((0, 0));
    let mut r = SheetRows::default();
    for (i, values) in range.rows().enumerate() {
        let excel_row = row0 + u32::try_from(i).expect("sheets have fewer than 2^32 rows") + 1;
        let empty = values.iter().all(|v| matches!(v, Data::Empty));
        if header_row.is_some_and(|h| excel_row < h) {
            continue;
        }
        if r.end.is_some() {
            if !empty {
                r.ignored.push((excel_row, row_text(values)));
            }
            continue;
        }
        if empty {
            if header_row.is_some() && r.header.is_some() {
                r.end = Some(excel_row);
            }
            continue;
        }
        if header_row.is_some_and(|h| excel_row > h) && r.header.is_none() {
            break; // The header row was empty; reported below.
        }
        if r.header.is_none() {
            r.set_header(values);
        } else {
            r.push_data(values, format!("{place} row {excel_row}"), excel_row, col0)?;
        }
    }
    let header = r.header.ok_or_else(|| match header_row {
        Some(h) => IoError::data(format!("{place}: the header row {h} is empty"))
            .with_hint("`header_row` counts rows from 1, as Excel numbers them"),
        None => IoError::data(format!("{place} is empty")),
    })?;
    if r.labels.is_empty() {
        return Err(IoError::data(format!("{place} has a header but no rows")));
    }
    let mut table = CellTable::new(shown, header.into_iter().zip(r.columns).collect(), r.labels)?;
    table.sheet_rows = r.numbers;
    if let Some(end) = r.end {
        table.notes.extend(footnote_note(place, end, &r.ignored));
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stray_value_far_from_the_table_is_refused_before_reserving_its_rectangle() {
        // A two-row table plus one value at XFD1048576, the last cell Excel allows: the
        // rectangle from A1 is 16384 × 1048576 cells, which calamine would reserve at once.
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus/xlsx");
        let err = read(
            &corpus.join("cell_ref_huge.xlsx"),
            Path::new("t.xlsx"),
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "t.xlsx: sheet `Sheet1` has 5 values spread over A1:XFD1048576 (17179869184 cells)"
        );
        assert!(err.hint.unwrap().contains("stray values"));
    }

    #[test]
    fn column_letters_follow_excel() {
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(25), "Z");
        assert_eq!(column_letters(26), "AA");
        assert_eq!(column_letters(27), "AB");
        assert_eq!(column_letters(701), "ZZ");
        assert_eq!(column_letters(702), "AAA");
    }
}
