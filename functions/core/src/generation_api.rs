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

use crate::job::GenerationParams;

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
}
