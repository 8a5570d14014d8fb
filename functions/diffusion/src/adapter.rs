//! The core's `Generator` port on this engine: the local / Lambda CPU fallback.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use latentmint_core::GenerationRecord;
use latentmint_core::job::AdapterRecord;
use latentmint_core::ports::{GeneratedImage, GenerationRequest, Generator, PortError, PortResult};
use sha2::{Digest, Sha256};

use crate::{DiffusionError, Engine, EngineOptions, ImageRequest};

/// Name recorded in provenance.
pub const GENERATOR_NAME: &str = "latentmint-diffusion";

/// ONNX Runtime generator. The engine is loaded once and shared; generations run one at a
/// time on a blocking thread (ONNX Runtime already uses every core it is given).
pub struct OnnxGenerator {
    engine: Arc<Mutex<Engine>>,
    backend: String,
}

/// The loaded model and adapters, as a generation record names them.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelIdentity {
    /// Model id.
    pub id: String,
    /// Digest over the model's files.
    pub sha256: String,
    /// SHA-256 of each file.
    pub files: std::collections::BTreeMap<String, String>,
    /// Merged LoRA adapters, in order.
    pub adapters: Vec<AdapterRecord>,
}

impl ModelIdentity {
    fn of(e: &Engine) -> Self {
        let m = e.model();
        Self {
            id: m.id.clone(),
            sha256: m.digest().to_string(),
            files: m.files.clone(),
            adapters: e
                .loras()
                .iter()
                .map(|l| AdapterRecord { name: l.name.clone(), sha256: l.sha256.clone(), scale: l.scale })
                .collect(),
        }
    }
}

impl OnnxGenerator {
    /// Loads the model in `dir`.
    pub fn load(dir: &Path, opts: &EngineOptions) -> Result<Self, DiffusionError> {
        Ok(Self { engine: Arc::new(Mutex::new(Engine::load(dir, opts)?)), backend: "onnx-cpu".into() })
    }

    /// Refuses a width or height this model cannot make (see [`crate::model::ModelInfo::size_multiple`]),
    /// so a collection can be checked before any job is queued.
    pub fn check_size(&self, width: u32, height: u32) -> Result<(), DiffusionError> {
        let e = self.engine.lock().map_err(|_| DiffusionError::BadOutput("engine lock poisoned".into()))?;
        e.model().check_size(width, height)
    }

    /// The model and adapters loaded (hashed once, at load).
    pub fn identity(&self) -> PortResult<ModelIdentity> {
        let e = self.engine.lock().map_err(|_| poisoned())?;
        Ok(ModelIdentity::of(&e))
    }
}

fn poisoned() -> PortError {
    PortError::Permanent("generator lock poisoned by an earlier panic".into())
}

fn port_error(e: DiffusionError) -> PortError {
    // Nothing the engine reports gets better by retrying the same request.
    PortError::Permanent(e.to_string())
}

#[async_trait]
impl Generator for OnnxGenerator {
    async fn generate(&self, req: &GenerationRequest) -> PortResult<GeneratedImage> {
        let engine = self.engine.clone();
        let init_image = match &req.init_image {
            None => None,
            Some(init) => {
                let (rgb, w, h) =
                    crate::png::decode_rgb(&init.png).map_err(|e| PortError::Permanent(format!("init image: {e}")))?;
                if (w, h) != (req.params.width, req.params.height) {
                    return Err(PortError::Permanent(format!(
                        "init image is {w}x{h}, the request {}x{}; generate at the image's size",
                        req.params.width, req.params.height
                    )));
                }
                Some(crate::InitImage { rgb, strength: init.strength })
            }
        };
        let image_req = ImageRequest {
            prompt: req.prompt.clone(),
            negative_prompt: req.negative_prompt.clone(),
            seed: req.params.seed,
            steps: req.params.steps,
            guidance: req.params.guidance,
            width: req.params.width,
            height: req.params.height,
            scheduler: req.params.scheduler.clone(),
            initial_latents: None,
            step_noise: None,
            init_image,
        };
        let (out, model) = tokio::task::spawn_blocking(move || {
            let mut e = engine.lock().map_err(|_| poisoned())?;
            let out = e.generate(&image_req).map_err(port_error)?;
            Ok::<_, PortError>((out, ModelIdentity::of(&e)))
        })
        .await
        .map_err(|e| PortError::Permanent(format!("generation thread: {e}")))??;
        let record = GenerationRecord {
            model_id: model.id,
            model_sha256: model.sha256,
            model_files: model.files,
            params: req.params.clone(),
            prompt_truncated: out.prompt_truncated,
            generator: GENERATOR_NAME.into(),
            generator_version: env!("CARGO_PKG_VERSION").into(),
            backend: self.backend.clone(),
            fallback_reason: None,
            adapters: model.adapters,
            elapsed_ms: (out.total_seconds * 1000.0) as u64,
            image_sha256: hex::encode(Sha256::digest(&out.png)),
        };
        Ok(GeneratedImage { png: out.png, record })
    }
}
