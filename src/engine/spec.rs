//! The study file as written: YAML → [`SpecFile`], keeping where every stage sits in the text so
//! later errors can point at the line. Validation beyond the shape of the file is the plan's job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::engine::error::{Diagnostic, SourceSpan};
use crate::engine::executor::Resources;

/// Keys of a stage mapping that belong to the engine; every other key is a stage parameter.
pub const ENGINE_KEYS: &[&str] = &["kind", "inputs", "publish", "description", "resources"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    study: Spanned<String>,
    #[serde(default)]
    outputs: Option<Spanned<String>>,
    #[serde(default)]
    description: Option<String>,
    stages: BTreeMap<String, Spanned<serde_json::Value>>,
}

/// The study file's text and path, for error snippets.
#[derive(Debug, Clone)]
pub struct SourceText {
    pub path: PathBuf,
    pub text: String,
}

impl SourceText {
    /// The span of the first `key:` at or after `from_line` (1-based), on that stage's block.
    /// Used to point at parameters after the YAML has been read into plain values.
    pub fn find_key(&self, from_line: usize, key: &str) -> Option<SourceSpan> {
        for (i, line) in self
            .text
            .lines()
            .enumerate()
            .skip(from_line.saturating_sub(1))
        {
            let mut search = 0;
            while let Some(pos) = line[search..].find(key) {
                let col = search + pos;
                let before_ok = col == 0
                    || !line.as_bytes()[col - 1].is_ascii_alphanumeric()
                        && line.as_bytes()[col - 1] != b'_';
                let after = line[col + key.len()..].trim_start();
                if before_ok && after.starts_with(':') {
                    return Some(SourceSpan {
                        line: i + 1,
                        column: col + 1,
                        len: key.len(),
                    });
                }
                search = col + key.len();
            }
            // Stop at the next stage: a line indented no more than the stage name.
            if i + 1 > from_line && self.stage_boundary(line, from_line) {
                return None;
            }
        }
        None
    }

    /// The span of `value` as text at or after `from_line`.
    pub fn find_text(&self, from_line: usize, value: &str) -> Option<SourceSpan> {
        self.text
            .lines()
            .enumerate()
            .skip(from_line.saturating_sub(1))
            .find_map(|(i, line)| {
                line.find(value).map(|col| SourceSpan {
                    line: i + 1,
                    column: col + 1,
                    len: value.len(),
                })
            })
    }

    /// The span of the value written after the first `key:` at or after `from_line`: the rest
    /// of the line, or up to the `,` or `}` that ends it in a flow mapping. The key itself
    /// when the value starts on a later line (a block list, say).
    pub fn find_value(&self, from_line: usize, key: &str) -> Option<SourceSpan> {
        let key_span = self.find_key(from_line, key)?;
        let line = self.line(key_span.line)?;
        let after_key = key_span.column - 1 + key.len();
        let colon = after_key + line[after_key..].find(':')? + 1;
        let rest = &line[colon..];
        let start = colon + (rest.len() - rest.trim_start().len());
        let mut depth = 0i32;
        let mut quote = None;
        let mut end = line.len();
        for (i, c) in line[start..].char_indices() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '[' | '{') => depth += 1,
                (None, ']' | '}') if depth > 0 => depth -= 1,
                (None, ',' | '}') if depth == 0 => {
                    end = start + i;
                    break;
                }
                (None, '#') if line[..start + i].ends_with(' ') => {
                    end = start + i;
                    break;
                }
                _ => {}
            }
        }
        let value = line[start..end].trim_end();
        if value.is_empty() {
            return Some(key_span);
        }
        Some(SourceSpan {
            line: key_span.line,
            column: start + 1,
            len: value.chars().count(),
        })
    }

    fn stage_boundary(&self, line: &str, from_line: usize) -> bool {
        let indent = |l: &str| l.len() - l.trim_start().len();
        let Some(start) = self.text.lines().nth(from_line.saturating_sub(1)) else {
            return true;
        };
        !line.trim().is_empty()
            && !line.trim_start().starts_with('#')
            && indent(line) < indent(start)
    }

    /// The text of line `n` (1-based).
    pub fn line(&self, n: usize) -> Option<&str> {
        self.text.lines().nth(n.saturating_sub(1))
    }
}

