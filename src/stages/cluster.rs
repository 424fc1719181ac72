//! Stage kind `cluster`: spatially constrained multivariate clustering of units (SKATER or
//! REDCAP) on a contiguity graph, with the number of clusters given or chosen by pseudo-F.

use std::collections::{BTreeMap, BTreeSet};

use arrow_array::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::engine::stage::{
    Inputs, OutputDecl, Outputs, ParamDoc, Port, Shard, Stage, StageContext, StageError,
};
use crate::methods::contiguity::components;
use crate::methods::pseudo_f::{pseudo_f, standardize, sums_of_squares};
use crate::methods::redcap::redcap;
use crate::methods::skater::{SizeBound, TreeSplits, skater};
use crate::table::schema::TableSchema;
use crate::stages::shared::units::{preview, sorted_unique_ids};
use crate::table::{TableBuilder, f64s, i64s, ids, select_year, take_rows};

pub struct Cluster;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Skater,
    Redcap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standardize {
    /// z-scores with the sample standard deviation (n − 1), as GeoDa.
    Zscore,
    /// The values as given.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Auto {
    Auto,
}

/// `k: 5` or `k: auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClusterCount {
    Fixed(usize),
    Chosen(Auto),
}

/// A minimum total of a column per cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnTotal {
    pub column: String,
    pub total: f64,
}

/// `min_size: 3` (units) or `min_size: { column: area_km2, total: 5000 }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MinSize {
    Units(usize),
    Total(ColumnTotal),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// `skater` or `redcap`.
    #[serde(default = "default_method")]
    pub method: Method,
    /// The clustering variables (numeric columns of `table`).
    pub variables: Vec<String>,
    /// `zscore` or `none`.
    #[serde(default = "default_standardize")]
    pub standardize: Standardize,
    /// A number of clusters or `auto`.
    #[serde(default = "default_k")]
    pub k: ClusterCount,
    /// The range of k tried by `k: auto`, inclusive.
    #[serde(default = "default_k_range")]
    pub k_range: [usize; 2],
    /// Minimum cluster size.
    #[serde(default = "default_min_size")]
    pub min_size: MinSize,
    /// The year to use when the table has several.
    #[serde(default)]
    pub year: Option<i64>,
    /// The id column of `table`.
    #[serde(default = "default_id_column")]
    pub id_column: String,
}

fn default_method() -> Method {
    Method::Skater
}
fn default_standardize() -> Standardize {
    Standardize::Zscore
}
fn default_k() -> ClusterCount {
    ClusterCount::Chosen(Auto::Auto)
}
fn default_k_range() -> [usize; 2] {
    [2, 30]
}
fn default_min_size() -> MinSize {
    MinSize::Units(1)
}
fn default_id_column() -> String {
    "unit_id".to_owned()
}

