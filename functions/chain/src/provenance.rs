//! EIP-712 signatures over provenance records: the publisher (the collection's minting wallet)
//! vouches for each image's generation record, and anyone can check it with any EIP-712
//! library, or `latentmint provenance <metadata.json>`.
//!
//! Domain: `{name: "latentmint", version: "3", chainId, verifyingContract: <collection>}`.
//! The typed struct is [`ProvenanceRecord`]: every field of the JSON record but the signature
//! itself, so nothing a collector reads next to "signed by" can be changed unseen (version 1
//! left the LoRA adapters, the model's file list and a living NFT's evolution record out,
//! version 2 the QA models; neither is accepted any more). Hex digests become `bytes32`;
//! numbers the JSON writes as decimals (guidance, strengths, scales) their decimal text as
//! written; the model's files go in path order; an evolution record is a list of zero or one.

use std::sync::Arc;

use alloy::primitives::{Address, B256, Signature};
use alloy::signers::Signer;
use alloy::sol_types::{Eip712Domain, SolStruct, eip712_domain};
use alloy_dyn_abi::TypedData;
use async_trait::async_trait;
use latentmint_core::metadata::{Provenance, ProvenanceSignature};
use latentmint_core::ports::{PortError, PortResult, ProvenanceSigner};

use crate::from_alloy;

/// The scheme tag recorded with each signature.
pub const SCHEME: &str = "eip712:latentmint-provenance-v3";

/// Schemes that signed less than the record and are refused, with what they left out.
const RETIRED: [(&str, &str); 2] = [
    ("eip712:latentmint-provenance-v1", "the LoRA adapters, the model's file list or the evolution record"),
    ("eip712:latentmint-provenance-v2", "the QA models"),
];

alloy::sol! {
    /// One model file and its SHA-256.
    #[derive(Debug, serde::Serialize)]
    struct ModelFile {
        string path;
        bytes32 sha256;
    }

    /// A LoRA adapter merged into the model.
    #[derive(Debug, serde::Serialize)]
    struct Adapter {
        string name;
        bytes32 sha256;
        string scale;
    }

    /// The on-chain event that made a living NFT evolve.
    #[derive(Debug, serde::Serialize)]
    struct Trigger {
        uint64 chainId;
        uint64 blockNumber;
        bytes32 txHash;
        uint64 logIndex;
    }

    /// A price feed's answer that made a living NFT evolve.
    #[derive(Debug, serde::Serialize)]
    struct OracleReading {
        address feed;
        string round;
        string answer;
        uint8 decimals;
        string mood;
    }

    /// What an evolved image grew from.
    #[derive(Debug, serde::Serialize)]
    struct Evolution {
        uint32 generation;
        string parentMetadata;
        string parentImage;
        Trigger trigger;
        string strength;
        OracleReading[] oracle;
    }

    /// A model the review stage's checks ran.
    #[derive(Debug, serde::Serialize)]
    struct QaModel {
        string role;
        string name;
        bytes32 sha256;
    }

    /// What the publisher signs about one image.
    #[derive(Debug, serde::Serialize)]
    struct ProvenanceRecord {
        string schema;
        bytes32 jobId;
        string modelId;
        bytes32 modelSha256;
        ModelFile[] modelFiles;
        string prompt;
        string negativePrompt;
        bool promptTruncated;
        uint64 seed;
        uint32 steps;
        string guidance;
        string scheduler;
        uint32 width;
        uint32 height;
        string generatorName;
        string generatorVersion;
        string backend;
        string fallbackReason;
        Adapter[] adapters;
        QaModel[] qaModels;
        bytes32 imageSha256;
        Evolution[] evolution;
    }
}

fn digest(field: &str, hex_text: &str) -> Result<B256, String> {
    hex_text.parse::<B256>().map_err(|_| format!("provenance.{field}: `{hex_text}` is not a 32-byte hex digest"))
}

