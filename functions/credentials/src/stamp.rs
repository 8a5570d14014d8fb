//! Embedding a manifest in a PNG, and reading one back.

use std::io::Cursor;
use std::sync::Arc;

use async_trait::async_trait;
use c2pa::{Builder, BuilderIntent, Context, DigitalSourceType, Reader, Settings, SigningAlg};
use latentmint_core::job::AdapterRecord;
use latentmint_core::ports::GenerationRequest;
use latentmint_core::{GenerationParams, GenerationRecord};
use p256::ecdsa::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{CredentialError, GENERATION_ASSERTION, LocalIdentity, Result, TRAINED_ALGORITHMIC_MEDIA, c2pa_err};

/// What latentmint asserts about an image (`org.latentmint.generation`): the request and the
/// model, enough to make the image again. The image's own SHA-256 cannot be in it (the manifest
/// is part of the file); the data-hash assertion binds the manifest to the bytes instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationAssertion {
    /// The job, hex.
    pub job_id: String,
    /// Prompt as the model saw it (before truncation to the text encoder's window).
    pub prompt: String,
    /// Negative prompt.
    pub negative_prompt: String,
    /// Model identifier.
    pub model_id: String,
    /// SHA-256 over the model's files, hex.
    pub model_sha256: String,
    /// Parameters used, seed included.
    pub params: GenerationParams,
    /// LoRA adapters merged into the model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adapters: Vec<AdapterRecord>,
    /// Which path produced the image (`onnx-cpu`, `sagemaker:<endpoint>`).
    pub backend: String,
    /// For an evolved image: the SHA-256 of the image it started from, and how far it moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_image_sha256: Option<String>,
    /// img2img strength, with `init_image_sha256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strength: Option<f32>,
}

impl GenerationAssertion {
    fn of(req: &GenerationRequest, record: &GenerationRecord) -> Self {
        Self {
            job_id: req.job_id.to_string(),
            prompt: req.prompt.clone(),
            negative_prompt: req.negative_prompt.clone(),
            model_id: record.model_id.clone(),
            model_sha256: record.model_sha256.clone(),
            params: record.params.clone(),
            adapters: record.adapters.clone(),
            backend: record.backend.clone(),
            init_image_sha256: req.init_image.as_ref().map(|i| hex::encode(Sha256::digest(&i.png))),
            strength: req.init_image.as_ref().map(|i| i.strength),
        }
    }
}

/// Signs C2PA claims with ES256 (ECDSA on P-256 over SHA-256): the run's own key locally
/// ([`LocalIdentity`]), a KMS key in AWS. The key never has to leave its holder.
#[async_trait]
pub trait ClaimSigner: Send + Sync {
    /// The key's public half (its certificate must carry the same).
    fn public_key(&self) -> &VerifyingKey;
    /// A signature over `data` (the library hashes nothing: the signer does).
    async fn sign(&self, data: &[u8]) -> Result<Signature>;
}

/// A [`ClaimSigner`] with its certificate chain, as the C2PA library calls it. C2PA wants the
/// raw `r || s` form; `reserve_size` is what the signature box reserves in the file (the
/// library's default is 10 KB).
struct ChainSigner<'a> {
    signer: &'a dyn ClaimSigner,
    chain_der: &'a [Vec<u8>],
}

#[async_trait]
impl c2pa::AsyncSigner for ChainSigner<'_> {
    async fn sign(&self, data: Vec<u8>) -> c2pa::Result<Vec<u8>> {
        let signature = self.signer.sign(&data).await.map_err(|e| c2pa::Error::OtherError(Box::new(e)))?;
        Ok(signature.to_bytes().to_vec())
    }

    fn alg(&self) -> SigningAlg {
        SigningAlg::Es256
    }

    fn certs(&self) -> c2pa::Result<Vec<Vec<u8>>> {
        Ok(self.chain_der.to_vec())
    }

    fn reserve_size(&self) -> usize {
        1024 + self.chain_der.iter().map(Vec::len).sum::<usize>()
    }
}

