//! Rows of a table split into groups by an optional `by` column (and a `year` filter), as
//! `inequality` and `autocorrelation` read their input tables.

use std::collections::BTreeMap;

use arrow_array::{ArrayRef, RecordBatch};

use crate::engine::stage::{OutputDecl, StageError};
use crate::table;

/// The default `id_column` of the kinds that read one row per unit.
pub(crate) fn default_id_column() -> String {
    "unit_id".to_owned()
}

/// Refuses a `by` column that shares its name with a column the stage writes, which would then
/// stand twice in that output.
pub(crate) fn refuse_by_clash(by: Option<&str>, outputs: &[OutputDecl]) -> Result<(), StageError> {
    let Some(by) = by else { return Ok(()) };
    if outputs
        .iter()
        .any(|o| o.columns.iter().filter(|c| *c == by).count() > 1)
    {
        return Err(StageError::data(format!(
            "`by: {by}` would clash with an output column of the same name"
        ))
        .with_hint("rename the grouping column upstream"));
    }
    Ok(())
}

/// A group key: integers sort numerically, anything else as text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Int(i64),
    Text(String),
}

/// The rows of a table split into groups by an optional `by` column, in ascending key order.
#[derive(Debug)]
pub(crate) struct Groups {
    by: Option<String>,
    /// Per group, the rows in table order.
    rows: Vec<Vec<usize>>,
    /// Per group, a row holding its key (to copy the key into outputs with its type).
    first_row: Vec<usize>,
    /// Per group, `by = key` for messages.
    labels: Vec<String>,
}

impl Groups {
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// `", by = key"` for messages (empty without `by`).
    pub(crate) fn describe(&self, group: usize) -> String {
        if self.by.is_some() {
            format!(", {}", self.labels[group])
        } else {
            String::new()
        }
    }

    /// The group's rows sorted by unit id; a unit appearing twice is an error.
    pub(crate) fn unit_rows(&self, group: usize, ids: &[String]) -> Result<Vec<usize>, StageError> {
        let mut rows = self.rows[group].clone();
        rows.sort_by(|&a, &b| ids[a].cmp(&ids[b]).then(a.cmp(&b)));
        if let Some(pair) = rows.windows(2).find(|p| ids[p[0]] == ids[p[1]]) {
            let what = if self.by.is_some() {
                format!("in group {}", self.labels[group])
            } else {
                "in the table".to_owned()
            };
            return Err(StageError::data(format!("`table` rows {} and {}: unit `{}` appears twice {what}", pair[0] + 1, pair[1] + 1, ids[pair[0]]))
                .with_hint("the stage needs one row per unit; group with `by:` (e.g. `by: year`) or pick one year with `year:`"));
        }
        Ok(rows)
    }

    /// The input row holding the group's key (for [`TableSchema::taken`]).
    ///
    /// [`TableSchema::taken`]: crate::table::schema::TableSchema::taken
    pub(crate) fn key_row(&self, group: usize) -> usize {
        self.first_row[group]
    }

    /// The input column of the group keys, to copy into outputs with its type (nothing
    /// without `by`).
    pub(crate) fn key_column(&self, batch: &RecordBatch) -> Result<Option<ArrayRef>, StageError> {
        match &self.by {
            Some(by) => Ok(Some(table::column(batch, "table", by)?.clone())),
            None => Ok(None),
        }
    }
}

/// Splits `batch` into groups by the column `by` (or one group), after keeping only the rows
/// of `year` when given. When the table has a `year` column with several years among the kept
/// rows and `by` is not `year`, that is an error: the results would mix years.
pub(crate) fn select_groups(
    batch: &RecordBatch,
    table_name: &str,
    by: Option<&str>,
    year: Option<i64>,
) -> Result<Groups, StageError> {
    let rows = match year {
        Some(y) => rows_of_year(batch, table_name, y)?,
        None => (0..batch.num_rows()).collect(),
    };
    if table::has_column(batch, "year") && by != Some("year") && year.is_none() {
        check_one_year(batch, table_name, &rows)?;
    }
    let Some(by) = by else {
        return Ok(Groups {
            by: None,
            first_row: vec![rows.first().copied().unwrap_or(0)],
            labels: vec![String::new()],
            rows: vec![rows],
        });
    };
    let keys = group_keys(batch, table_name, by, &rows)?;
    let mut map: BTreeMap<&Key, Vec<usize>> = BTreeMap::new();
    for &r in &rows {
        map.entry(&keys[r]).or_default().push(r);
    }
    let mut groups = Groups {
        by: Some(by.to_owned()),
        rows: Vec::new(),
        first_row: Vec::new(),
        labels: Vec::new(),
    };
    for (key, rows) in map {
        let shown = match key {
            Key::Int(v) => v.to_string(),
            Key::Text(s) => s.clone(),
        };
        groups.labels.push(format!("{by} = {shown}"));
        groups.first_row.push(rows[0]);
        groups.rows.push(rows);
    }
    Ok(groups)
}

/// The rows of year `y`; an error listing the years present if there are none.
fn rows_of_year(batch: &RecordBatch, table_name: &str, y: i64) -> Result<Vec<usize>, StageError> {
    let years = table::i64s(batch, table_name, "year")?;
    let rows: Vec<usize> = (0..batch.num_rows()).filter(|&r| years[r] == y).collect();
    if rows.is_empty() {
        let present: std::collections::BTreeSet<i64> = years.iter().copied().collect();
        let present: Vec<String> = present.iter().map(ToString::to_string).collect();
        return Err(
            StageError::data(format!("`{table_name}` has no rows with year {y}"))
                .with_hint(format!("the years present are: {}", present.join(", "))),
        );
    }
    Ok(rows)
}

/// An error if `rows` hold more than one year, which one result would mix.
fn check_one_year(batch: &RecordBatch, table_name: &str, rows: &[usize]) -> Result<(), StageError> {
    let years = table::i64s(batch, table_name, "year")?;
    let distinct: std::collections::BTreeSet<i64> = rows.iter().map(|&r| years[r]).collect();
    if distinct.len() <= 1 {
        return Ok(());
    }
    let list: Vec<String> = distinct.iter().take(6).map(ToString::to_string).collect();
    let more = if distinct.len() > 6 { ", …" } else { "" };
    Err(StageError::data(format!(
        "`{table_name}` holds {} years ({}{more}), which would be mixed into one result",
        distinct.len(),
        list.join(", ")
    ))
    .with_hint("add `by: year` for one result per year, or `year: <year>` to pick one"))
}

/// The grouping key of every row of `batch` from column `by`: numbers as integers, else
/// text, which must not be empty in any of `rows`.
fn group_keys(
    batch: &RecordBatch,
    table_name: &str,
    by: &str,
    rows: &[usize],
) -> Result<Vec<Key>, StageError> {
    let col = table::column(batch, table_name, by)?;
    if col.data_type().is_integer() || col.data_type().is_floating() {
        return Ok(table::i64s(batch, table_name, by)?
            .into_iter()
            .map(Key::Int)
            .collect());
    }
    let text = table::strings(batch, table_name, by)?;
    if let Some(&r) = rows.iter().find(|&&r| text[r].is_empty()) {
        return Err(StageError::data(format!(
            "`{table_name}` row {}: the grouping column `{by}` is empty",
            r + 1
        ))
        .with_hint("every row needs a group value"));
    }
    Ok(text.into_iter().map(Key::Text).collect())
}
