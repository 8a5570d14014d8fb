//! # latentmint-credentials
//!
//! Content Credentials ([C2PA]) for generated images. Every image the pipeline makes carries a
//! signed manifest inside the PNG, the industry's machine-readable mark of AI-generated content
//! (what the EU AI Act's Article 50 asks of generative systems): a `c2pa.created` action with
//! the IPTC digital source type `trainedAlgorithmicMedia` and latentmint as the software agent,
//! and an `org.latentmint.generation` assertion with the request and the model (its digest,
//! seed, parameters, adapters). Any C2PA reader (c2patool, contentcredentials.org/verify) shows
//! it; `latentmint verify` checks it against the token's signed record.
//!
//! The manifest is bound to the image bytes (a data hash over everything else in the file), so
//! the pixels cannot change without it failing; its signature is ES256 with an X.509
//! certificate, as C2PA requires. The provenance record (EIP-712, checked on chain) remains
//! the authority: it is signed after the manifest is embedded and names the final bytes'
//! SHA-256.
//!
//! - [`ClaimSigner`]: who signs. [`LocalIdentity`] in local mode, a development CA and a
//!   signing certificate made on first use and kept with the run (no key in the repository);
//!   `latentmint_aws::KmsClaimSigner` in AWS, a KMS key with the studio's certificate.
//! - [`Stamper`]: embeds a manifest; [`Credentialed`] wraps any `Generator` so each image leaves
//!   generation already stamped (the pipeline stages do not change).
//! - [`read`]: validates an image's manifest and returns what it says.
//!
//! [C2PA]: https://spec.c2pa.org/specifications/specifications/2.2/specs/C2PA_Specification.html

mod generator;
mod identity;
mod stamp;

pub use generator::Credentialed;
pub use identity::{LocalIdentity, certificates_from_pem, development_chain_for};
pub use stamp::{ClaimSigner, CredentialReport, GenerationAssertion, Stamper, Validation, read};

use std::path::PathBuf;

/// The IPTC digital source type of an image made by a generative model.
pub const TRAINED_ALGORITHMIC_MEDIA: &str = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia";

/// The label of latentmint's own assertion.
pub const GENERATION_ASSERTION: &str = "org.latentmint.generation";

/// What went wrong with Content Credentials.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The signer's certificate or key could not be read or made.
    #[error("content credentials identity at {path}: {message}")]
    Identity {
        /// File or folder concerned.
        path: PathBuf,
        /// What was wrong, and what to do.
        message: String,
    },
    /// The C2PA library refused to sign or read.
    #[error("content credentials: {0}")]
    C2pa(String),
}

/// Result alias for this crate.
pub type Result<T, E = CredentialError> = std::result::Result<T, E>;

fn c2pa_err(e: c2pa::Error) -> CredentialError {
    CredentialError::C2pa(e.to_string())
}
