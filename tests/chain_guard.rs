//! The on-chain exactly-once guard, on a real anvil: the same mint sent twice yields one token.

use alloy::primitives::B256;
use alloy::providers::Provider;
use latentmint_chain::{Chain, LocalNode, SendPolicy, to_alloy};
use latentmint_core::cid::cid_of_bytes;
use latentmint_core::ledger::single_token_id;
use latentmint_core::ports::Minter;
use latentmint_core::testing::CollectionToml;
use latentmint_core::{EvmAddress, JobId};
use latentmint_e2e::anvil;

const CHAIN_ID: u64 = 412_346;

async fn setup() -> (LocalNode, Chain, latentmint_chain::CollectionMinter) {
    let node = LocalNode::spawn(&anvil(), CHAIN_ID, None).await.expect("anvil starts");
    let chain = Chain::connect(&node.rpc_url, node.dev_key(0).unwrap(), CHAIN_ID).await.expect("connects");
    let addr = chain.deploy("Test", "TST").await.expect("deploys");
    let minter = chain.minter(addr, SendPolicy::confirmations(1));
    (node, chain, minter)
}

fn recipient() -> EvmAddress {
    EvmAddress::parse_checksummed("0x70997970C51812dc3A010C7d01b50e0d17dc79C8").unwrap()
}

#[tokio::test]
async fn same_mint_twice_yields_one_token() {
    let (_node, _chain, minter) = setup().await;
    let job = JobId::from_bytes([9; 32]);
    let first_cid = cid_of_bytes(b"first metadata");
    let first = minter.mint(job, recipient(), &first_cid).await.unwrap();
    let id = single_token_id(&first_cid).unwrap();
    assert_eq!(first.token_id, id, "a single mint's token id is its metadata's digest");
    assert!(first.sent() && first.tx_hash.is_some());

    // The adapter reads the chain first: nothing is sent, the same token comes back, with the
    // transaction its event names (a regenerated job's other metadata changes nothing).
    let second = minter.mint(job, recipient(), &cid_of_bytes(b"second metadata")).await.unwrap();
    assert_eq!(second.token_id, id);
    assert!(!second.sent());
    assert_eq!(second.tx_hash, first.tx_hash);

    // Bypass the adapter's read and send the duplicate straight to the contract: refused on chain.
    let raw = minter
        .contract()
        .mint(to_alloy(recipient()), B256::from(*job.as_bytes()), B256::repeat_byte(0x77))
        .send()
        .await;
    let err = raw.expect_err("the contract must refuse a second mint of the job");
    let decoded =
        err.as_decoded_interface_error::<latentmint_chain::contract::LatentCollection::LatentCollectionErrors>();
    assert!(
        matches!(decoded, Some(latentmint_chain::contract::LatentCollection::LatentCollectionErrors::AlreadyMinted(_))),
        "expected AlreadyMinted, got {err}"
    );

    assert_eq!(minter.total_supply().await.unwrap(), 1);
    assert_eq!(minter.owner_of(&id).await.unwrap(), recipient());
    assert_eq!(minter.token_uri(&id).await.unwrap(), format!("ipfs://{first_cid}"), "tokenURI rebuilds our CID");
}

#[tokio::test]
async fn racing_mints_of_one_job_yield_one_token() {
    let (_node, _chain, minter) = setup().await;
    let job = JobId::from_bytes([4; 32]);
    let minter = std::sync::Arc::new(minter);
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let m = minter.clone();
            tokio::spawn(async move { m.mint(job, recipient(), &cid_of_bytes(format!("racer {i}").as_bytes())).await })
        })
        .collect();
    let cids: Vec<String> = (0..4).map(|i| cid_of_bytes(format!("racer {i}").as_bytes())).collect();
    let mut ids = Vec::new();
    for t in tasks {
        // Nonce collisions between racers are transient errors; a retry reads the chain.
        match t.await.unwrap() {
            Ok(r) => ids.push(r.token_id),
            Err(e) => {
                let r = minter
                    .mint(job, recipient(), &cid_of_bytes(b"retry"))
                    .await
                    .unwrap_or_else(|_| panic!("retry after {e}"));
                ids.push(r.token_id);
            }
        }
    }
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    assert!(cids.iter().any(|c| single_token_id(c).as_ref() == Some(&ids[0])), "one racer's metadata won");
    assert_eq!(minter.total_supply().await.unwrap(), 1);
}

