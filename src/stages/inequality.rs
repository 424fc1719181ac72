//! The `inequality` stage: how unevenly a quantity is spread over the units, per group (e.g.
//! per year): the Gini coefficient of its Lorenz curve against a reference quantity (the
//! emission-vs-sink carbon Gini by default), the plain Gini, and the centralization index,
//! each flagged against the 0.4 warning line; plus the Lorenz points for charts.
//!
//! Also home of [`select_groups`], the "one group per `by` value, one year unless grouped by
//! year" row selection that `autocorrelation` shares.

use arrow_array::{ArrayRef, RecordBatch};
use serde::{Deserialize, Serialize};

use crate::engine::stage::{
    Inputs, OutputDecl, Outputs, ParamDoc, Port, Stage, StageContext, StageError,
};
use crate::methods::gini::{self, GiniError, Lorenz, Quantity};
use crate::methods::theil::{self, TheilError};
use crate::table::schema::TableSchema;
use crate::stages::shared::groups::{default_id_column, refuse_by_clash, select_groups};
use crate::table;

/// The `inequality` kind.
pub struct Inequality;

/// The `weight` value that gives every unit the same share `1/n`.
pub const EQUAL: &str = "equal";

/// Parameters of `inequality`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The quantity whose distribution is measured (the Lorenz curve's y). Default `ce_t_c`,
    /// the gross emission of `indices`.
    #[serde(default = "default_value")]
    pub value: String,
    /// The reference quantity (the Lorenz curve's x), or `equal` for `1/n` per unit. Default
    /// `cs_t_c`, the gross absorption: the emission-vs-sink carbon Gini.
    #[serde(default = "default_weight")]
    pub weight: String,
    /// Optional grouping column (e.g. `year`): one result per value. Default: one group.
    #[serde(default)]
    pub by: Option<String>,
    /// Keep only the rows of this year (column `year`). Default: all rows.
    #[serde(default)]
    pub year: Option<i64>,
    /// The unit id column. Default `unit_id`.
    #[serde(default = "default_id_column")]
    pub id_column: String,
    /// The threshold of the `warning` flags. Default 0.4, the conventional Gini warning line.
    #[serde(default = "default_warning_line")]
    pub warning_line: f64,
    /// The index families computed. Default `[gini]`.
    #[serde(default = "default_indices")]
    pub indices: Vec<Index>,
    /// A column partitioning the units (e.g. a functional area) for the Theil decomposition
    /// into `theil_between` and `theil_within`. Needs `theil` in `indices`. Default: none.
    #[serde(default)]
    pub groups: Option<String>,
}

/// An index family of `inequality`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Index {
    /// The Lorenz-curve family: carbon Gini, plain Gini, centralization index.
    Gini,
    /// Theil's T of the value (with `groups`, its between/within decomposition).
    Theil,
}

fn default_indices() -> Vec<Index> {
    vec![Index::Gini]
}

impl Params {
    fn has(&self, index: Index) -> bool {
        self.indices.contains(&index)
    }
}

fn default_value() -> String {
    "ce_t_c".to_owned()
}
fn default_weight() -> String {
    "cs_t_c".to_owned()
}
fn default_warning_line() -> f64 {
    gini::WARNING_LINE
}

/// The `inequality` output: one row per group, the columns of the index families asked for.
fn summary_table<'a>(params: &Params) -> TableSchema<SummaryRow<'a>> {
    let gini = params.has(Index::Gini);
    let theil = params.has(Index::Theil);
    TableSchema::<SummaryRow<'a>>::new(
        "inequality",
        "one row per group: gini (value vs weight), centralization (of value), n, warning (gini ≥ warning_line), \
         centralization_warning, gini_plain (ordinary Gini of value), weight (the reference column or `equal`); \
         with `theil`: theil (Theil's T of value), and with `groups`: theil_between, theil_within",
    )
    .when_some(params.by.clone(), |t, by| t.taken(by, |r| r.key_row))
    .when(gini, |t| {
        t.float_or_null("gini", |r| r.gini)
            .float_or_null("centralization", |r| r.centralization)
    })
    .int("n", |r| r.n)
    .when(gini, |t| {
        t.bool("warning", |r| r.warning)
            .bool("centralization_warning", |r| r.centralization_warning)
            .float_or_null("gini_plain", |r| r.gini_plain)
            .text("weight", |r| r.weight)
    })
    .when(theil, |t| t.float_or_null("theil", |r| r.theil))
    .when(theil && params.groups.is_some(), |t| {
        t.float_or_null("theil_between", |r| r.theil_between)
            .float_or_null("theil_within", |r| r.theil_within)
    })
}

