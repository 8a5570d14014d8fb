//! A Stable Diffusion model folder in the diffusers/optimum ONNX layout, its configs, and the
//! hashes that go into provenance.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{DiffusionError, Result};

/// Files the layout requires, with what each is.
pub const REQUIRED: [(&str, &str); 5] = [
    ("model_index.json", "the pipeline index written by diffusers/optimum"),
    ("text_encoder/model.onnx", "the CLIP text encoder"),
    ("unet/model.onnx", "the denoising UNet"),
    ("vae_decoder/model.onnx", "the VAE decoder"),
    ("scheduler/scheduler_config.json", "the noise schedule"),
];

/// What the engine needs to know about a model folder, read once at load.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// The folder.
    pub dir: PathBuf,
    /// `_name_or_path` from model_index.json, else the folder name.
    pub id: String,
    /// Latent channels (UNet `in_channels`).
    pub latent_channels: usize,
    /// Pixels per latent cell: 2^(number of VAE blocks - 1).
    pub vae_scale_factor: usize,
    /// Times the UNet halves the latent on its way down: one per down block but the last.
    pub unet_downsamplings: u32,
    /// VAE latent scaling factor.
    pub scaling_factor: f32,
    /// SHA-256 of each file, by relative path.
    pub files: BTreeMap<String, String>,
    /// Digest over all files, computed once at load.
    sha256: String,
}

fn read_json(path: &Path, hint: &str) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|_| DiffusionError::MissingFile { path: path.to_path_buf(), hint: hint.to_string() })?;
    serde_json::from_str(&text)
        .map_err(|e| DiffusionError::Config { file: path.to_path_buf(), message: format!("not valid JSON: {e}") })
}

impl ModelInfo {
    /// Checks the layout and reads the configs. Every missing file is named.
    pub fn load(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(DiffusionError::MissingFile {
                path: dir.to_path_buf(),
                hint: "the model folder does not exist: set generation.model to an ONNX Stable Diffusion export (or run scripts/bootstrap.sh for the demo model)".into(),
            });
        }
        for (rel, what) in REQUIRED {
            let p = dir.join(rel);
            if !p.is_file() {
                return Err(DiffusionError::MissingFile {
                    path: p,
                    hint: format!("it should hold {what} (diffusers/optimum ONNX layout)"),
                });
            }
        }
        let index = read_json(&dir.join("model_index.json"), "")?;
        let id = index["_name_or_path"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());

        // Component configs are optional in older exports; SD 1.x/2.x defaults apply then.
        let unet_cfg = read_json(&dir.join("unet/config.json"), "").unwrap_or(Value::Null);
        let vae_cfg = read_json(&dir.join("vae_decoder/config.json"), "").unwrap_or(Value::Null);
        let latent_channels = unet_cfg["in_channels"].as_u64().unwrap_or(4) as usize;
        let blocks = vae_cfg["block_out_channels"].as_array().map(|a| a.len()).unwrap_or(4);
        let vae_scale_factor = 1usize << blocks.saturating_sub(1);
        let unet_blocks = unet_cfg["block_out_channels"].as_array().map(|a| a.len()).unwrap_or(4);
        let unet_downsamplings = unet_blocks.saturating_sub(1) as u32;
        let scaling_factor = vae_cfg["scaling_factor"].as_f64().unwrap_or(0.18215) as f32;
        let files = hash_tree(dir)?;
        let sha256 = latentmint_core::metadata::model_digest(&files);
        Ok(Self {
            dir: dir.to_path_buf(),
            id,
            latent_channels,
            vae_scale_factor,
            unet_downsamplings,
            scaling_factor,
            files,
            sha256,
        })
    }

    /// What a width or height must be a multiple of: the VAE's factor times 2 per UNet
    /// downsampling. An export traced by diffusers/optimum upsamples by a fixed factor of 2, so
    /// a latent side that does not halve evenly all the way down fails inside the UNet (a
    /// skip connection one cell short) instead of making an image.
    pub fn size_multiple(&self) -> u32 {
        (self.vae_scale_factor as u32) << self.unet_downsamplings
    }

    /// Refuses a width or height the model cannot make, naming the sizes it can.
    pub fn check_size(&self, width: u32, height: u32) -> Result<()> {
        let m = self.size_multiple();
        let max = latentmint_core::job::MAX_IMAGE_SIDE;
        for (field, v) in [("width", width), ("height", height)] {
            if v > max {
                return Err(DiffusionError::Request {
                    field,
                    message: format!(
                        "{v} is larger than {max} pixels, the most any request may ask; use at most {max}"
                    ),
                });
            }
            if v == 0 || v % m != 0 {
                let below = v / m * m;
                let sizes = if below == 0 { format!("{m}") } else { format!("{below} or {}", below + m) };
                return Err(DiffusionError::Request {
                    field,
                    message: format!(
                        "{v} is not a multiple of {m}, the sizes this model makes (its VAE's factor {} times 2 for each of its UNet's {} downsamplings); use {sizes}",
                        self.vae_scale_factor, self.unet_downsamplings
                    ),
                });
            }
        }
        Ok(())
    }

    /// Digest over all files, as provenance records it.
    pub fn digest(&self) -> &str {
        &self.sha256
    }
}

