//! The `autocorrelation` stage: global Moran's I and local Moran's I (LISA) of one variable
//! over a contiguity edge list, per group (e.g. per year), with analytic and permutation
//! inference and HH/LL/HL/LH classes.
//!
//! Weights are row-standardised from the symmetric edge list. The statistics follow PySAL's
//! esda 2.9 (`Moran`, `Moran_Local`); see `methods::moran` for the exact definitions.

use std::collections::BTreeMap;

use arrow_array::ArrayRef;
use serde::{Deserialize, Serialize};

use crate::engine::stage::{
    Inputs, OutputDecl, Outputs, ParamDoc, Port, Stage, StageContext, StageError,
};
use crate::methods::getis_ord::{self, GiStar, GiStarError, hotspot_class};
use crate::methods::moran::{self, Batches, Cluster, GlobalMoran, LocalMoran, MoranError};
use crate::methods::weights::{SpatialWeights, WeightsError};
use crate::table::schema::TableSchema;
use crate::stages::shared::groups::{default_id_column, refuse_by_clash, select_groups};
use crate::table;

/// The `autocorrelation` kind.
pub struct Autocorrelation;

/// The default seed of the permutation tests: a fixed constant so runs repeat exactly.
pub const DEFAULT_SEED: u64 = 12_345;

/// Parameters of `autocorrelation`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The numeric column whose spatial pattern is tested.
    pub variable: String,
    /// The unit id column of `table`, matching the ids in `edges`. Default `unit_id`.
    #[serde(default = "default_id_column")]
    pub id_column: String,
    /// Random permutations for the pseudo p-values. Default 999 (the usual choice in GeoDa
    /// and PySAL).
    #[serde(default = "default_permutations")]
    pub permutations: usize,
    /// Seed of the permutation tests. Default [`DEFAULT_SEED`].
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Significance level of the LISA classes on the permutation p-value. Default 0.05.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Optional grouping column (e.g. `year`): one analysis per value. Default: one group.
    #[serde(default)]
    pub by: Option<String>,
    /// Keep only the rows of this year (column `year`). Default: all rows.
    #[serde(default)]
    pub year: Option<i64>,
    /// Add the `hotspots` output: Getis-Ord Gi* per unit. Default false.
    #[serde(default)]
    pub hotspots: bool,
}

fn default_permutations() -> usize {
    999
}
fn default_seed() -> u64 {
    DEFAULT_SEED
}
fn default_alpha() -> f64 {
    0.05
}

/// The `global` output: one row per group.
fn global_table(params: &Params) -> TableSchema<GlobalRow> {
    TableSchema::<GlobalRow>::new(
        "global",
        "one row per group: moran_i, expected_i = −1/(n−1), z (normality), p_norm (two-sided), p_perm (pseudo p), \
         z_rand and p_rand (randomisation), variance_norm, n",
    )
    .when_some(params.by.clone(), |t, by| t.taken(by, |r| r.key_row))
    .float_or_null("moran_i", |r| r.m.as_ref().map(|m| m.moran_i))
    .float_or_null("expected_i", |r| r.m.as_ref().map(|m| m.expected_i))
    .float_or_null("z", |r| r.m.as_ref().map(|m| m.z_norm))
    .float_or_null("p_norm", |r| r.m.as_ref().map(|m| m.p_norm))
    .float_or_null("p_perm", |r| r.m.as_ref().and_then(|m| m.p_perm))
    .float_or_null("z_rand", |r| r.m.as_ref().map(|m| m.z_rand))
    .float_or_null("p_rand", |r| r.m.as_ref().map(|m| m.p_rand))
    .float_or_null("variance_norm", |r| r.m.as_ref().map(|m| m.variance_norm))
    .int("n", |r| r.n)
}

/// The `local` output: one row per unit and group.
fn local_table(params: &Params) -> TableSchema<LocalRow> {
    TableSchema::<LocalRow>::new(
        "local",
        "one row per unit and group: ii (local Moran), z (standardised value), p_perm (conditional permutation), \
         class (HH/LL/HL/LH if p_perm < alpha, else ns), lag (spatial lag of z), quadrant (HH/LH/LL/HL regardless of p)",
    )
    .text("unit_id", |r| &r.unit_id)
    .when_some(params.by.clone(), |t, by| t.taken(by, |r| r.key_row))
    .float_or_null("ii", |r| r.ii)
    .float_or_null("z", |r| r.z)
    .float_or_null("p_perm", |r| r.p_perm)
    .text("class", |r| r.class)
    .float_or_null("lag", |r| r.lag)
    .text("quadrant", |r| r.quadrant)
}

