//! `sweep`: Monte-Carlo uncertainty and sensitivity over part of a study. At plan time a sweep
//! takes the stages named in `vary` and every stage between them and those named in `collect`,
//! and is wired to the outputs those stages read from the rest of the study (so its key covers
//! those bytes, its own parameters and the re-run stages' kinds, versions and parameters). At
//! run time it samples the parameters, re-runs those stages in memory for each draw on the
//! worker pool (no Parquet, no cache entries per draw) and reports the collected values, their
//! summaries and rank sensitivities. It knows stages only through [`StageEntry`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::engine::error::Diagnostic;
use crate::engine::plan::Wire;
use crate::engine::reuse::ReuseStore;
use crate::engine::spec::SourceText;
use crate::engine::stage::{
    Inputs, OutputDecl, Outputs, PreparedStage, Source, StageContext, StageEntry, StageError,
};
use crate::engine::suggest::did_you_mean;
use crate::engine::sweep_sample::unit_samples;
pub use crate::engine::sweep_sample::{Distribution, Sampling};

mod output_tables;
mod shard;

pub use shard::DRAWS_PER_CHUNK;

/// The kind's name; the plan attaches the stages a sweep re-runs to stages of this kind.
pub const KIND: &str = "sweep";

fn default_draws() -> usize {
    1000
}

/// Parameters of a sweep, as written in the study.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepParams {
    /// Number of draws.
    #[serde(default = "default_draws")]
    pub draws: usize,
    /// Seed of the sampling design.
    pub seed: u64,
    /// `lhs` (default) or `random`.
    #[serde(default)]
    pub sampling: Sampling,
    /// `"<stage>.<parameter path>"` → distribution.
    pub vary: BTreeMap<String, Distribution>,
    /// Name → `"<stage>[.<output>].<column>"`.
    pub collect: BTreeMap<String, String>,
}

/// Outputs every sweep has besides its collected names.
const FIXED_OUTPUTS: [&str; 2] = ["draws", "sensitivity"];

impl SweepParams {
    /// Checks what can be checked without the study: counts, distributions, names.
    pub fn validate(&self) -> Result<(), StageError> {
        if self.draws < 2 {
            return Err(
                StageError::data(format!("draws is {}, expected at least 2", self.draws))
                    .with_hint(
                        "a few hundred draws make stable probabilities; 1000 is the default",
                    ),
            );
        }
        if self.vary.is_empty() || self.collect.is_empty() {
            return Err(StageError::data("a sweep needs at least one `vary` and one `collect`")
                .with_hint("e.g. `vary: { stage.param: { uniform: [0.1, 0.2] } }` and `collect: { name: stage.column }`"));
        }
        for (path, d) in &self.vary {
            if let Some(problem) = d.problem() {
                return Err(StageError::data(format!("vary `{path}`: {problem}")));
            }
        }
        let mut names: BTreeSet<String> = FIXED_OUTPUTS.iter().map(|s| (*s).to_owned()).collect();
        for name in self.collect.keys() {
            let valid = crate::engine::spec::is_stage_name(name);
            if !valid || !names.insert(name.clone()) || !names.insert(format!("{name}_summary")) {
                return Err(StageError::data(format!(
                    "collect name `{name}` is not usable as an output name"
                ))
                .with_hint("names are lower-case letters, digits and `_`, distinct from `draws`, `sensitivity` and each other's `<name>_summary`"));
            }
        }
        Ok(())
    }

    /// The sweep's outputs: `draws`, then `<name>` and `<name>_summary` per collected name, then
    /// `sensitivity`.
    pub fn outputs(&self) -> Vec<OutputDecl> {
        output_tables::declarations(self.collect.keys())
    }
}

/// The error the kind returns when it runs without the stages the plan attaches (only the plan
/// gives a sweep the stages it re-runs).
pub fn unattached() -> StageError {
    StageError::internal(
        "a sweep runs inside `pipeline run`, where the plan gives it the stages it re-runs",
    )
    .with_hint("run the study with `pipeline run`; a sweep cannot run as a lone worker invocation")
}

