//! `latentmint live`: living NFTs on one machine. Watches the collection's contract for
//! transfers between wallets and evolves each transferred token ([`latentmint_stages::evolve`]):
//! a new image grown from its current one, new metadata pinned, `setTokenURI` (ERC-4906). With
//! `[living.oracle]` it watches a price feed instead, and every token evolves when the feed's
//! answer moves into another mood.
//!
//! Transfers are read in chain order, `chain.confirmations` behind the head; the scan cursor
//! and each evolution's state live in `<data dir>/<collection>/living.db`, so a restart picks
//! up where it stopped and an event is acted on once.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use latentmint_core::living::EvolutionState;
use latentmint_core::ports::OracleSource;
use latentmint_embedded::SqliteEvolutionStore;
use latentmint_stages::evolve::{self, EvolvePorts, Watch};
use tracing::warn;

use crate::args::RunArgs;
use crate::chain_setup::setup_chain;
use crate::wiring::{build_generator, with_credentials};
use crate::workspace::{Workspace, load_collection};

/// `latentmint live`
#[derive(clap::Args)]
pub struct LiveArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Handle the events up to the chain's head, then exit (default: keep watching).
    #[arg(long)]
    pub once: bool,
    /// Seconds between scans when watching.
    #[arg(long, default_value_t = 5)]
    pub poll_secs: u64,
    /// First block to scan when this collection has never been watched (default: the block
    /// the run recorded its contract's deployment at, else 0).
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
    let generator = with_credentials(generator, &ws, &collection)?;
    let chain = setup_chain(&args.run, &collection, &ws).await?;
    // The collection check refuses [living] with [editions]: its minter is ERC-721's.
    let tokens = chain.minter.collection().cloned().with_context(|| {
        format!("{}: living NFTs evolve ERC-721 tokens; remove [editions]", args.run.collection.display())
    })?;
    let store = SqliteEvolutionStore::open(&ws.dir.join("living.db"))?;
    let chain_id = collection.file.chain.id();
    let ports = EvolvePorts {
        generator: generator.as_ref(),
        pinner: ws.content.as_ref(),
        chain: tokens.as_ref(),
        store: &store,
        signer: chain.signer.as_ref(),
    };
    let from_block = args.from_block.or(chain.deployed_block).unwrap_or(0);
    let watch = Watch {
        source: tokens.as_ref(),
        cursor: format!("{chain_id}:{}", chain.minter.address()),
        chain_id,
        lag: collection.file.chain.confirmations().saturating_sub(1),
        from_block,
    };
    // With [living.oracle] the tokens live by the feed's answers, not by their transfers.
    let feed = match &living.oracle {
        Some(o) => Some(chain.chain.feed(o.feed_address().map_err(|e| anyhow::anyhow!("{e}"))?)),
        None => None,
    };
    match &feed {
        Some(f) => eprintln!(
            "latentmint live: watching the price feed {} on chain {chain_id} ({}) for {}'s moods",
            f.address(),
            chain.rpc_url,
            chain.minter.address()
        ),
        None => eprintln!(
            "latentmint live: watching {} on chain {chain_id} ({}) for transfers",
            chain.minter.address(),
            chain.rpc_url
        ),
    }
    let mut evolved = 0usize;
    let outcome = loop {
        let feed = feed.as_ref().map(|f| f as &dyn OracleSource);
        match evolve::scan_collection(&ports, &living, &watch, feed, None).await {
            Ok(done) => {
                for (token, state) in done {
                    match state {
                        EvolutionState::Updated { metadata_cid, tx_hash, .. } => {
                            evolved += 1;
                            let tx = tx_hash.as_deref().unwrap_or("already on chain");
                            eprintln!("token {token} evolved: ipfs://{metadata_cid} (setTokenURI {tx})");
                        }
                        EvolutionState::Skipped { reason, .. } => eprintln!("token {token} stays: {reason}"),
                        EvolutionState::Published { .. } => {}
                    }
                }
            }
            Err(e) if args.once => break Err(anyhow::anyhow!("{e}")),
            Err(e) => warn!("scan stopped, retrying: {e}"),
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
