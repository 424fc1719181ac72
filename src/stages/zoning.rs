//! Stage kind `zoning`: a carbon-compensation zone for every unit from a rule table on index
//! columns (a built-in scheme or the study's own rules), optionally one zone per cluster.

use std::collections::BTreeMap;

use arrow_array::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::engine::stage::{
    Inputs, OutputDecl, Outputs, ParamDoc, Port, Stage, StageContext, StageError,
};
use crate::methods::cluster_naming::name_clusters;
use crate::methods::zoning::{Matching, RuleError, RuleSet, majority, parse_condition};
use crate::table::schema::TableSchema;
use crate::stages::shared::units::sorted_unique_ids;
use crate::table::select_year;
use crate::table::{f64s, has_column, i64s, ids, take_rows};

/// Columns summed per zone in the `summary` output when the table has them.
const SUMMED: [&str; 3] = ["ce_t_c", "cs_t_c", "nce_t_c"];

pub struct Zoning;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// Five types, first match wins (sink functional, low-carbon maintenance, intensity
    /// control, economic development, high-carbon optimization).
    FiveType,
    /// The four ECC/ESC quadrants.
    Quadrant,
    /// Payment / balanced / receiving on `value_column` with a balance band.
    ThreeZone,
    /// The study's own `rules`.
    Custom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchMode {
    First,
    Unique,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterRule {
    /// The zone covering most of the cluster's area (or most units without `area_column`).
    Majority,
    /// The zone of the cluster's mean values.
    Profile,
}

/// One condition, or several on the same column (a range).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Conditions {
    One(String),
    Several(Vec<String>),
}

/// `{ zone: name, when: { column: ">= 1", ... } }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub zone: String,
    #[serde(default)]
    pub when: BTreeMap<String, Conditions>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// A built-in scheme; `custom` (implied when `rules` is given) uses `rules`.
    #[serde(default)]
    pub scheme: Option<Scheme>,
    /// Custom rules, checked in order.
    #[serde(default)]
    pub rules: Option<Vec<RuleSpec>>,
    /// `first` (the first matching rule wins) or `unique` (overlapping rules are an error).
    #[serde(default, rename = "match")]
    pub matching: Option<MatchMode>,
    /// The zone of units that no rule matches (otherwise gaps are an error).
    #[serde(default)]
    pub default: Option<String>,
    /// The column of the `three_zone` scheme.
    #[serde(default = "default_value_column")]
    pub value_column: String,
    /// The balance band of the `three_zone` scheme: |value| ≤ band is balanced.
    #[serde(default)]
    pub band: f64,
    /// With clusters: `profile` (default: the zone of the cluster's mean values, as the
    /// domain method names clusters by their centroid) or `majority`.
    #[serde(default = "default_cluster_rule")]
    pub cluster_rule: ClusterRule,
    /// With `profile`: one zone per cluster, ties (two cluster means in one zone) going to the
    /// more distinct cluster by the largest |z| (see [`crate::methods::cluster_naming`]).
    #[serde(default)]
    pub distinct_zones: bool,
    /// An area column: weights the majority and is summed in `summary`.
    #[serde(default)]
    pub area_column: Option<String>,
    /// The year to use when the table has several.
    #[serde(default)]
    pub year: Option<i64>,
    /// The id column of `table`.
    #[serde(default = "default_id_column")]
    pub id_column: String,
}

fn default_value_column() -> String {
    "nce_t_c".to_owned()
}
fn default_cluster_rule() -> ClusterRule {
    ClusterRule::Profile
}
fn default_id_column() -> String {
    "unit_id".to_owned()
}

/// The rule set the parameters describe, checked.
fn rule_set(params: &Params) -> Result<RuleSet, StageError> {
    let scheme = params.scheme.unwrap_or(if params.rules.is_some() {
        Scheme::Custom
    } else {
        Scheme::FiveType
    });
    let mut rs = match (scheme, &params.rules) {
        (Scheme::Custom, Some(rules)) => {
            let mut rows = Vec::with_capacity(rules.len());
            for (i, r) in rules.iter().enumerate() {
                let mut conds = Vec::new();
                for (column, c) in &r.when {
                    let texts = match c {
                        Conditions::One(t) => vec![t.clone()],
                        Conditions::Several(ts) => ts.clone(),
                    };
                    for t in texts {
                        let (op, value) = parse_condition(&t).map_err(|e| {
                            StageError::data(format!("rule {} (`{}`), column `{column}`: {e}", i + 1, r.zone))
                                .with_hint("conditions look like `esc: \">= 1\"` or, for a range, `esc: [\">= 0.5\", \"< 1\"]`")
                        })?;
                        conds.push((column.clone(), op, value));
                    }
                }
                rows.push((r.zone.clone(), conds));
            }
            RuleSet::new(rows, Matching::First, None)
        }
        (Scheme::Custom, None) => {
            return Err(StageError::data("`scheme: custom` needs `rules`")
                .with_hint("add `rules: [{ zone: name, when: { esc: \">= 1\" } }, ...]`, or use scheme five_type, quadrant or three_zone"));
        }
        (_, Some(_)) => {
            return Err(
                StageError::data("`rules` is given together with a built-in `scheme`")
                    .with_hint("drop `scheme:` (or write `scheme: custom`) to use your rules"),
            );
        }
        (Scheme::FiveType, None) => RuleSet::five_type("nce_t_c"),
        (Scheme::Quadrant, None) => RuleSet::quadrant(),
        (Scheme::ThreeZone, None) => RuleSet::three_zone(&params.value_column, params.band),
    };
    if let Some(m) = params.matching {
        rs.matching = match m {
            MatchMode::First => Matching::First,
            MatchMode::Unique => Matching::Unique,
        };
    }
    rs.default.clone_from(&params.default);
    rs.check().map_err(|e| {
        let hint = match &e {
            RuleError::RulesOverlap { .. } => {
                "make the conditions disjoint, or use `match: first` so the earlier rule wins"
            }
            RuleError::RulesNotExhaustive { .. } => {
                "add a rule for those values, or a `default:` zone"
            }
            RuleError::RuleUnreachable { .. } => {
                "reorder the rules (specific before general) or fix the conditions"
            }
            RuleError::RulesEmpty => "add at least one rule",
            RuleError::RulesTooLarge { .. } => "use fewer distinct thresholds",
        };
        StageError::data(format!("zoning rules: {e}")).with_hint(hint)
    })?;
    Ok(rs)
}

