//! LoRA adapters (a brand's style) merged into the model's weights when its sessions load.
//!
//! Reads safetensors files in the diffusers/PEFT naming (`unet.<module>.lora_A.weight`,
//! `lora_B`, and the older `<module>.lora.down.weight` / `lora.up.weight`) and the kohya naming
//! (`lora_unet_<module_with_underscores>.lora_down.weight`, `lora_up`, `.alpha`; `lora_te_` for
//! the text encoder). Each pair becomes `W += scale * alpha / rank * up @ down` on the Linear it
//! targets. In an ONNX export a Linear is a `MatMul` node named after its module path
//! (`/down_blocks.1/.../attn1/to_q/MatMul`) whose second input is the transposed weight; the
//! merged weights replace those initializers through ONNX Runtime's initializer overrides, so
//! the model files are never rewritten.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use half::f16;
use ndarray::Array2;
use onnx_protobuf::{Message, ModelProto, TensorProto, tensor_proto};
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};

use crate::error::{DiffusionError, Result};
use crate::tensor::Precision;

/// One adapter to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSpec {
    /// The safetensors file.
    pub path: PathBuf,
    /// Strength (1.0 = as trained, 0 = off).
    pub scale: f32,
}

/// What an applied adapter did, for provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedLora {
    /// File name.
    pub name: String,
    /// SHA-256 of the file.
    pub sha256: String,
    /// Strength used.
    pub scale: f32,
    /// Weight matrices changed, per component.
    pub merged: BTreeMap<String, usize>,
}

/// (down, up, alpha) as read, before pairing.
type Partial = (Option<Array2<f32>>, Option<Array2<f32>>, Option<f32>);

/// Low-rank factors for one Linear.
struct Pair {
    down: Array2<f32>, // rank x in
    up: Array2<f32>,   // out x rank
    alpha: Option<f32>,
}

fn lora_err(path: &Path, message: impl Into<String>) -> DiffusionError {
    DiffusionError::Config { file: path.to_path_buf(), message: message.into() }
}

/// Lower-case module path with `.` and `/` folded to `_`, the form both namings reduce to.
fn norm(s: &str) -> String {
    s.chars().map(|c| if c == '.' || c == '/' { '_' } else { c.to_ascii_lowercase() }).collect()
}

fn to_f32(path: &Path, name: &str, dtype: Dtype, data: &[u8]) -> Result<Vec<f32>> {
    Ok(match dtype {
        Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F16 => data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::BF16 => data.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        other => {
            return Err(lora_err(path, format!("{name}: dtype {other:?} is not supported (use f32, f16 or bf16)")));
        }
    })
}

/// Splits a tensor name into (component, normalized module, role) where role is `down`, `up`
/// or `alpha`.
fn classify(key: &str) -> Option<(&'static str, String, &'static str)> {
    let (component, rest) = if let Some(r) = key.strip_prefix("lora_unet_") {
        ("unet", r)
    } else if let Some(r) = key.strip_prefix("lora_te_").or_else(|| key.strip_prefix("lora_te1_")) {
        ("text_encoder", r)
    } else if let Some(r) = key.strip_prefix("unet.") {
        ("unet", r)
    } else if let Some(r) = key.strip_prefix("text_encoder.") {
        ("text_encoder", r)
    } else {
        return None;
    };
    for (suffix, role) in [
        (".lora_A.weight", "down"),
        (".lora_B.weight", "up"),
        (".lora.down.weight", "down"),
        (".lora.up.weight", "up"),
        (".lora_down.weight", "down"),
        (".lora_up.weight", "up"),
        (".alpha", "alpha"),
    ] {
        if let Some(module) = rest.strip_suffix(suffix) {
            return Some((component, norm(module), role));
        }
    }
    None
}

/// A loaded adapter: factors per (component, module).
pub(crate) struct Lora {
    pairs: BTreeMap<(String, String), Pair>,
    pub(crate) applied: AppliedLora,
}

