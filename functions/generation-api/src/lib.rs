//! # latentmint-generation-api
//!
//! The JSON contract between a generation client (the SageMaker adapter) and a generation
//! server (the SageMaker container's `serve` binary), version 1.
//!
//! Request (`Content-Type: application/json`):
//! ```json
//! {"prompt": "a red circle", "negative_prompt": "", "seed": 7, "steps": 20, "guidance": 7.5,
//!  "width": 512, "height": 512, "scheduler": "ddim", "num_images": 1}
//! ```
//! `num_images` (1 to 16, default 1) asks for a batch of one prompt: image k is made with seed
//! `seed + k`; the first comes in `image_png_base64`, the others in `more_images_png_base64`.
//! img2img (how living NFTs evolve): `init_image_png_base64` (a PNG of width x height) and
//! `strength` in (0, 1].
//! Response:
//! ```json
//! {"version": 1, "image_png_base64": "iVBOR...", "parameters": {...the request as run...},
//!  "prompt_truncated": false, "model": {"id": "...", "sha256": "...", "files": {...}},
//!  "generator": {"name": "latentmint-diffusion", "version": "0.1.0", "backend": "onnx-cuda"},
//!  "elapsed_ms": 812}
//! ```
//! Errors: HTTP 4xx with `{"error": "<field>: <problem>; <fix>"}` for bad requests (not
//! retried), 5xx for server trouble (retried, then the fallback runs).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use latentmint_core::job::GenerationParams;

/// Wire version of the response.
pub const API_VERSION: u32 = 1;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiRequest {
    /// Prompt.
    pub prompt: String,
    /// Negative prompt.
    #[serde(default)]
    pub negative_prompt: String,
    /// Noise seed.
    pub seed: u64,
    /// Denoising steps.
    pub steps: u32,
    /// Guidance scale.
    pub guidance: f32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Scheduler name.
    pub scheduler: String,
    /// Images to make (seeds `seed`, `seed + 1`, ...).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub num_images: u32,
    /// img2img: the image to start from (PNG, width x height), base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_image_png_base64: Option<String>,
    /// img2img: how far to move from the init image, in (0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strength: Option<f32>,
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

impl ApiRequest {
    /// The request for a prompt and parameters.
    pub fn new(prompt: &str, negative_prompt: &str, p: &GenerationParams) -> Self {
        Self {
            prompt: prompt.into(),
            negative_prompt: negative_prompt.into(),
            seed: p.seed,
            steps: p.steps,
            guidance: p.guidance,
            width: p.width,
            height: p.height,
            scheduler: p.scheduler.clone(),
            num_images: 1,
            init_image_png_base64: None,
            strength: None,
        }
    }

    /// The parameters part.
    pub fn params(&self) -> GenerationParams {
        GenerationParams {
            steps: self.steps,
            guidance: self.guidance,
            width: self.width,
            height: self.height,
            scheduler: self.scheduler.clone(),
            seed: self.seed,
        }
    }
}

/// The model that served a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiModel {
    /// Model id.
    pub id: String,
    /// Digest over its files.
    pub sha256: String,
    /// SHA-256 per file.
    pub files: BTreeMap<String, String>,
}

impl ApiModel {
    /// Checks that the digests are SHA-256 hex and that `sha256` is the digest over `files`
    /// ([`latentmint_core::metadata::model_digest`]), as the engine computes them: they go into the signed
    /// provenance record, so a foreign or broken endpoint is caught here, not at publish.
    pub fn check(&self) -> Result<(), String> {
        let is_digest = |d: &str| d.len() == 64 && d.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if let Some((path, d)) = self.files.iter().find(|(_, d)| !is_digest(d)) {
            return Err(format!("model.files[{path}]: `{d}` is not a SHA-256 in lowercase hex"));
        }
        if !is_digest(&self.sha256) {
            return Err(format!("model.sha256: `{}` is not a SHA-256 in lowercase hex", self.sha256));
        }
        let over_files = latentmint_core::metadata::model_digest(&self.files);
        if !self.files.is_empty() && over_files != self.sha256 {
            return Err(format!("model.sha256 is {}, but its files' digest is {over_files}", self.sha256));
        }
        Ok(())
    }
}

/// The program that served a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiGenerator {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Execution path (`onnx-cuda`, `onnx-cpu`).
    pub backend: String,
}

/// A generated image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiResponse {
    /// Wire version.
    pub version: u32,
    /// The PNG, base64 (standard alphabet, padded).
    pub image_png_base64: String,
    /// Images 2..n of a batch (`num_images` > 1), in seed order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_images_png_base64: Vec<String>,
    /// The parameters actually used.
    pub parameters: ApiRequest,
    /// The prompt was cut to the text encoder's window.
    pub prompt_truncated: bool,
    /// Model facts.
    pub model: ApiModel,
    /// Server facts.
    pub generator: ApiGenerator,
    /// Server-side time.
    pub elapsed_ms: u64,
}

/// An error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong, naming the field.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn num_images_defaults_to_one_and_stays_off_the_wire() {
        let r: ApiRequest = serde_json::from_str(
            r#"{"prompt":"p","seed":1,"steps":2,"guidance":1.0,"width":8,"height":8,"scheduler":"ddim"}"#,
        )
        .unwrap();
        assert_eq!(r.num_images, 1);
        assert!(!serde_json::to_string(&r).unwrap().contains("num_images"));
        let r = ApiRequest { num_images: 3, ..r };
        assert!(serde_json::to_string(&r).unwrap().contains(r#""num_images":3"#));
    }

    #[test]
    fn a_model_is_named_by_digests_that_agree() {
        let files: BTreeMap<String, String> =
            [("unet/model.onnx".to_string(), "ab".repeat(32)), ("vae_decoder/model.onnx".into(), "cd".repeat(32))]
                .into();
        let sha256 = latentmint_core::metadata::model_digest(&files);
        let good = ApiModel { id: "m".into(), sha256: sha256.clone(), files: files.clone() };
        assert_eq!(good.check(), Ok(()));
        let bare = ApiModel { files: BTreeMap::new(), ..good.clone() };
        assert_eq!(bare.check(), Ok(()), "a model that lists no files is named by its digest alone");
        let other = ApiModel { sha256: "ef".repeat(32), ..good.clone() };
        assert!(other.check().unwrap_err().contains("its files' digest is"));
        let upper = ApiModel { sha256: sha256.to_uppercase(), ..good.clone() };
        assert!(upper.check().unwrap_err().starts_with("model.sha256:"));
        let mut odd = files;
        odd.insert("text_encoder/model.onnx".into(), "not hex".into());
        let odd = ApiModel { files: odd, ..good };
        assert!(odd.check().unwrap_err().starts_with("model.files[text_encoder/model.onnx]:"));
    }
}
