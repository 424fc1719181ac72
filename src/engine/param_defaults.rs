//! Documented parameter defaults, read from the code rather than written beside it: a kind's
//! example of its required parameters is deserialised into its typed parameters (serde fills
//! in every default) and serialised again; each default is shown as YAML flow text.
//!
//! A default the serialised value cannot tell (`null`, whose meaning depends on other
//! parameters or on the data) keeps the text written in the kind's [`ParamDoc`].

use crate::engine::stage::ParamDoc;

/// Why a written default disagrees with the one the code uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultDrift {
    pub param: &'static str,
    pub written: &'static str,
    pub derived: String,
}

/// `docs` with each default as `pipeline stages` shows it. `required` holds example values
/// of the required parameters; `defaults` is the serialised parameters deserialised from
/// `required`, or `None` when that failed (then every written default is kept); the written
/// defaults of `described` parameters are kept.
pub fn documented(
    docs: &[ParamDoc],
    required: &serde_json::Value,
    defaults: Option<&serde_json::Value>,
    described: &[&str],
) -> Vec<ParamDoc> {
    docs.iter()
        .map(|doc| ParamDoc {
            default: leak(shown_default(doc, required, defaults, described)),
            ..*doc
        })
        .collect()
}

/// The written defaults that a derived one contradicts. A written default must be empty
/// (derived), or equal the derived one, or stand for a parameter whose default is `null`,
/// which is required, or which is `described` in words.
pub fn drifts(
    docs: &[ParamDoc],
    required: &serde_json::Value,
    defaults: &serde_json::Value,
    described: &[&str],
) -> Vec<DefaultDrift> {
    docs.iter()
        .filter(|doc| !described.contains(&doc.name))
        .filter_map(|doc| {
            let derived = derived_default(doc.name, required, Some(defaults))?;
            (!doc.default.is_empty() && doc.default != derived).then_some(DefaultDrift {
                param: doc.name,
                written: doc.default,
                derived,
            })
        })
        .collect()
}

fn shown_default(
    doc: &ParamDoc,
    required: &serde_json::Value,
    defaults: Option<&serde_json::Value>,
    described: &[&str],
) -> String {
    if described.contains(&doc.name) && !doc.default.is_empty() {
        return doc.default.to_owned();
    }
    if let Some(derived) = derived_default(doc.name, required, defaults) {
        return derived;
    }
    if !doc.default.is_empty() {
        return doc.default.to_owned();
    }
    if required.get(doc.name).is_some() {
        "required".to_owned()
    } else {
        "none".to_owned()
    }
}

/// The default the code uses, as YAML, if it is a value: not for required parameters, nor
/// for those whose default is `null`.
fn derived_default(
    name: &str,
    required: &serde_json::Value,
    defaults: Option<&serde_json::Value>,
) -> Option<String> {
    if required.get(name).is_some() {
        return None;
    }
    match defaults?.get(name)? {
        serde_json::Value::Null => None,
        value => Some(yaml_flow(value)),
    }
}

/// The text lives as long as the registry, which is static.
fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

/// A value as YAML flow text: `0.5`, `queen`, `[2, 30]`, `{preset: mixed}`. A list quotes
/// all its strings when one of them needs quotes, so its items read alike.
pub fn yaml_flow(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number(n),
        Value::String(s) if needs_quotes(s) => quoted(s),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let quote_all = items.iter().any(|v| v.as_str().is_some_and(needs_quotes));
            let shown: Vec<String> = items
                .iter()
                .map(|v| match v.as_str() {
                    Some(s) if quote_all => quoted(s),
                    _ => yaml_flow(v),
                })
                .collect();
            format!("[{}]", shown.join(", "))
        }
        Value::Object(map) => {
            let shown: Vec<String> = map
                .iter()
                .filter(|(_, v)| !is_empty(v))
                .map(|(k, v)| format!("{}: {}", yaml_flow(&Value::String(k.clone())), yaml_flow(v)))
                .collect();
            format!("{{{}}}", shown.join(", "))
        }
    }
}

/// An empty member of a mapping (`override: {}`) is its own default and left out, as a
/// user leaves it out.
fn is_empty(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::Array(items) => items.is_empty(),
        serde_json::Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

/// Whole floats without a fraction (`100`, not `100.0`), as a user writes them.
fn number(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(v) if n.is_f64() && v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        _ => n.to_string(),
    }
}

fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// Whether a plain YAML scalar would read back as something else (or not parse).
fn needs_quotes(s: &str) -> bool {
    const INDICATORS: &str = "-?:,[]{}#&*!|>'\"%@`";
    let reserved = ["true", "false", "null", "~", "yes", "no", "on", "off"];
    s.is_empty()
        || s.trim() != s
        || s.starts_with(|c| INDICATORS.contains(c))
        || s.contains(": ")
        || s.contains(" #")
        || s.contains([',', '[', ']', '{', '}'])
        || reserved.contains(&s.to_ascii_lowercase().as_str())
        || s.parse::<f64>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_read_as_a_user_writes_them() {
        assert_eq!(yaml_flow(&json!(100.0)), "100");
        assert_eq!(yaml_flow(&json!(0.67)), "0.67");
        assert_eq!(yaml_flow(&json!(999)), "999");
        assert_eq!(yaml_flow(&json!([2, 30])), "[2, 30]");
        assert_eq!(
            yaml_flow(&json!({"preset": "mixed", "override": {}})),
            "{preset: mixed}"
        );
        assert_eq!(yaml_flow(&json!({})), "{}");
        assert_eq!(yaml_flow(&json!(["mean"])), "[mean]");
        assert_eq!(yaml_flow(&json!("12")), "\"12\"");
        // One item needs quotes, so all are quoted.
        assert_eq!(yaml_flow(&json!(["", "NA"])), "[\"\", \"NA\"]");
    }

    const DOCS: &[ParamDoc] = &[
        ParamDoc {
            name: "path",
            ty: "string",
            default: "",
            doc: "",
        },
        ParamDoc {
            name: "band",
            ty: "float",
            default: "",
            doc: "",
        },
        ParamDoc {
            name: "year",
            ty: "integer?",
            default: "the latest",
            doc: "",
        },
        ParamDoc {
            name: "mode",
            ty: "a|b",
            default: "a",
            doc: "",
        },
    ];

    #[test]
    fn defaults_come_from_the_serialised_parameters() {
        let required = json!({"path": "x.csv"});
        let defaults = json!({"path": "x.csv", "band": 0.0, "year": null, "mode": "b"});
        let shown: Vec<&str> = documented(DOCS, &required, Some(&defaults), &[])
            .iter()
            .map(|d| d.default)
            .collect();
        assert_eq!(shown, ["required", "0", "the latest", "b"]);
        assert_eq!(
            drifts(DOCS, &required, &defaults, &[]),
            [DefaultDrift {
                param: "mode",
                written: "a",
                derived: "b".to_owned()
            }]
        );
        let written: Vec<&str> = documented(DOCS, &required, None, &[])
            .iter()
            .map(|d| d.default)
            .collect();
        assert_eq!(written, ["required", "none", "the latest", "a"]);
    }
}