/// What the plan knows of a stage when it attaches a sweep.
pub struct StageView<'a> {
    pub name: &'a str,
    pub line: usize,
    pub entry: &'static dyn StageEntry,
    /// The stage's parameters as written.
    pub params: &'a serde_json::Value,
    pub prepared: &'a dyn PreparedStage,
    pub wires: &'a BTreeMap<String, Wire>,
    pub outputs: &'a [OutputDecl],
}

/// A sweep ready to run, and the wires to the outputs it reads.
pub struct Attached {
    pub prepared: Box<dyn PreparedStage>,
    pub wires: BTreeMap<String, Wire>,
}

/// Where a re-run stage's port reads from.
#[derive(Debug, Clone)]
enum Feed {
    /// An output of the rest of the study: the sweep's input of that name.
    Outside(String),
    /// An output of a re-run stage, by position in the sweep's order.
    Inside(usize, String),
}

/// One stage the sweep re-runs.
struct Rerun {
    name: String,
    entry: &'static dyn StageEntry,
    params: serde_json::Value,
    canonical: serde_json::Value,
    /// Prepared once when no parameter of the stage varies.
    fixed: Option<Box<dyn PreparedStage>>,
    feeds: BTreeMap<String, Feed>,
    sources: Vec<Source>,
}

/// A `vary` entry resolved: which re-run stage, which path.
struct Varied {
    stage: usize,
    path: Vec<String>,
    distribution: Distribution,
}

/// A `collect` entry resolved.
struct Collected {
    stage: usize,
    output: String,
    column: String,
}

struct PreparedSweep {
    params: SweepParams,
    study_sources: Vec<Source>,
    reruns: Vec<Rerun>,
    varied: Vec<Varied>,
    collected: Vec<(String, Collected)>,
}

/// Resolves sweep `i`: the stages it re-runs, their feeds from the rest of the study, and the
/// checks of its `vary` and `collect` entries, with a caret at the offending YAML field.
pub fn attach(
    i: usize,
    stages: &[StageView<'_>],
    src: &SourceText,
) -> Result<Attached, Diagnostic> {
    let cx = AttachContext {
        me: &stages[i],
        stages,
        src,
    };
    let params: SweepParams =
        serde_json::from_value(cx.me.params.clone()).expect("the plan prepared these parameters");
    let varied_at = cx.resolve_vary(&params)?;
    let collected_at = params
        .collect
        .iter()
        .map(|(name, target)| Ok((name.clone(), cx.resolve_collect(target)?)))
        .collect::<Result<Vec<_>, Diagnostic>>()?;
    let members = cx.members(i, &params, &varied_at, &collected_at)?;
    let (mut reruns, wires) = cx.reruns(&members);
    let position = |s: usize| members.iter().position(|&m| m == s).expect("member");
    let varied = cx.checked_varied(&params, varied_at, &reruns, &position)?;
    cx.prepare_fixed(&mut reruns, &varied)?;
    let collected = collected_at
        .into_iter()
        .map(|(n, c)| {
            let stage = position(c.stage);
            (n, Collected { stage, ..c })
        })
        .collect();
    let study_sources = reruns
        .iter()
        .flat_map(|r| {
            r.sources.iter().map(move |s| Source {
                name: format!("{}.{}", r.name, s.name),
                ..s.clone()
            })
        })
        .collect();
    Ok(Attached {
        prepared: Box::new(PreparedSweep {
            params,
            study_sources,
            reruns,
            varied,
            collected,
        }),
        wires,
    })
}

/// The study as the plan sees it while attaching one sweep, and where its errors point.
struct AttachContext<'v, 's> {
    me: &'v StageView<'s>,
    stages: &'v [StageView<'s>],
    src: &'v SourceText,
}

impl AttachContext<'_, '_> {
    /// An error of this sweep with a caret at `key` (a YAML key or, failing that, its text).
    fn fail(&self, key: &str, message: String, hint: String) -> Diagnostic {
        let at = self
            .src
            .find_key(self.me.line, key)
            .or_else(|| self.src.find_text(self.me.line, key));
        Diagnostic::user(format!("stage `{}`: {message}", self.me.name))
            .at(self.src, at)
            .with_hint(hint)
    }

