//! Errors as the user sees them. Every layer builds a [`Diagnostic`]: what failed, the causes,
//! where in the study file (rendered as the line with a caret), and a hint. [`Diagnostic::render`]
//! is the one place they are turned into text; [`Tier`] picks the exit code.

use std::fmt::Write as _;

use crate::engine::spec::SourceText;

/// Which kind of problem, and so which exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    /// A stage's computation failed (exit 1).
    StageFailed,
    /// The study, its data or the command line is wrong: the user can fix it (exit 2).
    User,
    /// The machine or a bug (exit 3).
    Environment,
    /// `pipeline` was stopped by a signal; the exit code is the shell's 128 + its number.
    Interrupted(u8),
}

impl Tier {
    /// The documented exit code: 1 a stage failed, 2 bad study/data/usage, 3 environment/internal,
    /// 130 or 143 stopped by SIGINT or SIGTERM.
    pub fn exit_code(self) -> u8 {
        match self {
            Tier::StageFailed => 1,
            Tier::User => 2,
            Tier::Environment => 3,
            Tier::Interrupted(code) => code,
        }
    }
}

/// A position in the study file (1-based line and column, length of the underlined text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceSpan {
    pub line: usize,
    pub column: usize,
    pub len: usize,
}

/// Where in the study file an error points.
#[derive(Debug, Clone)]
pub struct Location {
    pub file: SourceText,
    pub span: Option<SourceSpan>,
}

/// An error ready to show.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub tier: Tier,
    pub message: String,
    pub location: Option<Box<Location>>,
    pub causes: Vec<String>,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(tier: Tier, message: impl Into<String>) -> Self {
        Self {
            tier,
            message: message.into(),
            location: None,
            causes: Vec::new(),
            hint: None,
        }
    }
    pub fn user(message: impl Into<String>) -> Self {
        Self::new(Tier::User, message)
    }
    pub fn environment(message: impl Into<String>) -> Self {
        Self::new(Tier::Environment, message)
    }
    #[must_use]
    pub fn caused_by(mut self, cause: impl std::fmt::Display) -> Self {
        self.causes.push(cause.to_string());
        self
    }
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    #[must_use]
    pub fn at(mut self, file: &SourceText, span: Option<SourceSpan>) -> Self {
        self.location = Some(Box::new(Location {
            file: file.clone(),
            span,
        }));
        self
    }

    /// The span in the study file, if the error points at one.
    pub fn span(&self) -> Option<SourceSpan> {
        self.location.as_ref().and_then(|l| l.span)
    }

    /// The text shown on stderr: `error:`, `caused by:` lines, the study line with a caret, `hint:`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "error: {}", self.message);
        for cause in &self.causes {
            for (i, line) in cause.lines().enumerate() {
                let lead = if i == 0 {
                    "  caused by: "
                } else {
                    "             "
                };
                let _ = writeln!(out, "{lead}{line}");
            }
        }
        if let Some(Location { file, span }) = self.location.as_deref() {
            match *span {
                Some(span) => {
                    let _ = writeln!(
                        out,
                        "  --> {}:{}:{}",
                        file.path.display(),
                        span.line,
                        span.column
                    );
                    if let Some(text) = file.line(span.line) {
                        let gutter = span.line.to_string().len();
                        let _ = writeln!(out, "{:gutter$} |", "");
                        let _ = writeln!(out, "{} | {}", span.line, text);
                        let pad: String = text
                            .chars()
                            .take(span.column.saturating_sub(1))
                            .map(|c| if c == '\t' { '\t' } else { ' ' })
                            .collect();
                        let _ = writeln!(
                            out,
                            "{:gutter$} | {}{}",
                            "",
                            pad,
                            "^".repeat(span.len.max(1))
                        );
                    }
                }
                None => {
                    let _ = writeln!(out, "  --> {}", file.path.display());
                }
            }
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "hint: {hint}");
        }
        out
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn renders_snippet_with_caret_under_the_field() {
        let file = SourceText {
            path: PathBuf::from("s.yaml"),
            text: "stages:\n  a:\n    kind: ingset\n".into(),
        };
        let d = Diagnostic::user("unknown stage kind `ingset`")
            .at(
                &file,
                Some(SourceSpan {
                    line: 3,
                    column: 11,
                    len: 7,
                }),
            )
            .with_hint("did you mean `ingest`?");
        let text = d.render();
        assert_eq!(
            text,
            "error: unknown stage kind `ingset`\n  --> s.yaml:3:11\n  |\n3 |     kind: ingset\n  |           ^^^^^^^\nhint: did you mean `ingest`?\n"
        );
        assert_eq!(Tier::User.exit_code(), 2);
    }
}