#[tokio::test]
async fn wrong_chain_id_is_a_config_error() {
    let node = LocalNode::spawn(&anvil(), CHAIN_ID, None).await.unwrap();
    let err = Chain::connect(&node.rpc_url, node.dev_key(0).unwrap(), 42161).await.unwrap_err().to_string();
    assert!(err.contains("chain.chain_id") && err.contains("412346"), "{err}");
}

#[tokio::test]
async fn a_metadata_cid_that_is_not_a_raw_block_is_refused_before_sending() {
    let (_node, _chain, minter) = setup().await;
    let err = minter.mint(JobId::from_bytes([6; 32]), recipient(), "ipfs://nonsense").await.unwrap_err().to_string();
    assert!(err.contains("not a single raw block"), "{err}");
    assert_eq!(minter.total_supply().await.unwrap(), 0);
}

/// With a fee cap below the network's fee, the mint waits (a transient error, nothing sent);
/// under a cap above it, it goes through.
#[tokio::test]
async fn a_fee_cap_makes_mints_wait_instead_of_overpaying() {
    let node = LocalNode::spawn_with(&anvil(), CHAIN_ID, None, &["--base-fee", "50000000000"]).await.unwrap();
    let chain = Chain::connect(&node.rpc_url, node.dev_key(0).unwrap(), CHAIN_ID).await.unwrap();
    let addr = chain.deploy("Fees", "FEE").await.unwrap();
    let job = JobId::from_bytes([8; 32]);
    let cheap = chain.minter(addr, SendPolicy::confirmations(1).with_max_fee_per_gas(Some(10_000_000_000)));
    let err = cheap.mint(job, recipient(), &cid_of_bytes(b"m")).await.unwrap_err();
    assert!(matches!(&err, latentmint_core::PortError::Transient(m) if m.contains("above the cap")), "{err}");
    assert_eq!(cheap.total_supply().await.unwrap(), 0);
    let willing = chain.minter(addr, SendPolicy::confirmations(1).with_max_fee_per_gas(Some(200_000_000_000)));
    assert_eq!(
        willing.mint(job, recipient(), &cid_of_bytes(b"m")).await.unwrap().token_id,
        single_token_id(&cid_of_bytes(b"m")).unwrap()
    );
}