/// The `hotspots` output (with `hotspots: true`): one row per unit and group.
fn hotspot_table(params: &Params) -> TableSchema<HotspotRow> {
    TableSchema::<HotspotRow>::new(
        "hotspots",
        "one row per unit and group: gi_star_z (Getis-Ord Gi* z-score, binary weights with the unit itself), \
         p_norm (one-sided normal p of |z|), class (hot if z > 0, cold if z < 0 when p_norm < alpha, else ns)",
    )
    .text("unit_id", |r| &r.unit_id)
    .when_some(params.by.clone(), |t, by| t.taken(by, |r| r.key_row))
    .float_or_null("gi_star_z", |r| r.z)
    .float_or_null("p_norm", |r| r.p_norm)
    .text("class", |r| r.class)
}

/// Upper bound on `permutations`, to catch a typo that would run for hours.
const MAX_PERMUTATIONS: usize = 1_000_000;

impl Stage for Autocorrelation {
    const KIND: &'static str = "autocorrelation";
    const VERSION: u32 = 2;
    const DOC: &'static str = "Spatial autocorrelation of one variable, per group: global Moran's I with E[I], the \
        z-score and two-sided p-value under normality (and under randomisation), and a permutation pseudo p-value; \
        local Moran's I (LISA) per unit with a conditional-permutation pseudo p-value and its class HH/LL/HL/LH \
        (p < alpha) or ns. Weights: row-standardised contiguity from the `edges` table (`from`, `to`; symmetric, \
        duplicates merged). Statistics as PySAL esda 2.9 (`Moran`, `Moran_Local`); pseudo p-values use esda's \
        definition (min of the two tail counts + 1)/(permutations + 1) with this tool's own seeded generator. \
        A unit without neighbours, an edge naming a unit absent from the group, or a duplicate unit is an error; \
        a group whose values are all equal gets null statistics and a warning. With `hotspots: true`, also \
        Getis-Ord Gi* per unit (binary contiguity weights including the unit itself; z under normality, one-sided \
        p as esda `G_Local(y, w, transform='B', star=True)`) classed hot/cold at `alpha`.";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "variable",
            ty: "column",
            default: "",
            doc: "the numeric column tested",
        },
        ParamDoc {
            name: "id_column",
            ty: "column",
            default: "",
            doc: "unit ids of `table`, as used in `edges`",
        },
        ParamDoc {
            name: "permutations",
            ty: "integer",
            default: "",
            doc: "random permutations for `p_perm` (1..1000000)",
        },
        ParamDoc {
            name: "seed",
            ty: "integer",
            default: "",
            doc: "seed of the permutations; the same seed gives the same p-values on any number of threads, and each group uses it afresh",
        },
        ParamDoc {
            name: "alpha",
            ty: "number",
            default: "",
            doc: "significance level of the LISA classes (`p_perm < alpha`)",
        },
        ParamDoc {
            name: "by",
            ty: "column",
            default: "",
            doc: "grouping column (e.g. `year`): one analysis per value",
        },
        ParamDoc {
            name: "year",
            ty: "integer",
            default: "",
            doc: "keep only rows with this `year`; needed when the table has several years and `by` is not `year`",
        },
        ParamDoc {
            name: "hotspots",
            ty: "bool",
            default: "",
            doc: "add the `hotspots` output: Getis-Ord Gi* z-score, one-sided normal p and class hot/cold/ns (`p_norm < alpha`) per unit",
        },
    ];
    type Params = Params;

    #[cfg(test)]
    fn declaration_examples() -> Vec<crate::engine::stage::Example> {
        use crate::engine::stage::Example;
        use crate::stages::testing::study;
        use serde_json::json;
        [false, true]
            .into_iter()
            .map(|hotspots| {
                Example::new(
                    json!({"variable": "nce_t_c", "permutations": 99, "hotspots": hotspots}),
                    vec![("table", study::indices().1), ("edges", study::edges())],
                )
            })
            .collect()
    }
    fn required_example() -> serde_json::Value {
        serde_json::json!({"variable": "nce_t_c"})
    }

    fn ports(params: &Params) -> Vec<Port> {
        let mut columns = vec![params.id_column.clone(), params.variable.clone()];
        columns.extend(params.by.clone());
        if params.year.is_some() {
            columns.push("year".to_owned());
        }
        vec![
            Port::required("table", "one row per unit (per group) with the variable").with_columns(columns),
            Port::required("edges", "contiguity: one row per pair of neighbouring units (either order), e.g. `contiguity`'s `edges`").with_columns(["from", "to"]),
        ]
    }

    fn outputs(params: &Params) -> Vec<OutputDecl> {
        let mut out = vec![global_table(params).decl(), local_table(params).decl()];
        if params.hotspots {
            out.push(hotspot_table(params).decl());
        }
        out
    }

    fn validate(params: &Params) -> Result<(), StageError> {
        if params.permutations == 0 || params.permutations > MAX_PERMUTATIONS {
            return Err(StageError::data(format!(
                "`permutations` is {}, expected 1..{MAX_PERMUTATIONS}",
                params.permutations
            ))
            .with_hint("999 is the usual choice; 9999 for finer p-values"));
        }
        if !(params.alpha > 0.0 && params.alpha < 1.0) {
            return Err(StageError::data(format!(
                "`alpha` is {}, expected a number between 0 and 1",
                params.alpha
            ))
            .with_hint("0.05 is the usual level"));
        }
        refuse_by_clash(params.by.as_deref(), &Self::outputs(params))
    }

    fn run(params: &Params, inputs: &Inputs, ctx: &StageContext) -> Result<Outputs, StageError> {
        let batch = inputs.table("table")?;
        let edges = inputs.table("edges")?;
        let ids = table::ids(batch, "table", &params.id_column)?;
        let values = table::f64s(batch, "table", &params.variable)?;
        let from = table::ids(edges, "edges", "from")?;
        let to = table::ids(edges, "edges", "to")?;
        let groups = select_groups(batch, "table", params.by.as_deref(), params.year)?;
        if 1.0 / (params.permutations as f64 + 1.0) >= params.alpha {
            ctx.warn(format!("with {} permutations no p-value can fall below alpha = {}: every LISA class will be `ns`", params.permutations, params.alpha));
        }

        let progress = Progress {
            ctx,
            groups: groups.len(),
            permutations: params.permutations,
        };
        let mut global: Vec<GlobalRow> = Vec::with_capacity(groups.len());
        let mut local: Vec<LocalRow> = Vec::new();
        let mut hot: Vec<HotspotRow> = Vec::new();
        for g in 0..groups.len() {
            if ctx.is_cancelled() {
                return Err(StageError::failed("cancelled"));
            }
            let at = groups.describe(g);
            let rows = groups.unit_rows(g, &ids)?;
            let unit_ids: Vec<&str> = rows.iter().map(|&r| ids[r].as_str()).collect();
            let w = weights(&unit_ids, &from, &to, &at)?;
            let x: Vec<f64> = rows.iter().map(|&r| values[r]).collect();
            if let Some(k) = x.iter().position(|v| !v.is_finite()) {
                return Err(StageError::data(format!("`table` row {}: unit `{}`{at}: column `{}` is missing or not finite", rows[k] + 1, unit_ids[k], params.variable))
                    .with_hint("fill in the value upstream, or leave the unit out of both the table and the edges"));
            }
            let result = moran_tests(&x, &w, params, &progress.of_group(g));
            let (gm, lm) = match result {
                Ok(r) => (Some(r.0), Some(r.1)),
                Err(MoranError::Constant) => {
                    let name = if at.is_empty() {
                        "the table".to_owned()
                    } else {
                        format!("group {}", at.trim_start_matches(", "))
                    };
                    ctx.warn_kind("moran_undefined", format!("{name}: every unit has the same `{}`, so Moran's I is undefined; its statistics are null", params.variable));
                    (None, None)
                }
                Err(MoranError::TooFewUnits { n }) => {
                    return Err(StageError::data(format!(
                        "`table`{at}: {n} unit(s); Moran's I needs at least 4"
                    ))
                    .with_hint("check the grouping and the `year:` filter"));
                }
                Err(e) => return Err(StageError::internal(format!("Moran's I{at}: {e}"))),
            };
            let key_row = groups.key_row(g);
            global.push(GlobalRow {
                key_row,
                n: i64::try_from(unit_ids.len()).expect("unit counts fit i64"),
                m: gm,
            });
            push_local(
                &mut local,
                (g, key_row),
                &unit_ids,
                lm.as_ref(),
                params.alpha,
            );
            if params.hotspots {
                let gi = gi_star(&x, &w, &at, ctx)?;
                push_hotspots(&mut hot, (g, key_row), &unit_ids, gi.as_ref(), params.alpha);
            }
        }

        let keys = groups.key_column(batch)?;
        let keys: Vec<&ArrayRef> = keys.iter().collect();
        // Units in id order, each unit's groups in key order.
        local.sort_by(|a, b| a.unit_id.cmp(&b.unit_id).then(a.group.cmp(&b.group)));
        let mut out = vec![
            global_table(params).build_with(&global, &keys)?,
            local_table(params).build_with(&local, &keys)?,
        ];
        if params.hotspots {
            hot.sort_by(|a, b| a.unit_id.cmp(&b.unit_id).then(a.group.cmp(&b.group)));
            out.push(hotspot_table(params).build_with(&hot, &keys)?);
        }
        Ok(out)
    }
}