/// One stage as written.
#[derive(Debug, Clone)]
pub struct StageSpec {
    pub name: String,
    /// Line where the stage's mapping starts (1-based).
    pub line: usize,
    pub kind: String,
    /// Port → `stage` or `stage.output`.
    pub inputs: BTreeMap<String, String>,
    pub publish: Vec<String>,
    /// What a batch job for this stage asks for (`resources: { cpus, mem, time }`); never
    /// part of a cache key.
    pub resources: Option<Resources>,
    /// Everything else: the kind's parameters.
    pub params: serde_json::Value,
}

/// The study file, parsed.
#[derive(Debug, Clone)]
pub struct SpecFile {
    pub source: SourceText,
    pub study: String,
    pub description: Option<String>,
    /// Where published outputs go, relative to the study file.
    pub outputs: Option<String>,
    pub stages: Vec<StageSpec>,
}

impl SpecFile {
    /// The directory the study's relative paths resolve against.
    pub fn dir(&self) -> PathBuf {
        let parent = self.source.path.parent().unwrap_or(Path::new("."));
        if parent.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            parent.to_path_buf()
        }
    }
}

fn spec_error(
    source: &SourceText,
    message: impl Into<String>,
    span: Option<SourceSpan>,
    hint: Option<String>,
) -> Diagnostic {
    let mut d = Diagnostic::user(message).at(source, span);
    d.hint = hint;
    d
}

/// Reads and parses a study file.
pub fn load(path: &Path) -> Result<SpecFile, Diagnostic> {
    let bytes = std::fs::read(path).map_err(|e| {
        let d = Diagnostic::user(format!("cannot read study file {}", path.display())).caused_by(e);
        if path.is_dir() {
            d.with_hint("this is a directory: name the study's YAML file inside it")
        } else {
            d.with_hint("check the path; study files are YAML")
        }
    })?;
    parse(path, utf8_text(path, bytes)?)
}

/// The text of a study file, which must be UTF-8 (a UTF-8 byte-order mark is dropped). Files
/// saved as UTF-16 (Windows' "Unicode") or in a legacy code page are named as such.
fn utf8_text(path: &Path, mut bytes: Vec<u8>) -> Result<String, Diagnostic> {
    const RESAVE: &str = "re-save the file as UTF-8 (in most editors: Save As, Encoding: UTF-8)";
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        bytes.drain(..3);
    }
    // A byte-order mark, or NUL bytes in the first line's ASCII (UTF-16 without a mark).
    let utf16 = bytes.starts_with(&[0xFF, 0xFE])
        || bytes.starts_with(&[0xFE, 0xFF])
        || bytes.iter().take(64).filter(|&&b| b == 0).count() >= 4;
    if utf16 {
        return Err(Diagnostic::user(format!(
            "study file {} is UTF-16 encoded, not UTF-8",
            path.display()
        ))
        .with_hint(RESAVE));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let good = &e.as_bytes()[..at];
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let column = std::str::from_utf8(&good[line_start..]).map_or(1, |t| t.chars().count() + 1);
        Diagnostic::user(format!(
            "study file {} is not UTF-8: line {line}, column {column} holds byte 0x{:02X}",
            path.display(),
            e.as_bytes()[at]
        ))
        .with_hint(format!(
            "{RESAVE}; files saved as GBK or Latin-1 by older tools look like this"
        ))
    })
}

