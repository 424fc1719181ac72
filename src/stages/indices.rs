//! `indices`: carbon-budget indices per unit and year (CE, CS, NCE, CI, CCR, ECC, ESC, SS,
//! per-capita CE), per-unit multi-year means, and regional totals per year.
//!
//! A unit with zero emission in a year makes CCR, ECC and ESC infinite: those cells are null
//! and the stage warns, naming the first such unit.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::engine::stage::{
    Inputs, OutputDecl, Outputs, ParamDoc, Port, Stage, StageContext, StageError,
};
use crate::methods::indices::{Budget, UnitIndices, totals, unit_indices};
use crate::table::schema::TableSchema;
use crate::stages::shared::carbon_panel::{MissingPolicy, Panel, gdp_value, str_col};
use crate::table::{f64s, i64s};

/// The `indices` stage kind.
pub struct Indices;

fn default_gdp_column() -> String {
    "gdp_10k_yuan".to_owned()
}
#[allow(clippy::unnecessary_wraps)]
fn default_population_column() -> Option<String> {
    Some("population".to_owned())
}
fn default_deflator_base() -> f64 {
    100.0
}

/// Parameters of `indices`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// GDP column of `economy`, 10^4 yuan.
    #[serde(default = "default_gdp_column")]
    pub gdp_column: String,
    /// Price-index column of `economy`; when set, GDP is at constant prices
    /// (GDP × `deflator_base` / deflator).
    #[serde(default)]
    pub deflator_column: Option<String>,
    /// Deflator value of the base year.
    #[serde(default = "default_deflator_base")]
    pub deflator_base: f64,
    /// Population column of `economy` (persons or 10^4 persons); `null` to skip per-capita CE.
    #[serde(default = "default_population_column")]
    pub population_column: Option<String>,
    /// `error` (default), `zero` or `interpolate` for unit-years missing from a table.
    #[serde(default)]
    pub missing: MissingPolicy,
}

const PARAMS: &[ParamDoc] = &[
    ParamDoc {
        name: "gdp_column",
        ty: "string",
        default: "",
        doc: "GDP column of `economy` (10^4 yuan)",
    },
    ParamDoc {
        name: "deflator_column",
        ty: "string?",
        default: "null",
        doc: "price-index column of `economy` for constant-price GDP",
    },
    ParamDoc {
        name: "deflator_base",
        ty: "float",
        default: "",
        doc: "deflator value of the base year",
    },
    ParamDoc {
        name: "population_column",
        ty: "string?",
        default: "",
        doc: "population column of `economy`; null to leave out per-capita CE",
    },
    ParamDoc {
        name: "missing",
        ty: "error|zero|interpolate",
        default: "",
        doc: "policy for unit-years missing from `emission`, `sink` or `economy`",
    },
];

/// The rows of a long table (`unit_id`, `year`, values) grouped by unit and year: what the
/// per-unit-year sums need besides the values, found from the key columns alone so that runs
/// whose key columns do not change (a sweep's draws) find it once.
struct UnitYearRows {
    /// The rows, unit-year by unit-year (table order within each).
    order: Vec<usize>,
    /// Where each unit-year starts in `order`, and `order.len()` at the end.
    starts: Vec<usize>,
    /// Each unit-year, sorted by unit then year.
    keys: Vec<(String, i64)>,
}

impl UnitYearRows {
    fn new(batch: &arrow_array::RecordBatch, table: &str) -> Result<Self, StageError> {
        let units = str_col(batch, table, "unit_id", true)?;
        let years = i64s(batch, table, "year")?;
        let key = |i: usize| (units.get(i), years[i]);
        let mut order: Vec<usize> = (0..years.len()).collect();
        // Upstream stages write their rows grouped by unit and year: then no ids are sorted.
        if !(1..years.len()).all(|i| key(i - 1) <= key(i)) {
            order.sort_by(|a, b| key(*a).cmp(&key(*b)));
        }
        let mut starts = Vec::new();
        let mut keys = Vec::new();
        for (k, &i) in order.iter().enumerate() {
            if k == 0 || key(order[k - 1]) != key(i) {
                starts.push(k);
                keys.push((units.get(i).to_owned(), years[i]));
            }
        }
        starts.push(order.len());
        Ok(Self {
            order,
            starts,
            keys,
        })
    }

    /// The key columns the grouping is found from.
    fn key_columns(
        batch: &arrow_array::RecordBatch,
        table: &str,
    ) -> Result<[arrow_array::ArrayRef; 2], StageError> {
        Ok([
            Arc::clone(crate::table::column(batch, table, "unit_id")?),
            Arc::clone(crate::table::column(batch, table, "year")?),
        ])
    }

    /// Sums the value column `column` per unit-year (in the order of `keys`); values must be
    /// finite and ≥ 0.
    ///
    /// Each unit-year's values are added in ascending order, so the sum (float addition is not
    /// associative) is the same however the table's rows are ordered.
    fn sums(
        &self,
        batch: &arrow_array::RecordBatch,
        table: &str,
        column: &str,
    ) -> Result<Vec<f64>, StageError> {
        let values = float_values(batch, table, column)?;
        if let Some(i) = values.iter().position(|v| !v.is_finite() || *v < 0.0) {
            let units = str_col(batch, table, "unit_id", true)?;
            let years = i64s(batch, table, "year")?;
            return Err(StageError::data(format!(
                "`{table}` row {}: unit `{}`, year {}: `{column}` is {}",
                i + 1,
                units.get(i),
                years[i],
                values[i]
            ))
            .with_hint("gross emission and absorption are finite and ≥ 0 t C"));
        }
        let mut group: Vec<f64> = Vec::new();
        Ok(self
            .starts
            .windows(2)
            .map(|w| {
                group.clear();
                group.extend(self.order[w[0]..w[1]].iter().map(|&i| values[i]));
                // Values equal under `total_cmp` have the same bits, so an unstable sort adds
                // them in the same order as a stable one; on a few values it is cheaper.
                group.sort_unstable_by(f64::total_cmp);
                group[1..].iter().fold(group[0], |sum, v| sum + v)
            })
            .collect())
    }