    /// The position of stage `name`, named in the YAML field `key`.
    fn index(&self, name: &str, key: &str) -> Result<usize, Diagnostic> {
        self.stages
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| {
                let names = self.stages.iter().map(|s| s.name);
                let hint = match did_you_mean(name, names) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "name a stage of this study first".to_owned(),
                };
                self.fail(
                    key,
                    format!("`{key}` names stage `{name}`, which does not exist"),
                    hint,
                )
            })
    }

    /// Each `vary` key as (stage position, parameter path), in the order of `params.vary`.
    fn resolve_vary(&self, params: &SweepParams) -> Result<Vec<(usize, Vec<String>)>, Diagnostic> {
        params
            .vary
            .keys()
            .map(|key| {
                let Some((stage, path)) = key.split_once('.') else {
                    return Err(self.fail(
                        key,
                        format!("vary `{key}` names no parameter"),
                        "write `<stage>.<parameter path>`, e.g. `stage.param.field`".to_owned(),
                    ));
                };
                let path = path.split('.').map(str::to_owned).collect();
                Ok((self.index(stage, key)?, path))
            })
            .collect()
    }

    /// `stage.column` or `stage.output.column`, checked against the stage's declared outputs.
    fn resolve_collect(&self, target: &str) -> Result<Collected, Diagnostic> {
        let parts: Vec<&str> = target.split('.').collect();
        let (stage, output, column) = match parts.as_slice() {
            [s, c] => (*s, None, *c),
            [s, o, c] => (*s, Some(*o), *c),
            _ => {
                return Err(self.fail(
                    target,
                    format!("collect `{target}` is not `<stage>[.<output>].<column>`"),
                    "e.g. `stage.column` (the stage's first output) or `stage.output.column`"
                        .to_owned(),
                ));
            }
        };
        let s = self.index(stage, target)?;
        let outputs = self.stages[s].outputs;
        let decl = match output {
            None => outputs.first(),
            Some(o) => outputs.iter().find(|d| d.name == o),
        };
        let Some(decl) = decl else {
            let names: Vec<&str> = outputs.iter().map(|d| d.name.as_str()).collect();
            return Err(self.fail(
                target,
                format!("stage `{stage}` has no output `{}`", output.unwrap_or("")),
                format!("its outputs are: {}", names.join(", ")),
            ));
        };
        if decl.complete && !decl.columns.iter().any(|c| c == column) {
            let hint = match did_you_mean(column, decl.columns.iter().map(String::as_str)) {
                Some(c) => format!("did you mean `{c}`? (columns: {})", decl.columns.join(", ")),
                None => format!("the columns are: {}", decl.columns.join(", ")),
            };
            return Err(self.fail(
                target,
                format!("`{stage}.{}` has no column `{column}`", decl.name),
                hint,
            ));
        }
        Ok(Collected {
            stage: s,
            output: decl.name.clone(),
            column: column.to_owned(),
        })
    }

    /// The stages the sweep re-runs, upstream first: those below a varied stage and above a
    /// collected one. Every collected stage must be below a varied one, every varied stage
    /// above a collected one, and no member may be a sweep.
    fn members(
        &self,
        i: usize,
        params: &SweepParams,
        varied_at: &[(usize, Vec<String>)],
        collected_at: &[(String, Collected)],
    ) -> Result<Vec<usize>, Diagnostic> {
        let stages = self.stages;
        let ups: Vec<Vec<usize>> = stages
            .iter()
            .map(|s| s.wires.values().map(|w| w.stage).collect())
            .collect();
        let below = reach(&ups, varied_at.iter().map(|v| v.0), true);
        let above = reach(&ups, collected_at.iter().map(|c| c.1.stage), false);
        for ((name, c), target) in collected_at.iter().zip(params.collect.values()) {
            if !below[c.stage] {
                return Err(self.fail(
                    target,
                    format!(
                        "collect `{name}` reads `{}`, which no varied parameter reaches",
                        stages[c.stage].name
                    ),
                    "collect an output downstream of a stage named in `vary`".to_owned(),
                ));
            }
        }
        for ((s, _), key) in varied_at.iter().zip(params.vary.keys()) {
            if !above[*s] {
                return Err(self.fail(
                    key,
                    format!(
                        "vary `{key}`: stage `{}` feeds none of the collected outputs",
                        stages[*s].name
                    ),
                    "collect an output of that stage or of one downstream of it".to_owned(),
                ));
            }
        }
        let members = order(&ups, &below, &above);
        if let Some(&other) = members
            .iter()
            .find(|&&m| m == i || stages[m].entry.kind() == KIND)
        {
            return Err(self.fail(
                stages[other].name,
                format!("a sweep cannot re-run stage `{}`", stages[other].name),
                "a sweep re-runs ordinary stages; keep sweeps out of each other's path".to_owned(),
            ));
        }
        Ok(members)
    }

    /// The re-run stages with their feeds, and the sweep's wires to the outputs they read from
    /// the rest of the study.
    fn reruns(&self, members: &[usize]) -> (Vec<Rerun>, BTreeMap<String, Wire>) {
        let mut wires = BTreeMap::new();
        let mut reruns = Vec::with_capacity(members.len());
        for &m in members {
            let s = &self.stages[m];
            let mut feeds = BTreeMap::new();
            for (port, w) in s.wires {
                let feed = if let Some(k) = members.iter().position(|&o| o == w.stage) {
                    Feed::Inside(k, w.output.clone())
                } else {
                    let input = format!("{}.{}", self.stages[w.stage].name, w.output);
                    wires.insert(input.clone(), w.clone());
                    Feed::Outside(input)
                };
                feeds.insert(port.clone(), feed);
            }
            reruns.push(Rerun {
                name: s.name.to_owned(),
                entry: s.entry,
                params: s.params.clone(),
                canonical: s.prepared.canonical_params(),
                fixed: None,
                feeds,
                sources: s.prepared.sources(),
            });
        }
        (reruns, wires)
    }

    /// The `vary` entries with their stage's position among the reruns, each path probed.
    fn checked_varied(
        &self,
        params: &SweepParams,
        varied_at: Vec<(usize, Vec<String>)>,
        reruns: &[Rerun],
        position: &dyn Fn(usize) -> usize,
    ) -> Result<Vec<Varied>, Diagnostic> {
        varied_at
            .into_iter()
            .zip(&params.vary)
            .map(|((s, path), (key, d))| {
                let stage = position(s);
                check_path(&reruns[stage], &path, d)
                    .map_err(|(m, h)| self.fail(key, format!("vary `{key}`: {m}"), h))?;
                Ok(Varied {
                    stage,
                    path,
                    distribution: d.clone(),
                })
            })
            .collect()
    }

    /// Prepares once the re-run stages none of whose parameters vary.
    fn prepare_fixed(&self, reruns: &mut [Rerun], varied: &[Varied]) -> Result<(), Diagnostic> {
        for (k, r) in reruns.iter_mut().enumerate() {
            if !varied.iter().any(|v| v.stage == k) {
                let prepared = r.entry.prepare(r.params.clone());
                r.fixed = Some(prepared.map_err(|e| self.fail(&r.name, e.message, String::new()))?);
            }
        }
        Ok(())
    }
}

