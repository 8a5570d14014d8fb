//! The Stable Diffusion safety checker on ONNX Runtime, in the layout diffusers exports it
//! (`scripts/convert_stable_diffusion_checkpoint_to_onnx.py`, `OnnxStableDiffusionPipeline`):
//!
//! ```text
//! safety_checker/model.onnx               clip_input (N,3,S,S), images (N,H,W,3) -> out_images, has_nsfw_concepts
//! feature_extractor/preprocessor_config.json   the CLIPImageProcessor that makes clip_input
//! ```
//!
//! A Stable Diffusion model folder that ships one is checked with it; `[qa] safety_checker`
//! names one for a model that does not. `infra/model/export_safety_checker.py --random` writes
//! a tiny one with seeded random weights and the verdicts diffusers' own checker gives.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use image::DynamicImage;
use latentmint_core::qa::QaModel;
use ndarray::Array4;
use ort::session::Session;
use ort::value::Tensor;
use sha2::{Digest, Sha256};

use crate::QaError;
use crate::processor::ClipProcessor;

/// The files of a safety checker, relative to the folder that holds it.
const FILES: [&str; 2] = ["safety_checker/model.onnx", "feature_extractor/preprocessor_config.json"];

/// A loaded safety checker.
pub struct SafetyChecker {
    session: Mutex<Session>,
    processor: ClipProcessor,
    name: String,
    digest: String,
}

impl SafetyChecker {
    /// Whether `dir` holds a safety checker in diffusers' layout (`safety_checker/model.onnx`).
    pub fn present(dir: &Path) -> bool {
        dir.join(FILES[0]).is_file()
    }

    /// Loads the checker in `dir` (a diffusers model folder, or one holding only
    /// `safety_checker/` and `feature_extractor/`), with ONNX Runtime from `ort_library` when
    /// given, else from `ORT_DYLIB_PATH`.
    pub fn load_with(dir: &Path, ort_library: Option<&Path>) -> Result<Self, QaError> {
        let paths: Vec<PathBuf> = FILES.iter().map(|f| dir.join(f)).collect();
        if let Some(missing) = paths.iter().find(|p| !p.is_file()) {
            return Err(QaError::Model(format!(
                "{}: no such file; a safety checker is a folder with {} and {}, as diffusers exports them",
                missing.display(),
                FILES[0],
                FILES[1]
            )));
        }
        let processor = ClipProcessor::load(&paths[1])?;
        let env = latentmint_diffusion::runtime(ort_library).map_err(|e| QaError::Model(e.to_string()))?;
        let failed = |e: &dyn std::fmt::Display| QaError::Model(format!("{}: {e}", paths[0].display()));
        let session = Session::builder(&env)
            .map_err(|e| failed(&e))?
            .with_intra_threads(1)
            .map_err(|e| failed(&e))?
            .commit_from_file(&paths[0])
            .map_err(|e| failed(&e))?;
        for input in ["clip_input", "images"] {
            if !session.inputs().iter().any(|i| i.name() == input) {
                return Err(failed(&format!(
                    "has no input `{input}`: not a safety checker as diffusers exports it (clip_input, images)"
                )));
            }
        }
        let mut files = BTreeMap::new();
        for (file, path) in FILES.iter().zip(&paths) {
            let bytes = std::fs::read(path).map_err(|e| QaError::Model(format!("{}: {e}", path.display())))?;
            files.insert((*file).to_string(), format!("{:x}", Sha256::digest(&bytes)));
        }
        Ok(Self {
            session: Mutex::new(session),
            processor,
            name: crate::folder_name(dir, "safety_checker"),
            digest: latentmint_core::metadata::model_digest(&files),
        })
    }

    /// The checker as reports name it: its folder and the start of its digest.
    pub fn model(&self) -> String {
        format!("{} sha256:{}", self.name, &self.digest[..16])
    }

    /// The checker as the token's provenance names it.
    pub fn record(&self) -> QaModel {
        QaModel { role: "safety".into(), name: self.name.clone(), sha256: self.digest.clone() }
    }

    /// Whether the checker flags `img` (diffusers' `has_nsfw_concepts`).
    pub fn flags(&self, img: &DynamicImage) -> Result<bool, QaError> {
        let clip_input = self.processor.pixels(img);
        let rgb = img.to_rgb8();
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        // The pipeline passes its decoded image too (NHWC, 0..1), which the graph blacks out
        // when flagged; only the verdict is read here.
        let images =
            Array4::from_shape_fn((1, h, w, 3), |(_, y, x, c)| f32::from(rgb.get_pixel(x as u32, y as u32)[c]) / 255.0);
        let mut session = self.session.lock().map_err(|_| QaError::Model("safety checker lock poisoned".into()))?;
        let run = |s: &mut Session| -> Result<Vec<bool>, ort::Error> {
            let out = s.run(ort::inputs![
                "clip_input" => Tensor::from_array(clip_input)?,
                "images" => Tensor::from_array(images)?
            ])?;
            let flags = out["has_nsfw_concepts"].try_extract_array::<bool>()?;
            Ok(flags.iter().copied().collect())
        };
        let flags = run(&mut session).map_err(|e| QaError::Model(format!("safety_checker/model.onnx: {e}")))?;
        flags.first().copied().ok_or_else(|| QaError::Model("safety_checker/model.onnx gave no verdict".into()))
    }
}
