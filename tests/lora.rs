//! LoRA adapters merged at session load, against diffusers' `load_lora_weights` + `fuse_lora`
//! with the same adapter (fixtures by infra/model/make_lora_fixture.py).

use latentmint_core::ports::{GenerationRequest, Generator};
use latentmint_core::{GenerationParams, JobId};
use latentmint_diffusion::{Engine, EngineOptions, ImageRequest, LoraSpec, OnnxGenerator};
use latentmint_e2e::{ort_library, repo_root, tiny_model};
use serde_json::Value;

fn fixtures() -> std::path::PathBuf {
    repo_root().join("tests/fixtures/lora")
}

fn engine(loras: Vec<LoraSpec>) -> Engine {
    let opts =
        EngineOptions { ort_library: Some(ort_library()), intra_threads: 2, cuda: false, parallel_cfg: None, loras };
    Engine::load(&tiny_model(), &opts).expect("engine loads")
}

fn npy(name: &str) -> ndarray::ArrayD<f32> {
    ndarray_npy::read_npy(fixtures().join(name)).unwrap()
}

fn request() -> ImageRequest {
    let case: Value = serde_json::from_str(&std::fs::read_to_string(fixtures().join("case.json")).unwrap()).unwrap();
    ImageRequest {
        prompt: case["prompt"].as_str().unwrap().into(),
        negative_prompt: case["negative_prompt"].as_str().unwrap().into(),
        seed: 0,
        steps: case["steps"].as_u64().unwrap() as u32,
        guidance: case["guidance"].as_f64().unwrap() as f32,
        width: 64,
        height: 64,
        scheduler: "ddim".into(),
        initial_latents: Some(npy("latents_init.npy").iter().copied().collect()),
        step_noise: None,
        init_image: None,
    }
}

fn lora(file: &str, scale: f32) -> LoraSpec {
    LoraSpec { path: fixtures().join(file), scale }
}

#[test]
fn a_zero_lora_leaves_the_output_bit_identical() {
    let plain = engine(vec![]).generate(&request()).unwrap().png;
    let mut e = engine(vec![lora("lora-zero.safetensors", 1.0)]);
    assert_eq!(e.loras()[0].merged.get("unet").copied().unwrap_or(0) + e.loras()[0].merged["text_encoder"], 68);
    assert_eq!(e.generate(&request()).unwrap().png, plain);
}

#[test]
fn a_lora_matches_diffusers_fuse_lora_within_tolerance() {
    let mut e = engine(vec![lora("lora.safetensors", 0.8)]);
    let mut trace = Vec::new();
    let out = e.generate_traced(&request(), Some(&mut trace)).unwrap();
    let want = npy("latents_trace.npy");
    for (i, (ours, theirs)) in trace.iter().zip(want.outer_iter()).enumerate() {
        let max = ours.iter().zip(theirs.iter()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(max < 1e-4, "latents after step {i} differ by {max}");
    }
    let image = npy("image.npy");
    let max = out.float_image.iter().zip(image.iter()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(max < 1e-4, "image differs by {max}");
    // And the adapter really changed the picture.
    let plain = engine(vec![]).generate(&request()).unwrap();
    let moved = plain.float_image.iter().zip(&out.float_image).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(moved > 1e-3, "the LoRA changed nothing ({moved})");
}

#[test]
fn kohya_naming_gives_the_same_image() {
    let a = engine(vec![lora("lora.safetensors", 0.8)]).generate(&request()).unwrap().png;
    let b = engine(vec![lora("lora-kohya.safetensors", 0.8)]).generate(&request()).unwrap().png;
    assert_eq!(a, b);
}

#[tokio::test]
async fn provenance_records_the_adapter_hash_and_scale() {
    let opts = EngineOptions {
        ort_library: Some(ort_library()),
        intra_threads: 1,
        cuda: false,
        parallel_cfg: None,
        loras: vec![lora("lora.safetensors", 0.8)],
    };
    let g = OnnxGenerator::load(&tiny_model(), &opts).unwrap();
    let req = GenerationRequest {
        job_id: JobId::from_bytes([5; 32]),
        prompt: "a circle".into(),
        negative_prompt: String::new(),
        params: GenerationParams { steps: 2, guidance: 1.0, width: 64, height: 64, scheduler: "ddim".into(), seed: 1 },
        init_image: None,
    };
    let img = g.generate(&req).await.unwrap();
    let a = &img.record.adapters[0];
    let bytes = std::fs::read(fixtures().join("lora.safetensors")).unwrap();
    use sha2::Digest;
    assert_eq!(a.sha256, hex::encode(sha2::Sha256::digest(&bytes)));
    assert_eq!((a.name.as_str(), a.scale), ("lora.safetensors", 0.8));
}

#[test]
fn a_broken_adapter_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("style.safetensors");
    std::fs::write(&bad, b"not safetensors").unwrap();
    let opts = EngineOptions {
        ort_library: Some(ort_library()),
        intra_threads: 1,
        cuda: false,
        parallel_cfg: None,
        loras: vec![LoraSpec { path: bad, scale: 1.0 }],
    };
    let err = Engine::load(&tiny_model(), &opts).err().unwrap().to_string();
    assert!(err.contains("style.safetensors") && err.contains("not a safetensors file"), "{err}");
}