/// Stages reachable from `from` downstream (`down`) or upstream, themselves included.
fn reach(ups: &[Vec<usize>], from: impl Iterator<Item = usize>, down: bool) -> Vec<bool> {
    let mut seen = vec![false; ups.len()];
    let mut stack: Vec<usize> = from.collect();
    while let Some(s) = stack.pop() {
        if std::mem::replace(&mut seen[s], true) {
            continue;
        }
        if down {
            stack.extend((0..ups.len()).filter(|&d| ups[d].contains(&s)));
        } else {
            stack.extend(&ups[s]);
        }
    }
    seen
}

/// The stages both below a varied stage and above a collected one, upstream first (ties by
/// position in the study, so the order never depends on hashing).
fn order(ups: &[Vec<usize>], below: &[bool], above: &[bool]) -> Vec<usize> {
    let members: Vec<usize> = (0..ups.len()).filter(|&s| below[s] && above[s]).collect();
    let mut done: Vec<usize> = Vec::with_capacity(members.len());
    while done.len() < members.len() {
        let next = members.iter().copied().find(|&m| {
            !done.contains(&m)
                && ups[m]
                    .iter()
                    .all(|u| !members.contains(u) || done.contains(u))
        });
        // A cycle leaves stages out; the plan reports the cycle itself right after.
        let Some(next) = next else { break };
        done.push(next);
    }
    done
}

