//! A minimal, deterministic XLSX writer for the demonstration yearbooks: one or more sheets of
//! text and number cells (inline strings, no styles), an optional merged title row, zipped
//! with DEFLATE and a fixed timestamp so the same cells always give the same bytes.
//!
//! The parts are the five an Office Open XML workbook needs (ECMA-376 Part 1, §12.2 and
//! Part 2, the Open Packaging Conventions): `[Content_Types].xml`, `_rels/.rels`,
//! `xl/workbook.xml`, `xl/_rels/workbook.xml.rels` and `xl/worksheets/sheetN.xml`; the zip
//! container follows PKWARE's APPNOTE (local headers, central directory, end record).

use std::fmt::Write as _;

use crate::io::cells::column_letters;

/// One cell as the writer stores it.
#[derive(Debug, Clone, PartialEq)]
pub enum XlsxCell {
    Empty,
    Text(String),
    /// A number, written exactly as given (`13064.3`), so it reads back as that decimal.
    Number(String),
}

/// One sheet: its name, rows of cells, and whether row 1 is a title merged across the columns.
#[derive(Debug, Clone)]
pub struct XlsxSheet {
    pub name: String,
    pub rows: Vec<Vec<XlsxCell>>,
    pub merge_title: bool,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn sheet_xml(sheet: &XlsxSheet) -> String {
    let mut x = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
    );
    for (r, row) in sheet.rows.iter().enumerate() {
        let n = r + 1;
        write!(x, r#"<row r="{n}">"#).expect("writing to a String");
        for (c, cell) in row.iter().enumerate() {
            let at = format!(
                "{}{n}",
                column_letters(u32::try_from(c).expect("fewer than 2^32 columns"))
            );
            match cell {
                XlsxCell::Empty => {}
                XlsxCell::Text(t) => write!(
                    x,
                    r#"<c r="{at}" t="inlineStr"><is><t>{}</t></is></c>"#,
                    escape(t)
                )
                .expect("writing to a String"),
                XlsxCell::Number(v) => {
                    write!(x, r#"<c r="{at}"><v>{v}</v></c>"#).expect("writing to a String")
                }
            }
        }
        x.push_str("</row>");
    }
    x.push_str("</sheetData>");
    let width = sheet.rows.iter().map(Vec::len).max().unwrap_or(1);
    if sheet.merge_title && width > 1 {
        let last = column_letters(u32::try_from(width - 1).expect("fewer than 2^32 columns"));
        write!(
            x,
            r#"<mergeCells count="1"><mergeCell ref="A1:{last}1"/></mergeCells>"#
        )
        .expect("writing to a String");
    }
    x.push_str("</worksheet>");
    x
}

/// The parts of a workbook, by path in the zip.
fn parts(sheets: &[XlsxSheet]) -> Vec<(String, Vec<u8>)> {
    const MAIN: &str = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
    const REL: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
    const PKG: &str = "http://schemas.openxmlformats.org/package/2006/relationships";
    const HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#;
    let mut types = format!(
        r#"{HEAD}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>"#
    );
    let mut book = format!(r#"{HEAD}<workbook xmlns="{MAIN}" xmlns:r="{REL}"><sheets>"#);
    let mut rels = format!(r#"{HEAD}<Relationships xmlns="{PKG}">"#);
    let mut out = Vec::new();
    for (i, sheet) in sheets.iter().enumerate() {
        let n = i + 1;
        write!(types, r#"<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>"#).expect("writing to a String");
        write!(
            book,
            r#"<sheet name="{}" sheetId="{n}" r:id="rId{n}"/>"#,
            escape(&sheet.name)
        )
        .expect("writing to a String");
        write!(
            rels,
            r#"<Relationship Id="rId{n}" Type="{REL}/worksheet" Target="worksheets/sheet{n}.xml"/>"#
        )
        .expect("writing to a String");
        out.push((
            format!("xl/worksheets/sheet{n}.xml"),
            sheet_xml(sheet).into_bytes(),
        ));
    }
    types.push_str("</Types>");
    book.push_str("</sheets></workbook>");
    rels.push_str("</Relationships>");
    let root = format!(
        r#"{HEAD}<Relationships xmlns="{PKG}"><Relationship Id="rId1" Type="{REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>"#
    );
    let mut all = vec![
        ("[Content_Types].xml".to_owned(), types.into_bytes()),
        ("_rels/.rels".to_owned(), root.into_bytes()),
        ("xl/workbook.xml".to_owned(), book.into_bytes()),
        ("xl/_rels/workbook.xml.rels".to_owned(), rels.into_bytes()),
    ];
    all.extend(out);
    all
}

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), as zip entries carry it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFF_u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn u16le(v: usize) -> [u8; 2] {
    u16::try_from(v)
        .expect("zip fields of the demo workbook fit in 16 bits")
        .to_le_bytes()
}

fn u32le(v: usize) -> [u8; 4] {
    u32::try_from(v)
        .expect("zip fields of the demo workbook fit in 32 bits")
        .to_le_bytes()
}

/// Zips `(path, bytes)` entries with DEFLATE, dated 1980-01-01 00:00 (the zip epoch).
fn zip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    const DATE_1980_01_01: [u8; 2] = [0x21, 0x00];
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let packed = miniz_oxide::deflate::compress_to_vec(data, 9);
        let crc = crc32(data).to_le_bytes();
        // Version 2.0, no flags, method 8 (DEFLATE), time 00:00.
        let common = [
            &[20, 0][..],
            &[0, 0],
            &[8, 0],
            &[0, 0],
            &DATE_1980_01_01,
            &crc,
            &u32le(packed.len()),
            &u32le(data.len()),
            &u16le(name.len()),
            &[0, 0],
        ]
        .concat();
        let offset = out.len();
        out.extend_from_slice(&0x0403_4b50_u32.to_le_bytes());
        out.extend_from_slice(&common);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&packed);
        central.extend_from_slice(&0x0201_4b50_u32.to_le_bytes());
        central.extend_from_slice(&[20, 0]);
        central.extend_from_slice(&common);
        // Comment length, disk, internal and external attributes, then the local offset.
        central.extend_from_slice(&[0; 2 + 2 + 2 + 4]);
        central.extend_from_slice(&u32le(offset));
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len();
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50_u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&u16le(entries.len()));
    out.extend_from_slice(&u16le(entries.len()));
    out.extend_from_slice(&u32le(central.len()));
    out.extend_from_slice(&u32le(cd_offset));
    out.extend_from_slice(&[0, 0]);
    out
}

/// The bytes of a workbook holding `sheets`, in order.
#[must_use]
pub fn workbook(sheets: &[XlsxSheet]) -> Vec<u8> {
    zip(&parts(sheets))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        // The CRC-32 check value of "123456789" is 0xCBF43926 (Koopman's CRC catalogue).
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn written_workbooks_read_back_through_calamine() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.xlsx");
        let sheet = XlsxSheet {
            name: "能源".into(),
            rows: vec![
                vec![XlsxCell::Text("表 1 <标题> & 注".into())],
                vec![XlsxCell::Text("县名".into()), XlsxCell::Text("原煤".into())],
                vec![
                    XlsxCell::Text("叶　县".into()),
                    XlsxCell::Number("13064.3".into()),
                ],
                vec![],
                vec![XlsxCell::Text("注：演示".into()), XlsxCell::Empty],
            ],
            merge_title: true,
        };
        let bytes = workbook(std::slice::from_ref(&sheet));
        assert_eq!(bytes, workbook(&[sheet]), "deterministic");
        std::fs::write(&path, bytes).unwrap();
        let t = crate::io::xlsx::read(&path, Path::new("w.xlsx"), Some("能源"), Some(2)).unwrap();
        assert_eq!(t.names(), ["县名", "原煤"]);
        assert_eq!(t.rows, ["w.xlsx: sheet `能源` row 3"]);
        assert_eq!(t.cell_ref("原煤", 0).as_deref(), Some("B3"));
        assert_eq!(
            t.notes,
            [
                "w.xlsx: sheet `能源`: the table ends at the empty row 4; 1 row(s) below it are ignored, the first (row 5) reads `注：演示`"
            ]
        );
    }
}
