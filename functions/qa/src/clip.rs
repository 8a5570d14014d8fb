//! A CLIP-style image-text model on ONNX Runtime: how well an image matches words.
//!
//! Reads the layout transformers exports for `CLIPModel`'s two towers with their projections
//! (`text_model.onnx`: `input_ids`, `attention_mask` → `text_embeds`; `vision_model.onnx`:
//! `pixel_values` → `image_embeds`), with `config.json`, `preprocessor_config.json`,
//! `tokenizer.json` and `latentmint_qa.json` (the logit scale and the vocabulary: groups of
//! values, each with a caption template). `infra/model/train_clip_scorer.py` writes the demo's
//! scorer and the parity fixture in this layout; a real CLIP exported the same way loads the
//! same way.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use image::DynamicImage;
use latentmint_core::qa::QaModel;
use ndarray::{Array2, Array4};
use ort::session::Session;
use ort::value::Tensor;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::QaError;
use crate::processor::ClipProcessor;

/// The files of the export, each in the model's digest.
const FILES: [&str; 6] = [
    "config.json",
    "latentmint_qa.json",
    "preprocessor_config.json",
    "text_model.onnx",
    "tokenizer.json",
    "vision_model.onnx",
];

/// CLIP's context length.
const CONTEXT: usize = 77;

/// One group of the vocabulary (`colour`, `shape`): its values and the caption each is read as.
#[derive(Debug, Clone, Deserialize)]
pub struct Group {
    /// Caption template, `{}` standing for the value (`a {} shape`).
    pub template: String,
    /// The values.
    pub values: Vec<String>,
    /// Values that send an image to a human whenever they win (`blob`: no shape at all).
    #[serde(default)]
    pub flag_values: Vec<String>,
}

#[derive(Deserialize)]
struct Meta {
    logit_scale: f32,
    groups: BTreeMap<String, Group>,
}

#[derive(Deserialize)]
struct TextConfig {
    eos_token_id: u32,
    pad_token_id: Option<u32>,
}

#[derive(Deserialize)]
struct Config {
    text_config: TextConfig,
}

/// How well an image matches each value of one group: probabilities over the group's captions.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupScores {
    /// The group's name.
    pub group: String,
    /// Each value with its probability (summing to 1), best first.
    pub values: Vec<(String, f32)>,
}

/// A loaded CLIP: both towers, the tokenizer, the preprocessing, and the vocabulary's caption
/// embeddings computed once.
pub struct ClipScorer {
    text: Mutex<Session>,
    vision: Mutex<Session>,
    tokenizer: tokenizers::Tokenizer,
    eos: u32,
    pad: u32,
    processor: ClipProcessor,
    logit_scale: f32,
    groups: BTreeMap<String, (Group, Vec<Vec<f32>>)>,
    name: String,
    digest: String,
}

fn read_json<T: for<'de> Deserialize<'de>>(dir: &Path, file: &str) -> Result<T, QaError> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| QaError::Model(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| QaError::Model(format!("{}: {e}", path.display())))
}

impl ClipScorer {
    /// Loads the model in `dir` (ONNX Runtime from `ORT_DYLIB_PATH`).
    pub fn load(dir: &Path) -> Result<Self, QaError> {
        Self::load_with(dir, None)
    }

    /// Loads the model in `dir`, with ONNX Runtime from `ort_library` when given.
    pub fn load_with(dir: &Path, ort_library: Option<&Path>) -> Result<Self, QaError> {
        let meta: Meta = read_json(dir, "latentmint_qa.json")?;
        let processor = ClipProcessor::load(&dir.join("preprocessor_config.json"))?;
        let config: Config = read_json(dir, "config.json")?;
        let tok_path = dir.join("tokenizer.json");
        let tokenizer = tokenizers::Tokenizer::from_file(&tok_path)
            .map_err(|e| QaError::Model(format!("{}: {e}", tok_path.display())))?;
        // The process's one ONNX Runtime environment, shared with the generator.
        let env = latentmint_diffusion::runtime(ort_library).map_err(|e| QaError::Model(e.to_string()))?;
        let open = |file: &str| -> Result<Session, QaError> {
            let path = dir.join(file);
            let failed = |e: &dyn std::fmt::Display| QaError::Model(format!("{}: {e}", path.display()));
            Session::builder(&env)
                .map_err(|e| failed(&e))?
                .with_intra_threads(1)
                .map_err(|e| failed(&e))?
                .commit_from_file(&path)
                .map_err(|e| failed(&e))
        };
        // Every file that shapes a score, digested as `sha256sum` lists them.
        let mut files = BTreeMap::new();
        for file in FILES {
            let path = dir.join(file);
            let bytes = std::fs::read(&path).map_err(|e| QaError::Model(format!("{}: {e}", path.display())))?;
            files.insert(file.to_string(), format!("{:x}", Sha256::digest(&bytes)));
        }
        let eos = config.text_config.eos_token_id;
        let mut scorer = Self {
            text: Mutex::new(open("text_model.onnx")?),
            vision: Mutex::new(open("vision_model.onnx")?),
            tokenizer,
            eos,
            pad: config.text_config.pad_token_id.unwrap_or(eos),
            processor,
            logit_scale: meta.logit_scale,
            groups: BTreeMap::new(),
            name: crate::folder_name(dir, "clip"),
            digest: latentmint_core::metadata::model_digest(&files),
        };
        for (name, group) in meta.groups {
            let captions: Vec<String> = group.values.iter().map(|v| group.template.replace("{}", v)).collect();
            let embeds = scorer.text_embeddings(&captions)?;
            scorer.groups.insert(name, (group, embeds));
        }
        Ok(scorer)
    }

