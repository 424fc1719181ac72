//! Tables as statistical yearbooks print them: numbers with thousands separators and
//! full-width digits, footnotes below the table, wide layouts, units such as 万人 or percent,
//! and places named rather than coded. The edits `ingest` applies to such a table (`melt`,
//! `recode`, `scale`, unit ids from names) work on a [`CellTable`] before its columns are
//! typed, so every message can still name the cell. Knows formats, not carbon.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::io::IoError;
use crate::io::cells::{Cell, CellTable, Column, SheetColumn, UNIT_ID};
use crate::suggest::did_you_mean;

/// Folds the full-width forms (U+FF01–U+FF5E: `０`–`９`, `－`, `，`, `．`, `（`, …) to ASCII,
/// the ideographic and no-break spaces to a space, and the minus sign U+2212 to `-`.
pub fn fold_width(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| match c {
                '\u{FF01}'..='\u{FF5E}' => {
                    char::from_u32(u32::from(c) - 0xFF01 + 0x21).expect("U+0021–U+007E are chars")
                }
                '\u{3000}' | '\u{00A0}' => ' ',
                '\u{2212}' => '-',
                c => c,
            })
            .collect(),
    )
}

/// A number as a yearbook prints it, as plain ASCII text: width folded, surrounding blanks
/// trimmed and thousands separators removed (`5,758,213.8` → `5758213.8`). Separators are
/// removed only where they group the integer part in threes, so `1,2` stays as it is (and is
/// then not a number).
pub fn plain_number(s: &str) -> Cow<'_, str> {
    let folded = fold_width(s);
    let t = folded.trim();
    if !t.contains(',') {
        return match folded {
            Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
            Cow::Owned(o) => Cow::Owned(o.trim().to_owned()),
        };
    }
    let unsigned = t.strip_prefix(['-', '+']).unwrap_or(t);
    let integer = unsigned.split('.').next().unwrap_or_default();
    let mut groups = integer.split(',');
    let first_ok = groups
        .next()
        .is_some_and(|g| (1..=3).contains(&g.len()) && g.bytes().all(|b| b.is_ascii_digit()));
    let rest_ok = groups.all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()));
    let fraction_ok = !unsigned[integer.len()..].contains(',');
    if first_ok && rest_ok && fraction_ok {
        Cow::Owned(t.replace(',', ""))
    } else {
        Cow::Owned(t.to_owned())
    }
}

/// `k` when `factor` is exactly 10^k (|k| ≤ 12), so scaling can shift the decimal point.
fn power_of_ten(factor: f64) -> Option<i32> {
    (-12..=12).find(|&k| {
        let p = format!("1e{k}").parse::<f64>().expect("1e<k> parses");
        p == factor
    })
}