/// The `lorenz` output: the points of each group's curve.
fn lorenz_table(params: &Params) -> TableSchema<PointRow> {
    TableSchema::<PointRow>::new(
        "lorenz",
        "the Lorenz curve of each group: k = 0..n, the unit added at step k (null at k = 0), cumulative shares x (weight) and y (value)",
    )
    .when_some(params.by.clone(), |t, by| t.taken(by, |r| r.key_row))
    .int("k", |r| r.k)
    .text_or_null("unit_id", |r| r.unit.as_deref())
    .float("x", |r| r.x)
    .float("y", |r| r.y)
}

impl Stage for Inequality {
    const KIND: &'static str = "inequality";
    const VERSION: u32 = 2;
    const DOC: &'static str = "Inequality of a quantity across units, per group: the Gini coefficient of its Lorenz \
        curve against a reference quantity (default: emission `ce_t_c` against sinks `cs_t_c`, the carbon Gini; \
        `weight: equal` gives the ordinary Gini), the plain Gini of the value, and the centralization index \
        (A − R)/(M − R) of the value, with flags at the 0.4 warning line. Units are ordered by value/weight \
        ascending; a unit with weight 0 sorts last. Negative values or weights are an error; a group with fewer \
        than 2 units or a zero total gets null indices and a warning. Outputs `inequality` (one row per group) \
        and `lorenz` (the curve's points, k = 0..n). With `indices: [gini, theil]` also Theil's T of the value \
        (all values must be > 0), and with `groups: <column>` its between- and within-group parts, as PySAL \
        `inequality.theil.Theil` and `TheilD`.";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "value",
            ty: "column",
            default: "",
            doc: "the quantity whose distribution is measured (Lorenz y; all ≥ 0)",
        },
        ParamDoc {
            name: "weight",
            ty: "column or `equal`",
            default: "",
            doc: "the reference quantity (Lorenz x; all ≥ 0); `equal` gives each unit 1/n, so `gini` is the ordinary Gini of `value`",
        },
        ParamDoc {
            name: "by",
            ty: "column",
            default: "",
            doc: "grouping column (e.g. `year`): one row per value, sorted",
        },
        ParamDoc {
            name: "year",
            ty: "integer",
            default: "",
            doc: "keep only rows with this `year`; needed when the table has several years and `by` is not `year`",
        },
        ParamDoc {
            name: "id_column",
            ty: "column",
            default: "",
            doc: "unit ids (for messages and the Lorenz points)",
        },
        ParamDoc {
            name: "warning_line",
            ty: "number",
            default: "",
            doc: "threshold of `warning` (on `gini`) and `centralization_warning` (on `centralization`)",
        },
        ParamDoc {
            name: "indices",
            ty: "list of `gini`, `theil`",
            default: "",
            doc: "index families: `gini` gives gini, centralization, warning, centralization_warning, gini_plain, weight and the Lorenz points; `theil` gives `theil` (Theil's T of the value)",
        },
        ParamDoc {
            name: "groups",
            ty: "column",
            default: "",
            doc: "partition of the units (e.g. functional area) for `theil_between` and `theil_within` (needs `theil`)",
        },
    ];
    type Params = Params;

    #[cfg(test)]
    fn declaration_examples() -> Vec<crate::engine::stage::Example> {
        use crate::engine::stage::Example;
        use crate::stages::testing::study;
        use serde_json::json;
        vec![Example::new(
            json!({"by": "year", "indices": ["gini", "theil"]}),
            vec![("table", study::indices().0)],
        )]
    }

    fn ports(params: &Params) -> Vec<Port> {
        let mut columns = vec![params.id_column.clone(), params.value.clone()];
        if params.weight != EQUAL && params.has(Index::Gini) {
            columns.push(params.weight.clone());
        }
        columns.extend(params.by.clone());
        columns.extend(params.groups.clone());
        if params.year.is_some() {
            columns.push("year".to_owned());
        }
        vec![
            Port::required(
                "table",
                "one row per unit (per group), with the value and weight columns",
            )
            .with_columns(columns),
        ]
    }

    fn outputs(params: &Params) -> Vec<OutputDecl> {
        vec![summary_table(params).decl(), lorenz_table(params).decl()]
    }

    fn validate(params: &Params) -> Result<(), StageError> {
        if !(params.warning_line.is_finite() && (0.0..=1.0).contains(&params.warning_line)) {
            return Err(StageError::data(format!(
                "`warning_line` is {}, expected a number in 0..1",
                params.warning_line
            ))
            .with_hint("the conventional Gini warning line is 0.4"));
        }
        if params.indices.is_empty() {
            return Err(StageError::data("`indices` is empty")
                .with_hint("list at least one of `gini`, `theil`, e.g. `indices: [gini, theil]`"));
        }
        if params.groups.is_some() && !params.has(Index::Theil) {
            return Err(StageError::data(
                "`groups` is given but `indices` has no `theil`",
            )
            .with_hint("`groups` partitions the Theil index: add `theil` to `indices`, or drop `groups`"));
        }
        refuse_by_clash(params.by.as_deref(), &Self::outputs(params))
    }

    fn run(params: &Params, inputs: &Inputs, ctx: &StageContext) -> Result<Outputs, StageError> {
        let batch = inputs.table("table")?;
        let layout = Layout::shared(params, batch, ctx)?;
        let (ids, partition, groups) = (&layout.ids, &layout.partition, &layout.groups);
        let value = table::f64s(batch, "table", &params.value)?;
        let weight = if params.weight == EQUAL || !params.has(Index::Gini) {
            None
        } else {
            Some(table::f64s(batch, "table", &params.weight)?)
        };
        // A sweep's draws that read only the summary leave the curves empty.
        let curves = ctx.output_read("lorenz");

        let mut summary: Vec<SummaryRow<'_>> = Vec::with_capacity(groups.len());
        let mut curve: Vec<PointRow> = Vec::new();
        for (g, rows) in layout.unit_rows.iter().enumerate() {
            let unit_ids: Vec<&str> = rows.iter().map(|&r| ids[r].as_str()).collect();
            let v: Vec<f64> = rows.iter().map(|&r| value[r]).collect();
            let at = groups.describe(g);
            let mut row = SummaryRow::new(groups.key_row(g), rows.len(), &params.weight);
            if params.has(Index::Gini) {
                let w: Option<Vec<f64>> = weight
                    .as_ref()
                    .map(|w| rows.iter().map(|&r| w[r]).collect());
                let data = (v.as_slice(), w.as_deref(), unit_ids.as_slice());
                let lorenz = gini_family(&mut row, data, params, &at, ctx)?;
                if let Some(l) = &lorenz
                    && curves
                {
                    push_points(&mut curve, groups.key_row(g), l, &unit_ids);
                }
            }
            if params.has(Index::Theil) {
                let labels: Option<Vec<&str>> = partition
                    .as_ref()
                    .map(|p| rows.iter().map(|&r| p[r].as_str()).collect());
                theil_family(&mut row, &v, labels.as_deref(), &unit_ids, params, &at, ctx)?;
            }
            summary.push(row);
        }
        let keys = groups.key_column(batch)?;
        let keys: Vec<&ArrayRef> = keys.iter().collect();
        Ok(vec![
            summary_table(params).build_with(&summary, &keys)?,
            lorenz_table(params).build_with(&curve, &keys)?,
        ])
    }
}