/// Global and local Moran's I of one group, their permutations in batches that report
/// `progress`.
fn moran_tests(
    x: &[f64],
    w: &SpatialWeights,
    params: &Params,
    on_batch: &dyn Fn(usize),
) -> Result<(GlobalMoran, LocalMoran), MoranError> {
    let (p, seed) = (params.permutations, params.seed);
    let global_batches = Batches {
        size: Batches::DEFAULT_SIZE,
        on_batch,
    };
    let gm = moran::global_moran_in_batches(x, w, p, seed, &global_batches)?;
    let local_batches = Batches {
        size: Batches::DEFAULT_SIZE,
        on_batch: &|done| on_batch(p + done),
    };
    Ok((
        gm,
        moran::local_moran_in_batches(x, w, p, seed, &local_batches)?,
    ))
}

/// The stage's progress in permutations: each group runs them twice, for the global and for
/// the local statistic.
struct Progress<'a> {
    ctx: &'a StageContext,
    groups: usize,
    permutations: usize,
}

impl Progress<'_> {
    /// Reports for group `g`, given the permutations it has done.
    fn of_group(&self, g: usize) -> impl Fn(usize) + '_ {
        let per_group = 2 * self.permutations as u64;
        let total = self.groups as u64 * per_group;
        move |done| {
            self.ctx
                .progress(g as u64 * per_group + done as u64, total, "permutations");
        }
    }
}