impl Stage for Cluster {
    const KIND: &'static str = "cluster";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Spatially constrained multivariate clustering: SKATER (Assunção et al. 2006; minimum \
        spanning tree of the contiguity graph weighted by attribute distance, cut where the within-cluster sum of squared \
        deviations falls most) or REDCAP full-order average linkage (Guo 2008), both as GeoDa defines them. The graph must \
        be connected (see `contiguity` `islands: nearest`). Clusters are numbered 1..k by size, largest first, ties by the \
        smallest unit id. `k: auto` picks the k with the largest pseudo-F in `k_range`, as ArcGIS does.";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "method",
            ty: "skater | redcap",
            default: "",
            doc: "redcap is full-order average linkage",
        },
        ParamDoc {
            name: "variables",
            ty: "list of columns",
            default: "",
            doc: "numeric columns of `table` to cluster on",
        },
        ParamDoc {
            name: "standardize",
            ty: "zscore | none",
            default: "",
            doc: "zscore uses the sample standard deviation (n − 1), as GeoDa",
        },
        ParamDoc {
            name: "k",
            ty: "integer | auto",
            default: "",
            doc: "number of clusters, or auto: the largest pseudo-F in k_range",
        },
        ParamDoc {
            name: "k_range",
            ty: "[min, max]",
            default: "",
            doc: "k tried by k: auto (max capped at n − 1)",
        },
        ParamDoc {
            name: "min_size",
            ty: "integer | {column, total}",
            default: "",
            doc: "minimum units per cluster, or minimum total of a column per cluster",
        },
        ParamDoc {
            name: "year",
            ty: "integer",
            default: "",
            doc: "the year to select when `table` has a `year` column with several years",
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
        vec![Example::new(
            json!({"variables": ["ecc", "esc"], "k": 2, "min_size": 1}),
            vec![("table", study::indices().1), ("edges", study::edges())],
        )]
    }
    fn required_example() -> serde_json::Value {
        serde_json::json!({"variables": ["ecc", "esc"]})
    }

    fn ports(params: &Params) -> Vec<Port> {
        let mut columns = vec![params.id_column.clone()];
        columns.extend(params.variables.iter().cloned());
        if let MinSize::Total(t) = &params.min_size {
            columns.push(t.column.clone());
        }
        vec![
            Port::required(
                "table",
                "one row per unit (or per unit × year, with `year:`)",
            )
            .with_columns(columns),
            Port::required(
                "edges",
                "neighbour pairs (`from`, `to`), e.g. a `contiguity` stage",
            )
            .with_columns(["from", "to"]),
        ]
    }

    fn outputs(params: &Params) -> Vec<OutputDecl> {
        vec![
            labels_table().decl(),
            summary_table().decl(),
            profiles_table(&params.variables).decl(),
        ]
    }

    fn validate(params: &Params) -> Result<(), StageError> {
        if params.variables.is_empty() {
            return Err(StageError::data("`variables` is empty").with_hint(
                "list the columns to cluster on, e.g. `variables: [ecc, esc, nce_t_c]`",
            ));
        }
        let mut seen = BTreeSet::new();
        if let Some(dup) = params.variables.iter().find(|v| !seen.insert(v.as_str())) {
            return Err(
                StageError::data(format!("variable `{dup}` is listed twice"))
                    .with_hint("list each variable once"),
            );
        }
        match params.k {
            ClusterCount::Fixed(0) => {
                return Err(StageError::data("`k` is 0").with_hint("set k ≥ 1, or `k: auto`"));
            }
            ClusterCount::Chosen(_)
                if params.k_range[0] < 2 || params.k_range[0] > params.k_range[1] =>
            {
                return Err(
                    StageError::data(format!("`k_range` is {:?}", params.k_range))
                        .with_hint("write [min, max] with 2 ≤ min ≤ max, e.g. [2, 30]"),
                );
            }
            _ => {}
        }
        if let MinSize::Total(t) = &params.min_size
            && !(t.total.is_finite() && t.total >= 0.0)
        {
            return Err(StageError::data(format!("`min_size.total` is {}", t.total))
                .with_hint("give a total ≥ 0 in the column's unit"));
        }
        Ok(())
    }

    /// With `k: auto`, one shard per chunk of [`K_PER_SHARD`] values of k; the run merges
    /// their scores and picks k as it would alone.
    fn shards(params: &Params) -> Vec<Shard> {
        k_chunks(params)
            .into_iter()
            .map(|chunk| Shard {
                name: chunk_name(chunk),
                depends_on: chunk_depends(),
            })
            .collect()
    }

    fn run_shard(
        params: &Params,
        shard: &str,
        inputs: &Inputs,
        ctx: &StageContext,
    ) -> Result<(), StageError> {
        let chunk = k_chunks(params)
            .into_iter()
            .find(|&c| chunk_name(c) == shard)
            .ok_or_else(|| StageError::internal(format!("`cluster` has no shard `{shard}`")))?;
        let prep = Prepared::new(params, inputs, ctx)?;
        evaluate_chunk(params, &prep, chunk, ctx)
    }

    fn run(params: &Params, inputs: &Inputs, ctx: &StageContext) -> Result<Outputs, StageError> {
        let prep = Prepared::new(params, inputs, ctx)?;
        let n = prep.names.len();
        let (k_lo, k_hi) = k_bounds(params, n)?;
        let scored = match scores_from_shards(params, ctx, n, k_lo, k_hi)? {
            Some(found) => found,
            None => scores_here(params, &prep, k_lo, k_hi),
        };
        if scored.reached < k_hi {
            ctx.warn(format!(
                "only {} clusters could be formed (asked for {k_hi}): no further cut {}",
                scored.reached,
                if prep.bounded {
                    "keeps every cluster at `min_size` and reduces the sum of squares"
                } else {
                    "reduces the sum of squares"
                }
            ));
        }
        let Scored {
            rows,
            chosen_k,
            partitions,
            ..
        } = scored;
        let labels = partitions.labels(chosen_k);
        let Prepared {
            names,
            raw,
            data,
            vars: prep_vars,
            ..
        } = prep;
        let summary: Vec<KRow> = rows
            .into_iter()
            .map(|(k, ss, pseudo_f)| KRow {
                k,
                ss,
                pseudo_f,
                chosen: k == chosen_k,
            })
            .collect();
        let units: Vec<LabelRow<'_>> = names
            .iter()
            .zip(&labels)
            .map(|(unit_id, &cluster)| LabelRow { unit_id, cluster })
            .collect();
        let profiles = profiles(prep_vars, &raw, &data, &labels, chosen_k);
        Ok(vec![
            labels_table().build(&units)?,
            summary_table().build(&summary)?,
            profiles_table(&params.variables).build(&profiles)?,
        ])
    }
}

/// The table, graph and standardised data every `k` is evaluated on: the same in a shard and
/// in the merge, so both evaluate the same partitions.
struct Prepared {
    names: Vec<String>,
    raw: Vec<f64>,
    data: Vec<f64>,
    vars: usize,
    edges: Vec<(usize, usize)>,
    weights: Vec<f64>,
    min_total: f64,
    /// Whether `min_size` bounds the cuts.
    bounded: bool,
}

impl Prepared {
    fn new(params: &Params, inputs: &Inputs, ctx: &StageContext) -> Result<Self, StageError> {
        let table = select_year(inputs.table("table")?, "table", params.year)?;
        let (names, order) = sorted_unique_ids(&table, "table", &params.id_column)?;
        let table = take_rows(&table, &order)?;
        let n = names.len();
        let vars = params.variables.len();
        let mut raw = vec![0.0; n * vars];
        for (j, v) in params.variables.iter().enumerate() {
            let col = f64s(&table, "table", v)?;
            for (i, x) in col.iter().enumerate() {
                if !x.is_finite() {
                    return Err(StageError::data(format!("`table`: unit `{}` has no value for `{v}`{}", names[i], year_note(params.year)))
                        .with_hint("fill the value or drop the unit before clustering; every unit needs every variable"));
                }
                raw[i * vars + j] = *x;
            }
        }
        let edges = unit_edges(inputs.table("edges")?, &names, ctx)?;
        check_connected(n, &edges, &names)?;

        let mut data = raw.clone();
        if params.standardize == Standardize::Zscore {
            for j in standardize(&mut data, vars) {
                ctx.warn_kind(
                    "constant_variable",
                    format!(
                        "variable `{}` is constant; it does not affect the clusters",
                        params.variables[j]
                    ),
                );
            }
        }
        let (weights, min_total) = match &params.min_size {
            MinSize::Units(m) => (vec![1.0; n], usize_f64(*m)),
            MinSize::Total(t) => {
                let w = f64s(&table, "table", &t.column)?;
                if let Some(i) = w.iter().position(|x| !x.is_finite() || *x < 0.0) {
                    return Err(StageError::data(format!(
                        "`table`: unit `{}` has `{}` = {}, not a number ≥ 0",
                        names[i], t.column, w[i]
                    ))
                    .with_hint("the size column must hold non-negative numbers for every unit"));
                }
                (w, t.total)
            }
        };
        let bounded = min_total > 1.0 || matches!(params.min_size, MinSize::Total(_));
        Ok(Self {
            names,
            raw,
            data,
            vars,
            edges,
            weights,
            min_total,
            bounded,
        })
    }