impl Lora {
    pub(crate) fn load(spec: &LoraSpec) -> Result<Self> {
        let p = &spec.path;
        let range = latentmint_core::job::LORA_SCALE_RANGE;
        if !range.contains(&spec.scale) {
            return Err(lora_err(
                p,
                format!(
                    "scale {} is out of range; use a strength from {} to {} (1 as trained)",
                    spec.scale,
                    range.start(),
                    range.end()
                ),
            ));
        }
        let bytes = std::fs::read(p).map_err(|_| DiffusionError::MissingFile {
            path: p.clone(),
            hint: "the LoRA adapter file (safetensors)".into(),
        })?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| lora_err(p, format!("not a safetensors file: {e}")))?;
        let mut parts: BTreeMap<(String, String), Partial> = BTreeMap::new();
        for name in st.names() {
            let Some((component, module, role)) = classify(name) else { continue };
            let t = st.tensor(name).map_err(|e| lora_err(p, e.to_string()))?;
            let values = to_f32(p, name, t.dtype(), t.data())?;
            let entry = parts.entry((component.to_string(), module)).or_default();
            match role {
                "alpha" => entry.2 = values.first().copied(),
                _ => {
                    let shape = t.shape();
                    // Conv LoRA (4-D) is not applied: SD exports keep attention and MLP as Linear.
                    if shape.len() != 2 {
                        continue;
                    }
                    let a =
                        Array2::from_shape_vec((shape[0], shape[1]), values).map_err(|e| lora_err(p, e.to_string()))?;
                    if role == "down" { entry.0 = Some(a) } else { entry.1 = Some(a) }
                }
            }
        }
        let mut pairs = BTreeMap::new();
        for (k, (down, up, alpha)) in parts {
            match (down, up) {
                (Some(down), Some(up)) if up.ncols() == down.nrows() => {
                    pairs.insert(k, Pair { down, up, alpha });
                }
                (Some(_), Some(_)) => return Err(lora_err(p, format!("{}: up and down ranks differ", k.1))),
                _ => {}
            }
        }
        if pairs.is_empty() {
            return Err(lora_err(
                p,
                "no LoRA weight pairs found (expected diffusers lora_A/lora_B or kohya lora_down/lora_up keys)",
            ));
        }
        let applied = AppliedLora {
            name: p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            sha256: hex::encode(Sha256::digest(&bytes)),
            scale: spec.scale,
            merged: BTreeMap::new(),
        };
        Ok(Self { pairs, applied })
    }
}