    /// The sums as a panel, for unit-years that one table has and the other lacks.
    fn panel(&self, table: &str, column: &str, sums: &[f64]) -> Panel {
        let mut rows: BTreeMap<String, BTreeMap<i64, Vec<f64>>> = BTreeMap::new();
        for ((unit, year), sum) in self.keys.iter().zip(sums) {
            rows.entry(unit.clone())
                .or_default()
                .insert(*year, vec![*sum]);
        }
        Panel::from_rows(table, &[column], rows)
    }
}

/// A float column's values: the array's own buffer when it has no nulls (as the carbon kinds
/// write it), otherwise converted (nulls as NaN).
fn float_values<'b>(
    batch: &'b arrow_array::RecordBatch,
    table: &str,
    column: &str,
) -> Result<std::borrow::Cow<'b, [f64]>, StageError> {
    use arrow_array::Array;
    let array = crate::table::column(batch, table, column)?;
    match array.as_any().downcast_ref::<arrow_array::Float64Array>() {
        Some(a) if a.null_count() == 0 => Ok(a.values().as_ref().into()),
        _ => Ok(f64s(batch, table, column)?.into()),
    }
}

/// The unit-year rows of `emission` and `sink`, shared by the runs whose key columns are the
/// same (a sweep's draws, which change values only).
fn unit_year_rows(
    inputs: &Inputs,
    ctx: &StageContext,
) -> Result<Arc<(UnitYearRows, UnitYearRows)>, StageError> {
    let (emission, sink) = (inputs.table("emission")?, inputs.table("sink")?);
    let mut columns = UnitYearRows::key_columns(emission, "emission")?.to_vec();
    columns.extend(UnitYearRows::key_columns(sink, "sink")?);
    ctx.reuse_over("unit_year_rows", &columns, &(), || {
        Ok((
            UnitYearRows::new(emission, "emission")?,
            UnitYearRows::new(sink, "sink")?,
        ))
    })
}

/// CE and CS (t C) per unit-year of `emission` or `sink`, sorted by unit then year.
enum Sums<'a> {
    /// Both tables have the same unit-years (as the carbon stages write them).
    Aligned {
        keys: &'a [(String, i64)],
        ce: Vec<f64>,
        cs: Vec<f64>,
    },
    /// A unit-year one table lacks is filled by the `missing` policy.
    Filled {
        keys: Vec<(&'a str, i64)>,
        ce: Panel,
        cs: Panel,
    },
}

impl<'a> Sums<'a> {
    fn new(inputs: &Inputs, rows: &'a (UnitYearRows, UnitYearRows)) -> Result<Self, StageError> {
        let (ce_rows, cs_rows) = rows;
        let ce = ce_rows.sums(inputs.table("emission")?, "emission", "emission_t_c")?;
        let cs = cs_rows.sums(inputs.table("sink")?, "sink", "sink_t_c")?;
        if ce_rows.keys == cs_rows.keys {
            return Ok(Self::Aligned {
                keys: &ce_rows.keys,
                ce,
                cs,
            });
        }
        let mut keys: Vec<(&str, i64)> = ce_rows
            .keys
            .iter()
            .chain(&cs_rows.keys)
            .map(|(u, y)| (u.as_str(), *y))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        Ok(Self::Filled {
            keys,
            ce: ce_rows.panel("emission", "emission_t_c", &ce),
            cs: cs_rows.panel("sink", "sink_t_c", &cs),
        })
    }

    fn keys(&self) -> Vec<(&'a str, i64)> {
        match self {
            Self::Aligned { keys, .. } => keys.iter().map(|(u, y)| (u.as_str(), *y)).collect(),
            Self::Filled { keys, .. } => keys.clone(),
        }
    }

    /// CE and CS of unit-year number `k`.
    fn get(&self, k: usize, missing: MissingPolicy) -> Result<(f64, f64), StageError> {
        match self {
            Self::Aligned { ce, cs, .. } => Ok((ce[k], cs[k])),
            Self::Filled { keys, ce, cs } => {
                let (u, y) = keys[k];
                Ok((ce.get(u, y, 0, missing)?, cs.get(u, y, 0, missing)?))
            }
        }
    }

    /// Warns about the values the `missing` policy filled.
    fn report(&self, ctx: &StageContext, missing: MissingPolicy) {
        if let Self::Filled { ce, cs, .. } = self {
            ce.report(ctx, missing);
            cs.report(ctx, missing);
        }
    }
}

fn mean(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let (mut s, mut n) = (0.0, 0u32);
    for v in values.flatten() {
        s += v;
        n += 1;
    }
    (n > 0).then(|| s / f64::from(n))
}

impl Stage for Indices {
    const KIND: &'static str = "indices";
    const VERSION: u32 = 2;
    const DOC: &'static str = "Carbon-budget indices per unit and year: CE, CS, NCE = CE − CS (t C), CI = CE/GDP (t C per 10^4 yuan), \
        CCR = CS/CE, ECC = (G_i/G)/(CE_i/CE), ESC = (CS_i/CS)/(CE_i/CE), SS = CE/CS; multi-year means per unit and regional totals per year. \
        A unit with zero emission gets null CCR/ECC/ESC and a warning.";
    const PARAMS: &'static [ParamDoc] = PARAMS;
    type Params = Params;