/// Probes a `vary` path: each probe value must be accepted by the stage's kind, must change
/// its parameters, and must leave the files it reads alone.
fn check_path(r: &Rerun, path: &[String], d: &Distribution) -> Result<(), (String, String)> {
    let mut seen = Vec::new();
    for probe in d.probes() {
        let mut params = r.params.clone();
        set_path(&mut params, path, probe.clone())
            .map_err(|m| (m, "vary a parameter inside the stage's mapping".to_owned()))?;
        let prepared = r.entry.prepare(params).map_err(|e| {
            let hint = e.hint.clone().unwrap_or_else(|| {
                format!(
                    "see `pipeline stages` for what kind `{}` takes",
                    r.entry.kind()
                )
            });
            (
                format!(
                    "stage `{}` does not take {probe} at `{}`: {}",
                    r.name,
                    path.join("."),
                    e.message
                ),
                hint,
            )
        })?;
        if prepared.sources() != r.sources {
            return Err((
                format!(
                    "`{}` changes the files stage `{}` reads",
                    path.join("."),
                    r.name
                ),
                "a sweep varies parameters; run one study per input file instead".to_owned(),
            ));
        }
        seen.push(prepared.canonical_params());
    }
    seen.dedup();
    if seen.len() < 2 && d.probes().len() > 1 {
        return Err((
            format!(
                "`{}` names no parameter of kind `{}`: changing it changes nothing",
                path.join("."),
                r.entry.kind()
            ),
            format!(
                "`pipeline stages` lists what kind `{}` takes",
                r.entry.kind()
            ),
        ));
    }
    Ok(())
}

/// Sets `path` in a parameter tree, creating mappings on the way, so a partial override keeps
/// its siblings.
pub fn set_path(
    tree: &mut serde_json::Value,
    path: &[String],
    value: serde_json::Value,
) -> Result<(), String> {
    let mut here = tree;
    for (k, segment) in path.iter().enumerate() {
        if here.is_null() {
            *here = serde_json::Value::Object(serde_json::Map::new());
        }
        let serde_json::Value::Object(map) = here else {
            return Err(format!("`{}` is not a mapping", path[..k].join(".")));
        };
        if k + 1 == path.len() {
            map.insert(segment.clone(), value);
            return Ok(());
        }
        here = map
            .entry(segment.clone())
            .or_insert(serde_json::Value::Null);
    }
    Err("an empty parameter path".to_owned())
}

/// The values one draw collected, per collected name.
struct DrawValues {
    keys: Vec<ArrayRef>,
    key_names: Vec<String>,
    values: Values,
}

