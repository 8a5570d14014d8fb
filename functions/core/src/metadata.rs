//! ERC-721 metadata JSON with a provenance record.
//!
//! The metadata is built from the job alone (pure), serialized deterministically (struct
//! field order, sorted maps), so the same job always yields byte-identical JSON and therefore
//! the same CID: a retried publish pins the same object.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::field::FieldError;
use crate::job::{GenerationParams, GenerationRecord, Job};
use crate::job::{GenerationRequest, InitImage};

/// Schema tag of the provenance object.
pub const PROVENANCE_SCHEMA: &str = "latentmint/provenance/v1";

/// One OpenSea-style attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    /// Trait name.
    pub trait_type: String,
    /// Trait value.
    pub value: String,
    /// Who set it when not the collection: `qa <model>` for a value an image-text model saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Which model made the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelProvenance {
    /// Model identifier.
    pub id: String,
    /// SHA-256 over all model files (hex): the digest of the sorted `path  sha256` lines.
    pub sha256: String,
    /// SHA-256 of each file.
    pub files: BTreeMap<String, String>,
}

/// The program that made the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratorProvenance {
    /// Program name.
    pub name: String,
    /// Program version.
    pub version: String,
    /// Execution path (e.g. `onnx-cpu`, `sagemaker:<endpoint>`).
    pub backend: String,
    /// Set when the CPU fallback made the image because the endpoint could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
}

/// Everything needed to check where an image came from and to regenerate it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Schema tag.
    pub schema: String,
    /// The job id (also the contract's idempotency key).
    pub job_id: String,
    /// The model.
    pub model: ModelProvenance,
    /// Prompt as given to the text encoder.
    pub prompt: String,
    /// Negative prompt.
    pub negative_prompt: String,
    /// True when the prompt exceeded the encoder's 77 tokens and was cut.
    pub prompt_truncated: bool,
    /// Noise seed.
    pub seed: u64,
    /// Denoising steps.
    pub steps: u32,
    /// Guidance scale.
    pub guidance: f32,
    /// Scheduler.
    pub scheduler: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The generator.
    pub generator: GeneratorProvenance,
    /// LoRA adapters merged into the model (name, SHA-256, strength).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adapters: Vec<crate::job::AdapterRecord>,
    /// The models the review stage's checks ran on the image (a safety checker, an image-text
    /// model), by digest: what vouched for it before a human or the policy approved it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub qa: Vec<crate::qa::QaModel>,
    /// SHA-256 of the PNG bytes.
    pub image_sha256: String,
    /// Set on an evolved image of a living NFT: what it grew from and what made it grow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evolution: Option<EvolutionRecord>,
    /// The publisher's signature over this record (EIP-712), so anyone can check who vouches
    /// for it: the signer should hold the collection's minter role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ProvenanceSignature>,
}

/// An EIP-712 signature over a provenance record (see the chain crate's `provenance` module
/// for the typed struct). Self-contained: the domain is recorded with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenanceSignature {
    /// `eip712:latentmint-provenance-v1`.
    pub scheme: String,
    /// The signing address (EIP-55).
    pub signer: String,
    /// EIP-712 domain: chain id.
    pub chain_id: u64,
    /// EIP-712 domain: the collection contract (EIP-55).
    pub verifying_contract: String,
    /// 65-byte signature `r || s || v`, 0x-hex.
    pub signature: String,
}

/// ERC-721 metadata (the JSON `tokenURI` points at).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenMetadata {
    /// Token name.
    pub name: String,
    /// Description.
    pub description: String,
    /// `ipfs://<image cid>`.
    pub image: String,
    /// Traits.
    pub attributes: Vec<Attribute>,
    /// Generation record.
    pub provenance: Provenance,
}

/// Metadata cannot be built for this job.
#[derive(Debug, thiserror::Error)]
#[error("job {0}: no generation record, so no provenance can be written")]
pub struct MissingGeneration(pub String);

impl Provenance {
    /// Provenance of a job's image.
    pub fn from_record(job: &Job, g: &GenerationRecord) -> Self {
        Self {
            qa: job.qa.iter().flat_map(|q| q.models.iter().cloned()).collect(),
            ..Self::from_generation(job.spec.id.to_string(), &job.spec.prompt, &job.spec.negative_prompt, g)
        }
    }

    /// Provenance of an image generated for the token of job `job_id` (hex) from `prompt`:
    /// unsigned, no evolution record, no QA models.
    pub fn from_generation(job_id: String, prompt: &str, negative_prompt: &str, g: &GenerationRecord) -> Self {
        Self {
            schema: PROVENANCE_SCHEMA.into(),
            job_id,
            model: ModelProvenance {
                id: g.model_id.clone(),
                sha256: g.model_sha256.clone(),
                files: g.model_files.clone(),
            },
            prompt: prompt.to_string(),
            negative_prompt: negative_prompt.to_string(),
            prompt_truncated: g.prompt_truncated,
            seed: g.params.seed,
            steps: g.params.steps,
            guidance: g.params.guidance,
            scheduler: g.params.scheduler.clone(),
            width: g.params.width,
            height: g.params.height,
            generator: GeneratorProvenance {
                name: g.generator.clone(),
                version: g.generator_version.clone(),
                backend: g.backend.clone(),
                fallback_reason: g.fallback_reason.clone(),
            },
            adapters: g.adapters.clone(),
            qa: vec![],
            image_sha256: g.image_sha256.clone(),
            evolution: None,
            signature: None,
        }
    }

