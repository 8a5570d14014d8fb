//! KMS signing against moto's KMS over the wire, with a real anvil.
//!
//! What moto can show: key creation with ECC_SECG_P256K1, the public key and so the address,
//! the refusal of a key of another spec, and the signer wired into the chain connection. What
//! it cannot: moto ignores `MessageType=DIGEST` and hashes the digest again before signing, so
//! its signatures are of another message. The signer checks every signature against the key
//! before using it, so here the mint must stop with that error before anything is broadcast;
//! the signature maths itself (DER, low-s, recovery id) is tested against a local key in
//! functions/aws/src/kms.rs.

use alloy::primitives::Address;
use alloy::providers::Provider;
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use latentmint_aws::KmsSigner;
use latentmint_chain::{Chain, LocalNode, to_alloy};
use latentmint_core::cid::cid_of_bytes;
use latentmint_core::ports::Minter;
use latentmint_core::{EvmAddress, JobId};
use latentmint_e2e::{Moto, anvil};

const CHAIN_ID: u64 = 412_346;

async fn key(kms: &aws_sdk_kms::Client, spec: KeySpec) -> String {
    let out = kms.create_key().key_spec(spec).key_usage(KeyUsageType::SignVerify).send().await.expect("create_key");
    out.key_metadata().expect("metadata").key_id().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kms_key_gives_the_address_and_bad_signatures_never_reach_the_chain() {
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
    let _: serde_json::Value =
        admin.provider().raw_request("anvil_setBalance".into(), (kms_account, "0xde0b6b3a7640000")).await.unwrap();
    let role = admin.minter(contract, 1).contract().MINTER_ROLE().call().await.unwrap();
    admin
        .minter(contract, 1)
        .contract()
        .grantRole(role, kms_account)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();

    let chain = Chain::connect_signer(std::slice::from_ref(&node.rpc_url), signer, CHAIN_ID).await.unwrap();
    assert_eq!(to_alloy(chain.sender()), kms_account, "the chain connection sends as the KMS account");
    let minter = chain.minter(contract, 1);
    let recipient = EvmAddress::parse_checksummed("0x70997970C51812dc3A010C7d01b50e0d17dc79C8").unwrap();
    let err = minter.mint(JobId::from_bytes([4; 32]), recipient, &cid_of_bytes(b"kms")).await.unwrap_err().to_string();
    assert!(err.contains("did not sign the digest as given"), "{err}");
    assert_eq!(chain.provider().get_transaction_count(kms_account).await.unwrap(), 0, "nothing was broadcast");
    assert_eq!(minter.total_supply().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_of_another_spec_is_refused_with_the_fix() {
    let moto = Moto::start();
    let kms = moto.kms();
    let id = key(&kms, KeySpec::EccNistP256).await;
    let err = KmsSigner::new(kms, &id, None).await.unwrap_err().to_string();
    assert!(err.contains(&id) && err.contains("ECC_SECG_P256K1") && err.contains("--key-spec"), "{err}");
}
