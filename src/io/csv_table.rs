//! CSV files with a header row into a [`CellTable`]: every field is untyped text (column types
//! are inferred later, see [`crate::io::cells::infer`]), empty fields are nulls, and each row
//! remembers its line in the file so errors read `file:line: ...`.
//!
//! The format: comma-separated, `"`-quoted, one header row, no comment lines; fields are
//! trimmed of surrounding blanks; a UTF-8 byte-order mark is skipped. Files in another
//! encoding (e.g. GBK yearbook exports) are decoded first with `encoding_rs`.

use std::path::Path;

use crate::io::IoError;
use crate::io::cells::{Cell, CellTable};
use crate::io::yearbook::footnote_note;

/// Reads the CSV file at `path`. `shown` is the path as the user wrote it (for messages);
/// `encoding` is the file's text encoding (UTF-8 when `None`); `header_row` (1-based line)
/// marks the header below title lines.
pub fn read(
    path: &Path,
    shown: &Path,
    encoding: Option<&'static encoding_rs::Encoding>,
    header_row: Option<u32>,
) -> Result<CellTable, IoError> {
    let bytes = std::fs::read(path)
        .map_err(|e| IoError::data(format!("cannot read {}: {e}", shown.display())))?;
    let text = decode(&bytes, shown, encoding)?;
    parse_rows(&text, shown, true, header_row)
}

/// Decodes a whole file: strict UTF-8 by default, else the given encoding.
pub fn decode(
    bytes: &[u8],
    shown: &Path,
    encoding: Option<&'static encoding_rs::Encoding>,
) -> Result<String, IoError> {
    match encoding.filter(|&e| e != encoding_rs::UTF_8) {
        None => {
            let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            String::from_utf8(bytes.to_vec()).map_err(|e| {
                let line = 1 + bytes[..e.utf8_error().valid_up_to()]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                IoError::data(format!(
                    "{}:{line}: the file is not valid UTF-8",
                    shown.display()
                ))
                .with_hint("if it was saved in a Chinese code page, add `encoding: GBK`")
            })
        }
        Some(enc) => {
            let (text, _, had_errors) = enc.decode(bytes);
            if had_errors {
                return Err(IoError::data(format!(
                    "{}: the file is not valid {}",
                    shown.display(),
                    enc.name()
                ))
                .with_hint("check the `encoding:` parameter"));
            }
            Ok(text.into_owned())
        }
    }
}

/// The line a record starts on. The reader reports the position where it began looking for
/// the record, which is before any blank lines it then skipped.
fn record_line(text: &str, position: &csv::Position) -> u64 {
    let mut line = position.line();
    let skipped = text
        .as_bytes()
        .get(usize::try_from(position.byte()).unwrap_or(usize::MAX)..)
        .unwrap_or_default();
    for &b in skipped.iter().take_while(|&&b| b == b'\n' || b == b'\r') {
        line += u64::from(b == b'\n');
    }
    line
}

/// Parses CSV text (header row first); a file without data rows is an error.
pub fn parse(text: &str, shown: &Path) -> Result<CellTable, IoError> {
    parse_rows(text, shown, true, None)
}

/// Reads a UTF-8 CSV file that may have a header and no rows (e.g. a program's output, where
/// "nothing matched" is a result).
pub fn read_maybe_empty(path: &Path, shown: &Path) -> Result<CellTable, IoError> {
    let bytes = std::fs::read(path)
        .map_err(|e| IoError::data(format!("cannot read {}: {e}", shown.display())))?;
    parse_rows(&decode(&bytes, shown, None)?, shown, false, None)
}

/// One CSV record: its line, whether blank lines came before it, and its fields.
struct Record {
    line: u64,
    after_blank: bool,
    fields: Vec<String>,
}

fn records(text: &str, file: &str) -> Result<Vec<Record>, IoError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, csv::Position::line);
            IoError::data(format!("{file}:{line}: cannot read the row: {e}"))
        })?;
        let (line, after_blank) = record.position().map_or((0, false), |p| {
            let line = record_line(text, p);
            (line, line > p.line())
        });
        out.push(Record {
            line,
            after_blank,
            fields: record.iter().map(str::to_owned).collect(),
        });
    }
    Ok(out)
}

