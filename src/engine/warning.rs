//! Stage warnings: a kind, a message and an optional severity. A stage may warn once per unit
//! (hundreds of lines); the run shows one line per kind with the count and the worst example,
//! and `pipeline explain` lists them all from the cache entry.

use serde::{Deserialize, Serialize};

/// The kind of a warning given without one: each is shown on its own line.
pub const GENERAL: &str = "general";

/// One warning of a stage, as stored with its cache entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warning {
    /// What went wrong, as a short snake_case name (`unit_outside_raster`); warnings of one kind
    /// are summarised together. [`GENERAL`] warnings are never grouped.
    pub kind: String,
    pub message: String,
    /// Larger is worse; the summary shows the worst warning of each kind (the first on ties or
    /// without scores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<f64>,
}

/// Entries written before warnings had kinds hold plain strings; both forms are read.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stored {
    Text(String),
    Full {
        kind: String,
        message: String,
        #[serde(default)]
        severity: Option<f64>,
    },
}

impl<'de> Deserialize<'de> for Warning {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Stored::deserialize(d)? {
            Stored::Text(message) => Warning::new(GENERAL, message, None),
            Stored::Full {
                kind,
                message,
                severity,
            } => Warning::new(&kind, message, severity),
        })
    }
}

impl Warning {
    /// A warning; a non-finite severity is dropped (it could not be stored as JSON).
    pub fn new(kind: &str, message: impl Into<String>, severity: Option<f64>) -> Self {
        Self {
            kind: kind.to_owned(),
            message: message.into(),
            severity: severity.filter(|s| s.is_finite()),
        }
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// One line per kind, in order of first appearance: a lone warning as it is, several of one
/// kind as their count and the worst of them. [`GENERAL`] warnings each keep their own line.
pub fn summarise(warnings: &[Warning]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut done: Vec<&str> = Vec::new();
    for w in warnings {
        if w.kind == GENERAL {
            lines.push(w.message.clone());
            continue;
        }
        if done.contains(&w.kind.as_str()) {
            continue;
        }
        done.push(&w.kind);
        let same: Vec<&Warning> = warnings.iter().filter(|x| x.kind == w.kind).collect();
        if same.len() == 1 {
            lines.push(w.message.clone());
            continue;
        }
        // The first of the highest severity: `max_by` keeps the last of equals, so compare
        // in reverse order.
        let worst = same
            .iter()
            .rev()
            .max_by(|a, b| {
                a.severity
                    .unwrap_or(f64::NEG_INFINITY)
                    .total_cmp(&b.severity.unwrap_or(f64::NEG_INFINITY))
            })
            .expect("a kind has at least one warning");
        let which = if same.iter().any(|x| x.severity.is_some()) {
            "worst"
        } else {
            "first"
        };
        lines.push(format!(
            "{} `{}` warnings ({which}: {}); `pipeline explain` lists them all",
            same.len(),
            w.kind,
            worst.message
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_warnings_of_one_kind_become_one_line_with_the_worst() {
        let mut ws: Vec<Warning> = (0..300)
            .map(|i| {
                Warning::new(
                    "outside",
                    format!("u{i} is outside"),
                    Some(f64::from(i % 7)),
                )
            })
            .collect();
        ws.insert(5, Warning::new(GENERAL, "a general note", None));
        ws.push(Warning::new(GENERAL, "another note", None));
        ws.push(Warning::new("lonely", "only one", None));
        assert_eq!(
            summarise(&ws),
            [
                "300 `outside` warnings (worst: u6 is outside); `pipeline explain` lists them all",
                "a general note",
                "another note",
                "only one",
            ]
        );
    }

    #[test]
    fn without_scores_the_first_is_shown() {
        let ws = [
            Warning::new("k", "first", None),
            Warning::new("k", "second", None),
        ];
        assert_eq!(
            summarise(&ws),
            ["2 `k` warnings (first: first); `pipeline explain` lists them all"]
        );
    }

    #[test]
    fn stored_plain_strings_are_read_as_general_warnings() {
        let ws: Vec<Warning> =
            serde_json::from_str(r#"["old", {"kind": "k", "message": "new", "severity": 2.5}]"#)
                .unwrap();
        assert_eq!(ws[0], Warning::new(GENERAL, "old", None));
        assert_eq!(ws[1], Warning::new("k", "new", Some(2.5)));
        let text = serde_json::to_string(&ws[0]).unwrap();
        assert_eq!(text, r#"{"kind":"general","message":"old"}"#);
    }
}