    #[cfg(test)]
    fn declaration_examples() -> Vec<crate::engine::stage::Example> {
        use crate::engine::stage::Example;
        use crate::stages::testing::study;
        use serde_json::json;
        vec![Example::new(
            json!({}),
            vec![
                ("emission", study::emission()),
                ("sink", study::sink()),
                ("economy", study::economy()),
            ],
        )]
    }

    fn ports(params: &Params) -> Vec<Port> {
        let mut econ = vec![
            "unit_id".to_owned(),
            "year".to_owned(),
            params.gdp_column.clone(),
        ];
        econ.extend(params.deflator_column.clone());
        econ.extend(params.population_column.clone());
        vec![
            Port::required(
                "emission",
                "emission per unit, year and source (`emission` output)",
            )
            .with_columns(["unit_id", "year", "emission_t_c"]),
            Port::required(
                "sink",
                "absorption per unit, year and class (`sink` output)",
            )
            .with_columns(["unit_id", "year", "sink_t_c"]),
            Port::required(
                "economy",
                "GDP (10^4 yuan) and population per unit and year",
            )
            .with_columns(econ),
        ]
    }

    fn outputs(params: &Params) -> Vec<OutputDecl> {
        let t = Tables::new(params);
        vec![t.indices.decl(), t.means.decl(), t.totals.decl()]
    }

    fn validate(params: &Params) -> Result<(), StageError> {
        if !(params.deflator_base.is_finite() && params.deflator_base > 0.0) {
            return Err(StageError::data("`deflator_base` must be > 0"));
        }
        Ok(())
    }

    fn run(params: &Params, inputs: &Inputs, ctx: &StageContext) -> Result<Outputs, StageError> {
        let rows = unit_year_rows(inputs, ctx)?;
        // every unit-year that has an emission or a sink, sorted by unit then year
        let sums = Sums::new(inputs, &rows)?;
        let layout = Layout::shared(params, inputs, &sums, ctx)?;
        let budgets = budgets(&sums, &layout, params.missing)?;
        if let Some(w) = &layout.small_population {
            ctx.warn(w.clone());
        }
        sums.report(ctx, params.missing);
        for w in &layout.economy_warnings {
            ctx.warn(w.clone());
        }

        let (rows, totals) = yearly_rows(&layout, &budgets);
        warn_zero_emission(&rows, ctx);
        let means = unit_means(&layout, &rows);
        let tables = Tables::new(params);
        // A sweep's draws may read only some tables: the others are left empty.
        let read = |name: &str| ctx.output_read(name);
        let t = &layout.templates;
        Ok(vec![
            built_if_read(read("indices"), &tables.indices, &rows, &t.indices, &["unit_id", "year"])?,
            built_if_read(read("means"), &tables.means, &means, &t.means, &["unit_id", "n_years"])?,
            built_if_read(read("totals"), &tables.totals, &totals, &t.totals, &["year", "n_units"])?,
        ])
    }
}

/// `schema`'s table of `rows` with the `kept` columns taken from `template` (see
/// [`TableSchema::build_keeping`]), or the empty table when nothing reads it.
fn built_if_read<R>(
    read: bool,
    schema: &TableSchema<R>,
    rows: &[R],
    template: &arrow_array::RecordBatch,
    kept: &[&str],
) -> Result<(String, arrow_array::RecordBatch), StageError> {
    if read {
        schema.build_keeping(rows, template, kept)
    } else {
        schema.build(&[])
    }
}

/// Each unit-year's CE, CS, GDP and population.
fn budgets(
    sums: &Sums<'_>,
    layout: &Layout,
    missing: MissingPolicy,
) -> Result<Vec<Budget>, StageError> {
    let budget = |(ce_t_c, cs_t_c): (f64, f64), (gdp_10k_yuan, population): (f64, Option<f64>)| {
        Budget {
            ce_t_c,
            cs_t_c,
            gdp_10k_yuan,
            population,
        }
    };
    // The usual case, without a value to fill or a lookup that failed: no error to carry
    // through each unit-year.
    if let (Sums::Aligned { ce, cs, .. }, None) = (sums, &layout.economy_failure) {
        return Ok(ce
            .iter()
            .zip(cs)
            .zip(&layout.economy)
            .map(|((ce, cs), economy)| budget((*ce, *cs), *economy))
            .collect());
    }
    (0..layout.keys.len())
        .map(|k| Ok(budget(sums.get(k, missing)?, layout.economy(k)?)))
        .collect()
}

/// What the tables need besides CE and CS, found from the unit-years and the `economy` table
/// alone: a sweep's draws, which change only the values of `emission` and `sink`, share it
/// (with the key columns of the output tables, which then reach the stages downstream as the
/// same arrays in every draw).
struct Layout {
    /// The unit-years, sorted by unit then year.
    keys: Vec<(String, i64)>,
    /// Per unit-year: GDP (10^4 yuan, at constant prices with a deflator) and population, up
    /// to the first unit-year whose lookup failed.
    economy: Vec<(f64, Option<f64>)>,
    /// That unit-year and its error.
    economy_failure: Option<(usize, StageError)>,
    /// The warnings of the lookups: filled values, units of `economy` the study does not have.
    economy_warnings: Vec<String>,
    /// The warning about a population that looks like 10^4 persons.
    small_population: Option<String>,
    /// Each year with its unit-years (indices into `keys`), years ascending.
    years: Vec<(i64, Vec<usize>)>,
    /// Each unit's unit-years, as a range of `keys`.
    units: Vec<std::ops::Range<usize>>,
    /// The three tables with their key columns filled and placeholder values.
    templates: Templates,
}