#[derive(Clone)]
enum Values {
    Number(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
}

impl PreparedStage for PreparedSweep {
    /// The reruns are built from the study's other stages, which an invocation does not carry;
    /// a worker runs a chunk of draws (a shard) by planning the study again.
    fn has_invocation(&self) -> bool {
        false
    }
    fn shards(&self) -> Vec<crate::engine::stage::Shard> {
        self.chunk_shards()
    }
    fn run_shard(
        &self,
        shard: &str,
        inputs: &Inputs,
        ctx: &StageContext,
    ) -> Result<(), StageError> {
        self.run_chunk(shard, inputs, ctx)
    }
    fn canonical_params(&self) -> serde_json::Value {
        let stages: Vec<serde_json::Value> = self
            .reruns
            .iter()
            .map(|r| {
                let feeds: BTreeMap<&String, String> = r.feeds.iter().map(|(p, f)| (p, match f {
                    Feed::Outside(input) => input.clone(),
                    Feed::Inside(k, o) => format!("{}.{o}", self.reruns[*k].name),
                })).collect();
                serde_json::json!({"name": r.name, "kind": r.entry.kind(), "version": r.entry.version(), "params": r.canonical, "inputs": feeds})
            })
            .collect();
        serde_json::json!({"sweep": self.params, "reruns": stages})
    }
    fn ports(&self) -> Vec<crate::engine::stage::Port> {
        Vec::new()
    }
    fn outputs(&self) -> Vec<OutputDecl> {
        self.params.outputs()
    }
    fn sources(&self) -> Vec<Source> {
        self.study_sources.clone()
    }
    fn run(&self, inputs: &Inputs, ctx: &StageContext) -> Result<Outputs, StageError> {
        let samples = self.sample();
        let warnings = std::sync::Mutex::new(BTreeSet::new());
        let draws = self.all_draws(&samples, inputs, ctx, &warnings)?;
        for w in warnings
            .into_inner()
            .expect("warning set lock is never poisoned")
        {
            ctx.warn(w);
        }
        let parameters: Vec<&str> = self.params.vary.keys().map(String::as_str).collect();
        let mut out = vec![output_tables::draws_table(&parameters, &samples)?];
        let mut sensitivity = output_tables::Sensitivity::default();
        for (c, (name, _)) in self.collected.iter().enumerate() {
            let tables: Vec<&RecordBatch> = draws.iter().map(|d| &d[c]).collect();
            let values = draw_values(name, &self.collected[c].1.column, &tables)?;
            let per_draw: Vec<&DrawValues> = values.iter().collect();
            out.push(output_tables::per_draw_table(name, &per_draw)?);
            let summary = output_tables::summary_table(name, &per_draw)?;
            let (label, aggregate) = (summary.label, &summary.aggregate);
            sensitivity.add(name, label, aggregate, &samples, self.params.vary.keys());
            out.push(summary.table);
        }
        out.push(sensitivity.table()?);
        Ok(out)
    }
}

/// A sampled value: as the parameter takes it, and as a number for ranking.
type Sample = (serde_json::Value, f64);

impl PreparedSweep {
    fn sample(&self) -> Vec<Vec<Sample>> {
        let u = unit_samples(
            self.params.sampling,
            self.params.seed,
            self.params.draws,
            self.varied.len(),
        );
        u.iter()
            .map(|row| {
                row.iter()
                    .zip(&self.varied)
                    .map(|(u, v)| v.distribution.at(*u))
                    .collect()
            })
            .collect()
    }

    /// Re-runs the stages for the draws of `range` on the worker pool; per draw, each collected
    /// output narrowed to its key candidates and column. A draw depends only on its index and
    /// `samples`, so any split of the draws into ranges gives the same values.
    fn evaluate_range(
        &self,
        range: std::ops::Range<usize>,
        samples: &[Vec<Sample>],
        inputs: &Inputs,
        ctx: &StageContext,
        warnings: &std::sync::Mutex<BTreeSet<String>>,
    ) -> Result<Vec<Vec<RecordBatch>>, StageError> {
        let stores = self.reuse_stores();
        range
            .into_par_iter()
            .map(|d| self.evaluate(d, &samples[d], inputs, ctx, &stores, warnings))
            .collect()
    }

    /// Per re-run stage, the store its draws share values in: the ports it reads from the rest
    /// of the study hold the same table in every draw, and only the outputs that later re-run
    /// stages or the collected names read are read.
    fn reuse_stores(&self) -> Vec<Arc<ReuseStore>> {
        self.reruns
            .iter()
            .enumerate()
            .map(|(k, r)| {
                let fixed = r.feeds.iter().filter_map(|(port, feed)| match feed {
                    Feed::Outside(_) => Some(port.clone()),
                    Feed::Inside(..) => None,
                });
                let fed = self.reruns.iter().flat_map(|later| {
                    later.feeds.values().filter_map(move |feed| match feed {
                        Feed::Inside(up, output) if *up == k => Some(output.clone()),
                        _ => None,
                    })
                });
                let collected = self
                    .collected
                    .iter()
                    .filter(|(_, c)| c.stage == k)
                    .map(|(_, c)| c.output.clone());
                Arc::new(ReuseStore::new(fixed).reading_only(fed.chain(collected)))
            })
            .collect()
    }

