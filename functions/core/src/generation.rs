//! What determines an image: the generation parameters, the bounds every door accepts, and a
//! generator's request (prompt, parameters, and for img2img the image to start from:
//! `GenerationRequest` and `InitImage`, in `job.rs`, since a request names its job).

use serde::{Deserialize, Serialize};

/// A seed from a SHA-256 digest: its first 8 bytes, kept below 2^53 so the seed survives a
/// round trip through JSON numbers in any language (a JavaScript verifier reads it as a double).
pub fn seed_from_digest(d: &[u8; 32]) -> u64 {
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]) >> 11
}

/// Classifier-free guidance scales every door accepts (collection files, the generation API,
/// the engine): 7.5 is typical, 1 or less skips the unconditional pass.
pub const GUIDANCE_RANGE: std::ops::RangeInclusive<f32> = 0.0..=30.0;

/// The widest and tallest image every door accepts, in pixels (a larger one would only exhaust
/// memory: the latents and attention grow with the square of the side).
pub const MAX_IMAGE_SIDE: u32 = 2048;

/// LoRA strengths every door accepts: 1 is the adapter as trained, 0 leaves the model as it is.
pub const LORA_SCALE_RANGE: std::ops::RangeInclusive<f32> = -4.0..=4.0;

/// Parameters that, with the prompt and the model, determine the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationParams {
    /// Denoising steps.
    pub steps: u32,
    /// Classifier-free guidance scale.
    pub guidance: f32,
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
    /// Scheduler name.
    pub scheduler: String,
    /// Noise seed.
    pub seed: u64,
}