/// `latentmint deploy` puts the contract on the configured chain with its royalty and records
/// the address for `latentmint run`.
#[tokio::test]
async fn deploy_command_deploys_and_records_the_address() {
    let node = LocalNode::spawn(&anvil(), CHAIN_ID, None).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("c.toml");
    std::fs::write(
        &file,
        CollectionToml::new("Deploy Me", "DPL")
            .section(&format!("[chain]\nchain_id = {CHAIN_ID}\nrpc_url = \"{}\"", node.rpc_url))
            .prompt("x")
            .text(),
    )
    .unwrap();
    let out = std::process::Command::new(latentmint_e2e::latentmint_bin())
        .arg("deploy")
        .arg(&file)
        .args([
            "--royalty-receiver",
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "--royalty-bps",
            "750",
            "--editions",
            "--data-dir",
        ])
        .arg(tmp.path().join("data"))
        .env("LATENTMINT_SIGNER_KEY", node.dev_key(0).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("data/deploy-me/deployment.json")).unwrap()).unwrap();
    let addr = EvmAddress::parse_any_case(rec["contract"].as_str().unwrap()).unwrap();
    let chain = Chain::connect(&node.rpc_url, node.dev_key(0).unwrap(), CHAIN_ID).await.unwrap();
    assert!(chain.has_code(addr).await.unwrap());
    // The deployment block is recorded (the collector's check reads events from there), and
    // the contract has no code before it.
    let block = rec["block"].as_u64().expect("deployment block recorded");
    let before = chain.provider().get_code_at(to_alloy(addr)).block_id((block - 1).into()).await.unwrap();
    assert!(before.is_empty(), "no code at block {}", block - 1);
    let royalty = chain
        .minter(addr, SendPolicy::confirmations(1))
        .contract()
        .royaltyInfo(alloy::primitives::U256::from(1), alloy::primitives::U256::from(10_000))
        .call()
        .await
        .unwrap();
    assert_eq!(royalty.amount, alloy::primitives::U256::from(750));

    // The ERC-1155 edition contract: one edition per job, each mint key once, `uri` is the CID.
    let editions = EvmAddress::parse_any_case(rec["editions"].as_str().expect("editions recorded")).unwrap();
    let e = latentmint_chain::contract::LatentEditions::new(to_alloy(editions), chain.provider().clone());
    let cid = cid_of_bytes(b"{\"name\":\"edition\"}");
    let digest = B256::from(latentmint_core::cid::raw_sha256_digest(&cid).unwrap());
    let job = B256::repeat_byte(5);
    e.createEdition(job, digest, 100).send().await.unwrap().get_receipt().await.unwrap();
    assert_eq!(e.editionOfJob(job).call().await.unwrap(), alloy::primitives::U256::from(1));
    // Refusals are checked by simulation (`call`): nothing is sent for them.
    let again = e.createEdition(job, digest, 100).call().await.unwrap_err();
    assert!(again.to_string().contains("revert"), "a job makes one edition: {again}");
    let id = alloy::primitives::U256::from(1);
    let key = B256::repeat_byte(6);
    e.mint(key, id, to_alloy(recipient()), 3).send().await.unwrap().get_receipt().await.unwrap();
    assert!(e.mint(key, id, to_alloy(recipient()), 3).call().await.is_err(), "a mint key mints once");
    assert_eq!(e.balanceOf(to_alloy(recipient()), id).call().await.unwrap(), alloy::primitives::U256::from(3));
    assert_eq!(e.uri(id).call().await.unwrap(), format!("ipfs://{cid}"));
}

#[test]
fn raw_keys_sign_on_local_chains_only() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("c.toml");
    std::fs::write(
        &file,
        CollectionToml::new("Prod", "PRD")
            .section("[chain]\nnetwork = \"arbitrum-one\"\nrpc_url = \"http://127.0.0.1:1\"")
            .prompt("x")
            .text(),
    )
    .unwrap();
    let out = std::process::Command::new(latentmint_e2e::latentmint_bin())
        .arg("deploy")
        .arg(&file)
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .env("LATENTMINT_SIGNER_KEY", "refused-before-use")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chain.kms_key_id") && err.contains("42161"), "{err}");
}

/// One sender per wallet across processes: while another process holds the wallet's lease, a
/// run against the same chain and signer stops with a message instead of racing for nonces.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_sender_on_one_wallet_is_refused() {
    let node = LocalNode::spawn(&anvil(), CHAIN_ID, None).await.unwrap();
    let key = node.dev_key(0).unwrap();
    let chain = Chain::connect(&node.rpc_url, key, CHAIN_ID).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // The lease the other process would hold, in the temp folder the run will use.
    let _held = latentmint_chain::WalletLease::acquire(
        &tmp.path().join("latentmint"),
        CHAIN_ID,
        chain.sender(),
        std::time::Duration::ZERO,
    )
    .unwrap();
    let file = tmp.path().join("c.toml");
    std::fs::write(
        &file,
        latentmint_e2e::tiny_collection("Lease", "LSE")
            .section(&format!("[chain]\nchain_id = {CHAIN_ID}\nrpc_url = \"{}\"", node.rpc_url))
            .prompt("x")
            .text(),
    )
    .unwrap();
    let out = latentmint_e2e::latentmint_run(&file, &tmp.path().join("data"))
        .env("TMPDIR", tmp.path())
        .env("LATENTMINT_SIGNER_KEY", key)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the second sender must not run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("one sender per wallet") && err.contains(&chain.sender().to_checksum()), "{err}");
    use alloy::providers::Provider;
    let sent = chain.provider().get_transaction_count(to_alloy(chain.sender())).await.unwrap();
    assert_eq!(sent, 0, "nothing was sent from the wallet");
}

