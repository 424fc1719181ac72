//! `functional_areas`: carbon-budget summaries by main-functional-area category (主体功能区),
//! per year and over the whole period, ranked as seed study B reports them (mean carbon
//! intensity, mean net emission, totals, unit counts).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::stage::{
    Inputs, OutputDecl, Outputs, ParamDoc, Port, Stage, StageContext, StageError,
};
use crate::table::schema::TableSchema;
use crate::table::{f64s, i64s, ids, strings};

/// The `functional_areas` stage kind.
pub struct FunctionalAreas;

/// The quantity categories are ranked by (descending; rank 1 is the highest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankBy {
    /// Mean carbon intensity (as B's table of 1.09 … 0.47 t per 10^4 yuan).
    #[default]
    Ci,
    /// Mean net carbon emission.
    Nce,
}

fn default_category_column() -> String {
    "category".to_owned()
}

/// Parameters of `functional_areas`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Category column of the `categories` table.
    #[serde(default = "default_category_column")]
    pub category_column: String,
    /// `ci` (default) or `nce`.
    #[serde(default)]
    pub rank_by: RankBy,
}

const PARAMS: &[ParamDoc] = &[
    ParamDoc {
        name: "category_column",
        ty: "string",
        default: "",
        doc: "category column of `categories` (one row per unit)",
    },
    ParamDoc {
        name: "rank_by",
        ty: "ci|nce",
        default: "",
        doc: "rank categories by mean carbon intensity or mean net emission, highest first",
    },
];

/// Accumulates one category (in one year, or over the period).
#[derive(Default, Clone)]
struct Acc {
    units: std::collections::BTreeSet<usize>,
    years: std::collections::BTreeSet<i64>,
    n_rows: u32,
    ci_sum: f64,
    ci_n: u32,
    nce_sum: f64,
    ce: f64,
    cs: f64,
    gdp: f64,
}

impl Acc {
    #[allow(clippy::too_many_arguments)]
    fn add(&mut self, unit: usize, year: i64, ce: f64, cs: f64, nce: f64, gdp: f64, ci: f64) {
        self.units.insert(unit);
        self.years.insert(year);
        self.n_rows += 1;
        if ci.is_finite() {
            self.ci_sum += ci;
            self.ci_n += 1;
        }
        self.nce_sum += nce;
        self.ce += ce;
        self.cs += cs;
        self.gdp += gdp;
    }
    fn mean_ci(&self) -> Option<f64> {
        (self.ci_n > 0).then(|| self.ci_sum / f64::from(self.ci_n))
    }
    fn mean_nce(&self) -> f64 {
        self.nce_sum / f64::from(self.n_rows)
    }
    fn key(&self, by: RankBy) -> Option<f64> {
        match by {
            RankBy::Ci => self.mean_ci(),
            RankBy::Nce => Some(self.mean_nce()),
        }
    }
}

/// Ranks (1 = highest) of categories by a key; missing keys last; ties by category name.
fn ranks(cats: &[(&str, Option<f64>)]) -> Vec<i64> {
    let mut order: Vec<usize> = (0..cats.len()).collect();
    order.sort_by(|&a, &b| {
        let (ka, kb) = (
            cats[a].1.unwrap_or(f64::NEG_INFINITY),
            cats[b].1.unwrap_or(f64::NEG_INFINITY),
        );
        kb.total_cmp(&ka).then_with(|| cats[a].0.cmp(cats[b].0))
    });
    let mut r = vec![0; cats.len()];
    for (rank, i) in order.into_iter().enumerate() {
        r[i] = i64::try_from(rank + 1).expect("few categories");
    }
    r
}

impl Stage for FunctionalAreas {
    const KIND: &'static str = "functional_areas";
    const VERSION: u32 = 2;
    const DOC: &'static str = "Summaries by main-functional-area category: per year and over the period, mean carbon intensity, mean net \
        emission per unit-year, totals and unit counts, ranked by mean CI (or NCE), highest first.";
    const PARAMS: &'static [ParamDoc] = PARAMS;
    type Params = Params;

    #[cfg(test)]
    fn declaration_examples() -> Vec<crate::engine::stage::Example> {
        use crate::engine::stage::Example;
        use crate::stages::testing::study;
        use serde_json::json;
        vec![Example::new(
            json!({}),
            vec![("indices", study::indices().0), ("categories", study::categories())],
        )]
    }

