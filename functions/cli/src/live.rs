//! `latentmint live`: living NFTs on one machine. Watches the collection's contract for
//! transfers between wallets and evolves each transferred token ([`latentmint_stages::evolve`]):
//! a new image grown from its current one, new metadata pinned, `setTokenURI` (ERC-4906).
//!
//! Transfers are read in chain order, `chain.confirmations` behind the head; the scan cursor
//! and each evolution's state live in `<data dir>/<collection>/living.db`, so a restart picks
//! up where it stopped and an event is acted on once.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use latentmint_chain::EvmMinter;
use latentmint_core::collection::LivingSection;
use latentmint_core::living::{EvolutionState, Trigger};
use latentmint_core::ports::EvolutionStore;
use latentmint_embedded::SqliteEvolutionStore;
use latentmint_stages::StageError;
use latentmint_stages::evolve::{self, EvolvePorts, Evolved};
use tracing::warn;

use crate::run::{RunArgs, Workspace, build_generator, load_collection, setup_chain};

/// Most blocks asked for in one `eth_getLogs` (public RPCs cap the range).
const LOG_RANGE: u64 = 5_000;

/// `latentmint live`
#[derive(clap::Args)]
pub struct LiveArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Handle the transfers up to the chain's head, then exit (default: keep watching).
    #[arg(long)]
    pub once: bool,
    /// Seconds between scans when watching.
    #[arg(long, default_value_t = 5)]
    pub poll_secs: u64,
    /// First block to scan when this collection has never been watched (default 0).
    #[arg(long)]
    pub from_block: Option<u64>,
}

/// Runs the watcher.
pub async fn live(args: LiveArgs) -> anyhow::Result<ExitCode> {
    let collection = load_collection(&args.run.collection)?;
    let living = collection.file.living.clone().with_context(|| {
        format!(
            "{}: living: the collection has no [living] section; add one (strength, prompt, max_generations) to let its tokens evolve",
            args.run.collection.display()
        )
    })?;
    let generator = build_generator(&args.run, &collection).await?;
    let ws = Workspace::open(&args.run.data_dir, &collection, args.run.max_receives)?;
    let chain = setup_chain(&args.run, &collection, &ws).await?;
    let store = SqliteEvolutionStore::open(&ws.dir.join("living.db"))?;
    let chain_id = collection.file.chain.id();
    let watcher = Watcher {
        ports: EvolvePorts {
            generator: generator.as_ref(),
            pinner: ws.content.as_ref(),
            chain: chain.minter.as_ref(),
            store: &store,
            signer: chain.signer.as_ref(),
        },
        living: &living,
        store: &store,
        minter: &chain.minter,
        cursor: format!("{chain_id}:{}", chain.minter.address()),
        chain_id,
        lag: collection.file.chain.confirmations().saturating_sub(1),
        from_block: args.from_block,
    };
    eprintln!(
        "latentmint live: watching {} on chain {chain_id} ({}) for transfers",
        chain.minter.address(),
        chain.rpc_url
    );
    let mut evolved = 0usize;
    let outcome = loop {
        match watcher.scan().await {
            Ok(n) => evolved += n,
            Err(e) => {
                if args.once {
                    break Err(e);
                }
                warn!("scan stopped, retrying: {e:#}");
            }
        }
        if args.once {
            break Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(args.poll_secs)) => {}
            _ = tokio::signal::ctrl_c() => break Ok(()),
        }
    };
    if let Some(node) = chain.node {
        node.stop().await;
    }
    outcome?;
    eprintln!("latentmint live: {evolved} evolution(s) this session");
    Ok(ExitCode::SUCCESS)
}

/// One collection's watch: where to look, and what to evolve with.
struct Watcher<'a> {
    ports: EvolvePorts<'a>,
    living: &'a LivingSection,
    store: &'a SqliteEvolutionStore,
    minter: &'a EvmMinter,
    /// Name of the scan cursor: chain and contract.
    cursor: String,
    chain_id: u64,
    /// Blocks kept behind the head (confirmations - 1).
    lag: u64,
    from_block: Option<u64>,
}

impl Watcher<'_> {
    /// Handles every confirmed transfer after the cursor; returns how many tokens evolved.
    async fn scan(&self) -> anyhow::Result<usize> {
        let head = self.minter.head().await?;
        let safe = head.saturating_sub(self.lag);
        let mut from = self.store.cursor(&self.cursor)?.or(self.from_block).unwrap_or(0);
        let mut evolved = 0;
        while from <= safe {
            let to = (from + LOG_RANGE - 1).min(safe);
            for t in self.minter.transfers(from, to).await? {
                let trigger = Trigger {
                    chain_id: self.chain_id,
                    block: t.block,
                    tx_hash: t.tx_hash.clone(),
                    log_index: t.log_index,
                };
                let key = trigger.key();
                match evolve::run(&self.ports, self.living, trigger, &t.token_id).await {
                    // Handled in an earlier scan that stopped later in this range.
                    Ok(Evolved { did_work: false, .. }) => {}
                    Ok(Evolved { state: EvolutionState::Updated { metadata_cid, tx_hash, .. }, .. }) => {
                        evolved += 1;
                        let tx = tx_hash.as_deref().unwrap_or("already on chain");
                        eprintln!("token {} evolved: ipfs://{metadata_cid} (setTokenURI {tx})", t.token_id);
                    }
                    Ok(Evolved { state: EvolutionState::Skipped { reason, .. }, .. }) => {
                        eprintln!("token {} stays: {reason}", t.token_id)
                    }
                    Ok(Evolved { state: EvolutionState::Published { .. }, .. }) => {}
                    // Retried on the next scan: the cursor stays before this block.
                    Err(StageError::Retry(why)) => anyhow::bail!("token {} at {key}: {why}", t.token_id),
                    // This event can never evolve its token (foreign metadata, a refused update):
                    // recorded, so the watcher moves on.
                    Err(StageError::Fail(why)) => {
                        warn!(token = %t.token_id, "evolution refused: {why}");
                        self.store
                            .put(&key, &EvolutionState::Skipped { token_id: t.token_id.clone(), reason: why })
                            .await?;
                    }
                }
            }
            self.store.set_cursor(&self.cursor, to + 1)?;
            from = to + 1;
        }
        Ok(evolved)
    }
}
