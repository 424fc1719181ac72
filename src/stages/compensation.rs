//! `compensation`: horizontal carbon-compensation quantity and value per unit, year and
//! allowance convention, unmodified (`Q · p`), modified by willingness (Pearl curve of the Engel
//! coefficient) and ability to pay (relative GDP per capita), and balanced so that total paid
//! equals total received.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::stage::{
    Inputs, OutputDecl, Outputs, ParamDoc, Port, Stage, StageContext, StageError,
};
use crate::methods::compensation::{
    Convention, Rescale, StageRule, ability_to_pay, combined_engel, development_stage,
    pearl_willingness, quantities_t_c, rescale_balanced, role,
};
use crate::methods::indices::Budget;
use crate::table::schema::TableSchema;
use crate::stages::shared::carbon_panel::{MissingPolicy, Panel, StrCol, str_col};
use crate::table::{f64s, i64s};

/// The `compensation` stage kind.
pub struct Compensation;

/// Unit of the carbon price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceUnit {
    /// yuan per t C.
    YuanPerTC,
    /// yuan per t CO2 (× 44/12 to apply to t C).
    YuanPerTCo2,
}

/// The carbon price: a constant or a series by year, with its unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub unit: PriceUnit,
    #[serde(default)]
    pub value: Option<f64>,
    #[serde(default)]
    pub by_year: BTreeMap<i64, f64>,
}

impl Price {
    /// The price of `year` in yuan per t C.
    fn yuan_per_t_c(&self, year: i64) -> Result<f64, StageError> {
        let p = match self.value {
            Some(v) => v,
            None => *self.by_year.get(&year).ok_or_else(|| {
                StageError::data(format!("`price.by_year` has no price for {year}")).with_hint(
                    "give a price for every year of the study, or a constant `price.value`",
                )
            })?,
        };
        Ok(match self.unit {
            PriceUnit::YuanPerTC => p,
            PriceUnit::YuanPerTCo2 => p * 44.0 / 12.0,
        })
    }
}

/// Unit of the money columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum MoneyUnit {
    #[default]
    #[serde(rename = "yuan")]
    Yuan,
    #[serde(rename = "10k_yuan")]
    TenThousandYuan,
}

impl MoneyUnit {
    fn suffix(self) -> &'static str {
        match self {
            MoneyUnit::Yuan => "yuan",
            MoneyUnit::TenThousandYuan => "10k_yuan",
        }
    }
    fn divisor(self) -> f64 {
        match self {
            MoneyUnit::Yuan => 1.0,
            MoneyUnit::TenThousandYuan => 1e4,
        }
    }
}

/// Willingness-to-pay factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Willingness {
    /// L = 1/(1 + e^(−t)) from the Engel coefficient.
    #[default]
    Pearl,
    /// L = 1.
    None,
}

/// Which Engel coefficient drives the Pearl curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngelSource {
    /// urban × urbanisation + rural × (1 − urbanisation).
    #[default]
    Combined,
    Urban,
    Rural,
}

/// Ability-to-pay factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ability {
    /// AP = (`G_i/P_i)/(G/P`).
    #[default]
    GdpPerCapita,
    /// AP = 1.
    None,
}

/// Which units the willingness and ability factors modify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Modify {
    /// Every unit: V = Q·p·L·AP (the formula as usually written).
    #[default]
    All,
    /// Payers only: willingness and ability to pay describe the paying side.
    Payers,
}

fn all_conventions() -> Vec<Convention> {
    Convention::ALL.to_vec()
}
fn default_stage_rule() -> StageRule {
    StageRule::InverseMinus3
}
fn default_engel_urban() -> String {
    "engel_urban".to_owned()
}
fn default_engel_rural() -> String {
    "engel_rural".to_owned()
}
fn default_urbanization() -> String {
    "urbanization_rate".to_owned()
}
fn default_population() -> String {
    "population".to_owned()
}

