//! From a parsed study to a [`Plan`]: kinds resolved, parameters typed, ports wired to upstream
//! outputs, source files resolved, the DAG checked for cycles and put in order, and declared
//! columns checked against what upstream stages declare. Nothing runs here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::engine::error::{Diagnostic, SourceSpan};
use crate::engine::key::Digest;
use crate::engine::spec::{SourceText, SpecFile, StageSpec};
use crate::engine::stage::{OutputDecl, Port, PreparedStage, StageEntry, StageError};
use crate::engine::suggest::did_you_mean;

/// Formats a stage's outputs can be published in.
pub const PUBLISH_FORMATS: &[&str] = &["parquet", "csv", "files"];

/// Where a port's table comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wire {
    pub stage: usize,
    pub output: String,
}

/// One stage, ready to run.
pub struct PlannedStage {
    pub name: String,
    pub line: usize,
    pub kind: &'static str,
    pub version: u32,
    pub prepared: Box<dyn PreparedStage>,
    pub inputs: BTreeMap<String, Wire>,
    /// Declared source files: name → absolute path.
    pub sources: BTreeMap<String, PathBuf>,
    /// The names of sources that may be absent.
    pub optional_sources: BTreeSet<String>,
    pub outputs: Vec<OutputDecl>,
    pub publish: Vec<String>,
    /// Upstream stages (indices into [`Plan::stages`]), sorted.
    pub deps: Vec<usize>,
}

impl std::fmt::Debug for PlannedStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlannedStage")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("inputs", &self.inputs)
            .finish_non_exhaustive()
    }
}

/// A study ready to run: stages in a topological order (ties by name).
#[derive(Debug)]
pub struct Plan {
    pub spec: SpecFile,
    /// The study file's directory, absolute.
    pub study_dir: PathBuf,
    /// Identifies the study (its absolute path) in the cache's history and run records.
    pub study_id: Digest,
    pub outputs_dir: Option<PathBuf>,
    pub stages: Vec<PlannedStage>,
}

impl Plan {
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }

    /// `name` or `name.output` → (stage, output).
    pub fn resolve_target(&self, target: &str) -> Result<(usize, String), Diagnostic> {
        let (stage, output) = match target.split_once('.') {
            Some((s, o)) => (s, Some(o)),
            None => (target, None),
        };
        let idx = self.index_of(stage).ok_or_else(|| {
            let names: Vec<&str> = self.stages.iter().map(|s| s.name.as_str()).collect();
            let d = Diagnostic::user(format!("no stage `{stage}` in study `{}`", self.spec.study));
            match did_you_mean(stage, names.iter().copied()) {
                Some(s) => d.with_hint(format!("did you mean `{s}`?")),
                None => d.with_hint(format!("the stages are: {}", names.join(", "))),
            }
        })?;
        let outputs = &self.stages[idx].outputs;
        let output = match output {
            None => outputs.first().map(|o| o.name.clone()).unwrap_or_default(),
            Some(o) if outputs.iter().any(|d| d.name == o) => o.to_owned(),
            Some(o) => {
                let names: Vec<&str> = outputs.iter().map(|d| d.name.as_str()).collect();
                return Err(
                    Diagnostic::user(format!("stage `{stage}` has no output `{o}`"))
                        .with_hint(format!("its outputs are: {}", names.join(", "))),
                );
            }
        };
        Ok((idx, output))
    }

    /// The stages `targets` need (themselves and everything upstream), as a mask.
    pub fn upstream_closure(&self, targets: &[usize]) -> Vec<bool> {
        let mut needed = vec![false; self.stages.len()];
        let mut stack: Vec<usize> = targets.to_vec();
        while let Some(i) = stack.pop() {
            if !needed[i] {
                needed[i] = true;
                stack.extend(&self.stages[i].deps);
            }
        }
        needed
    }
}

/// Options that change what a study may do.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// Allow source paths outside the study file's directory tree.
    pub allow_outside: bool,
}

struct Draft<'s> {
    spec: &'s StageSpec,
    entry: &'static dyn StageEntry,
    prepared: Box<dyn PreparedStage>,
    outputs: Vec<OutputDecl>,
}