/// Gi* of one group; a group where it is undefined (constant values, zero mean) gets nulls and
/// a warning.
fn gi_star(
    x: &[f64],
    w: &SpatialWeights,
    at: &str,
    ctx: &StageContext,
) -> Result<Option<GiStar>, StageError> {
    match getis_ord::gi_star(x, w) {
        Ok(gi) => Ok(Some(gi)),
        Err(
            e @ (GiStarError::Constant | GiStarError::ZeroMean | GiStarError::TooFewUnits { .. }),
        ) => {
            let name = if at.is_empty() {
                "the table".to_owned()
            } else {
                format!("group {}", at.trim_start_matches(", "))
            };
            ctx.warn(format!("{name}: {e}; its hotspots are null"));
            Ok(None)
        }
        Err(e) => Err(StageError::internal(format!("Gi*{at}: {e}"))),
    }
}

struct HotspotRow {
    unit_id: String,
    /// The group's index (for the row order) and the input row holding its key.
    group: usize,
    key_row: usize,
    z: Option<f64>,
    p_norm: Option<f64>,
    class: &'static str,
}

/// One row per unit; a z that is undefined (a unit whose neighbourhood is every unit has no
/// variance) is null and `ns`.
fn push_hotspots(
    rows: &mut Vec<HotspotRow>,
    (group, key_row): (usize, usize),
    unit_ids: &[&str],
    gi: Option<&GiStar>,
    alpha: f64,
) {
    for (k, id) in unit_ids.iter().enumerate() {
        let (z, p) = match gi {
            Some(gi) if gi.z[k].is_finite() => (Some(gi.z[k]), Some(gi.p_norm[k])),
            _ => (None, None),
        };
        rows.push(HotspotRow {
            unit_id: (*id).to_owned(),
            group,
            key_row,
            z,
            p_norm: p,
            class: match (z, p) {
                (Some(z), Some(p)) => hotspot_class(z, p, alpha),
                _ => "ns",
            },
        });
    }
}