    fn ports(params: &Params) -> Vec<Port> {
        vec![
            Port::required("indices", "`indices` output").with_columns([
                "unit_id",
                "year",
                "ce_t_c",
                "cs_t_c",
                "nce_t_c",
                "gdp_10k_yuan",
                "ci_t_per_10k_yuan",
            ]),
            Port::required("categories", "unit → main-functional-area category")
                .with_columns(["unit_id".to_owned(), params.category_column.clone()]),
        ]
    }

    fn outputs(_params: &Params) -> Vec<OutputDecl> {
        vec![summary_table().decl(), by_year_table().decl()]
    }

    fn run(params: &Params, inputs: &Inputs, ctx: &StageContext) -> Result<Outputs, StageError> {
        let category = read_categories(params, inputs.table("categories")?)?;
        let acc = Accumulated::read(&category, inputs.table("indices")?, ctx)?;
        Ok(vec![
            summary_table().build(&acc.summary_rows(params.rank_by))?,
            by_year_table().build(&acc.year_rows(params.rank_by))?,
        ])
    }
}

/// Unit → category, each unit in one category.
fn read_categories(
    params: &Params,
    table: &arrow_array::RecordBatch,
) -> Result<BTreeMap<String, String>, StageError> {
    let cat_units = ids(table, "categories", "unit_id")?;
    let cat_values = strings(table, "categories", &params.category_column)?;
    let mut category: BTreeMap<String, String> = BTreeMap::new();
    for (row, (u, c)) in cat_units.into_iter().zip(cat_values).enumerate() {
        if c.trim().is_empty() {
            return Err(StageError::data(format!(
                "`categories` row {}: unit `{u}` has an empty `{}`",
                row + 1,
                params.category_column
            )));
        }
        if let Some(old) = category.insert(u.clone(), c.clone())
            && old != c
        {
            return Err(StageError::data(format!(
                "`categories`: unit `{u}` is in two categories (`{old}`, `{c}`)"
            ))
            .with_hint("give each unit one category"));
        }
    }
    Ok(category)
}

/// The `indices` rows summed per category, over the period and per year.
struct Accumulated<'a> {
    /// Category names, sorted; the accumulators are indexed alike.
    cat_names: Vec<&'a str>,
    period: Vec<Acc>,
    yearly: BTreeMap<i64, Vec<Acc>>,
    /// Per year and category: sums of CE, CS, NCE and GDP.
    totals_by_year: BTreeMap<i64, Vec<[f64; 4]>>,
}

impl<'a> Accumulated<'a> {
    fn read(
        category: &'a BTreeMap<String, String>,
        t: &arrow_array::RecordBatch,
        ctx: &StageContext,
    ) -> Result<Self, StageError> {
        let units = ids(t, "indices", "unit_id")?;
        let years = i64s(t, "indices", "year")?;
        let ce = f64s(t, "indices", "ce_t_c")?;
        let cs = f64s(t, "indices", "cs_t_c")?;
        let nce = f64s(t, "indices", "nce_t_c")?;
        let gdp = f64s(t, "indices", "gdp_10k_yuan")?;
        let ci = f64s(t, "indices", "ci_t_per_10k_yuan")?;

        let mut cat_names: Vec<&str> = category.values().map(String::as_str).collect();
        cat_names.sort_unstable();
        cat_names.dedup();
        let cat_index: BTreeMap<&str, usize> =
            cat_names.iter().enumerate().map(|(i, c)| (*c, i)).collect();
        let unit_index: BTreeMap<&str, usize> = category
            .keys()
            .enumerate()
            .map(|(i, u)| (u.as_str(), i))
            .collect();
        let mut acc = Self {
            period: vec![Acc::default(); cat_names.len()],
            yearly: BTreeMap::new(),
            totals_by_year: BTreeMap::new(),
            cat_names,
        };
        // Accumulate in (unit, year) order, so the sums (float addition is not associative)
        // are the same however the rows of `indices` are ordered.
        let mut rows: Vec<usize> = (0..units.len()).collect();
        rows.sort_by(|&a, &b| (&units[a], years[a]).cmp(&(&units[b], years[b])));
        for i in rows {
            let Some(c) = category.get(&units[i]) else {
                return Err(StageError::data(format!(
                    "`categories` has no row for unit `{}`",
                    units[i]
                ))
                .with_hint("give every unit of `indices` a category"));
            };
            if [ce[i], cs[i], nce[i], gdp[i]]
                .iter()
                .any(|v| !v.is_finite())
            {
                return Err(StageError::data(format!(
                    "`indices`: unit `{}`, year {}: CE, CS, NCE or GDP is not a number",
                    units[i], years[i]
                )));
            }
            let k = cat_index[c.as_str()];
            let u = unit_index[units[i].as_str()];
            let n_cats = acc.cat_names.len();
            acc.period[k].add(u, years[i], ce[i], cs[i], nce[i], gdp[i], ci[i]);
            acc.yearly
                .entry(years[i])
                .or_insert_with(|| vec![Acc::default(); n_cats])[k]
                .add(u, years[i], ce[i], cs[i], nce[i], gdp[i], ci[i]);
            let tot = &mut acc
                .totals_by_year
                .entry(years[i])
                .or_insert_with(|| vec![[0.0; 4]; n_cats])[k];
            tot[0] += ce[i];
            tot[1] += cs[i];
            tot[2] += nce[i];
            tot[3] += gdp[i];
        }
        warn_unused_categories(category, &units, ctx);
        Ok(acc)
    }