/// Where the study lives: its directory as written (normalised) and with links resolved.
struct StudyDirs {
    dir: PathBuf,
    real: PathBuf,
}

/// A stage's resolved source files and the names of those that may be absent.
type StageSources = (BTreeMap<String, PathBuf>, BTreeSet<String>);

/// Builds the plan.
pub fn build(
    spec: SpecFile,
    registry: &[&'static dyn StageEntry],
    options: PlanOptions,
) -> Result<Plan, Diagnostic> {
    let src = &spec.source;
    let study_dir = normalise(&spec.dir());
    let dirs = StudyDirs {
        real: study_dir
            .canonicalize()
            .unwrap_or_else(|_| study_dir.clone()),
        dir: study_dir,
    };
    let study_id = Digest::of(absolute(&spec.source.path).to_string_lossy().as_bytes());

    let mut drafts = spec
        .stages
        .iter()
        .map(|stage| draft_stage(stage, registry, src, &dirs.dir))
        .collect::<Result<Vec<_>, _>>()?;
    let mut wires = wire_stages(&drafts, src)?;
    attach_sweeps(&mut drafts, &mut wires, src)?;
    let order = order_stages(&drafts, &wires, src)?;
    check_declared_columns(&drafts, &wires, src)?;
    let mut sources = Vec::with_capacity(drafts.len());
    for d in &drafts {
        sources.push(resolve_sources(d, &dirs, options, src)?);
        check_publish_formats(d, src)?;
    }
    if drafts.iter().any(|d| !d.spec.publish.is_empty()) && spec.outputs.is_none() {
        return Err(Diagnostic::user(
            "stages publish outputs but the study has no `outputs:` folder",
        )
        .at(
            src,
            Some(SourceSpan {
                line: 1,
                column: 1,
                len: 1,
            }),
        )
        .with_hint("add `outputs: out/<study>` at the top level"));
    }
    let stages = assemble(drafts, &wires, sources, &order);
    let outputs_dir = match &spec.outputs {
        Some(o) => Some(outputs_folder(src, o, &dirs.dir, &dirs.real, options)?),
        None => None,
    };
    Ok(Plan {
        spec,
        study_dir: dirs.dir,
        study_id,
        outputs_dir,
        stages,
    })
}

/// Step 1: the stage's kind looked up in the registry and its parameters typed.
fn draft_stage<'s>(
    stage: &'s StageSpec,
    registry: &[&'static dyn StageEntry],
    src: &SourceText,
    study_dir: &Path,
) -> Result<Draft<'s>, Diagnostic> {
    let Some(entry) = registry.iter().copied().find(|e| e.kind() == stage.kind) else {
        return Err(unknown_kind(stage, registry, src));
    };
    let prepared = entry
        .prepare(stage.params.clone())
        .map_err(|e| prepare_error(entry, stage, src, study_dir, &e))?;
    let outputs = prepared.outputs();
    Ok(Draft {
        spec: stage,
        entry,
        prepared,
        outputs,
    })
}

