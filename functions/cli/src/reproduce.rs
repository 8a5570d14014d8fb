//! `latentmint verify --reproduce-with <model>`: makes the token's image again from its signed
//! record and compares the pixels. The signature says who vouches for the record; this says
//! the record is true: the image is what that model makes from that prompt, seed and those
//! parameters (for an evolved token, from its parent image).

use std::path::{Path, PathBuf};

use anyhow::Context;
use latentmint_chain::TokenReport;
use latentmint_core::cid::cid_of_bytes;
use latentmint_core::metadata::TokenMetadata;
use latentmint_core::ports::{ContentSource, Generator};
use latentmint_core::qa::PixelDiff;
use latentmint_diffusion::decode_rgb;
use latentmint_diffusion::{EngineOptions, LoraSpec, OnnxGenerator};
use sha2::{Digest, Sha256};

/// Above this the regenerated image counts as the same picture: ONNX Runtime's kernels give
/// slightly different floats on other CPUs (and on GPUs), which can move a few pixel values;
/// another seed gives 10-13 dB on the demo models.
pub const SAME_IMAGE_PSNR_DB: f64 = 35.0;

/// Loads `model_dir` with the adapters given, each at the strength the record names for it.
pub fn load_generator(model_dir: &Path, loras: &[PathBuf], meta: &TokenMetadata) -> anyhow::Result<OnnxGenerator> {
    let mut specs = Vec::new();
    for path in loras {
        let bytes = std::fs::read(path).with_context(|| format!("--lora {}", path.display()))?;
        let sha = hex::encode(Sha256::digest(&bytes));
        let named = meta.provenance.adapters.iter().find(|a| a.sha256 == sha).ok_or_else(|| {
            anyhow::anyhow!(
                "--lora {}: its sha256 {sha} is not one of the record's adapters ({}); give the files the record names",
                path.display(),
                listed(meta)
            )
        })?;
        specs.push(LoraSpec { path: path.clone(), scale: named.scale });
    }
    OnnxGenerator::load(model_dir, &EngineOptions { loras: specs, ..EngineOptions::default() })
        .with_context(|| format!("--reproduce-with {}", model_dir.display()))
}

fn listed(meta: &TokenMetadata) -> String {
    let a = &meta.provenance.adapters;
    if a.is_empty() {
        return "it names none".into();
    }
    a.iter().map(|a| format!("{} sha256 {}", a.name, a.sha256)).collect::<Vec<_>>().join(", ")
}

/// Regenerates the image of `report` (whose checks passed) and adds the checks: the parent
/// image for an evolution, the model and adapters, and the pixels.
pub async fn reproduce(
    report: &mut TokenReport,
    generator: &OnnxGenerator,
    content: &dyn ContentSource,
) -> anyhow::Result<()> {
    let (Some(meta), Some(minted)) = (report.metadata.clone(), report.image.clone()) else {
        anyhow::bail!("the token's metadata and image must check out before the image can be made again");
    };
    let p = &meta.provenance;
    let model = generator.identity()?;
    let same_model = model.sha256 == p.model.sha256;
    let detail = if same_model {
        format!("{} (sha256 {})", p.model.id, p.model.sha256)
    } else {
        format!(
            "the folder holds {} (sha256 {}); the record names {} (sha256 {}): give that model",
            model.id, model.sha256, p.model.id, p.model.sha256
        )
    };
    if !report.check("the model is the one the record names", same_model, detail) {
        return Ok(());
    }
    let same_adapters = model.adapters == p.adapters;
    let detail = if same_adapters {
        if p.adapters.is_empty() { "none".to_string() } else { listed(&meta) }
    } else {
        format!("the record names: {}; give each file with --lora", listed(&meta))
    };
    if !report.check("the adapters are the ones the record names", same_adapters, detail) {
        return Ok(());
    }

    let parent = match &p.evolution {
        None => None,
        Some(e) => {
            let cid = e.parent_image.strip_prefix("ipfs://").unwrap_or(&e.parent_image);
            let bytes = content.fetch(cid).await.map_err(|e| anyhow::anyhow!("parent image {cid}: {e}"));
            let ok = bytes.as_ref().is_ok_and(|b| cid_of_bytes(b) == cid);
            let detail = match &bytes {
                Ok(_) if ok => format!("{cid}, generation {} grew from it", e.generation),
                Ok(b) => format!("{cid}, computed {}", cid_of_bytes(b)),
                Err(e) => e.to_string(),
            };
            if !report.check("the parent image is the one the record names", ok, detail) {
                return Ok(());
            }
            bytes.ok()
        }
    };
    let request = p.generation_request(parent)?;
    let again = generator.generate(&request).await.map_err(|e| anyhow::anyhow!("regenerating the image: {e}"))?;
    let (a, aw, ah) = decode_rgb(&minted).map_err(|e| anyhow::anyhow!("the token's image: {e}"))?;
    let (b, bw, bh) = decode_rgb(&again.png).map_err(|e| anyhow::anyhow!("the regenerated image: {e}"))?;
    let diff = if (aw, ah) == (bw, bh) { PixelDiff::between(&a, &b) } else { None };
    let (ok, detail) = match diff {
        None => (false, format!("the token's image is {aw}x{ah}, the record's parameters make {bw}x{bh}")),
        Some(d) if d.max_abs == 0 => (true, "made again pixel for pixel".to_string()),
        Some(d) => (
            d.psnr_db >= SAME_IMAGE_PSNR_DB,
            format!(
                "{:.1} dB PSNR, largest difference {}/255 (same picture at {SAME_IMAGE_PSNR_DB} dB or more; it was made by {})",
                d.psnr_db, d.max_abs, p.generator.backend
            ),
        ),
    };
    report.check("the record's prompt, seed and parameters make this image", ok, detail);
    Ok(())
}