    /// The period summary: categories with at least one unit-year, by rank.
    fn summary_rows(&self, rank_by: RankBy) -> Vec<SummaryRow<'a>> {
        let present: Vec<usize> = (0..self.cat_names.len())
            .filter(|&k| self.period[k].n_rows > 0)
            .collect();
        let keys: Vec<(&str, Option<f64>)> = present
            .iter()
            .map(|&k| (self.cat_names[k], self.period[k].key(rank_by)))
            .collect();
        let r = ranks(&keys);
        let mut order: Vec<usize> = (0..present.len()).collect();
        order.sort_by_key(|&i| r[i]);
        order
            .into_iter()
            .map(|i| {
                let k = present[i];
                let a = &self.period[k];
                SummaryRow {
                    category: self.cat_names[k],
                    rank: r[i],
                    n_units: i64::try_from(a.units.len()).expect("few units"),
                    n_years: i64::try_from(a.years.len()).expect("few years"),
                    mean_ci: a.mean_ci(),
                    mean_nce: a.mean_nce(),
                    mean_ce: a.ce / f64::from(a.n_rows),
                    mean_cs: a.cs / f64::from(a.n_rows),
                    pooled_ci: pooled(a),
                    annual: [0, 1, 2, 3].map(|j| self.annual_mean(k, j)),
                }
            })
            .collect()
    }

    /// The mean over the category's years of its yearly sum `j` (CE, CS, NCE, GDP).
    fn annual_mean(&self, k: usize, j: usize) -> f64 {
        let years: Vec<f64> = self.totals_by_year.values().map(|v| v[k][j]).collect();
        let n = self.period[k].years.len();
        #[allow(clippy::cast_precision_loss)]
        let mean = years.iter().sum::<f64>() / n as f64;
        mean
    }

    /// Per year, the categories present that year, by rank.
    fn year_rows(&self, rank_by: RankBy) -> Vec<YearRow<'a>> {
        let mut rows = Vec::new();
        for (year, accs) in &self.yearly {
            let present: Vec<usize> = (0..accs.len()).filter(|&k| accs[k].n_rows > 0).collect();
            let keys: Vec<(&str, Option<f64>)> = present
                .iter()
                .map(|&k| (self.cat_names[k], accs[k].key(rank_by)))
                .collect();
            let r = ranks(&keys);
            let mut order: Vec<usize> = (0..present.len()).collect();
            order.sort_by_key(|&i| r[i]);
            for i in order {
                let a = &accs[present[i]];
                rows.push(YearRow {
                    year: *year,
                    category: self.cat_names[present[i]],
                    rank: r[i],
                    n_units: i64::try_from(a.units.len()).expect("few units"),
                    mean_ci: a.mean_ci(),
                    mean_nce: a.mean_nce(),
                    totals: [a.ce, a.cs, a.nce_sum, a.gdp],
                    pooled_ci: pooled(a),
                });
            }
        }
        rows
    }
}

