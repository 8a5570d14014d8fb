//! The local runner: every stage in one process over embedded adapters (SQLite queues and
//! jobs, files, a local content store) and a real EVM node.
//!
//! A run can be killed at any moment and started again: jobs and messages are in SQLite, the
//! runner takes the data directory's lock and releases the dead run's message leases, the
//! chain is reconciled with the job store, and the contract refuses any second mint of a job.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{MultiProgress, ProgressDrawTarget};
use latentmint_chain::{Chain, TokenReader};
use latentmint_core::ports::{BlobStore, JobStore, Pinner, Queue};
use latentmint_core::{Job, JobId, JobState, Stage};
use latentmint_stages::{Ports, intake};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::args::RunArgs;
use crate::report;

use crate::chain_setup::{ChainSetup, setup_chain};
use crate::wiring::{build_generator, build_inspector, credentials_dir, with_credentials};
use crate::worker::{bar, worker};
use crate::workspace::{Fault, MIN_FREE_BYTES, Workspace, free_bytes, load_collection, storage_fault};

/// The chain is the truth about mints: before anything is generated or minted, the job store
/// is made to agree with it (`latentmint_stages::reconcile`). A job the chain holds a token for
/// takes the chain's word (and its content, where this folder's content store has it); a job
/// whose position holds another job's token stops the run here, before anything is done.
/// Returns the jobs of `specs` already on chain.
pub(crate) async fn reconcile(
    ports: &Ports,
    specs: &[latentmint_core::JobSpec],
) -> anyhow::Result<std::collections::BTreeSet<JobId>> {
    let started = Instant::now();
    let found = latentmint_stages::reconcile::reconcile(ports, specs)
        .await
        .map_err(|e| anyhow::anyhow!("reading what the chain holds of this collection: {e}"))?;
    if !found.conflicts.is_empty() {
        let lines: Vec<String> = found
            .conflicts
            .iter()
            .take(5)
            .map(|(id, holder)| {
                let spec = specs.iter().find(|s| s.id == *id);
                let place = spec.map_or_else(String::new, |s| format!("prompts[{}] copy {}: ", s.index, s.copy));
                format!("  {place}{}", latentmint_core::ledger::position_taken(*id, holder))
            })
            .collect();
        let more = found.conflicts.len().saturating_sub(5);
        bail!(
            "this collection file does not match what its contract holds: {} of its jobs sit at positions minted for other jobs\n{}{}\nnothing was generated or minted",
            found.conflicts.len(),
            lines.join("\n"),
            if more > 0 { format!("\n  … and {more} more") } else { String::new() }
        );
    }
    let ours: std::collections::BTreeSet<JobId> = specs.iter().map(|s| s.id).collect();
    let on_chain: std::collections::BTreeSet<JobId> =
        found.on_chain.iter().copied().filter(|id| ours.contains(id)).collect();
    if !found.adopted.is_empty() {
        eprintln!(
            "latentmint: found {} job{} of this collection already minted on chain that this folder did not know (in {:.1}s); their records now say what the chain says",
            found.adopted.len(),
            if found.adopted.len() == 1 { "" } else { "s" },
            started.elapsed().as_secs_f64()
        );
    }
    if !found.unrecovered.is_empty() {
        eprintln!(
            "latentmint: {} of them cannot be shown or checked from this folder (their tokens exist; their content is not in its content store):",
            found.unrecovered.len()
        );
        for (id, why) in found.unrecovered.iter().take(5) {
            eprintln!("  job {}: {why}", id.short());
        }
        if found.unrecovered.len() > 5 {
            eprintln!("  … and {} more", found.unrecovered.len() - 5);
        }
    }
    if !found.lost.is_empty() {
        warn!(jobs = found.lost.len(), "tokens missing from this chain (a reset local chain): minting them again");
    }
    Ok(on_chain)
}