    /// The greedy cuts up to `k` clusters. Each cut depends only on the cuts before it, so the
    /// partitions up to `k` are the same whatever larger `k` is asked for.
    fn splits(&self, method: Method, k: usize) -> TreeSplits {
        let bound = self.bounded.then_some(SizeBound {
            weights: &self.weights,
            min_total: self.min_total,
        });
        match method {
            Method::Skater => skater(&self.data, self.vars, &self.edges, k, bound),
            Method::Redcap => redcap(&self.data, self.vars, &self.edges, k, bound),
        }
    }
}

/// The range of k evaluated: `k` itself, or `k_range` capped at n − 1.
fn k_bounds(params: &Params, n: usize) -> Result<(usize, usize), StageError> {
    match params.k {
        ClusterCount::Fixed(k) if k > n => Err(StageError::data(format!(
            "`k` is {k} but `table` has only {n} units{}",
            year_note(params.year)
        ))
        .with_hint("ask for at most as many clusters as units")),
        ClusterCount::Fixed(k) => Ok((k, k)),
        ClusterCount::Chosen(_) => {
            let hi = params.k_range[1].min(n.saturating_sub(1));
            if hi < params.k_range[0] {
                return Err(StageError::data(format!(
                    "`k: auto` needs at least {} units, `table` has {n}",
                    params.k_range[0] + 1
                ))
                .with_hint("give a fixed `k` or lower `k_range`"));
            }
            Ok((params.k_range[0], hi))
        }
    }
}

/// One evaluated k: its sums of squares and pseudo-F.
type KScore = (usize, crate::methods::pseudo_f::SumsOfSquares, f64);

/// Every k evaluated, the one chosen, and where its partition comes from.
struct Scored {
    rows: Vec<KScore>,
    chosen_k: usize,
    partitions: Partitions,
    /// The most clusters the cuts reached (at most `k_hi`).
    reached: usize,
}

/// The partitions of the evaluated k: the cuts themselves, or the labels the shards stored.
enum Partitions {
    Cuts(TreeSplits),
    Stored(BTreeMap<usize, Vec<usize>>),
}

impl Partitions {
    fn labels(&self, k: usize) -> Vec<usize> {
        match self {
            Partitions::Cuts(splits) => splits.labels(k),
            Partitions::Stored(by_k) => by_k[&k].clone(),
        }
    }
}

/// Evaluates `k_lo..=k_hi` in this process: the stage's whole work.
fn scores_here(params: &Params, prep: &Prepared, k_lo: usize, k_hi: usize) -> Scored {
    let splits = prep.splits(params.method, k_hi);
    let reached = splits.reached();
    let mut rows: Vec<KScore> = (k_lo..=k_hi.min(reached))
        .map(|k| score(prep, &splits.labels(k), k))
        .collect();
    if rows.is_empty() {
        // Fewer clusters reached than the lowest k asked for: report what there is.
        rows.push(score(prep, &splits.labels(reached), reached));
    }
    let chosen_k = choose(params, &rows);
    Scored {
        rows,
        chosen_k,
        partitions: Partitions::Cuts(splits),
        reached,
    }
}

/// The sums of squares and pseudo-F of one partition into `k` clusters.
fn score(prep: &Prepared, labels: &[usize], k: usize) -> KScore {
    let ss = sums_of_squares(&prep.data, prep.vars, labels, k);
    let f = pseudo_f(ss.between, ss.within_total, prep.names.len(), k);
    (k, ss, f)
}

/// The k used: the given one, or the first with the largest finite pseudo-F.
fn choose(params: &Params, rows: &[KScore]) -> usize {
    match params.k {
        ClusterCount::Fixed(_) => rows[rows.len() - 1].0,
        ClusterCount::Chosen(_) => {
            let mut best = rows[0].0;
            let mut best_f = f64::NEG_INFINITY;
            for (k, _, f) in rows {
                if f.is_finite() && *f > best_f {
                    best = *k;
                    best_f = *f;
                }
            }
            best
        }
    }
}

/// Values of k evaluated per shard of `k: auto`. The greedy cuts are sequential, so a shard
/// still makes every cut up to its largest k; what shards share out is the evaluation of
/// each k (labels, sums of squares, pseudo-F), which costs as much again per k.
const K_PER_SHARD: usize = 4;

/// The k chunks of `k: auto`, inclusive, from `k_range` as written (before the cap at
/// n − 1, which only the data tell).
fn k_chunks(params: &Params) -> Vec<(usize, usize)> {
    let ClusterCount::Chosen(_) = params.k else {
        return Vec::new();
    };
    let [lo, hi] = params.k_range;
    (lo..=hi)
        .step_by(K_PER_SHARD)
        .map(|a| (a, (a + K_PER_SHARD - 1).min(hi)))
        .collect()
}

fn chunk_name((a, b): (usize, usize)) -> String {
    format!("k{a}-{b}")
}

/// The inputs a chunk's memos depend on: all of the stage's.
fn chunk_depends() -> Vec<String> {
    vec!["port:table".to_owned(), "port:edges".to_owned()]
}

fn chunk_memo_params(params: &Params, chunk: (usize, usize)) -> serde_json::Value {
    serde_json::json!({ "params": params, "k": [chunk.0, chunk.1] })
}

