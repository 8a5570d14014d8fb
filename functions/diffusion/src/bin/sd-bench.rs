//! Generation benchmark, the Rust side: loads the engine once, generates `--images` images
//! after one warm-up, and prints one JSON line of timings. infra/bench/generation.py runs it
//! next to the Python diffusers pipeline and writes the comparison.

use std::path::PathBuf;
use std::time::Instant;

use latentmint_diffusion::{Engine, EngineOptions, ImageRequest};

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let model = PathBuf::from(arg(&args, "--model", "models/tiny-sd"));
    let steps: u32 = arg(&args, "--steps", "20").parse()?;
    let images: usize = arg(&args, "--images", "10").parse()?;
    let threads: usize = arg(&args, "--threads", "2").parse()?;
    let size: u32 = arg(&args, "--size", "64").parse()?;
    let started = Instant::now();
    let mut engine = Engine::load(
        &model,
        &EngineOptions { ort_library: None, intra_threads: threads, cuda: false, parallel_cfg: None, loras: vec![] },
    )?;
    let startup = started.elapsed().as_secs_f64();
    let mut req = ImageRequest {
        prompt: "a red circle on a dark background".into(),
        negative_prompt: "blurry".into(),
        seed: 0,
        steps,
        guidance: 7.5,
        width: size,
        height: size,
        scheduler: "ddim".into(),
        initial_latents: None,
        step_noise: None,
        init_image: None,
    };
    engine.generate(&req)?; // warm-up
    let (mut per_image, mut overhead, mut unet_share) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..images {
        req.seed = i as u64 + 1;
        let t = Instant::now();
        let out = engine.generate(&req)?;
        per_image.push(t.elapsed().as_secs_f64());
        overhead.push((out.loop_seconds - out.unet_seconds) / out.unet_seconds);
        unet_share.push(out.unet_seconds / out.total_seconds);
    }
    per_image.sort_by(f64::total_cmp);
    overhead.sort_by(f64::total_cmp);
    unet_share.sort_by(f64::total_cmp);
    println!(
        "{{\"startup_s\": {startup:.4}, \"median_image_s\": {:.4}, \"images\": {images}, \"loop_overhead_ratio\": {:.6}, \"unet_share\": {:.4}}}",
        per_image[images / 2],
        overhead[images / 2],
        unet_share[images / 2]
    );
    Ok(())
}