fn is_empty(fields: &[String]) -> bool {
    fields.iter().all(String::is_empty)
}

fn row_text(fields: &[String]) -> String {
    let kept: Vec<&str> = fields
        .iter()
        .map(String::as_str)
        .filter(|f| !f.is_empty())
        .collect();
    kept.join(" ")
}

/// A CSV file's records sorted out: the header, the data rows, and (when the table ended at an
/// empty line) that line with the non-empty rows ignored below it.
struct Split {
    header: Vec<String>,
    data: Vec<Record>,
    end: Option<(u32, Vec<(u32, String)>)>,
}

/// Splits the records into the header, the data rows and the rows ignored after the table's
/// end. Without `header_row` the first record is the header and blank rows are skipped; with
/// it, records above that line are titles and the table ends at the first empty row.
fn split_records(
    records: Vec<Record>,
    file: &str,
    header_row: Option<u32>,
) -> Result<Split, IoError> {
    let mut records = records.into_iter();
    let header = match header_row {
        None => records.next(),
        Some(h) => records
            .by_ref()
            .find(|r| r.line >= u64::from(h))
            .filter(|r| r.line == u64::from(h)),
    };
    let Some(header) = header.filter(|r| !is_empty(&r.fields)) else {
        return Err(match header_row {
            Some(h) => IoError::data(format!("{file}:{h}: the header row is empty"))
                .with_hint("`header_row` counts lines from 1, as a spreadsheet numbers rows"),
            None => IoError::data(format!("{file} is empty")),
        });
    };
    let mut data = Vec::new();
    let mut end: Option<(u32, Vec<(u32, String)>)> = None;
    let line32 = |l: u64| u32::try_from(l).unwrap_or(u32::MAX);
    for r in records {
        match &mut end {
            Some((_, ignored)) => {
                if !is_empty(&r.fields) {
                    ignored.push((line32(r.line), row_text(&r.fields)));
                }
            }
            None if header_row.is_some() && (r.after_blank || is_empty(&r.fields)) => {
                let (empty_line, ignored) = if is_empty(&r.fields) {
                    (r.line, Vec::new())
                } else {
                    (r.line - 1, vec![(line32(r.line), row_text(&r.fields))])
                };
                end = Some((line32(empty_line), ignored));
            }
            None if is_empty(&r.fields) => {} // Blank lines of a hand-edited file are not rows.
            None => data.push(r),
        }
    }
    Ok(Split {
        header: header.fields,
        data,
        end,
    })
}

