//! The one error shape for bad input: which field, what is wrong, how to fix it.

use std::fmt;

/// A rejected input value. Displayed as `field: problem; fix`, so an operator reading a log
/// line or a terminal knows exactly where to look and what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `prompts[2].text` or `collection.recipient`.
    pub field: String,
    /// What is wrong with the value.
    pub problem: String,
    /// What to do about it.
    pub fix: String,
}

impl FieldError {
    /// Builds a field error.
    pub fn new(field: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { field: field.into(), problem: problem.into(), fix: fix.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}; {}", self.field, self.problem, self.fix)
    }
}