/// Parameters of `compensation`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Allowance conventions to report (default: all).
    #[serde(default = "all_conventions")]
    pub conventions: Vec<Convention>,
    /// Carbon price (required): `{ unit: yuan_per_t_c | yuan_per_t_co2, value: … }` or `by_year: {2000: …}`.
    pub price: Price,
    /// `yuan` (default) or `10k_yuan` for the money columns.
    #[serde(default)]
    pub money_unit: MoneyUnit,
    /// `pearl` (default) or `none`.
    #[serde(default)]
    pub willingness: Willingness,
    /// Development stage from the Engel coefficient: `inverse_minus3` (t = 1/En − 3, default) or `engel` (t = En).
    #[serde(default = "default_stage_rule")]
    pub stage_rule: StageRule,
    /// `combined` (default), `urban` or `rural`.
    #[serde(default)]
    pub engel: EngelSource,
    #[serde(default = "default_engel_urban")]
    pub engel_urban_column: String,
    #[serde(default = "default_engel_rural")]
    pub engel_rural_column: String,
    #[serde(default = "default_urbanization")]
    pub urbanization_column: String,
    /// `gdp_per_capita` (default) or `none`.
    #[serde(default)]
    pub ability: Ability,
    /// Whose values L and AP modify: `all` (default, V = Q·p·L·AP for every unit) or `payers`
    /// (receipts stay Q·p).
    #[serde(default)]
    pub modify: Modify,
    #[serde(default = "default_population")]
    pub population_column: String,
    /// Which side the balanced values keep: `payments` (default), `receipts` or `mean`.
    #[serde(default)]
    pub rescale: Rescale,
    /// Units with |Q| ≤ this many t C are `balanced`.
    #[serde(default)]
    pub balance_abs_t_c: f64,
    /// Units with |Q| ≤ this fraction of their CE are `balanced`.
    #[serde(default)]
    pub balance_rel: f64,
    /// `error` (default), `zero` or `interpolate` for unit-years missing from `economy`.
    #[serde(default)]
    pub missing: MissingPolicy,
}

impl Params {
    fn needs_population(&self) -> bool {
        self.ability == Ability::GdpPerCapita
            || self.conventions.iter().any(|c| c.needs_population())
    }
    fn engel_columns(&self) -> Vec<String> {
        match (self.willingness, self.engel) {
            (Willingness::None, _) => vec![],
            (_, EngelSource::Combined) => vec![
                self.engel_urban_column.clone(),
                self.engel_rural_column.clone(),
                self.urbanization_column.clone(),
            ],
            (_, EngelSource::Urban) => vec![self.engel_urban_column.clone()],
            (_, EngelSource::Rural) => vec![self.engel_rural_column.clone()],
        }
    }
    /// Columns read from `economy` (population first when needed).
    fn economy_columns(&self) -> Vec<String> {
        let mut c = Vec::new();
        if self.needs_population() {
            c.push(self.population_column.clone());
        }
        c.extend(self.engel_columns());
        c
    }
}

const PARAMS: &[ParamDoc] = &[
    ParamDoc {
        name: "conventions",
        ty: "list",
        default: "all",
        doc: "own_sink, sink_by_gdp_share, sink_by_population_share, net_by_gdp_share*, emission_by_sink_share*, intensity_emission*, intensity_net (* zero-sum)",
    },
    ParamDoc {
        name: "price",
        ty: "{unit, value | by_year}",
        default: "required",
        doc: "carbon price; unit yuan_per_t_c or yuan_per_t_co2 (× 44/12)",
    },
    ParamDoc {
        name: "money_unit",
        ty: "yuan|10k_yuan",
        default: "",
        doc: "unit (and column suffix) of the values",
    },
    ParamDoc {
        name: "willingness",
        ty: "pearl|none",
        default: "",
        doc: "Pearl-curve willingness L = 1/(1 + e^(−t)) from the Engel coefficient",
    },
    ParamDoc {
        name: "stage_rule",
        ty: "inverse_minus3|engel",
        default: "",
        doc: "development stage t = 1/En − 3, or t = En (Zhao Qing et al. 2017)",
    },
    ParamDoc {
        name: "engel",
        ty: "combined|urban|rural",
        default: "",
        doc: "Engel coefficient used: urban·φ + rural·(1 − φ), or one of them",
    },
    ParamDoc {
        name: "engel_urban_column",
        ty: "string",
        default: "",
        doc: "urban Engel coefficient (fraction 0–1) in `economy`",
    },
    ParamDoc {
        name: "engel_rural_column",
        ty: "string",
        default: "",
        doc: "rural Engel coefficient (fraction 0–1) in `economy`",
    },
    ParamDoc {
        name: "urbanization_column",
        ty: "string",
        default: "",
        doc: "urbanisation rate φ (fraction 0–1) in `economy`",
    },
    ParamDoc {
        name: "ability",
        ty: "gdp_per_capita|none",
        default: "",
        doc: "ability to pay AP = (G_i/P_i)/(G/P)",
    },
    ParamDoc {
        name: "modify",
        ty: "all|payers",
        default: "",
        doc: "apply L and AP to every unit, or to payers only (receipts stay Q·p)",
    },
    ParamDoc {
        name: "population_column",
        ty: "string",
        default: "",
        doc: "population in `economy`",
    },
    ParamDoc {
        name: "rescale",
        ty: "payments|receipts|mean",
        default: "",
        doc: "balanced values: scale receipts to payments, payments to receipts, or both to their mean",
    },
    ParamDoc {
        name: "balance_abs_t_c",
        ty: "float",
        default: "",
        doc: "|Q| at or below this (t C) is `balanced`",
    },
    ParamDoc {
        name: "balance_rel",
        ty: "float",
        default: "",
        doc: "|Q| at or below this fraction of CE is `balanced`",
    },
    ParamDoc {
        name: "missing",
        ty: "error|zero|interpolate",
        default: "",
        doc: "policy for unit-years missing from `economy`",
    },
];

