//! KMS signing against moto's KMS over the wire, with a real anvil; and Content Credentials
//! signed by a KMS key.
//!
//! moto creates the keys and signs; its server is started with `MessageType=DIGEST` done as AWS
//! KMS does it (tests/support/moto_server.py: moto 5.2 hashes a digest again before signing).
//! So a transaction signed in KMS is accepted by anvil, from the key's own address.

use alloy::primitives::Address;
use alloy::providers::Provider;
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use latentmint_aws::KmsSigner;
use latentmint_chain::{Chain, LocalNode, SendPolicy, to_alloy};
use latentmint_core::cid::cid_of_bytes;
use latentmint_core::ports::Minter;
use latentmint_core::{EvmAddress, JobId};
use latentmint_e2e::{Moto, anvil, fund_and_grant};

const CHAIN_ID: u64 = 412_346;

async fn key(kms: &aws_sdk_kms::Client, spec: KeySpec) -> String {
    let out = kms.create_key().key_spec(spec).key_usage(KeyUsageType::SignVerify).send().await.expect("create_key");
    out.key_metadata().expect("metadata").key_id().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_minted_with_a_kms_key_is_sent_from_the_keys_address() {
    let moto = Moto::start();
    let kms = moto.kms();
    let id = key(&kms, KeySpec::EccSecgP256K1).await;
    let signer = KmsSigner::new(kms.clone(), &id, Some(CHAIN_ID)).await.expect("secp256k1 key accepted");
    let again = KmsSigner::new(kms.clone(), &id, Some(CHAIN_ID)).await.unwrap();
    assert_eq!(signer.address(), again.address(), "the address is the key's");
    assert_ne!(signer.address(), Address::ZERO);

    // A collection contract deployed by a dev key, with the KMS account as minter.
    let node = LocalNode::spawn(&anvil(), CHAIN_ID, None).await.unwrap();
    let admin = Chain::connect(&node.rpc_url, node.dev_key(0).unwrap(), CHAIN_ID).await.unwrap();
    let contract = admin.deploy("Kms", "KMS").await.unwrap();
    let kms_account = signer.address();
    fund_and_grant(&admin, contract, kms_account, "MINTER_ROLE").await;

    let chain = Chain::connect_signer(std::slice::from_ref(&node.rpc_url), signer, CHAIN_ID).await.unwrap();
    assert_eq!(to_alloy(chain.sender()), kms_account, "the chain connection sends as the KMS account");
    let minter = chain.minter(contract, SendPolicy::confirmations(1));
    let recipient = EvmAddress::parse_checksummed("0x70997970C51812dc3A010C7d01b50e0d17dc79C8").unwrap();
    let job = JobId::from_bytes([4; 32]);
    let receipt = minter.mint(job, recipient, &cid_of_bytes(b"kms")).await.expect("minted through KMS");
    let tx_hash = receipt.tx_hash.expect("this call sent the transaction");
    let tx =
        chain.provider().get_transaction_by_hash(tx_hash.parse().unwrap()).await.unwrap().expect("the transaction");
    assert_eq!(tx.inner.signer(), kms_account, "signed by the KMS key");
    assert_eq!(minter.owner_of(&receipt.token_id).await.unwrap(), recipient);
    assert_eq!(chain.provider().get_transaction_count(kms_account).await.unwrap(), 1);
    // A second delivery of the job finds its token and sends nothing.
    let again = minter.mint(job, recipient, &cid_of_bytes(b"kms")).await.unwrap();
    assert!(!again.sent(), "found on chain, not sent");
    assert_eq!((again.token_id, again.tx_hash), (receipt.token_id, Some(tx_hash)));
    assert_eq!(minter.total_supply().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_of_another_spec_is_refused_with_the_fix() {
    let moto = Moto::start();
    let kms = moto.kms();
    let id = key(&kms, KeySpec::EccNistP256).await;
    let err = KmsSigner::new(kms, &id, None).await.unwrap_err().to_string();
    assert!(err.contains(&id) && err.contains("ECC_SECG_P256K1") && err.contains("--key-spec"), "{err}");
}

/// Content Credentials in AWS mode, as the generate and live functions build them at init:
/// a P-256 KMS key (moto hashes a RAW message once, as KMS does), the certificate chain the
/// studio's CA issued for its public half read from the bucket, every image the generator
/// returns stamped and recorded under its stamped bytes; the manifest is trusted under that CA.
#[tokio::test(flavor = "multi_thread")]
async fn content_credentials_are_signed_in_kms_under_the_studios_certificate() {
    use async_trait::async_trait;
    use latentmint_aws::{KmsClaimSigner, S3BlobStore, kms_stamper};
    use latentmint_core::ports::{BlobStore, GeneratedImage, GenerationRequest, Generator, PortResult};
    use latentmint_credentials::{ClaimSigner, Credentialed, Validation, development_chain_for, read};
    use sha2::{Digest, Sha256};
    use std::sync::Arc;

    /// Stands for the engine: one plain PNG.
    struct Plain;
    #[async_trait]
    impl Generator for Plain {
        async fn generate(&self, req: &GenerationRequest) -> PortResult<GeneratedImage> {
            let mut png = std::io::Cursor::new(Vec::new());
            image::RgbImage::from_pixel(32, 32, image::Rgb([200, 40, 40]))
                .write_to(&mut png, image::ImageFormat::Png)
                .unwrap();
            let mut record = latentmint_core::GenerationRecord::for_tests(req.params.seed);
            record.image_sha256 = hex::encode(Sha256::digest(png.get_ref()));
            Ok(GeneratedImage { png: png.into_inner(), record })
        }
    }

    let moto = Moto::start();
    let kms = moto.kms();
    let s3 = moto.s3();
    s3.create_bucket().bucket("latentmint-stack").send().await.unwrap();
    let bucket = S3BlobStore::new(s3, "latentmint-stack", "");
    let id = key(&kms, KeySpec::EccNistP256).await;
    let public_key = *KmsClaimSigner::new(kms.clone(), &id).await.expect("P-256 key accepted").public_key();
    let (chain_pem, ca_pem) = development_chain_for(&public_key, "Studio").unwrap();

    // No chain uploaded yet: the function stops at init, naming the object.
    let err = kms_stamper(kms.clone(), &id, &bucket, "credentials/c2pa-chain.pem").await.err().unwrap().to_string();
    assert!(err.contains("credentials/c2pa-chain.pem") && err.contains("upload it"), "{err}");
    // A chain issued for another key is refused before any image is made.
    let other = latentmint_credentials::LocalIdentity::create("Other").unwrap();
    bucket.put("credentials/c2pa-chain.pem", other.chain_pem().into_bytes()).await.unwrap();
    let err = kms_stamper(kms.clone(), &id, &bucket, "credentials/c2pa-chain.pem").await.err().unwrap().to_string();
    assert!(err.contains("not the signer's key"), "{err}");

    bucket.put("credentials/c2pa-chain.pem", chain_pem.into_bytes()).await.unwrap();
    let stamper = kms_stamper(kms.clone(), &id, &bucket, "credentials/c2pa-chain.pem").await.expect("stamper");
    let generator = Credentialed::new(Arc::new(Plain), Arc::new(stamper));
    let record = latentmint_core::GenerationRecord::for_tests(5);
    let req = GenerationRequest {
        job_id: JobId::from_bytes([9; 32]),
        prompt: "a red square".into(),
        negative_prompt: String::new(),
        params: record.params.clone(),
        init_image: None,
    };
    let image = generator.generate(&req).await.expect("signed in KMS");
    assert_eq!(
        image.record.image_sha256,
        hex::encode(Sha256::digest(&image.png)),
        "the record names the stamped bytes"
    );
    let report = read(&image.png, Some(&ca_pem)).unwrap().expect("a manifest");
    assert_eq!(report.validation, Validation::Trusted, "{:?}", report.failures);
    assert_eq!(report.generation.unwrap().params.seed, 5);

    // The minting key's spec cannot sign ES256: refused with the fix.
    let k1 = key(&kms, KeySpec::EccSecgP256K1).await;
    let err = KmsClaimSigner::new(kms, &k1).await.unwrap_err().to_string();
    assert!(err.contains(&k1) && err.contains("ECC_NIST_P256") && err.contains("--key-spec"), "{err}");
}