/// Embeds Content Credentials in generated PNGs.
pub struct Stamper {
    signer: Arc<dyn ClaimSigner>,
    chain_der: Vec<Vec<u8>>,
    context: Arc<Context>,
    agent: String,
}

/// Settings for signing and reading: never reach the network (no OCSP, no remote manifests),
/// trust checked only against the anchors given.
fn context(anchors_pem: Option<&str>) -> Result<Arc<Context>> {
    let settings = json!({
        "verify": {
            "verify_trust": anchors_pem.is_some(),
            "verify_timestamp_trust": false,
            "ocsp_fetch": false,
            "remote_manifest_fetch": false,
        },
        "trust": { "user_anchors": anchors_pem },
        // The image is its own thumbnail at these sizes (and the feature is not compiled in).
        "builder": { "thumbnail": { "enabled": false } },
    });
    let settings = Settings::new().with_json(&settings.to_string()).map_err(c2pa_err)?;
    Ok(Context::new().with_settings(settings).map_err(c2pa_err)?.into_shared())
}

impl Stamper {
    /// A stamper signing with `signer`, whose certificate chain (signer first, then its
    /// issuers) is `chain_pem`; `agent` names the software in the manifest. A chain whose first
    /// certificate is not the signer's key is refused here, before any image is made.
    pub fn new(signer: Arc<dyn ClaimSigner>, chain_pem: &str, agent: &str) -> Result<Self> {
        Self::with_chain(signer, crate::identity::certificates_from_pem(chain_pem)?, agent)
    }

    /// A stamper signing as a run's own [`LocalIdentity`], with its chain as it holds it.
    pub fn local(identity: Arc<LocalIdentity>, agent: &str) -> Result<Self> {
        let chain_der = identity.chain_der.clone();
        Self::with_chain(identity, chain_der, agent)
    }

    fn with_chain(signer: Arc<dyn ClaimSigner>, chain_der: Vec<Vec<u8>>, agent: &str) -> Result<Self> {
        let leaf = chain_der.first().ok_or_else(|| CredentialError::C2pa("the certificate chain is empty".into()))?;
        if crate::identity::certificate_key(leaf)? != *signer.public_key() {
            return Err(CredentialError::C2pa(
                "the chain's first certificate is not the signer's key: put the signing certificate first, then its issuers".into(),
            ));
        }
        Ok(Self { signer, chain_der, context: context(None)?, agent: agent.to_string() })
    }

    /// `png` with a signed manifest saying that it was made by `record`'s model from `req`.
    /// An evolved image (img2img) names the image it started from as its parent ingredient,
    /// whose own credentials are kept in the chain.
    pub async fn stamp(&self, png: &[u8], req: &GenerationRequest, record: &GenerationRecord) -> Result<Vec<u8>> {
        let agent = json!({ "name": self.agent, "version": env!("CARGO_PKG_VERSION") });
        let definition = json!({
            "title": format!("{}.png", req.job_id),
            "format": "image/png",
            "claim_generator_info": [agent],
        });
        let mut builder =
            Builder::from_shared_context(&self.context).with_definition(definition.to_string()).map_err(c2pa_err)?;
        match &req.init_image {
            None => {
                builder.set_intent(BuilderIntent::Create(DigitalSourceType::TrainedAlgorithmicMedia));
                builder
                    .add_action(json!({
                        "action": "c2pa.created",
                        "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                        "softwareAgent": agent,
                    }))
                    .map_err(c2pa_err)?;
            }
            Some(init) => {
                builder.set_intent(BuilderIntent::Edit);
                builder
                    .add_ingredient_from_stream(
                        json!({ "title": "parent.png", "relationship": "parentOf" }).to_string(),
                        "image/png",
                        &mut Cursor::new(&init.png),
                    )
                    .map_err(c2pa_err)?;
                builder
                    .add_action(json!({
                        "action": "c2pa.edited",
                        "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                        "softwareAgent": agent,
                    }))
                    .map_err(c2pa_err)?;
            }
        }
        builder.add_assertion(GENERATION_ASSERTION, &GenerationAssertion::of(req, record)).map_err(c2pa_err)?;
        let mut out = Cursor::new(Vec::with_capacity(png.len() + 4096));
        let signer = ChainSigner { signer: self.signer.as_ref(), chain_der: &self.chain_der };
        builder.sign_async(&signer, "image/png", &mut Cursor::new(png), &mut out).await.map_err(c2pa_err)?;
        Ok(out.into_inner())
    }
}