/// Evaluates one chunk of k and stores it as two memos: `k_scores` (one row per k of the
/// chunk: whether it was evaluated, its sums of squares and pseudo-F, and the clusters the
/// cuts reached) and `k_labels` (per evaluated k, the label of each unit in id order).
fn evaluate_chunk(
    params: &Params,
    prep: &Prepared,
    chunk: (usize, usize),
    ctx: &StageContext,
) -> Result<(), StageError> {
    let n = prep.names.len();
    let (k_lo, k_hi) = k_bounds(params, n)?;
    let top = chunk.1.min(k_hi);
    let splits = prep.splits(params.method, top);
    let reached = splits.reached();
    let (mut ks, mut evaluated, mut total, mut within, mut between, mut f) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut label_k, mut label) = (Vec::new(), Vec::new());
    for k in chunk.0..=chunk.1 {
        ks.push(k as i64);
        let row = (k >= k_lo && k <= top.min(reached)).then(|| {
            let labels = splits.labels(k);
            label_k.extend(std::iter::repeat_n(k as i64, n));
            label.extend(labels.iter().map(|&c| c as i64));
            score(prep, &labels, k)
        });
        evaluated.push(row.is_some());
        let (t, w, b, pf) = row.map_or((f64::NAN, f64::NAN, f64::NAN, f64::NAN), |(_, ss, f)| {
            (ss.total, ss.within_total, ss.between, f)
        });
        total.push(t);
        within.push(w);
        between.push(b);
        f.push(pf);
    }
    let rows = ks.len();
    let scores = TableBuilder::new()
        .i64("k", ks)
        .bool("evaluated", evaluated)
        .f64("total_ss", total)
        .f64("within_ss", within)
        .f64("between_ss", between)
        .f64("pseudo_f", f)
        .i64("reached", vec![reached as i64; rows])
        .build()?;
    let labels = TableBuilder::new()
        .i64("k", label_k)
        .i64("cluster", label)
        .build()?;
    let memo_params = chunk_memo_params(params, chunk);
    ctx.memo_store("k_scores", &chunk_depends(), &memo_params, &scores)?;
    ctx.memo_store("k_labels", &chunk_depends(), &memo_params, &labels)
}

/// The scores the shards stored, when every chunk's memos are there and they evaluated at
/// least one k; `None` otherwise (a local run, or a study whose cuts stop below `k_range`),
/// and the merge evaluates everything itself.
fn scores_from_shards(
    params: &Params,
    ctx: &StageContext,
    n: usize,
    k_lo: usize,
    k_hi: usize,
) -> Result<Option<Scored>, StageError> {
    let mut rows: Vec<KScore> = Vec::new();
    let mut by_k = BTreeMap::new();
    let mut reached = None;
    for chunk in k_chunks(params) {
        let memo_params = chunk_memo_params(params, chunk);
        let (Some(scores), Some(labels)) = (
            ctx.memo_lookup("k_scores", &chunk_depends(), &memo_params)?,
            ctx.memo_lookup("k_labels", &chunk_depends(), &memo_params)?,
        ) else {
            return Ok(None);
        };
        let ks = i64s(&scores, "k_scores", "k")?;
        let evaluated = crate::table::bools(&scores, "k_scores", "evaluated")?;
        let (total, within, between, f) = (
            f64s(&scores, "k_scores", "total_ss")?,
            f64s(&scores, "k_scores", "within_ss")?,
            f64s(&scores, "k_scores", "between_ss")?,
            f64s(&scores, "k_scores", "pseudo_f")?,
        );
        if (chunk.0..=chunk.1).contains(&k_hi) {
            reached = i64s(&scores, "k_scores", "reached")?.first().copied();
        }
        let label_k = i64s(&labels, "k_labels", "k")?;
        let label = i64s(&labels, "k_labels", "cluster")?;
        for (r, &k) in ks.iter().enumerate() {
            if !evaluated[r] {
                continue;
            }
            let k =
                usize::try_from(k).map_err(|_| StageError::internal("a stored k is negative"))?;
            let mine: Vec<usize> = label_k
                .iter()
                .zip(&label)
                .filter(|(lk, _)| usize::try_from(**lk).ok() == Some(k))
                .map(|(_, &c)| usize::try_from(c).unwrap_or(usize::MAX))
                .collect();
            if mine.len() != n || mine.iter().any(|&c| c >= k) {
                return Err(StageError::internal(format!(
                    "the stored partition into {k} clusters does not fit the {n} units"
                )));
            }
            let ss = crate::methods::pseudo_f::SumsOfSquares {
                total: total[r],
                within: Vec::new(),
                within_total: within[r],
                between: between[r],
            };
            rows.push((k, ss, f[r]));
            by_k.insert(k, mine);
        }
    }
    let Some(reached) = reached.and_then(|r| usize::try_from(r).ok()) else {
        return Ok(None);
    };
    rows.retain(|r| r.0 >= k_lo && r.0 <= k_hi);
    if rows.is_empty() {
        return Ok(None);
    }
    rows.sort_by_key(|r| r.0);
    let chosen_k = choose(params, &rows);
    Ok(Some(Scored {
        rows,
        chosen_k,
        partitions: Partitions::Stored(by_k),
        reached,
    }))
}

/// A row of `labels`: a unit and its cluster, counted from 0.
struct LabelRow<'a> {
    unit_id: &'a str,
    cluster: usize,
}

/// A row of `summary`: one k evaluated.
struct KRow {
    k: usize,
    ss: crate::methods::pseudo_f::SumsOfSquares,
    pseudo_f: f64,
    chosen: bool,
}

/// A row of `profiles`: one cluster (counted from 0), with per variable its mean, raw and
/// standardised.
struct ProfileRow {
    cluster: usize,
    units: usize,
    within_ss: f64,
    mean: Vec<f64>,
    z_mean: Vec<f64>,
}