/// The rows of the input table as the indices read them: ids, `groups` labels, the groups
/// and each group's rows sorted by unit id. Found from the id, `year`, `by` and `groups`
/// columns alone, so that runs whose values change and ids do not (a sweep's draws) find it
/// once.
struct Layout {
    ids: Vec<String>,
    partition: Option<Vec<String>>,
    groups: crate::stages::shared::groups::Groups,
    /// Per group, its rows sorted by unit id.
    unit_rows: Vec<Vec<usize>>,
}

impl Layout {
    fn shared(
        params: &Params,
        batch: &RecordBatch,
        ctx: &StageContext,
    ) -> Result<std::sync::Arc<Self>, StageError> {
        let mut names = vec![params.id_column.as_str()];
        names.extend(params.by.as_deref());
        names.extend(params.groups.as_deref());
        if table::has_column(batch, "year") {
            names.push("year");
        }
        let columns = names
            .iter()
            .map(|n| table::column(batch, "table", n).cloned())
            .collect::<Result<Vec<ArrayRef>, StageError>>()?;
        let key = (&params.id_column, &params.by, &params.groups, params.year);
        ctx.reuse_over("layout", &columns, &key, || Self::new(params, batch))
    }

    fn new(params: &Params, batch: &RecordBatch) -> Result<Self, StageError> {
        let ids = table::ids(batch, "table", &params.id_column)?;
        let partition = match &params.groups {
            Some(column) => Some(partition_labels(batch, &ids, column)?),
            None => None,
        };
        let groups = select_groups(batch, "table", params.by.as_deref(), params.year)?;
        let unit_rows = (0..groups.len())
            .map(|g| groups.unit_rows(g, &ids))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            ids,
            partition,
            groups,
            unit_rows,
        })
    }
}

