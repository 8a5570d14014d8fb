//! An Ethereum signer whose key never leaves AWS KMS (key spec `ECC_SECG_P256K1`, usage
//! `SIGN_VERIFY`): the address comes from the key's public half, and every transaction hash is
//! signed by KMS as a digest.
//!
//! alloy has `alloy-signer-aws` for this, but its 2.5 release pins `aws-smithy-types =1.6.1`,
//! which the AWS SDK versions used here (aws-config 1.13) cannot share; this is the same
//! protocol on the SDK in the workspace. KMS returns a DER ECDSA signature without a recovery
//! id: the signature is normalised to low-s (EIP-2) and the recovery id found by recovering
//! against the known public key, so a signature that does not belong to the key (a KMS that
//! hashed the digest again) is an error here instead of an invalid transaction on chain.

use alloy::consensus::SignableTransaction;
use alloy::network::TxSigner;
use alloy::primitives::{Address, B256, ChainId, Signature};
use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use k256::ecdsa::{RecoveryId, VerifyingKey};
use k256::pkcs8::DecodePublicKey;

/// What can go wrong with a KMS key.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    /// The KMS call failed.
    #[error("KMS key {key}: {message}")]
    Kms {
        /// Key id or alias.
        key: String,
        /// What KMS said.
        message: String,
    },
    /// The key cannot sign Ethereum transactions.
    #[error("KMS key {key}: {message}")]
    WrongKey {
        /// Key id or alias.
        key: String,
        /// Why, and the fix.
        message: String,
    },
    /// KMS answered with a signature that is not a valid secp256k1 signature of the digest.
    #[error("KMS key {key}: {message}")]
    BadSignature {
        /// Key id or alias.
        key: String,
        /// Why.
        message: String,
    },
}

/// Signs with a KMS key.
#[derive(Clone)]
pub struct KmsSigner {
    client: aws_sdk_kms::Client,
    key_id: String,
    public_key: VerifyingKey,
    address: Address,
    chain_id: Option<ChainId>,
}

impl std::fmt::Debug for KmsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsSigner").field("key_id", &self.key_id).field("address", &self.address).finish()
    }
}

impl KmsSigner {
    /// Reads the public key of `key_id` (id, ARN or `alias/...`) and derives the address.
    /// `chain_id` is applied to transactions (EIP-155).
    pub async fn new(
        client: aws_sdk_kms::Client,
        key_id: impl Into<String>,
        chain_id: Option<ChainId>,
    ) -> Result<Self, KmsError> {
        let key_id = key_id.into();
        let der = signing_public_key(&client, &key_id, KeySpec::EccSecgP256K1, "Ethereum").await?;
        let public_key =
            public_key_from_der(&der).map_err(|message| KmsError::WrongKey { key: key_id.clone(), message })?;
        let address = Address::from_public_key(&public_key);
        Ok(Self { client, key_id, public_key, address, chain_id })
    }

    /// The account address of the key.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Signs a 32-byte hash (a transaction's signature hash) in KMS.
    pub async fn sign_hash(&self, hash: &B256) -> Result<Signature, KmsError> {
        let out = self
            .client
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(hash.as_slice()))
            .message_type(MessageType::Digest)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| KmsError::Kms {
                key: self.key_id.clone(),
                message: aws_sdk_kms::error::DisplayErrorContext(e).to_string(),
            })?;
        let der = out.signature().map(|b| b.as_ref()).unwrap_or_default();
        ethereum_signature(der, hash, &self.public_key)
            .map_err(|message| KmsError::BadSignature { key: self.key_id.clone(), message })
    }
}

/// The public half (DER SubjectPublicKeyInfo) of a signing key of spec `want`, read from KMS;
/// a key of another spec or usage is refused with the fix. `purpose` names what needs that spec.
pub(crate) async fn signing_public_key(
    client: &aws_sdk_kms::Client,
    key_id: &str,
    want: KeySpec,
    purpose: &str,
) -> Result<Vec<u8>, KmsError> {
    let out = client.get_public_key().key_id(key_id).send().await.map_err(|e| KmsError::Kms {
        key: key_id.to_string(),
        message: aws_sdk_kms::error::DisplayErrorContext(e).to_string(),
    })?;
    // KeySpec, or its deprecated twin CustomerMasterKeySpec (some KMS stand-ins send only
    // that); with neither, the caller's DER parse still rejects other curves.
    #[allow(deprecated)]
    let spec = out
        .key_spec()
        .map(|k| k.as_str().to_string())
        .or_else(|| out.customer_master_key_spec().map(|k| k.as_str().to_string()));
    if let Some(spec) = spec
        && spec != want.as_str()
    {
        return Err(KmsError::WrongKey {
            key: key_id.to_string(),
            message: format!(
                "has key spec {spec}; {purpose} needs {want}: create the key with --key-spec {want} --key-usage SIGN_VERIFY",
                want = want.as_str()
            ),
        });
    }
    if out.key_usage().is_some_and(|u| u != &KeyUsageType::SignVerify) {
        return Err(KmsError::WrongKey {
            key: key_id.to_string(),
            message: format!("has key usage {:?}; it must be SIGN_VERIFY", out.key_usage()),
        });
    }
    Ok(out.public_key().map(|b| b.as_ref().to_vec()).unwrap_or_default())
}

