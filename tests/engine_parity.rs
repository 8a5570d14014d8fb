//! The Rust engine against diffusers' OnnxStableDiffusionPipeline on the same model, prompt,
//! initial latents and parameters (fixture made by infra/model/make_parity_fixture.py).

use latentmint_diffusion::{Engine, EngineOptions, ImageRequest};
use latentmint_e2e::{ort_library, repo_root, tiny_model};
use serde_json::Value;

fn fixture() -> Value {
    let text = std::fs::read_to_string(repo_root().join("tests/fixtures/parity-ddim.json")).expect("fixture");
    serde_json::from_str(&text).expect("fixture JSON")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number") as f32).collect()
}

fn engine() -> Engine {
    Engine::load(&tiny_model(), &EngineOptions { ort_library: Some(ort_library()), intra_threads: 2 })
        .expect("engine loads")
}

#[test]
fn tokens_match_transformers_clip_tokenizer() {
    let f = fixture();
    let e = engine();
    let ids: Vec<i64> = f["token_ids"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
    assert_eq!(e.tokenize(f["prompt"].as_str().unwrap()).unwrap().ids, ids);
    let neg: Vec<i64> = f["negative_token_ids"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
    assert_eq!(e.tokenize(f["negative_prompt"].as_str().unwrap()).unwrap().ids, neg);
}

#[test]
fn ddim_image_matches_diffusers_within_1e_4() {
    let f = fixture();
    let mut e = engine();
    let shape: Vec<usize> = f["image_shape"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
    let req = ImageRequest {
        prompt: f["prompt"].as_str().unwrap().into(),
        negative_prompt: f["negative_prompt"].as_str().unwrap().into(),
        seed: 0,
        steps: f["steps"].as_u64().unwrap() as u32,
        guidance: f["guidance"].as_f64().unwrap() as f32,
        width: shape[1] as u32,
        height: shape[0] as u32,
        scheduler: "ddim".into(),
        initial_latents: Some(floats(&f["latents"])),
    };
    let out = e.generate(&req).expect("generates");
    let want = floats(&f["image"]);
    assert_eq!(out.float_image.len(), want.len());
    let max = out.float_image.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(max < 1e-4, "max abs difference {max}");
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
    let req = ImageRequest {
        prompt: "x".into(),
        negative_prompt: String::new(),
        seed: 1,
        steps: 2,
        guidance: 1.0,
        width: 63,
        height: 64,
        scheduler: "ddim".into(),
        initial_latents: None,
    };
    let err = e.generate(&req).unwrap_err().to_string();
    assert!(err.starts_with("width:") && err.contains("multiple"), "{err}");
    let err = e.generate(&ImageRequest { width: 64, scheduler: "plms".into(), ..req.clone() }).unwrap_err().to_string();
    assert!(err.starts_with("scheduler:"), "{err}");
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
