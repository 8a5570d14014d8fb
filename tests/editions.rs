//! ERC-1155 editions, on a real anvil: the minter makes each job's edition and mints its copies
//! once, whatever step an earlier attempt stopped after; a collection with `[editions]` runs
//! the whole pipeline onto a LatentEditions contract and checks as a collector would; and the
//! refusals that keep one collection from minting as both kinds.

use std::path::Path;

use alloy::primitives::{B256, U256};
use latentmint_chain::contract::LatentEditions;
use latentmint_chain::{Chain, EditionTerms, EditionsMinter, LocalNode, SendPolicy, to_alloy};
use latentmint_core::cid::{cid_of_bytes, raw_sha256_digest};
use latentmint_core::ports::Minter;
use latentmint_core::{EvmAddress, JobId};
use latentmint_e2e::{anvil, latentmint_bin, latentmint_run, repo_root};

const CHAIN_ID: u64 = 412_346;
const TERMS: EditionTerms = EditionTerms { copies: 5, max_supply: 10 };

fn recipient() -> EvmAddress {
    EvmAddress::parse_checksummed("0x70997970C51812dc3A010C7d01b50e0d17dc79C8").unwrap()
}

type Editions = LatentEditions::LatentEditionsInstance<alloy::providers::DynProvider>;

async fn setup() -> (LocalNode, EditionsMinter, Editions) {
    let node = LocalNode::spawn(&anvil(), CHAIN_ID, None).await.expect("anvil starts");
    let chain = Chain::connect(&node.rpc_url, node.dev_key(0).unwrap(), CHAIN_ID).await.expect("connects");
    let deployed = chain.deploy_editions(&Default::default()).await.expect("deploys");
    assert!(chain.is_editions(deployed.address).await.unwrap(), "LatentEditions says ERC-1155");
    let minter = chain.editions_minter(deployed.address, TERMS, SendPolicy::confirmations(1));
    let contract = LatentEditions::new(to_alloy(deployed.address), chain.provider().clone());
    (node, minter, contract)
}

/// `createEdition` sent straight to the contract, as an earlier attempt of job `[byte; 32]`
/// that stopped before minting would have left it.
async fn create_edition(e: &Editions, byte: u8, metadata_cid: &str, cap: u128) {
    let digest = B256::from(raw_sha256_digest(metadata_cid).expect("a raw CID"));
    let sent = e.createEdition(B256::from([byte; 32]), digest, cap).send().await.unwrap();
    sent.get_receipt().await.unwrap();
}

#[tokio::test]
async fn each_job_makes_one_edition_and_mints_its_copies_once() {
    let (_node, minter, e) = setup().await;
    let job = JobId::from_bytes([1; 32]);
    let cid = cid_of_bytes(b"{\"name\":\"first\"}");
    assert_eq!(minter.minted_token(job).await.unwrap(), None);

    let first = minter.mint(job, recipient(), &cid).await.unwrap();
    assert_eq!(first.token_id, "1", "editions are numbered from 1");
    assert!(first.tx_hash.is_some());
    assert_eq!(minter.minted_token(job).await.unwrap().as_deref(), Some("1"));

    // A redelivered message reads the chain first: nothing is sent, the same edition comes back.
    let again = minter.mint(job, recipient(), &cid).await.unwrap();
    assert_eq!(again.token_id, "1");
    assert!(!again.sent(), "found on chain, not sent");
    assert_eq!(again.tx_hash, first.tx_hash, "the transaction its EditionMinted event names");

    let one = U256::from(1);
    assert_eq!(e.balanceOf(to_alloy(recipient()), one).call().await.unwrap(), U256::from(TERMS.copies));
    let made = e.editions(one).call().await.unwrap();
    assert_eq!((made.minted, made.maxSupply, made.jobId), (TERMS.copies, TERMS.max_supply, B256::from([1; 32])));
    assert_eq!(e.uri(one).call().await.unwrap(), format!("ipfs://{cid}"));

    // The next job gets the next edition.
    let second = minter.mint(JobId::from_bytes([2; 32]), recipient(), &cid_of_bytes(b"second")).await.unwrap();
    assert_eq!(second.token_id, "2");
    assert_eq!(e.editionCount().call().await.unwrap(), U256::from(2));
}