struct Templates {
    indices: arrow_array::RecordBatch,
    means: arrow_array::RecordBatch,
    totals: arrow_array::RecordBatch,
}

impl Layout {
    /// The layout of these unit-years and this `economy` table, shared by the runs whose key
    /// columns and economy columns hold the same values.
    fn shared(
        params: &Params,
        inputs: &Inputs,
        sums: &Sums<'_>,
        ctx: &StageContext,
    ) -> Result<Arc<Self>, StageError> {
        let economy = inputs.table("economy")?;
        let mut columns = Vec::new();
        for (batch, table) in [
            (inputs.table("emission")?, "emission"),
            (inputs.table("sink")?, "sink"),
        ] {
            columns.extend(UnitYearRows::key_columns(batch, table)?);
        }
        let mut economy_columns = vec!["unit_id", "year", params.gdp_column.as_str()];
        economy_columns.extend(params.deflator_column.as_deref());
        economy_columns.extend(params.population_column.as_deref());
        for name in economy_columns {
            columns.push(Arc::clone(crate::table::column(economy, "economy", name)?));
        }
        ctx.reuse_over("layout", &columns, params, || {
            Self::new(params, inputs, sums.keys(), ctx)
        })
    }

    fn new(
        params: &Params,
        inputs: &Inputs,
        keys: Vec<(&str, i64)>,
        ctx: &StageContext,
    ) -> Result<Self, StageError> {
        let panel = Economy::read(params, inputs, ctx)?;
        let mut economy = Vec::with_capacity(keys.len());
        let mut economy_failure = None;
        for (k, &(u, y)) in keys.iter().enumerate() {
            let looked_up = panel
                .gdp(params, u, y)
                .and_then(|g| Ok((g, panel.population(params, u, y)?)));
            match looked_up {
                Ok(v) => economy.push(v),
                Err(e) => {
                    economy_failure = Some((k, e));
                    break;
                }
            }
        }
        let mut used: Vec<&str> = keys.iter().map(|(u, _)| *u).collect();
        used.dedup();
        let economy_warnings = panel
            .panel
            .filled_warning(params.missing)
            .into_iter()
            .chain(
                panel
                    .panel
                    .unused_units_warning(&|u| used.binary_search(&u).is_ok()),
            )
            .collect();
        let small_population = small_population(economy.iter().filter_map(|(_, p)| *p));
        let mut by_year: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for (i, (_, y)) in keys.iter().enumerate() {
            by_year.entry(*y).or_default().push(i);
        }
        let mut units = Vec::new();
        for (k, (u, _)) in keys.iter().enumerate() {
            if k == 0 || keys[k - 1].0 != *u {
                units.push(k..k);
            }
            units.last_mut().expect("a unit was pushed").end = k + 1;
        }
        let mut layout = Self {
            keys: keys.iter().map(|&(u, y)| (u.to_owned(), y)).collect(),
            economy,
            economy_failure,
            economy_warnings,
            small_population,
            years: by_year.into_iter().collect(),
            units,
            templates: Templates::empty(),
        };
        // A run whose lookups failed stops before it builds a table.
        if layout.economy_failure.is_none() {
            layout.templates = layout.templates(params)?;
        }
        Ok(layout)
    }

    /// GDP and population of unit-year `k`.
    fn economy(&self, k: usize) -> Result<(f64, Option<f64>), StageError> {
        match (self.economy.get(k), &self.economy_failure) {
            (Some(v), _) => Ok(*v),
            (None, Some((_, e))) => Err(e.clone()),
            (None, None) => Err(StageError::internal("a unit-year without its economy")),
        }
    }

    /// The output tables with placeholder values, whose key columns every run keeps.
    fn templates(&self, params: &Params) -> Result<Templates, StageError> {
        let zero = Budget {
            ce_t_c: 0.0,
            cs_t_c: 0.0,
            gdp_10k_yuan: 0.0,
            population: None,
        };
        let budgets = vec![zero; self.economy.len()];
        let (rows, totals) = yearly_rows(self, &budgets);
        let means = unit_means(self, &rows);
        let tables = Tables::new(params);
        Ok(Templates {
            indices: tables.indices.build(&rows)?.1,
            means: tables.means.build(&means)?.1,
            totals: tables.totals.build(&totals)?.1,
        })
    }
}

impl Templates {
    fn empty() -> Self {
        let empty = || arrow_array::RecordBatch::new_empty(Arc::new(arrow_schema::Schema::empty()));
        Self {
            indices: empty(),
            means: empty(),
            totals: empty(),
        }
    }
}

/// The `economy` panel and where its population column sits.
struct Economy {
    panel: Panel,
    population: Option<usize>,
}

impl Economy {
    fn read(params: &Params, inputs: &Inputs, ctx: &StageContext) -> Result<Self, StageError> {
        let mut columns = vec![params.gdp_column.as_str()];
        columns.extend(params.deflator_column.as_deref());
        let population = params.population_column.as_ref().map(|c| {
            columns.push(c);
            columns.len() - 1
        });
        // The same in every draw of a sweep that varies other stages: read it once.
        let values = ctx.reuse("economy", &["economy"], &columns, || {
            Ok(Panel::read(inputs.table("economy")?, "economy", &columns, true)?.values())
        })?;
        let panel = Panel::over(Arc::clone(&values));
        Ok(Self { panel, population })
    }