/// The Lorenz-curve indices of one group, appended to `summary` and `curve`.
fn gini_family(
    row: &mut SummaryRow<'_>,
    (v, w, unit_ids): (&[f64], Option<&[f64]>, &[&str]),
    params: &Params,
    at: &str,
    ctx: &StageContext,
) -> Result<Option<Lorenz>, StageError> {
    let fail = &|e: GiniError| gini_error(e, unit_ids, params, at);
    let lorenz = match gini::lorenz(v, w) {
        Ok(l) => Some(l),
        Err(e @ (GiniError::TooFewUnits { .. } | GiniError::ZeroTotal { .. })) => {
            ctx.warn_kind(
                "gini_undefined",
                format!("{}: {}; its gini is null", group_name(at), fail(e).message),
            );
            None
        }
        Err(e) => return Err(fail(e)),
    };
    let plain = soft(gini::gini(v), fail)?;
    let centralization = soft(gini::centralization_index(v), fail)?;
    let g_value = lorenz.as_ref().map(Lorenz::gini);
    row.gini = g_value;
    row.centralization = centralization;
    row.warning = g_value.is_some_and(|x| x >= params.warning_line);
    row.centralization_warning = centralization.is_some_and(|x| x >= params.warning_line);
    row.gini_plain = plain;
    Ok(lorenz)
}

/// Theil's T of one group (and its decomposition by `labels`), into its row. A group
/// with fewer than two units gets nulls and a warning; a value ≤ 0 is an error naming the unit.
fn theil_family(
    row: &mut SummaryRow<'_>,
    v: &[f64],
    labels: Option<&[&str]>,
    unit_ids: &[&str],
    params: &Params,
    at: &str,
    ctx: &StageContext,
) -> Result<(), StageError> {
    let result = match labels {
        Some(labels) => theil::theil_decomposition(v, labels).map(|d| (d.total, Some(d))),
        None => theil::theil(v).map(|t| (t, None)),
    };
    let (total, parts) = match result {
        Ok((t, d)) => (Some(t), d),
        Err(TheilError::TooFewUnits { n }) => {
            ctx.warn_kind(
                "theil_undefined",
                format!(
                    "{}: {n} unit(s); Theil's index needs at least 2, so its theil is null",
                    group_name(at)
                ),
            );
            (None, None)
        }
        Err(TheilError::NotPositive { unit, value }) => {
            return Err(StageError::data(format!(
                "`table`: unit `{}`{at}: column `{}` is {value}; Theil's index needs values > 0",
                unit_ids[unit], params.value
            ))
            .with_hint("ln(y/ȳ) is undefined at zero: drop the unit from the table, or use `indices: [gini]`, which accepts zeros"));
        }
        Err(TheilError::NotFinite { unit, value }) => {
            return Err(StageError::data(format!(
                "`table`: unit `{}`{at}: column `{}` is {value}",
                unit_ids[unit], params.value
            ))
            .with_hint("fill in the missing value upstream or drop the unit"));
        }
        Err(e @ TheilError::LengthMismatch { .. }) => {
            return Err(StageError::internal(e.to_string()));
        }
    };
    row.theil = total;
    row.theil_between = parts.map(|d| d.between);
    row.theil_within = parts.map(|d| d.within);
    Ok(())
}