/// Multiplies the plain decimal `text` (`-12.5`, no exponent) by 10^k by moving the point, so
/// `494.7369` × 10^4 is exactly `4947369` and `62.82` × 10^-2 exactly `0.6282`: the number a
/// table in persons or fractions would have printed.
pub fn shift_decimal(text: &str, k: i32) -> Option<String> {
    let (sign, unsigned) = match text.strip_prefix('-') {
        Some(u) => ("-", u),
        None => ("", text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{int}{frac}");
    let point = i64::try_from(int.len()).ok()? + i64::from(k);
    let (mut int, frac) = if point <= 0 {
        let zeros = "0".repeat(usize::try_from(-point).ok()?);
        ("0".to_owned(), format!("{zeros}{digits}"))
    } else if usize::try_from(point).ok()? >= digits.len() {
        let zeros = "0".repeat(usize::try_from(point).ok()? - digits.len());
        (format!("{digits}{zeros}"), String::new())
    } else {
        let (i, f) = digits.split_at(usize::try_from(point).ok()?);
        (i.to_owned(), f.to_owned())
    };
    let trimmed = int.trim_start_matches('0');
    int = if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    };
    let frac = frac.trim_end_matches('0');
    Some(if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

/// A cell multiplied by `factor`, or `None` when it is not a number.
fn scaled(cell: &Cell, factor: f64) -> Option<Cell> {
    let text = match cell {
        Cell::Null => return Some(Cell::Null),
        Cell::Int(v) => v.to_string(),
        // Rust prints the shortest text that reads back as the same float.
        Cell::Float(v) => format!("{v}"),
        Cell::Raw(s) | Cell::Text(s) => plain_number(s).into_owned(),
        Cell::Bool(_) => return None,
    };
    let value = text.parse::<f64>().ok().filter(|v| v.is_finite())?;
    if let Some(shifted) = power_of_ten(factor).and_then(|k| shift_decimal(&text, k)) {
        return Some(Cell::Raw(shifted));
    }
    Some(Cell::Float(value * factor))
}

/// A name as compared with unit names: width folded, with every blank removed (yearbooks pad
/// two-character names to the width of three, `叶　县`).
pub fn normal_name(s: &str) -> String {
    fold_width(s).split_whitespace().collect()
}

/// The warning about rows after the table's first empty row (footnotes such as `注：…`).
pub fn footnote_note(place: &str, empty_row: u32, ignored: &[(u32, String)]) -> Option<String> {
    let (row, text) = ignored.first()?;
    Some(format!(
        "{place}: the table ends at the empty row {empty_row}; {} row(s) below it are ignored, the first (row {row}) reads `{text}`",
        ignored.len()
    ))
}

/// How `unit_names` matches a table's names to units.
#[derive(Debug, Clone)]
pub struct NameMatch<'a> {
    /// The table's column of names.
    pub column: &'a str,
    /// The units' `(unit_id, name)` pairs.
    pub units: Vec<(String, String)>,
    /// Where the units came from, for messages (`units` column `name`).
    pub units_label: String,
    /// Table name → unit id, for names that differ from the units' own.
    pub aliases: &'a BTreeMap<String, String>,
}

impl NameMatch<'_> {
    /// Normalised name → the ids of the units so named, with aliases (normalised too) first.
    fn index(&self) -> Result<BTreeMap<String, Vec<String>>, IoError> {
        let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, name) in &self.units {
            by_name
                .entry(normal_name(name))
                .or_default()
                .push(id.clone());
        }
        for (alias, id) in self.aliases {
            if !self.units.iter().any(|(u, _)| u == id) {
                return Err(IoError::data(format!(
                    "`unit_names: aliases: {alias}: \"{id}\"`: no unit has the id `{id}` ({})",
                    self.units_label
                ))
                .with_hint("an alias maps a name in the table to a unit id of the `units` input"));
            }
            by_name.insert(normal_name(alias), vec![id.clone()]);
        }
        Ok(by_name)
    }
}

impl CellTable {
    /// Replaces whole cells equal to one of `na_values` (after trimming) by nulls. Only untyped
    /// text (CSV fields, XLSX text cells) is looked at.
    pub fn null_na_values(&mut self, na_values: &[String]) {
        for (_, column) in &mut self.columns {
            if let Column::Cells(cells) = column {
                for cell in cells.iter_mut() {
                    if let Cell::Raw(s) = cell
                        && na_values.iter().any(|na| na.trim() == fold_width(s).trim())
                    {
                        *cell = Cell::Null;
                    }
                }
            }
        }
    }