/// An initializer's values widened to f32, and the precision it is stored in.
fn read_initializer(model_dir: &Path, t: &TensorProto) -> Result<(Vec<f32>, Precision)> {
    let precision = if t.data_type == tensor_proto::DataType::FLOAT as i32 {
        Precision::F32
    } else if t.data_type == tensor_proto::DataType::FLOAT16 as i32 {
        Precision::F16
    } else {
        return Err(lora_err(
            model_dir,
            format!("initializer {} is neither float32 nor float16; LoRA merging needs a float export", t.name),
        ));
    };
    let widen = |bytes: &[u8]| -> Vec<f32> {
        match precision {
            Precision::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Precision::F16 => bytes.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        }
    };
    let width = match precision {
        Precision::F32 => 4,
        Precision::F16 => 2,
    };
    if t.data_location.enum_value_or_default() == tensor_proto::DataLocation::EXTERNAL {
        let get = |k: &str| t.external_data.iter().find(|e| e.key == k).map(|e| e.value.clone());
        let file = model_dir.join(get("location").unwrap_or_default());
        let offset: u64 = get("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
        let n: usize = t.dims.iter().product::<i64>() as usize;
        let bytes = std::fs::read(&file).map_err(|e| lora_err(&file, e.to_string()))?;
        let slice = bytes
            .get(offset as usize..offset as usize + n * width)
            .ok_or_else(|| lora_err(&file, "external data shorter than the tensor"))?;
        return Ok((widen(slice), precision));
    }
    let values = match (t.raw_data.is_empty(), precision) {
        (false, _) => widen(&t.raw_data),
        (true, Precision::F32) => t.float_data.clone(),
        // ONNX keeps fp16 values' bits in int32_data when not in raw_data.
        (true, Precision::F16) => t.int32_data.iter().map(|&b| f16::from_bits(b as u16).to_f32()).collect(),
    };
    Ok((values, precision))
}

/// A merged weight: its new value ([in, out], computed in f32) and the precision the model
/// stores it in.
pub(crate) type Merged = (String, Array2<f32>, Precision);

/// Merged weights for one component's ONNX file.
pub(crate) fn merge(component: &str, onnx_path: &Path, loras: &mut [Lora]) -> Result<Vec<Merged>> {
    let wanted: usize = loras.iter().map(|l| l.pairs.keys().filter(|k| k.0 == component).count()).sum();
    if wanted == 0 {
        return Ok(Vec::new());
    }
    let bytes = std::fs::read(onnx_path).map_err(|e| lora_err(onnx_path, e.to_string()))?;
    let model =
        ModelProto::parse_from_bytes(&bytes).map_err(|e| lora_err(onnx_path, format!("cannot parse ONNX: {e}")))?;
    let graph = model.graph.as_ref().ok_or_else(|| lora_err(onnx_path, "no graph"))?;
    let inits: BTreeMap<&str, &TensorProto> = graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let model_dir = onnx_path.parent().unwrap_or(Path::new("."));
    // Linear layers: MatMul nodes named `<prefix>/<module path>/MatMul` with a weight initializer.
    let mut linears: Vec<(String, &str)> = Vec::new();
    for n in &graph.node {
        if n.op_type == "MatMul"
            && let Some(path) = n.name.strip_suffix("/MatMul")
            && let Some(w) = n.input.get(1)
            && inits.contains_key(w.as_str())
        {
            linears.push((norm(path), w.as_str()));
        }
    }
    let mut merged: BTreeMap<String, (Array2<f32>, Precision)> = BTreeMap::new();
    for lora in loras.iter_mut() {
        let mut count = 0;
        for ((comp, module), pair) in &lora.pairs {
            if comp != component {
                continue;
            }
            let suffix = format!("_{module}");
            let hits: Vec<&(String, &str)> =
                linears.iter().filter(|(p, _)| p == module || p.ends_with(&suffix)).collect();
            let [(_, init)] = hits.as_slice() else {
                return Err(lora_err(
                    Path::new(&lora.applied.name),
                    format!(
                        "{component} module `{module}`: {} matching layers in {} (expected one)",
                        hits.len(),
                        onnx_path.display()
                    ),
                ));
            };
            let t = inits[init];
            let (rows, cols) =
                (t.dims.first().copied().unwrap_or(0) as usize, t.dims.get(1).copied().unwrap_or(0) as usize);
            let (rank, inf, outf) = (pair.down.nrows(), pair.down.ncols(), pair.up.nrows());
            if (rows, cols) != (inf, outf) {
                return Err(lora_err(
                    Path::new(&lora.applied.name),
                    format!(
                        "{component} module `{module}`: adapter is {outf}x{inf}, the layer is {cols}x{rows}; wrong base model?"
                    ),
                ));
            }
            let (w, precision) = match merged.remove(*init) {
                Some(w) => w,
                None => {
                    let (values, precision) = read_initializer(model_dir, t)?;
                    let w =
                        Array2::from_shape_vec((rows, cols), values).map_err(|e| lora_err(onnx_path, e.to_string()))?;
                    (w, precision)
                }
            };
            let factor = lora.applied.scale * pair.alpha.unwrap_or(rank as f32) / rank as f32;
            // W^T (in x out) += factor * down^T (in x rank) @ up^T (rank x out)
            let delta = pair.down.t().dot(&pair.up.t());
            merged.insert(init.to_string(), (w + &(delta * factor), precision));
            count += 1;
        }
        lora.applied.merged.insert(component.to_string(), count);
    }
    Ok(merged.into_iter().map(|(name, (w, p))| (name, w, p)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_namings_reduce_to_the_same_module() {
        let a = classify("unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight").unwrap();
        let b =
            classify("lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight").unwrap();
        assert_eq!((a.0, &a.1, a.2), (b.0, &b.1, b.2));
        let c = classify("text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight").unwrap();
        assert_eq!((c.0, c.2), ("text_encoder", "up"));
        assert_eq!(classify("lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha").unwrap().2, "alpha");
        assert!(classify("something.else").is_none());
        assert_eq!(norm("/u/down_blocks.1/attn1/to_q"), "_u_down_blocks_1_attn1_to_q");
    }
}
