//! The Content Credentials check of `latentmint verify`: what the image file says of itself
//! (its C2PA manifest) must be valid and agree with the token's signed record.

use std::path::Path;

use anyhow::Context;
use latentmint_chain::{Check, TokenReport};
use latentmint_core::metadata::Provenance;
use latentmint_credentials::{GenerationAssertion, TRAINED_ALGORITHMIC_MEDIA, Validation};

const WHAT: &str = "content credentials";

/// The CA certificates of `--credentials-ca`, refused with the flag named when the file is
/// missing or holds no PEM certificate.
pub fn read_anchors(path: &Path) -> anyhow::Result<String> {
    let pem = std::fs::read_to_string(path).with_context(|| format!("--credentials-ca: {}", path.display()))?;
    latentmint_credentials::certificates_from_pem(&pem)
        .with_context(|| format!("--credentials-ca: {}", path.display()))?;
    Ok(pem)
}

/// Adds the check to `report` (whose image already matched its CID). An image without a
/// manifest passes with a note: the signed record is the authority, and a deployment may not
/// stamp its images; bytes stripped of a manifest would not have matched the record's digest.
/// `anchors_pem`: the CAs whose signers are trusted (a local run's development CA).
pub fn check(report: &mut TokenReport, anchors_pem: Option<&str>) {
    let (Some(png), Some(meta)) = (&report.image, &report.metadata) else { return };
    let (ok, detail) = assess(png, &meta.provenance, anchors_pem);
    report.checks.push(Check { what: WHAT, ok, detail });
}

/// Whether the manifest in `png` holds and agrees with `record`, and what it says.
pub fn assess(png: &[u8], record: &Provenance, anchors_pem: Option<&str>) -> (bool, String) {
    match latentmint_credentials::read(png, anchors_pem) {
        Err(e) => (false, format!("the manifest could not be read: {e}")),
        Ok(None) => (true, "none in the image (the signed record above is the provenance)".to_string()),
        Ok(Some(c)) => match (c.validation, disagreement(c.generation.as_ref(), record)) {
            (Validation::Invalid, _) => (false, format!("invalid C2PA manifest: {}", c.failures.join("; "))),
            _ if c.digital_source_type.as_deref() != Some(TRAINED_ALGORITHMIC_MEDIA) => (
                false,
                format!(
                    "the manifest does not say the image was made by a model (digital source type {})",
                    c.digital_source_type.as_deref().unwrap_or("none")
                ),
            ),
            (_, Some(field)) => (false, format!("the C2PA manifest's {field} is not the signed record's")),
            (validation, None) => (
                true,
                format!(
                    "C2PA manifest {}, signed by {}; AI-generated (trainedAlgorithmicMedia); job, model, prompt and parameters agree with the record",
                    match validation {
                        Validation::Trusted => "trusted (its chain ends at the CA given)",
                        _ => "valid (no CA given to trust)",
                    },
                    c.signer
                ),
            ),
        },
    }
}

/// The first field where latentmint's assertion and the record differ.
fn disagreement(g: Option<&GenerationAssertion>, p: &Provenance) -> Option<&'static str> {
    let Some(g) = g else { return Some("org.latentmint.generation assertion (missing)") };
    let fields = [
        ("job id", g.job_id == p.job_id),
        ("model digest", g.model_sha256 == p.model.sha256),
        ("prompt", g.prompt == p.prompt && g.negative_prompt == p.negative_prompt),
        ("seed", g.params.seed == p.seed),
        (
            "parameters",
            g.params.steps == p.steps
                && g.params.guidance == p.guidance
                && g.params.scheduler == p.scheduler
                && (g.params.width, g.params.height) == (p.width, p.height),
        ),
        ("adapters", g.adapters == p.adapters),
    ];
    fields.into_iter().find(|(_, same)| !same).map(|(field, _)| field)
}
