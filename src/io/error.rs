//! The readers' own error: what is wrong with which file, row, cell or column, the causes, and
//! a hint. It knows nothing of stages or the engine; a stage turns it into its own error with
//! `?` (the `From` impl sits with the stages), keeping the tier: bad bytes or cells are the
//! user's to fix, a broken invariant is ours.

/// Whose fault an [`IoError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoErrorTier {
    /// The file's contents are wrong; the message says where and the hint how to fix them.
    Data,
    /// A broken invariant of the reader itself.
    Internal,
}

/// A reader's failure: a message naming the file (and row, cell or column), causes, a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoError {
    pub tier: IoErrorTier,
    pub message: String,
    pub causes: Vec<String>,
    pub hint: Option<String>,
}

impl IoError {
    fn with_tier(tier: IoErrorTier, message: impl Into<String>) -> Self {
        Self {
            tier,
            message: message.into(),
            causes: Vec::new(),
            hint: None,
        }
    }
    /// Bad bytes, cells or structure in an input file.
    pub fn data(message: impl Into<String>) -> Self {
        Self::with_tier(IoErrorTier::Data, message)
    }
    /// A broken invariant of the reader.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::with_tier(IoErrorTier::Internal, message)
    }
    /// A column a table does not have, with the nearest name or the list of all.
    pub fn column_missing(table: &str, column: &str, present: &[String]) -> Self {
        let hint = match crate::suggest::did_you_mean(column, present.iter().map(String::as_str)) {
            Some(s) => format!("did you mean `{s}`? (columns: {})", present.join(", ")),
            None => format!("the columns are: {}", present.join(", ")),
        };
        Self::data(format!("input `{table}` has no column `{column}`")).with_hint(hint)
    }
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    #[must_use]
    pub fn caused_by(mut self, cause: impl std::fmt::Display) -> Self {
        self.causes.push(cause.to_string());
        self
    }
}

impl std::fmt::Display for IoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for IoError {}
