//! Generation benchmark, the Rust side. Loads the engine once, generates one warm-up image and
//! prints `{"startup_s": ...}`; then generates one image per `gen <seed>` line on stdin and
//! prints one JSON line of timings for each, until stdin closes. infra/bench/generation.py
//! drives it image by image, alternating with the Python diffusers pipeline, so that both
//! sides meet the same machine conditions.

use std::io::{BufRead, Write};
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
    let threads: usize = arg(&args, "--threads", "2").parse()?;
    let size: u32 = arg(&args, "--size", "64").parse()?;
    let started = Instant::now();
    let mut engine = Engine::load(&model, &EngineOptions { intra_threads: threads, ..EngineOptions::default() })?;
    let mut req = ImageRequest {
        negative_prompt: "blurry".into(),
        steps,
        guidance: 7.5,
        ..ImageRequest::new("a red circle on a dark background", size, size)
    };
    engine.generate(&req)?; // warm-up
    let mut out = std::io::stdout().lock();
    writeln!(out, "{{\"startup_s\": {:.4}}}", started.elapsed().as_secs_f64())?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let Some(seed) = line.strip_prefix("gen ") else {
            return Err(format!("expected `gen <seed>`, got `{line}`").into());
        };
        req.seed = seed.trim().parse()?;
        let t = Instant::now();
        let img = engine.generate(&req)?;
        let image_s = t.elapsed().as_secs_f64();
        writeln!(
            out,
            "{{\"image_s\": {image_s:.5}, \"loop_overhead_ratio\": {:.6}, \"unet_share\": {:.4}}}",
            (img.loop_seconds - img.unet_seconds) / img.unet_seconds,
            img.unet_seconds / img.total_seconds
        )?;
        out.flush()?;
    }
    Ok(())
}