#[tokio::test]
async fn a_crash_between_the_two_transactions_is_healed_by_the_retry() {
    let (_node, minter, e) = setup().await;
    let job = JobId::from_bytes([3; 32]);
    let cid = cid_of_bytes(b"{\"name\":\"crashed\"}");
    // An earlier attempt created the edition and died before minting its copies.
    create_edition(&e, 3, &cid, TERMS.max_supply).await;
    assert_eq!(minter.minted_token(job).await.unwrap(), None, "made but not minted is not minted");

    let r = minter.mint(job, recipient(), &cid).await.unwrap();
    assert_eq!(r.token_id, "1", "the retry mints the copies of the edition already made");
    assert_eq!(e.editionCount().call().await.unwrap(), U256::from(1), "no second edition");
    assert_eq!(e.totalSupply(U256::from(1)).call().await.unwrap(), U256::from(TERMS.copies));

    // An edition made with other metadata than the job published is refused, not minted.
    let other = JobId::from_bytes([4; 32]);
    create_edition(&e, 4, &cid_of_bytes(b"other"), 0).await;
    let err = minter.mint(other, recipient(), &cid_of_bytes(b"published")).await.unwrap_err().to_string();
    assert!(err.contains("edition 2") && err.contains("metadata digest"), "{err}");
    assert_eq!(e.totalSupply(U256::from(2)).call().await.unwrap(), U256::ZERO);
}

#[tokio::test]
async fn racing_mints_of_one_job_make_one_edition() {
    let (_node, minter, e) = setup().await;
    let job = JobId::from_bytes([5; 32]);
    let cid = cid_of_bytes(b"{\"name\":\"raced\"}");
    let minter = std::sync::Arc::new(minter);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (m, cid) = (minter.clone(), cid.clone());
            tokio::spawn(async move { m.mint(job, recipient(), &cid).await })
        })
        .collect();
    for t in tasks {
        // Nonce collisions between racers are transient; the retry reads the chain.
        if t.await.unwrap().is_err() {
            minter.mint(job, recipient(), &cid).await.expect("a retry settles it");
        }
    }
    assert_eq!(e.editionCount().call().await.unwrap(), U256::from(1));
    assert_eq!(e.totalSupply(U256::from(1)).call().await.unwrap(), U256::from(TERMS.copies), "copies minted once");
}

/// `examples/neon-editions.toml` with the model path made absolute, `extra_chain` added to
/// `[chain]`, and `[editions]` kept or removed.
fn editions_collection(dir: &Path, extra_chain: &str, with_editions: bool) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo_root().join("examples/neon-editions.toml")).unwrap();
    let model = repo_root().join("models/shapes-sd");
    let mut text = text.replace("\"../models/shapes-sd\"", &format!("{:?}", model.display().to_string()));
    text = text.replace("chain_id = 412346\n", &format!("chain_id = 412346\n{extra_chain}"));
    if !with_editions {
        let start = text.find("\n[editions]\n").unwrap();
        let end = text.find("\n[[prompts]]").unwrap();
        text.replace_range(start..end, "");
    }
    let file = dir.join("editions.toml");
    std::fs::write(&file, text).unwrap();
    file
}

