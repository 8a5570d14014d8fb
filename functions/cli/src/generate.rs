//! `latentmint generate`: one image from a prompt, straight from the engine. With
//! `--latents`, the initial noise comes from a .npy file, so a run of diffusers (or any other
//! implementation) can be reproduced exactly.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use latentmint_core::sanitize::sanitize_prompt;
use latentmint_diffusion::{Engine, EngineOptions, ImageRequest, LoraSpec};

/// `latentmint generate`
#[derive(clap::Args)]
pub struct GenerateArgs {
    /// Model folder (diffusers/optimum ONNX layout).
    #[arg(long)]
    pub model: PathBuf,
    /// Prompt.
    #[arg(long)]
    pub prompt: String,
    /// Negative prompt.
    #[arg(long, default_value = "")]
    pub negative: String,
    /// Noise seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Denoising steps.
    #[arg(long, default_value_t = 20)]
    pub steps: u32,
    /// Guidance scale.
    #[arg(long, default_value_t = 7.5)]
    pub guidance: f32,
    /// Width in pixels.
    #[arg(long, default_value_t = 64)]
    pub width: u32,
    /// Height in pixels.
    #[arg(long, default_value_t = 64)]
    pub height: u32,
    /// Scheduler: ddim, euler, euler_a, dpmpp_2m, lcm.
    #[arg(long, default_value = "ddim")]
    pub scheduler: String,
    /// Initial latents, float32 .npy of shape (1, C, H/f, W/f), instead of seeded noise.
    #[arg(long)]
    pub latents: Option<PathBuf>,
    /// LoRA adapter (safetensors, diffusers or kohya naming); repeatable.
    #[arg(long)]
    pub lora: Vec<PathBuf>,
    /// Strength of the LoRA adapters.
    #[arg(long, default_value_t = 1.0)]
    pub lora_scale: f32,
    /// Images to make in one batch (seeds seed, seed+1, ...); more than one writes
    /// `<out>-<k>.png`.
    #[arg(long, default_value_t = 1)]
    pub count: usize,
    /// Output PNG.
    #[arg(long, default_value = "out.png")]
    pub out: PathBuf,
    /// ONNX Runtime shared library.
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_library: Option<PathBuf>,
    /// ONNX Runtime threads per operator (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

pub fn generate(a: GenerateArgs) -> anyhow::Result<ExitCode> {
    let prompt = sanitize_prompt("--prompt", &a.prompt)?;
    let negative =
        if a.negative.trim().is_empty() { String::new() } else { sanitize_prompt("--negative", &a.negative)? };
    let mut engine = Engine::load(
        &a.model,
        &EngineOptions {
            ort_library: a.ort_library.clone(),
            intra_threads: a.threads,
            cuda: false,
            parallel_cfg: None,
            loras: a.lora.iter().map(|p| LoraSpec { path: p.clone(), scale: a.lora_scale }).collect(),
        },
    )
    .with_context(|| format!("--model {}", a.model.display()))?;
    // The exact shape this model takes, not only the right number of values: a transposed
    // array or one with other channels would silently make another image.
    // The exact shape this model takes, not only the right number of values.
    let initial_latents = match &a.latents {
        Some(p) => {
            let bytes = std::fs::read(p).with_context(|| format!("--latents {}: cannot read it", p.display()))?;
            let m = engine.model();
            let f = m.vae_scale_factor as u32;
            let want = [a.count, m.latent_channels, (a.height / f) as usize, (a.width / f) as usize];
            let latents = latentmint_diffusion::latents::read_latents(&bytes, want)
                .map_err(|e| anyhow::anyhow!("--latents {}: {e}", p.display()))?;
            Some(latents)
        }
        None => None,
    };
    let req = ImageRequest {
        prompt,
        negative_prompt: negative,
        seed: a.seed,
        steps: a.steps,
        guidance: a.guidance,
        width: a.width,
        height: a.height,
        scheduler: a.scheduler.clone(),
        initial_latents,
        step_noise: None,
        init_image: None,
    };
    let images = engine.generate_batch(&req, a.count)?;
    for (k, out) in images.iter().enumerate() {
        let path = if images.len() == 1 {
            a.out.clone()
        } else {
            let stem = a.out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
            a.out.with_file_name(format!("{stem}-{k}.png"))
        };
        std::fs::write(&path, &out.png).with_context(|| format!("cannot write {}", path.display()))?;
        println!(
            "{} ({}x{}, {} steps {}, seed {}, {:.2}s for the batch){}",
            path.display(),
            out.width,
            out.height,
            a.steps,
            a.scheduler,
            out.seed,
            out.total_seconds,
            if out.prompt_truncated { " — prompt cut to CLIP's 77 tokens" } else { "" }
        );
    }
    Ok(ExitCode::SUCCESS)
}