    /// Re-runs the stages for draw `d` and returns each collected output, narrowed.
    fn evaluate(
        &self,
        d: usize,
        sample: &[Sample],
        inputs: &Inputs,
        ctx: &StageContext,
        stores: &[Arc<ReuseStore>],
        warnings: &std::sync::Mutex<BTreeSet<String>>,
    ) -> Result<Vec<RecordBatch>, StageError> {
        if ctx.is_cancelled() {
            return Err(StageError::failed("the sweep was cancelled"));
        }
        let in_draw = |stage: &str, e: StageError| StageError {
            message: format!("draw {d}: stage `{stage}`: {}", e.message),
            ..e
        };
        let mut produced: Vec<Outputs> = Vec::with_capacity(self.reruns.len());
        for (k, r) in self.reruns.iter().enumerate() {
            let owned;
            let prepared: &dyn PreparedStage = if let Some(p) = &r.fixed {
                p.as_ref()
            } else {
                let mut params = r.params.clone();
                for (v, (value, _)) in self.varied.iter().zip(sample).filter(|(v, _)| v.stage == k)
                {
                    set_path(&mut params, &v.path, value.clone()).map_err(StageError::internal)?;
                }
                owned = r.entry.prepare(params).map_err(|e| in_draw(&r.name, e))?;
                owned.as_ref()
            };
            let mut tables = BTreeMap::new();
            for (port, feed) in &r.feeds {
                let table = match feed {
                    Feed::Outside(input) => inputs.table(input)?.clone(),
                    Feed::Inside(up, output) => find(&produced[*up], output)?.clone(),
                };
                tables.insert(port.clone(), table);
            }
            let mut sources = BTreeMap::new();
            for s in &r.sources {
                sources.insert(
                    s.name.clone(),
                    ctx.source(&format!("{}.{}", r.name, s.name))?.to_path_buf(),
                );
            }
            let sub = StageContext::new(&r.name, ctx.study_dir(), sources)
                .with_reuse(Arc::clone(&stores[k]));
            let outputs = prepared
                .run(&Inputs::new(tables), &sub)
                .map_err(|e| in_draw(&r.name, e))?;
            let mut seen = warnings.lock().expect("warning set lock is never poisoned");
            seen.extend(
                sub.take_warnings()
                    .into_iter()
                    .map(|w| format!("stage `{}` in the draws: {w}", r.name)),
            );
            drop(seen);
            produced.push(outputs);
        }
        self.collected
            .iter()
            .map(|(name, c)| {
                let table = find(&produced[c.stage], &c.output)?;
                narrowed(name, table, &c.column).map_err(|e| in_draw(&self.reruns[c.stage].name, e))
            })
            .collect()
    }
}

fn find<'o>(outputs: &'o Outputs, name: &str) -> Result<&'o RecordBatch, StageError> {
    outputs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t)
        .ok_or_else(|| StageError::internal(format!("a re-run stage did not produce `{name}`")))
}

fn is_number(t: &DataType) -> bool {
    t.is_floating() || t.is_integer()
}

fn is_key(t: &DataType) -> bool {
    t.is_integer() || matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Boolean)
}

/// The columns a key may come from: the leading text, integer or boolean columns, the
/// collected column aside.
fn key_candidates(table: &RecordBatch, column: &str) -> Vec<usize> {
    table
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name() != column)
        .take_while(|(_, f)| is_key(f.data_type()))
        .map(|(i, _)| i)
        .collect()
}

/// One draw's collected output narrowed to the key candidates and the collected column, so a
/// draw keeps only what the summaries read.
fn narrowed(name: &str, table: &RecordBatch, column: &str) -> Result<RecordBatch, StageError> {
    let schema = table.schema();
    let Ok(at) = schema.index_of(column) else {
        let present: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        return Err(StageError::column_missing(name, column, &present));
    };
    let mut keep = key_candidates(table, column);
    keep.push(at);
    table
        .project(&keep)
        .map_err(|e| StageError::internal("narrowing a collected table").caused_by(e))
}

