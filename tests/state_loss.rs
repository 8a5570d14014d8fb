//! The chain is the source of truth: what an operator does to a run's local state (delete its
//! data folder, its `deployment.json` or its `pipeline.db`, regroup its batches, edit the
//! collection file, kill it while a mint waits in the mempool) never mints a job twice. Each
//! scenario runs the real binary against one anvil and counts, from outside, every
//! Transfer-from-zero event on the whole chain.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use alloy::primitives::B256;
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use latentmint_chain::{Chain, LocalNode};
use latentmint_core::EvmAddress;
use latentmint_e2e::{anvil, latentmint_run, tiny_model};

const CHAIN_ID: u64 = 412_346;
const RECIPIENT: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
/// Jobs of the test collection: 5 copies of one prompt and 1 of another.
const JOBS: usize = 6;

fn collection(name: &str, rpc_url: &str, batch: u32) -> String {
    format!(
        r#"
[collection]
name = "{name}"
symbol = "LOSS"
recipient = "{RECIPIENT}"

[generation]
model = "{model}"
steps = 2
width = 32
height = 32
seed = 9

[chain]
chain_id = {CHAIN_ID}
rpc_url = "{rpc_url}"
batch_size = {batch}

[[prompts]]
text = "a red square"
count = 5

[[prompts]]
text = "a plain circle"
"#,
        model = tiny_model().display(),
    )
}

struct Scene {
    node: LocalNode,
    key: String,
    tmp: tempfile::TempDir,
}

impl Scene {
    async fn new(extra: &[&str]) -> Self {
        let node = LocalNode::spawn_with(&anvil(), CHAIN_ID, None, extra).await.unwrap();
        let key = node.dev_key(0).unwrap().to_string();
        Self { node, key, tmp: tempfile::tempdir().unwrap() }
    }

    /// Writes the collection `name` with `batch` and returns its file.
    fn file(&self, name: &str, batch: u32) -> PathBuf {
        let f = self.tmp.path().join(format!("{name}-{batch}.toml"));
        std::fs::write(&f, collection(name, &self.node.rpc_url, batch)).unwrap();
        f
    }

    fn data(&self, which: &str) -> PathBuf {
        self.tmp.path().join(which)
    }

    fn run(&self, file: &Path, data: &Path) -> Output {
        latentmint_run(file, data).env("LATENTMINT_SIGNER_KEY", &self.key).output().unwrap()
    }

    /// Runs and requires success; returns stdout and stderr.
    fn run_ok(&self, file: &Path, data: &Path) -> (String, String) {
        let out = self.run(file, data);
        let (o, e) =
            (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string());
        assert!(out.status.success(), "run failed\n{o}\n{e}");
        (o, e)
    }

    /// Every token minted on the whole chain: Transfer events from the zero address, any contract.
    async fn mints_on_chain(&self) -> usize {
        let chain = Chain::connect(&self.node.rpc_url, &self.key, CHAIN_ID).await.unwrap();
        let filter = Filter::new()
            .event_signature(latentmint_chain::contract::LatentCollection::Transfer::SIGNATURE_HASH)
            .topic1(B256::ZERO)
            .from_block(0);
        chain.provider().get_logs(&filter).await.unwrap().len()
    }

    async fn rpc(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let chain = Chain::connect(&self.node.rpc_url, &self.key, CHAIN_ID).await.unwrap();
        chain.provider().raw_request(method.to_string().into(), params).await.unwrap()
    }
}