impl Stage for Compensation {
    const KIND: &'static str = "compensation";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Carbon compensation per unit, year and allowance convention: Q = CE − CE* (t C), value Q·p, \
        modified value Q·p·L·AP (Pearl willingness, ability to pay), and a balanced value with total paid = total received.";
    const PARAMS: &'static [ParamDoc] = PARAMS;
    type Params = Params;

    #[cfg(test)]
    fn declaration_examples() -> Vec<crate::engine::stage::Example> {
        use crate::engine::stage::Example;
        use crate::stages::testing::study;
        use serde_json::json;
        ["yuan", "10k_yuan"]
            .into_iter()
            .map(|money_unit| {
                Example::new(
                    json!({"price": {"unit": "yuan_per_t_c", "value": 100.0}, "money_unit": money_unit}),
                    vec![("indices", study::indices().0), ("economy", study::economy())],
                )
            })
            .collect()
    }
    const DESCRIBED_DEFAULTS: &'static [&'static str] = &["conventions"];
    fn required_example() -> serde_json::Value {
        serde_json::json!({"price": {"unit": "yuan_per_t_c", "value": 100.0}})
    }

    fn ports(params: &Params) -> Vec<Port> {
        let mut ports = vec![Port::required("indices", "`indices` output").with_columns([
            "unit_id",
            "year",
            "ce_t_c",
            "cs_t_c",
            "gdp_10k_yuan",
        ])];
        let cols = params.economy_columns();
        if !cols.is_empty() {
            let mut all = vec!["unit_id".to_owned(), "year".to_owned()];
            all.extend(cols);
            ports.push(
                Port::required(
                    "economy",
                    "population, Engel coefficients and urbanisation per unit and year",
                )
                .with_columns(all),
            );
        }
        ports
    }

    fn outputs(params: &Params) -> Vec<OutputDecl> {
        let u = params.money_unit.suffix();
        vec![compensation_table(u).decl(), summary_table(u).decl()]
    }

    fn validate(params: &Params) -> Result<(), StageError> {
        if params.conventions.is_empty() {
            return Err(StageError::data("`conventions` is empty")
                .with_hint("name at least one allowance convention"));
        }
        let p = &params.price;
        match (p.value, p.by_year.is_empty()) {
            (Some(_), false) => {
                return Err(StageError::data("`price` has both `value` and `by_year`")
                    .with_hint("give one of them"));
            }
            (None, true) => return Err(StageError::data("`price` needs `value` or `by_year`")),
            _ => {}
        }
        if p.value
            .into_iter()
            .chain(p.by_year.values().copied())
            .any(|v| !v.is_finite() || v < 0.0)
        {
            return Err(StageError::data("carbon prices must be finite and ≥ 0"));
        }
        if !(params.balance_abs_t_c >= 0.0 && params.balance_rel >= 0.0) {
            return Err(StageError::data(
                "`balance_abs_t_c` and `balance_rel` must be ≥ 0",
            ));
        }
        Ok(())
    }

    fn run(params: &Params, inputs: &Inputs, ctx: &StageContext) -> Result<Outputs, StageError> {
        let indices = inputs.table("indices")?;
        let unit_col = str_col(indices, "indices", "unit_id", true)?;
        let rows = IndexRows::read(indices, &unit_col)?;
        let econ_cols = params.economy_columns();
        let economy = if econ_cols.is_empty() {
            None
        } else {
            let cols: Vec<&str> = econ_cols.iter().map(String::as_str).collect();
            // The same in every draw of a sweep that varies other stages: read it once.
            let values = ctx.reuse("economy", &["economy"], &cols, || {
                Ok(Panel::read(inputs.table("economy")?, "economy", &cols, true)?.values())
            })?;
            Some(Panel::over(std::sync::Arc::clone(&values)))
        };
        // group rows by year, units sorted within
        let mut by_year: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for (i, y) in rows.years.iter().enumerate() {
            by_year.entry(*y).or_default().push(i);
        }
        let mut convs = params.conventions.clone();
        convs.sort_unstable();
        convs.dedup();
        // output slot of each input row and convention: rows come out sorted by unit, year,
        // convention; a convention left out in a year leaves its slots empty
        let pos = rows.output_positions();
        let mut slots: Vec<Option<CompensationRow<'_>>> = vec![None; rows.len() * convs.len()];
        let mut summary = Vec::new();
        let mut skipped = Vec::new();
        for (&year, idx) in &mut by_year {
            idx.sort_by_key(|&a| rows.unit_rank[a]);
            if let Some(w) = idx
                .windows(2)
                .find(|w| rows.units[w[0]] == rows.units[w[1]])
            {
                return Err(StageError::data(format!(
                    "`indices`: unit `{}` has two rows for {year}",
                    rows.units[w[0]]
                )));
            }
            let year_rows = YearInputs::read(params, &rows, economy.as_ref(), year, idx)?;
            for (ci, &conv) in convs.iter().enumerate() {
                let Some(out) = year_rows.convention(params, &rows, idx, conv, ctx) else {
                    skipped.push(format!("{} in {year}", conv.name()));
                    continue;
                };
                for (k, &i) in idx.iter().enumerate() {
                    slots[pos[i] * convs.len() + ci] = Some(out.rows[k]);
                }
                summary.push(out.summary);
            }
        }
        if !skipped.is_empty() {
            ctx.warn(format!(
                "no regional sink, so these conventions are undefined and left out: {}",
                skipped.join(", ")
            ));
        }
        if let Some(e) = &economy {
            e.report(ctx, params.missing);
        }
        let u = params.money_unit.suffix();
        let table: Vec<CompensationRow<'_>> = slots.into_iter().flatten().collect();
        Ok(vec![
            compensation_table(u).build(&table)?,
            summary_table(u).build(&summary)?,
        ])
    }
}