/// The `groups` column as text, one label per row; an empty label is an error naming the unit.
fn partition_labels(
    batch: &RecordBatch,
    ids: &[String],
    column: &str,
) -> Result<Vec<String>, StageError> {
    let labels = table::strings(batch, "table", column)?;
    if let Some(r) = labels.iter().position(String::is_empty) {
        return Err(StageError::data(format!(
            "`table` row {}: unit `{}` has no value in the `groups` column `{column}`",
            r + 1,
            ids[r]
        ))
        .with_hint("every unit needs a group for the Theil decomposition"));
    }
    Ok(labels)
}

/// A row of the `inequality` output: one group. The indices of a family not asked for, or
/// undefined for the group, stay `None`.
struct SummaryRow<'a> {
    /// The input row holding the group's key.
    key_row: usize,
    n: i64,
    gini: Option<f64>,
    centralization: Option<f64>,
    warning: bool,
    centralization_warning: bool,
    gini_plain: Option<f64>,
    weight: &'a str,
    theil: Option<f64>,
    theil_between: Option<f64>,
    theil_within: Option<f64>,
}

impl<'a> SummaryRow<'a> {
    fn new(key_row: usize, n: usize, weight: &'a str) -> Self {
        Self {
            key_row,
            n: i64::try_from(n).expect("row counts fit i64"),
            gini: None,
            centralization: None,
            warning: false,
            centralization_warning: false,
            gini_plain: None,
            weight,
            theil: None,
            theil_between: None,
            theil_within: None,
        }
    }
}

/// A point of a Lorenz curve: the unit added at step `k` (none at `k = 0`).
struct PointRow {
    key_row: usize,
    k: i64,
    unit: Option<String>,
    x: f64,
    y: f64,
}

fn push_points(curve: &mut Vec<PointRow>, key_row: usize, lorenz: &Lorenz, unit_ids: &[&str]) {
    for (k, &(x, y)) in lorenz.points.iter().enumerate() {
        curve.push(PointRow {
            key_row,
            k: i64::try_from(k).expect("point counts fit i64"),
            unit: k
                .checked_sub(1)
                .map(|s| unit_ids[lorenz.order[s]].to_owned()),
            x,
            y,
        });
    }
}

/// An index that is undefined for this group (too few units, zero total) becomes `None`; a
/// real data error stays an error. The Lorenz step already warned about the group.
fn soft(
    result: Result<f64, GiniError>,
    fail: &impl Fn(GiniError) -> StageError,
) -> Result<Option<f64>, StageError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(GiniError::TooFewUnits { .. } | GiniError::ZeroTotal { .. }) => Ok(None),
        Err(e) => Err(fail(e)),
    }
}

fn group_name(at: &str) -> String {
    if at.is_empty() {
        "the table".to_owned()
    } else {
        format!("group {}", at.trim_start_matches(", "))
    }
}