/// Parses a study file's text.
pub fn parse(path: &Path, text: String) -> Result<SpecFile, Diagnostic> {
    let source = SourceText {
        path: path.to_path_buf(),
        text,
    };
    let raw: RawSpec = serde_saphyr::from_str_with_options(&source.text, yaml_options(source.text.len()))
        .map_err(|e| {
        let span = e.location().and_then(|l| {
            let line = usize::try_from(l.line()).ok()?;
            let column = usize::try_from(l.column()).ok()?;
            (line > 0).then_some(SourceSpan { line, column: column.max(1), len: 1 })
        });
        if let Some((message, hint)) = plain_yaml_error(&e) {
            return spec_error(&source, message, span, Some(hint));
        }
        let message = yaml_message(&e);
        let hint = if message.contains("unknown field") {
            Some("the top level takes `study`, `outputs`, `description` and `stages`".to_owned())
        } else if message.contains("missing field") {
            Some("a study needs `study: <name>` and `stages:`".to_owned())
        } else {
            Some("check the YAML syntax at the caret (indentation, `:` after keys, closing brackets)".to_owned())
        };
        spec_error(&source, format!("invalid study file: {message}"), span, hint)
    })?;

    let mut stages = Vec::with_capacity(raw.stages.len());
    for (name, spanned) in raw.stages {
        let line = usize::try_from(spanned.referenced.line()).unwrap_or(0);
        let stage_line = source
            .find_key(line.saturating_sub(1).max(1), &name)
            .map_or(line, |s| s.line);
        stages.push(stage_spec(&source, name, stage_line, spanned.value)?);
    }
    Ok(SpecFile {
        study: raw.study.value,
        description: raw.description,
        outputs: raw.outputs.map(|o| o.value),
        stages,
        source,
    })
}

/// Repeated keys and runaway aliases, said in a study file's terms rather than the YAML
/// library's (which speaks of policies, replay counters and budgets).
fn plain_yaml_error(e: &serde_saphyr::Error) -> Option<(String, String)> {
    use serde_saphyr::Error as E;
    use serde_saphyr::budget::BudgetBreach;
    let mut err = e;
    while let E::AliasError { error, .. } | E::WithSnippet { error, .. } = err {
        err = error;
    }
    const TOO_BIG: &str = "the study file expands to far more than a study holds";
    const ALIASES: &str = "its anchors and aliases (`&name`, `*name`) repeat each other over \
        and over: write the repeated parts out, and check this is the file you meant to run";
    const HUGE: &str = "a study is a few hundred lines; if it uses anchors and aliases \
        (`&name`, `*name`), write the repeated parts out, and check this is the file you meant to run";
    Some(match err {
        E::DuplicateMappingKey { key, .. } => (
            match key {
                Some(k) => format!("invalid study file: `{k}` is given twice in the same mapping"),
                None => "invalid study file: a key is given twice in the same mapping".to_owned(),
            },
            "keep one of them: a repeated key does not add to the first, and which one would \
             count is ambiguous"
                .to_owned(),
        ),
        E::AliasReplayCounterOverflow { .. }
        | E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. } => {
            (format!("invalid study file: {TOO_BIG}"), ALIASES.to_owned())
        }
        E::Budget { breach, .. } => match breach {
            BudgetBreach::Depth { .. } => (
                "invalid study file: it nests deeper than a study ever does".to_owned(),
                "check the indentation and the brackets; a study is a few levels deep".to_owned(),
            ),
            _ => (format!("invalid study file: {TOO_BIG}"), HUGE.to_owned()),
        },
        _ => return None,
    })
}

/// Parser options whose alias budget grows with the file: a study may share values through
/// anchors, but expanding them may not take more than 1,000 events plus 2 per byte of the file.
/// The parser keeps an anchor's events (about 200 bytes each) in one buffer that doubles as it
/// grows, so 2 events per byte keep that buffer under about 1 KB per byte of the file; the
/// default budget, a million events, let a 600-byte alias bomb take 27 MB, and 16 per byte
/// still let a 16 KB one take 26 MiB in one allocation.
fn yaml_options(text_len: usize) -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.alias_limits.max_total_replayed_events = 1000 + 2 * text_len;
    options
}