impl Stage for Zoning {
    const KIND: &'static str = "zoning";
    const VERSION: u32 = 2;
    const DOC: &'static str = "Assigns each unit a carbon-compensation zone from a rule table on index columns. Built-in \
        schemes: `five_type` (default, first match wins: carbon_sink_functional ESC ≥ 1 and NCE ≤ 0; \
        low_carbon_maintenance ESC ≥ 1 and ECC ≥ 1; carbon_intensity_control ESC ≥ 1 and ECC < 1; economic_development \
        ESC < 1 and ECC ≥ 1; high_carbon_optimization ESC < 1 and ECC < 1), `quadrant` (ECC/ESC), `three_zone` \
        (payment > band ≥ balanced ≥ −band > receiving on `value_column`), or custom `rules`. The table is checked at \
        plan time: gaps (without `default`), overlaps under `match: unique` and rules that can never apply are errors \
        naming the rules and an example point. With `clusters` wired every unit takes its cluster's zone: the zone of \
        the cluster's mean values (`cluster_rule: profile`, the default) or the area-weighted majority of its units' \
        zones (`majority`). With `distinct_zones: true` every cluster gets a zone of its own, ties going to the \
        cluster whose mean has the largest |z|.";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "scheme",
            ty: "five_type | quadrant | three_zone | custom",
            default: "five_type (custom when rules are given)",
            doc: "the rule table",
        },
        ParamDoc {
            name: "rules",
            ty: "list of {zone, when: {column: condition | [conditions]}}",
            default: "",
            doc: "custom rules, e.g. { zone: sink, when: { esc: \">= 1\", nce_t_c: \"<= 0\" } }",
        },
        ParamDoc {
            name: "match",
            ty: "first | unique",
            default: "first for five_type and custom rules, unique for quadrant and three_zone",
            doc: "first: the first matching rule wins; unique: overlapping rules are an error",
        },
        ParamDoc {
            name: "default",
            ty: "string",
            default: "",
            doc: "zone of units no rule matches, or with a missing value; without it those are errors",
        },
        ParamDoc {
            name: "value_column",
            ty: "string",
            default: "",
            doc: "the column of three_zone",
        },
        ParamDoc {
            name: "band",
            ty: "number",
            default: "",
            doc: "three_zone balance band: |value| ≤ band is balanced",
        },
        ParamDoc {
            name: "cluster_rule",
            ty: "profile | majority",
            default: "",
            doc: "with clusters: the zone of the cluster's mean values (profile), or the area-weighted majority of unit zones",
        },
        ParamDoc {
            name: "distinct_zones",
            ty: "bool",
            default: "",
            doc: "with cluster_rule profile: one zone per cluster; when two cluster means fall in one zone, the cluster with the largest |z| keeps it and the other takes the free zone its mean misses by the least z-distance",
        },
        ParamDoc {
            name: "area_column",
            ty: "string",
            default: "",
            doc: "unit area: weights the majority and is summed per zone",
        },
        ParamDoc {
            name: "year",
            ty: "integer",
            default: "",
            doc: "the year to select when `table` has several",
        },
        ParamDoc {
            name: "id_column",
            ty: "string",
            default: "",
            doc: "the unit id column of `table`",
        },
    ];
    type Params = Params;

    #[cfg(test)]
    fn declaration_examples() -> Vec<crate::engine::stage::Example> {
        use crate::engine::stage::Example;
        use crate::stages::testing::study;
        use serde_json::json;
        vec![Example::new(json!({"default": "other"}), vec![("table", study::indices().1)])]
    }

    fn ports(params: &Params) -> Vec<Port> {
        let mut columns = vec![params.id_column.clone()];
        if let Ok(rs) = rule_set(params) {
            columns.extend(rs.columns);
        }
        columns.extend(params.area_column.iter().cloned());
        vec![
            Port::required(
                "table",
                "one row per unit (or per unit × year, with `year:`) with the rule columns",
            )
            .with_columns(columns),
            Port::optional(
                "clusters",
                "cluster labels (`unit_id`, `cluster`), e.g. a `cluster` stage's `labels`",
            )
            .with_columns(["unit_id", "cluster"]),
        ]
    }

    fn outputs(params: &Params) -> Vec<OutputDecl> {
        let columns = rule_set(params).map(|rs| rs.columns).unwrap_or_default();
        let without_clusters = Wiring {
            clusters: false,
            profile: false,
        };
        vec![
            // With `clusters` wired (which the parameters cannot tell) it has more columns.
            zones_table(&columns, without_clusters).partial().decl(),
            // The sums of `SUMMED` follow only for the columns the input has.
            summary_table(params.area_column.as_deref(), &[])
                .partial()
                .decl(),
        ]
    }

    fn validate(params: &Params) -> Result<(), StageError> {
        if !params.band.is_finite() || params.band < 0.0 {
            return Err(StageError::data(format!("`band` is {}", params.band))
                .with_hint("give a band ≥ 0 in the value column's unit"));
        }
        if params.distinct_zones && params.cluster_rule != ClusterRule::Profile {
            return Err(StageError::data(
                "`distinct_zones` names clusters by their mean profile, not by majority",
            )
            .with_hint("use `cluster_rule: profile`, or drop `distinct_zones`"));
        }
        rule_set(params).map(|_| ())
    }

    fn run(params: &Params, inputs: &Inputs, ctx: &StageContext) -> Result<Outputs, StageError> {
        let rs = rule_set(params)?;
        let units = Units::read(params, &rs, inputs.table("table")?, ctx)?;
        let zones = rs.zones();
        let by_cluster = match inputs.optional("clusters") {
            Some(labels) => Some(ClusterZones::new(params, &rs, &units, labels, ctx)?),
            None => None,
        };
        let final_zone: Vec<usize> = match &by_cluster {
            Some(c) => c.cluster.iter().map(|k| c.zone[k]).collect(),
            None => units
                .own_zone
                .iter()
                .map(|z| {
                    z.or_else(|| rs.default.as_deref().map(|d| zone_index(&zones, d)))
                        .expect("classify errs when neither a rule nor a default applies")
                })
                .collect(),
        };
        let rows = zone_rows(&units, &zones, &final_zone, by_cluster.as_ref());
        let wiring = Wiring {
            clusters: by_cluster.is_some(),
            profile: params.cluster_rule == ClusterRule::Profile,
        };
        let present: Vec<&str> = SUMMED
            .into_iter()
            .filter(|c| has_column(&units.table, c))
            .collect();
        let summary = summary_rows(&units, &zones, &final_zone, &present)?;
        Ok(vec![
            zones_table(&rs.columns, wiring).build(&rows)?,
            summary_table(params.area_column.as_deref(), &present).build(&summary)?,
        ])
    }
}

