//! Excel workbooks (`.xlsx`) into a [`CellTable`] through calamine: one sheet, its first
//! non-empty row as the header, every later non-empty row a data row.
//!
//! Numbers are stored as floats in XLSX, so whole numbers are read as integers (a year or a
//! code); text cells are untyped like CSV fields, so a sheet of numbers stored as text still
//! reads as numbers. Dates become their Excel serial number. Knows formats, not carbon.

use std::path::Path;

use calamine::{Data, Reader, Xlsx, open_workbook};

use crate::engine::stage::StageError;
use crate::io::cells::{Cell, CellTable};

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

/// Column letters for a 0-based column index (0 → A, 26 → AA).
fn column_letters(mut col: u32) -> String {
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

/// Reads `sheet` (the first sheet when `None`) of the workbook at `path`.
pub fn read(path: &Path, shown: &Path, sheet: Option<&str>) -> Result<CellTable, StageError> {
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
    let (row0, col0) = range.start().unwrap_or((0, 0));
    let mut header: Option<Vec<String>> = None;
    let mut columns: Vec<Vec<Cell>> = Vec::new();
    let mut rows = Vec::new();
    for (i, values) in range.rows().enumerate() {
        if values.iter().all(|v| matches!(v, Data::Empty)) {
            continue;
        }
        let excel_row = row0 as usize + i + 1;
        let label = format!("{file}: sheet `{sheet}` row {excel_row}");
        let Some(names) = &header else {
            header = Some(
                values
                    .iter()
                    .map(|v| v.to_string().trim().to_owned())
                    .collect(),
            );
            columns = vec![Vec::new(); values.len()];
            continue;
        };
        for (j, (column, value)) in columns.iter_mut().zip(values).enumerate() {
            let c = cell(value).map_err(|e| {
                let col = column_letters(
                    col0 + u32::try_from(j).expect("sheets have fewer than 2^32 columns"),
                );
                StageError::data(format!(
                    "{label}: column `{}` (cell {col}{excel_row}): {e}",
                    names[j]
                ))
            })?;
            column.push(c);
        }
        rows.push(label);
    }
    let header =
        header.ok_or_else(|| StageError::data(format!("{file}: sheet `{sheet}` is empty")))?;
    if rows.is_empty() {
        return Err(StageError::data(format!(
            "{file}: sheet `{sheet}` has a header but no rows"
        )));
    }
    CellTable::new(shown, header.into_iter().zip(columns).collect(), rows)
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