fn labels_table<'a>() -> TableSchema<LabelRow<'a>> {
    TableSchema::<LabelRow<'_>>::new("labels", "the cluster (1..k) of each unit")
        .text("unit_id", |r| r.unit_id)
        .int("cluster", |r| count_i64(r.cluster) + 1)
}

fn summary_table() -> TableSchema<KRow> {
    TableSchema::<KRow>::new(
        "summary",
        "one row per k evaluated: sums of squares, between/total ratio, pseudo-F; `chosen` marks the k used",
    )
    .int("k", |r| count_i64(r.k))
    .float("total_ss", |r| r.ss.total)
    .float("within_ss", |r| r.ss.within_total)
    .float("between_ss", |r| r.ss.between)
    .float("between_total_ratio", |r| r.ss.ratio())
    .float_or_null("pseudo_f", |r| r.pseudo_f.is_finite().then_some(r.pseudo_f))
    .bool("chosen", |r| r.chosen)
}

fn profiles_table(variables: &[String]) -> TableSchema<ProfileRow> {
    let table = TableSchema::<ProfileRow>::new(
        "profiles",
        "per cluster: units, within SSD, and the mean of each variable (raw and standardised)",
    )
    .int("cluster", |r| count_i64(r.cluster) + 1)
    .int("units", |r| count_i64(r.units))
    .float("within_ss", |r| r.within_ss);
    variables.iter().enumerate().fold(table, |t, (j, v)| {
        t.float_at(format!("{v}_mean"), j, |r, j| r.mean[j])
            .float_at(format!("{v}_z_mean"), j, |r, j| r.z_mean[j])
    })
}

fn count_i64(count: usize) -> i64 {
    i64::try_from(count).expect("counts fit i64")
}

fn usize_f64(x: usize) -> f64 {
    x as f64
}

fn year_note(year: Option<i64>) -> String {
    year.map_or_else(String::new, |y| format!(" in year {y}"))
}

/// Per-cluster size, within SSD and variable means (raw and standardised).
fn profiles(vars: usize, raw: &[f64], data: &[f64], labels: &[usize], k: usize) -> Vec<ProfileRow> {
    let ss = sums_of_squares(data, vars, labels, k);
    let mut count = vec![0usize; k];
    let mut raw_sum = vec![0.0; k * vars];
    let mut z_sum = vec![0.0; k * vars];
    for (i, &c) in labels.iter().enumerate() {
        count[c] += 1;
        for j in 0..vars {
            raw_sum[c * vars + j] += raw[i * vars + j];
            z_sum[c * vars + j] += data[i * vars + j];
        }
    }
    (0..k)
        .map(|c| ProfileRow {
            cluster: c,
            units: count[c],
            within_ss: ss.within[c],
            mean: (0..vars)
                .map(|j| raw_sum[c * vars + j] / usize_f64(count[c]))
                .collect(),
            z_mean: (0..vars)
                .map(|j| z_sum[c * vars + j] / usize_f64(count[c]))
                .collect(),
        })
        .collect()
}

