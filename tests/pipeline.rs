//! The whole slice through the real binary: real ONNX model, SQLite queues, local content
//! store and a real anvil. The run is killed (SIGKILL, no cleanup) at points read from its job
//! store (during generation, with some jobs minted, with a batch claimed) and restarted; at the
//! end every job is minted exactly once and nothing is lost. Where the kill lands relative to a
//! broadcast is not controlled here: `state_loss.rs` kills a run with a mint proven to be in the
//! mempool (automine off, the transaction seen in the pool).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use latentmint_chain::{Chain, LocalNode, SendPolicy};
use latentmint_core::cid::cid_of_bytes;
use latentmint_core::metadata::TokenMetadata;
use latentmint_core::ports::{JobStore, Minter};
use latentmint_core::{EvmAddress, JobState};
use latentmint_e2e::{anvil, latentmint_bin, latentmint_run, ort_library, tiny_model};
use latentmint_embedded::SqliteJobStore;

const CHAIN_ID: u64 = 412_346;
const RECIPIENT: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
const JOBS: usize = 10;

fn collection(rpc_url: &str) -> String {
    format!(
        r#"
[collection]
name = "Kill Test"
symbol = "KILL"
recipient = "{RECIPIENT}"

[generation]
model = "{model}"
steps = 12
width = 64
height = 64
seed = 5

[chain]
chain_id = {CHAIN_ID}
rpc_url = "{rpc_url}"

[[traits]]
name = "colour"
values = [{{ value = "red" }}, {{ value = "green", weight = 2 }}]

[[prompts]]
text = "a {{colour}} square"
count = {count}

[[prompts]]
text = "a plain circle"
"#,
        model = tiny_model().display(),
        count = JOBS - 1
    )
}

fn spawn_run(file: &Path, data: &Path, key: &str) -> Child {
    latentmint_run(file, data)
        .env("LATENTMINT_SIGNER_KEY", key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("latentmint starts")
}

/// Runs the collection again, uninterrupted: it must succeed and say that all `JOBS` tokens
/// were verified on chain.
fn run_to_the_end(file: &Path, data: &Path, key: &str) {
    let out = spawn_run(file, data, key).wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "final run failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("verified on chain: {JOBS} tokens")), "{stdout}");
}

/// The contract a run in `run_dir` deployed on `node` (its deployment.json), through `key`.
async fn deployed(node: &LocalNode, key: &str, run_dir: &Path) -> latentmint_chain::CollectionMinter {
    let deployment: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("deployment.json")).unwrap()).unwrap();
    let contract = EvmAddress::parse_any_case(deployment["contract"].as_str().unwrap()).unwrap();
    Chain::connect(&node.rpc_url, key, CHAIN_ID).await.unwrap().minter(contract, SendPolicy::confirmations(1))
}

async fn count(store: &SqliteJobStore, pred: impl Fn(JobState) -> bool) -> usize {
    store.list(None).await.map(|jobs| jobs.iter().filter(|j| pred(j.state)).count()).unwrap_or(0)
}

/// How far a run is, read from its job store.
struct Progress {
    generated: usize,
    minting: usize,
    minted: usize,
}

