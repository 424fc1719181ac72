//! The sweep's output tables, each declared once as a [`TableSchema`]: the plan reads the
//! declarations (`outputs()`, and `pipeline stages`), and the run builds the tables from the
//! same schemas. A collected name's key columns and the type of its values are the collected
//! output's, known once draw 0 has run, so before the run `<name>` declares only `draw` and
//! `value` and `<name>_summary` no column. Every column is nullable in the Arrow schema, as
//! sweeps have always written them (the Parquet bytes record it).

use std::collections::{BTreeMap, BTreeSet};

use arrow_array::{ArrayRef, RecordBatch};

use super::{DrawValues, Sample, Values};
use crate::engine::stage::{OutputDecl, StageError};
use crate::engine::sweep_stats as stats;
use crate::table::schema::TableSchema;

const DRAWS_DOC: &str = "every sampled value: draw, parameter, value (as YAML), value_number (the number, or a choice's 0-based position)";
const PER_DRAW_DOC: &str = "per draw: draw, the output's key columns, value";
const SUMMARY_DOC: &str = "per key: a number's mean, sd, p05, p50, p95; a text's category, probability, modal_category, modal_probability";
const SENSITIVITY_DOC: &str = "per collected name and parameter: Spearman and PRCC over the draws";

/// The statistics of a number's summary, in column order.
const NUMBER_STATISTICS: [&str; 5] = ["mean", "sd", "p05", "p50", "p95"];

/// The sweep's outputs: `draws`, then `<name>` and `<name>_summary` per collected name, then
/// `sensitivity`.
pub(super) fn declarations<'n>(collected: impl Iterator<Item = &'n String>) -> Vec<OutputDecl> {
    let mut out = vec![draws_schema().decl()];
    for name in collected {
        out.push(per_draw_schema(name, None).decl());
        out.push(summary_declaration(name));
    }
    out.push(sensitivity_schema().decl());
    out
}

/// `<name>_summary` before the run: its columns follow the collected output's keys and type.
fn summary_declaration(name: &str) -> OutputDecl {
    TableSchema::<NumberSummaryRow>::new(summary_name(name), SUMMARY_DOC)
        .partial()
        .decl()
}

fn summary_name(name: &str) -> String {
    format!("{name}_summary")
}

/// One row of `draws`: one sampled value of one parameter in one draw.
struct DrawRow<'a> {
    draw: i64,
    parameter: &'a str,
    value: String,
    value_number: f64,
}

fn draws_schema<'a>() -> TableSchema<DrawRow<'a>> {
    TableSchema::<DrawRow<'a>>::new("draws", DRAWS_DOC)
        .int("draw", |r| r.draw)
        .text("parameter", |r| r.parameter)
        .text("value", |r| &r.value)
        .float("value_number", |r| r.value_number)
        .nullable()
}

/// `draws`: each draw's sampled values, in draw order, then in the order of `parameters`.
pub(super) fn draws_table(
    parameters: &[&str],
    samples: &[Vec<Sample>],
) -> Result<(String, RecordBatch), StageError> {
    let mut rows = Vec::with_capacity(samples.len() * parameters.len());
    for (d, sample) in samples.iter().enumerate() {
        for (parameter, (v, x)) in parameters.iter().zip(sample) {
            rows.push(DrawRow {
                draw: d as i64,
                parameter,
                value: match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
                value_number: *x,
            });
        }
    }
    draws_schema().build(&rows)
}

/// What a collected name's tables take from the collected output: its key columns and
/// whether its values are text.
struct ValueShape<'d> {
    key_names: &'d [String],
    text: bool,
}

impl<'d> ValueShape<'d> {
    fn of(values: &'d DrawValues) -> Self {
        Self {
            key_names: &values.key_names,
            text: matches!(values.values, Values::Text(_)),
        }
    }
}

/// Adds one column per key of `shape`, copied from the collected output at the row `key`
/// gives (see [`TableSchema::taken`]).
fn with_keys<R>(
    schema: TableSchema<R>,
    shape: Option<&ValueShape<'_>>,
    key: fn(&R) -> usize,
) -> TableSchema<R> {
    let names = shape.map_or(&[][..], |s| s.key_names);
    names.iter().fold(schema, |s, n| s.taken(n.as_str(), key))
}

/// One row of `<name>`: one key's value in one draw.
struct PerDrawRow<'a> {
    draw: i64,
    key: usize,
    number: Option<f64>,
    text: Option<&'a str>,
}