/// The columns of `indices` the conventions use, checked.
struct IndexRows<'a> {
    units: Vec<&'a str>,
    /// Rank of each row's unit id in sorted order, for integer sorting.
    unit_rank: Vec<usize>,
    years: Vec<i64>,
    ce: Vec<f64>,
    cs: Vec<f64>,
    gdp: Vec<f64>,
}

impl<'a> IndexRows<'a> {
    fn read(t: &arrow_array::RecordBatch, unit_col: &'a StrCol<'_>) -> Result<Self, StageError> {
        let units: Vec<&str> = (0..unit_col.len()).map(|i| unit_col.get(i)).collect();
        let unit_rank = {
            let mut order: Vec<usize> = (0..units.len()).collect();
            // `indices` writes rows sorted by unit: only sort when they are not
            if !(1..units.len()).all(|k| units[k - 1] <= units[k]) {
                order.sort_by(|&a, &b| units[a].cmp(units[b]));
            }
            let mut rank = vec![0; units.len()];
            for (k, w) in order.iter().enumerate() {
                rank[*w] = if k > 0 && units[order[k - 1]] == units[*w] {
                    rank[order[k - 1]]
                } else {
                    k
                };
            }
            rank
        };
        let rows = Self {
            unit_rank,
            years: i64s(t, "indices", "year")?,
            ce: f64s(t, "indices", "ce_t_c")?,
            cs: f64s(t, "indices", "cs_t_c")?,
            gdp: f64s(t, "indices", "gdp_10k_yuan")?,
            units,
        };
        rows.check()?;
        Ok(rows)
    }

    fn len(&self) -> usize {
        self.units.len()
    }

    fn check(&self) -> Result<(), StageError> {
        let (ce, cs, gdp) = (&self.ce, &self.cs, &self.gdp);
        for i in 0..self.len() {
            if !(ce[i].is_finite()
                && cs[i].is_finite()
                && gdp[i].is_finite()
                && ce[i] >= 0.0
                && cs[i] >= 0.0
                && gdp[i] > 0.0)
            {
                return Err(StageError::data(format!(
                    "`indices` row {}: unit `{}`, year {}: CE {}, CS {}, GDP {} (need CE, CS ≥ 0 and GDP > 0)",
                    i + 1,
                    self.units[i],
                    self.years[i],
                    ce[i],
                    cs[i],
                    gdp[i]
                )));
            }
        }
        Ok(())
    }

    /// The position of each row once sorted by unit and year.
    fn output_positions(&self) -> Vec<usize> {
        let key = |i: usize| (self.unit_rank[i], self.years[i]);
        let mut order: Vec<usize> = (0..self.len()).collect();
        if !(1..self.len()).all(|k| key(k - 1) <= key(k)) {
            order.sort_unstable_by_key(|&i| key(i));
        }
        let mut pos = vec![0; self.len()];
        for (p, &i) in order.iter().enumerate() {
            pos[i] = p;
        }
        pos
    }
}