/// The typed struct for `p`.
fn typed_record(p: &Provenance) -> Result<ProvenanceRecord, String> {
    let model_files = p
        .model
        .files
        .iter()
        .map(|(path, sha)| Ok(ModelFile { path: path.clone(), sha256: digest(&format!("model.files[{path}]"), sha)? }))
        .collect::<Result<_, String>>()?;
    let adapters = p
        .adapters
        .iter()
        .enumerate()
        .map(|(i, a)| {
            Ok(Adapter {
                name: a.name.clone(),
                sha256: digest(&format!("adapters[{i}].sha256"), &a.sha256)?,
                scale: a.scale.to_string(),
            })
        })
        .collect::<Result<_, String>>()?;
    let qa_models =
        p.qa.iter()
            .enumerate()
            .map(|(i, m)| {
                Ok(QaModel {
                    role: m.role.clone(),
                    name: m.name.clone(),
                    sha256: digest(&format!("qa[{i}].sha256"), &m.sha256)?,
                })
            })
            .collect::<Result<_, String>>()?;
    let evolution = p
        .evolution
        .iter()
        .map(|e| {
            Ok(Evolution {
                generation: e.generation,
                parentMetadata: e.parent_metadata.clone(),
                parentImage: e.parent_image.clone(),
                trigger: Trigger {
                    chainId: e.trigger.chain_id,
                    blockNumber: e.trigger.block,
                    txHash: digest("evolution.trigger.tx_hash", &e.trigger.tx_hash)?,
                    logIndex: e.trigger.log_index,
                },
                strength: e.strength.to_string(),
                oracle: e
                    .oracle
                    .iter()
                    .map(|o| {
                        Ok(OracleReading {
                            feed: o.feed.parse().map_err(|_| {
                                format!("provenance.evolution.oracle.feed: `{}` is not an address", o.feed)
                            })?,
                            round: o.round.clone(),
                            answer: o.answer.clone(),
                            decimals: o.decimals,
                            mood: o.mood.clone(),
                        })
                    })
                    .collect::<Result<_, String>>()?,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(ProvenanceRecord {
        schema: p.schema.clone(),
        jobId: digest("job_id", &p.job_id)?,
        modelId: p.model.id.clone(),
        modelSha256: digest("model.sha256", &p.model.sha256)?,
        modelFiles: model_files,
        prompt: p.prompt.clone(),
        negativePrompt: p.negative_prompt.clone(),
        promptTruncated: p.prompt_truncated,
        seed: p.seed,
        steps: p.steps,
        guidance: p.guidance.to_string(),
        scheduler: p.scheduler.clone(),
        width: p.width,
        height: p.height,
        generatorName: p.generator.name.clone(),
        generatorVersion: p.generator.version.clone(),
        backend: p.generator.backend.clone(),
        fallbackReason: p.generator.fallback_reason.clone().unwrap_or_default(),
        adapters,
        qaModels: qa_models,
        imageSha256: digest("image_sha256", &p.image_sha256)?,
        evolution,
    })
}

fn domain(chain_id: u64, contract: Address) -> Eip712Domain {
    eip712_domain! {
        name: "latentmint",
        version: "3",
        chain_id: chain_id,
        verifying_contract: contract,
    }
}

/// The EIP-712 hash a signature over `p` signs.
pub fn signing_hash(p: &Provenance, chain_id: u64, contract: Address) -> Result<B256, String> {
    Ok(typed_record(p)?.eip712_signing_hash(&domain(chain_id, contract)))
}

/// The signed record as EIP-712 typed data (the JSON `eth_signTypedData_v4` takes), under the
/// domain its signature names, so that any EIP-712 tool can check the signature. Integers are
/// written as decimal strings: a seed above 2^53 would lose digits as a JSON number in
/// JavaScript.
pub fn typed_data(p: &Provenance) -> Result<serde_json::Value, String> {
    let s = p.signature.as_ref().ok_or("provenance.signature: the record is not signed")?;
    let (chain_id, contract) = signed_domain(s)?;
    let typed = TypedData::from_struct(&typed_record(p)?, Some(domain(chain_id, contract)));
    let mut json = serde_json::to_value(&typed).map_err(|e| format!("typed data: {e}"))?;
    if let Some(message) = json.get_mut("message") {
        integers_as_text(message);
    }
    Ok(json)
}

fn integers_as_text(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Number(n) => *v = serde_json::Value::String(n.to_string()),
        serde_json::Value::Array(items) => items.iter_mut().for_each(integers_as_text),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(integers_as_text),
        _ => {}
    }
}

/// The chain id and contract a signature names.
fn signed_domain(s: &ProvenanceSignature) -> Result<(u64, Address), String> {
    let contract = s.verifying_contract.parse().map_err(|_| {
        format!("provenance.signature.verifying_contract: `{}` is not an address", s.verifying_contract)
    })?;
    Ok((s.chain_id, contract))
}

/// Checks `p.signature` against the record: returns the signer when the signature recovers
/// to the address it names.
pub fn verify(p: &Provenance) -> Result<latentmint_core::EvmAddress, String> {
    let s = p.signature.as_ref().ok_or("provenance.signature: the record is not signed")?;
    if let Some((_, left_out)) = RETIRED.iter().find(|(scheme, _)| *scheme == s.scheme) {
        return Err(format!(
            "provenance.signature.scheme: `{}` signed only part of the record (not {left_out}) and is no longer \
             accepted: the token was published by a latentmint before records were signed as {SCHEME} (a local \
             run's: remove its state folder and run again)",
            s.scheme
        ));
    }
    if s.scheme != SCHEME {
        return Err(format!("provenance.signature.scheme: `{}` is not {SCHEME}", s.scheme));
    }
    let (chain_id, contract) = signed_domain(s)?;
    let claimed: Address =
        s.signer.parse().map_err(|_| format!("provenance.signature.signer: `{}` is not an address", s.signer))?;
    let sig: Signature =
        s.signature.parse().map_err(|_| "provenance.signature.signature: not a 65-byte hex signature".to_string())?;
    let hash = signing_hash(p, chain_id, contract)?;
    let recovered = sig.recover_address_from_prehash(&hash).map_err(|e| format!("provenance.signature: {e}"))?;
    if recovered != claimed {
        return Err(format!(
            "provenance.signature: signed by {recovered}, not by the {claimed} it names: the record was changed after signing"
        ));
    }
    Ok(from_alloy(recovered))
}

/// The [`ProvenanceSigner`] port with a wallet's key (local or KMS).
#[derive(Clone)]
pub struct EvmProvenanceSigner {
    signer: Arc<dyn Signer<Signature> + Send + Sync>,
    chain_id: u64,
    contract: Address,
}

impl EvmProvenanceSigner {
    /// Signs for `contract` on `chain_id` with `signer`.
    pub fn new(signer: Arc<dyn Signer<Signature> + Send + Sync>, chain_id: u64, contract: Address) -> Self {
        Self { signer, chain_id, contract }
    }

    /// The signing address.
    pub fn address(&self) -> latentmint_core::EvmAddress {
        from_alloy(self.signer.address())
    }
}

#[async_trait]
impl ProvenanceSigner for EvmProvenanceSigner {
    async fn sign(&self, p: &Provenance) -> PortResult<ProvenanceSignature> {
        let hash = signing_hash(p, self.chain_id, self.contract).map_err(PortError::Permanent)?;
        let sig = self
            .signer
            .sign_hash(&hash)
            .await
            .map_err(|e| PortError::Transient(format!("signing the provenance record: {e}")))?;
        Ok(ProvenanceSignature {
            scheme: SCHEME.into(),
            signer: from_alloy(self.signer.address()).to_string(),
            chain_id: self.chain_id,
            verifying_contract: from_alloy(self.contract).to_string(),
            signature: format!("0x{}", alloy::primitives::hex::encode(sig.as_bytes())),
        })
    }
}

#[cfg(test)]
mod tests {
    use alloy::signers::local::PrivateKeySigner;
    use latentmint_core::job::AdapterRecord;
    use latentmint_core::living::{EvolutionRecord, Trigger};

    use super::*;

    /// A record with every optional part set, so that each is seen to be signed.
    fn record() -> Provenance {
        let mut p = Provenance { width: 64, height: 64, steps: 20, ..Provenance::for_tests() };
        p.model.files = [("unet/model.onnx", "01"), ("vae_decoder/model.onnx", "02")]
            .into_iter()
            .map(|(path, byte)| (path.to_string(), byte.repeat(32)))
            .collect();
        p.adapters = vec![AdapterRecord { name: "brand.safetensors".into(), sha256: "03".repeat(32), scale: 0.8 }];
        p.generator.fallback_reason = Some("endpoint throttled".into());
        p.qa = vec![latentmint_core::qa::QaModel {
            role: "safety".into(),
            name: "safety-checker".into(),
            sha256: "05".repeat(32),
        }];
        p.evolution = Some(EvolutionRecord {
            generation: 2,
            parent_metadata: "ipfs://bafkreiparentmetadata".into(),
            parent_image: "ipfs://bafkreiparentimage".into(),
            trigger: Trigger { chain_id: 412_346, block: 9, tx_hash: format!("0x{}", "04".repeat(32)), log_index: 1 },
            strength: 0.4,
            oracle: Some(latentmint_core::living::OracleReading {
                feed: "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419".into(),
                round: "110680464442257320247".into(),
                answer: "150000000000".into(),
                decimals: 8,
                mood: "under a stormy sky".into(),
            }),
        });
        p
    }

    #[tokio::test]
    async fn a_signed_record_verifies_and_any_change_breaks_it() {
        let key = PrivateKeySigner::random();
        let who = from_alloy(key.address());
        let signer = EvmProvenanceSigner::new(Arc::new(key), 31_337, Address::repeat_byte(0x11));
        let mut p = record();
        p.signature = Some(signer.sign(&p).await.unwrap());
        assert_eq!(verify(&p), Ok(who));
        // Survives the JSON round trip a collector's tool makes.
        let back: Provenance = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(verify(&back), Ok(who));
        // Every field a collector reads is signed, the optional parts included.
        type Change = (&'static str, fn(&mut Provenance));
        let changes: [Change; 27] = [
            ("schema", |p| p.schema.push('x')),
            ("job", |p| p.job_id = "00".repeat(32)),
            ("model id", |p| p.model.id.push('x')),
            ("model digest", |p| p.model.sha256 = "00".repeat(32)),
            ("a model file's digest", |p| {
                p.model.files.insert("unet/model.onnx".into(), "00".repeat(32));
            }),
            ("a model file's path", |p| {
                let d = p.model.files.remove("unet/model.onnx").unwrap_or_default();
                p.model.files.insert("unet/other.onnx".into(), d);
            }),
            ("prompt", |p| p.prompt.push('!')),
            ("negative prompt", |p| p.negative_prompt.push('!')),
            ("truncation", |p| p.prompt_truncated = true),
            ("seed", |p| p.seed += 1),
            ("steps", |p| p.steps += 1),
            ("guidance", |p| p.guidance = 8.0),
            ("scheduler", |p| p.scheduler = "euler".into()),
            ("size", |p| p.width = 128),
            ("backend", |p| p.generator.backend = "sagemaker:x".into()),
            ("fallback reason", |p| p.generator.fallback_reason = None),
            ("image", |p| p.image_sha256 = "00".repeat(32)),
            ("an adapter's scale", |p| p.adapters[0].scale = 1.0),
            ("an adapter's digest", |p| p.adapters[0].sha256 = "00".repeat(32)),
            ("the adapters", |p| p.adapters.clear()),
            ("a QA model's digest", |p| p.qa[0].sha256 = "00".repeat(32)),
            ("a QA model's role", |p| p.qa[0].role = "image-text".into()),
            ("the QA models", |p| p.qa.clear()),
            ("the parent", |p| {
                if let Some(e) = p.evolution.as_mut() {
                    e.parent_metadata = "ipfs://bafkreiother".into();
                }
            }),
            ("the trigger", |p| {
                if let Some(e) = p.evolution.as_mut() {
                    e.trigger.log_index += 1;
                }
            }),
            ("the oracle's answer", |p| {
                if let Some(o) = p.evolution.as_mut().and_then(|e| e.oracle.as_mut()) {
                    o.answer = "250000000000".into();
                }
            }),
            ("the evolution", |p| p.evolution = None),
        ];
        for (what, change) in changes {
            let mut tampered = p.clone();
            change(&mut tampered);
            let e = verify(&tampered).expect_err(what);
            assert!(e.contains("changed after signing"), "{what}: {e}");
        }
        // Another domain (contract) is another signature.
        let mut moved = p.clone();
        if let Some(s) = moved.signature.as_mut() {
            s.verifying_contract = from_alloy(Address::repeat_byte(0x22)).to_string();
        }
        assert!(verify(&moved).is_err());
        assert!(verify(&record()).unwrap_err().contains("not signed"));
        // A record signed under the first scheme, which left parts of it unsigned, is refused
        // by name.
        for (scheme, left_out) in RETIRED {
            let mut old = p.clone();
            if let Some(s) = old.signature.as_mut() {
                s.scheme = scheme.into();
            }
            let e = verify(&old).unwrap_err();
            assert!(e.contains("no longer accepted") && e.contains(left_out), "{e}");
        }
    }

    #[tokio::test]
    async fn the_typed_data_is_the_signed_struct_under_the_signed_domain() {
        let signer = EvmProvenanceSigner::new(Arc::new(PrivateKeySigner::random()), 42_161, Address::repeat_byte(0x33));
        // A seed JavaScript's numbers cannot hold.
        let mut p = Provenance { seed: u64::MAX - 6, ..record() };
        assert!(typed_data(&p).unwrap_err().contains("not signed"));
        p.signature = Some(signer.sign(&p).await.unwrap());
        let json = typed_data(&p).unwrap();
        assert_eq!(json["primaryType"], "ProvenanceRecord");
        assert_eq!(json["domain"]["version"], "3");
        assert_eq!(json["message"]["qaModels"][0]["role"], "safety");
        assert_eq!(json["message"]["seed"], (u64::MAX - 6).to_string());
        assert_eq!(json["message"]["evolution"][0]["trigger"]["blockNumber"], "9");
        let back: TypedData = serde_json::from_value(json).unwrap();
        assert_eq!(back.eip712_signing_hash().unwrap(), signing_hash(&p, 42_161, Address::repeat_byte(0x33)).unwrap());
    }

    #[test]
    fn a_digest_that_is_not_hex_is_named() {
        let mut p = record();
        p.adapters[0].sha256 = "not hex".into();
        let e = signing_hash(&p, 1, Address::ZERO).unwrap_err();
        assert!(e.starts_with("provenance.adapters[0].sha256:"), "{e}");
    }
}