/// SHA-256 of every regular file under `dir` (hidden files skipped), by `/`-separated path.
pub fn hash_tree(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).map_err(|e| DiffusionError::Config { file: d.clone(), message: e.to_string() })?;
        for entry in entries.flatten() {
            let p = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() {
                let rel = p
                    .strip_prefix(dir)
                    .unwrap_or(&p)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.insert(rel, sha256_file(&p)?);
            }
        }
    }
    Ok(out)
}

fn sha256_file(p: &Path) -> Result<String> {
    let mut f =
        std::fs::File::open(p).map_err(|e| DiffusionError::Config { file: p.to_path_buf(), message: e.to_string() })?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n =
            f.read(&mut buf).map_err(|e| DiffusionError::Config { file: p.to_path_buf(), message: e.to_string() })?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model folder with the required files (empty: only their hashes are read here) and
    /// the given component configs.
    fn folder(unet: Option<&str>, vae: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (rel, _) in REQUIRED {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, if rel.ends_with(".json") { "{}" } else { "" }).unwrap();
        }
        for (rel, cfg) in [("unet/config.json", unet), ("vae_decoder/config.json", vae)] {
            if let Some(cfg) = cfg {
                std::fs::write(dir.path().join(rel), cfg).unwrap();
            }
        }
        dir
    }

    #[test]
    fn an_sd_export_makes_multiples_of_64() {
        // No component configs: SD 1.x/2.x (VAE factor 8, three UNet downsamplings).
        let dir = folder(None, None);
        let m = ModelInfo::load(dir.path()).unwrap();
        assert_eq!((m.vae_scale_factor, m.unet_downsamplings, m.size_multiple()), (8, 3, 64));
        m.check_size(512, 768).unwrap();
        let err = m.check_size(512, 520).unwrap_err().to_string();
        assert!(err.starts_with("height: 520 is not a multiple of 64") && err.ends_with("use 512 or 576"), "{err}");
        let err = m.check_size(4096, 512).unwrap_err().to_string();
        assert!(err.starts_with("width: 4096 is larger than 2048 pixels"), "{err}");
        let err = m.check_size(0, 512).unwrap_err().to_string();
        assert!(err.starts_with("width: 0 ") && err.ends_with("use 64"), "{err}");
    }

    #[test]
    fn the_size_multiple_comes_from_the_configs() {
        let dir = folder(Some(r#"{"block_out_channels": [32, 64]}"#), Some(r#"{"block_out_channels": [32, 64]}"#));
        let m = ModelInfo::load(dir.path()).unwrap();
        assert_eq!(m.size_multiple(), 4);
        m.check_size(64, 68).unwrap();
        assert!(m.check_size(66, 64).unwrap_err().to_string().contains("use 64 or 68"));
    }
}
