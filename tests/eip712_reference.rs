//! Our provenance signatures against an independent EIP-712 implementation (ethers 6, from
//! npm, in tests/eip712-reference): what `latentmint provenance --typed-data` prints is the
//! struct we sign, so any EIP-712 tool can check a record, its LoRA adapters, model files and
//! evolution record included.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use latentmint_chain::provenance::{EvmProvenanceSigner, signing_hash};
use latentmint_core::job::AdapterRecord;
use latentmint_core::living::{EvolutionRecord, OracleReading, Trigger};
use latentmint_core::metadata::{Provenance, TokenMetadata};
use latentmint_core::ports::ProvenanceSigner;
use latentmint_e2e::{latentmint_bin, repo_root};
use serde_json::Value;

/// A record with every part set (a feed's answer included), and a seed above 2^53
/// (JavaScript's exact integers).
fn record() -> Provenance {
    let mut p = Provenance { seed: 9_007_199_254_740_993, ..Provenance::for_tests() };
    p.model.files = [("text_encoder/model.onnx", "0a"), ("unet/model.onnx", "0b")]
        .into_iter()
        .map(|(path, byte)| (path.to_string(), byte.repeat(32)))
        .collect();
    p.model.sha256 = latentmint_core::metadata::model_digest(&p.model.files);
    p.adapters = vec![AdapterRecord { name: "brand.safetensors".into(), sha256: "0c".repeat(32), scale: 0.85 }];
    p.generator.fallback_reason = Some("endpoint latentmint-prod throttled".into());
    p.evolution = Some(EvolutionRecord {
        generation: 3,
        parent_metadata: "ipfs://bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku".into(),
        parent_image: "ipfs://bafkreidivzimqfqtoqxkrpge6bjyhlvxqs3rhe73owtmdulaxr5do5in7u".into(),
        trigger: Trigger {
            chain_id: 42_161,
            block: 123_456_789,
            tx_hash: format!("0x{}", "0d".repeat(32)),
            log_index: 4,
        },
        strength: 0.35,
        oracle: Some(OracleReading {
            feed: "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419".into(),
            round: "110680464442257320247".into(),
            answer: "-150000000000".into(),
            decimals: 8,
            mood: "under a stormy sky".into(),
        }),
    });
    p
}

/// `node verify.mjs typed.json signature` → (struct hash, recovered signer).
fn ethers_reads(typed: &Path, signature: &str) -> (String, String) {
    let dir = repo_root().join("tests/eip712-reference");
    assert!(dir.join("node_modules/ethers").is_dir(), "ethers missing: run scripts/bootstrap.sh --tests");
    let out =
        Command::new("node").arg("verify.mjs").arg(typed).arg(signature).current_dir(&dir).output().expect("node runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (v["hash"].as_str().unwrap().to_string(), v["signer"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn ethers_recovers_our_signer_from_the_typed_data_we_print() {
    let key = PrivateKeySigner::random();
    let contract = Address::repeat_byte(0x5f);
    let signer = EvmProvenanceSigner::new(Arc::new(key), 42_161, contract);
    let mut p = record();
    let signature = signer.sign(&p).await.unwrap();
    let sig_hex = signature.signature.clone();
    p.signature = Some(signature);
    let metadata = TokenMetadata {
        name: "Neon Shapes #1".into(),
        description: "a red circle".into(),
        image: "ipfs://bafkreidivzimqfqtoqxkrpge6bjyhlvxqs3rhe73owtmdulaxr5do5in7u".into(),
        attributes: vec![],
        provenance: p.clone(),
    };
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("metadata.json");
    std::fs::write(&file, metadata.to_json()).unwrap();

    // Our own check, which now also names the adapter it vouches for.
    let ours = Command::new(latentmint_bin()).arg("provenance").arg(&file).output().unwrap();
    let said = String::from_utf8_lossy(&ours.stdout);
    assert!(ours.status.success(), "{}", String::from_utf8_lossy(&ours.stderr));
    assert!(said.contains(&format!("signed by {}", signer.address())), "{said}");
    assert!(said.contains("LoRA brand.safetensors"), "{said}");

    let printed = Command::new(latentmint_bin()).arg("provenance").arg(&file).arg("--typed-data").output().unwrap();
    assert!(printed.status.success(), "{}", String::from_utf8_lossy(&printed.stderr));
    let typed_file = tmp.path().join("typed.json");
    std::fs::write(&typed_file, &printed.stdout).unwrap();
    let (hash, recovered) = ethers_reads(&typed_file, &sig_hex);
    assert_eq!(hash, signing_hash(&p, 42_161, contract).unwrap().to_string(), "the same EIP-712 hash");
    assert_eq!(recovered, signer.address().to_string(), "ethers recovers our signer");

    // ethers sees a change in any part the record signs, the evolution's strength included.
    let mut typed: Value = serde_json::from_slice(&printed.stdout).unwrap();
    typed["message"]["evolution"][0]["strength"] = "0.36".into();
    std::fs::write(&typed_file, serde_json::to_vec(&typed).unwrap()).unwrap();
    let (_, other) = ethers_reads(&typed_file, &sig_hex);
    assert_ne!(other, signer.address().to_string());

    // An unsigned record has no typed data to check: an error (status 2, as for any input the
    // command cannot use), naming the field.
    let mut unsigned = metadata.clone();
    unsigned.provenance.signature = None;
    std::fs::write(&file, unsigned.to_json()).unwrap();
    let out = Command::new(latentmint_bin()).arg("provenance").arg(&file).arg("--typed-data").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("provenance.signature: the record is not signed"));
}