    /// Turns a wide table into a long one: each row becomes one row per column not in
    /// `id_columns`, holding `id_columns`, the column's name under `names_to` and its cell
    /// under `values_to`.
    pub fn melt(
        &mut self,
        id_columns: &[String],
        names_to: &str,
        values_to: &str,
    ) -> Result<(), IoError> {
        let ids: Vec<usize> = id_columns
            .iter()
            .map(|c| self.position(c))
            .collect::<Result<_, _>>()?;
        for new in [names_to, values_to] {
            if id_columns.iter().any(|c| c == new) || names_to == values_to {
                return Err(IoError::data(format!(
                    "`melt`: `{new}` is used twice among `id_columns`, `names_to` and `values_to`"
                ))
                .with_hint("give the new name and value columns names of their own"));
            }
        }
        let value_columns: Vec<usize> = (0..self.columns.len())
            .filter(|i| !ids.contains(i))
            .collect();
        if value_columns.is_empty() || self.geometry.is_some() {
            return Err(IoError::data(format!(
                "{}: `melt` needs a table without geometry and with columns besides `id_columns`",
                self.source
            ))
            .with_hint("list in `id_columns` only the columns that identify a row"));
        }
        let mut cells: Vec<Vec<Cell>> = Vec::with_capacity(self.columns.len());
        for (name, column) in &self.columns {
            cells.push(column.cells(&self.source, name)?.into_owned());
        }
        let n = self.num_rows();
        let mut order = Vec::with_capacity(n * value_columns.len());
        let mut names = Vec::with_capacity(order.capacity());
        let mut values = Vec::with_capacity(order.capacity());
        let mut places = Vec::with_capacity(order.capacity());
        for row in 0..n {
            for &v in &value_columns {
                order.push(row);
                names.push(Cell::Text(self.columns[v].0.clone()));
                values.push(cells[v][row].clone());
                places.push(match self.sheet_columns.get(&self.columns[v].0) {
                    Some(SheetColumn::Fixed(c)) => *c,
                    Some(SheetColumn::PerRow(cs)) => cs[row],
                    None => 0,
                });
            }
        }
        let id_names: Vec<String> = ids.iter().map(|&i| self.columns[i].0.clone()).collect();
        self.columns.retain(|(name, _)| id_names.contains(name));
        self.take(&order)?;
        self.columns
            .push((names_to.to_owned(), Column::Cells(names)));
        self.columns
            .push((values_to.to_owned(), Column::Cells(values)));
        for new in [names_to, values_to] {
            self.sheet_columns
                .insert(new.to_owned(), SheetColumn::PerRow(places.clone()));
        }
        Ok(())
    }

    /// Rewrites the values of `column` found in `map` (compared after trimming and width
    /// folding); other values stay as they are.
    pub fn recode(&mut self, column: &str, map: &BTreeMap<String, String>) -> Result<(), IoError> {
        let i = self.position(column)?;
        let normal: BTreeMap<String, &String> = map
            .iter()
            .map(|(from, to)| (fold_width(from).trim().to_owned(), to))
            .collect();
        let cells = self.columns[i].1.cells(&self.source, column)?.into_owned();
        let recoded = cells
            .into_iter()
            .map(|cell| {
                let key = cell.text().map(|t| fold_width(&t).trim().to_owned());
                match key.and_then(|k| normal.get(&k).copied()) {
                    Some(to) => Cell::Text(to.clone()),
                    None => cell,
                }
            })
            .collect();
        self.columns[i].1 = Column::Cells(recoded);
        Ok(())
    }

    /// Multiplies the numbers of `column` by `factor`. A power of ten moves the decimal point
    /// (exact: `494.7369` 万人 × 10000 is `4947369` persons); another factor multiplies floats.
    pub fn scale(&mut self, column: &str, factor: f64) -> Result<(), IoError> {
        let i = self.position(column)?;
        let name = self.columns[i].0.clone();
        let cells = self.columns[i].1.cells(&self.source, &name)?.into_owned();
        let mut out = Vec::with_capacity(cells.len());
        for (row, cell) in cells.iter().enumerate() {
            out.push(scaled(cell, factor).ok_or_else(|| {
                IoError::data(format!(
                    "{}: column `{name}`: `{}` is not a number, so `scale` cannot multiply it",
                    self.at(&name, row),
                    cell.text().unwrap_or_default()
                ))
                .with_hint(
                    "fix the cell, or add its text to `na_values:` if it marks a missing value",
                )
            })?);
        }
        self.columns[i].1 = Column::Cells(out);
        Ok(())
    }