/// One year's budgets and the factors that modify each unit's value.
struct YearInputs {
    year: i64,
    price: f64,
    budgets: Vec<Budget>,
    willingness: Vec<f64>,
    ability: Vec<f64>,
}

impl YearInputs {
    /// The units `idx` (sorted) of `year`.
    fn read(
        params: &Params,
        rows: &IndexRows<'_>,
        economy: Option<&Panel>,
        year: i64,
        idx: &[usize],
    ) -> Result<Self, StageError> {
        let price = params.price.yuan_per_t_c(year)?;
        let pop_idx = params.needs_population().then_some(0);
        let mut budgets = Vec::with_capacity(idx.len());
        let mut willingness = Vec::with_capacity(idx.len());
        for &i in idx {
            let unit = rows.units[i];
            let population = match (pop_idx, economy) {
                (Some(c), Some(e)) => {
                    let p = e.get(unit, year, c, params.missing)?;
                    if p <= 0.0 {
                        return Err(StageError::data(format!(
                            "`economy`: unit `{unit}`, year {year}: population is {p}"
                        ))
                        .with_hint("population must be > 0"));
                    }
                    Some(p)
                }
                _ => None,
            };
            budgets.push(Budget {
                ce_t_c: rows.ce[i],
                cs_t_c: rows.cs[i],
                gdp_10k_yuan: rows.gdp[i],
                population,
            });
            willingness.push(match (economy, params.willingness) {
                (Some(e), Willingness::Pearl) => pearl_factor(params, e, unit, year)?,
                _ => 1.0,
            });
        }
        let region = crate::methods::indices::totals(&budgets);
        let ability = budgets
            .iter()
            .map(
                |b| match (params.ability, b.population, region.population) {
                    (Ability::GdpPerCapita, Some(p), Some(total)) => {
                        ability_to_pay(b.gdp_10k_yuan, p, region.gdp_10k_yuan, total)
                    }
                    _ => 1.0,
                },
            )
            .collect();
        Ok(Self {
            year,
            price,
            budgets,
            willingness,
            ability,
        })
    }

    /// The rows of one convention (in the order of `idx`) and its summary; `None` when the
    /// convention is undefined this year (no regional sink).
    fn convention<'a>(
        &self,
        params: &Params,
        rows: &IndexRows<'a>,
        idx: &[usize],
        conv: Convention,
        ctx: &StageContext,
    ) -> Option<ConventionRows<'a>> {
        let year = self.year;
        let q: Vec<f64> = quantities_t_c(conv, &self.budgets)
            .into_iter()
            .collect::<Option<Vec<f64>>>()?;
        let div = params.money_unit.divisor();
        let value: Vec<f64> = q.iter().map(|q| q * self.price / div).collect();
        let modified: Vec<Option<f64>> = value
            .iter()
            .zip(&self.willingness)
            .zip(&self.ability)
            .map(|((v, l), a)| {
                Some(if params.modify == Modify::Payers && *v < 0.0 {
                    *v
                } else {
                    v * l * a
                })
            })
            .collect();
        let balanced = rescale_balanced(&modified, params.rescale);
        if balanced.is_none() {
            ctx.warn_kind("convention_unbalanced", format!("{} in {year}: every unit pays or every unit receives, so balanced values are null", conv.name()));
        }
        let mut summary = SummaryRow::new(year, conv);
        let mut out = Vec::with_capacity(idx.len());
        for (k, &i) in idx.iter().enumerate() {
            let r = role(q[k], params.balance_abs_t_c, params.balance_rel, rows.ce[i]);
            let b = balanced.as_ref().and_then(|b| b[k]);
            summary.add(r, q[k], value[k], modified[k].unwrap_or(0.0), b);
            out.push(CompensationRow {
                unit: rows.units[i],
                year,
                convention: conv,
                role: r,
                quantity: q[k],
                price: self.price,
                value: value[k],
                willingness: self.willingness[k],
                ability: self.ability[k],
                modified: modified[k].unwrap_or(f64::NAN),
                balanced: b,
            });
        }
        if balanced.is_none() {
            summary.paid_balanced = None;
            summary.received_balanced = None;
        }
        Some(ConventionRows { rows: out, summary })
    }
}