    /// GDP at constant prices when a deflator is given.
    fn gdp(&self, params: &Params, unit: &str, year: i64) -> Result<f64, StageError> {
        let base = params
            .deflator_column
            .as_ref()
            .map(|_| params.deflator_base);
        gdp_value(
            &self.panel,
            unit,
            year,
            base,
            params.missing,
            &params.gdp_column,
        )
    }

    fn population(
        &self,
        params: &Params,
        unit: &str,
        year: i64,
    ) -> Result<Option<f64>, StageError> {
        let Some(column) = self.population else {
            return Ok(None);
        };
        let p = self.panel.get(unit, year, column, params.missing)?;
        if p <= 0.0 {
            return Err(StageError::data(format!(
                "`economy`: unit `{unit}`, year {year}: population is {p}"
            ))
            .with_hint("population must be > 0"));
        }
        Ok(Some(p))
    }
}

/// The values of one row of any of the three tables: a unit-year, a unit's means over its
/// years, or a year's regional totals.
#[derive(Debug, Clone, Copy)]
struct Values {
    ce_t_c: f64,
    cs_t_c: f64,
    nce_t_c: f64,
    gdp_10k_yuan: f64,
    ci_t_per_10k_yuan: Option<f64>,
    ccr: Option<f64>,
    ecc: Option<f64>,
    esc: Option<f64>,
    ss: Option<f64>,
    population: Option<f64>,
    ce_per_capita_t_c: Option<f64>,
}

impl Values {
    fn new(b: &Budget, ix: &UnitIndices) -> Self {
        Self {
            ce_t_c: b.ce_t_c,
            cs_t_c: b.cs_t_c,
            nce_t_c: ix.nce_t_c,
            gdp_10k_yuan: b.gdp_10k_yuan,
            ci_t_per_10k_yuan: ix.ci_t_per_10k_yuan,
            ccr: ix.ccr,
            ecc: ix.ecc,
            esc: ix.esc,
            ss: ix.ss,
            population: b.population,
            ce_per_capita_t_c: ix.ce_per_capita_t_c,
        }
    }
}

/// A row of `indices` (unit and year), `means` (unit; `count` years) or `totals` (year;
/// `count` units).
struct Row<'a> {
    unit: &'a str,
    year: i64,
    count: i64,
    v: Values,
}

/// The three output tables, declared once for `outputs` and `run`.
struct Tables<'a> {
    indices: TableSchema<Row<'a>>,
    means: TableSchema<Row<'a>>,
    totals: TableSchema<Row<'a>>,
}

impl Tables<'_> {
    fn new(params: &Params) -> Self {
        let population = params.population_column.is_some();
        let indices = TableSchema::<Row<'_>>::new("indices", "one row per unit and year")
            .text("unit_id", |r| r.unit)
            .int("year", |r| r.year);
        let means = TableSchema::<Row<'_>>::new(
            "means",
            "per unit: means over its years (of the yearly values; nulls skipped)",
        )
        .text("unit_id", |r| r.unit);
        let totals = TableSchema::<Row<'_>>::new(
            "totals",
            "per year: regional sums and the regional ratios",
        )
        .int("year", |r| r.year);
        Self {
            indices: value_columns(indices, true, population),
            means: value_columns(means, true, population).int("n_years", |r| r.count),
            totals: value_columns(totals, false, population).int("n_units", |r| r.count),
        }
    }
}

/// The index columns every table shares; ECC and ESC compare a unit with its region, so the
/// regional totals leave them out.
fn value_columns<'a>(
    table: TableSchema<Row<'a>>,
    ecc_esc: bool,
    population: bool,
) -> TableSchema<Row<'a>> {
    table
        .float("ce_t_c", |r| r.v.ce_t_c)
        .float("cs_t_c", |r| r.v.cs_t_c)
        .float("nce_t_c", |r| r.v.nce_t_c)
        .float("gdp_10k_yuan", |r| r.v.gdp_10k_yuan)
        .float_or_null("ci_t_per_10k_yuan", |r| r.v.ci_t_per_10k_yuan)
        .float_or_null("ccr", |r| r.v.ccr)
        .when(ecc_esc, |t| {
            t.float_or_null("ecc", |r| r.v.ecc)
                .float_or_null("esc", |r| r.v.esc)
        })
        .float_or_null("ss", |r| r.v.ss)
        .when(population, |t| {
            t.float_or_null("population", |r| r.v.population)
                .float_or_null("ce_per_capita_t_c", |r| r.v.ce_per_capita_t_c)
        })
}

/// The `indices` rows (in `keys` order) and the `totals` rows: the indices of a unit compare
/// it with the other units of its year, so they are computed a year at a time.
fn yearly_rows<'a>(layout: &'a Layout, budgets: &[Budget]) -> (Vec<Row<'a>>, Vec<Row<'a>>) {
    let mut ix: Vec<Option<UnitIndices>> = vec![None; budgets.len()];
    let mut total_rows = Vec::with_capacity(layout.years.len());
    let mut b: Vec<Budget> = Vec::new();
    for (year, idx) in &layout.years {
        b.clear();
        b.extend(idx.iter().map(|&i| budgets[i]));
        for (&i, v) in idx.iter().zip(unit_indices(&b)) {
            ix[i] = Some(v);
        }
        let t = totals(&b);
        let region = Budget {
            ce_t_c: t.ce_t_c,
            cs_t_c: t.cs_t_c,
            gdp_10k_yuan: t.gdp_10k_yuan,
            population: t.population,
        };
        total_rows.push(Row {
            unit: "",
            year: *year,
            count: i64::try_from(idx.len()).expect("fewer than 2^63 units"),
            v: Values::new(&region, &unit_indices(&[region])[0]),
        });
    }
    let rows = layout
        .keys
        .iter()
        .zip(budgets)
        .zip(ix)
        .map(|(((unit, year), b), ix)| Row {
            unit,
            year: *year,
            count: 1,
            v: Values::new(b, &ix.expect("every unit-year belongs to one year")),
        })
        .collect();
    (rows, total_rows)
}

