//! Tables out to people and other tools: CSV, JSON rows and aligned text. Floats are written in
//! Rust's shortest round-trip form, so the same table always gives the same text.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;

/// A typed cell, as exported.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Int(i128),
    Float(f64),
    Bool(bool),
    Bytes(Vec<u8>),
}

impl Cell {
    /// The cell as CSV/text: nulls empty, bytes as hex.
    pub fn to_text(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Text(s) => s.clone(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => f.to_string(),
            Cell::Bool(b) => b.to_string(),
            Cell::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            Cell::Null => serde_json::Value::Null,
            Cell::Text(s) => serde_json::Value::String(s.clone()),
            Cell::Int(i) => i64::try_from(*i).map_or_else(
                |_| serde_json::Value::String(i.to_string()),
                serde_json::Value::from,
            ),
            Cell::Float(f) => serde_json::Number::from_f64(*f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Cell::Bool(b) => serde_json::Value::Bool(*b),
            Cell::Bytes(_) => serde_json::Value::String(self.to_text()),
        }
    }
}

/// The cell at (`row`, `column`).
pub fn cell(array: &dyn Array, row: usize) -> Cell {
    if array.is_null(row) {
        return Cell::Null;
    }
    macro_rules! int {
        ($t:ty) => {
            Cell::Int(i128::from(array.as_primitive::<$t>().value(row)))
        };
    }
    match array.data_type() {
        DataType::Utf8 => Cell::Text(array.as_string::<i32>().value(row).to_owned()),
        DataType::LargeUtf8 => Cell::Text(array.as_string::<i64>().value(row).to_owned()),
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => int!(UInt64Type),
        DataType::Float32 => Cell::Float(f64::from(array.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => Cell::Float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Boolean => Cell::Bool(array.as_boolean().value(row)),
        DataType::Binary => Cell::Bytes(array.as_binary::<i32>().value(row).to_vec()),
        DataType::LargeBinary => Cell::Bytes(array.as_binary::<i64>().value(row).to_vec()),
        other => Cell::Text(format!("<{other}>")),
    }
}

/// CSV with a header row.
pub fn to_csv(batch: &RecordBatch) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let schema = batch.schema();
    w.write_record(schema.fields().iter().map(|f| f.name().as_str()))
        .expect("writing to memory cannot fail");
    for row in 0..batch.num_rows() {
        w.write_record(
            batch
                .columns()
                .iter()
                .map(|c| cell(c.as_ref(), row).to_text()),
        )
        .expect("writing to memory cannot fail");
    }
    w.into_inner().expect("writing to memory cannot fail")
}

/// An array of row objects.
pub fn to_json_rows(batch: &RecordBatch, limit: usize) -> serde_json::Value {
    let schema = batch.schema();
    let rows = (0..batch.num_rows().min(limit))
        .map(|row| {
            let mut obj = serde_json::Map::new();
            for (f, c) in schema.fields().iter().zip(batch.columns()) {
                obj.insert(f.name().clone(), cell(c.as_ref(), row).to_json());
            }
            serde_json::Value::Object(obj)
        })
        .collect();
    serde_json::Value::Array(rows)
}

/// Aligned text for a terminal; long cells are shortened.
pub fn to_text_table(batch: &RecordBatch, limit: usize) -> String {
    let schema = batch.schema();
    let shown = batch.num_rows().min(limit);
    let mut rows: Vec<Vec<String>> =
        vec![schema.fields().iter().map(|f| f.name().clone()).collect()];
    for row in 0..shown {
        rows.push(
            batch
                .columns()
                .iter()
                .map(|c| {
                    let t = match cell(c.as_ref(), row) {
                        Cell::Bytes(b) => format!("<{} bytes>", b.len()),
                        Cell::Float(f) => format_float(f),
                        other => other.to_text(),
                    };
                    if t.chars().count() > 40 {
                        format!("{}…", t.chars().take(39).collect::<String>())
                    } else {
                        t
                    }
                })
                .collect(),
        );
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(
                &widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("  "),
            );
            out.push('\n');
        }
    }
    if batch.num_rows() > shown {
        out.push_str(&format!("… {} more rows\n", batch.num_rows() - shown));
    }
    out
}

fn format_float(f: f64) -> String {
    if f != 0.0 && (f.abs() >= 1e9 || f.abs() < 1e-4) {
        format!("{f:.6e}")
    } else {
        format!("{}", (f * 1e6).round() / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::TableBuilder;

    #[test]
    fn csv_and_json_keep_values() {
        let t = TableBuilder::new()
            .str("unit_id", &["a", "b,c"])
            .f64("x", vec![0.1, 2.0])
            .build()
            .unwrap();
        assert_eq!(
            String::from_utf8(to_csv(&t)).unwrap(),
            "unit_id,x\na,0.1\n\"b,c\",2\n"
        );
        assert_eq!(
            to_json_rows(&t, 1).to_string(),
            r#"[{"unit_id":"a","x":0.1}]"#
        );
        assert!(to_text_table(&t, 1).contains("… 1 more rows"));
    }
}