/// The units of `table` (in id order, of the chosen year), with the rule columns and each
/// unit's own zone.
struct Units {
    /// The sorted unit ids, and the input row of each.
    ids: std::sync::Arc<(Vec<String>, Vec<usize>)>,
    table: RecordBatch,
    /// The rule columns' values, per column.
    columns: Vec<Vec<f64>>,
    /// Each unit's zone by the rules (an index into the zones), `None` for the default.
    own_zone: Vec<Option<usize>>,
    /// Each unit's area, with `area_column`.
    area: Option<Vec<f64>>,
}

impl Units {
    fn read(
        params: &Params,
        rs: &RuleSet,
        input: &RecordBatch,
        ctx: &StageContext,
    ) -> Result<Self, StageError> {
        let table = select_year(input, "table", params.year)?;
        // The id order depends on the id column alone: runs whose ids do not change (a
        // sweep's draws) sort them once.
        let id_column = crate::table::column(&table, "table", &params.id_column)?.clone();
        let ids = ctx.reuse_over("unit_order", &[id_column], &params.id_column, || {
            sorted_unique_ids(&table, "table", &params.id_column)
        })?;
        let (names, order) = (&ids.0, &ids.1);
        let table = if order.iter().enumerate().all(|(k, &i)| k == i) {
            table
        } else {
            take_rows(&table, order)?
        };
        let columns: Vec<Vec<f64>> = rs
            .columns
            .iter()
            .map(|c| f64s(&table, "table", c))
            .collect::<Result<_, _>>()?;
        let zones = rs.zones();
        let mut own_zone = Vec::with_capacity(names.len());
        let mut values = vec![0.0; rs.columns.len()];
        for (i, name) in names.iter().enumerate() {
            for (v, col) in values.iter_mut().zip(&columns) {
                *v = col[i];
            }
            own_zone.push(
                classify(rs, &values, name, params.year)?
                    .map(|r| zone_index(&zones, &rs.rules[r].zone)),
            );
        }
        let area = match &params.area_column {
            Some(c) => Some(areas(&table, c, names)?),
            None => None,
        };
        Ok(Self {
            ids,
            table,
            columns,
            own_zone,
            area,
        })
    }
}