fn parse_rows(
    text: &str,
    shown: &Path,
    require_rows: bool,
    header_row: Option<u32>,
) -> Result<CellTable, IoError> {
    let file = shown.display().to_string();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(IoError::data(format!("{file} is empty"))
            .with_hint("a CSV file needs a header row and at least one data row"));
    }
    let Split { header, data, end } = split_records(records(text, &file)?, &file, header_row)?;
    let mut columns: Vec<Vec<Cell>> = vec![Vec::new(); header.len()];
    let mut rows = Vec::new();
    let mut numbers = Vec::new();
    for record in data {
        let line = record.line;
        if record.fields.len() != header.len() {
            let detail = if record.fields.len() > header.len() {
                format!("the header has no name for field {}", header.len() + 1)
            } else {
                format!("column `{}` is missing", header[record.fields.len()])
            };
            return Err(IoError::data(format!(
                "{file}:{line}: the row has {} fields but the header has {}: {detail}",
                record.fields.len(),
                header.len()
            ))
            .with_hint(
                "every row needs one field per header column; quote fields that contain commas",
            ));
        }
        for (column, field) in columns.iter_mut().zip(&record.fields) {
            column.push(Cell::raw(field));
        }
        rows.push(format!("{file}:{line}"));
        numbers.push(u32::try_from(line).unwrap_or(u32::MAX));
    }
    if rows.is_empty() && require_rows {
        return Err(IoError::data(format!("{file} has a header but no rows"))
            .with_hint("add data rows below the header"));
    }
    let mut table = CellTable::new(shown, header.into_iter().zip(columns).collect(), rows)?;
    table.sheet_rows = numbers;
    if let Some((empty, ignored)) = end {
        table.notes.extend(footnote_note(&file, empty, &ignored));
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use arrow_schema::DataType;

    use super::*;

    #[test]
    fn reads_header_types_and_nulls() {
        let t = parse(
            "\u{feff}code,name,gdp,flag\n410100, Zhengzhou ,1.5,true\n410200,Kaifeng,,false\n",
            Path::new("a.csv"),
        )
        .unwrap();
        assert_eq!(t.rows, ["a.csv:2", "a.csv:3"]);
        let cols = t.build(&BTreeMap::new()).unwrap();
        let types: Vec<(&str, &DataType)> = cols
            .iter()
            .map(|(n, a)| (n.as_str(), a.data_type()))
            .collect();
        assert_eq!(
            types,
            [
                ("code", &DataType::Int64),
                ("name", &DataType::Utf8),
                ("gdp", &DataType::Float64),
                ("flag", &DataType::Boolean)
            ]
        );
        assert_eq!(
            cols[0].1.as_primitive::<Int64Type>().values(),
            &[410_100, 410_200]
        );
        assert_eq!(cols[1].1.as_string::<i32>().value(0), "Zhengzhou");
        let gdp = cols[2].1.as_primitive::<Float64Type>();
        assert!((gdp.value(0) - 1.5).abs() < f64::EPSILON && gdp.is_null(1));
    }

    #[test]
    fn ragged_row_names_line_and_column() {
        let err = parse("a,b,c\n1,2,3\n\n4,5\n", Path::new("d/x.csv")).unwrap_err();
        assert!(
            err.message
                .starts_with("d/x.csv:4: the row has 2 fields but the header has 3"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("column `c` is missing"),
            "{}",
            err.message
        );
    }

    #[test]
    fn line_numbers_count_quoted_newlines() {
        // The second record starts on line 2 and spans two lines, so the third is on line 4.
        let err = parse("a,b\n\"x\ny\",1\n1,2,3\n", Path::new("q.csv")).unwrap_err();
        assert!(err.message.starts_with("q.csv:4:"), "{}", err.message);
    }

    #[test]
    fn unnamed_columns_are_dropped_when_empty() {
        let t = parse("a,b,\n1,2,\n", Path::new("c.csv")).unwrap();
        assert_eq!(t.names(), ["a", "b"]);
        let err = parse("a,,c\n1,2,3\n", Path::new("c.csv")).unwrap_err();
        assert_eq!(err.message, "c.csv: column 2 has values but no name");
        let err = parse("a,a\n1,2\n", Path::new("c.csv")).unwrap_err();
        assert_eq!(err.message, "c.csv: column `a` appears twice in the header");
    }

    #[test]
    fn empty_and_header_only_files_are_errors() {
        assert!(
            parse(" \n", Path::new("e.csv"))
                .unwrap_err()
                .message
                .contains("e.csv is empty")
        );
        assert!(
            parse("a,b\n", Path::new("h.csv"))
                .unwrap_err()
                .message
                .contains("no rows")
        );
    }

    #[test]
    fn gbk_needs_the_encoding_and_then_decodes() {
        // "名称\n郑州\n" encoded in GBK (encoding_rs's encoder, checked against the GB 2312 table:
        // 名 = C3FB, 称 = B3C6, 郑 = D6A3, 州 = D6DD).
        let bytes = b"\xC3\xFB\xB3\xC6\n\xD6\xA3\xD6\xDD\n";
        let err = decode(bytes, Path::new("g.csv"), None).unwrap_err();
        assert!(
            err.message.contains("g.csv:1: the file is not valid UTF-8"),
            "{}",
            err.message
        );
        assert_eq!(
            decode(bytes, Path::new("g.csv"), Some(encoding_rs::GBK)).unwrap(),
            "名称\n郑州\n"
        );
    }
}
