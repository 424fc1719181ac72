//! `functional_areas`: carbon-budget summaries by main-functional-area category (主体功能区),
//! per year and over the whole period, ranked as seed study B reports them (mean carbon
//! intensity, mean net emission, totals, unit counts).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::stage::{
    Inputs, OutputDecl, Outputs, ParamDoc, Port, Stage, StageContext, StageError,
};
use crate::table::{TableBuilder, f64s, i64s, ids, strings};

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
        vec![
            OutputDecl::new("summary", "per category over the period, ranked").with_columns([
                "category",
                "rank",
                "n_units",
                "n_years",
                "mean_ci_t_per_10k_yuan",
                "mean_nce_t_c",
                "mean_nce_10k_t",
                "mean_ce_t_c",
                "mean_cs_t_c",
                "pooled_ci_t_per_10k_yuan",
                "annual_ce_t_c",
                "annual_cs_t_c",
                "annual_nce_t_c",
                "annual_gdp_10k_yuan",
            ]),
            OutputDecl::new("by_year", "per year and category, ranked within the year")
                .with_columns([
                    "year",
                    "category",
                    "rank",
                    "n_units",
                    "mean_ci_t_per_10k_yuan",
                    "mean_nce_t_c",
                    "total_ce_t_c",
                    "total_cs_t_c",
                    "total_nce_t_c",
                    "total_gdp_10k_yuan",
                    "pooled_ci_t_per_10k_yuan",
                ]),
        ]
    }

    fn run(params: &Params, inputs: &Inputs, ctx: &StageContext) -> Result<Outputs, StageError> {
        let cat_table = inputs.table("categories")?;
        let cat_units = ids(cat_table, "categories", "unit_id")?;
        let cat_values = strings(cat_table, "categories", &params.category_column)?;
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

        let t = inputs.table("indices")?;
        let units = ids(t, "indices", "unit_id")?;
        let years = i64s(t, "indices", "year")?;
        let ce = f64s(t, "indices", "ce_t_c")?;
        let cs = f64s(t, "indices", "cs_t_c")?;
        let nce = f64s(t, "indices", "nce_t_c")?;
        let gdp = f64s(t, "indices", "gdp_10k_yuan")?;
        let ci = f64s(t, "indices", "ci_t_per_10k_yuan")?;

        let cat_names: Vec<&String> = {
            let mut v: Vec<&String> = category.values().collect();
            v.sort();
            v.dedup();
            v
        };
        let cat_index: BTreeMap<&str, usize> = cat_names
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let unit_index: BTreeMap<&str, usize> = category
            .keys()
            .enumerate()
            .map(|(i, u)| (u.as_str(), i))
            .collect();
        let mut period = vec![Acc::default(); cat_names.len()];
        let mut yearly: BTreeMap<i64, Vec<Acc>> = BTreeMap::new();
        let mut totals_by_year: BTreeMap<i64, Vec<[f64; 4]>> = BTreeMap::new();
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
            period[k].add(u, years[i], ce[i], cs[i], nce[i], gdp[i], ci[i]);
            yearly
                .entry(years[i])
                .or_insert_with(|| vec![Acc::default(); cat_names.len()])[k]
                .add(u, years[i], ce[i], cs[i], nce[i], gdp[i], ci[i]);
            let tot = &mut totals_by_year
                .entry(years[i])
                .or_insert_with(|| vec![[0.0; 4]; cat_names.len()])[k];
            tot[0] += ce[i];
            tot[1] += cs[i];
            tot[2] += nce[i];
            tot[3] += gdp[i];
        }
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

        // period summary: categories with at least one unit-year
        let present: Vec<usize> = (0..cat_names.len())
            .filter(|&k| period[k].n_rows > 0)
            .collect();
        let keys: Vec<(&str, Option<f64>)> = present
            .iter()
            .map(|&k| (cat_names[k].as_str(), period[k].key(params.rank_by)))
            .collect();
        let r = ranks(&keys);
        let mut order: Vec<usize> = (0..present.len()).collect();
        order.sort_by_key(|&i| r[i]);
        let pick = |f: &dyn Fn(usize) -> f64| -> Vec<f64> {
            order.iter().map(|&i| f(present[i])).collect()
        };
        let annual = |k: usize, j: usize| -> f64 {
            let years: Vec<f64> = totals_by_year.values().map(|v| v[k][j]).collect();
            let n = period[k].years.len();
            years.iter().sum::<f64>() / n as f64
        };
        let names: Vec<&str> = order
            .iter()
            .map(|&i| cat_names[present[i]].as_str())
            .collect();
        let summary = TableBuilder::new()
            .str("category", &names)
            .i64("rank", order.iter().map(|&i| r[i]).collect())
            .i64(
                "n_units",
                order
                    .iter()
                    .map(|&i| i64::try_from(period[present[i]].units.len()).expect("few units"))
                    .collect(),
            )
            .i64(
                "n_years",
                order
                    .iter()
                    .map(|&i| i64::try_from(period[present[i]].years.len()).expect("few years"))
                    .collect(),
            )
            .f64_opt(
                "mean_ci_t_per_10k_yuan",
                order
                    .iter()
                    .map(|&i| period[present[i]].mean_ci())
                    .collect(),
            )
            .f64("mean_nce_t_c", pick(&|k| period[k].mean_nce()))
            .f64("mean_nce_10k_t", pick(&|k| period[k].mean_nce() / 1e4))
            .f64(
                "mean_ce_t_c",
                pick(&|k| period[k].ce / f64::from(period[k].n_rows)),
            )
            .f64(
                "mean_cs_t_c",
                pick(&|k| period[k].cs / f64::from(period[k].n_rows)),
            )
            .f64_opt(
                "pooled_ci_t_per_10k_yuan",
                order.iter().map(|&i| pooled(&period[present[i]])).collect(),
            )
            .f64("annual_ce_t_c", pick(&|k| annual(k, 0)))
            .f64("annual_cs_t_c", pick(&|k| annual(k, 1)))
            .f64("annual_nce_t_c", pick(&|k| annual(k, 2)))
            .f64("annual_gdp_10k_yuan", pick(&|k| annual(k, 3)))
            .build()?;

        // per year
        let mut b = YearCols::default();
        for (year, accs) in &yearly {
            let present: Vec<usize> = (0..accs.len()).filter(|&k| accs[k].n_rows > 0).collect();
            let keys: Vec<(&str, Option<f64>)> = present
                .iter()
                .map(|&k| (cat_names[k].as_str(), accs[k].key(params.rank_by)))
                .collect();
            let r = ranks(&keys);
            let mut order: Vec<usize> = (0..present.len()).collect();
            order.sort_by_key(|&i| r[i]);
            for i in order {
                let a = &accs[present[i]];
                b.year.push(*year);
                b.category.push(cat_names[present[i]].as_str());
                b.rank.push(r[i]);
                b.n_units
                    .push(i64::try_from(a.units.len()).expect("few units"));
                b.mean_ci.push(a.mean_ci());
                b.mean_nce.push(a.mean_nce());
                b.ce.push(a.ce);
                b.cs.push(a.cs);
                b.nce.push(a.nce_sum);
                b.gdp.push(a.gdp);
                b.pooled.push(pooled(a));
            }
        }
        let by_year = TableBuilder::new()
            .i64("year", b.year)
            .str("category", &b.category)
            .i64("rank", b.rank)
            .i64("n_units", b.n_units)
            .f64_opt("mean_ci_t_per_10k_yuan", b.mean_ci)
            .f64("mean_nce_t_c", b.mean_nce)
            .f64("total_ce_t_c", b.ce)
            .f64("total_cs_t_c", b.cs)
            .f64("total_nce_t_c", b.nce)
            .f64("total_gdp_10k_yuan", b.gdp)
            .f64_opt("pooled_ci_t_per_10k_yuan", b.pooled)
            .build()?;
        Ok(vec![
            ("summary".to_owned(), summary),
            ("by_year".to_owned(), by_year),
        ])
    }
}

fn pooled(a: &Acc) -> Option<f64> {
    (a.gdp > 0.0).then(|| a.ce / a.gdp)
}

#[derive(Default)]
struct YearCols<'a> {
    year: Vec<i64>,
    category: Vec<&'a str>,
    rank: Vec<i64>,
    n_units: Vec<i64>,
    mean_ci: Vec<Option<f64>>,
    mean_nce: Vec<f64>,
    ce: Vec<f64>,
    cs: Vec<f64>,
    nce: Vec<f64>,
    gdp: Vec<f64>,
    pooled: Vec<Option<f64>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::testing;

    use arrow_array::RecordBatch;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float64Type;

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

    fn f(t: &RecordBatch, name: &str) -> Vec<Option<f64>> {
        t.column_by_name(name)
            .unwrap()
            .as_primitive::<Float64Type>()
            .iter()
            .collect()
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