impl Units {
    /// The unit ids, sorted.
    fn names(&self) -> &[String] {
        &self.ids.0
    }
}

/// The area column, checked: every unit has an area ≥ 0.
fn areas(table: &RecordBatch, column: &str, names: &[String]) -> Result<Vec<f64>, StageError> {
    let a = f64s(table, "table", column)?;
    if let Some(i) = a.iter().position(|x| !x.is_finite() || *x < 0.0) {
        return Err(StageError::data(format!(
            "`table`: unit `{}` has `{column}` = {}, not an area ≥ 0",
            names[i], a[i]
        ))
        .with_hint("fill the area of every unit"));
    }
    Ok(a)
}

/// The index of zone `name` among the rule set's zones.
fn zone_index(zones: &[String], name: &str) -> usize {
    zones
        .iter()
        .position(|z| z == name)
        .expect("every rule's zone is listed")
}

/// The zones by cluster: each unit's cluster, each cluster's zone and, under `profile`, its
/// mean values.
struct ClusterZones {
    cluster: Vec<i64>,
    zone: BTreeMap<i64, usize>,
    means: BTreeMap<i64, Vec<f64>>,
}

impl ClusterZones {
    fn new(
        params: &Params,
        rs: &RuleSet,
        units: &Units,
        labels: &RecordBatch,
        ctx: &StageContext,
    ) -> Result<Self, StageError> {
        let cluster = unit_clusters(labels, units.names())?;
        let mut members: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for (i, &c) in cluster.iter().enumerate() {
            members.entry(c).or_default().push(i);
        }
        let zones = rs.zones();
        let mut out = Self {
            cluster,
            zone: BTreeMap::new(),
            means: BTreeMap::new(),
        };
        for (&c, members) in &members {
            let (zone, means) = cluster_zone(params, rs, units, c, members)?;
            let Some(zone) = zone.or_else(|| rs.default.as_deref().map(|d| zone_index(&zones, d)))
            else {
                return Err(StageError::data(format!("cluster {c}: no unit has a zone"))
                    .with_hint("give a `default:` zone"));
            };
            out.zone.insert(c, zone);
            out.means.extend(means.map(|m| (c, m)));
        }
        if params.distinct_zones {
            rename_distinctly(rs, &units.columns, &out.means, &mut out.zone, ctx, |z| {
                zone_index(&zones, z)
            });
        }
        Ok(out)
    }
}

/// The zone of one cluster by `cluster_rule` (`None` when no rule applies) and, for
/// `profile`, the cluster's mean values that decided it.
fn cluster_zone(
    params: &Params,
    rs: &RuleSet,
    units: &Units,
    c: i64,
    members: &[usize],
) -> Result<(Option<usize>, Option<Vec<f64>>), StageError> {
    let zones = rs.zones();
    match params.cluster_rule {
        ClusterRule::Majority => {
            let votes: Vec<(usize, f64)> = members
                .iter()
                .filter_map(|&i| {
                    let weight = units.area.as_ref().map_or(1.0, |a| a[i]);
                    units.own_zone[i].map(|z| (z, weight))
                })
                .collect();
            Ok((majority(&votes, zones.len()), None))
        }
        ClusterRule::Profile => {
            let means: Vec<f64> = units
                .columns
                .iter()
                .map(|col| mean_finite(members.iter().map(|&i| col[i])))
                .collect();
            let name = format!("cluster {c} (mean profile)");
            let zone = classify(rs, &means, &name, params.year)?
                .map(|r| zone_index(&zones, &rs.rules[r].zone));
            Ok((zone, Some(means)))
        }
    }
}

/// Which columns `zones` has beyond the unit's zone and rule values.
#[derive(Clone, Copy)]
struct Wiring {
    /// `clusters` is wired: the cluster, and the unit's own zone.
    clusters: bool,
    /// With clusters, `cluster_rule: profile`: the cluster means.
    profile: bool,
}

/// A row of `zones`: one unit.
struct ZoneRow<'a> {
    unit_id: &'a str,
    unit: usize,
    cluster: i64,
    zone: &'a str,
    /// The zone by the unit's own values; empty for the default.
    unit_zone: &'a str,
    /// The rule columns, per column.
    columns: &'a [Vec<f64>],
    /// The cluster's mean of each rule column (empty without `profile`).
    means: &'a [f64],
}

fn zone_rows<'a>(
    units: &'a Units,
    zones: &'a [String],
    final_zone: &[usize],
    by_cluster: Option<&'a ClusterZones>,
) -> Vec<ZoneRow<'a>> {
    (0..units.names().len())
        .map(|i| {
            let cluster = by_cluster.map_or(0, |c| c.cluster[i]);
            ZoneRow {
                unit_id: &units.names()[i],
                unit: i,
                cluster,
                zone: &zones[final_zone[i]],
                unit_zone: units.own_zone[i].map_or("", |z| &zones[z]),
                columns: &units.columns,
                means: by_cluster
                    .and_then(|c| c.means.get(&cluster))
                    .map_or(&[], Vec::as_slice),
            }
        })
        .collect()
}