/// How far a manifest's validation went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Validation {
    /// Signature, certificate profile and data hash hold, and the chain ends at a given anchor.
    Trusted,
    /// Signature, certificate profile and data hash hold; trust was not checked (no anchors).
    Valid,
    /// Something failed; see [`CredentialReport::failures`].
    Invalid,
}

/// What an image's Content Credentials say, once validated.
#[derive(Debug, Clone, Serialize)]
pub struct CredentialReport {
    /// Validation outcome.
    pub validation: Validation,
    /// The validation codes that failed, with their explanations.
    pub failures: Vec<String>,
    /// The signing certificate's subject common name and issuing organisation.
    pub signer: String,
    /// The digital source type of the creating or editing action.
    pub digital_source_type: Option<String>,
    /// latentmint's assertion, when the manifest has one.
    pub generation: Option<GenerationAssertion>,
}

/// Validates the manifest inside `png`: `Ok(None)` when it has none. With `anchors_pem` the
/// signer's chain must end at one of those CAs.
pub fn read(png: &[u8], anchors_pem: Option<&str>) -> Result<Option<CredentialReport>> {
    let reader = match Reader::from_shared_context(&context(anchors_pem)?).with_stream("image/png", Cursor::new(png)) {
        Ok(r) => r,
        Err(c2pa::Error::JumbfNotFound) => return Ok(None),
        Err(e) => return Err(c2pa_err(e)),
    };
    let failures: Vec<String> = reader
        .validation_results()
        .and_then(|r| r.active_manifest())
        .map(|m| m.failure().iter().map(|s| format!("{}: {}", s.code(), s.explanation().unwrap_or(""))).collect())
        .unwrap_or_default();
    let validation = match reader.validation_state() {
        c2pa::ValidationState::Trusted => Validation::Trusted,
        c2pa::ValidationState::Valid => Validation::Valid,
        c2pa::ValidationState::Invalid => Validation::Invalid,
    };
    let manifest = reader.active_manifest().ok_or_else(|| CredentialError::C2pa("no active manifest".into()))?;
    let signer = manifest
        .signature_info()
        .map(|s| format!("{} ({})", s.common_name.as_deref().unwrap_or("?"), s.issuer.as_deref().unwrap_or("?")))
        .unwrap_or_default();
    let digital_source_type = manifest.find_assertion::<serde_json::Value>("c2pa.actions.v2").ok().and_then(|a| {
        a["actions"].as_array()?.iter().find_map(|x| x["digitalSourceType"].as_str().map(str::to_string))
    });
    let generation = manifest.find_assertion::<GenerationAssertion>(GENERATION_ASSERTION).ok();
    Ok(Some(CredentialReport { validation, failures, signer, digital_source_type, generation }))
}

#[cfg(test)]
mod tests {
    use latentmint_core::JobId;
    use latentmint_core::ports::InitImage;

    use super::*;

    fn png(colour: [u8; 3]) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(32, 32, image::Rgb(colour));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn pixels(png: &[u8]) -> Vec<u8> {
        image::load_from_memory(png).unwrap().to_rgb8().into_raw()
    }

    fn request(seed: u64) -> (GenerationRequest, GenerationRecord) {
        let record = GenerationRecord::for_tests(seed);
        let req = GenerationRequest {
            job_id: "ab".repeat(32).parse::<JobId>().unwrap(),
            prompt: "a red circle".into(),
            negative_prompt: "blurry".into(),
            params: record.params.clone(),
            init_image: None,
        };
        (req, record)
    }

    fn stamper(identity: &Arc<LocalIdentity>) -> Stamper {
        Stamper::local(identity.clone(), "latentmint").unwrap()
    }