/// A kind the registry does not hold, with the nearest one or the list of all.
fn unknown_kind(
    stage: &StageSpec,
    registry: &[&'static dyn StageEntry],
    src: &SourceText,
) -> Diagnostic {
    let kinds: Vec<&str> = registry.iter().map(|e| e.kind()).collect();
    let hint = match did_you_mean(&stage.kind, kinds.iter().copied()) {
        Some(k) => format!("did you mean `{k}`? (`pipeline stages` lists every kind)"),
        None => format!(
            "the kinds are: {} (`pipeline stages` documents them)",
            kinds.join(", ")
        ),
    };
    Diagnostic::user(format!(
        "stage `{}`: unknown kind `{}`",
        stage.name, stage.kind
    ))
    .at(
        src,
        src.find_key(stage.line, "kind")
            .and_then(|k| src.find_text(k.line, &stage.kind))
            .or_else(|| src.find_key(stage.line, "kind")),
    )
    .with_hint(hint)
}

/// Parameters the kind refused: the offending parameter pointed at, or the field serde names.
fn prepare_error(
    entry: &dyn StageEntry,
    stage: &StageSpec,
    src: &SourceText,
    study_dir: &Path,
    e: &StageError,
) -> Diagnostic {
    if let Some(d) = param_error(entry, stage, src, study_dir, e) {
        return d;
    }
    let unknown = field_named(&e.message, "unknown field `");
    let span = unknown
        .or_else(|| field_named(&e.message, "field `"))
        .and_then(|field| src.find_key(stage.line, field))
        .or_else(|| src.find_key(stage.line, &stage.name));
    let mut d = Diagnostic::user(format!("stage `{}`: {}", stage.name, e.message)).at(src, span);
    d.causes = e.causes.clone();
    d.hint = e.hint.clone();
    let params = entry.params_doc().iter().map(|p| p.name);
    if let Some(suggestion) = unknown.and_then(|u| did_you_mean(u, params)) {
        d.hint = Some(format!("did you mean `{suggestion}`?"));
    }
    d
}

/// Step 2: every stage's ports wired to upstream outputs, in the study's order.
fn wire_stages(
    drafts: &[Draft<'_>],
    src: &SourceText,
) -> Result<Vec<BTreeMap<String, Wire>>, Diagnostic> {
    let names: Vec<&str> = drafts.iter().map(|d| d.spec.name.as_str()).collect();
    let mut wires = Vec::with_capacity(drafts.len());
    for d in drafts {
        let ports = d.prepared.ports();
        let mut wired = BTreeMap::new();
        for (port, target) in &d.spec.inputs {
            if !ports.iter().any(|p| p.name == port) {
                return Err(unknown_port(d, &ports, port, src));
            }
            let wire = wire_port(d, drafts, &names, port, target, src)?;
            wired.insert(port.clone(), wire);
        }
        if let Some(p) = ports
            .iter()
            .find(|p| p.required && !wired.contains_key(p.name))
        {
            return Err(Diagnostic::user(format!(
                "stage `{}`: required input `{}` is not wired",
                d.spec.name, p.name
            ))
            .at(
                src,
                src.find_key(d.spec.line, "inputs")
                    .or_else(|| src.find_key(d.spec.line, &d.spec.name)),
            )
            .with_hint(format!(
                "add `inputs: {{ {}: <stage> }}` ({})",
                p.name, p.doc
            )));
        }
        wires.push(wired);
    }
    Ok(wires)
}

/// An input naming a port the kind does not have.
fn unknown_port(d: &Draft<'_>, ports: &[Port], port: &str, src: &SourceText) -> Diagnostic {
    let port_names: Vec<&str> = ports.iter().map(|p| p.name).collect();
    let hint = match did_you_mean(port, port_names.iter().copied()) {
        Some(p) => format!("did you mean `{p}`?"),
        None if port_names.is_empty() => {
            format!("kind `{}` takes no inputs", d.entry.kind())
        }
        None => format!(
            "kind `{}` has ports: {}",
            d.entry.kind(),
            port_names.join(", ")
        ),
    };
    Diagnostic::user(format!(
        "stage `{}`: kind `{}` has no input port `{port}`",
        d.spec.name,
        d.entry.kind()
    ))
    .at(src, src.find_key(d.spec.line, port))
    .with_hint(hint)
}

/// One input (`port: stage` or `port: stage.output`) resolved to an upstream output.
fn wire_port(
    d: &Draft<'_>,
    drafts: &[Draft<'_>],
    names: &[&str],
    port: &str,
    target: &str,
    src: &SourceText,
) -> Result<Wire, Diagnostic> {
    let span = src.find_key(d.spec.line, port);
    let (up_name, output) = match target.split_once('.') {
        Some((s, o)) => (s, Some(o)),
        None => (target, None),
    };
    let Some(up) = names.iter().position(|n| *n == up_name) else {
        let hint = match did_you_mean(up_name, names.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("the stages are: {}", names.join(", ")),
        };
        return Err(Diagnostic::user(format!(
            "stage `{}`: input `{port}` names stage `{up_name}`, which does not exist",
            d.spec.name
        ))
        .at(src, src.find_text(d.spec.line, target).or(span))
        .with_hint(hint));
    };
    let up_outputs = &drafts[up].outputs;
    let output = match output {
        None => match up_outputs.first() {
            Some(o) => o.name.clone(),
            None => {
                return Err(Diagnostic::user(format!(
                    "stage `{up_name}` has no outputs to wire to `{}`",
                    d.spec.name
                ))
                .at(src, span));
            }
        },
        Some(o) if up_outputs.iter().any(|x| x.name == o) => o.to_owned(),
        Some(o) => {
            let outs: Vec<&str> = up_outputs.iter().map(|x| x.name.as_str()).collect();
            let hint = match did_you_mean(o, outs.iter().copied()) {
                Some(s) => format!("did you mean `{up_name}.{s}`?"),
                None => format!("`{up_name}` has outputs: {}", outs.join(", ")),
            };
            return Err(Diagnostic::user(format!(
                "stage `{}`: stage `{up_name}` has no output `{o}`",
                d.spec.name
            ))
            .at(src, src.find_text(d.spec.line, target).or(span))
            .with_hint(hint));
        }
    };
    Ok(Wire { stage: up, output })
}

/// Step 2b: a sweep re-runs other stages in memory, so it is wired to the outputs they read.
fn attach_sweeps(
    drafts: &mut [Draft<'_>],
    wires: &mut [BTreeMap<String, Wire>],
    src: &SourceText,
) -> Result<(), Diagnostic> {
    for i in 0..drafts.len() {
        if drafts[i].entry.kind() != crate::engine::sweep::KIND {
            continue;
        }
        let views: Vec<crate::engine::sweep::StageView<'_>> = drafts
            .iter()
            .zip(wires.iter())
            .map(|(d, w)| crate::engine::sweep::StageView {
                name: &d.spec.name,
                line: d.spec.line,
                entry: d.entry,
                params: &d.spec.params,
                prepared: d.prepared.as_ref(),
                wires: w,
                outputs: &d.outputs,
            })
            .collect();
        let attached = crate::engine::sweep::attach(i, &views, src)?;
        drafts[i].prepared = attached.prepared;
        wires[i] = attached.wires;
    }
    Ok(())
}

/// Step 3: no cycles, then a topological order (ties by name).
fn order_stages(
    drafts: &[Draft<'_>],
    wires: &[BTreeMap<String, Wire>],
    src: &SourceText,
) -> Result<Vec<usize>, Diagnostic> {
    let names: Vec<&str> = drafts.iter().map(|d| d.spec.name.as_str()).collect();
    let mut graph: DiGraph<usize, ()> = DiGraph::new();
    let nodes: Vec<NodeIndex> = (0..drafts.len()).map(|i| graph.add_node(i)).collect();
    for (i, w) in wires.iter().enumerate() {
        let ups: BTreeSet<usize> = w.values().map(|x| x.stage).collect();
        for up in ups {
            graph.add_edge(nodes[up], nodes[i], ());
        }
    }
    if let Some(cycle) = find_cycle(&graph) {
        let mut path: Vec<&str> = cycle.iter().map(|&i| names[i]).collect();
        path.push(names[cycle[0]]);
        let first = &drafts[cycle[0]];
        return Err(Diagnostic::user(format!("the stages form a cycle: {}", path.join(" → ")))
            .at(src, src.find_key(first.spec.line, "inputs"))
            .with_hint("a stage cannot depend on its own output, directly or through others: remove one of these inputs"));
    }
    Ok(topological_order(wires, drafts.len(), &names))
}

/// Step 4: every column a port needs is declared by the output wired to it (when that output
/// declares its columns completely).
fn check_declared_columns(
    drafts: &[Draft<'_>],
    wires: &[BTreeMap<String, Wire>],
    src: &SourceText,
) -> Result<(), Diagnostic> {
    for (i, d) in drafts.iter().enumerate() {
        for port in d.prepared.ports() {
            let Some(wire) = wires[i].get(port.name) else {
                continue;
            };
            let upstream = &drafts[wire.stage];
            let declared = upstream
                .outputs
                .iter()
                .find(|o| o.name == wire.output)
                .expect("wired output exists");
            if !declared.complete {
                continue;
            }
            let declared = &declared.columns;
            if let Some(missing) = port.columns.iter().find(|c| !declared.contains(c)) {
                let up_name = &upstream.spec.name;
                return Err(Diagnostic::user(format!(
                    "stage `{}`: input `{}` needs column `{missing}`, which `{}.{}` does not produce",
                    d.spec.name, port.name, up_name, wire.output
                ))
                .at(src, src.find_key(d.spec.line, port.name))
                .with_hint(format!("`{}.{}` has: {}", up_name, wire.output, declared.join(", "))));
            }
        }
    }
    Ok(())
}

/// Step 5: a stage's source files, patterns expanded, each resolved inside the study's
/// directory (unless `--allow-outside`) and required to be a file unless optional.
fn resolve_sources(
    d: &Draft<'_>,
    dirs: &StudyDirs,
    options: PlanOptions,
    src: &SourceText,
) -> Result<StageSources, Diagnostic> {
    let mut sources = BTreeMap::new();
    let mut optional = BTreeSet::new();
    let declared = crate::engine::pattern::expand(&dirs.dir, d.prepared.sources())
        .map_err(|e| {
            Diagnostic::user(format!("stage `{}`: {e}", d.spec.name))
                .at(src, Some(SourceSpan { line: d.spec.line, column: 1, len: 1 }))
                .with_hint("patterns use `*` and `?` in the file name; paths are relative to the study file's directory")
        })?;
    for s in declared {
        let shown = s.path.to_string_lossy().into_owned();
        let span = src.find_text(d.spec.line, &shown);
        let resolved = normalise(&dirs.dir.join(&s.path));
        if !options.allow_outside && !resolved.starts_with(&dirs.dir) {
            return Err(Diagnostic::user(format!("stage `{}`: {} is outside the study's directory", d.spec.name, s.path.display()))
                .at(src, span)
                .with_hint("keep a study's data beside it so it can be shared and rerun, or pass --allow-outside"));
        }
        if s.optional && !resolved.exists() {
            // Keyed as absent; the stage sees a path that does not exist.
            optional.insert(s.name.clone());
            sources.insert(s.name, resolved);
            continue;
        }
        if s.optional {
            optional.insert(s.name.clone());
        }
        let real = resolved.canonicalize().map_err(|e| {
            Diagnostic::user(format!(
                "stage `{}`: input file {} not found",
                d.spec.name,
                resolved.display()
            ))
            .caused_by(e)
            .at(src, span)
            .with_hint("paths in a study are relative to the study file's directory")
        })?;
        if real.is_dir() {
            return Err(Diagnostic::user(format!(
                "stage `{}`: {} is a directory, not a file",
                d.spec.name,
                s.path.display()
            ))
            .at(src, span)
            .with_hint("name the file inside it that the stage should read"));
        }
        if !options.allow_outside && !real.starts_with(&dirs.real) {
            return Err(Diagnostic::user(format!("stage `{}`: {} is outside the study's directory {}", d.spec.name, real.display(), dirs.real.display()))
                .at(src, span)
                .with_hint("keep a study's data beside it so it can be shared and rerun, or pass --allow-outside"));
        }
        sources.insert(s.name, real);
    }
    Ok((sources, optional))
}

/// Step 5b: every `publish:` format is one the engine knows.
fn check_publish_formats(d: &Draft<'_>, src: &SourceText) -> Result<(), Diagnostic> {
    for f in &d.spec.publish {
        if !PUBLISH_FORMATS.contains(&f.as_str()) {
            let hint = match did_you_mean(f, PUBLISH_FORMATS.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("formats: {}", PUBLISH_FORMATS.join(", ")),
            };
            return Err(Diagnostic::user(format!(
                "stage `{}`: unknown publish format `{f}`",
                d.spec.name
            ))
            .at(src, src.find_text(d.spec.line, f))
            .with_hint(hint));
        }
    }
    Ok(())
}

/// Step 6: the stages in `order`, their wires renumbered to positions in that order.
fn assemble(
    drafts: Vec<Draft<'_>>,
    wires: &[BTreeMap<String, Wire>],
    sources: Vec<StageSources>,
    order: &[usize],
) -> Vec<PlannedStage> {
    let mut position = vec![0; drafts.len()];
    for (pos, &i) in order.iter().enumerate() {
        position[i] = pos;
    }
    let mut placed: Vec<Option<(Draft<'_>, StageSources)>> =
        drafts.into_iter().zip(sources).map(Some).collect();
    let mut stages = Vec::with_capacity(order.len());
    for &i in order {
        let (d, (sources, optional_sources)) = placed[i].take().expect("each stage is placed once");
        let inputs: BTreeMap<String, Wire> = wires[i]
            .iter()
            .map(|(p, w)| {
                (
                    p.clone(),
                    Wire {
                        stage: position[w.stage],
                        output: w.output.clone(),
                    },
                )
            })
            .collect();
        let mut deps: Vec<usize> = inputs.values().map(|w| w.stage).collect();
        deps.sort_unstable();
        deps.dedup();
        stages.push(PlannedStage {
            name: d.spec.name.clone(),
            line: d.spec.line,
            kind: d.entry.kind(),
            version: d.entry.version(),
            prepared: d.prepared,
            inputs,
            sources,
            optional_sources,
            outputs: d.outputs,
            publish: d.spec.publish.clone(),
            deps,
        });
    }
    stages
}

/// A parameter whose value the kind refuses (`permutations: many`, `seed: [1, 2]`, a
/// directory as `path:`), named with the caret on its value. The deserialiser's message names
/// neither the parameter nor, for type errors, anything but Rust types, so the parameter is
/// found by leaving each one out in turn: the culprit is the one whose absence changes the error.
fn param_error(
    entry: &dyn StageEntry,
    stage: &StageSpec,
    src: &SourceText,
    study_dir: &Path,
    e: &StageError,
) -> Option<Diagnostic> {
    let serde_json::Value::Object(params) = &stage.params else {
        return None;
    };
    let prefix = format!("invalid parameters for kind `{}`: ", stage.kind);
    let detail = e.message.strip_prefix(&prefix)?;
    if detail.contains("unknown field `") || detail.contains("missing field `") {
        return None;
    }
    let (name, value) = params.iter().find(|(name, _)| {
        let mut without = params.clone();
        without.remove(*name);
        entry
            .prepare(serde_json::Value::Object(without))
            .map_or_else(|other| other.message != e.message, |_| true)
    })?;
    let doc = entry.params_doc().iter().find(|p| p.name == name);
    let shown = match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let at = |d: Diagnostic| d.at(src, src.find_value(stage.line, name));
    if value.is_string() && study_dir.join(&shown).is_dir() {
        return Some(
            at(Diagnostic::user(format!(
                "stage `{}`: `{name}: {shown}` is a directory, not a file",
                stage.name
            )))
            .with_hint("name the file inside it that the stage should read"),
        );
    }
    // The deserialiser's own words for a wrong type name Rust types and enums.
    let jargon = ["invalid type", "invalid value", "invalid length", "variant"];
    if !jargon.iter().any(|j| detail.contains(j)) {
        let mut d = at(Diagnostic::user(format!(
            "stage `{}`: parameter `{name}`: {detail}",
            stage.name
        )));
        d.causes.clone_from(&e.causes);
        return Some(d);
    }
    let expected = match doc.map(|p| p.ty) {
        Some("bool") => "true or false".to_owned(),
        Some(ty) => ty.replace(" | ", " or "),
        None => "a different value".to_owned(),
    };
    let mut d = at(Diagnostic::user(format!(
        "stage `{}`: parameter `{name}` must be {expected}, not `{shown}`",
        stage.name
    )));
    d.hint = Some(match doc {
        Some(p) if p.ty.starts_with("list") && value.is_string() => {
            format!("write a list: `{name}: [{shown}]`")
        }
        Some(p) => format!(
            "`{name}`: {} (default: {}; see `pipeline stages`)",
            p.doc, p.default
        ),
        None => format!("see `pipeline stages` for kind `{}`", stage.kind),
    });
    Some(d)
}

/// The `outputs:` folder, resolved. Like source paths it must stay inside the study's directory
/// (symbolic links resolved) unless `--allow-outside`, and it must be, or be creatable as, a
/// folder: both are checked here so no stage runs for a study that cannot publish.
fn outputs_folder(
    src: &SourceText,
    outputs: &str,
    study_dir: &Path,
    study_dir_real: &Path,
    options: PlanOptions,
) -> Result<PathBuf, Diagnostic> {
    let span = src
        .text
        .lines()
        .position(|l| l.starts_with("outputs:"))
        .and_then(|i| src.find_text(i + 1, outputs));
    let resolved = normalise(&study_dir.join(outputs));
    // The nearest part of the path that exists decides where it really is and what it is.
    let mut existing = resolved.as_path();
    while !existing.exists()
        && let Some(parent) = existing.parent()
    {
        existing = parent;
    }
    let real = existing
        .canonicalize()
        .unwrap_or_else(|_| existing.to_path_buf());
    if !options.allow_outside
        && (!resolved.starts_with(study_dir) || !real.starts_with(study_dir_real))
    {
        return Err(Diagnostic::user(format!(
            "`outputs: {outputs}` is outside the study's directory {}",
            study_dir_real.display()
        ))
        .at(src, span)
        .with_hint("publish inside the study's folder (e.g. `outputs: out`) so a run never overwrites files elsewhere, or pass --allow-outside"));
    }
    if !real.is_dir() {
        return Err(Diagnostic::user(format!(
            "`outputs: {outputs}`: {} is a file, not a folder",
            existing.display()
        ))
        .at(src, span)
        .with_hint(
            "name a folder for the published outputs (e.g. `outputs: out`), or move that file away",
        ));
    }
    Ok(resolved)
}

/// The name after `prefix` up to the closing backtick (serde names fields that way).
fn field_named<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let start = message.find(prefix)? + prefix.len();
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// Kahn's algorithm, taking ready stages by name so the order never depends on hashing.
fn topological_order(wires: &[BTreeMap<String, Wire>], n: usize, names: &[&str]) -> Vec<usize> {
    let mut indegree = vec![0usize; n];
    let mut dependants: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for (i, w) in wires.iter().enumerate() {
        let ups: BTreeSet<usize> = w.values().map(|x| x.stage).collect();
        indegree[i] = ups.len();
        for up in ups {
            dependants[up].insert(i);
        }
    }
    let mut ready: BTreeSet<(&str, usize)> = (0..n)
        .filter(|&i| indegree[i] == 0)
        .map(|i| (names[i], i))
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some(first) = ready.pop_first() {
        order.push(first.1);
        for &d in &dependants[first.1] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.insert((names[d], d));
            }
        }
    }
    order
}

/// A cycle as a list of stage indices in dependency order, if there is one.
fn find_cycle(graph: &DiGraph<usize, ()>) -> Option<Vec<usize>> {
    let mut sccs = kosaraju_scc(graph);
    sccs.sort_by_key(|c| c.iter().map(|n| graph[*n]).min());
    for scc in sccs {
        let self_loop = scc.len() == 1 && graph.contains_edge(scc[0], scc[0]);
        if scc.len() < 2 && !self_loop {
            continue;
        }
        // Walk inside the component from its smallest member until we return to it.
        let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
        let start = *members
            .iter()
            .min_by_key(|n| graph[**n])
            .expect("component is not empty");
        let mut path = vec![start];
        let mut seen = BTreeSet::from([start]);
        let mut current = start;
        loop {
            let mut next: Vec<NodeIndex> = graph
                .neighbors(current)
                .filter(|n| members.contains(n))
                .collect();
            next.sort_by_key(|n| graph[*n]);
            if next.contains(&start) {
                break;
            }
            let Some(&step) = next.iter().find(|n| !seen.contains(n)) else {
                break;
            };
            path.push(step);
            seen.insert(step);
            current = step;
        }
        return Some(path.into_iter().map(|n| graph[n]).collect());
    }
    None
}

/// An absolute path without `.` and `..` components (no symlinks resolved).
pub fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in absolute(path).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map_or_else(|_| path.to_path_buf(), |d| d.join(path))
    }
}