/// Null where a value is missing (NaN), as the input had it.
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

fn zones_table<'a>(rule_columns: &[String], wiring: Wiring) -> TableSchema<ZoneRow<'a>> {
    let table = TableSchema::<ZoneRow<'_>>::new(
        "zones",
        "per unit: its zone and the values that decided it (with clusters: cluster, unit_zone and, for profile, the cluster means)",
    )
    .text("unit_id", |r| r.unit_id)
    .when(wiring.clusters, |t| t.int("cluster", |r| r.cluster))
    .text("zone", |r| r.zone)
    .when(wiring.clusters, |t| t.text("unit_zone", |r| r.unit_zone));
    rule_columns.iter().enumerate().fold(table, |t, (j, name)| {
        t.float_or_null_at(name.clone(), j, |r, j| finite(r.columns[j][r.unit]))
            // A cluster whose units all lack the value has no mean: null, not NaN.
            .when(wiring.clusters && wiring.profile, |t| {
                t.float_or_null_at(format!("{name}_cluster_mean"), j, |r, j| finite(r.means[j]))
            })
    })
}

/// A row of `summary`: one zone, its units and its sums.
struct SummaryRow<'a> {
    zone: &'a str,
    units: i64,
    area: f64,
    /// The sums of the `SUMMED` columns the table has, in that order.
    sums: Vec<f64>,
}

/// Per zone in rule order: units, area and the sums of the `present` carbon columns.
fn summary_rows<'a>(
    units: &Units,
    zones: &'a [String],
    final_zone: &[usize],
    present: &[&str],
) -> Result<Vec<SummaryRow<'a>>, StageError> {
    let sum_by_zone = |values: &[f64]| {
        let mut s = vec![0.0; zones.len()];
        for (i, &z) in final_zone.iter().enumerate() {
            s[z] += values[i];
        }
        s
    };
    let mut count = vec![0i64; zones.len()];
    for &z in final_zone {
        count[z] += 1;
    }
    let area = units.area.as_deref().map(sum_by_zone);
    let sums: Vec<Vec<f64>> = present
        .iter()
        .map(|c| Ok(sum_by_zone(&f64s(&units.table, "table", c)?)))
        .collect::<Result<_, StageError>>()?;
    Ok(zones
        .iter()
        .enumerate()
        .map(|(z, zone)| SummaryRow {
            zone,
            units: count[z],
            area: area.as_ref().map_or(0.0, |a| a[z]),
            sums: sums.iter().map(|s| s[z]).collect(),
        })
        .collect())
}

fn summary_table<'a>(area_column: Option<&str>, summed: &[&str]) -> TableSchema<SummaryRow<'a>> {
    let table = TableSchema::<SummaryRow<'_>>::new(
        "summary",
        "per zone, in rule order: units, and sums of area and of ce_t_c, cs_t_c, nce_t_c when present",
    )
    .text("zone", |r| r.zone)
    .int("units", |r| r.units)
    .when_some(area_column, |t, name| t.float(name, |r| r.area));
    summed.iter().enumerate().fold(table, |t, (j, name)| {
        t.float_or_null_at(*name, j, |r, j| finite(r.sums[j]))
    })
}

/// The rule index for one unit's values, `None` for the default zone. A missing value takes
/// the default zone, or is an error naming the unit and column.
fn classify(
    rs: &RuleSet,
    values: &[f64],
    unit: &str,
    year: Option<i64>,
) -> Result<Option<usize>, StageError> {
    if let Some(j) = values.iter().position(|v| !v.is_finite()) {
        if rs.default.is_some() {
            return Ok(None);
        }
        let when = year.map_or_else(String::new, |y| format!(" in year {y}"));
        return Err(StageError::data(format!(
            "`table`: unit `{unit}` has no value for `{}`{when}, so no zone rule can be applied",
            rs.columns[j]
        ))
        .with_hint("fill the value, or give a `default:` zone for such units"));
    }
    match rs.classify(values) {
        Some(r) => Ok(Some(r)),
        None if rs.default.is_some() => Ok(None),
        None => Err(StageError::internal(format!(
            "unit `{unit}` matches no zone rule although the rules were checked as exhaustive"
        ))),
    }
}

/// Gives each cluster a zone of its own, the most distinct cluster first (ties by the largest
/// |z|); clusters left without a free zone keep their profile's zone, with a warning.
fn rename_distinctly(
    rs: &RuleSet,
    columns: &[Vec<f64>],
    means: &BTreeMap<i64, Vec<f64>>,
    cluster_zone: &mut BTreeMap<i64, usize>,
    ctx: &StageContext,
    zone_index: impl Fn(&str) -> usize,
) {
    let centroids: Vec<Vec<f64>> = means.values().cloned().collect();
    let naming = name_clusters(rs, &centroids, columns);
    for (&c, rule) in means.keys().zip(&naming.rules) {
        if let Some(zone) = rs.zone_of(*rule) {
            cluster_zone.insert(c, zone_index(zone));
        }
    }
    if naming.shared > 0 {
        ctx.warn(format!(
            "{} of {} clusters share a zone: there are more clusters than zones",
            naming.shared,
            means.len()
        ));
    }
}