    /// Adds `unit_id` (first) by matching the names in `m.column` to the units' names, then
    /// sorts rows by it (stably, so a unit's rows keep their order). Every name that matches
    /// no unit is reported at once, next to the units left without a row.
    pub fn add_unit_ids(&mut self, m: &NameMatch<'_>) -> Result<(), IoError> {
        if self.columns.iter().any(|(n, _)| n == UNIT_ID) {
            return Err(IoError::data(format!(
                "{}: `unit_names` would replace the existing column `unit_id`",
                self.source
            ))
            .with_hint("rename the existing column with `rename:`"));
        }
        let i = self.position(m.column)?;
        let column = self.columns[i].0.clone();
        let cells = self.columns[i].1.cells(&self.source, &column)?.into_owned();
        let index = m.index()?;
        let mut ids = Vec::with_capacity(cells.len());
        let mut unmatched: Vec<(usize, String)> = Vec::new();
        for (row, cell) in cells.iter().enumerate() {
            let text = cell.text().unwrap_or_default();
            match index.get(&normal_name(&text)).map(Vec::as_slice) {
                Some([id]) => ids.push(id.clone()),
                Some(several) => {
                    return Err(IoError::data(format!(
                        "{}: column `{column}`: `{text}` names {} units ({}): {}",
                        self.at(&column, row),
                        several.len(),
                        m.units_label,
                        several.join(", ")
                    ))
                    .with_hint(format!(
                        "add `aliases: {{ {text}: \"{}\" }}` under `unit_names:` to pick one",
                        several[0]
                    )));
                }
                None if text.trim().is_empty() => {
                    return Err(IoError::data(format!(
                        "{}: column `{column}` is empty",
                        self.at(&column, row)
                    ))
                    .with_hint("every row needs the name of its unit"));
                }
                None => {
                    unmatched.push((row, text));
                    ids.push(String::new());
                }
            }
        }
        if !unmatched.is_empty() {
            return Err(self.names_unmatched(m, &column, &unmatched, &ids));
        }
        self.columns.insert(
            0,
            (
                UNIT_ID.to_owned(),
                Column::Cells(ids.iter().cloned().map(Cell::Text).collect()),
            ),
        );
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by(|&a, &b| ids[a].cmp(&ids[b]));
        self.take(&order)
    }