/// A unit with zero emission has no CCR, ECC or ESC.
fn warn_zero_emission(rows: &[Row<'_>], ctx: &StageContext) {
    let zero: Vec<&Row<'_>> = rows.iter().filter(|r| r.v.ce_t_c == 0.0).collect();
    if let Some(first) = zero.first() {
        ctx.warn(format!(
            "{} unit-year(s) have zero emission, so CCR, ECC and ESC are infinite and left null (first: unit `{}`, year {})",
            zero.len(),
            first.unit,
            first.year
        ));
    }
}

/// Per unit, the mean of each value over its years (`rows` in the order of `layout.keys`).
fn unit_means<'a>(layout: &Layout, rows: &[Row<'a>]) -> Vec<Row<'a>> {
    layout
        .units
        .iter()
        .map(|range| {
            let years = &rows[range.clone()];
            let m = |f: fn(&Values) -> Option<f64>| mean(years.iter().map(|r| f(&r.v)));
            let m_or_nan = |f: fn(&Values) -> f64| {
                mean(years.iter().map(|r| Some(f(&r.v)))).unwrap_or(f64::NAN)
            };
            Row {
                unit: years[0].unit,
                year: 0,
                count: i64::try_from(years.len()).expect("fewer than 2^63 years"),
                v: Values {
                    ce_t_c: m_or_nan(|v| v.ce_t_c),
                    cs_t_c: m_or_nan(|v| v.cs_t_c),
                    nce_t_c: m_or_nan(|v| v.nce_t_c),
                    gdp_10k_yuan: m_or_nan(|v| v.gdp_10k_yuan),
                    ci_t_per_10k_yuan: m(|v| v.ci_t_per_10k_yuan),
                    ccr: m(|v| v.ccr),
                    ecc: m(|v| v.ecc),
                    esc: m(|v| v.esc),
                    ss: m(|v| v.ss),
                    population: m(|v| v.population),
                    ce_per_capita_t_c: m(|v| v.ce_per_capita_t_c),
                },
            }
        })
        .collect()
}

/// Median population (persons) below which the column is probably in 10⁴ persons (万人).
/// County-level units in China number tens of thousands of people and more; a median of
/// 10,000 would be a county of the smallest few.
const PERSONS_MEDIAN_FLOOR: f64 = 10_000.0;