/// A method error in the words of the study: unit ids and column names instead of indices.
fn gini_error(e: GiniError, unit_ids: &[&str], params: &Params, at: &str) -> StageError {
    let column = |q: Quantity| match q {
        Quantity::Value => params.value.as_str(),
        Quantity::Weight => params.weight.as_str(),
    };
    match e {
        GiniError::Negative { unit, quantity, value } => StageError::data(format!("`table`: unit `{}`{at}: column `{}` is {value}, which is negative", unit_ids[unit], column(quantity)))
            .with_hint("the Gini and centralization index measure shares of non-negative quantities; use gross emission and absorption (ce_t_c, cs_t_c), not the net balance"),
        GiniError::NotFinite { unit, quantity, value } => StageError::data(format!("`table`: unit `{}`{at}: column `{}` is {value}", unit_ids[unit], column(quantity)))
            .with_hint("fill in the missing value upstream or drop the unit"),
        GiniError::TooFewUnits { n } => StageError::data(format!("{n} unit(s); an inequality index needs at least 2")),
        GiniError::ZeroTotal { quantity } => StageError::data(format!("column `{}` sums to zero, so its shares are undefined", column(quantity))),
        GiniError::LengthMismatch { .. } => StageError::internal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::testing;
    use crate::table::TableBuilder;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};

    fn run(
        params: serde_json::Value,
        table: RecordBatch,
    ) -> Result<(Outputs, Vec<String>), StageError> {
        testing::run::<Inequality>(params, vec![("table", table)])
    }

    fn f64_col(batch: &RecordBatch, name: &str) -> Vec<Option<f64>> {
        let a = batch
            .column_by_name(name)
            .unwrap()
            .as_primitive::<Float64Type>();
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i)))
            .collect()
    }

    /// The 6 units of tests/fixtures/stats/gini_expected.json, in two years; 2001 doubles CE.
    fn two_years() -> RecordBatch {
        let ids = [
            "u6", "u5", "u4", "u3", "u2", "u1", "u6", "u5", "u4", "u3", "u2", "u1",
        ];
        let ce = [240.0, 80.0, 15.0, 300.0, 45.0, 120.0];
        let cs = [15.0, 40.0, 75.0, 30.0, 90.0, 60.0];
        let year: Vec<i64> = [2001; 6].into_iter().chain([2000; 6]).collect();
        let ce_all: Vec<f64> = ce.iter().map(|v| v * 2.0).chain(ce).collect();
        let cs_all: Vec<f64> = cs.iter().chain(&cs).copied().collect();
        TableBuilder::new()
            .str("unit_id", &ids)
            .i64("year", year)
            .f64("ce_t_c", ce_all)
            .f64("cs_t_c", cs_all)
            .build()
            .unwrap()
    }

    #[test]
    fn carbon_gini_per_year_matches_the_fixture() {
        let (out, warnings) = run(serde_json::json!({ "by": "year" }), two_years()).unwrap();
        assert!(warnings.is_empty());
        let summary = &out[0].1;
        assert_eq!(
            table::column_names(summary),
            [
                "year",
                "gini",
                "centralization",
                "n",
                "warning",
                "centralization_warning",
                "gini_plain",
                "weight"
            ]
        );
        let year: Vec<i64> = summary
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        assert_eq!(year, [2000, 2001]);
        // gini_expected.json: carbon Gini CE vs CS 0.6577620967741936 (hand calculation in
        // methods::gini), centralization 0.5125, inequality.gini.Gini(CE) 0.4270833333333333.
        // Doubling CE (2001) changes no share, so both years agree.
        for g in f64_col(summary, "gini") {
            assert!((g.unwrap() - 0.657_762_096_774_193_6).abs() < 1e-12);
        }
        for c in f64_col(summary, "centralization") {
            assert!((c.unwrap() - 0.5125).abs() < 1e-12);
        }
        for g in f64_col(summary, "gini_plain") {
            assert!((g.unwrap() - 0.427_083_333_333_333_3).abs() < 1e-12);
        }
        assert_eq!(table::bools(summary, "s", "warning").unwrap(), [true, true]);
        assert_eq!(
            table::bools(summary, "s", "centralization_warning").unwrap(),
            [true, true]
        );

        let lorenz = &out[1].1;
        assert_eq!(lorenz.num_rows(), 14);
        let units = table::strings(lorenz, "l", "unit_id").unwrap();
        // Order by CE/CS ascending: u4 (0.2), u2 (0.5), u1 (2), u5 (2), u3 (10), u6 (16).
        assert_eq!(&units[..7], ["", "u4", "u2", "u1", "u5", "u3", "u6"]);
        let x = f64_col(lorenz, "x");
        let y = f64_col(lorenz, "y");
        assert_eq!((x[6], y[6]), (Some(1.0), Some(1.0)));
        assert_eq!((x[1], y[1]), (Some(75.0 / 310.0), Some(15.0 / 800.0)));
    }

    #[test]
    fn runs_sharing_the_row_layout_give_what_separate_runs_give() {
        // As a sweep's draws: the values change and the ids stay, then the ids change too.
        let store = std::sync::Arc::new(crate::engine::reuse::ReuseStore::default());
        let base = two_years();
        let scaled = |k: f64| {
            let ce: Vec<f64> = table::f64s(&base, "t", "ce_t_c")
                .unwrap()
                .iter()
                .enumerate()
                .map(|(i, v)| v * (1.0 + k * i as f64))
                .collect();
            let mut columns = base.columns().to_vec();
            columns[2] = std::sync::Arc::new(arrow_array::Float64Array::from(ce));
            RecordBatch::try_new(base.schema(), columns).unwrap()
        };
        let renamed = {
            let mut columns = base.columns().to_vec();
            let ids = ["u1", "u2", "u3", "u4", "u5", "u6"];
            let all: Vec<&str> = ids.iter().chain(&ids).copied().collect();
            columns[0] = std::sync::Arc::new(arrow_array::StringArray::from(all));
            RecordBatch::try_new(base.schema(), columns).unwrap()
        };
        for (n, t) in [scaled(0.0), scaled(0.1), scaled(0.3), renamed].into_iter().enumerate() {
            let params = serde_json::json!({ "by": "year" });
            let tables = vec![("table", t)];
            let shared =
                testing::run_sharing::<Inequality>(&store, params.clone(), tables.clone())
                    .unwrap();
            let alone = testing::run::<Inequality>(params, tables).unwrap();
            assert_eq!(shared, alone, "case {n}");
        }
    }

    #[test]
    fn equal_weights_give_the_plain_gini() {
        let (out, _) = run(
            serde_json::json!({ "year": 2000, "weight": "equal", "warning_line": 0.45 }),
            two_years(),
        )
        .unwrap();
        let summary = &out[0].1;
        assert_eq!(table::column_names(summary)[0], "gini");
        assert!((f64_col(summary, "gini")[0].unwrap() - 0.427_083_333_333_333_3).abs() < 1e-12);
        // 0.427 < 0.45 ≤ 0.5125.
        assert_eq!(table::bools(summary, "s", "warning").unwrap(), [false]);
        assert_eq!(
            table::bools(summary, "s", "centralization_warning").unwrap(),
            [true]
        );
        // Lorenz x steps of 1/6.
        let x = f64_col(&out[1].1, "x");
        assert!((x[1].unwrap() - 1.0 / 6.0).abs() < 1e-15);
    }

    #[test]
    fn several_years_without_by_is_an_error() {
        let err = run(serde_json::json!({}), two_years()).unwrap_err();
        assert!(
            err.message.contains("2 years (2000, 2001)"),
            "{}",
            err.message
        );
        assert!(err.hint.unwrap().contains("by: year"));
    }

    #[test]
    fn negative_value_names_the_unit() {
        let t = TableBuilder::new()
            .str("unit_id", &["a", "b", "c"])
            .f64("ce_t_c", vec![1.0, -2.0, 3.0])
            .f64("cs_t_c", vec![1.0, 1.0, 1.0])
            .build()
            .unwrap();
        let err = run(serde_json::json!({}), t).unwrap_err();
        assert!(
            err.message.contains("unit `b`")
                && err.message.contains("`ce_t_c`")
                && err.message.contains("negative"),
            "{}",
            err.message
        );
    }

    #[test]
    fn tiny_and_zero_groups_give_nulls_and_warnings() {
        // Group "a" has one unit; group "b" has no sinks at all (weights sum to zero).
        let t = TableBuilder::new()
            .str("unit_id", &["x", "y", "z"])
            .str("zone", &["a", "b", "b"])
            .f64("ce_t_c", vec![5.0, 1.0, 3.0])
            .f64("cs_t_c", vec![1.0, 0.0, 0.0])
            .build()
            .unwrap();
        let (out, warnings) = run(serde_json::json!({ "by": "zone" }), t).unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[1].contains("zone = b") && warnings[1].contains("cs_t_c"),
            "{warnings:?}"
        );
        let summary = &out[0].1;
        assert_eq!(f64_col(summary, "gini"), [None, None]);
        // Centralization needs only the values: b holds 1 and 3 → A = 75 + 100, I = 0.5.
        assert_eq!(f64_col(summary, "centralization"), [None, Some(0.5)]);
        assert_eq!(out[1].1.num_rows(), 0);
    }

    const THEIL: &str = include_str!("../../tests/fixtures/stats/theil_expected.json");
    const EDGES: &str = include_str!("../../tests/fixtures/stats/henan_units123_edges.csv");

    #[test]
    fn theil_and_its_decomposition_match_pysal_theild() {
        let expected: serde_json::Value = serde_json::from_str(THEIL).unwrap();
        let close = |got: Option<f64>, key: &str, case: &str| {
            let want = expected[case][key].as_f64().unwrap();
            assert!(
                (got.unwrap() - want).abs() < 1e-9,
                "{case} {key}: {got:?} vs PySAL {want}"
            );
        };
        // Six units in two groups (u1 a, u2 b, u3 a, u4 b, u5 b, u6 a; rows run u6 … u1), two
        // years (2001 doubles CE, which changes no share).
        let groups: Vec<&str> = ["a", "b", "b", "a", "b", "a"].repeat(2);
        let mut t = two_years();
        t = TableBuilder::new()
            .array("unit_id", t.column(0).clone())
            .array("year", t.column(1).clone())
            .array("ce_t_c", t.column(2).clone())
            .array("cs_t_c", t.column(3).clone())
            .str("zone", &groups)
            .build()
            .unwrap();
        let (out, _) = run(
            serde_json::json!({ "by": "year", "indices": ["gini", "theil"], "groups": "zone" }),
            t,
        )
        .unwrap();
        let summary = &out[0].1;
        assert_eq!(
            table::column_names(summary),
            [
                "year",
                "gini",
                "centralization",
                "n",
                "warning",
                "centralization_warning",
                "gini_plain",
                "weight",
                "theil",
                "theil_between",
                "theil_within"
            ]
        );
        for row in 0..2 {
            close(f64_col(summary, "theil")[row], "theil", "six_units");
            close(
                f64_col(summary, "theil_between")[row],
                "theil_between",
                "six_units",
            );
            close(
                f64_col(summary, "theil_within")[row],
                "theil_within",
                "six_units",
            );
        }

        // 123 Henan counties, reference_domain.py's `clustered` value grouped by prefecture.
        let mut ids: Vec<i64> = EDGES
            .lines()
            .skip(1)
            .flat_map(|l| l.split(',').map(|v| v.parse::<i64>().unwrap()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let value: Vec<f64> = ids
            .iter()
            .map(|id| ((id / 100) % 100) as f64 + 0.5 * (id % 7) as f64)
            .collect();
        let prefecture: Vec<String> = ids.iter().map(|id| (id / 100).to_string()).collect();
        let t = TableBuilder::new()
            .i64("unit_id", ids)
            .f64("v", value)
            .str("prefecture", &prefecture)
            .build()
            .unwrap();
        let (out, _) = run(
            serde_json::json!({ "value": "v", "indices": ["theil"], "groups": "prefecture" }),
            t,
        )
        .unwrap();
        let summary = &out[0].1;
        assert_eq!(
            table::column_names(summary),
            ["n", "theil", "theil_between", "theil_within"]
        );
        let case = "henan_clustered_by_prefecture";
        close(f64_col(summary, "theil")[0], "theil", case);
        close(f64_col(summary, "theil_between")[0], "theil_between", case);
        close(f64_col(summary, "theil_within")[0], "theil_within", case);
        assert_eq!(out[1].1.num_rows(), 0, "no Lorenz points without `gini`");
    }

    #[test]
    fn theil_of_a_zero_value_names_the_unit() {
        let t = TableBuilder::new()
            .str("unit_id", &["a", "b", "c"])
            .f64("ce_t_c", vec![1.0, 0.0, 3.0])
            .build()
            .unwrap();
        let err = run(serde_json::json!({ "indices": ["theil"] }), t).unwrap_err();
        assert!(
            err.message.contains("unit `b`") && err.message.contains("`ce_t_c` is 0"),
            "{}",
            err.message
        );
        assert!(err.hint.unwrap().contains("undefined at zero"));
        let t = TableBuilder::new()
            .str("unit_id", &["a", "b"])
            .f64("ce_t_c", vec![1.0, 2.0])
            .build()
            .unwrap();
        let err = run(serde_json::json!({ "groups": "zone" }), t).unwrap_err();
        assert!(err.message.contains("no `theil`"), "{}", err.message);
    }

    #[test]
    fn duplicate_units_are_an_error() {
        let t = TableBuilder::new()
            .str("unit_id", &["a", "b", "a"])
            .f64("ce_t_c", vec![1.0, 2.0, 3.0])
            .f64("cs_t_c", vec![1.0, 1.0, 1.0])
            .build()
            .unwrap();
        let err = run(serde_json::json!({}), t).unwrap_err();
        assert!(
            err.message.contains("unit `a` appears twice"),
            "{}",
            err.message
        );
    }
}