/// `latentmint run`: the whole pipeline for one collection file.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let collection = load_collection(&args.collection)?;
    let specs = collection.jobs()?;
    // The model first: a bad model folder fails the run before anything is written.
    let generator = build_generator(&args, &collection).await?;
    let inspector = build_inspector(&args, &collection).await?;
    let ws = Workspace::open(&args.data_dir, &collection, args.max_receives)?;
    let generator = with_credentials(generator, &ws, &collection)?;
    let released = ws.queue.release_in_flight()?;
    if released > 0 {
        info!(released, "resuming: messages of the previous run are visible again");
    }
    let chain = setup_chain(&args, &collection, &ws).await?;

    let ports = Ports {
        queue: ws.queue.clone(),
        jobs: ws.jobs.clone(),
        blobs: ws.blobs.clone(),
        generator,
        inspector,
        pinner: ws.content.clone(),
        minter: chain.minter.port(),
        signer: chain.signer.clone(),
    };
    let minted_before = reconcile(&ports, &specs).await?;
    // Submitting again sends each unsettled job on to the stage it waits for: a job whose
    // message was dead-lettered in an earlier run (a paused contract, an RPC down) resumes.
    let (mut fresh, mut resumed) = (0, 0);
    for spec in specs.iter().cloned() {
        match intake::submit(&ports, spec).await? {
            intake::Intake::Queued => fresh += 1,
            intake::Intake::Requeued(_) => resumed += 1,
            intake::Intake::Known(_) => {}
        }
    }
    let ids: Vec<JobId> = specs.iter().map(|s| s.id).collect();
    let resumed = if resumed > 0 { format!(", {resumed} resumed") } else { String::new() };
    eprintln!(
        "latentmint: {} jobs ({} new{resumed}) from {} · contract {} on chain {} ({})",
        ids.len(),
        fresh,
        args.collection.display(),
        chain.minter.address(),
        collection.file.chain.id(),
        latentmint_core::redact::redact_urls(&chain.rpc_url)
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let batch = collection.file.chain.batch_size as usize;
    let fault: Fault = Arc::default();
    let workers: Vec<_> = Stage::ALL
        .into_iter()
        .map(|s| tokio::spawn(worker(ports.clone(), s, batch, stop_rx.clone(), fault.clone())))
        .collect();

    let mp = MultiProgress::with_draw_target(if args.no_progress {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let gen_bar = bar(&mp, ids.len() as u64, "generated");
    let done_bar = bar(&mp, ids.len() as u64, "settled");
    let mut idle_since: Option<Instant> = None;
    let mut stopped_by: Option<String> = None;
    let interrupted = loop {
        // A full disk or a read-only folder: no retry helps, so the run stops and says why.
        if let Some(free) = free_bytes(&ws.dir).filter(|f| *f < MIN_FREE_BYTES) {
            stopped_by = Some(format!("the disk holding it has {} KiB free", free / 1024));
        } else if let Some(f) = fault.lock().ok().and_then(|f| f.clone()) {
            stopped_by = Some(f);
        }
        if stopped_by.is_some() {
            break false;
        }
        let states = match job_states(ws.jobs.as_ref(), &ids).await {
            Ok(s) => s,
            Err(e) if storage_fault(&e.to_string()) => {
                stopped_by = Some(e.to_string());
                break false;
            }
            Err(e) => return Err(e),
        };
        let generated = states.values().filter(|s| !matches!(s, JobState::Queued | JobState::Generating)).count();
        let settled = states.values().filter(|s| s.is_final() || **s == JobState::AwaitingReview).count();
        gen_bar.set_position(generated as u64);
        done_bar.set_position(settled as u64);
        let minted = states.values().filter(|s| **s == JobState::Minted).count();
        done_bar.set_message(format!("{minted} minted"));
        if settled == ids.len() {
            break false;
        }
        // Nothing queued or in flight yet jobs unsettled: their messages are dead-lettered.
        let mut busy = false;
        for s in Stage::ALL {
            let st = ws.queue.stats(s.queue()).await?;
            busy |= st.visible + st.in_flight > 0;
        }
        if busy {
            idle_since = None;
        } else if idle_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(3) {
            warn!(
                "no work left in any queue but some jobs are unsettled: their messages ran out of retries \
                 (see the dead-letter queues); run again to resume them"
            );
            break false;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = tokio::signal::ctrl_c() => break true,
        }
    };
    gen_bar.finish();
    done_bar.finish();
    let _ = stop_tx.send(true);
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
    }
    if let Some(why) = stopped_by {
        if let Some(node) = chain.node {
            node.stop().await;
        }
        eprintln!(
            "latentmint: stopped: the data folder {} cannot be written ({why}).\nFree space on its disk (or make it writable), then run the same command again: nothing is lost, every job waits where it stopped, and nothing is minted twice.",
            ws.dir.display()
        );
        return Ok(ExitCode::from(3));
    }

    let jobs = load_jobs(ws.jobs.as_ref(), &ids).await?;
    let editions = collection.file.editions.is_some();
    let width = comfy_table::Table::new().width();
    println!("{}", report::table(&jobs, if editions { "edition" } else { "token" }, width));
    let mut sheet = Vec::new();
    for j in &jobs {
        let png = match &j.image_key {
            Some(k) => ws.blobs.get(k).await.ok(),
            None => None,
        };
        sheet.push((j.clone(), png));
    }
    let sheet_path = ws.dir.join("contact-sheet.png");
    let sheets = report::contact_sheet(&sheet, &sheet_path)?;
    let manifest_path = ws.dir.join("tokens.json");
    let contract = (chain.minter.address(), chain.deployed_block);
    let copies = collection.file.editions.map(|e| e.copies);
    report::manifest(&jobs, collection.file.chain.id(), contract, copies, &manifest_path)?;

    let verified = verify(&jobs, &chain, ws.content.as_ref()).await;
    let counts = jobs.iter().fold(BTreeMap::new(), |mut m, j| {
        *m.entry(j.state).or_insert(0usize) += 1;
        m
    });
    let summary = counts.iter().map(|(s, n)| format!("{n} {s}")).collect::<Vec<_>>().join(", ");
    println!("{summary} in {:.1}s (in total)", started.elapsed().as_secs_f64());
    // This run's mints apart from what the chain held when it started (earlier runs, other
    // folders): the cost line counts only what this run paid.
    let this_run: Vec<Job> =
        jobs.iter().filter(|j| j.state == JobState::Minted && !minted_before.contains(&j.id())).cloned().collect();
    let earlier = jobs.iter().filter(|j| j.state == JobState::Minted && minted_before.contains(&j.id())).count();
    println!(
        "this run: {} minted{}",
        this_run.len(),
        if earlier > 0 {
            format!("; {earlier} were on chain already, minted by an earlier run")
        } else {
            String::new()
        }
    );
    if let Some(line) = mint_cost(&this_run, &chain.chain).await {
        println!("{line}");
    }
    match &verified {
        Ok(Verified { tokens: n, held, .. }) if editions => println!(
            "verified on chain: {n} editions ({held} with every copy still held by its recipient), uri -> metadata CID -> image CID all match the bytes, every provenance record signed for this contract by a wallet that held its role when the edition was created"
        ),
        Ok(Verified { tokens: n, held, .. }) => println!(
            "verified on chain: {n} tokens ({held} held by their recipients), tokenURI -> metadata CID -> image CID all match the bytes, every provenance record signed for this contract by a wallet that held its role when the record was set"
        ),
        Err(e) => println!("VERIFICATION FAILED: {}", latentmint_core::redact::redact_urls(&format!("{e:#}"))),
    }
    if let Ok(v) = &verified
        && !v.unchecked.is_empty()
    {
        println!(
            "not checked here: {} token{} found on chain whose content this folder does not have (an earlier data folder held it; check them with `latentmint verify` against the IPFS node that has it): {}",
            v.unchecked.len(),
            if v.unchecked.len() == 1 { "" } else { "s" },
            v.unchecked.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
                + if v.unchecked.len() > 3 { ", …" } else { "" }
        );
    }
    match sheets.as_slice() {
        [one] => println!("contact sheet: {}", one.display()),
        many => println!(
            "contact sheets: {} to {} ({} sheets of at most {} images)",
            sheet_path.display(),
            many.last().map(|p| p.display().to_string()).unwrap_or_default(),
            many.len(),
            report::SHEET_TILES
        ),
    }
    println!(
        "content credentials: every image carries a C2PA manifest signed under {} (this run's development CA)",
        credentials_dir(&ws.dir).join("ca.pem").display()
    );
    let from = chain.deployed_block.map(|b| format!(" --from-block {b}")).unwrap_or_default();
    println!("tokens: {} (whole ids, for `latentmint verify --token <id>{from}`)", manifest_path.display());
    // The commands that continue this run, with the flags it was given.
    let data = if args.data_dir == std::path::Path::new(".latentmint") {
        String::new()
    } else {
        format!(" --data-dir {}", args.data_dir.display())
    };
    let file = args.collection.display();
    println!(
        "state: {} (`latentmint run {file}{data}` resumes; `latentmint review {file} --list{data}` shows the jobs awaiting review; `latentmint-tui {}` opens the dashboard)",
        ws.dir.display(),
        ws.dir.display()
    );
    if let Some(node) = chain.node {
        node.stop().await;
    }
    if interrupted {
        eprintln!("interrupted: run the same command again to finish the batch");
        return Ok(ExitCode::from(130));
    }
    let failed = counts.get(&JobState::Failed).copied().unwrap_or(0);
    let unsettled = jobs.iter().filter(|j| !(j.state.is_final() || j.state == JobState::AwaitingReview)).count();
    Ok(if failed > 0 || unsettled > 0 || verified.is_err() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// What minting the run's tokens cost: their transactions and the gas the receipts show
/// (`chain.batch_size` above 1 puts many tokens in one transaction). `None` when nothing was
/// minted or a receipt cannot be read.
pub(crate) async fn mint_cost(jobs: &[Job], chain: &Chain) -> Option<String> {
    let minted: Vec<&Job> = jobs.iter().filter(|j| j.state == JobState::Minted).collect();
    let txs: std::collections::BTreeSet<&str> = minted.iter().filter_map(|j| j.tx_hash.as_deref()).collect();
    if txs.is_empty() {
        return None;
    }
    let mut gas = 0u64;
    for tx in &txs {
        gas += chain.gas_used(tx).await.ok()??;
    }
    let tokens = minted.iter().filter(|j| j.tx_hash.is_some()).count();
    Some(format!(
        "minting (this run): {tokens} tokens in {} transaction{}, {gas} gas ({} per token)",
        txs.len(),
        if txs.len() == 1 { "" } else { "s" },
        gas / tokens as u64
    ))
}

pub(crate) async fn job_states(store: &dyn JobStore, ids: &[JobId]) -> anyhow::Result<BTreeMap<JobId, JobState>> {
    let wanted: std::collections::BTreeSet<_> = ids.iter().collect();
    Ok(store.list(None).await?.into_iter().filter(|j| wanted.contains(&j.id())).map(|j| (j.id(), j.state)).collect())
}

pub(crate) async fn load_jobs(store: &dyn JobStore, ids: &[JobId]) -> anyhow::Result<Vec<Job>> {
    let mut out = Vec::new();
    for id in ids {
        if let Some(j) = store.get(*id).await? {
            out.push(j);
        }
    }
    Ok(out)
}

/// Re-checks every minted token from the chain inwards, as a collector would
/// ([`TokenReader::verify`]: content against CIDs, the signed record, the signer's role, the
/// token's job), and that it points at what the job published (or at an evolution of it, after
/// `latentmint live`). Returns the tokens checked and how many of them their recipients still
/// hold (a collector may have sold one since).
pub(crate) async fn verify(jobs: &[Job], chain: &ChainSetup, content: &dyn Pinner) -> anyhow::Result<Verified> {
    let reader = TokenReader::on(chain.chain.provider().clone(), chain.minter.address())
        .await?
        .from_block(chain.deployed_block.unwrap_or(0));
    // Every job that owns more than one token on the contract, whichever paths minted it.
    let duplicates = reader.duplicates().await?;
    if let Some(d) = duplicates.first() {
        bail!(
            "{d}{}",
            if duplicates.len() > 1 { format!(" (and {} more)", duplicates.len() - 1) } else { String::new() }
        );
    }
    let (mut n, mut held) = (0, 0);
    let mut unchecked = Vec::new();
    let minted: Vec<&Job> = jobs.iter().filter(|j| j.state == JobState::Minted).collect();
    // Each token is read back from the chain and its content: seconds for a large collection.
    let bar = indicatif::ProgressBar::new(minted.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("verifying {pos}/{len} tokens from the chain inwards {wide_bar} {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let _clear = ClearOnDrop(&bar);
    for j in minted {
        bar.inc(1);
        let token = j.token_id.as_deref().context("minted job without token id")?;
        // Found on chain by a run that lost its data folder, and its content with it: the
        // token is real, but nothing here can show its bytes (said above, and counted).
        if j.content_missing.is_some() {
            unchecked.push(token.to_string());
            continue;
        }
        let report = reader.verify(token, content).await?;
        if let Some(c) = report.checks.iter().find(|c| !c.ok) {
            bail!("token {token}: {}: {}", c.what, c.detail);
        }
        held += usize::from(match report.owner {
            Some(owner) => owner == j.spec.recipient,
            // An edition counts as held while the recipient keeps every copy it was minted.
            None => reader.edition_balance(j.spec.recipient, token).await? >= chain.minter.copies(),
        });
        // A batch token's metadata is an entry of its batch's directory, found by the reader.
        let evolved = report.metadata.as_ref().is_some_and(|m| m.provenance.evolution.is_some());
        if report.metadata_cid != j.metadata_cid && !evolved {
            bail!(
                "token {token}: tokenURI {} leads to metadata {:?}, the job published {:?}",
                report.token_uri,
                report.metadata_cid,
                j.metadata_cid
            );
        }
        n += 1;
    }
    Ok(Verified { tokens: n, held, unchecked })
}

/// Clears a progress bar however its loop ends (an early `?` included).
struct ClearOnDrop<'a>(&'a indicatif::ProgressBar);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// What the run's own check of its tokens found.
pub(crate) struct Verified {
    /// Tokens checked from the chain inwards.
    pub(crate) tokens: usize,
    /// Of those, held by their recipients.
    pub(crate) held: usize,
    /// Tokens found on chain whose content this folder does not have.
    pub(crate) unchecked: Vec<String>,
}