fn run(file: &Path, data: &Path) -> (bool, String) {
    let out = latentmint_run(file, data).arg("--anvil").arg(anvil()).output().expect("latentmint runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn a_collection_of_editions_runs_end_to_end_and_checks_as_a_collector_would() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let file = editions_collection(tmp.path(), "", true);
    let (ok, out) = run(&file, &data);
    assert!(ok, "{out}");
    assert!(out.contains("3 minted") && out.contains("3 editions (3 with every copy still held"), "{out}");
    assert!(out.contains("┆ edition ┆"), "the table heads its id column `edition`: {out}");

    let dir = data.join("neon-editions");
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("tokens.json")).unwrap()).unwrap();
    assert_eq!((manifest["standard"].as_str(), manifest["copies"].as_u64()), (Some("erc1155"), Some(25)));
    let tokens: Vec<&str> =
        manifest["jobs"].as_array().unwrap().iter().map(|j| j["token_id"].as_str().unwrap()).collect();
    assert_eq!(tokens, ["1", "2", "3"]);

    // The collector's check, from the run's saved chain: every edition's record, image and
    // Content Credentials, and the image made again from its record.
    let check = std::process::Command::new(latentmint_bin())
        .args(["verify", "--local-run"])
        .arg(&dir)
        .args(["--all", "--reproduce-with"])
        .arg(repo_root().join("models/shapes-sd"))
        .arg("--anvil")
        .arg(anvil())
        .env("ORT_DYLIB_PATH", latentmint_e2e::ort_library())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{said}{}", String::from_utf8_lossy(&check.stderr));
    assert!(said.contains("verified: 3 of 3 tokens") && said.contains("image made again pixel for pixel"), "{said}");
    let one = std::process::Command::new(latentmint_bin())
        .args(["verify", "--local-run"])
        .arg(&dir)
        .args(["--token", "2", "--anvil"])
        .arg(anvil())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&one.stdout);
    assert!(said.contains("an ERC-1155 edition, 25 of at most 100 copies minted"), "{said}");
    assert!(said.contains("held MINTER_ROLE at block") && said.contains("when the edition was created"), "{said}");
    assert!(
        said.contains("the record is this token's job") && said.contains("the edition was created for it"),
        "{said}"
    );

    // Run again: everything is minted, nothing is sent.
    let (ok, again) = run(&file, &data);
    assert!(ok && again.contains("(0 new)") && again.contains("3 minted"), "{again}");
    let after: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("tokens.json")).unwrap()).unwrap();
    assert_eq!(after["jobs"], manifest["jobs"], "same editions, same transactions");

    // The same collection without [editions] would mint its jobs again as ERC-721 tokens.
    let switched = editions_collection(tmp.path(), "", false);
    let (ok, refused) = run(&switched, &data);
    assert!(!ok, "{refused}");
    assert!(refused.contains("editions:") && refused.contains("LatentEditions (ERC-1155)"), "{refused}");
    // Nor may a deploy record an ERC-721 contract for that folder (refused before connecting).
    let external = editions_collection(tmp.path(), "rpc_url = \"http://127.0.0.1:1\"\n", false);
    let deploy = std::process::Command::new(latentmint_bin())
        .arg("deploy")
        .arg(&external)
        .arg("--data-dir")
        .arg(&data)
        .env("LATENTMINT_SIGNER_KEY", "refused-before-use")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&deploy.stderr);
    assert!(!deploy.status.success() && said.contains("editions:"), "{said}");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("deployment.json")).unwrap()).unwrap();
    assert_eq!(record["standard"], "erc1155", "the record is unchanged");
}

#[tokio::test]
async fn a_contract_of_the_other_kind_is_refused_before_anything_is_generated() {
    let node = LocalNode::spawn(&anvil(), CHAIN_ID, None).await.expect("anvil starts");
    let chain = Chain::connect(&node.rpc_url, node.dev_key(0).unwrap(), CHAIN_ID).await.unwrap();
    let erc721 = chain.deploy("Other", "OTH").await.unwrap();
    let erc1155 = chain.deploy_editions(&Default::default()).await.unwrap().address;
    let tmp = tempfile::tempdir().unwrap();
    for (with_editions, contract, says) in [
        (true, erc721, "is not a LatentEditions (ERC-1155) contract"),
        (false, erc1155, "add [editions] to mint editions on it"),
    ] {
        let chain_lines = format!("rpc_url = \"{}\"\ncontract = \"{contract}\"\n", node.rpc_url);
        let file = editions_collection(tmp.path(), &chain_lines, with_editions);
        let out = latentmint_run(&file, &tmp.path().join("data"))
            .env("LATENTMINT_SIGNER_KEY", node.dev_key(0).unwrap())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(text.contains("chain.contract:") && text.contains(says), "{text}");
    }
}