/// `<name>`; `shape` is `None` before the run, when only `draw` and `value` are known.
fn per_draw_schema<'a>(name: &str, shape: Option<&ValueShape<'_>>) -> TableSchema<PerDrawRow<'a>> {
    let schema = TableSchema::<PerDrawRow<'a>>::new(name, PER_DRAW_DOC).int("draw", |r| r.draw);
    let schema = with_keys(schema, shape, |r| r.key);
    let schema = if shape.is_some_and(|s| s.text) {
        schema.text_or_null("value", |r| r.text)
    } else {
        schema.float_or_null("value", |r| r.number)
    };
    schema
        .when(shape.is_none(), TableSchema::partial)
        .nullable()
}

impl DrawValues {
    /// The number of keys (one value each).
    fn rows(&self) -> usize {
        match &self.values {
            Values::Number(v) => v.len(),
            Values::Text(v) => v.len(),
        }
    }
    fn number(&self, row: usize) -> Option<f64> {
        match &self.values {
            Values::Number(v) => v[row],
            Values::Text(_) => None,
        }
    }
    fn text(&self, row: usize) -> Option<&str> {
        match &self.values {
            Values::Text(v) => v[row].as_deref(),
            Values::Number(_) => None,
        }
    }
}

/// The key columns of draw 0, which every draw shares (`draw_values` checks it).
fn key_columns(first: &DrawValues) -> Vec<&ArrayRef> {
    first.keys.iter().collect()
}

/// `<name>`: draw, keys, value; one block of rows per draw.
pub(super) fn per_draw_table(
    name: &str,
    draws: &[&DrawValues],
) -> Result<(String, RecordBatch), StageError> {
    let first = draws[0];
    let shape = ValueShape::of(first);
    if let Some(d) = draws
        .iter()
        .position(|d| ValueShape::of(d).text != shape.text)
    {
        return Err(StageError::data(format!(
            "collect `{name}`: draw {d} gives {} where draw 0 gives {}",
            if shape.text { "numbers" } else { "text" },
            if shape.text { "text" } else { "numbers" },
        ))
        .with_hint("collect a column whose type does not depend on the varied parameters"));
    }
    let mut rows = Vec::with_capacity(first.rows() * draws.len());
    for (d, values) in draws.iter().enumerate() {
        rows.extend((0..first.rows()).map(|key| PerDrawRow {
            draw: d as i64,
            key,
            number: values.number(key),
            text: values.text(key),
        }));
    }
    per_draw_schema(name, Some(&shape)).build_with(&rows, &key_columns(first))
}

/// A collected name's `<name>_summary`, and the per-draw aggregate the sensitivity ranks.
pub(super) struct Summary {
    pub(super) table: (String, RecordBatch),
    /// One value per draw; `None` where it is undefined.
    pub(super) aggregate: Vec<Option<f64>>,
    /// What the aggregate is: `mean_over_keys` or `keys_off_mode`.
    pub(super) label: &'static str,
}

/// `<name>_summary`, the per-draw aggregate the sensitivity ranks, and the aggregate's label.
pub(super) fn summary_table(name: &str, draws: &[&DrawValues]) -> Result<Summary, StageError> {
    if ValueShape::of(draws[0]).text {
        text_summary(name, draws)
    } else {
        number_summary(name, draws)
    }
}

/// One row of a number's summary: one key's statistics, in [`NUMBER_STATISTICS`] order
/// (`None` when every draw's value is null).
struct NumberSummaryRow {
    key: usize,
    statistics: [Option<f64>; 5],
}

fn number_summary_schema(name: &str, shape: &ValueShape<'_>) -> TableSchema<NumberSummaryRow> {
    let schema = TableSchema::<NumberSummaryRow>::new(summary_name(name), SUMMARY_DOC);
    let schema = with_keys(schema, Some(shape), |r| r.key);
    NUMBER_STATISTICS
        .iter()
        .enumerate()
        .fold(schema, |s, (j, n)| {
            s.float_or_null_at(*n, j, |r, j| r.statistics[j])
        })
        .nullable()
}

