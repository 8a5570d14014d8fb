//! EIP-712 signatures over provenance records: the publisher (the collection's minting wallet)
//! vouches for each image's generation record, and anyone can check it with any EIP-712
//! library, or `latentmint provenance <metadata.json>`.
//!
//! Domain: `{name: "latentmint", version: "1", chainId, verifyingContract: <collection>}`.
//! The typed struct is [`ProvenanceRecord`]; hex digests become `bytes32`, guidance its
//! decimal text as written in the JSON, the generator `"<name> <version> <backend>"`.

use std::sync::Arc;

use alloy::primitives::{Address, B256, Signature};
use alloy::signers::Signer;
use alloy::sol_types::{SolStruct, eip712_domain};
use async_trait::async_trait;
use latentmint_core::metadata::{Provenance, ProvenanceSignature};
use latentmint_core::ports::{PortError, PortResult, ProvenanceSigner};

use crate::from_alloy;

/// The scheme tag recorded with each signature.
pub const SCHEME: &str = "eip712:latentmint-provenance-v1";

alloy::sol! {
    /// What the publisher signs about one image.
    #[derive(Debug)]
    struct ProvenanceRecord {
        bytes32 jobId;
        bytes32 modelSha256;
        bytes32 imageSha256;
        string prompt;
        string negativePrompt;
        uint64 seed;
        uint32 steps;
        string guidance;
        string scheduler;
        uint32 width;
        uint32 height;
        string generator;
    }
}

fn digest(field: &str, hex_text: &str) -> Result<B256, String> {
    hex_text.parse::<B256>().map_err(|_| format!("provenance.{field}: `{hex_text}` is not a 32-byte hex digest"))
}

/// The EIP-712 hash a signature over `p` signs.
pub fn signing_hash(p: &Provenance, chain_id: u64, contract: Address) -> Result<B256, String> {
    let record = ProvenanceRecord {
        jobId: digest("job_id", &p.job_id)?,
        modelSha256: digest("model.sha256", &p.model.sha256)?,
        imageSha256: digest("image_sha256", &p.image_sha256)?,
        prompt: p.prompt.clone(),
        negativePrompt: p.negative_prompt.clone(),
        seed: p.seed,
        steps: p.steps,
        guidance: p.guidance.to_string(),
        scheduler: p.scheduler.clone(),
        width: p.width,
        height: p.height,
        generator: format!("{} {} {}", p.generator.name, p.generator.version, p.generator.backend),
    };
    let domain = eip712_domain! {
        name: "latentmint",
        version: "1",
        chain_id: chain_id,
        verifying_contract: contract,
    };
    Ok(record.eip712_signing_hash(&domain))
}

/// Checks `p.signature` against the record: returns the signer when the signature recovers
/// to the address it names.
pub fn verify(p: &Provenance) -> Result<latentmint_core::EvmAddress, String> {
    let s = p.signature.as_ref().ok_or("provenance.signature: the record is not signed")?;
    if s.scheme != SCHEME {
        return Err(format!("provenance.signature.scheme: `{}` is not {SCHEME}", s.scheme));
    }
    let contract: Address = s.verifying_contract.parse().map_err(|_| {
        format!("provenance.signature.verifying_contract: `{}` is not an address", s.verifying_contract)
    })?;
    let claimed: Address =
        s.signer.parse().map_err(|_| format!("provenance.signature.signer: `{}` is not an address", s.signer))?;
    let sig: Signature =
        s.signature.parse().map_err(|_| "provenance.signature.signature: not a 65-byte hex signature".to_string())?;
    let hash = signing_hash(p, s.chain_id, contract)?;
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

    use super::*;

    fn record() -> Provenance {
        Provenance { width: 64, height: 64, steps: 20, ..Provenance::for_tests() }
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
        for change in [
            (|p: &mut Provenance| p.prompt.push('!')) as fn(&mut Provenance),
            |p| p.seed += 1,
            |p| p.image_sha256 = "00".repeat(32),
            |p| p.model.sha256 = "00".repeat(32),
            |p| p.guidance = 8.0,
            |p| p.generator.backend = "sagemaker:x".into(),
        ] {
            let mut tampered = p.clone();
            change(&mut tampered);
            let e = verify(&tampered).unwrap_err();
            assert!(e.contains("changed after signing"), "{e}");
        }
        // Another domain (contract) is another signature.
        let mut moved = p.clone();
        if let Some(s) = moved.signature.as_mut() {
            s.verifying_contract = from_alloy(Address::repeat_byte(0x22)).to_string();
        }
        assert!(verify(&moved).is_err());
        assert!(verify(&record()).unwrap_err().contains("not signed"));
    }
}