fn warn_unused_categories(
    category: &BTreeMap<String, String>,
    units: &[String],
    ctx: &StageContext,
) {
    let used: std::collections::BTreeSet<&str> = units.iter().map(String::as_str).collect();
    let unused: Vec<&str> = category
        .keys()
        .map(String::as_str)
        .filter(|u| !used.contains(u))
        .collect();
    if !unused.is_empty() {
        ctx.warn(format!(
            "`categories`: {} unit(s) have no indices and are ignored (e.g. {})",
            unused.len(),
            unused
                .iter()
                .take(5)
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
}

fn pooled(a: &Acc) -> Option<f64> {
    (a.gdp > 0.0).then(|| a.ce / a.gdp)
}

/// A row of `summary`: one category over the period.
struct SummaryRow<'a> {
    category: &'a str,
    rank: i64,
    n_units: i64,
    n_years: i64,
    mean_ci: Option<f64>,
    mean_nce: f64,
    mean_ce: f64,
    mean_cs: f64,
    pooled_ci: Option<f64>,
    /// Means over the years of the yearly sums of CE, CS, NCE and GDP.
    annual: [f64; 4],
}

fn summary_table<'a>() -> TableSchema<SummaryRow<'a>> {
    TableSchema::<SummaryRow<'_>>::new("summary", "per category over the period, ranked")
        .text("category", |r| r.category)
        .int("rank", |r| r.rank)
        .int("n_units", |r| r.n_units)
        .int("n_years", |r| r.n_years)
        .float_or_null("mean_ci_t_per_10k_yuan", |r| r.mean_ci)
        .float("mean_nce_t_c", |r| r.mean_nce)
        .float("mean_nce_10k_t", |r| r.mean_nce / 1e4)
        .float("mean_ce_t_c", |r| r.mean_ce)
        .float("mean_cs_t_c", |r| r.mean_cs)
        .float_or_null("pooled_ci_t_per_10k_yuan", |r| r.pooled_ci)
        .float("annual_ce_t_c", |r| r.annual[0])
        .float("annual_cs_t_c", |r| r.annual[1])
        .float("annual_nce_t_c", |r| r.annual[2])
        .float("annual_gdp_10k_yuan", |r| r.annual[3])
}

/// A row of `by_year`: one category in one year.
struct YearRow<'a> {
    year: i64,
    category: &'a str,
    rank: i64,
    n_units: i64,
    mean_ci: Option<f64>,
    mean_nce: f64,
    /// Sums of CE, CS, NCE and GDP.
    totals: [f64; 4],
    pooled_ci: Option<f64>,
}

fn by_year_table<'a>() -> TableSchema<YearRow<'a>> {
    TableSchema::<YearRow<'_>>::new("by_year", "per year and category, ranked within the year")
        .int("year", |r| r.year)
        .text("category", |r| r.category)
        .int("rank", |r| r.rank)
        .int("n_units", |r| r.n_units)
        .float_or_null("mean_ci_t_per_10k_yuan", |r| r.mean_ci)
        .float("mean_nce_t_c", |r| r.mean_nce)
        .float("total_ce_t_c", |r| r.totals[0])
        .float("total_cs_t_c", |r| r.totals[1])
        .float("total_nce_t_c", |r| r.totals[2])
        .float("total_gdp_10k_yuan", |r| r.totals[3])
        .float_or_null("pooled_ci_t_per_10k_yuan", |r| r.pooled_ci)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::testing;
    use crate::stages::testing::nullable_f64s as f;
    use crate::table::TableBuilder;

    use arrow_array::RecordBatch;

    fn indices() -> RecordBatch {
        // units a, b: "dev"; c: "eco". Years 2000, 2001.
        //            CE    CS   GDP   CI    NCE
        // a 2000    100   20   100   1.0    80
        // a 2001    120   20   100   1.2   100
        // b 2000     60   30   200   0.3    30
        // b 2001     80   30   200   0.4    50
        // c 2000     10   50   100   0.1   −40
        // c 2001     20   50   100   0.2   −30
        let ce = vec![100.0, 120.0, 60.0, 80.0, 10.0, 20.0];
        let cs = vec![20.0, 20.0, 30.0, 30.0, 50.0, 50.0];
        let gdp = vec![100.0, 100.0, 200.0, 200.0, 100.0, 100.0];
        TableBuilder::new()
            .str("unit_id", &["a", "a", "b", "b", "c", "c"])
            .i64("year", vec![2000, 2001, 2000, 2001, 2000, 2001])
            .f64("nce_t_c", ce.iter().zip(&cs).map(|(e, s)| e - s).collect())
            .f64(
                "ci_t_per_10k_yuan",
                ce.iter().zip(&gdp).map(|(e, g)| e / g).collect(),
            )
            .f64("ce_t_c", ce)
            .f64("cs_t_c", cs)
            .f64("gdp_10k_yuan", gdp)
            .build()
            .unwrap()
    }

    fn run(
        params: serde_json::Value,
        categories: RecordBatch,
    ) -> Result<(Outputs, Vec<String>), StageError> {
        testing::run::<FunctionalAreas>(
            params,
            vec![("indices", indices()), ("categories", categories)],
        )
    }

    fn cats() -> RecordBatch {
        TableBuilder::new()
            .str("unit_id", &["c", "a", "b", "z"])
            .str("category", &["eco", "dev", "dev", "eco"])
            .build()
            .unwrap()
    }

    #[test]
    fn period_and_yearly_summaries() {
        let (out, warnings) = run(serde_json::json!({}), cats()).unwrap();
        let s = &out[0].1;
        // dev: mean CI = (1.0 + 1.2 + 0.3 + 0.4)/4 = 0.725; mean NCE = (80 + 100 + 30 + 50)/4 = 65
        //      pooled CI = 360/600 = 0.6; annual CE = (160 + 200)/2 = 180
        // eco: mean CI = 0.15; mean NCE = −35; annual NCE = (−40 − 30)/2 = −35
        assert_eq!(strings(s, "s", "category").unwrap(), vec!["dev", "eco"]);
        assert!((f(s, "mean_ci_t_per_10k_yuan")[0].unwrap() - 0.725).abs() < 1e-12);
        assert_eq!(f(s, "mean_nce_t_c"), vec![Some(65.0), Some(-35.0)]);
        assert_eq!(f(s, "mean_nce_10k_t")[0], Some(0.0065));
        assert!((f(s, "pooled_ci_t_per_10k_yuan")[0].unwrap() - 0.6).abs() < 1e-12);
        assert_eq!(f(s, "annual_ce_t_c")[0], Some(180.0));
        assert_eq!(f(s, "annual_nce_t_c")[1], Some(-35.0));
        assert_eq!(i64s(s, "s", "n_units").unwrap(), vec![2, 1]);
        // unit z has a category but no indices
        assert!(warnings.iter().any(|w| w.contains('z')), "{warnings:?}");
        // by year: 2000 dev mean CI 0.65, total CE 160; eco 0.1
        let y = &out[1].1;
        assert_eq!(i64s(y, "y", "year").unwrap(), vec![2000, 2000, 2001, 2001]);
        assert_eq!(f(y, "mean_ci_t_per_10k_yuan")[0], Some(0.65));
        assert_eq!(f(y, "total_ce_t_c")[0], Some(160.0));
        assert_eq!(f(y, "total_nce_t_c")[1], Some(-40.0));
    }

    #[test]
    fn ranking_by_nce_and_missing_category() {
        // rank by NCE: dev 65 > eco −35
        let (out, _) = run(serde_json::json!({"rank_by": "nce"}), cats()).unwrap();
        assert_eq!(i64s(&out[0].1, "s", "rank").unwrap(), vec![1, 2]);
        let partial = TableBuilder::new()
            .str("unit_id", &["a", "b"])
            .str("category", &["dev", "dev"])
            .build()
            .unwrap();
        let err = run(serde_json::json!({}), partial).err().unwrap();
        assert!(
            err.message.contains("no row for unit `c`"),
            "{}",
            err.message
        );
        let twice = TableBuilder::new()
            .str("unit_id", &["a", "a"])
            .str("category", &["dev", "eco"])
            .build()
            .unwrap();
        assert!(
            run(serde_json::json!({}), twice)
                .err()
                .unwrap()
                .message
                .contains("two categories")
        );
    }
}