/// The secp256k1 public key in a DER SubjectPublicKeyInfo (what KMS GetPublicKey returns).
fn public_key_from_der(der: &[u8]) -> Result<VerifyingKey, String> {
    VerifyingKey::from_public_key_der(der).map_err(|e| format!("public key is not a secp256k1 key in DER: {e}"))
}

/// A DER ECDSA signature of `hash` as an Ethereum signature: low-s, with the recovery id that
/// recovers `public_key`.
fn ethereum_signature(der: &[u8], hash: &B256, public_key: &VerifyingKey) -> Result<Signature, String> {
    let sig = k256::ecdsa::Signature::from_der(der).map_err(|e| format!("signature is not DER ECDSA: {e}"))?;
    let sig = sig.normalize_s().unwrap_or(sig);
    for parity in [false, true] {
        let rid = RecoveryId::new(parity, false);
        if VerifyingKey::recover_from_prehash(hash.as_slice(), &sig, rid).is_ok_and(|k| &k == public_key) {
            return Ok(Signature::from_signature_and_parity(sig, parity));
        }
    }
    Err("the signature does not recover to the key's address: KMS did not sign the digest as given (MessageType DIGEST)".into())
}

#[async_trait]
impl TxSigner<Signature> for KmsSigner {
    fn address(&self) -> Address {
        self.address
    }

    async fn sign_transaction(&self, tx: &mut dyn SignableTransaction<Signature>) -> alloy::signers::Result<Signature> {
        if let Some(chain_id) = self.chain_id
            && !tx.set_chain_id_checked(chain_id)
        {
            return Err(alloy::signers::Error::TransactionChainIdMismatch {
                signer: chain_id,
                tx: tx.chain_id().unwrap_or_default(),
            });
        }
        self.sign_hash(&tx.signature_hash()).await.map_err(alloy::signers::Error::other)
    }
}

/// Hash signing (provenance records) with the same key.
#[async_trait]
impl alloy::signers::Signer<Signature> for KmsSigner {
    async fn sign_hash(&self, hash: &B256) -> alloy::signers::Result<Signature> {
        KmsSigner::sign_hash(self, hash).await.map_err(alloy::signers::Error::other)
    }

    fn address(&self) -> Address {
        self.address
    }

    fn chain_id(&self) -> Option<ChainId> {
        self.chain_id
    }

    fn set_chain_id(&mut self, chain_id: Option<ChainId>) {
        self.chain_id = chain_id;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::SignerSync;
    use alloy::signers::local::PrivateKeySigner;
    use k256::ecdsa::SigningKey;
    use k256::ecdsa::signature::hazmat::PrehashSigner;
    use k256::pkcs8::EncodePublicKey;

    // The signing maths without KMS: a local key makes the DER signatures KMS would return.
    fn key() -> SigningKey {
        SigningKey::from_bytes(&[0x42u8; 32].into()).unwrap()
    }

    #[test]
    fn der_public_key_gives_the_same_address_as_the_private_key() {
        let sk = key();
        let der = sk.verifying_key().to_public_key_der().unwrap();
        let vk = public_key_from_der(der.as_bytes()).unwrap();
        let local = PrivateKeySigner::from_signing_key(sk);
        assert_eq!(Address::from_public_key(&vk), local.address());
        assert!(public_key_from_der(b"not der").unwrap_err().contains("secp256k1"));
    }

    #[test]
    fn der_signatures_become_the_signature_a_local_key_makes() {
        let sk = key();
        let local = PrivateKeySigner::from_signing_key(sk.clone());
        for i in 0..16u8 {
            let hash = B256::from([i; 32]);
            let (sig, _): (k256::ecdsa::Signature, RecoveryId) = sk.sign_prehash(hash.as_slice()).unwrap();
            let ours = ethereum_signature(sig.to_der().as_bytes(), &hash, sk.verifying_key()).unwrap();
            assert_eq!(ours, local.sign_hash_sync(&hash).unwrap(), "hash {i}");
            assert_eq!(ours.recover_address_from_prehash(&hash).unwrap(), local.address());
            // KMS may return the high-s twin of a signature; it is normalised (EIP-2).
            let (r, s) = sig.split_scalars();
            let high = k256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
            let ours_high = ethereum_signature(high.to_der().as_bytes(), &hash, sk.verifying_key()).unwrap();
            assert_eq!(ours_high, ours);
        }
    }

    #[test]
    fn a_signature_of_something_else_is_refused() {
        let sk = key();
        let hash = B256::from([1; 32]);
        // What a KMS that hashes the digest again would produce.
        let other = alloy::primitives::keccak256(hash);
        let (sig, _): (k256::ecdsa::Signature, RecoveryId) = sk.sign_prehash(other.as_slice()).unwrap();
        let err = ethereum_signature(sig.to_der().as_bytes(), &hash, sk.verifying_key()).unwrap_err();
        assert!(err.contains("does not recover"), "{err}");
    }
}
