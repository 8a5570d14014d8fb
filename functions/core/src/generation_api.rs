//! The JSON contract between a generation client (the SageMaker adapter) and a generation
//! server (the SageMaker container's `serve` binary), version 1.
//!
//! Request (`Content-Type: application/json`):
//! ```json
//! {"prompt": "a red circle", "negative_prompt": "", "seed": 7, "steps": 20, "guidance": 7.5,
//!  "width": 512, "height": 512, "scheduler": "ddim"}
//! ```
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