/// Runs until `ready` holds, then SIGKILLs the process. Fails if the run ended first.
async fn kill_when(child: &mut Child, db: &Path, ready: impl Fn(&Progress) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "kill point never reached");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run finished ({status}) before the kill point; make the batch bigger");
        }
        if db.exists()
            && let Ok(store) = SqliteJobStore::open(db)
        {
            let progress = Progress {
                generated: count(&store, |s| s != JobState::Queued).await,
                minting: count(&store, |s| s == JobState::Minting).await,
                minted: count(&store, |s| s == JobState::Minted).await,
            };
            if ready(&progress) {
                child.kill().unwrap();
                child.wait().unwrap();
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_twice_and_restarted_mints_every_job_exactly_once() {
    let node = LocalNode::spawn(&anvil(), CHAIN_ID, None).await.unwrap();
    let key = node.dev_key(0).unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("kill.toml");
    std::fs::write(&file, collection(&node.rpc_url)).unwrap();
    let data = tmp.path().join("data");
    let db = data.join("kill-test/pipeline.db");

    // 1: killed during generation.
    let mut run = spawn_run(&file, &data, &key);
    kill_when(&mut run, &db, |p| p.generated >= 2).await;
    // 2: killed while minting.
    let mut run = spawn_run(&file, &data, &key);
    kill_when(&mut run, &db, |p| (1..JOBS).contains(&p.minted)).await;
    // 3: runs to the end.
    run_to_the_end(&file, &data, &key);

    // Check everything again from outside the binary.
    let minter = deployed(&node, &key, &data.join("kill-test")).await;
    assert_eq!(minter.total_supply().await.unwrap(), JOBS as u64, "exactly one token per job");

    let store = SqliteJobStore::open(&db).unwrap();
    let jobs = store.list(None).await.unwrap();
    assert_eq!(jobs.len(), JOBS, "no job lost");
    let mut tokens = std::collections::BTreeSet::new();
    let recipient = EvmAddress::parse_checksummed(RECIPIENT).unwrap();
    for job in &jobs {
        assert_eq!(job.state, JobState::Minted, "{}", job.id().short());
        let token = job.token_id.clone().unwrap();
        assert!(tokens.insert(token.clone()), "token {token} recorded twice");
        assert_eq!(minter.minted_token(job.id()).await.unwrap().as_deref(), Some(token.as_str()));
        assert_eq!(minter.owner_of(&token).await.unwrap(), recipient);
        let uri = minter.token_uri(&token).await.unwrap();
        let meta_cid = uri.strip_prefix("ipfs://").unwrap();
        let meta_bytes = std::fs::read(data.join("kill-test/ipfs").join(meta_cid)).unwrap();
        assert_eq!(cid_of_bytes(&meta_bytes), meta_cid);
        let meta: TokenMetadata = serde_json::from_slice(&meta_bytes).unwrap();
        let image = std::fs::read(data.join("kill-test/ipfs").join(meta.image_cid().unwrap())).unwrap();
        assert_eq!(cid_of_bytes(&image), meta.image_cid().unwrap(), "image CID matches the image bytes");
        assert_eq!(meta.provenance.job_id, job.id().to_string());
        assert_eq!(meta.provenance.model.id, "latentmint/tiny-sd-random");
        assert_eq!(meta.provenance.steps, 12);
    }
    assert!(data.join("kill-test/contact-sheet.png").is_file());

    // A fourth run finds nothing to do and mints nothing.
    let out = spawn_run(&file, &data, &key).wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(minter.total_supply().await.unwrap(), JOBS as u64);
    node.stop().await;
}

/// The demo's own mode: no RPC URL, so the run starts anvil with a state file. Killing the
/// run kills its anvil too (up to a second of chain state may be lost); the restart reloads
/// the chain, reconciles it with the job store, and finishes with one token per job.
#[tokio::test(flavor = "multi_thread")]
async fn killed_demo_mode_run_resumes_on_its_own_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("demo.toml");
    let text =
        collection("http://unused").replace("rpc_url = \"http://unused\"\n", "").replace("Kill Test", "Demo Kill");
    std::fs::write(&file, text).unwrap();
    let data = tmp.path().join("data");
    let db = data.join("demo-kill/pipeline.db");
    let spawn = || {
        Command::new(latentmint_bin())
            .arg("run")
            .arg(&file)
            .arg("--data-dir")
            .arg(&data)
            .args(["--no-progress", "--threads", "1"])
            .env("ORT_DYLIB_PATH", ort_library())
            .env("LATENTMINT_ANVIL", anvil())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut run = spawn();
    kill_when(&mut run, &db, |p| (2..JOBS).contains(&p.minted)).await;
    let out = spawn().wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("verified on chain: {JOBS} tokens")), "{stdout}");
    let tokens: std::collections::BTreeSet<String> = SqliteJobStore::open(&db)
        .unwrap()
        .list(Some(JobState::Minted))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|j| j.token_id)
        .collect();
    assert_eq!(tokens.len(), JOBS, "one distinct token per job");
    // And the chain survives a clean stop: a third run finds the same contract and tokens.
    let out = spawn().wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{JOBS} minted")));

    // A collector's check of the whole run from its folder (its saved chain loaded by anvil,
    // read only), each image made again from its record, the ones made before the kill too.
    let state = std::fs::read(data.join("demo-kill/chain/anvil-state.json")).unwrap();
    let out = Command::new(latentmint_bin())
        .args(["verify", "--all", "--local-run"])
        .arg(data.join("demo-kill"))
        .arg("--reproduce-with")
        .arg(tiny_model())
        .env("ORT_DYLIB_PATH", ort_library())
        .env("LATENTMINT_ANVIL", anvil())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("verified: {JOBS} of {JOBS} tokens")), "{stdout}");
    assert_eq!(stdout.matches("(image made again").count(), JOBS, "{stdout}");
    assert_eq!(std::fs::read(data.join("demo-kill/chain/anvil-state.json")).unwrap(), state, "left as it was");

    // A token id the contract never minted (single mints have 77-digit ids) is named as such.
    let out = Command::new(latentmint_bin())
        .args(["verify", "--token", "1", "--local-run"])
        .arg(data.join("demo-kill"))
        .env("LATENTMINT_ANVIL", anvil())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("token 1 does not exist on contract 0x") && stderr.contains("tokens.json"), "{stderr}");
}

