//! # latentmint-diffusion
//!
//! Stable Diffusion inference on ONNX Runtime, in Rust. Reads any model folder in the
//! diffusers/optimum ONNX layout, tokenizes with CLIP's BPE, denoises with DDIM and
//! classifier-free guidance, decodes with the VAE and writes a PNG carrying its parameters.
//! The ONNX Runtime shared library is loaded at run time (`load-dynamic`), so the same binary
//! runs with the CPU library from PyPI or a CUDA build.

mod adapter;
mod error;
pub mod latents;
pub mod lora;
pub mod model;
mod pipeline;
mod png;
pub mod schedulers;
mod tensor;
pub mod tokenizer;
mod worker;

pub use adapter::{GENERATOR_NAME, ModelIdentity, OnnxGenerator};
pub use error::{DiffusionError, Result};
pub use lora::{AppliedLora, LoraSpec};
pub use pipeline::{Engine, EngineOptions, GeneratedImage, ImageRequest, InitImage, MAX_BATCH, runtime};
pub use png::decode_rgb;
pub use tensor::Precision;