    /// The request that makes this image again: the record's prompt and parameters and, for an
    /// evolved image, its parent image (`parent_png`, the bytes behind
    /// `evolution.parent_image`, which the caller fetches and checks against that CID).
    pub fn generation_request(&self, parent_png: Option<Vec<u8>>) -> Result<GenerationRequest, FieldError> {
        let job_id = self.job_id.parse::<crate::JobId>().map_err(|e| {
            FieldError::new("provenance.job_id", e.to_string(), "the record must name its job (64 hex digits)")
        })?;
        let init_image = match (&self.evolution, parent_png) {
            (None, _) => None,
            (Some(e), Some(png)) => Some(InitImage { png, strength: e.strength }),
            (Some(e), None) => {
                return Err(FieldError::new(
                    "provenance.evolution.parent_image",
                    format!("an evolved image is made from its parent {}", e.parent_image),
                    "fetch the parent image and pass it",
                ));
            }
        };
        Ok(GenerationRequest {
            job_id,
            prompt: self.prompt.clone(),
            negative_prompt: self.negative_prompt.clone(),
            params: GenerationParams {
                steps: self.steps,
                guidance: self.guidance,
                width: self.width,
                height: self.height,
                scheduler: self.scheduler.clone(),
                seed: self.seed,
            },
            init_image,
        })
    }

    /// A complete record with made-up values, for tests of code that reads or signs one.
    #[doc(hidden)]
    pub fn for_tests() -> Self {
        let g = GenerationRecord::for_tests(7);
        Self::from_generation("ab".repeat(32), "a red circle", "blurry", &g)
    }
}

impl TokenMetadata {
    /// Builds the metadata for `job` whose image has CID `image_cid`.
    pub fn build(job: &Job, image_cid: &str) -> Result<Self, MissingGeneration> {
        let description = job.spec.description.as_str();
        let g = job.generation.as_ref().ok_or_else(|| MissingGeneration(job.spec.id.short()))?;
        let attr = |k: &str, v: &str| Attribute { trait_type: k.into(), value: v.into(), source: None };
        let mut attributes: Vec<Attribute> = job.spec.traits.iter().map(|(k, v)| attr(k, v)).collect();
        attributes.push(attr("seed", &g.params.seed.to_string()));
        attributes.push(attr("model", &g.model_id));
        // What the QA model saw, beside what the collection asked for, marked as automatic.
        for t in job.qa.iter().flat_map(|q| &q.tags) {
            attributes.push(Attribute {
                trait_type: t.trait_type.clone(),
                value: t.value.clone(),
                source: Some(format!("qa {}", t.model)),
            });
        }
        let name = if let Some(request) = &job.spec.request {
            format!("{} #{request}", job.spec.collection)
        } else if job.spec.copy == 0 {
            format!("{} #{}", job.spec.collection, job.spec.index + 1)
        } else {
            format!("{} #{}.{}", job.spec.collection, job.spec.index + 1, job.spec.copy + 1)
        };
        Ok(Self {
            name,
            description: if description.is_empty() { job.spec.prompt.clone() } else { description.to_string() },
            image: format!("ipfs://{image_cid}"),
            attributes,
            provenance: Provenance::from_record(job, g),
        })
    }

    /// Deterministic JSON bytes (pretty, so collectors can read it on a gateway).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// The image CID if `image` is an `ipfs://` URI.
    pub fn image_cid(&self) -> Option<&str> {
        self.image.strip_prefix("ipfs://")
    }
}

/// The digest over a model's files, from `path -> sha256` pairs (sorted by path), as
/// `sha256sum` would list them. Anyone can recompute it with `sha256sum` and a sort.
pub fn model_digest(files: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (path, digest) in files {
        h.update(format!("{digest}  {path}\n").as_bytes());
    }
    hex::encode(h.finalize())
}

/// The on-chain event an evolution answers: one log of one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Trigger {
    /// Chain id.
    pub chain_id: u64,
    /// Block of the log.
    pub block: u64,
    /// Transaction hash (0x-prefixed).
    pub tx_hash: String,
    /// Index of the log in its block.
    pub log_index: u64,
}

impl Trigger {
    /// Stable key of the event, for the evolution store.
    pub fn key(&self) -> String {
        format!("{}:{}:{}", self.chain_id, self.tx_hash, self.log_index)
    }
}