/// The warning when the median population over the unit-years is below
/// [`PERSONS_MEDIAN_FLOOR`]: per-capita indices expect persons, and yearbooks print 万人.
fn small_population(populations: impl Iterator<Item = f64>) -> Option<String> {
    let mut pops: Vec<f64> = populations.filter(|p| p.is_finite()).collect();
    if pops.is_empty() {
        return None;
    }
    pops.sort_by(f64::total_cmp);
    let n = pops.len();
    let median = if n % 2 == 1 {
        pops[n / 2]
    } else {
        f64::midpoint(pops[n / 2 - 1], pops[n / 2])
    };
    (median < PERSONS_MEDIAN_FLOOR).then(|| format!(
        "`economy`: the median population is {median}, below 10000 persons: per-capita indices expect persons; \
         if the table is in 万人 (10^4 persons), add `scale: {{ <population column>: 10000 }}` to its `ingest` stage"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::testing;
    use crate::stages::testing::nullable_f64s as col;
    use crate::table::TableBuilder;

    use crate::table::column_names;
    use arrow_array::RecordBatch;

    #[test]
    fn unit_year_sums_do_not_depend_on_row_order() {
        // Added smallest first, 0.6 + 0.6 = 1.2 and 1.2 + 1e16 rounds to 1e16 + 2 (doubles
        // there are 2 apart); in the order 1e16, 0.6, 0.6 the sum would stay 1e16.
        let values = [1e16, 0.6, 0.6];
        for order in [[0, 1, 2], [1, 0, 2], [2, 1, 0]] {
            let t = long(
                &["a", "a", "a"],
                vec![2000; 3],
                "emission_t_c",
                order.iter().map(|&i| values[i]).collect(),
            );
            let rows = UnitYearRows::new(&t, "emission").unwrap();
            assert_eq!(rows.keys, [("a".to_owned(), 2000)]);
            let sums = rows.sums(&t, "emission", "emission_t_c").unwrap();
            assert_eq!(
                sums[0].to_bits(),
                (1e16f64 + 2.0).to_bits(),
                "rows {order:?}"
            );
        }
    }

    #[test]
    fn runs_sharing_unit_years_give_what_separate_runs_give() {
        // As a sweep's draws: one store while the upstream values change (same keys, rows not
        // grouped by unit-year) and then the keys too (a unit-year only `emission` has, filled
        // by `missing: zero`).
        let store = Arc::new(crate::engine::reuse::ReuseStore::new(["economy".to_owned()]));
        let emission = |units: &[&str], years: Vec<i64>, scale: f64| {
            let v = (0..units.len()).map(|i| scale * (i + 1) as f64).collect();
            long(units, years, "emission_t_c", v)
        };
        let cases = [
            emission(&["b", "a", "b", "c"], vec![2000, 2000, 2000, 2000], 1.0),
            emission(&["b", "a", "b", "c"], vec![2000, 2000, 2000, 2000], 2.5),
            emission(&["a", "b", "c", "c"], vec![2000, 2000, 2000, 2001], 3.0),
        ];
        let sink = long(&["a", "b", "c"], vec![2000; 3], "sink_t_c", vec![1.0, 2.0, 3.0]);
        for (n, e) in cases.into_iter().enumerate() {
            let params = serde_json::json!({"missing": "zero"});
            let tables = vec![("emission", e), ("sink", sink.clone()), ("economy", economy())];
            let shared = testing::run_sharing::<Indices>(&store, params.clone(), tables.clone())
                .unwrap();
            let alone = testing::run::<Indices>(params, tables).unwrap();
            assert_eq!(shared, alone, "case {n}");
        }
    }

    fn long(units: &[&str], years: Vec<i64>, col: &str, v: Vec<f64>) -> RecordBatch {
        TableBuilder::new()
            .str("unit_id", units)
            .i64("year", years)
            .str("source", &vec!["x"; units.len()])
            .f64(col, v)
            .build()
            .unwrap()
    }

    fn economy() -> RecordBatch {
        // G = 400, 400, 200 in 2000 and 2001; P = 10, 30, 60
        TableBuilder::new()
            .str("unit_id", &["a", "a", "b", "b", "c", "c"])
            .i64("year", vec![2000, 2001, 2000, 2001, 2000, 2001])
            .f64(
                "gdp_10k_yuan",
                vec![400.0, 400.0, 400.0, 400.0, 200.0, 200.0],
            )
            .f64("population", vec![10.0, 10.0, 30.0, 30.0, 60.0, 60.0])
            .build()
            .unwrap()
    }

    fn run(
        params: serde_json::Value,
        emission: RecordBatch,
        sink: RecordBatch,
        economy: RecordBatch,
    ) -> Result<(Outputs, Vec<String>), StageError> {
        testing::run::<Indices>(
            params,
            vec![("emission", emission), ("sink", sink), ("economy", economy)],
        )
    }

    #[test]
    fn hand_computed_panel() {
        // 2000: CE a = 60 + 40 (two sources) = 100, b = 200, c = 700; CS a = 50, b = 150, c = 50
        // 2001: CE a = 0 (zero-emission unit), b = 300, c = 700; CS 25, 150, 75
        let emission = long(
            &["a", "a", "a", "b", "b", "c", "c"],
            vec![2000, 2000, 2001, 2000, 2001, 2000, 2001],
            "emission_t_c",
            vec![60.0, 40.0, 0.0, 200.0, 300.0, 700.0, 700.0],
        );
        let sink = long(
            &["a", "a", "b", "b", "c", "c"],
            vec![2000, 2001, 2000, 2001, 2000, 2001],
            "sink_t_c",
            vec![50.0, 25.0, 150.0, 150.0, 50.0, 75.0],
        );
        let (out, warnings) = run(serde_json::json!({}), emission, sink, economy()).unwrap();
        let t = &out[0].1;
        let names = column_names(t);
        assert_eq!(
            &names[..10],
            [
                "unit_id",
                "year",
                "ce_t_c",
                "cs_t_c",
                "nce_t_c",
                "gdp_10k_yuan",
                "ci_t_per_10k_yuan",
                "ccr",
                "ecc",
                "esc"
            ]
        );
        // row order a2000, a2001, b2000, b2001, c2000, c2001
        // a2000: ECC = (400/1000)/(100/1000) = 4, ESC = (50/250)/(100/1000) = 2, CI = 0.25, CCR = 0.5
        let ecc = col(t, "ecc");
        let esc = col(t, "esc");
        assert!((ecc[0].unwrap() - 4.0).abs() < 1e-12);
        assert!((esc[0].unwrap() - 2.0).abs() < 1e-12);
        assert_eq!(col(t, "ci_t_per_10k_yuan")[0], Some(0.25));
        assert_eq!(col(t, "ccr")[0], Some(0.5));
        // a2001: zero emission -> null CCR, ECC, ESC and a warning naming the unit
        assert_eq!((ecc[1], esc[1], col(t, "ccr")[1]), (None, None, None));
        assert!(
            warnings.iter().any(|w| w.contains("unit `a`, year 2001")),
            "{warnings:?}"
        );
        // b2001: CE total 1000, CS total 250: ECC = 0.4/0.3 = 1.3333, ESC = 0.6/0.3 = 2
        assert!((ecc[3].unwrap() - 0.4 / 0.3).abs() < 1e-12);
        assert!((esc[3].unwrap() - 2.0).abs() < 1e-12);
        // per capita: c2000 700/60
        assert!((col(t, "ce_per_capita_t_c")[4].unwrap() - 700.0 / 60.0).abs() < 1e-12);

        // means: a: CE (100 + 0)/2 = 50; ECC mean over non-null years = 4; n_years 2
        let m = &out[1].1;
        assert_eq!(col(m, "ce_t_c")[0], Some(50.0));
        assert_eq!(col(m, "ecc")[0], Some(4.0));
        // c: CI (3.5 + 3.5)/2 = 3.5; NCE (650 + 625)/2 = 637.5
        assert_eq!(col(m, "ci_t_per_10k_yuan")[2], Some(3.5));
        assert_eq!(col(m, "nce_t_c")[2], Some(637.5));
        // totals: 2000 CE 1000, CS 250, NCE 750, CI 1000/1000 = 1, CCR 0.25; 2001 CE 1000, CS 250
        let tt = &out[2].1;
        assert_eq!(col(tt, "ce_t_c"), vec![Some(1000.0), Some(1000.0)]);
        assert_eq!(col(tt, "nce_t_c"), vec![Some(750.0), Some(750.0)]);
        assert_eq!(col(tt, "ccr")[0], Some(0.25));
        assert_eq!(col(tt, "ci_t_per_10k_yuan")[0], Some(1.0));
    }

    #[test]
    fn ci_relative_to_region_is_inverse_ecc() {
        // identity CI_i / CI_region = 1 / ECC_i on a pseudo-random panel through the stage
        let mut x = 0x853C_49E6_748F_EA9B_u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 100_000) as f64 / 10.0 + 1.0
        };
        let n = 25;
        let units: Vec<String> = (0..n).map(|i| format!("u{i:02}")).collect();
        let u: Vec<&str> = units.iter().map(String::as_str).collect();
        let e = long(
            &u,
            vec![2010; n],
            "emission_t_c",
            (0..n).map(|_| next()).collect(),
        );
        let s = long(
            &u,
            vec![2010; n],
            "sink_t_c",
            (0..n).map(|_| next()).collect(),
        );
        let g = TableBuilder::new()
            .str("unit_id", &u)
            .i64("year", vec![2010; n])
            .f64("gdp_10k_yuan", (0..n).map(|_| next()).collect())
            .build()
            .unwrap();
        let (out, _) = run(serde_json::json!({"population_column": null}), e, s, g).unwrap();
        let ci_region = col(&out[2].1, "ci_t_per_10k_yuan")[0].unwrap();
        for (ci, ecc) in col(&out[0].1, "ci_t_per_10k_yuan")
            .into_iter()
            .zip(col(&out[0].1, "ecc"))
        {
            let (lhs, rhs) = (ci.unwrap() / ci_region, 1.0 / ecc.unwrap());
            assert!((lhs - rhs).abs() < 1e-9 * rhs.max(1.0), "{lhs} {rhs}");
        }
        assert!(!column_names(&out[0].1).contains(&"population".to_owned()));
    }

    #[test]
    fn population_in_ten_thousands_is_warned_about() {
        let warned =
            |pops: &[f64]| -> Vec<String> { small_population(pops.iter().copied()).into_iter().collect() };
        // Henan's counties in 万人 (郑州市区 494.7, 中牟县 ~ 100, 巩义市 ~ 80): median 100.
        let w = warned(&[494.7369, 100.0, 80.0]);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("median population is 100,") && w[0].contains("scale:"),
            "{w:?}"
        );
        // The same in persons: median 1,000,000, no warning; an even count takes the midpoint
        // (9,000 and 12,000 → 10,500 ≥ 10,000).
        assert!(warned(&[4_947_369.0, 1_000_000.0, 800_000.0]).is_empty());
        assert!(warned(&[9_000.0, 12_000.0]).is_empty());
        assert_eq!(warned(&[8_000.0, 11_000.0]).len(), 1);
    }

    #[test]
    fn missing_economy_row_is_never_hinted_as_zero() {
        let e = long(
            &["a", "b"],
            vec![2000, 2000],
            "emission_t_c",
            vec![1.0, 2.0],
        );
        let s = long(&["a", "b"], vec![2000, 2000], "sink_t_c", vec![1.0, 1.0]);
        let g = TableBuilder::new()
            .str("unit_id", &["a"])
            .i64("year", vec![2000])
            .f64("gdp_10k_yuan", vec![1.0])
            .f64("population", vec![50_000.0])
            .build()
            .unwrap();
        let err = run(serde_json::json!({}), e, s, g).err().unwrap();
        assert!(
            err.message.contains("`economy` has no row for unit `b`"),
            "{}",
            err.message
        );
        let hint = err.hint.unwrap();
        assert!(
            hint.contains("missing: interpolate") && !hint.contains("zero"),
            "{hint}"
        );
    }

    #[test]
    fn missing_and_bad_rows() {
        let e = long(
            &["a", "b"],
            vec![2000, 2000],
            "emission_t_c",
            vec![1.0, 2.0],
        );
        let s = long(&["a"], vec![2000], "sink_t_c", vec![1.0]);
        let g = TableBuilder::new()
            .str("unit_id", &["a", "b"])
            .i64("year", vec![2000, 2000])
            .f64("gdp_10k_yuan", vec![1.0, 1.0])
            .f64("population", vec![50_000.0, 50_000.0])
            .build()
            .unwrap();
        let err = run(serde_json::json!({}), e.clone(), s.clone(), g.clone())
            .err()
            .unwrap();
        assert!(
            err.message.contains("`sink` has no row for unit `b`"),
            "{}",
            err.message
        );
        let (out, w) = run(
            serde_json::json!({"missing": "zero"}),
            e.clone(),
            s.clone(),
            g,
        )
        .unwrap();
        assert_eq!(col(&out[0].1, "cs_t_c")[1], Some(0.0));
        assert_eq!(w.len(), 1);
        // NaN emission and zero GDP are errors naming the unit
        let bad = long(
            &["a", "b"],
            vec![2000, 2000],
            "emission_t_c",
            vec![f64::NAN, 2.0],
        );
        let g0 = TableBuilder::new()
            .str("unit_id", &["a", "b"])
            .i64("year", vec![2000, 2000])
            .f64("gdp_10k_yuan", vec![0.0, 1.0])
            .f64("population", vec![50_000.0, 50_000.0])
            .build()
            .unwrap();
        let err = run(
            serde_json::json!({"missing": "zero"}),
            bad,
            s.clone(),
            g0.clone(),
        )
        .err()
        .unwrap();
        assert!(
            err.message
                .contains("unit `a`, year 2000: `emission_t_c` is NaN"),
            "{}",
            err.message
        );
        let err = run(serde_json::json!({"missing": "zero"}), e, s, g0)
            .err()
            .unwrap();
        assert!(
            err.message
                .contains("unit `a`, year 2000: `gdp_10k_yuan` is 0"),
            "{}",
            err.message
        );
    }
}
