//! Excel workbooks (`.xlsx`) into a [`CellTable`] through calamine: one sheet, its first
//! non-empty row as the header, every later non-empty row a data row.
//!
//! Numbers are stored as floats in XLSX, so whole numbers are read as integers (a year or a
//! code); text cells are untyped like CSV fields, so a sheet of numbers stored as text still
//! reads as numbers. Dates become their Excel serial number. Knows formats, not carbon.

use std::path::Path;

use calamine::{Data, Reader, Xlsx, open_workbook};

use crate::engine::stage::StageError;
use crate::io::cells::{Cell, CellTable, SheetColumn, column_letters};
use crate::io::yearbook::footnote_note;

fn cell(value: &Data) -> Result<Cell, String> {
    Ok(match value {
        Data::Empty => Cell::Null,
        Data::Int(v) => Cell::Int(*v),
        #[allow(clippy::cast_possible_truncation)]
        Data::Float(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Cell::Int(*v as i64),
        Data::Float(v) => Cell::Float(*v),
        Data::String(s) => Cell::raw(s.trim()),
        Data::Bool(b) => Cell::Bool(*b),
        Data::DateTime(d) => Cell::Float(d.as_f64()),
        Data::DateTimeIso(s) | Data::DurationIso(s) => Cell::Text(s.clone()),
        Data::Error(e) => return Err(format!("the cell holds the Excel error {e}")),
    })
}

/// Reads `sheet` (the first sheet when `None`) of the workbook at `path`; `header_row` (1-based,
/// as Excel numbers rows) marks the header below a title.
pub fn read(
    path: &Path,
    shown: &Path,
    sheet: Option<&str>,
    header_row: Option<u32>,
) -> Result<CellTable, StageError> {
    let file = shown.display();
    let mut workbook: Xlsx<_> = open_workbook(path).map_err(|e| {
        StageError::data(format!("cannot open {file} as an XLSX workbook: {e}"))
            .with_hint("only .xlsx is read; save .xls files as .xlsx")
    })?;
    let names = workbook.sheet_names();
    let sheet = match sheet {
        Some(s) => {
            if !names.iter().any(|n| n == s) {
                let mut err = StageError::data(format!("{file} has no sheet `{s}`"));
                err.hint = Some(
                    match crate::engine::suggest::did_you_mean(s, names.iter().map(String::as_str))
                    {
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
            .ok_or_else(|| StageError::data(format!("{file} has no sheets")))?,
    };
    let range = workbook
        .worksheet_range(&sheet)
        .map_err(|e| StageError::data(format!("cannot read sheet `{sheet}` of {file}: {e}")))?;
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
struct SheetRows {
    header: Option<Vec<String>>,
    columns: Vec<Vec<Cell>>,
    labels: Vec<String>,
    numbers: Vec<u32>,
    /// The first empty row below the header, when `header_row` is given.
    end: Option<u32>,
    ignored: Vec<(u32, String)>,
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
) -> Result<CellTable, StageError> {
    let (row0, col0) = range.start().unwrap_or((0, 0));
    let mut r = SheetRows {
        header: None,
        columns: Vec::new(),
        labels: Vec::new(),
        numbers: Vec::new(),
        end: None,
        ignored: Vec::new(),
    };
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
        let label = format!("{place} row {excel_row}");
        let Some(names) = &r.header else {
            r.header = Some(
                values
                    .iter()
                    .map(|v| v.to_string().trim().to_owned())
                    .collect(),
            );
            r.columns = vec![Vec::new(); values.len()];
            continue;
        };
        for (j, (column, value)) in r.columns.iter_mut().zip(values).enumerate() {
            let c = cell(value).map_err(|e| {
                let col = column_letters(
                    col0 + u32::try_from(j).expect("sheets have fewer than 2^32 columns"),
                );
                StageError::data(format!(
                    "{label}, cell {col}{excel_row}: column `{}`: {e}",
                    names[j]
                ))
            })?;
            column.push(c);
        }
        r.labels.push(label);
        r.numbers.push(excel_row);
    }
    let header = r.header.ok_or_else(|| match header_row {
        Some(h) => StageError::data(format!("{place}: the header row {h} is empty"))
            .with_hint("`header_row` counts rows from 1, as Excel numbers them"),
        None => StageError::data(format!("{place} is empty")),
    })?;
    if r.labels.is_empty() {
        return Err(StageError::data(format!(
            "{place} has a header but no rows"
        )));
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
    fn column_letters_follow_excel() {
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(25), "Z");
        assert_eq!(column_letters(26), "AA");
        assert_eq!(column_letters(27), "AB");
        assert_eq!(column_letters(701), "ZZ");
        assert_eq!(column_letters(702), "AAA");
    }
}
