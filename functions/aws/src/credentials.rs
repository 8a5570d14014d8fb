//! Content Credentials signed by a KMS key (key spec `ECC_NIST_P256`, usage `SIGN_VERIFY`):
//! the C2PA claim signer of the stack's generate and live functions. The key never leaves KMS;
//! its certificate (issued by the studio's CA for the key's public half) is public and comes
//! with the stack's configuration.

use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, MessageType, SigningAlgorithmSpec};
use latentmint_core::ports::BlobStore;
use latentmint_credentials::{ClaimSigner, CredentialError, Stamper};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use sha2::{Digest, Sha256};

use crate::KmsError;

/// KMS signs up to this many bytes as a message (it hashes them); longer ones are hashed here
/// and sent as a digest.
const KMS_RAW_LIMIT: usize = 4096;

/// Signs C2PA claims with ES256 in KMS.
pub struct KmsClaimSigner {
    client: aws_sdk_kms::Client,
    key_id: String,
    public_key: VerifyingKey,
}

impl std::fmt::Debug for KmsClaimSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsClaimSigner").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl KmsClaimSigner {
    /// Reads the public half of `key_id` (id, ARN or `alias/...`); a key of another spec or
    /// usage is refused with the fix.
    pub async fn new(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Result<Self, KmsError> {
        let key_id = key_id.into();
        let der = crate::kms::signing_public_key(&client, &key_id, KeySpec::EccNistP256, "Content Credentials (ES256)")
            .await?;
        let public_key = VerifyingKey::from_public_key_der(&der).map_err(|e| KmsError::WrongKey {
            key: key_id.clone(),
            message: format!("public key is not a P-256 key in DER: {e}"),
        })?;
        Ok(Self { client, key_id, public_key })
    }
}

#[async_trait]
impl ClaimSigner for KmsClaimSigner {
    fn public_key(&self) -> &VerifyingKey {
        &self.public_key
    }

    async fn sign(&self, data: &[u8]) -> latentmint_credentials::Result<Signature> {
        let request = self.client.sign().key_id(&self.key_id).signing_algorithm(SigningAlgorithmSpec::EcdsaSha256);
        let request = if data.len() <= KMS_RAW_LIMIT {
            request.message(Blob::new(data)).message_type(MessageType::Raw)
        } else {
            request.message(Blob::new(Sha256::digest(data).to_vec())).message_type(MessageType::Digest)
        };
        let err = |message: String| CredentialError::C2pa(format!("KMS key {}: {message}", self.key_id));
        let out = request.send().await.map_err(|e| err(aws_sdk_kms::error::DisplayErrorContext(e).to_string()))?;
        let der = out.signature().map(|b| b.as_ref()).unwrap_or_default();
        let signature = Signature::from_der(der).map_err(|e| err(format!("signature is not DER ECDSA: {e}")))?;
        let signature = signature.normalize_s().unwrap_or(signature);
        // Checked here, so that a signature of another message never ends up in a manifest.
        self.public_key
            .verify(data, &signature)
            .map_err(|_| err("KMS returned a signature that does not verify against the key".into()))?;
        Ok(signature)
    }
}

/// The stamper of the stack's generate and live functions, built once at init: signing in KMS
/// with `key_id`, under the PEM chain stored at `chain_key` in `chain_store` (the bucket). A
/// missing or unreadable chain, a key of the wrong spec, or a chain for another key stops the
/// function at start with what to fix, before any image is made.
pub async fn kms_stamper(
    kms: aws_sdk_kms::Client,
    key_id: &str,
    chain_store: &dyn BlobStore,
    chain_key: &str,
) -> Result<Stamper, CredentialError> {
    let chain_err = |message: String| CredentialError::Identity { path: chain_key.into(), message };
    let chain = chain_store
        .get(chain_key)
        .await
        .map_err(|e| chain_err(format!("the certificate chain could not be read ({e}); upload it there as PEM")))?;
    let chain = String::from_utf8(chain).map_err(|_| chain_err("not PEM text".into()))?;
    let signer = KmsClaimSigner::new(kms, key_id).await.map_err(|e| CredentialError::C2pa(e.to_string()))?;
    Stamper::new(std::sync::Arc::new(signer), &chain, "latentmint").map_err(|e| chain_err(e.to_string()))
}