/// `tokens.json` of a run folder: (token id, tx hash, metadata CID) per token.
fn manifest(dir: &Path) -> Vec<(String, Option<String>, Option<String>)> {
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("tokens.json")).unwrap()).unwrap();
    m["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["token_id"].as_str().unwrap_or_default().to_string(),
                t["tx_hash"].as_str().map(str::to_string),
                t["metadata"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn lost_folders_lost_records_and_regrouped_batches_never_mint_twice() {
    let s = Scene::new(&[]).await;
    let a = s.data("a");

    // Batches of three: two transactions.
    let (out, _) = s.run_ok(&s.file("Loss", 3), &a);
    assert!(out.contains(&format!("verified on chain: {JOBS} tokens")), "{out}");
    assert!(out.contains(&format!("this run: {JOBS} minted")), "{out}");
    assert_eq!(s.mints_on_chain().await, JOBS);
    let first = manifest(&a.join("loss"));
    assert!(first.iter().all(|(_, tx, _)| tx.is_some()), "every token has its transaction: {first:?}");

    // A fresh data folder (everything local lost), batches of two: the contract is found at
    // the collection's address, every job is found minted, nothing is minted or generated.
    let (out, err) = s.run_ok(&s.file("Loss", 2), &s.data("b"));
    assert_eq!(s.mints_on_chain().await, JOBS, "regrouped into batches of two: nothing minted\n{out}\n{err}");
    assert!(err.contains(&format!("found {JOBS} jobs of this collection already minted")), "{err}");
    assert!(err.contains("cannot be shown or checked from this folder"), "the lost content is named: {err}");
    assert!(out.contains("this run: 0 minted") && out.contains(&format!("not checked here: {JOBS} tokens")), "{out}");
    let found = manifest(&s.data("b").join("loss"));
    let ids = |m: &[(String, Option<String>, Option<String>)]| {
        m.iter().map(|(t, tx, _)| (t.clone(), tx.clone())).collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(ids(&found), ids(&first), "the same tokens, with the transactions the chain's events name");

    // And alone (batches of one), from yet another folder.
    s.run_ok(&s.file("Loss", 1), &s.data("c"));
    assert_eq!(s.mints_on_chain().await, JOBS, "regrouped into single mints: nothing minted");

    // deployment.json lost, then pointing at an address with no code: the same contract.
    let dep = a.join("loss/deployment.json");
    let recorded = std::fs::read_to_string(&dep).unwrap();
    std::fs::remove_file(&dep).unwrap();
    let (out, _) = s.run_ok(&s.file("Loss", 4), &a);
    assert!(out.contains(&format!("verified on chain: {JOBS} tokens")), "{out}");
    assert_eq!(std::fs::read_to_string(&dep).unwrap(), recorded, "the record is written again, the same");
    let nowhere =
        recorded.replace(&recorded[recorded.find("0x").unwrap()..][..42], "0x000000000000000000000000000000000000dEaD");
    std::fs::write(&dep, nowhere).unwrap();
    s.run_ok(&s.file("Loss", 4), &a);
    assert_eq!(s.mints_on_chain().await, JOBS, "no second contract, no second mint");

    // pipeline.db lost (deleted, or truncated to nothing) with the content store intact: the
    // next run adopts every token and its content, and verifies all of them.
    for lose in ["delete", "truncate"] {
        let db = a.join("loss/pipeline.db");
        match lose {
            "delete" => std::fs::remove_file(&db).unwrap(),
            _ => std::fs::write(&db, b"").unwrap(),
        }
        let (out, err) = s.run_ok(&s.file("Loss", 2), &a);
        assert!(out.contains(&format!("verified on chain: {JOBS} tokens")), "{lose}: {out}\n{err}");
        assert!(!out.contains("not checked here"), "{lose}: the content survived: {out}");
        assert_eq!(s.mints_on_chain().await, JOBS, "{lose}");
        let m = manifest(&a.join("loss"));
        assert_eq!(
            m.iter().map(|(t, _, c)| (t.clone(), c.clone())).collect::<Vec<_>>(),
            first.iter().map(|(t, _, c)| (t.clone(), c.clone())).collect::<Vec<_>>(),
            "{lose}: tokens.json names what the tokens point to"
        );
        assert!(m.iter().all(|(_, tx, _)| tx.is_some()), "{lose}: {m:?}");
        // A later run still verifies (the records now hold the chain's CIDs).
        let (out, _) = s.run_ok(&s.file("Loss", 3), &a);
        assert!(out.contains(&format!("verified on chain: {JOBS} tokens")), "{lose}, run again: {out}");
    }

    // The collection file edited after minting: a job at a minted position is refused before
    // anything is generated or minted.
    let edited = s.file("Loss", 2);
    std::fs::write(&edited, std::fs::read_to_string(&edited).unwrap().replace("a plain circle", "an edited circle"))
        .unwrap();
    let out = s.run(&edited, &s.data("d"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("does not match what its contract holds") && err.contains("prompts[1] copy 0"), "{err}");
    assert!(err.contains("position 5 was minted as token"), "{err}");
    assert_eq!(s.mints_on_chain().await, JOBS);

    // The other direction: single mints first, then one batch from a fresh folder.
    s.run_ok(&s.file("Alone First", 1), &s.data("e"));
    s.run_ok(&s.file("Alone First", 6), &s.data("f"));
    assert_eq!(s.mints_on_chain().await, 2 * JOBS, "each collection's jobs once");

    // A collector's check of everything on chain: no job owns two tokens.
    let chain = Chain::connect(&s.node.rpc_url, &s.key, CHAIN_ID).await.unwrap();
    for name in ["Loss", "Alone First"] {
        let at = latentmint_chain::collection_address(
            chain.sender(),
            name,
            "LOSS",
            latentmint_chain::ContractKind::Collection,
        );
        let reader = latentmint_chain::TokenReader::connect(std::slice::from_ref(&s.node.rpc_url), at).await.unwrap();
        assert!(reader.duplicates().await.unwrap().is_empty(), "{name}");
        assert_eq!(reader.minted_tokens().await.unwrap().len(), JOBS, "{name}");
    }
}

/// Killed while a mint waits in the mempool (a block that has not come): the restart finds
/// the transaction mined, records it with its hash, and mints nothing more.
#[tokio::test(flavor = "multi_thread")]
async fn killed_with_a_mint_in_the_mempool_records_it_once_with_its_hash() {
    let s = Scene::new(&[]).await;
    let file = s.file("Pending", 1);
    let data = s.data("a");
    let chain = Chain::connect(&s.node.rpc_url, &s.key, CHAIN_ID).await.unwrap();
    let contract = latentmint_chain::collection_address(
        chain.sender(),
        "Pending",
        "LOSS",
        latentmint_chain::ContractKind::Collection,
    );
    let mut child = latentmint_run(&file, &data)
        .env("LATENTMINT_SIGNER_KEY", &s.key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Once the contract is deployed, blocks stop coming: the next mint stays in the mempool.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !chain.has_code(contract).await.unwrap() {
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "the contract never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = s.rpc("evm_setAutomine", serde_json::json!([false])).await;
    // Proven in flight: a transaction of the wallet to the contract is pending.
    loop {
        assert!(Instant::now() < deadline, "no mint reached the mempool");
        assert!(child.try_wait().unwrap().is_none(), "the run ended first");
        let pool = s.rpc("txpool_content", serde_json::json!([])).await;
        let pending = pool["pending"]
            .as_object()
            .map_or(0, |m| m.values().map(|v| v.as_object().map_or(0, |o| o.len())).sum::<usize>());
        if pending > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let minted_before = s.mints_on_chain().await;
    // The block comes after the run died.
    let _ = s.rpc("evm_mine", serde_json::json!([])).await;
    let _ = s.rpc("evm_setAutomine", serde_json::json!([true])).await;
    assert_eq!(s.mints_on_chain().await, minted_before + 1, "the pending mint was mined after the kill");

    let (out, _) = s.run_ok(&file, &data);
    assert!(out.contains(&format!("verified on chain: {JOBS} tokens")), "{out}");
    assert_eq!(s.mints_on_chain().await, JOBS, "one token per job");
    let m = manifest(&data.join("pending"));
    assert_eq!(m.len(), JOBS);
    assert!(m.iter().all(|(_, tx, _)| tx.is_some()), "every token with its transaction, the mempool one too: {m:?}");
    // The summary counts this run's mints apart from the earlier run's.
    assert!(out.contains(&format!("this run: {} minted", JOBS - minted_before - 1)), "{out}");
}

/// Resource faults end a run within seconds with one message naming the folder and the fix,
/// and the next run after the fix finishes with one token per job. The data folder lives on a
/// small file system of its own (a tmpfs this test mounts: CI runs as root).
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_a_read_only_folder_and_a_damaged_chain_state_stop_cleanly() {
    let s = Scene::new(&[]).await;
    let data = s.data("small");
    std::fs::create_dir_all(&data).unwrap();
    let mount = |opts: &str| {
        let out =
            std::process::Command::new("mount").args(["-t", "tmpfs", "-o", opts, "tmpfs"]).arg(&data).output().unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs for the data folder needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let remount = |opts: &str| {
        let out =
            std::process::Command::new("mount").args(["-o", &format!("remount,{opts}")]).arg(&data).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    mount("size=600k");
    let _guard = Unmount(data.clone());
    let file = s.file("Full Disk", 1);

    // Full: the run stops within seconds, says why and what to do, and exits 3.
    let started = Instant::now();
    let out = s.run(&file, &data);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(started.elapsed() < Duration::from_secs(90), "took {:?}", started.elapsed());
    assert!(err.contains("cannot be written") && err.contains("Free space on its disk"), "{err}");
    assert!(err.contains("full-disk"), "names the folder: {err}");
    assert!(err.matches("database or disk is full").count() <= 2, "one message, not thousands: {err}");

    // Read-only: refused before anything starts.
    remount("ro");
    let out = s.run(&file, &data);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("cannot be written") && err.contains("nothing was started"), "{err}");

    // Fixed: the next run finishes, each job once.
    remount("rw,size=64m");
    let (out, _) = s.run_ok(&file, &data);
    assert!(out.contains(&format!("verified on chain: {JOBS} tokens")), "{out}");
    assert_eq!(s.mints_on_chain().await, JOBS);

    // A local chain (no RPC URL) whose saved state is damaged: anvil's own reason, the file
    // and the fix, within seconds.
    let local = s.tmp.path().join("local.toml");
    std::fs::write(&local, collection("Local Damage", "x", 1).replace("rpc_url = \"x\"\n", "")).unwrap();
    let local_data = s.data("local");
    let out = latentmint_run(&local, &local_data).env("LATENTMINT_ANVIL", anvil()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let state = local_data.join("local-damage/chain/anvil-state.json");
    std::fs::write(&state, b"{ not json").unwrap();
    let started = Instant::now();
    let out = latentmint_run(&local, &local_data).env("LATENTMINT_ANVIL", anvil()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(err.contains("anvil-state.json is damaged") && err.contains("failed to parse"), "{err}");
    assert!(err.contains("restore it from a backup"), "{err}");
    let _ = EvmAddress::parse_checksummed(RECIPIENT).unwrap();
}

alloy::sol!(
    #[allow(missing_docs)]
    #[sol(rpc)]
    UnguardedCollection,
    "../infra/contracts/artifacts/UnguardedCollection.json"
);

/// The collector's check sees a duplicate whichever paths made it: on a contract without the
/// position guard (a test-only variant; LatentCollection refuses both mints), one job minted
/// alone and again in a batch makes `verify --all` fail, naming both tokens.
#[tokio::test(flavor = "multi_thread")]
async fn verify_all_names_every_job_that_owns_two_tokens() {
    let s = Scene::new(&[]).await;
    let chain = Chain::connect(&s.node.rpc_url, &s.key, CHAIN_ID).await.unwrap();
    let c = UnguardedCollection::deploy(chain.provider().clone(), latentmint_chain::to_alloy(chain.sender()))
        .await
        .unwrap();
    let mut bytes = [7u8; 32];
    bytes[24..].copy_from_slice(&3u64.to_be_bytes());
    let job = B256::from(bytes);
    let to = latentmint_chain::to_alloy(EvmAddress::parse_checksummed(RECIPIENT).unwrap());
    let digest =
        B256::from(latentmint_core::cid::raw_sha256_digest(&latentmint_core::cid::cid_of_bytes(b"m")).unwrap());
    c.mint(to, job, digest).send().await.unwrap().get_receipt().await.unwrap();
    c.mintBatch(B256::repeat_byte(1), to, vec![job], B256::repeat_byte(2), B256::ZERO)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let out = std::process::Command::new(latentmint_e2e::latentmint_bin())
        .args(["verify", "--all", "--rpc-url", &s.node.rpc_url, "--contract", &c.address().to_string(), "--ipfs-dir"])
        .arg(s.tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let single = alloy::primitives::U256::from_be_bytes(digest.0).to_string();
    let job_hex = hex::encode(job.0);
    assert!(stdout.contains(&format!("FAIL job {job_hex} owns 2 tokens: {single} and 1")), "{stdout}");
    // Each of the two tokens fails the per-token check as well.
    assert!(stdout.contains("owns no other token") || stdout.matches("FAIL").count() >= 3, "{stdout}");
}