    /// The model as a QA report names it: its folder and the digest of its files.
    pub fn model(&self) -> String {
        format!("{} sha256:{}", self.name, &self.digest[..16])
    }

    /// The model as the token's provenance names it.
    pub fn record(&self) -> QaModel {
        QaModel { role: "image-text".into(), name: self.name.clone(), sha256: self.digest.clone() }
    }

    /// The vocabulary's groups.
    pub fn groups(&self) -> impl Iterator<Item = (&str, &Group)> {
        self.groups.iter().map(|(n, (g, _))| (n.as_str(), g))
    }

    /// Token ids and attention mask of `text`, as the CLIP tokenizer pads and truncates them.
    pub fn tokens(&self, text: &str) -> Result<(Vec<i64>, Vec<i64>), QaError> {
        let enc = self.tokenizer.encode(text, true).map_err(|e| QaError::Model(format!("tokenizing: {e}")))?;
        let mut ids: Vec<i64> = enc.get_ids().iter().map(|&i| i64::from(i)).collect();
        if ids.len() > CONTEXT {
            ids.truncate(CONTEXT - 1);
            ids.push(i64::from(self.eos));
        }
        let mut mask = vec![1i64; ids.len()];
        mask.resize(CONTEXT, 0);
        ids.resize(CONTEXT, i64::from(self.pad));
        Ok((ids, mask))
    }

    /// Unit-length text embeddings of `texts`.
    pub fn text_embeddings(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, QaError> {
        let (mut ids, mut mask) = (Vec::new(), Vec::new());
        for t in texts {
            let (i, m) = self.tokens(t)?;
            ids.extend(i);
            mask.extend(m);
        }
        let shape = (texts.len(), CONTEXT);
        let ids = Array2::from_shape_vec(shape, ids).map_err(|e| QaError::Model(e.to_string()))?;
        let mask = Array2::from_shape_vec(shape, mask).map_err(|e| QaError::Model(e.to_string()))?;
        let run = |s: &mut Session| -> Result<Vec<Vec<f32>>, ort::Error> {
            let out = s.run(ort::inputs![
                "input_ids" => Tensor::from_array(ids.clone())?,
                "attention_mask" => Tensor::from_array(mask.clone())?
            ])?;
            rows(&out[0])
        };
        let mut session = self.text.lock().map_err(|_| QaError::Model("text model lock poisoned".into()))?;
        run(&mut session).map(normalized).map_err(|e| QaError::Model(format!("text_model.onnx: {e}")))
    }

    /// The image as the vision tower takes it (`preprocessor_config.json`).
    pub fn pixels(&self, img: &DynamicImage) -> Array4<f32> {
        self.processor.pixels(img)
    }

    /// The unit-length embedding of an image.
    pub fn image_embedding(&self, img: &DynamicImage) -> Result<Vec<f32>, QaError> {
        let pixels = self.pixels(img);
        let mut session = self.vision.lock().map_err(|_| QaError::Model("vision model lock poisoned".into()))?;
        let run = |s: &mut Session| -> Result<Vec<Vec<f32>>, ort::Error> {
            let out = s.run(ort::inputs!["pixel_values" => Tensor::from_array(pixels.clone())?])?;
            rows(&out[0])
        };
        let mut rows =
            run(&mut session).map(normalized).map_err(|e| QaError::Model(format!("vision_model.onnx: {e}")))?;
        rows.pop().ok_or_else(|| QaError::Model("vision_model.onnx gave no embedding".into()))
    }

    /// How well the image with embedding `image` matches each value of each group.
    pub fn score_groups(&self, image: &[f32]) -> Vec<GroupScores> {
        self.groups
            .iter()
            .map(|(name, (group, captions))| {
                let logits: Vec<f32> = captions.iter().map(|t| self.logit_scale * dot(image, t)).collect();
                let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
                let sum: f32 = exp.iter().sum();
                let mut values: Vec<(String, f32)> =
                    group.values.iter().cloned().zip(exp.iter().map(|e| e / sum)).collect();
                values.sort_by(|a, b| b.1.total_cmp(&a.1));
                GroupScores { group: name.clone(), values }
            })
            .collect()
    }
}

fn rows(v: &ort::value::DynValue) -> Result<Vec<Vec<f32>>, ort::Error> {
    let a = v.try_extract_array::<f32>()?;
    Ok(a.rows().into_iter().map(|r| r.to_vec()).collect())
}

fn normalized(rows: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
    rows.into_iter()
        .map(|r| {
            let n = r.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            r.into_iter().map(|x| x / n).collect()
        })
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