/// The parser's message without its own rendering of location and snippet.
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("").trim().to_owned();
    match first.find(" at line ") {
        Some(i) => first[..i].to_owned(),
        None => first,
    }
}

/// One stage's entry in the study file, for reading its keys and reporting what is wrong
/// with them at the right place.
struct StageKeys<'a> {
    source: &'a SourceText,
    name: &'a str,
    line: usize,
}

type JsonMap = serde_json::Map<String, serde_json::Value>;

impl StageKeys<'_> {
    /// Where `key` stands in the stage's entry, or the stage's name if it cannot be found.
    fn here(&self, key: &str) -> Option<SourceSpan> {
        self.source.find_key(self.line, key).or(Some(SourceSpan {
            line: self.line,
            column: 1,
            len: self.name.len(),
        }))
    }

    fn error(&self, message: String, key: &str, hint: Option<&str>) -> Diagnostic {
        spec_error(
            self.source,
            message,
            self.here(key),
            hint.map(str::to_owned),
        )
    }

    fn kind(&self, map: &mut JsonMap) -> Result<String, Diagnostic> {
        let name = self.name;
        match map.remove("kind") {
            Some(serde_json::Value::String(k)) => Ok(k),
            Some(_) => Err(self.error(
                format!("stage `{name}`: `kind` must be a name"),
                "kind",
                None,
            )),
            None => Err(self.error(
                format!("stage `{name}` has no `kind`"),
                name,
                Some("add `kind: <kind>`; `pipeline stages` lists the kinds"),
            )),
        }
    }

    fn inputs(&self, map: &mut JsonMap) -> Result<BTreeMap<String, String>, Diagnostic> {
        let name = self.name;
        match map.remove("inputs") {
            None | Some(serde_json::Value::Null) => Ok(BTreeMap::new()),
            Some(serde_json::Value::Object(m)) => m
                .into_iter()
                .map(|(port, target)| match target {
                    serde_json::Value::String(target) => Ok((port, target)),
                    _ => Err(self.error(
                        format!(
                            "stage `{name}`: input `{port}` must name a stage (`stage` or `stage.output`)"
                        ),
                        &port,
                        None,
                    )),
                })
                .collect(),
            Some(_) => Err(self.error(
                format!("stage `{name}`: `inputs` must be a mapping of port to stage"),
                "inputs",
                Some("write `inputs: { port: stage }` or `inputs: { port: stage.output }`"),
            )),
        }
    }

    fn publish(&self, map: &mut JsonMap) -> Result<Vec<String>, Diagnostic> {
        let name = self.name;
        match map.remove("publish") {
            None | Some(serde_json::Value::Null) => Ok(Vec::new()),
            Some(serde_json::Value::String(s)) => Ok(vec![s]),
            Some(serde_json::Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    serde_json::Value::String(s) => Ok(s),
                    _ => Err(self.error(
                        format!("stage `{name}`: `publish` lists formats by name"),
                        "publish",
                        None,
                    )),
                })
                .collect(),
            Some(_) => Err(self.error(
                format!("stage `{name}`: `publish` must be a list of formats"),
                "publish",
                None,
            )),
        }
    }

    fn resources(&self, map: &mut JsonMap) -> Result<Option<Resources>, Diagnostic> {
        let Some(value) = map.remove("resources").filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        Resources::from_value(value).map(Some).map_err(|e| {
            self.error(
                format!("stage `{}`: invalid `resources`: {e}", self.name),
                "resources",
                Some("write `resources: { cpus: 8, mem: 16G, time: 1h }` (any of the three)"),
            )
        })
    }
}