/// The collected column of one draw and its key columns: the shortest run of leading text,
/// integer or boolean columns (the collected column aside) that tells the rows apart.
fn column_values(name: &str, table: &RecordBatch, column: &str) -> Result<DrawValues, StageError> {
    let schema = table.schema();
    let Some(array) = table.column_by_name(column) else {
        let present: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        return Err(StageError::column_missing(name, column, &present));
    };
    let candidates = key_candidates(table, column);
    let mut rows: Vec<String> = vec![String::new(); table.num_rows()];
    let mut width = 0;
    let unique = |rows: &[String]| rows.iter().collect::<BTreeSet<_>>().len() == rows.len();
    while !unique(&rows) && width < candidates.len() {
        let keys = text_of(table.column(candidates[width]))?;
        for (row, k) in rows.iter_mut().zip(keys) {
            row.push('\u{1f}');
            row.push_str(k.as_deref().unwrap_or("\u{0}"));
        }
        width += 1;
    }
    if !unique(&rows) {
        return Err(StageError::data(format!("collect `{name}`: the rows of `{column}` have no key (leading text or integer columns that tell them apart)"))
            .with_hint("collect a column of an output with one row per unit, year or other key"));
    }
    Ok(DrawValues {
        keys: candidates[..width]
            .iter()
            .map(|&i| table.column(i).clone())
            .collect(),
        key_names: candidates[..width]
            .iter()
            .map(|&i| schema.field(i).name().clone())
            .collect(),
        values: values_of(array)?,
    })
}

fn values_of(array: &ArrayRef) -> Result<Values, StageError> {
    Ok(if is_number(array.data_type()) {
        Values::Number(numbers_of(array)?)
    } else {
        Values::Text(text_of(array)?)
    })
}

/// Every draw's values of one collected name. Draw 0 finds the key columns; every other draw
/// must have the same keys in the same order (stages sort their rows), which also makes them
/// unique without testing each draw again.
fn draw_values(
    name: &str,
    column: &str,
    tables: &[&RecordBatch],
) -> Result<Vec<DrawValues>, StageError> {
    let first = column_values(name, tables[0], column).map_err(|e| StageError {
        message: format!("draw 0: {}", e.message),
        ..e
    })?;
    let mut out = Vec::with_capacity(tables.len());
    for (d, table) in tables.iter().enumerate().skip(1) {
        let same = table.num_rows() == tables[0].num_rows()
            && first.key_names.iter().zip(&first.keys).all(|(n, k)| {
                table
                    .column_by_name(n)
                    .is_some_and(|other| other.as_ref() == k.as_ref())
            });
        if !same {
            return Err(StageError::data(format!(
                "collect `{name}`: draw {d} has other rows than draw 0 ({name} keyed by {})",
                first.key_names.join(", ")
            ))
            .with_hint("collect an output whose rows do not depend on the varied parameters"));
        }
        let array = table
            .column_by_name(column)
            .expect("narrowed tables keep the collected column");
        out.push(DrawValues {
            keys: first.keys.clone(),
            key_names: first.key_names.clone(),
            values: values_of(array)?,
        });
    }
    out.insert(0, first);
    Ok(out)
}

fn numbers_of(a: &ArrayRef) -> Result<Vec<Option<f64>>, StageError> {
    macro_rules! each {
        ($t:ty) => {
            a.as_primitive::<$t>()
                .iter()
                .map(|v| v.map(|x| x as f64))
                .collect()
        };
    }
    Ok(match a.data_type() {
        DataType::Float64 => a.as_primitive::<Float64Type>().iter().collect(),
        DataType::Float32 => each!(Float32Type),
        DataType::Int8 => each!(Int8Type),
        DataType::Int16 => each!(Int16Type),
        DataType::Int32 => each!(Int32Type),
        DataType::Int64 => each!(Int64Type),
        DataType::UInt8 => each!(UInt8Type),
        DataType::UInt16 => each!(UInt16Type),
        DataType::UInt32 => each!(UInt32Type),
        DataType::UInt64 => each!(UInt64Type),
        other => {
            return Err(StageError::data(format!(
                "a column of type {other} is not a number"
            )));
        }
    })
}

fn text_of(a: &ArrayRef) -> Result<Vec<Option<String>>, StageError> {
    if is_number(a.data_type()) {
        return Ok(numbers_of(a)?
            .into_iter()
            .map(|v| v.map(|x| x.to_string()))
            .collect());
    }
    Ok(match a.data_type() {
        DataType::Utf8 => a
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect(),
        DataType::LargeUtf8 => a
            .as_string::<i64>()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect(),
        DataType::Boolean => a
            .as_boolean()
            .iter()
            .map(|v| v.map(|b| b.to_string()))
            .collect(),
        other => {
            return Err(
                StageError::data(format!("a column of type {other} cannot be collected"))
                    .with_hint("collect a text, number or boolean column"),
            );
        }
    })
}