/// What an evolved image grew from; recorded in its provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvolutionRecord {
    /// 1 for the first evolution of the minted image, then 2, 3, ...
    pub generation: u32,
    /// The metadata the token pointed at before (`ipfs://...`).
    pub parent_metadata: String,
    /// The image this one was made from (`ipfs://...`).
    pub parent_image: String,
    /// The event that made it.
    pub trigger: Trigger,
    /// img2img strength used.
    pub strength: f32,
    /// Set when the event was a price feed's answer (`[living.oracle]`): what it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oracle: Option<OracleReading>,
}

/// A price feed's answer that moved the collection into another mood.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OracleReading {
    /// The feed (EIP-55).
    pub feed: String,
    /// Its round id (decimal).
    pub round: String,
    /// The answer as the feed gives it (a decimal integer, `decimals` not applied).
    pub answer: String,
    /// The feed's decimals.
    pub decimals: u8,
    /// The mood's words, as they went into the prompt.
    pub mood: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::EvmAddress;
    use crate::job::{GenerationParams, JobId, JobSpec};

    fn job() -> Job {
        let params =
            GenerationParams { steps: 4, guidance: 7.5, width: 64, height: 64, scheduler: "ddim".into(), seed: 9 };
        let mut j = Job::new(JobSpec {
            id: JobId::from_bytes([3; 32]),
            collection: "Neon".into(),
            index: 1,
            copy: 0,
            template: "a {colour} circle".into(),
            prompt: "a red circle".into(),
            negative_prompt: "blurry".into(),
            traits: vec![("colour".into(), "red".into())],
            params: params.clone(),
            recipient: EvmAddress::from_bytes([1; 20]),
            description: String::new(),
            review: Default::default(),
            request: None,
        });
        let mut files = BTreeMap::new();
        files.insert("unet/model.onnx".into(), "ab".repeat(32));
        j.record_generation(
            "images/x.png".into(),
            GenerationRecord {
                model_id: "tiny".into(),
                model_sha256: model_digest(&files),
                model_files: files,
                params,
                prompt_truncated: false,
                generator: "latentmint".into(),
                generator_version: "0.1.0".into(),
                backend: "onnx-cpu".into(),
                fallback_reason: None,
                adapters: vec![],
                elapsed_ms: 5,
                image_sha256: "cd".repeat(32),
            },
        )
        .unwrap();
        j
    }

    #[test]
    fn a_record_gives_back_the_request_that_made_its_image() {
        let j = job();
        let p = TokenMetadata::build(&j, "bafkreiabc").unwrap().provenance;
        let req = p.generation_request(None).unwrap();
        assert_eq!(req.job_id, j.spec.id);
        assert_eq!((req.prompt.as_str(), req.negative_prompt.as_str()), ("a red circle", "blurry"));
        assert_eq!(&req.params, &j.generation.as_ref().unwrap().params);
        assert_eq!(req.init_image, None);

        // An evolution starts from its parent image, at the record's strength.
        let mut evolved = p.clone();
        evolved.evolution = Some(EvolutionRecord {
            generation: 1,
            parent_metadata: "ipfs://bafkreimeta".into(),
            parent_image: "ipfs://bafkreiparent".into(),
            trigger: Trigger { chain_id: 1, block: 2, tx_hash: "0x01".into(), log_index: 0 },
            strength: 0.4,
            oracle: None,
        });
        let e = evolved.generation_request(None).unwrap_err();
        assert_eq!(e.field, "provenance.evolution.parent_image");
        assert!(e.problem.contains("ipfs://bafkreiparent"), "{e}");
        let req = evolved.generation_request(Some(vec![1, 2, 3])).unwrap();
        assert_eq!(req.init_image, Some(InitImage { png: vec![1, 2, 3], strength: 0.4 }));

        let mut bad = p;
        bad.job_id = "not-hex".into();
        assert_eq!(bad.generation_request(None).unwrap_err().field, "provenance.job_id");
    }

    #[test]
    fn metadata_has_every_provenance_field_and_is_deterministic() {
        let j = job();
        let m = TokenMetadata::build(&j, "bafkreiabc").unwrap();
        assert_eq!(m.name, "Neon #2");
        assert_eq!(m.image, "ipfs://bafkreiabc");
        assert_eq!(m.image_cid(), Some("bafkreiabc"));
        let v: serde_json::Value = serde_json::from_slice(&m.to_json()).unwrap();
        for key in [
            "model",
            "prompt",
            "negative_prompt",
            "seed",
            "steps",
            "guidance",
            "scheduler",
            "width",
            "height",
            "generator",
            "image_sha256",
        ] {
            assert!(v["provenance"].get(key).is_some(), "missing provenance.{key}");
        }
        assert_eq!(v["provenance"]["model"]["files"]["unet/model.onnx"], "ab".repeat(32));
        assert_eq!(m.to_json(), TokenMetadata::build(&j, "bafkreiabc").unwrap().to_json());
    }

    #[test]
    fn no_generation_no_metadata() {
        let mut j = job();
        j.generation = None;
        assert!(TokenMetadata::build(&j, "x").is_err());
    }
}
