//! The local-mode signer of Content Credentials.
//!
//! C2PA signatures carry an X.509 chain, and validators refuse a self-signed end-entity
//! certificate, so a local run makes a small chain of its own on first use: a development CA
//! (its key is dropped as soon as it has issued the signer's certificate) and an ES256 signing
//! certificate with the key usages the C2PA certificate profile asks for. They are kept in the
//! run's folder, so a resumed run signs as the same identity and a collector can name the CA as
//! a trust anchor (`latentmint verify --local-run`). In AWS mode the studio's own certificate
//! would take this place; there is no key in the repository.

use std::fs;
use std::path::Path;

use async_trait::async_trait;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};

use crate::{ClaimSigner, CredentialError, Result};

const CA_FILE: &str = "ca.pem";
const CERT_FILE: &str = "signer.pem";
const KEY_FILE: &str = "signer.key";

/// A signing key with its certificate chain (signer first, then the CA).
pub struct LocalIdentity {
    pub(crate) key: SigningKey,
    pub(crate) chain_der: Vec<Vec<u8>>,
    ca_pem: String,
}

impl std::fmt::Debug for LocalIdentity {
    // The key is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIdentity").field("certificates", &self.chain_der.len()).finish_non_exhaustive()
    }
}

fn ident_err(path: &Path, message: impl Into<String>) -> CredentialError {
    CredentialError::Identity { path: path.to_path_buf(), message: message.into() }
}

impl LocalIdentity {
    /// The identity kept in `dir`, made there first if `dir` has none. `organisation` names the
    /// signer in the certificates (what C2PA readers show as the issuer).
    pub fn load_or_create(dir: &Path, organisation: &str) -> Result<Self> {
        if dir.join(KEY_FILE).is_file() {
            return Self::load(dir);
        }
        let made = Self::create(organisation)?;
        fs::create_dir_all(dir).map_err(|e| ident_err(dir, format!("cannot create the folder: {e}")))?;
        // The key last: its presence means the identity is whole, so a run killed half-way
        // through makes a new one next time instead of finding a key without certificates.
        let cert_pem = pem_of(&made.chain_der[0]);
        fs::write(dir.join(CERT_FILE), cert_pem).map_err(|e| ident_err(&dir.join(CERT_FILE), e.to_string()))?;
        fs::write(dir.join(CA_FILE), &made.ca_pem).map_err(|e| ident_err(&dir.join(CA_FILE), e.to_string()))?;
        let key_pem = made.key.to_pkcs8_pem(LineEnding::LF).map_err(|e| ident_err(dir, e.to_string()))?;
        write_private(&dir.join(KEY_FILE), key_pem.as_bytes())?;
        Ok(made)
    }

    /// Reads an identity written by [`LocalIdentity::load_or_create`].
    pub fn load(dir: &Path) -> Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            fs::read_to_string(&path).map_err(|e| {
                ident_err(
                    &path,
                    format!("{e}; delete the folder to make a new identity (earlier images keep the old one)"),
                )
            })
        };
        let key_path = dir.join(KEY_FILE);
        let key = SigningKey::from_pkcs8_pem(&read(KEY_FILE)?)
            .map_err(|e| ident_err(&key_path, format!("not a PKCS#8 P-256 key: {e}")))?;
        let ca_pem = read(CA_FILE)?;
        let chain_der = [read(CERT_FILE)?, ca_pem.clone()]
            .iter()
            .zip([CERT_FILE, CA_FILE])
            .map(|(pem, name)| der_of(pem).ok_or_else(|| ident_err(&dir.join(name), "not a PEM certificate")))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { key, chain_der, ca_pem })
    }

    /// A new identity in memory (tests; [`LocalIdentity::load_or_create`] keeps it on disk).
    pub fn create(organisation: &str) -> Result<Self> {
        let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(cert_err)?;
        let (chain_der, ca_pem) = issue(organisation, &leaf_key)?;
        let key = SigningKey::from_pkcs8_der(leaf_key.serialized_der())
            .map_err(|e| CredentialError::C2pa(format!("reading the generated key: {e}")))?;
        Ok(Self { key, chain_der, ca_pem })
    }

    /// The development CA's certificate (PEM): the trust anchor for this identity's images.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The signer's certificate, then the CA's (PEM).
    pub fn chain_pem(&self) -> String {
        self.chain_der.iter().map(|der| pem_of(der)).collect()
    }
}

#[async_trait]
impl ClaimSigner for LocalIdentity {
    fn public_key(&self) -> &VerifyingKey {
        self.key.verifying_key()
    }

    async fn sign(&self, data: &[u8]) -> Result<Signature> {
        use p256::ecdsa::signature::Signer;
        Ok(self.key.sign(data))
    }
}

