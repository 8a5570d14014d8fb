//! The collection spec: what a studio writes (a TOML file) and how it expands into jobs.
//!
//! Parsing is strict (`deny_unknown_fields`) so a misspelt key is an error, not a silently
//! ignored setting. Validation collects the first problem with its field path.
//!
//! - [`schema`]: the sections and keys as written, with defaults;
//! - `check`: one check per section, run by [`Collection::validate`];
//! - `expand`: [`Collection::jobs`] and [`Collection::job_for_request`].

mod check;
mod expand;
pub mod schema;
#[cfg(test)]
mod tests;

pub use schema::*;

use crate::address::EvmAddress;
use crate::field::FieldError;
pub use crate::network::LOCAL_CHAIN_ID;

/// A collection file that failed to load.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file is not valid TOML or does not have the expected shape.
    #[error("{file}: {message}")]
    Parse {
        /// The collection file.
        file: String,
        /// The parser's message: it names the line, the key and what was expected.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("{file}: {error}")]
    Field {
        /// The collection file.
        file: String,
        /// The offending field.
        error: FieldError,
    },
}

/// A validated collection, ready to expand into jobs.
#[derive(Debug, Clone)]
pub struct Collection {
    /// The file as written (validated).
    pub file: CollectionFile,
    /// Parsed recipient.
    pub recipient: EvmAddress,
    /// Parsed contract address, if one is configured.
    pub contract: Option<EvmAddress>,
}

impl Collection {
    /// Parses and validates a collection file's text. `file` names it in errors.
    pub fn from_toml(file: &str, text: &str) -> Result<Self, SpecError> {
        let parsed: CollectionFile = toml::from_str(text)
            .map_err(|e| SpecError::Parse { file: file.to_string(), message: e.to_string().trim_end().to_string() })?;
        Self::validate(parsed).map_err(|error| SpecError::Field { file: file.to_string(), error })
    }
}

/// `{name}` placeholders in order of first appearance.
fn placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if !name.is_empty() && !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
        rest = &after[end + 1..];
    }
    out
}
