//! Reconcile benchmark: how long a run takes to decide, from a local node, what became of
//! jobs it does not know (a lost `pipeline.db`, a lost data folder). Goal: 1,000 jobs already
//! minted, all decided in under 10 s.
//!
//! `cargo bench -p latentmint-e2e --bench reconcile [-- --jobs 1000 --runs 5]` (after
//! `scripts/bootstrap.sh --tests`): starts anvil, mints `--jobs` jobs of one collection in
//! batches of 100, then, `--runs` times with a cold minter (no ledger cache) and an empty job
//! store, times
//! - `fates`: the chain's word on every job (the position bitmap, then the mint events);
//! - `reconcile`: the same, plus each job's record written as the chain says (content absent).
//!
//! Appends one JSON record (machine, tool versions, every sample) to
//! infra/bench/records/reconcile.jsonl; `python3 infra/bench/report.py` turns the records into
//! infra/bench/RECONCILE.md.

use std::sync::Arc;
use std::time::Instant;

use latentmint_chain::{Chain, ContractKind, LocalNode, SendPolicy};
use latentmint_core::batch::{BatchPlan, Member};
use latentmint_core::cid::cid_of_bytes;
use latentmint_core::ports::Minter;
use latentmint_core::testing::CollectionToml;
use latentmint_e2e::bench::{arg, machine};
use latentmint_embedded::{FsBlobStore, LocalContentStore, SqliteJobStore, SqliteQueue};
use latentmint_stages::ports;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let jobs = arg("--jobs", 1000);
    let runs = arg("--runs", 5);
    let anvil = latentmint_e2e::anvil();
    let node = LocalNode::spawn_with(&anvil, 412_346, None, &["--gas-limit", "100000000"]).await?;
    let chain = Chain::connect(&node.rpc_url, node.dev_key(0).unwrap_or_default(), 412_346).await?;
    let located = chain.find_or_deploy("Reconcile Bench", "RB", ContractKind::Collection, &Default::default()).await?;
    // A prompt holds at most 1,000 copies: as many prompts as that takes.
    let file =
        (0..jobs).step_by(1000).enumerate().fold(CollectionToml::new("Reconcile Bench", "RB"), |c, (i, start)| {
            c.prompt_times(&format!("shape {i}"), (jobs - start).min(1000) as u32)
        });
    let specs = file.jobs();
    let minter = chain.minter(located.deployed.address, SendPolicy::confirmations(1));
    let started = Instant::now();
    for group in specs.chunks(100) {
        let members = group
            .iter()
            .map(|s| {
                let metadata = format!("{{\"job\":\"{}\"}}", s.id).into_bytes();
                Member { job: s.id, recipient: s.recipient, metadata_cid: cid_of_bytes(&metadata), metadata }
            })
            .collect();
        minter.mint_batch(&BatchPlan::new(members)?).await?;
    }
    eprintln!("minted {jobs} jobs in {:.1}s", started.elapsed().as_secs_f64());
    let ids: Vec<_> = specs.iter().map(|s| s.id).collect();

    let (mut fates, mut reconciles) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        // Cold: a new minter (no ledger read yet), as a restarted run has.
        let cold = chain.minter(located.deployed.address, SendPolicy::confirmations(1));
        let t = Instant::now();
        let f = cold.fates(&ids).await?;
        fates.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(f.iter().all(|f| matches!(f, latentmint_core::ledger::Fate::Minted(_))), "every job minted");

        let dir = tempfile::tempdir()?;
        let db = dir.path().join("p.db");
        // What a reconcile touches, and nothing else: the mint stage's adapters.
        let ports = ports::Mint {
            queue: Arc::new(SqliteQueue::open(&db, 5)?),
            jobs: Arc::new(SqliteJobStore::open(&db)?),
            blobs: Arc::new(FsBlobStore::new(dir.path().join("blobs"))),
            pinner: Arc::new(LocalContentStore::new(dir.path().join("ipfs"))),
            minter: Arc::new(chain.minter(located.deployed.address, SendPolicy::confirmations(1))),
        };
        let t = Instant::now();
        let r = latentmint_stages::reconcile::reconcile(&ports, &specs).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        reconciles.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(r.adopted.len() == jobs, "every job adopted: {}", r.adopted.len());
    }
    let anvil_version = std::process::Command::new(&anvil)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_default();
    let record = serde_json::json!({
        "bench": "reconcile",
        "date": chrono::Utc::now().format("%Y-%m-%d").to_string(),
        "machine": machine(),
        "node": anvil_version,
        "jobs": jobs,
        "batch": 100,
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "fates_s": fates,
        "reconcile_s": reconciles,
    });
    let path = latentmint_e2e::repo_root().join("infra/bench/records/reconcile.jsonl");
    let mut line = serde_json::to_string(&record)?;
    line.push('\n');
    use std::io::Write;
    std::fs::OpenOptions::new().create(true).append(true).open(&path)?.write_all(line.as_bytes())?;
    println!("{record}");
    eprintln!("appended to {}; `python3 infra/bench/report.py` writes infra/bench/RECONCILE.md", path.display());
    node.stop().await;
    Ok(())
}