#[tokio::test]
async fn a_paused_contract_makes_mints_wait_not_fail() {
    let (_node, _chain, minter) = setup().await;
    minter.contract().pause().send().await.unwrap().get_receipt().await.unwrap();
    let job = JobId::from_bytes([6; 32]);
    let cid = cid_of_bytes(b"metadata");
    // Transient: the message is retried (and, past its retries, resumed by a later submit);
    // the job is not failed for good, which would leave it never minted.
    match minter.mint(job, recipient(), &cid).await {
        Err(latentmint_core::ports::PortError::Transient(m)) => assert!(m.contains("paused"), "{m}"),
        other => panic!("a pause must be transient, got {other:?}"),
    }
    assert_eq!(minter.total_supply().await.unwrap(), 0);
    minter.contract().unpause().send().await.unwrap().get_receipt().await.unwrap();
    assert_eq!(minter.mint(job, recipient(), &cid).await.unwrap().token_id, single_token_id(&cid).unwrap());
}

#[tokio::test]
async fn a_wallet_not_yet_granted_the_minter_role_waits_for_it() {
    let (node, _chain, admin) = setup().await;
    // A second wallet on the same contract, before anyone grants it MINTER_ROLE.
    let other = Chain::connect(&node.rpc_url, node.dev_key(1).unwrap(), CHAIN_ID).await.unwrap();
    let contract = latentmint_chain::from_alloy(*admin.contract().address());
    let minter = other.minter(contract, SendPolicy::confirmations(1));
    let job = JobId::from_bytes([7; 32]);
    let cid = cid_of_bytes(b"metadata");
    match minter.mint(job, recipient(), &cid).await {
        Err(latentmint_core::ports::PortError::Transient(m)) => {
            assert!(m.contains(&format!("grantRole(MINTER_ROLE, {})", other.sender())), "{m}")
        }
        other => panic!("a missing role must be transient, got {other:?}"),
    }
    let role = admin.contract().MINTER_ROLE().call().await.unwrap();
    admin.contract().grantRole(role, to_alloy(other.sender())).send().await.unwrap().get_receipt().await.unwrap();
    assert_eq!(minter.mint(job, recipient(), &cid).await.unwrap().token_id, single_token_id(&cid).unwrap());
}

/// A job id as the pipeline makes them: `salt` bytes, the position in the low 8.
fn job_at(position: u64, salt: u8) -> JobId {
    let mut b = [salt; 32];
    b[24..].copy_from_slice(&position.to_be_bytes());
    JobId::from_bytes(b)
}

/// A batch of `jobs` to the recipient, with each job's metadata a small JSON of its own.
fn plan_of(jobs: &[JobId]) -> latentmint_core::batch::BatchPlan {
    let members = jobs
        .iter()
        .map(|j| {
            let metadata = format!("{{\"job\":\"{j}\"}}").into_bytes();
            latentmint_core::batch::Member {
                job: *j,
                recipient: recipient(),
                metadata_cid: cid_of_bytes(&metadata),
                metadata,
            }
        })
        .collect();
    latentmint_core::batch::BatchPlan::new(members).unwrap()
}