/// A paused contract holds a batch: each mint is retried until its message is dead-lettered,
/// and the run ends unsettled (exit 1) with its jobs published, none failed. Unpaused, running
/// the same command again resumes them, and each is minted once.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_held_by_a_paused_contract_resumes_when_run_again() {
    let node = LocalNode::spawn(&anvil(), CHAIN_ID, None).await.unwrap();
    let key = node.dev_key(0).unwrap().to_string();
    let chain = Chain::connect(&node.rpc_url, &key, CHAIN_ID).await.unwrap();
    let contract = chain.deploy("Paused", "PSD").await.unwrap();
    let minter = chain.minter(contract, SendPolicy::confirmations(1));
    minter.contract().pause().send().await.unwrap().get_receipt().await.unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("paused.toml");
    std::fs::write(
        &file,
        latentmint_e2e::tiny_collection("Paused", "PSD")
            .section("[review]\nauto_approve_at = 0.0\nauto_reject_below = 0.0")
            .section(&format!(
                "[chain]\nchain_id = {CHAIN_ID}\nrpc_url = \"{}\"\ncontract = \"{contract}\"",
                node.rpc_url
            ))
            .prompt_times("a red circle", 2)
            .text(),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let run = || {
        latentmint_run(&file, &data).args(["--max-receives", "2"]).env("LATENTMINT_SIGNER_KEY", &key).output().unwrap()
    };

    let held = run();
    let stderr = String::from_utf8_lossy(&held.stderr);
    assert!(!held.status.success(), "an unsettled batch is a failed run\n{stderr}");
    assert!(stderr.contains("the contract is paused") && stderr.contains("run again to resume"), "{stderr}");
    let store = SqliteJobStore::open(&data.join("paused/pipeline.db")).unwrap();
    assert_eq!(count(&store, |s| s == JobState::Published).await, 2, "published and waiting, not failed");
    assert_eq!(minter.total_supply().await.unwrap(), 0);

    minter.contract().unpause().send().await.unwrap().get_receipt().await.unwrap();
    let resumed = run();
    let (stdout, stderr) = (String::from_utf8_lossy(&resumed.stdout), String::from_utf8_lossy(&resumed.stderr));
    assert!(resumed.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("2 jobs (0 new, 2 resumed)"), "{stderr}");
    assert!(stdout.contains("verified on chain: 2 tokens"), "{stdout}");
    assert_eq!(minter.total_supply().await.unwrap(), 2, "each job minted once");
    assert_eq!(count(&store, |s| s == JobState::Minted).await, 2);
}

/// Batches of four on a chain that mines every two seconds: the run is killed while a batch is
/// minting (its jobs claimed, its transaction perhaps sent and not yet mined). The restart
/// finishes that very batch: every job minted once, each batch in one transaction, token
/// `first + i` the plan's job `i`.
#[tokio::test(flavor = "multi_thread")]
async fn killed_while_a_batch_is_minting_finishes_that_batch_once() {
    let node = LocalNode::spawn_with(&anvil(), CHAIN_ID, None, &["--block-time", "2"]).await.unwrap();
    let key = node.dev_key(0).unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("batches.toml");
    let text = collection(&node.rpc_url)
        .replace("Kill Test", "Batch Kill")
        .replace(&format!("chain_id = {CHAIN_ID}\n"), &format!("chain_id = {CHAIN_ID}\nbatch_size = 4\n"));
    std::fs::write(&file, text).unwrap();
    let data = tmp.path().join("data");
    let db = data.join("batch-kill/pipeline.db");

    let mut run = spawn_run(&file, &data, &key);
    kill_when(&mut run, &db, |p| p.minting > 0).await;
    let store = SqliteJobStore::open(&db).unwrap();
    let caught: Vec<_> = store.list(Some(JobState::Minting)).await.unwrap();
    let caught_batch = caught[0].batch.expect("a minting job names its batch").batch;

    run_to_the_end(&file, &data, &key);

    let minter = deployed(&node, &key, &data.join("batch-kill")).await;
    assert_eq!(minter.total_supply().await.unwrap(), JOBS as u64, "exactly one token per job");
    let jobs = store.list(None).await.unwrap();
    let mut by_batch: std::collections::BTreeMap<_, Vec<_>> = std::collections::BTreeMap::new();
    for job in &jobs {
        assert_eq!(job.state, JobState::Minted, "{}", job.id().short());
        match job.batch {
            Some(slot) => by_batch.entry(slot.batch).or_default().push((slot.index, job.clone())),
            None => assert!(minter.minted_token(job.id()).await.unwrap().is_some(), "a lone job is minted alone"),
        }
    }
    assert!(by_batch.contains_key(&caught_batch), "the batch caught minting was finished, not planned again");
    for (batch, mut members) in by_batch {
        assert!((2..=4).contains(&members.len()), "batches of at most 4: {}", members.len());
        members.sort_by_key(|(i, _)| *i);
        let first = minter.minted_batch(batch).await.unwrap().expect("the batch is on chain").first;
        for (i, job) in &members {
            assert_eq!(job.token_id.as_deref(), Some((first + u64::from(*i)).to_string().as_str()));
            // The job's one token is this one (the chain's events name no other).
            assert_eq!(minter.minted_token(job.id()).await.unwrap(), job.token_id);
            let uri = minter.token_uri(job.token_id.as_deref().unwrap()).await.unwrap();
            assert!(uri.ends_with(&format!("/{i}")), "{uri}");
        }
    }
    node.stop().await;
}