/// The edges between units of the table, as sorted index pairs. Edges to units not in the
/// table are left out with a warning.
fn unit_edges(
    edges: &RecordBatch,
    names: &[String],
    ctx: &StageContext,
) -> Result<Vec<(usize, usize)>, StageError> {
    let index: BTreeMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let from = ids(edges, "edges", "from")?;
    let to = ids(edges, "edges", "to")?;
    let mut out = Vec::with_capacity(from.len());
    let mut unknown: BTreeSet<&str> = BTreeSet::new();
    for (a, b) in from.iter().zip(&to) {
        match (index.get(a.as_str()), index.get(b.as_str())) {
            (Some(&i), Some(&j)) if i != j => out.push((i.min(j), i.max(j))),
            (Some(_), Some(_)) => {}
            (ia, _) => {
                unknown.insert(if ia.is_none() { a } else { b });
            }
        }
    }
    if !unknown.is_empty() {
        let list: Vec<&str> = unknown.into_iter().collect();
        ctx.warn(format!(
            "edges to {} unit(s) not in `table` were left out: {}",
            list.len(),
            preview(&list)
        ));
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Errors naming the islands and the components when the graph is not connected.
fn check_connected(n: usize, edges: &[(usize, usize)], names: &[String]) -> Result<(), StageError> {
    let mut degree = vec![0usize; n];
    for &(a, b) in edges {
        degree[a] += 1;
        degree[b] += 1;
    }
    let islands: Vec<&str> = (0..n)
        .filter(|&i| degree[i] == 0)
        .map(|i| names[i].as_str())
        .collect();
    if !islands.is_empty() && n > 1 {
        return Err(StageError::data(format!("{} unit(s) have no neighbour in `edges`: {}", islands.len(), preview(&islands)))
            .with_hint("set `islands: nearest` on the contiguity stage to link each island to its nearest unit"));
    }
    let comp = components(n, edges);
    let count = comp.iter().max().map_or(0, |c| c + 1);
    if count > 1 {
        let mut parts = Vec::new();
        for c in 0..count.min(5) {
            let members: Vec<&str> = (0..n)
                .filter(|&i| comp[i] == c)
                .map(|i| names[i].as_str())
                .collect();
            parts.push(format!(
                "{} units ({}{})",
                members.len(),
                preview(&members[..members.len().min(3)]),
                if members.len() > 3 { ", …" } else { "" }
            ));
        }
        return Err(StageError::data(format!("the neighbour graph has {count} disconnected parts: {}", parts.join("; ")))
            .with_hint("set `islands: nearest` on the contiguity stage to link the parts, or cluster each part separately"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::testing;
    use crate::table::TableBuilder;
    use crate::table::i64s;

    use crate::engine::stage::{Entry, StageEntry};
    use crate::table::strings;

    fn run(
        params: serde_json::Value,
        table: RecordBatch,
        edges: RecordBatch,
    ) -> Result<(Outputs, Vec<String>), StageError> {
        testing::run::<Cluster>(params, vec![("table", table), ("edges", edges)])
    }

    /// The 3×3 grid of the SKATER hand calculation in `methods::skater` (values 0 1 2 / 1 2 8 /
    /// 9 8 9 by row from the bottom), ids g0..g8, rook edges.
    fn grid() -> (RecordBatch, RecordBatch) {
        let (values, pairs) = crate::methods::skater::tests::grid();
        let ids: Vec<String> = (0..values.len()).map(|i| format!("g{i}")).collect();
        let table = TableBuilder::new()
            .str("unit_id", &ids)
            .f64("x", values)
            .build()
            .unwrap();
        let from: Vec<String> = pairs.iter().map(|p| format!("g{}", p.0)).collect();
        let to: Vec<String> = pairs.iter().map(|p| format!("g{}", p.1)).collect();
        (
            table,
            TableBuilder::new()
                .str("from", &from)
                .str("to", &to)
                .build()
                .unwrap(),
        )
    }

    #[test]
    fn grid_labels_summary_and_profiles() {
        let (table, edges) = grid();
        let (out, _) = run(
            serde_json::json!({ "variables": ["x"], "k": 3, "standardize": "none" }),
            table,
            edges,
        )
        .unwrap();
        // By hand (methods::skater): {5,6,7,8} is cluster 1, {1,2,4} is 2, {0,3} is 3.
        assert_eq!(
            i64s(&out[0].1, "labels", "cluster").unwrap(),
            vec![3, 2, 2, 3, 2, 1, 1, 1, 1]
        );
        assert_eq!(strings(&out[0].1, "labels", "unit_id").unwrap()[0], "g0");
        // Within SSD: 1 + 2/3 + 1/2 = 13/6; total 1100/9; pseudo-F = (B/2)/(W/6).
        let within = f64s(&out[1].1, "summary", "within_ss").unwrap()[0];
        assert!((within - 13.0 / 6.0).abs() < 1e-12);
        let f = f64s(&out[1].1, "summary", "pseudo_f").unwrap()[0];
        let expected_f = ((1100.0 / 9.0 - 13.0 / 6.0) / 2.0) / ((13.0 / 6.0) / 6.0);
        assert!((f - expected_f).abs() < 1e-9, "{f} vs {expected_f}");
        // Profiles: cluster 1 has 4 units, mean 8.5; cluster 3 ({0,3}) mean 0.5.
        assert_eq!(i64s(&out[2].1, "profiles", "units").unwrap(), vec![4, 3, 2]);
        assert_eq!(
            f64s(&out[2].1, "profiles", "x_mean").unwrap(),
            vec![8.5, 5.0 / 3.0, 0.5]
        );
    }

    #[test]
    fn auto_k_picks_largest_pseudo_f() {
        let (table, edges) = grid();
        let (out, _) = run(serde_json::json!({ "variables": ["x"], "k": "auto", "k_range": [2, 4], "standardize": "none" }), table, edges).unwrap();
        let ks = i64s(&out[1].1, "summary", "k").unwrap();
        assert_eq!(ks, vec![2, 3, 4]);
        let f = f64s(&out[1].1, "summary", "pseudo_f").unwrap();
        // k = 2: W = 3.8, B = 1100/9 − 3.8, F = B / (W / 7) ≈ 218.1, the largest: two clear groups.
        assert!((f[0] - (1100.0 / 9.0 - 3.8) / (3.8 / 7.0)).abs() < 1e-9);
        assert!(f[0] > f[1] && f[0] > f[2]);
        assert_eq!(
            crate::table::bools(&out[1].1, "summary", "chosen").unwrap(),
            vec![true, false, false]
        );
        assert_eq!(
            i64s(&out[0].1, "labels", "cluster").unwrap(),
            vec![1, 1, 1, 1, 1, 2, 2, 2, 2]
        );
    }

    /// Runs `cluster` on the grid as a batch executor would: first each shard (when `sharded`),
    /// then the run, all with one memo store. Returns the outputs, the warnings and how many
    /// memos the run read.
    fn run_with_store(params: serde_json::Value, sharded: bool) -> (Outputs, Vec<String>, usize) {
        use crate::engine::key::Digest;
        let (table, edges) = grid();
        let prepared = Entry::<Cluster>::new().prepare(params).unwrap();
        let store = std::sync::Arc::new(testing::MemoryStore::default());
        let scope = crate::engine::stage::MemoScope {
            kind: "cluster".into(),
            version: 1,
            inputs: BTreeMap::from([
                ("port:table".to_owned(), Digest::of(b"table")),
                ("port:edges".to_owned(), Digest::of(b"edges")),
            ]),
        };
        let ctx = || {
            StageContext::new("c", std::path::Path::new("."), BTreeMap::new())
                .with_memo(store.clone(), scope.clone())
        };
        let inputs = Inputs::new(BTreeMap::from([
            ("table".to_owned(), table),
            ("edges".to_owned(), edges),
        ]));
        if sharded {
            for shard in prepared.shards() {
                prepared.run_shard(&shard.name, &inputs, &ctx()).unwrap();
            }
        }
        let merge = ctx();
        let outputs = prepared.run(&inputs, &merge).unwrap();
        (outputs, merge.take_warnings(), merge.take_memos().len())
    }

    #[test]
    fn k_auto_shards_merge_into_the_outputs_of_one_run() {
        // n = 9 caps k at 8: chunks k2-5 and k6-9 hold rows, k10-12 holds none.
        let params = serde_json::json!({ "variables": ["x"], "k": "auto", "k_range": [2, 12], "standardize": "none" });
        let names: Vec<String> = Entry::<Cluster>::new()
            .prepare(params.clone())
            .unwrap()
            .shards()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["k2-5", "k6-9", "k10-12"]);
        let (alone, alone_warnings, read_alone) = run_with_store(params.clone(), false);
        assert_eq!(read_alone, 0, "a run without shards finds no memo");
        let (merged, merged_warnings, read) = run_with_store(params, true);
        assert_eq!(read, 6, "the merge reads two memos per chunk");
        assert_eq!(merged, alone);
        assert_eq!(merged_warnings, alone_warnings);
        assert_eq!(
            i64s(&merged[1].1, "summary", "k").unwrap(),
            (2..=8).collect::<Vec<_>>()
        );
    }

    #[test]
    fn k_auto_shards_agree_when_min_size_stops_the_cuts_early() {
        // min_size 4 on 9 units allows at most 2 clusters: every chunk past k2-3 is empty and
        // the merge must warn exactly as a single run does.
        let params = serde_json::json!({ "variables": ["x"], "k": "auto", "k_range": [2, 8], "min_size": 4, "standardize": "none" });
        let (alone, alone_warnings, _) = run_with_store(params.clone(), false);
        let (merged, merged_warnings, read) = run_with_store(params, true);
        assert_eq!(read, 4, "the merge reads two memos per chunk");
        assert_eq!(merged, alone);
        assert_eq!(merged_warnings, alone_warnings);
        assert!(
            alone_warnings.iter().any(|w| w.contains("only 2 clusters")),
            "{alone_warnings:?}"
        );
    }

    #[test]
    fn stage_matches_pygeoda_on_columbus() {
        // The stage reproduces pygeoda's SKATER k = 5 with min_size 6 (fixture expected.csv).
        let (cases, _, _, _) = crate::methods::skater::tests::pygeoda_cases("columbus");
        let (_, k, min_size, _, within, expected) = cases
            .into_iter()
            .find(|c| c.0 == "skater" && c.2 > 0.0)
            .unwrap();
        let data = include_str!("../../tests/fixtures/cluster/columbus_data.csv");
        let mut ids = Vec::new();
        let mut cols: Vec<Vec<f64>> = vec![Vec::new(); 3];
        for line in data.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            ids.push(f[0].to_owned());
            for j in 0..3 {
                cols[j].push(f[j + 1].parse().unwrap());
            }
        }
        let table = TableBuilder::new()
            .str("unit_id", &ids)
            .f64("HOVAL", cols[0].clone())
            .f64("INC", cols[1].clone())
            .f64("CRIME", cols[2].clone())
            .build()
            .unwrap();
        let edges_csv = include_str!("../../tests/fixtures/cluster/columbus_edges.csv");
        let (from, to): (Vec<&str>, Vec<&str>) = edges_csv
            .lines()
            .skip(1)
            .map(|l| l.split_once(',').unwrap())
            .unzip();
        let edges = TableBuilder::new()
            .str("from", &from)
            .str("to", &to)
            .build()
            .unwrap();
        let params = serde_json::json!({ "variables": ["HOVAL", "INC", "CRIME"], "k": k, "min_size": min_size as usize });
        let (out, _) = run(params, table, edges).unwrap();
        let labels: Vec<usize> = i64s(&out[0].1, "labels", "cluster")
            .unwrap()
            .iter()
            .map(|&c| usize::try_from(c).unwrap())
            .collect();
        // Same partition; pygeoda numbers clusters by size too, so even the numbers agree
        // except between clusters of equal size.
        let same = |a: &[usize], b: &[usize]| {
            (0..a.len()).all(|i| (0..a.len()).all(|j| (a[i] == a[j]) == (b[i] == b[j])))
        };
        assert!(same(&labels, &expected));
        assert!((f64s(&out[1].1, "summary", "within_ss").unwrap()[0] - within).abs() < 1e-9);
    }

    #[test]
    fn islands_years_and_missing_values_are_clear_errors() {
        let (table, _) = grid();
        let edges = TableBuilder::new()
            .str("from", &["g0", "g1"])
            .str("to", &["g1", "g2"])
            .build()
            .unwrap();
        let err = run(
            serde_json::json!({ "variables": ["x"], "k": 2 }),
            table.clone(),
            edges,
        )
        .unwrap_err();
        assert!(
            err.message.contains("no neighbour") && err.message.contains("`g3`"),
            "{}",
            err.message
        );
        assert!(err.hint.unwrap().contains("islands: nearest"));
        // Two disconnected parts.
        let edges = TableBuilder::new()
            .str("from", &["g0", "g1", "g3", "g4", "g5", "g6", "g7"])
            .str("to", &["g1", "g2", "g4", "g5", "g6", "g7", "g8"])
            .build()
            .unwrap();
        let err = run(
            serde_json::json!({ "variables": ["x"], "k": 2 }),
            table,
            edges.clone(),
        )
        .unwrap_err();
        assert!(
            err.message.contains("2 disconnected parts"),
            "{}",
            err.message
        );
        // Several years without `year:`.
        let yearly = TableBuilder::new()
            .str("unit_id", &["a", "a"])
            .i64("year", vec![2000, 2010])
            .f64("x", vec![1.0, 2.0])
            .build()
            .unwrap();
        let err = run(
            serde_json::json!({ "variables": ["x"], "k": 1 }),
            yearly,
            edges,
        )
        .unwrap_err();
        assert!(
            err.message.contains("2 years (2000, 2010)"),
            "{}",
            err.message
        );
        // With `year:` the rows of that year are used.
        let yearly = TableBuilder::new()
            .str("unit_id", &["a", "a", "b", "b"])
            .i64("year", vec![2000, 2010, 2000, 2010])
            .f64("x", vec![1.0, 2.0, 5.0, 7.0])
            .build()
            .unwrap();
        let ab = TableBuilder::new()
            .str("from", &["a"])
            .str("to", &["b"])
            .build()
            .unwrap();
        let (out, _) = run(
            serde_json::json!({ "variables": ["x"], "k": 2, "year": 2010, "standardize": "none" }),
            yearly,
            ab,
        )
        .unwrap();
        // Two units, two clusters; profiles show the 2010 values (2 and 7; tie in size → a first).
        assert_eq!(
            f64s(&out[2].1, "profiles", "x_mean").unwrap(),
            vec![2.0, 7.0]
        );
        // A missing value names the unit and column.
        let (_, edges) = grid();
        let mut x = vec![1.0; 9];
        x[4] = f64::NAN;
        let ids: Vec<String> = (0..9).map(|i| format!("g{i}")).collect();
        let t = TableBuilder::new()
            .str("unit_id", &ids)
            .f64("x", x)
            .build()
            .unwrap();
        let err = run(serde_json::json!({ "variables": ["x"], "k": 2 }), t, edges).unwrap_err();
        assert!(
            err.message.contains("`g4`") && err.message.contains("`x`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn params_parse_k_and_min_size_forms() {
        let p: Params = serde_json::from_value(serde_json::json!({ "variables": ["a"], "k": "auto", "min_size": { "column": "area_km2", "total": 5000 } })).unwrap();
        assert_eq!(p.k, ClusterCount::Chosen(Auto::Auto));
        assert_eq!(
            p.min_size,
            MinSize::Total(ColumnTotal {
                column: "area_km2".into(),
                total: 5000.0
            })
        );
        assert!(
            serde_json::from_value::<Params>(
                serde_json::json!({ "variables": ["a"], "k": "many" })
            )
            .is_err()
        );
        assert!(
            serde_json::from_value::<Params>(serde_json::json!({ "variables": ["a"], "kk": 3 }))
                .is_err()
        );
    }

    /// Independent properties on the real Henan graph (317 libpysal queen pairs): every
    /// cluster is a connected piece of the graph, there are k of them, and each meets the size
    /// bound, for both methods and both kinds of bound.
    #[test]
    fn clusters_are_contiguous_and_bounded_on_henan() {
        let csv = include_str!("../../tests/fixtures/cluster/henan_units123_adjacency.csv");
        let pairs: Vec<(String, String)> = csv
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f[0].to_owned(), f[1].to_owned())
            })
            .collect();
        let mut names: Vec<String> = pairs
            .iter()
            .flat_map(|p| [p.0.clone(), p.1.clone()])
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 123);
        // Two smooth-ish variables from the adcode digits and a size column.
        let code: Vec<f64> = names.iter().map(|n| n.parse::<f64>().unwrap()).collect();
        let a: Vec<f64> = code.iter().map(|c| (c / 100.0).floor() % 17.0).collect();
        let b: Vec<f64> = code.iter().map(|c| (c % 100.0).sqrt()).collect();
        let size: Vec<f64> = code.iter().map(|c| 500.0 + (c % 7.0) * 300.0).collect();
        let table = TableBuilder::new()
            .str("unit_id", &names)
            .f64("a", a)
            .f64("b", b)
            .f64("size", size.clone())
            .build()
            .unwrap();
        let from: Vec<&str> = pairs.iter().map(|p| p.0.as_str()).collect();
        let to: Vec<&str> = pairs.iter().map(|p| p.1.as_str()).collect();
        let edges = TableBuilder::new()
            .str("from", &from)
            .str("to", &to)
            .build()
            .unwrap();
        let index = |id: &str| names.iter().position(|n| n == id).unwrap();
        let graph: Vec<(usize, usize)> = pairs.iter().map(|p| (index(&p.0), index(&p.1))).collect();
        for method in ["skater", "redcap"] {
            for (min_size, check_total) in [
                (serde_json::json!(5), None),
                (
                    serde_json::json!({ "column": "size", "total": 6000 }),
                    Some(6000.0),
                ),
            ] {
                let params = serde_json::json!({ "variables": ["a", "b"], "method": method, "k": 6, "min_size": min_size });
                let (out, _) = run(params, table.clone(), edges.clone()).unwrap();
                let labels: Vec<usize> = i64s(&out[0].1, "labels", "cluster")
                    .unwrap()
                    .iter()
                    .map(|&c| usize::try_from(c - 1).unwrap())
                    .collect();
                assert_eq!(labels.iter().max(), Some(&5), "{method}");
                for c in 0..6 {
                    let members: Vec<usize> = (0..123).filter(|&i| labels[i] == c).collect();
                    let inner: Vec<(usize, usize)> = graph
                        .iter()
                        .copied()
                        .filter(|&(x, y)| labels[x] == c && labels[y] == c)
                        .collect();
                    let comp = components(123, &inner);
                    assert!(
                        members.iter().all(|&i| comp[i] == comp[members[0]]),
                        "{method}: cluster {c} is not contiguous"
                    );
                    match check_total {
                        Some(t) => assert!(
                            members.iter().map(|&i| size[i]).sum::<f64>() >= t,
                            "{method}: cluster {c} total"
                        ),
                        None => assert!(
                            members.len() >= 5,
                            "{method}: cluster {c} has {} units",
                            members.len()
                        ),
                    }
                }
            }
        }
    }

    /// The parameters of the cross-stage contract parse as written.
    #[test]
    fn contract_params_parse() {
        assert!(
            Entry::<crate::stages::contiguity::Contiguity>::new()
                .prepare(serde_json::json!({ "rule": "queen" }))
                .is_ok()
        );
        let p = serde_json::json!({ "id_column": "unit_id", "method": "skater", "variables": ["ecc", "esc", "nce_t_c"], "standardize": "zscore", "k": 5, "min_size": 2 });
        assert!(Entry::<Cluster>::new().prepare(p).is_ok());
        assert!(
            Entry::<crate::stages::zoning::Zoning>::new()
                .prepare(serde_json::json!({ "scheme": "five_type" }))
                .is_ok()
        );
    }
}