/// Every path against every other, through the adapter and straight at the contract: a job
/// is minted once, and the chain's events name each job's one token.
#[tokio::test]
async fn a_job_is_minted_once_across_single_and_batch_paths() {
    let (_node, _chain, minter) = setup().await;
    let (a, b, c, d) = (job_at(0, 1), job_at(1, 2), job_at(2, 3), job_at(3, 4));
    let batch = minter.mint_batch(&plan_of(&[a, b])).await.unwrap();
    assert!(batch.sent);
    // Alone after a batch: found, not sent; its token is the batch's.
    let again = minter.mint(b, recipient(), &cid_of_bytes(b"regenerated")).await.unwrap();
    assert!(!again.sent());
    assert_eq!(again.token_id, (batch.first + 1).to_string());
    assert_eq!(again.tx_hash, batch.tx_hash);
    // Regrouped into another batch: the contract refuses it whole.
    let err = minter.mint_batch(&plan_of(&[b, c])).await.unwrap_err().to_string();
    assert!(err.contains("is minted already"), "{err}");
    // Alone, then in a batch.
    minter.mint(d, recipient(), &cid_of_bytes(b"d")).await.unwrap();
    assert!(minter.mint_batch(&plan_of(&[c, d])).await.is_err());
    // Straight at the contract, bypassing every read: refused.
    let raw = minter
        .contract()
        .mintBatch(B256::ZERO, to_alloy(recipient()), vec![B256::from(*d.as_bytes())], B256::repeat_byte(1), B256::ZERO)
        .send()
        .await;
    assert!(raw.is_err(), "the contract refuses a minted job in any batch");
    // An edited file: another job at a minted position is refused with the holder named.
    let edited = job_at(0, 9);
    let err = minter.mint(edited, recipient(), &cid_of_bytes(b"edited")).await.unwrap_err().to_string();
    assert!(err.contains("position 0 was minted as token") && err.contains(&a.short()), "{err}");
    assert_eq!(minter.total_supply().await.unwrap(), 3);
    let ledger = minter.ledger().await.unwrap();
    assert_eq!(ledger.len(), 3);
    assert!(ledger.duplicates().is_empty());
    let fates = minter.fates(&[a, c, edited]).await.unwrap();
    use latentmint_core::ledger::Fate;
    assert!(matches!(&fates[0], Fate::Minted(m) if m.token_id == batch.first.to_string()));
    assert_eq!(fates[1], Fate::Unminted);
    assert!(matches!(&fates[2], Fate::PositionTaken(m) if m.job == a));
}

/// The collection's contract lives at an address that follows from the collection and the
/// wallet: found again without any local record, on every later run, and by no other wallet.
#[tokio::test]
async fn a_collection_contract_is_found_again_at_its_address() {
    let node = LocalNode::spawn(&anvil(), CHAIN_ID, None).await.unwrap();
    let chain = Chain::connect(&node.rpc_url, node.dev_key(0).unwrap(), CHAIN_ID).await.unwrap();
    let kind = latentmint_chain::ContractKind::Collection;
    let expected = latentmint_chain::collection_address(chain.sender(), "Found", "FND", kind);
    let first = chain.find_or_deploy("Found", "FND", kind, &Default::default()).await.unwrap();
    assert!(first.deployed_now);
    assert_eq!(first.deployed.address, expected);
    let again = chain.find_or_deploy("Found", "FND", kind, &Default::default()).await.unwrap();
    assert_eq!((again.deployed, again.deployed_now), (first.deployed, false), "found, not deployed again");
    // The editions of the same collection live elsewhere.
    let e = chain
        .find_or_deploy("Found", "FND", latentmint_chain::ContractKind::Editions, &Default::default())
        .await
        .unwrap();
    assert_ne!(e.deployed.address, expected);
    // Another wallet's factory cannot put anything at this wallet's addresses.
    let other = Chain::connect(&node.rpc_url, node.dev_key(1).unwrap(), CHAIN_ID).await.unwrap();
    let theirs = other.find_or_deploy("Found", "FND", kind, &Default::default()).await.unwrap();
    assert_ne!(theirs.deployed.address, expected);
    let factory = latentmint_chain::contract::LatentFactory::new(
        to_alloy(latentmint_chain::factory_address(chain.sender())),
        other.provider().clone(),
    );
    let squat = factory.create(latentmint_chain::collection_salt("Squat", "SQ", kind), vec![0xfe].into()).send().await;
    assert!(squat.is_err(), "only the wallet uses its factory");
    // A contract of another collection named in a file is refused.
    let err = chain.check_collection(expected, "Other", "OTH", kind).await.unwrap_err().to_string();
    assert!(err.contains("not `Other` (OTH)"), "{err}");
}
