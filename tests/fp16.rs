//! fp16 exports (float inputs and outputs in float16, as `optimum-cli export onnx --dtype fp16`
//! writes them): against diffusers' own pipeline on the same export, against the fp32 export of
//! the same weights, and with LoRA merged into fp16 initializers. models/tiny-sd-fp16 is
//! models/tiny-sd built in fp16 (infra/model/build_tiny_sd.py --fp16).

use latentmint_diffusion::{Engine, EngineOptions, ImageRequest, InitImage, LoraSpec, Precision};
use latentmint_e2e::{ort_library, repo_root, tiny_model};
use serde_json::Value;

fn fp16_model() -> std::path::PathBuf {
    repo_root().join("models/tiny-sd-fp16")
}

fn engine(dir: &std::path::Path, loras: Vec<LoraSpec>) -> Engine {
    let opts =
        EngineOptions { ort_library: Some(ort_library()), intra_threads: 2, cuda: false, parallel_cfg: None, loras };
    Engine::load(dir, &opts).expect("engine loads")
}

fn npy(path: std::path::PathBuf) -> ndarray::ArrayD<f32> {
    ndarray_npy::read_npy(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn request() -> ImageRequest {
    let dir = repo_root().join("tests/fixtures/parity/fp16_ddim");
    let case: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap()).unwrap();
    ImageRequest {
        negative_prompt: case["negative_prompt"].as_str().unwrap().into(),
        steps: case["steps"].as_u64().unwrap() as u32,
        guidance: case["guidance"].as_f64().unwrap() as f32,
        initial_latents: Some(npy(dir.join("latents_init.npy")).iter().copied().collect()),
        ..ImageRequest::new(case["prompt"].as_str().unwrap(), 64, 64)
    }
}

/// Largest and mean absolute difference.
fn diff(a: &[f32], b: &[f32]) -> (f32, f32) {
    assert_eq!(a.len(), b.len());
    let d: Vec<f32> = a.iter().zip(b).map(|(x, y)| (x - y).abs()).collect();
    (d.iter().copied().fold(0.0, f32::max), d.iter().sum::<f32>() / d.len() as f32)
}

#[test]
fn the_fp16_export_is_recognised() {
    let e = engine(&fp16_model(), vec![]);
    assert_eq!(e.precision(), Precision::F16);
    assert_eq!(engine(&tiny_model(), vec![]).precision(), Precision::F32);
}

#[test]
fn fp16_matches_diffusers_on_the_same_export() {
    // diffusers runs the scheduler in fp16 too, the engine in f32: fp16 rounding apart, equal.
    let out = engine(&fp16_model(), vec![]).generate(&request()).unwrap();
    let want = npy(repo_root().join("tests/fixtures/parity/fp16_ddim/image.npy"));
    let (max, mean) = diff(&out.float_image, want.as_slice().unwrap());
    assert!(max < FP16_MAX && mean < FP16_MEAN, "fp16 image differs from diffusers': max {max}, mean {mean}");
}

#[test]
fn fp16_and_fp32_exports_of_one_model_agree() {
    let a = engine(&fp16_model(), vec![]).generate(&request()).unwrap();
    let b = engine(&tiny_model(), vec![]).generate(&request()).unwrap();
    let (max, mean) = diff(&a.float_image, &b.float_image);
    assert!(max < FP16_MAX && mean < FP16_MEAN, "fp16 vs fp32: max {max}, mean {mean}");
}

#[test]
fn lora_merges_into_fp16_weights_and_img2img_runs() {
    let lora = || vec![LoraSpec { path: repo_root().join("tests/fixtures/lora/lora.safetensors"), scale: 0.8 }];
    let a = engine(&fp16_model(), lora()).generate(&request()).unwrap();
    let b = engine(&tiny_model(), lora()).generate(&request()).unwrap();
    let (max, mean) = diff(&a.float_image, &b.float_image);
    assert!(max < FP16_MAX && mean < FP16_MEAN, "fp16+LoRA vs fp32+LoRA: max {max}, mean {mean}");
    let plain = engine(&fp16_model(), vec![]).generate(&request()).unwrap();
    assert!(diff(&a.float_image, &plain.float_image).0 > 0.05, "the adapter changes the fp16 image");

    // img2img through the fp16 VAE encoder.
    let init = InitImage { rgb: a.rgb.clone(), strength: 0.5 };
    let req = ImageRequest { initial_latents: None, init_image: Some(init), ..request() };
    let x = engine(&fp16_model(), vec![]).generate(&req).unwrap();
    let y = engine(&tiny_model(), vec![]).generate(&req).unwrap();
    let (max, mean) = diff(&x.float_image, &y.float_image);
    assert!(max < FP16_MAX && mean < FP16_MEAN, "fp16 vs fp32 img2img: max {max}, mean {mean}");
}

/// Tolerances for fp16 (10-bit mantissa, ~1e-3 relative) through four steps and a decoder;
/// measured: max 0.0015, mean 0.0002 (about 3x headroom).
const FP16_MAX: f32 = 0.005;
const FP16_MEAN: f32 = 0.0007;