/// Row-standardised weights over the group's units (sorted ids) from the edge list. Every
/// edge must name units of the group, and every unit needs a neighbour.
fn weights(
    unit_ids: &[&str],
    from: &[String],
    to: &[String],
    at: &str,
) -> Result<SpatialWeights, StageError> {
    let index: BTreeMap<&str, usize> = unit_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i))
        .collect();
    let mut pairs = Vec::with_capacity(from.len());
    for (row, (a, b)) in from.iter().zip(to).enumerate() {
        let mut ends = [0; 2];
        for (end, id) in ends.iter_mut().zip([a, b]) {
            *end = *index.get(id.as_str()).ok_or_else(|| {
                StageError::data(format!("`edges` row {}: unit `{id}` is not in `table`{at}", row + 1))
                    .with_hint("the edges must be built from the same units as the table; with `by: year` every unit needs a row in every year")
            })?;
        }
        pairs.push((ends[0], ends[1]));
    }
    let w = SpatialWeights::row_standardised(unit_ids.len(), &pairs).map_err(|e| match e {
        WeightsError::SelfLoop { edge, unit } => StageError::data(format!(
            "`edges` row {}: unit `{}` is listed as its own neighbour",
            edge + 1,
            unit_ids[unit]
        ))
        .with_hint("remove the row; contiguity edges join two different units"),
        WeightsError::UnitOutOfRange { .. } => StageError::internal(e.to_string()),
    })?;
    let islands = w.islands();
    if !islands.is_empty() {
        let shown: Vec<&str> = islands.iter().take(10).map(|&i| unit_ids[i]).collect();
        let more = if islands.len() > 10 {
            format!(" and {} more", islands.len() - 10)
        } else {
            String::new()
        };
        return Err(StageError::data(format!("`table`{at}: {} unit(s) have no neighbour in `edges`: {}{more}", islands.len(), shown.join(", ")))
            .with_hint("Moran's I needs every unit to have a neighbour: add an edge for each island (e.g. to its nearest unit) or leave it out of the table"));
    }
    Ok(w)
}

/// A row of the `global` output: one group, its statistics `None` where undefined.
struct GlobalRow {
    key_row: usize,
    n: i64,
    m: Option<GlobalMoran>,
}

struct LocalRow {
    unit_id: String,
    /// The group's index (for the row order) and the input row holding its key.
    group: usize,
    key_row: usize,
    ii: Option<f64>,
    z: Option<f64>,
    p_perm: Option<f64>,
    class: &'static str,
    lag: Option<f64>,
    quadrant: &'static str,
}