    #[tokio::test]
    async fn a_stamped_image_keeps_its_pixels_and_says_how_it_was_made() {
        let identity = Arc::new(LocalIdentity::create("Test Studio").unwrap());
        let stamper = stamper(&identity);
        let (req, record) = request(7);
        let plain = png([200, 30, 30]);
        let stamped = stamper.stamp(&plain, &req, &record).await.unwrap();
        assert_eq!(pixels(&stamped), pixels(&plain));

        let report = read(&stamped, None).unwrap().expect("a manifest");
        assert_eq!(report.validation, Validation::Valid, "{:?}", report.failures);
        assert_eq!(report.digital_source_type.as_deref(), Some(TRAINED_ALGORITHMIC_MEDIA));
        assert_eq!(report.signer, "Test Studio image generator (Test Studio)");
        let g = report.generation.expect("latentmint's assertion");
        assert_eq!(g, GenerationAssertion::of(&req, &record));
        assert_eq!(g.params.seed, 7);

        let trusted = read(&stamped, Some(identity.ca_pem())).unwrap().unwrap();
        assert_eq!(trusted.validation, Validation::Trusted, "{:?}", trusted.failures);
        let other = LocalIdentity::create("Someone Else").unwrap();
        let untrusted = read(&stamped, Some(other.ca_pem())).unwrap().unwrap();
        assert_ne!(untrusted.validation, Validation::Trusted, "another CA does not vouch for this signer");
    }

    #[tokio::test]
    async fn changed_bytes_fail_the_data_hash_and_a_plain_image_has_no_manifest() {
        let identity = Arc::new(LocalIdentity::create("Test Studio").unwrap());
        let stamper = stamper(&identity);
        let (req, record) = request(1);
        let plain = png([10, 200, 10]);
        assert!(read(&plain, None).unwrap().is_none());

        let mut stamped = stamper.stamp(&plain, &req, &record).await.unwrap();
        // The last byte before IEND's CRC belongs to the image data, outside the manifest.
        let n = stamped.len();
        stamped[n - 20] ^= 0x01;
        let report = read(&stamped, None).unwrap().unwrap();
        assert_eq!(report.validation, Validation::Invalid);
        assert!(report.failures.iter().any(|f| f.contains("dataHash.mismatch")), "{:?}", report.failures);
    }

    #[tokio::test]
    async fn an_evolved_image_names_its_parent_as_an_ingredient() {
        let identity = Arc::new(LocalIdentity::create("Test Studio").unwrap());
        let stamper = stamper(&identity);
        let (req, record) = request(3);
        let parent = stamper.stamp(&png([0, 0, 200]), &req, &record).await.unwrap();
        let evolved_req =
            GenerationRequest { init_image: Some(InitImage { png: parent.clone(), strength: 0.6 }), ..req.clone() };
        let child = stamper.stamp(&png([0, 100, 200]), &evolved_req, &record).await.unwrap();
        let report = read(&child, Some(identity.ca_pem())).unwrap().unwrap();
        assert_eq!(report.validation, Validation::Trusted, "{:?}", report.failures);
        let g = report.generation.unwrap();
        assert_eq!(g.init_image_sha256, Some(hex::encode(Sha256::digest(&parent))));
        assert_eq!(g.strength, Some(0.6));
        assert_eq!(report.digital_source_type.as_deref(), Some(TRAINED_ALGORITHMIC_MEDIA));
    }

    #[test]
    fn a_chain_for_another_key_or_no_chain_is_refused_before_any_image() {
        let signer = Arc::new(LocalIdentity::create("A").unwrap());
        let other = LocalIdentity::create("B").unwrap();
        let err = Stamper::new(signer.clone(), &other.chain_pem(), "latentmint").err().unwrap().to_string();
        assert!(err.contains("not the signer's key"), "{err}");
        let err = Stamper::new(signer, "no pem here", "latentmint").err().unwrap().to_string();
        assert!(err.contains("no certificate in it"), "{err}");
    }
}