/// Pearl-curve willingness to pay from the unit's Engel coefficient.
fn pearl_factor(params: &Params, e: &Panel, unit: &str, year: i64) -> Result<f64, StageError> {
    let engel_start = usize::from(params.needs_population());
    let mut v = Vec::new();
    for (k, name) in params.engel_columns().iter().enumerate() {
        let x = e.get(unit, year, engel_start + k, params.missing)?;
        if x > 1.0 {
            return Err(StageError::data(format!("`economy`: unit `{unit}`, year {year}: `{name}` is {x}, above 1"))
                .with_hint("Engel coefficients and the urbanisation rate are fractions: divide percentages by 100"));
        }
        v.push(x);
    }
    let en = match params.engel {
        EngelSource::Combined => combined_engel(v[0], v[1], v[2]),
        EngelSource::Urban | EngelSource::Rural => v[0],
    };
    if en <= 0.0 {
        return Err(StageError::data(format!(
            "`economy`: unit `{unit}`, year {year}: the Engel coefficient is {en}"
        ))
        .with_hint("it must be > 0"));
    }
    Ok(pearl_willingness(development_stage(en, params.stage_rule)))
}

struct ConventionRows<'a> {
    rows: Vec<CompensationRow<'a>>,
    summary: SummaryRow,
}

/// A row of `compensation`: one unit, year and convention.
#[derive(Clone, Copy)]
struct CompensationRow<'a> {
    unit: &'a str,
    year: i64,
    convention: Convention,
    role: &'static str,
    quantity: f64,
    price: f64,
    value: f64,
    willingness: f64,
    ability: f64,
    modified: f64,
    balanced: Option<f64>,
}

/// The `compensation` table; money columns end in the money unit `u`.
fn compensation_table<'a>(u: &str) -> TableSchema<CompensationRow<'a>> {
    TableSchema::<CompensationRow<'_>>::new("compensation", "one row per unit, year and convention")
        .text("unit_id", |r| r.unit)
        .int("year", |r| r.year)
        .text("role", |r| r.role)
        .text("convention", |r| r.convention.name())
        .bool("zero_sum", |r| r.convention.zero_sum())
        .float("quantity_t_c", |r| r.quantity)
        .float("price_yuan_per_t_c", |r| r.price)
        .float(format!("value_{u}"), |r| r.value)
        .float("willingness", |r| r.willingness)
        .float("ability", |r| r.ability)
        .float(format!("value_modified_{u}"), |r| r.modified)
        .float_or_null(format!("value_balanced_{u}"), |r| r.balanced)
}

/// The `summary` table; money columns end in the money unit `u`.
fn summary_table(u: &str) -> TableSchema<SummaryRow> {
    TableSchema::<SummaryRow>::new(
        "summary",
        "per year and convention: counts and totals paid and received",
    )
    .int("year", |s| s.year)
    .text("convention", |s| s.convention.name())
    .bool("zero_sum", |s| s.convention.zero_sum())
    .int("n_payers", |s| s.n[0])
    .int("n_receivers", |s| s.n[1])
    .int("n_balanced", |s| s.n[2])
    .float("sum_quantity_t_c", |s| s.sum_q)
    .float(format!("paid_{u}"), |s| s.paid)
    .float(format!("received_{u}"), |s| s.received)
    .float(format!("paid_modified_{u}"), |s| s.paid_modified)
    .float(format!("received_modified_{u}"), |s| s.received_modified)
    .float_or_null(format!("paid_balanced_{u}"), |s| s.paid_balanced)
    .float_or_null(format!("received_balanced_{u}"), |s| s.received_balanced)
}

struct SummaryRow {
    year: i64,
    convention: Convention,
    n: [i64; 3],
    sum_q: f64,
    paid: f64,
    received: f64,
    paid_modified: f64,
    received_modified: f64,
    paid_balanced: Option<f64>,
    received_balanced: Option<f64>,
}

impl SummaryRow {
    fn new(year: i64, convention: Convention) -> Self {
        Self {
            year,
            convention,
            n: [0; 3],
            sum_q: 0.0,
            paid: 0.0,
            received: 0.0,
            paid_modified: 0.0,
            received_modified: 0.0,
            paid_balanced: None,
            received_balanced: None,
        }
    }

