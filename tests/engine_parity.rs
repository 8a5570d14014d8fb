//! The Rust engine against a Python reference on the same model, prompt, initial latents, step
//! noise and parameters, for every scheduler. What the reference is, exactly: the fixtures come
//! from infra/model/make_parity_fixture.py, a text-to-image loop written after diffusers'
//! `OnnxStableDiffusionPipeline.__call__` (CLIP tokenizer, onnxruntime sessions of the three
//! exported models, classifier-free guidance, the VAE decode), around diffusers' own scheduler
//! classes built from the model's scheduler config. It is not the pipeline object itself, which
//! cannot hand out the noise each stochastic step draws or the latents after each step; the
//! generation benchmark (infra/bench/generation.py) runs the pipeline object itself.

use latentmint_diffusion::{Engine, EngineOptions, ImageRequest, InitImage};
use latentmint_e2e::{ort_library, repo_root, tiny_model};
use serde_json::Value;

fn case(name: &str) -> (Value, std::path::PathBuf) {
    let dir = repo_root().join("tests/fixtures/parity").join(name);
    let text = std::fs::read_to_string(dir.join("case.json")).expect("fixture case.json");
    (serde_json::from_str(&text).expect("fixture JSON"), dir)
}

fn npy(path: &std::path::Path) -> ndarray::ArrayD<f32> {
    ndarray_npy::read_npy(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn engine() -> Engine {
    engine_with(None)
}

/// The tiny model on 2 threads; `parallel_cfg` picks the CFG layout (`None`: the engine's choice).
fn engine_with(parallel_cfg: Option<bool>) -> Engine {
    Engine::load(
        &tiny_model(),
        &EngineOptions { ort_library: Some(ort_library()), intra_threads: 2, parallel_cfg, ..EngineOptions::default() },
    )
    .expect("engine loads")
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect()
}

#[test]
fn tokens_match_transformers_clip_tokenizer() {
    let (f, _) = case("ddim");
    let e = engine();
    assert_eq!(e.tokenize(f["prompt"].as_str().unwrap()).unwrap().ids, ids(&f["token_ids"]));
    assert_eq!(e.tokenize("blurry").unwrap().ids, ids(&f["negative_token_ids"]));
}

/// Generates `req` and compares the latents after every step and the image with the
/// reference in `dir`, within 1e-4.
fn assert_matches_reference(name: &str, e: &mut Engine, req: &ImageRequest, dir: &std::path::Path) {
    let mut trace = Vec::new();
    let out = e.generate_traced(req, Some(&mut trace)).unwrap_or_else(|err| panic!("{name}: {err}"));
    let trace_ref = npy(&dir.join("latents_trace.npy"));
    assert_eq!(trace.len(), trace_ref.shape()[0], "{name}: one latent per step run");
    for (i, (ours, theirs)) in trace.iter().zip(trace_ref.outer_iter()).enumerate() {
        let max = ours.iter().zip(theirs.iter()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(max < 1e-4, "{name}: latents after step {i} differ by {max}");
    }
    let want = npy(&dir.join("image.npy"));
    assert_eq!(out.float_image.len(), want.len());
    let max = out.float_image.iter().zip(want.iter()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(max < 1e-4, "{name}: image differs by {max}");
}

/// The request a fixture case describes, starting from its initial latents.
fn case_request(f: &Value, dir: &std::path::Path, scheduler: &str) -> ImageRequest {
    ImageRequest {
        prompt: f["prompt"].as_str().unwrap().into(),
        negative_prompt: f["negative_prompt"].as_str().unwrap().into(),
        seed: 0,
        steps: f["steps"].as_u64().unwrap() as u32,
        guidance: f["guidance"].as_f64().unwrap() as f32,
        width: f["width"].as_u64().unwrap() as u32,
        height: f["height"].as_u64().unwrap() as u32,
        scheduler: scheduler.into(),
        initial_latents: Some(npy(&dir.join("latents_init.npy")).iter().copied().collect()),
        step_noise: None,
        init_image: None,
    }
}

/// Runs one scheduler's case and compares the latents after every step and the image.
fn parity(name: &str) {
    let (f, dir) = case(name);
    let mut e = engine();
    let noise = dir.join("step_noise.npy");
    let step_noise = noise.exists().then(|| {
        let a = npy(&noise);
        a.outer_iter().map(|n| n.iter().copied().collect::<Vec<f32>>()).collect::<Vec<_>>()
    });
    let req = ImageRequest { step_noise, ..case_request(&f, &dir, name) };
    assert_matches_reference(name, &mut e, &req, &dir);
}

#[test]
fn ddim_matches_diffusers() {
    parity("ddim");
}

#[test]
fn euler_matches_diffusers() {
    parity("euler");
}

#[test]
fn euler_ancestral_matches_diffusers() {
    parity("euler_a");
}

#[test]
fn dpm_solver_pp_2m_matches_diffusers() {
    parity("dpmpp_2m");
}

#[test]
fn lcm_matches_diffusers() {
    parity("lcm");
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let mut e = engine();
    let mut req = ImageRequest {
        prompt: "a blue square".into(),
        negative_prompt: String::new(),
        seed: 42,
        steps: 3,
        guidance: 5.0,
        width: 64,
        height: 64,
        scheduler: "ddim".into(),
        initial_latents: None,
        step_noise: None,
        init_image: None,
    };
    let a = e.generate(&req).unwrap().png;
    let b = e.generate(&req).unwrap().png;
    assert_eq!(a, b);
    req.seed = 43;
    assert_ne!(e.generate(&req).unwrap().png, a);
}

#[test]
fn bad_requests_name_the_field() {
    let mut e = engine();
    let req = ImageRequest { seed: 1, steps: 2, guidance: 1.0, ..ImageRequest::new("x", 63, 64) };
    let err = e.generate(&req).unwrap_err().to_string();
    assert!(err.starts_with("width:") && err.contains("multiple"), "{err}");
    // A multiple of the VAE's factor (2) that the UNet's downsampling cannot halve evenly: the
    // request is refused before any session runs, naming the sizes that work.
    let err = e.generate(&ImageRequest { width: 66, ..req.clone() }).unwrap_err().to_string();
    assert!(err.starts_with("width: 66 is not a multiple of 4") && err.ends_with("use 64 or 68"), "{err}");
    let err = e.generate(&ImageRequest { width: 64, scheduler: "plms".into(), ..req.clone() }).unwrap_err().to_string();
    assert!(err.starts_with("scheduler:"), "{err}");
    for g in [f32::NAN, f32::INFINITY, -1.0, 31.0] {
        let err = e.generate(&ImageRequest { width: 64, guidance: g, ..req.clone() }).unwrap_err().to_string();
        assert!(err.starts_with("guidance:") && err.contains("from 0 to 30"), "{g}: {err}");
    }
    let long = "word ".repeat(200);
    let out = e.generate(&ImageRequest { width: 64, prompt: long, ..req }).unwrap();
    assert!(out.prompt_truncated);
}

#[test]
fn missing_model_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = Engine::load(&dir.path().join("nope"), &EngineOptions::default()).err().unwrap().to_string();
    assert!(err.contains("nope") && err.contains("does not exist"), "{err}");
    std::fs::write(dir.path().join("model_index.json"), "{}").unwrap();
    let err = Engine::load(dir.path(), &EngineOptions::default()).err().unwrap().to_string();
    assert!(err.contains("text_encoder/model.onnx"), "{err}");
}

/// `latentmint generate --latents x.npy` reproduces the reference image (to one 8-bit level).
#[test]
fn generate_command_reproduces_diffusers_from_npy_latents() {
    let (f, dir) = case("ddim");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("g.png");
    let status = std::process::Command::new(latentmint_e2e::latentmint_bin())
        .args(["generate", "--model"])
        .arg(tiny_model())
        .args(["--prompt", f["prompt"].as_str().unwrap(), "--negative", "blurry", "--steps", "4", "--guidance", "7.5"])
        .arg("--latents")
        .arg(dir.join("latents_init.npy"))
        .arg("--out")
        .arg(&out)
        .env("ORT_DYLIB_PATH", ort_library())
        .status()
        .unwrap();
    assert!(status.success());
    let img = image::open(&out).unwrap().to_rgb8();
    let want = npy(&dir.join("image.npy"));
    let worst = img
        .as_raw()
        .iter()
        .zip(want.iter())
        .map(|(&a, &b)| (f32::from(a) - (b * 255.0).round()).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 1.0, "pixel difference {worst}");
}

/// img2img: encode the init image, noise it to the start step, run the remaining steps.
fn img2img_parity(name: &str) {
    let (f, dir) = case(name);
    let mut e = engine();
    let init_rgb: ndarray::ArrayD<u8> = ndarray_npy::read_npy(dir.join("init_rgb.npy")).unwrap();
    let strength = f["strength"].as_f64().unwrap() as f32;
    let init_image = Some(InitImage { rgb: init_rgb.iter().copied().collect(), strength });
    let req = ImageRequest { init_image, ..case_request(&f, &dir, f["scheduler"].as_str().unwrap()) };
    assert_matches_reference(name, &mut e, &req, &dir);
}

#[test]
fn img2img_ddim_matches_diffusers() {
    img2img_parity("img2img_ddim");
}

#[test]
fn img2img_euler_matches_diffusers() {
    img2img_parity("img2img_euler");
}

#[test]
fn img2img_refuses_bad_strength_and_size() {
    let mut e = engine();
    let base = ImageRequest {
        prompt: "x".into(),
        negative_prompt: String::new(),
        seed: 1,
        steps: 4,
        guidance: 1.0,
        width: 64,
        height: 64,
        scheduler: "ddim".into(),
        initial_latents: None,
        step_noise: None,
        init_image: Some(InitImage { rgb: vec![128; 64 * 64 * 3], strength: 0.1 }),
    };
    let err = e.generate(&base).unwrap_err().to_string();
    assert!(err.starts_with("strength:"), "{err}");
    let err = e
        .generate(&ImageRequest { init_image: Some(InitImage { rgb: vec![0; 10], strength: 0.5 }), ..base })
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("init_image:") && err.contains("resize"), "{err}");
}

/// A batch is the same images as one generation per seed: image k of a batch seeded s is the
/// single image seeded s + k, on either CFG layout (two sessions side by side, or one run with
/// the unconditional rows first), with a stochastic scheduler so every image's noise counts.
#[test]
fn batch_images_equal_single_generations() {
    for parallel in [true, false] {
        let mut e = engine_with(Some(parallel));
        let req = ImageRequest {
            prompt: "a green triangle".into(),
            negative_prompt: "blurry".into(),
            seed: 7,
            steps: 4,
            guidance: 6.0,
            width: 64,
            height: 32,
            scheduler: "euler_a".into(),
            initial_latents: None,
            step_noise: None,
            init_image: None,
        };
        let batch = e.generate_batch(&req, 3).unwrap();
        assert_eq!(batch.iter().map(|i| i.seed).collect::<Vec<_>>(), [7, 8, 9]);
        for img in &batch {
            let single = e.generate(&ImageRequest { seed: img.seed, ..req.clone() }).unwrap();
            let max = img.float_image.iter().zip(&single.float_image).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(max < 1e-4, "parallel={parallel} seed {}: differs from the single image by {max}", img.seed);
        }
        assert_ne!(batch[0].rgb, batch[1].rgb, "different seeds give different images");
    }
}

/// A copy of the tiny model whose UNet config leaves out a down block, so the engine believes
/// 66 px works: 66 is a multiple of the VAE factor, but 33 latent rows do not survive the
/// UNet's downsample-upsample round trip, and ONNX Runtime fails inside the denoising loop, on
/// both CFG halves. The error must come back, and the engine (with its second UNet on its own
/// thread) must serve the next request as if nothing happened.
#[test]
fn a_unet_failure_mid_generation_is_an_error_and_the_engine_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny-sd-misconfigured");
    copy_dir(&tiny_model(), &model);
    let config_path = model.join("unet/config.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["block_out_channels"] = serde_json::json!([32]);
    std::fs::write(&config_path, config.to_string()).unwrap();
    for parallel in [true, false] {
        let mut e = Engine::load(
            &model,
            &EngineOptions {
                ort_library: Some(ort_library()),
                intra_threads: 2,
                parallel_cfg: Some(parallel),
                ..EngineOptions::default()
            },
        )
        .expect("engine loads");
        let req = ImageRequest {
            seed: 3,
            steps: 2,
            guidance: 7.5,
            negative_prompt: "blurry".into(),
            ..ImageRequest::new("a red circle", 64, 64)
        };
        let before = e.generate(&req).unwrap().png;
        let err = e.generate(&ImageRequest { width: 66, height: 66, ..req.clone() }).unwrap_err().to_string();
        assert!(err.starts_with("unet:"), "parallel={parallel}: {err}");
        assert_eq!(e.generate(&req).unwrap().png, before, "parallel={parallel}: the next image is unaffected");
    }
}

#[test]
fn batch_size_and_step_noise_are_checked() {
    let mut e = engine();
    let req = ImageRequest { seed: 1, steps: 2, guidance: 1.0, ..ImageRequest::new("x", 32, 32) };
    for n in [0, latentmint_diffusion::MAX_BATCH + 1] {
        let err = e.generate_batch(&req, n).unwrap_err().to_string();
        assert!(err.starts_with("num_images:") && err.contains("1 to 16"), "{err}");
    }
    let err = e.generate_batch(&ImageRequest { step_noise: Some(vec![]), ..req.clone() }, 2).unwrap_err().to_string();
    assert!(err.starts_with("step_noise:"), "{err}");
    let err =
        e.generate_batch(&ImageRequest { initial_latents: Some(vec![0.0; 64]), ..req }, 2).unwrap_err().to_string();
    assert!(err.starts_with("initial_latents:") && err.contains("2 image(s)"), "{err}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