fn mean_finite(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut count) = (0.0, 0u32);
    for v in values.filter(|v| v.is_finite()) {
        sum += v;
        count += 1;
    }
    if count == 0 {
        f64::NAN
    } else {
        sum / f64::from(count)
    }
}

/// The cluster of each unit (in `names` order) from a labels table.
fn unit_clusters(labels: &RecordBatch, names: &[String]) -> Result<Vec<i64>, StageError> {
    let ids = ids(labels, "clusters", "unit_id")?;
    let clusters = i64s(labels, "clusters", "cluster")?;
    let map: BTreeMap<&str, i64> = ids
        .iter()
        .map(String::as_str)
        .zip(clusters.iter().copied())
        .collect();
    names
        .iter()
        .map(|n| {
            map.get(n.as_str()).copied().ok_or_else(|| {
                StageError::data(format!("`clusters` has no cluster for unit `{n}`"))
                    .with_hint("cluster the same units (and year) as the zoning table")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::testing;
    use crate::table::TableBuilder;

    use crate::engine::stage::{Entry, StageEntry};
    use crate::table::strings;

    fn prepare(
        params: serde_json::Value,
    ) -> Result<Box<dyn crate::engine::stage::PreparedStage>, StageError> {
        Entry::<Zoning>::new().prepare(params)
    }

    fn run(
        params: serde_json::Value,
        table: RecordBatch,
        clusters: Option<RecordBatch>,
    ) -> Result<Outputs, StageError> {
        let mut tables = vec![("table", table)];
        if let Some(c) = clusters {
            tables.push(("clusters", c));
        }
        testing::run::<Zoning>(params, tables).map(|(out, _)| out)
    }

    /// Five units, one per five-type zone (worked through the rules in order):
    /// a: ESC 1.2, NCE −3 → sink functional (rule 1, even though ECC 1.5 ≥ 1);
    /// b: ESC 1.1, NCE 2, ECC 1.3 → low-carbon maintenance; c: ESC 1.0, NCE 5, ECC 0.8 →
    /// intensity control; d: ESC 0.5, ECC 2.0 → economic development; e: ESC 0.3, ECC 0.4 →
    /// high-carbon optimization.
    fn indices() -> RecordBatch {
        TableBuilder::new()
            .str("unit_id", &["e", "d", "c", "b", "a"])
            .f64("ecc", vec![0.4, 2.0, 0.8, 1.3, 1.5])
            .f64("esc", vec![0.3, 0.5, 1.0, 1.1, 1.2])
            .f64("ce_t_c", vec![10.0, 20.0, 30.0, 40.0, 50.0])
            .f64("cs_t_c", vec![1.0, 2.0, 25.0, 38.0, 53.0])
            .f64("nce_t_c", vec![9.0, 18.0, 5.0, 2.0, -3.0])
            .f64("area_km2", vec![100.0, 200.0, 300.0, 400.0, 500.0])
            .build()
            .unwrap()
    }

    #[test]
    fn runs_sharing_the_unit_order_give_what_separate_runs_give() {
        // As a sweep's draws: NCE changes and the ids stay, then the ids change too.
        let store = std::sync::Arc::new(crate::engine::reuse::ReuseStore::default());
        let base = indices();
        let with = |at: usize, column: arrow_array::ArrayRef| {
            let mut columns = base.columns().to_vec();
            columns[at] = column;
            RecordBatch::try_new(base.schema(), columns).unwrap()
        };
        let nce = |v: Vec<f64>| std::sync::Arc::new(arrow_array::Float64Array::from(v)) as _;
        let ids = std::sync::Arc::new(arrow_array::StringArray::from(vec!["a", "b", "c", "d", "e"]));
        let cases = [
            base.clone(),
            with(5, nce(vec![-9.0, 18.0, 5.0, 2.0, -3.0])),
            with(0, ids),
        ];
        for (n, t) in cases.into_iter().enumerate() {
            let tables = vec![("table", t)];
            let shared =
                testing::run_sharing::<Zoning>(&store, serde_json::json!({}), tables.clone())
                    .unwrap();
            let alone = testing::run::<Zoning>(serde_json::json!({}), tables).unwrap();
            assert_eq!(shared, alone, "case {n}");
        }
    }

    /// `scheme` and `match` default to `null`, whose meaning the written text gives: it must
    /// say what `rule_set` does.
    #[test]
    fn documented_scheme_and_match_defaults_are_the_codes() {
        let written = |name: &str| {
            Zoning::PARAMS
                .iter()
                .find(|p| p.name == name)
                .unwrap()
                .default
        };
        let rules = |params: serde_json::Value| {
            rule_set(&serde_json::from_value::<Params>(params).unwrap()).unwrap()
        };
        assert_eq!(written("scheme"), "five_type (custom when rules are given)");
        let mut five_type = RuleSet::five_type("nce_t_c");
        five_type.matching = Matching::First;
        assert_eq!(rules(serde_json::json!({})), five_type);
        let custom = serde_json::json!({"rules": [{"zone": "all"}]});
        assert_eq!(rules(custom.clone()).zones(), ["all"]);

        let (first, unique) = written("match").split_once(", unique for ").unwrap();
        for (params, scheme) in [
            (serde_json::json!({}), "five_type"),
            (serde_json::json!({"scheme": "quadrant"}), "quadrant"),
            (serde_json::json!({"scheme": "three_zone"}), "three_zone"),
            (custom, "custom"),
        ] {
            let matching = rules(params).matching;
            assert_eq!(
                (first.contains(scheme), unique.contains(scheme)),
                (matching == Matching::First, matching == Matching::Unique),
                "`match` of scheme {scheme}"
            );
        }
    }

    #[test]
    fn five_type_assigns_every_zone() {
        let out = run(serde_json::json!({}), indices(), None).unwrap();
        let zones = &out[0].1;
        assert_eq!(
            strings(zones, "zones", "unit_id").unwrap(),
            vec!["a", "b", "c", "d", "e"]
        );
        assert_eq!(
            strings(zones, "zones", "zone").unwrap(),
            vec![
                "carbon_sink_functional",
                "low_carbon_maintenance",
                "carbon_intensity_control",
                "economic_development",
                "high_carbon_optimization"
            ]
        );
        // The deciding values come along.
        assert_eq!(
            f64s(zones, "zones", "esc").unwrap(),
            vec![1.2, 1.1, 1.0, 0.5, 0.3]
        );
        let summary = &out[1].1;
        assert_eq!(
            i64s(summary, "summary", "units").unwrap(),
            vec![1, 1, 1, 1, 1]
        );
        assert_eq!(
            f64s(summary, "summary", "nce_t_c").unwrap(),
            vec![-3.0, 2.0, 5.0, 18.0, 9.0]
        );
    }

    #[test]
    fn quadrant_and_three_zone_presets() {
        let out = run(serde_json::json!({ "scheme": "quadrant" }), indices(), None).unwrap();
        // a: ECC 1.5, ESC 1.2 → maintenance; c: ECC 0.8, ESC 1.0 → sink functional.
        assert_eq!(
            strings(&out[0].1, "zones", "zone").unwrap(),
            vec![
                "low_carbon_maintenance",
                "low_carbon_maintenance",
                "carbon_sink_functional",
                "economic_development",
                "high_carbon_optimization"
            ]
        );
        let out = run(
            serde_json::json!({ "scheme": "three_zone", "band": 4 }),
            indices(),
            None,
        )
        .unwrap();
        // NCE −3, 2 → balanced (|x| ≤ 4); 5, 18, 9 → payment.
        assert_eq!(
            strings(&out[0].1, "zones", "zone").unwrap(),
            vec!["balanced", "balanced", "payment", "payment", "payment"]
        );
        assert_eq!(
            strings(&out[1].1, "summary", "zone").unwrap(),
            vec!["payment", "balanced", "receiving"]
        );
        assert_eq!(i64s(&out[1].1, "summary", "units").unwrap(), vec![3, 2, 0]);
    }

    #[test]
    fn clusters_by_majority_and_by_profile() {
        // Clusters {a, b, c} and {d, e}.
        let labels = TableBuilder::new()
            .str("unit_id", &["a", "b", "c", "d", "e"])
            .i64("cluster", vec![1, 1, 1, 2, 2])
            .build()
            .unwrap();
        // Majority by area: a 500 (sink), b 400 (maintenance), c 300 (control) → sink;
        // d 200 (economic) vs e 100 (high-carbon) → economic development.
        let out = run(
            serde_json::json!({ "area_column": "area_km2", "cluster_rule": "majority" }),
            indices(),
            Some(labels.clone()),
        )
        .unwrap();
        assert_eq!(
            strings(&out[0].1, "zones", "zone").unwrap(),
            vec![
                "carbon_sink_functional",
                "carbon_sink_functional",
                "carbon_sink_functional",
                "economic_development",
                "economic_development"
            ]
        );
        assert_eq!(
            strings(&out[0].1, "zones", "unit_zone").unwrap()[1],
            "low_carbon_maintenance"
        );
        assert_eq!(
            f64s(&out[1].1, "summary", "area_km2").unwrap(),
            vec![1200.0, 0.0, 0.0, 300.0, 0.0]
        );
        // Profile: cluster 1 means ESC 1.1, NCE 4/3, ECC 3.6/3 = 1.2 → maintenance;
        // cluster 2 means ESC 0.4, ECC 1.2 → economic development. Profile is the default.
        let out = run(serde_json::json!({}), indices(), Some(labels)).unwrap();
        assert_eq!(
            strings(&out[0].1, "zones", "zone").unwrap()[0],
            "low_carbon_maintenance"
        );
        assert_eq!(
            strings(&out[0].1, "zones", "zone").unwrap()[4],
            "economic_development"
        );
        assert!((f64s(&out[0].1, "zones", "ecc_cluster_mean").unwrap()[0] - 1.2).abs() < 1e-12);
    }

    #[test]
    fn custom_rules_and_their_errors() {
        let rules = serde_json::json!([
            { "zone": "sink", "when": { "esc": ">= 1", "nce_t_c": "<= 0" } },
            { "zone": "mid", "when": { "esc": [">= 0.5", "< 1"] } },
        ]);
        // Not exhaustive: esc < 0.5 (and esc ≥ 1 with nce > 0) is uncovered.
        let err = prepare(serde_json::json!({ "rules": rules }))
            .err()
            .unwrap();
        assert!(err.message.contains("no rule matches"), "{}", err.message);
        assert!(err.hint.unwrap().contains("default"));
        // With a default zone it is accepted, and applied.
        let out = run(
            serde_json::json!({ "rules": rules, "default": "other" }),
            indices(),
            None,
        )
        .unwrap();
        assert_eq!(
            strings(&out[0].1, "zones", "zone").unwrap(),
            vec!["sink", "other", "other", "mid", "other"]
        );
        // Overlap under `match: unique` names both rules and a point.
        let overlapping = serde_json::json!([{ "zone": "hi", "when": { "esc": ">= 1" } }, { "zone": "lo", "when": { "esc": "<= 1" } }]);
        let err = prepare(serde_json::json!({ "rules": overlapping, "match": "unique" }))
            .err()
            .unwrap();
        assert!(
            err.message.contains("rules 1 (`hi`) and 2 (`lo`) overlap")
                && err.message.contains("esc = 1"),
            "{}",
            err.message
        );
        // A bad condition names the rule and column.
        let bad = serde_json::json!([{ "zone": "x", "when": { "esc": "big" } }]);
        let err = prepare(serde_json::json!({ "rules": bad })).err().unwrap();
        assert!(
            err.message.contains("rule 1 (`x`), column `esc`"),
            "{}",
            err.message
        );
        // Rules with a built-in scheme are refused.
        assert!(
            prepare(serde_json::json!({ "scheme": "quadrant", "rules": overlapping })).is_err()
        );
        // Shadowed rule.
        let shadowed = serde_json::json!([{ "zone": "all", "when": {} }, { "zone": "never", "when": { "esc": ">= 1" } }]);
        let err = prepare(serde_json::json!({ "rules": shadowed }))
            .err()
            .unwrap();
        assert!(
            err.message.contains("rule 2 (`never`) can never apply"),
            "{}",
            err.message
        );
    }

    #[test]
    fn missing_value_is_an_error_naming_the_unit() {
        let t = TableBuilder::new()
            .str("unit_id", &["a"])
            .f64("ecc", vec![1.0])
            .f64("esc", vec![f64::NAN])
            .f64("nce_t_c", vec![1.0])
            .build()
            .unwrap();
        let err = run(serde_json::json!({}), t, None).unwrap_err();
        assert!(
            err.message.contains("`a`") && err.message.contains("`esc`"),
            "{}",
            err.message
        );
    }

    /// Two clusters whose means both satisfy the sink-functional rule first. Regional means
    /// (esc, nce, ecc) = (1.0667, 2.6667, 1.2667), sample sds (0.5132, 15.535, 0.6807). The
    /// largest |z|: u1 1.126 (ECC), u3 1.116 (NCE), u2 0.783 (ECC). u1 keeps sink functional,
    /// u3 takes economic development, and u2, whose mean also satisfies low-carbon maintenance
    /// (ESC 1.2 ≥ 1, ECC 1.8 ≥ 1), takes that.
    #[test]
    fn distinct_zones_break_ties_by_the_largest_z() {
        let table = TableBuilder::new()
            .str("unit_id", &["u1", "u2", "u3"])
            .f64("esc", vec![1.5, 1.2, 0.5])
            .f64("nce_t_c", vec![-10.0, -2.0, 20.0])
            .f64("ecc", vec![0.5, 1.8, 1.5])
            .build()
            .unwrap();
        let labels = TableBuilder::new()
            .str("unit_id", &["u1", "u2", "u3"])
            .i64("cluster", vec![1, 2, 3])
            .build()
            .unwrap();
        let zones = |params| {
            let out = run(params, table.clone(), Some(labels.clone())).unwrap();
            strings(&out[0].1, "zones", "zone").unwrap()
        };
        let shared = zones(serde_json::json!({}));
        assert_eq!(shared[0], "carbon_sink_functional");
        assert_eq!(shared[1], "carbon_sink_functional");
        assert_eq!(
            zones(serde_json::json!({ "distinct_zones": true })),
            vec![
                "carbon_sink_functional",
                "low_carbon_maintenance",
                "economic_development"
            ]
        );
        let err =
            prepare(serde_json::json!({ "distinct_zones": true, "cluster_rule": "majority" }))
                .err()
                .unwrap();
        assert!(err.message.contains("distinct_zones"), "{}", err.message);
    }
}