    /// The error listing every unmatched table name (with a suggestion) and every unit without
    /// a row.
    fn names_unmatched(
        &self,
        m: &NameMatch<'_>,
        column: &str,
        unmatched: &[(usize, String)],
        ids: &[String],
    ) -> IoError {
        let orphans: Vec<&(String, String)> =
            m.units.iter().filter(|(id, _)| !ids.contains(id)).collect();
        let orphan_names: Vec<String> = orphans.iter().map(|(_, n)| normal_name(n)).collect();
        let mut seen = std::collections::BTreeSet::new();
        let mut lines = Vec::new();
        let mut first_alias = None;
        for (row, text) in unmatched {
            if !seen.insert(normal_name(text)) {
                continue;
            }
            let wanted = normal_name(text);
            let suggestion = did_you_mean(&wanted, orphan_names.iter().map(String::as_str))
                .and_then(|n| orphans.iter().find(|(_, name)| normal_name(name) == n));
            let line = match suggestion {
                Some((id, name)) => {
                    first_alias.get_or_insert_with(|| format!("{}: \"{id}\"", text.trim()));
                    format!(
                        "  {}: `{}`: did you mean `{name}` ({id})?",
                        self.at(column, *row),
                        text.trim()
                    )
                }
                None => format!("  {}: `{}`", self.at(column, *row), text.trim()),
            };
            lines.push(line);
        }
        let listed: Vec<String> = orphans
            .iter()
            .map(|(id, name)| format!("{name} ({id})"))
            .collect();
        let orphans_line = if listed.is_empty() {
            "every unit has a row".to_owned()
        } else {
            format!(
                "{} unit(s) have no row: {}",
                listed.len(),
                listed.join(", ")
            )
        };
        let alias =
            first_alias.unwrap_or_else(|| format!("{}: \"<unit id>\"", unmatched[0].1.trim()));
        IoError::data(format!(
            "{}: {} name(s) in column `{column}` match no unit ({}):\n{}\n{orphans_line}",
            self.source,
            seen.len(),
            m.units_label,
            lines.join("\n")
        ))
        .with_hint(format!(
            "map a name to its unit with `unit_names: {{ aliases: {{ {alias} }} }}`, or fix the name in the file"
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn yearbook_numbers_become_plain() {
        assert_eq!(plain_number(" 5,758,213.8 "), "5758213.8");
        // Full-width digits, sign, point and separator (U+FF10…), and an ideographic space.
        assert_eq!(plain_number("\u{3000}－１２，３４５．６"), "-12345.6");
        assert_eq!(plain_number("1,2"), "1,2");
        assert_eq!(plain_number("12,34.5"), "12,34.5");
        assert_eq!(plain_number("1.234,5"), "1.234,5");
        assert_eq!(fold_width("人口（万人）"), "人口(万人)");
    }

    #[test]
    fn powers_of_ten_shift_the_point_exactly() {
        assert_eq!(power_of_ten(10000.0), Some(4));
        assert_eq!(power_of_ten(0.01), Some(-2));
        assert_eq!(power_of_ten(3.0), None);
        assert_eq!(shift_decimal("494.7369", 4).as_deref(), Some("4947369"));
        assert_eq!(shift_decimal("62.82", -2).as_deref(), Some("0.6282"));
        assert_eq!(shift_decimal("-0.5", -2).as_deref(), Some("-0.005"));
        assert_eq!(shift_decimal("12", 3).as_deref(), Some("12000"));
        assert_eq!(shift_decimal("1e3", 1), None);
        // 0.57 × 100 in floating point is 56.99999999999999, which is why the point is moved.
        assert_ne!(0.57_f64 * 100.0, 57.0);
        assert_eq!(
            scaled(&Cell::Raw("0.57".into()), 100.0),
            Some(Cell::Raw("57".into()))
        );
        assert_eq!(
            scaled(&Cell::Float(494.7369), 10000.0),
            Some(Cell::Raw("4947369".into()))
        );
        assert_eq!(scaled(&Cell::Int(3), 2.5), Some(Cell::Float(7.5)));
        assert_eq!(scaled(&Cell::Raw("x".into()), 2.0), None);
    }

    fn table(columns: Vec<(&str, Vec<&str>)>) -> CellTable {
        let n = columns[0].1.len();
        let rows = (0..n).map(|i| format!("t.csv:{}", i + 2)).collect();
        let mut t = CellTable::new(
            Path::new("t.csv"),
            columns
                .into_iter()
                .map(|(name, v)| (name.to_owned(), v.into_iter().map(Cell::raw).collect()))
                .collect(),
            rows,
        )
        .unwrap();
        t.sheet_rows = (0..n).map(|i| u32::try_from(i).unwrap() + 2).collect();
        t
    }

    fn texts(t: &CellTable, column: &str) -> Vec<String> {
        let i = t.position(column).unwrap();
        t.columns[i]
            .1
            .cells(&t.source, column)
            .unwrap()
            .iter()
            .map(|c| c.text().unwrap_or_default())
            .collect()
    }

    #[test]
    fn melt_makes_one_row_per_value_and_keeps_cell_places() {
        let mut t = table(vec![
            ("县名", vec!["甲县", "乙县"]),
            ("小麦", vec!["1", "2"]),
            ("玉米", vec!["3", "x"]),
        ]);
        t.melt(&["县名".into()], "crop", "yield_t").unwrap();
        assert_eq!(t.names(), ["县名", "crop", "yield_t"]);
        assert_eq!(texts(&t, "县名"), ["甲县", "甲县", "乙县", "乙县"]);
        assert_eq!(texts(&t, "crop"), ["小麦", "玉米", "小麦", "玉米"]);
        assert_eq!(texts(&t, "yield_t"), ["1", "3", "2", "x"]);
        // `x` was typed in cell C3 of the wide table (column 玉米, second data row).
        assert_eq!(t.at("yield_t", 3), "t.csv:3, cell C3");
    }

    #[test]
    fn recode_and_scale_rewrite_cells() {
        let mut t = table(vec![
            ("c", vec!["小麦 ", "其他"]),
            ("p", vec!["494.7369", "—"]),
        ]);
        t.recode("c", &BTreeMap::from([("小麦".into(), "wheat".into())]))
            .unwrap();
        assert_eq!(texts(&t, "c"), ["wheat", "其他"]);
        let err = t.clone().scale("p", 10000.0).unwrap_err();
        assert_eq!(
            err.message,
            "t.csv:3, cell B3: column `p`: `—` is not a number, so `scale` cannot multiply it"
        );
        t.null_na_values(&["—".into()]);
        t.scale("p", 10000.0).unwrap();
        assert_eq!(texts(&t, "p"), ["4947369", ""]);
    }

    #[test]
    fn names_match_units_with_aliases_and_suggestions() {
        let units = vec![
            ("410100".to_owned(), "郑州市市辖区".to_owned()),
            ("410122".to_owned(), "中牟县".to_owned()),
            ("410181".to_owned(), "巩义市".to_owned()),
        ];
        let aliases = BTreeMap::new();
        let m = NameMatch {
            column: "县名",
            units: units.clone(),
            units_label: "`units` column `name`".into(),
            aliases: &aliases,
        };
        // A padded name (`中　牟县`, ideographic space) matches; 郑州市区 does not.
        let mut t = table(vec![("县名", vec!["巩义市", "中　牟县", "郑州市区"])]);
        let err = t.add_unit_ids(&m).unwrap_err();
        assert_eq!(
            err.message,
            "t.csv: 1 name(s) in column `县名` match no unit (`units` column `name`):\n  t.csv:4, cell A4: `郑州市区`: did you mean `郑州市市辖区` (410100)?\n1 unit(s) have no row: 郑州市市辖区 (410100)"
        );
        assert!(
            err.hint
                .as_deref()
                .unwrap()
                .contains("郑州市区: \"410100\"")
        );
        assert!(!err.hint.unwrap().contains("missing"));
        let aliases = BTreeMap::from([("郑州市区".to_owned(), "410100".to_owned())]);
        let m = NameMatch {
            aliases: &aliases,
            ..m
        };
        t.add_unit_ids(&m).unwrap();
        assert_eq!(texts(&t, "unit_id"), ["410100", "410122", "410181"]);
        assert_eq!(texts(&t, "县名"), ["郑州市区", "中　牟县", "巩义市"]);
        let bad = BTreeMap::from([("郑州".to_owned(), "4101".to_owned())]);
        let err = table(vec![("县名", vec!["巩义市"])])
            .add_unit_ids(&NameMatch { aliases: &bad, ..m })
            .unwrap_err();
        assert!(
            err.message.contains("no unit has the id `4101`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn footnotes_are_quoted_once() {
        let note = footnote_note(
            "y.xlsx: sheet `s`",
            9,
            &[(10, "注：本表不含…".into()), (11, "资料来源".into())],
        );
        assert_eq!(
            note.unwrap(),
            "y.xlsx: sheet `s`: the table ends at the empty row 9; 2 row(s) below it are ignored, the first (row 10) reads `注：本表不含…`"
        );
        assert_eq!(footnote_note("x", 3, &[]), None);
    }
}