fn stage_spec(
    source: &SourceText,
    name: String,
    line: usize,
    value: serde_json::Value,
) -> Result<StageSpec, Diagnostic> {
    if !is_stage_name(&name) {
        return Err(spec_error(
            source,
            format!("stage name `{name}` is not allowed"),
            source.find_key(line, &name),
            Some(
                "stage names are lower-case letters, digits and `_`, starting with a letter"
                    .to_owned(),
            ),
        ));
    }
    let entry = StageKeys {
        source,
        name: &name,
        line,
    };
    let serde_json::Value::Object(mut map) = value else {
        return Err(entry.error(
            format!("stage `{name}` must be a mapping with at least `kind:`"),
            &name,
            None,
        ));
    };
    let kind = entry.kind(&mut map)?;
    let inputs = entry.inputs(&mut map)?;
    let publish = entry.publish(&mut map)?;
    map.remove("description");
    let resources = entry.resources(&mut map)?;
    Ok(StageSpec {
        name,
        line,
        kind,
        inputs,
        publish,
        resources,
        params: serde_json::Value::Object(map),
    })
}

/// `[a-z][a-z0-9_]*`
pub fn is_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_found_in_block_and_flow_style() {
        let src = SourceText {
            path: PathBuf::from("s.yaml"),
            text: "stages:\n  a:\n    k: many # why\n  b: { kind: x, seed: [1, 2], k: 3 }\n  c:\n    variables:\n      - a\n".to_owned(),
        };
        let span = |line, column, len| Some(SourceSpan { line, column, len });
        assert_eq!(src.find_value(2, "k"), span(3, 8, 4));
        assert_eq!(src.find_value(4, "seed"), span(4, 23, 6));
        assert_eq!(src.find_value(4, "kind"), span(4, 14, 1));
        // A block list starts on the next line: the caret stays on the key.
        assert_eq!(src.find_value(5, "variables"), span(6, 5, 9));
    }

    #[test]
    fn resources_are_kept_apart_from_the_parameters_and_checked() {
        let text = "study: r\nstages:\n  big:\n    kind: x\n    value: 1\n    resources: { cpus: 8, mem: 16G, time: 1h }\n";
        let spec = parse(Path::new("s.yaml"), text.to_owned()).unwrap();
        let stage = &spec.stages[0];
        // Only `params` enter the key: where a stage runs cannot change its result.
        assert_eq!(stage.params, serde_json::json!({"value": 1}));
        let r = stage.resources.as_ref().unwrap();
        assert_eq!(
            (r.cpus, r.mem.as_deref(), r.time.as_deref()),
            (Some(8), Some("16G"), Some("1h"))
        );

        let bad = text.replace("16G", "16 gigs");
        let err = parse(Path::new("s.yaml"), bad).unwrap_err();
        assert!(
            err.message
                .contains("stage `big`: invalid `resources`: memory `16 gigs`"),
            "{}",
            err.message
        );
        assert_eq!(err.location.unwrap().span.unwrap().line, 6);
        let unknown = text.replace("cpus:", "cores:");
        let err = parse(Path::new("s.yaml"), unknown).unwrap_err();
        assert!(
            err.message.contains("unknown field `cores`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn study_files_in_other_encodings_are_named() {
        let path = Path::new("s.yaml");
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend("study: x\n".encode_utf16().flat_map(u16::to_le_bytes));
        let err = utf8_text(path, utf16).unwrap_err();
        assert_eq!(
            err.message,
            "study file s.yaml is UTF-16 encoded, not UTF-8"
        );
        // UTF-16 without a byte-order mark: NULs between ASCII letters.
        let bare: Vec<u8> = "study: x\n"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        assert!(
            utf8_text(path, bare)
                .unwrap_err()
                .message
                .contains("UTF-16")
        );
        // "郑州" in GBK; its first two bytes happen to be a valid UTF-8 character.
        let err = utf8_text(path, b"a: 1\nb: \xD6\xA3\xD6\xDD\n".to_vec()).unwrap_err();
        assert_eq!(
            err.message,
            "study file s.yaml is not UTF-8: line 2, column 5 holds byte 0xD6"
        );
        assert!(err.hint.unwrap().contains("UTF-8"));
        assert_eq!(
            utf8_text(path, b"\xEF\xBB\xBFa: 1\n".to_vec()).unwrap(),
            "a: 1\n"
        );
    }

    const STUDY: &str = "study: demo\noutputs: out\nstages:\n  units:\n    kind: ingest\n    path: data/u.csv\n  areas:\n    kind: rasterise\n    inputs: { units: units }\n    rasters: { 2000: a.tif }\n    publish: [parquet, csv]\n";

    #[test]
    fn alias_expansion_is_bounded_by_the_file_size() {
        // Six levels of nine aliases: 9^6 = 531,441 replayed values from about 400 bytes,
        // within the parser's default budget of a million but far beyond 2 per byte.
        let mut text = String::from("study: demo\nstages:\n  units:\n    kind: ingest\n");
        text.push_str("    l0: &l0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..=6 {
            let refs = vec![format!("*l{}", i - 1); 9].join(", ");
            text.push_str(&format!("    l{i}: &l{i} [{refs}]\n"));
        }
        assert!(text.len() < 500);
        let err = parse(Path::new("s.yaml"), text).unwrap_err();
        assert!(
            err.message.starts_with("invalid study file"),
            "{}",
            err.message
        );
        // Four levels padded to 16 KB replay about 83,000 events: within 16 per byte of the
        // file (a budget that let a 16 KB bomb buffer 26 MiB at once) but beyond 2 per byte.
        let mut padded = String::from("study: demo\nstages:\n  units:\n    kind: ingest\n");
        padded.push_str("    l0: &l0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..=4 {
            let refs = vec![format!("*l{}", i - 1); 9].join(", ");
            padded.push_str(&format!("    l{i}: &l{i} [{refs}]\n"));
        }
        padded.push_str(&format!("# {}\n", "x".repeat(16_000)));
        let err = parse(Path::new("s.yaml"), padded).unwrap_err();
        assert!(
            err.message.starts_with("invalid study file"),
            "{}",
            err.message
        );
        // Two levels (81 values) are a legitimate use of anchors.
        let small = "study: demo\nstages:\n  units:\n    kind: ingest\n    a: &a [x, x, x, x, x, x, x, x, x]\n    b: [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n";
        assert!(parse(Path::new("s.yaml"), small.to_owned()).is_ok());
    }

    #[test]
    fn splits_engine_keys_from_params_and_keeps_lines() {
        let spec = parse(Path::new("s.yaml"), STUDY.to_owned()).unwrap();
        assert_eq!(spec.study, "demo");
        let areas = spec.stages.iter().find(|s| s.name == "areas").unwrap();
        assert_eq!(areas.kind, "rasterise");
        assert_eq!(areas.inputs["units"], "units");
        assert_eq!(areas.publish, ["parquet", "csv"]);
        assert_eq!(areas.params["rasters"]["2000"], "a.tif");
        assert_eq!(areas.line, 7);
        assert_eq!(
            spec.source.find_key(areas.line, "rasters").unwrap().line,
            10
        );
        let units = spec.stages.iter().find(|s| s.name == "units").unwrap();
        assert_eq!(units.line, 4);
        assert_eq!(spec.source.find_key(units.line, "path").unwrap().column, 5);
    }

    #[test]
    fn syntax_error_points_at_line() {
        let err = parse(
            Path::new("s.yaml"),
            "study: x\nstages:\n  a: { kind: ingest\n".to_owned(),
        )
        .unwrap_err();
        assert!(err.span().is_some(), "{err:?}");
        let err = parse(Path::new("s.yaml"), "study: x\nstagez: {}\n".to_owned()).unwrap_err();
        assert!(err.message.contains("unknown field"), "{}", err.message);
        assert_eq!(err.span().unwrap().line, 2);
    }
}