fn cert_err(e: rcgen::Error) -> CredentialError {
    CredentialError::C2pa(format!("making the development certificates: {e}"))
}

/// A development CA, and a signing certificate it issues for `subject` with the key usages
/// the C2PA certificate profile asks for: (the chain as DER, signer first; the CA as PEM).
/// The CA's key is dropped on return: it has issued the one certificate it is for.
fn issue(organisation: &str, subject: &impl rcgen::PublicKeyData) -> Result<(Vec<Vec<u8>>, String)> {
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
    ca.distinguished_name.push(DnType::CommonName, format!("{organisation} development CA"));
    ca.distinguished_name.push(DnType::OrganizationName, organisation);
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(cert_err)?;
    let ca = CertifiedIssuer::self_signed(ca, ca_key).map_err(cert_err)?;

    let mut leaf = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
    leaf.distinguished_name.push(DnType::CommonName, format!("{organisation} image generator"));
    leaf.distinguished_name.push(DnType::OrganizationName, organisation);
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::EmailProtection];
    leaf.use_authority_key_identifier_extension = true;
    let leaf = leaf.signed_by(subject, &ca).map_err(cert_err)?;
    Ok((vec![leaf.der().to_vec(), ca.der().to_vec()], ca.pem()))
}

/// A development certificate chain for a key held elsewhere (a KMS key's public half), as PEM:
/// (the chain, signer first; the CA, the trust anchor). For trying the AWS path without the
/// studio's CA; production chains come from the studio's own CA.
pub fn development_chain_for(public_key: &VerifyingKey, organisation: &str) -> Result<(String, String)> {
    use p256::pkcs8::EncodePublicKey;
    let spki = public_key.to_public_key_der().map_err(|e| CredentialError::C2pa(format!("public key: {e}")))?;
    let subject = rcgen::SubjectPublicKeyInfo::from_der(spki.as_bytes()).map_err(cert_err)?;
    let (chain_der, ca_pem) = issue(organisation, &subject)?;
    Ok((chain_der.iter().map(|der| pem_of(der)).collect(), ca_pem))
}

/// The certificates of a PEM bundle, in order, as DER; an error names what is not a
/// certificate, or says that there is none.
pub fn certificates_from_pem(text: &str) -> Result<Vec<Vec<u8>>> {
    let bad = |message: String| CredentialError::C2pa(format!("certificate chain: {message}"));
    let mut chain = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(text.as_bytes()) {
        let block = block.map_err(|e| bad(format!("not PEM: {e}")))?;
        if block.label != "CERTIFICATE" {
            return Err(bad(format!("a {} block where certificates were expected", block.label)));
        }
        chain.push(block.contents);
    }
    if chain.is_empty() {
        return Err(bad("no certificate in it; give the signing certificate, then its issuers, in PEM".into()));
    }
    Ok(chain)
}

/// The P-256 public key a certificate (DER) carries.
pub(crate) fn certificate_key(der: &[u8]) -> Result<VerifyingKey> {
    use p256::pkcs8::DecodePublicKey;
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CredentialError::C2pa(format!("the signing certificate cannot be read: {e}")))?;
    VerifyingKey::from_public_key_der(cert.public_key().raw)
        .map_err(|e| CredentialError::C2pa(format!("the signing certificate's key is not a P-256 key: {e}")))
}

fn pem_of(der: &[u8]) -> String {
    use p256::pkcs8::der::pem;
    pem::encode_string("CERTIFICATE", LineEnding::LF, der).unwrap_or_default()
}

fn der_of(text: &str) -> Option<Vec<u8>> {
    use p256::pkcs8::der::pem;
    let (label, der) = pem::decode_vec(text.as_bytes()).ok()?;
    (label == "CERTIFICATE").then_some(der)
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| ident_err(path, e.to_string()))?;
    file.write_all(bytes).map_err(|e| ident_err(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_made_once_and_read_back_as_the_same_signer() {
        let dir = tempfile::tempdir().unwrap();
        let made = LocalIdentity::load_or_create(dir.path(), "Studio").unwrap();
        let again = LocalIdentity::load_or_create(dir.path(), "Studio").unwrap();
        assert_eq!(made.chain_der, again.chain_der);
        assert_eq!(made.key.verifying_key(), again.key.verifying_key());
        assert_eq!(made.ca_pem(), again.ca_pem());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the key is readable by its owner only");
        }
        assert!(!format!("{made:?}").contains("key:"), "Debug never prints the key");
    }

    #[test]
    fn a_damaged_certificate_is_named() {
        let dir = tempfile::tempdir().unwrap();
        LocalIdentity::load_or_create(dir.path(), "Studio").unwrap();
        fs::write(dir.path().join(CERT_FILE), "not a certificate").unwrap();
        let err = LocalIdentity::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("signer.pem") && err.contains("not a PEM certificate"), "{err}");
    }
}