/// A number's summary: per key, the mean, sd and quantiles over the draws whose value is not
/// null. The aggregate is each draw's mean over its keys.
fn number_summary(name: &str, draws: &[&DrawValues]) -> Result<Summary, StageError> {
    let first = draws[0];
    let rows: Vec<NumberSummaryRow> = (0..first.rows())
        .map(|key| {
            let mut xs: Vec<f64> = draws.iter().filter_map(|d| d.number(key)).collect();
            // Values equal under `total_cmp` have the same bits, so an unstable sort gives
            // the same sequence as a stable one, faster.
            xs.sort_unstable_by(f64::total_cmp);
            let statistics = if xs.is_empty() {
                [None; 5]
            } else {
                let (mean, sd) = stats::mean_sd(&xs);
                [
                    Some(mean),
                    Some(sd),
                    Some(stats::quantile_sorted(&xs, 0.05)),
                    Some(stats::quantile_sorted(&xs, 0.5)),
                    Some(stats::quantile_sorted(&xs, 0.95)),
                ]
            };
            NumberSummaryRow { key, statistics }
        })
        .collect();
    let table = number_summary_schema(name, &ValueShape::of(first))
        .build_with(&rows, &key_columns(first))?;
    let aggregate = draws
        .iter()
        .map(|d| {
            let xs: Vec<f64> = (0..d.rows()).filter_map(|r| d.number(r)).collect();
            (!xs.is_empty()).then(|| stats::mean_sd(&xs).0)
        })
        .collect();
    Ok(Summary {
        table,
        aggregate,
        label: "mean_over_keys",
    })
}

/// One row of a text's summary: one key and one category.
struct TextSummaryRow<'a> {
    key: usize,
    category: &'a str,
    probability: f64,
    modal_category: Option<&'a str>,
    modal_probability: f64,
}

fn text_summary_schema<'a>(name: &str, shape: &ValueShape<'_>) -> TableSchema<TextSummaryRow<'a>> {
    let schema = TableSchema::<TextSummaryRow<'a>>::new(summary_name(name), SUMMARY_DOC);
    with_keys(schema, Some(shape), |r| r.key)
        .text("category", |r| r.category)
        .float("probability", |r| r.probability)
        .text_or_null("modal_category", |r| r.modal_category)
        .float("modal_probability", |r| r.modal_probability)
        .nullable()
}

/// A text's summary: per key × category seen anywhere, its probability; each key's modal
/// category (ties to the first in sorted order) with its probability. The aggregate counts, per
/// draw, the keys off their modal category.
fn text_summary(name: &str, draws: &[&DrawValues]) -> Result<Summary, StageError> {
    let first = draws[0];
    let keys = first.rows();
    let categories: BTreeSet<&str> = draws
        .iter()
        .flat_map(|d| (0..keys).filter_map(move |r| d.text(r)))
        .collect();
    let n = draws.len() as f64;
    let mut rows = Vec::with_capacity(keys * categories.len());
    let mut modes = Vec::with_capacity(keys);
    for key in 0..keys {
        let mut counts: BTreeMap<&str, usize> = categories.iter().map(|c| (*c, 0)).collect();
        for d in draws {
            if let Some(c) = d.text(key) {
                *counts.get_mut(c).expect("seen category") += 1;
            }
        }
        let (mode, top) =
            counts.iter().fold(
                (None, 0),
                |best, (c, &k)| {
                    if k > best.1 { (Some(*c), k) } else { best }
                },
            );
        modes.push(mode);
        rows.extend(counts.iter().map(|(c, k)| TextSummaryRow {
            key,
            category: c,
            probability: *k as f64 / n,
            modal_category: mode,
            modal_probability: top as f64 / n,
        }));
    }
    let table =
        text_summary_schema(name, &ValueShape::of(first)).build_with(&rows, &key_columns(first))?;
    let aggregate = draws
        .iter()
        .map(|d| Some((0..keys).filter(|&r| d.text(r) != modes[r]).count() as f64))
        .collect();
    Ok(Summary {
        table,
        aggregate,
        label: "keys_off_mode",
    })
}

/// One row of `sensitivity`: one parameter against one collected name's aggregate.
struct SensitivityRow {
    output: String,
    aggregate: &'static str,
    parameter: String,
    spearman: Option<f64>,
    prcc: Option<f64>,
}

fn sensitivity_schema() -> TableSchema<SensitivityRow> {
    TableSchema::<SensitivityRow>::new("sensitivity", SENSITIVITY_DOC)
        .text("output", |r| &r.output)
        .text("aggregate", |r| r.aggregate)
        .text("parameter", |r| &r.parameter)
        .float_or_null("spearman", |r| r.spearman)
        .float_or_null("prcc", |r| r.prcc)
        .nullable()
}

/// The rows of `sensitivity`, collected name by collected name.
#[derive(Default)]
pub(super) struct Sensitivity {
    rows: Vec<SensitivityRow>,
}