fn push_local(
    rows: &mut Vec<LocalRow>,
    (group, key_row): (usize, usize),
    unit_ids: &[&str],
    m: Option<&LocalMoran>,
    alpha: f64,
) {
    for (k, id) in unit_ids.iter().enumerate() {
        let row = match m {
            Some(m) => {
                let p = m.p_perm.as_ref().map(|p| p[k]);
                LocalRow {
                    unit_id: (*id).to_owned(),
                    group,
                    key_row,
                    ii: Some(m.ii[k]),
                    z: Some(m.z[k]),
                    p_perm: p,
                    class: Cluster::classify(m.z[k], m.lag[k], p.unwrap_or(1.0), alpha).label(),
                    lag: Some(m.lag[k]),
                    quadrant: Cluster::classify(m.z[k], m.lag[k], 0.0, 1.0).label(),
                }
            }
            None => LocalRow {
                unit_id: (*id).to_owned(),
                group,
                key_row,
                ii: None,
                z: None,
                p_perm: None,
                class: "ns",
                lag: None,
                quadrant: "ns",
            },
        };
        rows.push(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::testing;
    use crate::table::TableBuilder;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use arrow_array::{Array, RecordBatch};

    const EDGES: &str = include_str!("../../tests/fixtures/stats/henan_units123_edges.csv");
    const GLOBAL: &str = include_str!("../../tests/fixtures/stats/moran_global_expected.json");
    const LOCAL: &str = include_str!("../../tests/fixtures/stats/moran_local_expected.csv");
    const GI_STAR: &str = include_str!("../../tests/fixtures/stats/gi_star_expected.csv");

    fn run(
        params: serde_json::Value,
        table: RecordBatch,
        edges: RecordBatch,
    ) -> Result<(Outputs, Vec<String>), StageError> {
        testing::run::<Autocorrelation>(params, vec![("table", table), ("edges", edges)])
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

    /// The Henan edges as a `contiguity`-style table (ids as text).
    fn henan_edges() -> (Vec<i64>, RecordBatch) {
        let pairs: Vec<(&str, &str)> = EDGES
            .lines()
            .skip(1)
            .map(|l| l.split_once(',').unwrap())
            .collect();
        let mut ids: Vec<i64> = pairs
            .iter()
            .flat_map(|&(a, b)| [a.parse().unwrap(), b.parse().unwrap()])
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let from: Vec<&str> = pairs.iter().map(|p| p.0).collect();
        let to: Vec<&str> = pairs.iter().map(|p| p.1).collect();
        (
            ids,
            TableBuilder::new()
                .str("from", &from)
                .str("to", &to)
                .build()
                .unwrap(),
        )
    }

    /// reference.py's `clustered` variable (year 2000) and `scattered` (year 2010), with the
    /// id as an integer column named `adcode` and rows in reverse order.
    fn henan_table(ids: &[i64]) -> RecordBatch {
        let mut adcode = Vec::new();
        let mut year = Vec::new();
        let mut x = Vec::new();
        for &id in ids.iter().rev() {
            adcode.extend([id, id]);
            year.extend([2010, 2000]);
            x.extend([
                ((id * 7919) % 103) as f64,
                ((id / 100) % 100) as f64 + 0.5 * (id % 7) as f64,
            ]);
        }
        TableBuilder::new()
            .i64("adcode", adcode)
            .i64("year", year)
            .f64("x", x)
            .build()
            .unwrap()
    }

    #[test]
    fn per_year_results_match_esda() {
        let (ids, edges) = henan_edges();
        let params = serde_json::json!({ "variable": "x", "id_column": "adcode", "by": "year", "permutations": 999, "seed": 3 });
        let (out, warnings) = run(params.clone(), henan_table(&ids), edges.clone()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let (global, local) = (&out[0].1, &out[1].1);
        assert_eq!(
            table::column_names(global),
            [
                "year",
                "moran_i",
                "expected_i",
                "z",
                "p_norm",
                "p_perm",
                "z_rand",
                "p_rand",
                "variance_norm",
                "n"
            ]
        );
        assert_eq!(
            table::column_names(local),
            [
                "unit_id", "year", "ii", "z", "p_perm", "class", "lag", "quadrant"
            ]
        );
        assert_eq!(
            global
                .column(0)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec(),
            [2000, 2010]
        );

        // esda 2.9 (tests/fixtures/stats/moran_global_expected.json): 2000 = clustered, 2010 = scattered.
        let expected: serde_json::Value = serde_json::from_str(GLOBAL).unwrap();
        for (row, name) in ["clustered", "scattered"].into_iter().enumerate() {
            for (col, key) in [
                ("moran_i", "moran_i"),
                ("expected_i", "expected_i"),
                ("z", "z_norm"),
                ("p_norm", "p_norm"),
                ("z_rand", "z_rand"),
                ("p_rand", "p_rand"),
            ] {
                let got = f64_col(global, col)[row].unwrap();
                let want = expected[name][key].as_f64().unwrap();
                assert!(
                    (got - want).abs() < 1e-9,
                    "{name} {col}: {got} vs esda {want}"
                );
            }
        }
        // Permutation p-values: sane, small for the clustered pattern, large for the scattered one.
        let p = f64_col(global, "p_perm");
        assert_eq!(p[0], Some(0.001));
        assert!(p[1].unwrap() > 0.1, "{p:?}");

        // Local rows sorted by unit then year; Is as esda to 1e-9, classes where esda's p is clear.
        assert_eq!(local.num_rows(), 246);
        let units = table::strings(local, "l", "unit_id").unwrap();
        assert_eq!((units[0].as_str(), units[1].as_str()), ("410100", "410100"));
        let ii = f64_col(local, "ii");
        let p_local = f64_col(local, "p_perm");
        let class = table::strings(local, "l", "class").unwrap();
        let mut checked = 0;
        for line in LOCAL.lines().skip(1) {
            let r: Vec<&str> = line.split(',').collect();
            let k = ids.binary_search(&r[1].parse().unwrap()).unwrap() * 2
                + usize::from(r[0] == "scattered");
            assert_eq!(units[k], r[1]);
            let want: f64 = r[3].parse().unwrap();
            assert!(
                (ii[k].unwrap() - want).abs() < 1e-9,
                "unit {}: {:?} vs {want}",
                r[1],
                ii[k]
            );
            let p = p_local[k].unwrap();
            assert!((0.001..=0.5).contains(&p));
            let pe: f64 = r[7].parse().unwrap();
            // With 999 draws our p has sd ≤ 0.016; compare classes only far from the threshold.
            if !(0.005..=0.15).contains(&pe) {
                checked += 1;
                let label = match r[8] {
                    "High-High" => "HH",
                    "Low-High" => "LH",
                    "Low-Low" => "LL",
                    "High-Low" => "HL",
                    _ => "ns",
                };
                assert_eq!(
                    class[k], label,
                    "unit {} ({}): p {p} vs esda {pe}",
                    r[1], r[0]
                );
            }
        }
        assert!(checked > 100, "{checked}");

        // The same seed gives identical tables; another seed changes some local p-values.
        let (again, _) = run(params, henan_table(&ids), edges.clone()).unwrap();
        assert_eq!(again, out);
        let (other, _) = run(
            serde_json::json!({ "variable": "x", "id_column": "adcode", "by": "year", "seed": 4 }),
            henan_table(&ids),
            edges,
        )
        .unwrap();
        assert_ne!(f64_col(&other[1].1, "p_perm"), p_local);
    }

    #[test]
    fn gi_star_hotspots_match_esda_g_local_star() {
        let (ids, edges) = henan_edges();
        let params = serde_json::json!({ "variable": "x", "id_column": "adcode", "by": "year", "hotspots": true });
        let (out, warnings) = run(params, henan_table(&ids), edges).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let (name, hot) = &out[2];
        assert_eq!(name, "hotspots");
        assert_eq!(
            table::column_names(hot),
            ["unit_id", "year", "gi_star_z", "p_norm", "class"]
        );
        // Rows by unit then year: the 2000 rows (even k) hold reference_domain.py's `clustered`.
        // esda 2.9 G_Local(y, w, transform='B', star=True): Zs and p_norm (one-sided) to 1e-9.
        let z = f64_col(hot, "gi_star_z");
        let p = f64_col(hot, "p_norm");
        let class = table::strings(hot, "h", "class").unwrap();
        let units = table::strings(hot, "h", "unit_id").unwrap();
        let (mut n_hot, mut n_cold) = (0, 0);
        for line in GI_STAR.lines().skip(1) {
            let r: Vec<&str> = line.split(',').collect();
            let k = ids.binary_search(&r[0].parse().unwrap()).unwrap() * 2;
            assert_eq!(units[k], r[0]);
            let (want_z, want_p): (f64, f64) = (r[3].parse().unwrap(), r[4].parse().unwrap());
            assert!(
                (z[k].unwrap() - want_z).abs() < 1e-9,
                "unit {}: {:?} vs {want_z}",
                r[0],
                z[k]
            );
            assert!(
                (p[k].unwrap() - want_p).abs() < 1e-9,
                "unit {}: {:?} vs {want_p}",
                r[0],
                p[k]
            );
            let want_class = match (want_p < 0.05, want_z > 0.0) {
                (true, true) => "hot",
                (true, false) => "cold",
                _ => "ns",
            };
            assert_eq!(class[k], want_class, "unit {}", r[0]);
            n_hot += usize::from(class[k] == "hot");
            n_cold += usize::from(class[k] == "cold");
        }
        // reference_domain.py prints 14 hot and 16 cold units at 0.05.
        assert_eq!((n_hot, n_cold), (14, 16));
    }

    #[test]
    fn hotspots_output_exists_only_when_asked() {
        let params: Params =
            serde_json::from_value(serde_json::json!({ "variable": "x" })).unwrap();
        assert_eq!(Autocorrelation::outputs(&params).len(), 2);
        let (t, e) = path();
        let (out, _) = run(serde_json::json!({ "variable": "x" }), t, e).unwrap();
        assert_eq!(out.len(), 2);
    }

    /// Path a – b – c – d (given in mixed order and with a duplicate), x = 1, 2, 3, 4.
    fn path() -> (RecordBatch, RecordBatch) {
        let t = TableBuilder::new()
            .str("unit_id", &["d", "b", "a", "c"])
            .f64("x", vec![4.0, 2.0, 1.0, 3.0])
            .build()
            .unwrap();
        let e = TableBuilder::new()
            .str("from", &["b", "c", "c", "b"])
            .str("to", &["a", "b", "d", "c"])
            .build()
            .unwrap();
        (t, e)
    }

    #[test]
    fn progress_advances_per_permutation_batch() {
        use crate::engine::progress::Event;
        use crate::engine::stage::{Entry, StageEntry};
        // The path in two years: 2 groups × (999 global + 999 local draws) = 3,996, reported
        // after each batch of 100 draws (10 batches per statistic, the last of 99).
        let (t, edges) = path();
        let years = TableBuilder::new()
            .str("unit_id", &["d", "b", "a", "c", "d", "b", "a", "c"])
            .i64("year", vec![2000, 2000, 2000, 2000, 2010, 2010, 2010, 2010])
            .f64(
                "x",
                [table::f64s(&t, "t", "x").unwrap(), vec![1.0, 3.0, 4.0, 2.0]].concat(),
            )
            .build()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let ctx =
            StageContext::new("lisa", std::path::Path::new("."), BTreeMap::new()).with_progress(tx);
        let inputs = Inputs::new([("table".to_owned(), years), ("edges".to_owned(), edges)].into());
        Entry::<Autocorrelation>::new()
            .prepare(serde_json::json!({"variable": "x", "by": "year"}))
            .unwrap()
            .run(&inputs, &ctx)
            .unwrap();
        ctx.end_progress();
        let done: Vec<u64> = rx
            .iter()
            .map(|e| match e {
                Event::StageProgress {
                    done, total, unit, ..
                } => {
                    assert_eq!((total, unit.as_str()), (3996, "permutations"));
                    done
                }
                other => panic!("unexpected event {other:?}"),
            })
            .collect();
        assert_eq!(done.len(), 40, "{done:?}");
        assert_eq!(done[..3], [100, 200, 300]);
        // The first group's global draws end at 999, its local draws at 1,998.
        assert!(done.contains(&999) && done.contains(&1998), "{done:?}");
        assert!(done.windows(2).all(|d| d[0] < d[1]));
        assert_eq!(done.last(), Some(&3996));
    }

    #[test]
    fn path_by_hand_without_groups() {
        // Hand calculation in methods::moran: I = 0.4, E[I] = −1/3, local I = 0.45, 0.15, 0.15, 0.45.
        let (t, e) = path();
        let (out, _) = run(serde_json::json!({ "variable": "x" }), t, e).unwrap();
        let (global, local) = (&out[0].1, &out[1].1);
        assert_eq!(table::column_names(global)[0], "moran_i");
        assert!((f64_col(global, "moran_i")[0].unwrap() - 0.4).abs() < 1e-12);
        assert_eq!(
            table::strings(local, "l", "unit_id").unwrap(),
            ["a", "b", "c", "d"]
        );
        let ii: Vec<f64> = f64_col(local, "ii")
            .into_iter()
            .map(Option::unwrap)
            .collect();
        for (got, want) in ii.iter().zip([0.45, 0.15, 0.15, 0.45]) {
            assert!((got - want).abs() < 1e-12);
        }
        assert_eq!(
            table::strings(local, "l", "quadrant").unwrap(),
            ["LL", "LL", "HH", "HH"]
        );
        // With 4 units a conditional draw can only pick among 3 values: nothing is significant.
        assert_eq!(table::strings(local, "l", "class").unwrap(), ["ns"; 4]);
    }

    #[test]
    fn data_errors_name_the_unit() {
        let (t, _) = path();
        let e = TableBuilder::new()
            .str("from", &["a", "b", "c"])
            .str("to", &["b", "c", "zz"])
            .build()
            .unwrap();
        let err = run(serde_json::json!({ "variable": "x" }), t.clone(), e).unwrap_err();
        assert!(
            err.message
                .contains("`edges` row 3: unit `zz` is not in `table`"),
            "{}",
            err.message
        );

        let e = TableBuilder::new()
            .str("from", &["a", "b"])
            .str("to", &["b", "c"])
            .build()
            .unwrap();
        let err = run(serde_json::json!({ "variable": "x" }), t.clone(), e).unwrap_err();
        assert!(
            err.message.contains("no neighbour in `edges`: d"),
            "{}",
            err.message
        );

        let e = TableBuilder::new()
            .str("from", &["a", "b", "c", "c"])
            .str("to", &["b", "c", "d", "c"])
            .build()
            .unwrap();
        let err = run(serde_json::json!({ "variable": "x" }), t, e).unwrap_err();
        assert!(
            err.message
                .contains("unit `c` is listed as its own neighbour"),
            "{}",
            err.message
        );
    }

    #[test]
    fn constant_variable_gives_nulls_and_a_warning() {
        let (_, e) = path();
        let t = TableBuilder::new()
            .str("unit_id", &["a", "b", "c", "d"])
            .f64("x", vec![2.0; 4])
            .build()
            .unwrap();
        let (out, warnings) = run(serde_json::json!({ "variable": "x" }), t, e).unwrap();
        assert_eq!(warnings.len(), 1);
        assert_eq!(f64_col(&out[0].1, "moran_i"), [None]);
        assert_eq!(table::strings(&out[1].1, "l", "class").unwrap(), ["ns"; 4]);
    }

    #[test]
    fn rejects_zero_permutations() {
        let (t, e) = path();
        let err = run(
            serde_json::json!({ "variable": "x", "permutations": 0 }),
            t,
            e,
        )
        .unwrap_err();
        assert!(err.message.contains("permutations"));
    }
}