    fn add(&mut self, role: &str, q: f64, v: f64, m: f64, b: Option<f64>) {
        match role {
            "payer" => self.n[0] += 1,
            "receiver" => self.n[1] += 1,
            _ => self.n[2] += 1,
        }
        self.sum_q += q;
        let split = |x: f64| if x > 0.0 { (x, 0.0) } else { (0.0, -x) };
        let (p, r) = split(v);
        self.paid += p;
        self.received += r;
        let (p, r) = split(m);
        self.paid_modified += p;
        self.received_modified += r;
        let (p, r) = split(b.unwrap_or(0.0));
        self.paid_balanced = Some(self.paid_balanced.unwrap_or(0.0) + p);
        self.received_balanced = Some(self.received_balanced.unwrap_or(0.0) + r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::stage::{Entry, StageEntry};
    use crate::stages::testing;
    use crate::stages::testing::nullable_f64s as f;
    use crate::table::TableBuilder;
    use crate::table::{bools, strings};
    use arrow_array::RecordBatch;

    fn indices() -> RecordBatch {
        // CE 100, 200, 700; CS 50, 150, 50; G 400, 400, 200 (year 2000)
        TableBuilder::new()
            .str("unit_id", &["a", "b", "c"])
            .i64("year", vec![2000; 3])
            .f64("ce_t_c", vec![100.0, 200.0, 700.0])
            .f64("cs_t_c", vec![50.0, 150.0, 50.0])
            .f64("gdp_10k_yuan", vec![400.0, 400.0, 200.0])
            .build()
            .unwrap()
    }

    fn economy() -> RecordBatch {
        // P 10, 30, 60; Engel urban 0.35, rural 0.45, urbanisation 0.6 for a; others 0.25 urban only
        TableBuilder::new()
            .str("unit_id", &["a", "b", "c"])
            .i64("year", vec![2000; 3])
            .f64("population", vec![10.0, 30.0, 60.0])
            .f64("engel_urban", vec![0.35, 0.25, 0.25])
            .f64("engel_rural", vec![0.45, 0.25, 0.25])
            .f64("urbanization_rate", vec![0.6, 0.5, 0.5])
            .build()
            .unwrap()
    }

    fn run(
        params: serde_json::Value,
        with_economy: bool,
    ) -> Result<(Outputs, Vec<String>), StageError> {
        let mut tables = vec![("indices", indices())];
        if with_economy {
            tables.push(("economy", economy()));
        }
        testing::run::<Compensation>(params, tables)
    }

    #[test]
    fn unmodified_values_hand_computed() {
        let params = serde_json::json!({"conventions": ["own_sink", "emission_by_sink_share"], "price": {"unit": "yuan_per_t_co2", "value": 60.0},
            "willingness": "none", "ability": "none"});
        let (out, _) = run(params, false).unwrap();
        let t = &out[0].1;
        // price 60 yuan/t CO2 = 60 × 44/12 = 220 yuan/t C
        // own sink: Q = 50, 50, 650 -> 11000, 11000, 143000 yuan
        // emission by sink share: Q = −100, −400, 500 -> −22000, −88000, 110000
        assert_eq!(
            strings(t, "c", "convention").unwrap(),
            vec![
                "own_sink",
                "emission_by_sink_share",
                "own_sink",
                "emission_by_sink_share",
                "own_sink",
                "emission_by_sink_share"
            ]
        );
        let v: Vec<f64> = f(t, "value_yuan").into_iter().map(Option::unwrap).collect();
        let expect = [
            11_000.0, -22_000.0, 11_000.0, -88_000.0, 143_000.0, 110_000.0,
        ];
        for (a, e) in v.iter().zip(expect) {
            assert!((a - e).abs() < 1e-6, "{v:?}");
        }
        assert_eq!(
            strings(t, "c", "role").unwrap(),
            vec!["payer", "receiver", "payer", "receiver", "payer", "payer"]
        );
        assert_eq!(
            bools(t, "c", "zero_sum").unwrap(),
            vec![false, true, false, true, false, true]
        );
        // summary: zero-sum convention pays 110000 and receives 110000
        let s = &out[1].1;
        assert_eq!(
            strings(s, "s", "convention").unwrap(),
            vec!["own_sink", "emission_by_sink_share"]
        );
        assert!((f(s, "paid_yuan")[1].unwrap() - 110_000.0).abs() < 1e-6);
        assert!((f(s, "received_yuan")[1].unwrap() - 110_000.0).abs() < 1e-6);
    }

    #[test]
    fn modified_values_hand_computed() {
        let params = serde_json::json!({"conventions": ["net_by_gdp_share"], "price": {"unit": "yuan_per_t_c", "by_year": {"2000": 100.0}}, "money_unit": "10k_yuan"});
        let (out, _) = run(params, true).unwrap();
        let t = &out[0].1;
        // Q = −250, −250, 500 t C; × 100 yuan/t C / 10^4 = −2.5, −2.5, 5 (10^4 yuan)
        // L: a En = 0.39 -> t = −0.4358974, L = 0.3927190 (Python math.exp);
        //    b, c En = 0.25 -> t = 1, L = 1/(1 + e^−1) = 0.7310586
        // AP: region G/P = 1000/100 = 10; a 400/10 = 40 -> 4; b 400/30 -> 1.3333; c 200/60 -> 0.3333
        // modified: a −2.5 × 0.3927190 × 4 = −3.927190; b −2.5 × 0.7310586 × 4/3 = −2.436862;
        //           c 5 × 0.7310586 / 3 = 1.218431
        let m: Vec<f64> = f(t, "value_modified_10k_yuan")
            .into_iter()
            .map(Option::unwrap)
            .collect();
        assert!((m[0] + 3.927_190).abs() < 1e-6, "{m:?}");
        assert!((m[1] + 2.436_862).abs() < 1e-6, "{m:?}");
        assert!((m[2] - 1.218_431).abs() < 1e-6, "{m:?}");
        assert!((f(t, "ability")[0].unwrap() - 4.0).abs() < 1e-12);
        // balanced (rescale payments): receipts scaled by 1.218431/6.364052 -> sum 0
        let b: Vec<f64> = f(t, "value_balanced_10k_yuan")
            .into_iter()
            .map(Option::unwrap)
            .collect();
        assert!((b[2] - m[2]).abs() < 1e-12);
        let sum: f64 = b.iter().sum();
        assert!(
            sum.abs() < 1e-9 * b.iter().map(|x| x.abs()).sum::<f64>(),
            "{b:?}"
        );
        assert!((b[0] - m[0] * 1.218_431 / 6.364_052).abs() < 1e-6, "{b:?}");
    }

    #[test]
    fn modify_payers_only() {
        let params = serde_json::json!({"conventions": ["net_by_gdp_share"], "price": {"unit": "yuan_per_t_c", "value": 100.0},
            "money_unit": "10k_yuan", "modify": "payers"});
        let (out, _) = run(params, true).unwrap();
        // receivers a, b keep Q·p = −2.5; payer c: 5 × 0.7310586 / 3 = 1.218431 (as in the test above)
        let m: Vec<f64> = f(&out[0].1, "value_modified_10k_yuan")
            .into_iter()
            .map(Option::unwrap)
            .collect();
        assert_eq!((m[0], m[1]), (-2.5, -2.5));
        assert!((m[2] - 1.218_431).abs() < 1e-6, "{m:?}");
    }

    #[test]
    fn zero_sum_variants_sum_to_zero() {
        let (out, _) = run(
            serde_json::json!({"price": {"unit": "yuan_per_t_c", "value": 260.9}}),
            true,
        )
        .unwrap();
        let s = &out[1].1;
        let zs = bools(s, "s", "zero_sum").unwrap();
        let q = f(s, "sum_quantity_t_c");
        let paid = f(s, "paid_yuan");
        let received = f(s, "received_yuan");
        assert_eq!(zs.iter().filter(|z| **z).count(), 3);
        for i in 0..zs.len() {
            if zs[i] {
                assert!(q[i].unwrap().abs() < 1e-9 * 1000.0, "{:?}", q[i]);
                let (p, r) = (paid[i].unwrap(), received[i].unwrap());
                assert!((p - r).abs() <= 1e-9 * p.max(r), "{p} {r}");
            }
            // balanced always pays what it receives
            let (p, r) = (
                f(s, "paid_balanced_yuan")[i],
                f(s, "received_balanced_yuan")[i],
            );
            if let (Some(p), Some(r)) = (p, r) {
                assert!((p - r).abs() <= 1e-9 * p.max(r), "{p} {r}");
            }
        }
    }

    #[test]
    fn bad_parameters_and_data() {
        assert!(
            Entry::<Compensation>::new()
                .prepare(serde_json::json!({}))
                .is_err(),
            "price is required"
        );
        assert!(
            Entry::<Compensation>::new()
                .prepare(serde_json::json!({"price": {"unit": "yuan_per_t_c"}}))
                .is_err()
        );
        assert!(
            Entry::<Compensation>::new()
                .prepare(serde_json::json!({"price": {"unit": "usd", "value": 1.0}}))
                .is_err()
        );
        let err = run(
            serde_json::json!({"price": {"unit": "yuan_per_t_c", "by_year": {"2001": 5.0}}}),
            true,
        )
        .err()
        .unwrap();
        assert!(err.message.contains("no price for 2000"), "{}", err.message);
        // Engel given in percent
        let econ = TableBuilder::new()
            .str("unit_id", &["a", "b", "c"])
            .i64("year", vec![2000; 3])
            .f64("population", vec![1.0; 3])
            .f64("engel_urban", vec![35.0, 30.0, 30.0])
            .build()
            .unwrap();
        let err = testing::run::<Compensation>(
            serde_json::json!({"price": {"unit": "yuan_per_t_c", "value": 1.0}, "engel": "urban"}),
            vec![("indices", indices()), ("economy", econ)],
        )
        .err()
        .unwrap();
        assert!(
            err.message
                .contains("unit `a`, year 2000: `engel_urban` is 35"),
            "{}",
            err.message
        );
        assert!(err.hint.unwrap().contains("divide percentages by 100"));
    }
}