impl Sensitivity {
    /// Ranks each parameter's sampled values against `aggregate`, one value per draw.
    pub(super) fn add<'p>(
        &mut self,
        name: &str,
        label: &'static str,
        aggregate: &[Option<f64>],
        samples: &[Vec<Sample>],
        parameters: impl Iterator<Item = &'p String>,
    ) {
        // Draws whose aggregate is undefined (every key null) take no part.
        let kept: Vec<usize> = (0..aggregate.len())
            .filter(|&d| aggregate[d].is_some_and(f64::is_finite))
            .collect();
        let y: Vec<f64> = kept.iter().map(|&d| aggregate[d].expect("kept")).collect();
        let x: Vec<Vec<f64>> = kept
            .iter()
            .map(|&d| samples[d].iter().map(|s| s.1).collect())
            .collect();
        let prcc = stats::prcc(&x, &y);
        for (j, p) in parameters.enumerate() {
            let xj: Vec<f64> = x.iter().map(|r| r[j]).collect();
            self.rows.push(SensitivityRow {
                output: name.to_owned(),
                aggregate: label,
                parameter: p.clone(),
                spearman: stats::spearman(&xj, &y),
                prcc: prcc.get(j).copied().flatten(),
            });
        }
    }

    pub(super) fn table(&self) -> Result<(String, RecordBatch), StageError> {
        sensitivity_schema().build(&self.rows)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::StringArray;

    use super::*;
    use crate::table::{column_names, f64s, i64s, strings};

    /// Three draws of one collected name keyed by `key` (`a`, `b`).
    fn draws(values: [Values; 3]) -> Vec<DrawValues> {
        let keys: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        values
            .into_iter()
            .map(|values| DrawValues {
                keys: vec![Arc::clone(&keys)],
                key_names: vec!["key".to_owned()],
                values,
            })
            .collect()
    }

    fn numbers(v: [Option<f64>; 2]) -> Values {
        Values::Number(v.to_vec())
    }

    fn texts(v: [Option<&str>; 2]) -> Values {
        Values::Text(v.iter().map(|t| t.map(str::to_owned)).collect())
    }

    /// The table has the declaration's name and columns: all of them when the declaration is
    /// complete, else those it names, in its order, among the others.
    fn assert_declared(decl: &OutputDecl, (name, table): &(String, RecordBatch)) {
        assert_eq!(&decl.name, name);
        let written = column_names(table);
        if decl.complete {
            assert_eq!(written, decl.columns, "{name}");
        } else {
            let mut rest = written.iter();
            for c in &decl.columns {
                assert!(
                    rest.any(|w| w == c),
                    "{name}: {c} missing or out of order in {written:?}"
                );
            }
        }
        let nullable = table.schema().fields().iter().all(|f| f.is_nullable());
        assert!(nullable, "{name}: every column is nullable");
    }

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
    }

    #[test]
    fn a_number_is_summarised_per_key_and_written_as_declared() {
        let values = draws([
            numbers([Some(1.0), Some(2.0)]),
            numbers([Some(3.0), None]),
            numbers([Some(5.0), Some(4.0)]),
        ]);
        let per_draw: Vec<&DrawValues> = values.iter().collect();
        let decls = declarations([&"nce".to_owned()].into_iter());
        let names: Vec<&str> = decls.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["draws", "nce", "nce_summary", "sensitivity"]);

        let table = per_draw_table("nce", &per_draw).unwrap();
        assert_declared(&decls[1], &table);
        assert_eq!(column_names(&table.1), ["draw", "key", "value"]);
        assert_eq!(i64s(&table.1, "t", "draw").unwrap(), [0, 0, 1, 1, 2, 2]);
        assert_eq!(
            strings(&table.1, "t", "key").unwrap(),
            ["a", "b", "a", "b", "a", "b"]
        );
        let value = f64s(&table.1, "t", "value").unwrap();
        assert!(value[3].is_nan() && value[4] == 5.0, "{value:?}");

        let Summary {
            table: summary,
            aggregate,
            label,
        } = summary_table("nce", &per_draw).unwrap();
        assert_declared(&decls[2], &summary);
        let s = &summary.1;
        // By hand. Key a: 1, 3, 5: mean 3, sd √((4 + 0 + 4) / 2) = 2; Hyndman–Fan type 7
        // quantiles at h = 2p: p05 = 1 + 0.1 × 2 = 1.2, p95 = 3 + 0.9 × 2 = 4.8. Key b: 2, 4
        // (draw 1 is null): mean 3, sd √2, p05 = 2 + 0.05 × 2 = 2.1, p95 = 2 + 0.95 × 2 = 3.9.
        assert_eq!(column_names(s), ["key", "mean", "sd", "p05", "p50", "p95"]);
        assert!(close(&f64s(s, "s", "mean").unwrap(), &[3.0, 3.0]));
        assert!(close(&f64s(s, "s", "sd").unwrap(), &[2.0, 2f64.sqrt()]));
        assert!(close(&f64s(s, "s", "p05").unwrap(), &[1.2, 2.1]));
        assert!(close(&f64s(s, "s", "p50").unwrap(), &[3.0, 3.0]));
        assert!(close(&f64s(s, "s", "p95").unwrap(), &[4.8, 3.9]));
        // Each draw's mean over its non-null keys.
        assert_eq!(aggregate, [Some(1.5), Some(3.0), Some(4.5)]);
        assert_eq!(label, "mean_over_keys");
    }

    #[test]
    fn a_text_is_summarised_per_key_and_category_and_written_as_declared() {
        let values = draws([
            texts([Some("x"), Some("y")]),
            texts([Some("x"), Some("x")]),
            texts([Some("y"), None]),
        ]);
        let per_draw: Vec<&DrawValues> = values.iter().collect();
        let decls = declarations([&"zone".to_owned()].into_iter());
        let table = per_draw_table("zone", &per_draw).unwrap();
        assert_declared(&decls[1], &table);
        assert!(table.1.column(2).is_null(5));

        let Summary {
            table: summary,
            aggregate,
            label,
        } = summary_table("zone", &per_draw).unwrap();
        assert_declared(&decls[2], &summary);
        let s = &summary.1;
        // Key a: x twice, y once, so x is modal with 2/3. Key b: x once, y once (and one null):
        // the tie goes to x, the first in sorted order, with 1/3.
        assert_eq!(strings(s, "s", "key").unwrap(), ["a", "a", "b", "b"]);
        assert_eq!(strings(s, "s", "category").unwrap(), ["x", "y", "x", "y"]);
        let third = 1.0 / 3.0;
        let probability = f64s(s, "s", "probability").unwrap();
        assert!(close(&probability, &[2.0 * third, third, third, third]));
        assert_eq!(strings(s, "s", "modal_category").unwrap(), ["x"; 4]);
        let modal = f64s(s, "s", "modal_probability").unwrap();
        assert!(close(&modal, &[2.0 * third, 2.0 * third, third, third]));
        // Keys off their modal category: draw 0 has b = y; draw 2 has a = y and b null.
        assert_eq!(aggregate, [Some(1.0), Some(0.0), Some(2.0)]);
        assert_eq!(label, "keys_off_mode");
    }

    #[test]
    fn draws_and_sensitivity_are_written_as_declared() {
        let decls = declarations(std::iter::empty());
        let samples = vec![
            vec![
                (serde_json::json!(0.5), 0.5),
                (serde_json::json!("set1"), 1.0),
            ],
            vec![
                (serde_json::json!(0.25), 0.25),
                (serde_json::json!("set2"), 2.0),
            ],
        ];
        let table = draws_table(&["p.x", "p.preset"], &samples).unwrap();
        assert_declared(&decls[0], &table);
        assert_eq!(
            strings(&table.1, "t", "value").unwrap(),
            ["0.5", "set1", "0.25", "set2"]
        );

        let mut sensitivity = Sensitivity::default();
        let parameters = ["p.x".to_owned(), "p.preset".to_owned()];
        sensitivity.add(
            "nce",
            "mean_over_keys",
            &[Some(1.0), Some(2.0)],
            &samples,
            parameters.iter(),
        );
        let table = sensitivity.table().unwrap();
        assert_declared(&decls[1], &table);
        assert_eq!(strings(&table.1, "t", "parameter").unwrap(), parameters);
    }

    #[test]
    fn a_value_type_that_changes_between_draws_is_an_error() {
        let values = draws([
            numbers([Some(1.0), Some(2.0)]),
            texts([Some("x"), Some("y")]),
            numbers([Some(1.0), Some(2.0)]),
        ]);
        let per_draw: Vec<&DrawValues> = values.iter().collect();
        let err = per_draw_table("nce", &per_draw).unwrap_err();
        assert!(
            err.message
                .contains("draw 1 gives text where draw 0 gives numbers"),
            "{}",
            err.message
        );
    }
}
