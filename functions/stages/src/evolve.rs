//! Evolve (living NFTs): a token changed hands, so it grows a new image from its current one
//! and points at new metadata (ERC-4906 `MetadataUpdate`).
//!
//! One event, one evolution, whatever happens in between: the plan (seed, prompt, generation)
//! is a function of the event; the new metadata is recorded as `published` before the one
//! on-chain step, and the chain is read before writing, so a crash is resumed, not repeated.

use latentmint_core::collection::LivingSection;
use latentmint_core::living::{EvolutionState, OracleReading, Plan, Transfer, Trigger, evolved_metadata, plan};
use latentmint_core::metadata::TokenMetadata;
use latentmint_core::ports::{
    EvolutionStore, GenerationRequest, Generator, InitImage, MetadataUpdater, OracleSource, Pinner, ProvenanceSigner,
    TransferSource,
};
use latentmint_core::{GenerationParams, JobId};
use tracing::{info, warn};

use crate::StageError;
use crate::publish::pin_checked;

/// The adapters an evolution uses.
pub struct EvolvePorts<'a> {
    /// Makes the new image (img2img).
    pub generator: &'a dyn Generator,
    /// Holds the current metadata and image, and takes the new ones.
    pub pinner: &'a dyn Pinner,
    /// Reads and moves the token's metadata pointer.
    pub chain: &'a dyn MetadataUpdater,
    /// Where each evolution stands.
    pub store: &'a dyn EvolutionStore,
    /// Signs the new provenance record.
    pub signer: &'a dyn ProvenanceSigner,
}

fn cid_of_uri(uri: &str) -> Result<&str, StageError> {
    uri.strip_prefix("ipfs://").ok_or_else(|| {
        StageError::Fail(format!("token URI {uri} is not ipfs://<cid>; only pinned metadata can evolve"))
    })
}

/// Where an evolution ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evolved {
    /// Its state.
    pub state: EvolutionState,
    /// False when the event had been handled before (a re-scan).
    pub did_work: bool,
}

/// Where the evolution of `token_id` for `trigger` is recorded: the event alone for a transfer
/// (one token), the event and the token for a feed's answer (every token).
fn evolution_key(trigger: &Trigger, token_id: &str, by_feed: bool) -> String {
    if by_feed { format!("{}/{token_id}", trigger.key()) } else { trigger.key() }
}

/// Evolves `token_id` for the event `trigger`: its transfer, or (with `reading`) a price
/// feed's answer, which evolves every token, each once.
pub async fn run(
    p: &EvolvePorts<'_>,
    living: &LivingSection,
    trigger: Trigger,
    token_id: &str,
    reading: Option<OracleReading>,
) -> Result<Evolved, StageError> {
    let key = evolution_key(&trigger, token_id, reading.is_some());
    let metadata_cid = match p.store.get(&key).await? {
        Some(done @ (EvolutionState::Updated { .. } | EvolutionState::Skipped { .. })) => {
            return Ok(Evolved { state: done, did_work: false });
        }
        // Pinned before a crash: only the pointer is left to move.
        Some(EvolutionState::Published { metadata_cid, .. }) => metadata_cid,
        None => {
            let parent_uri = p.chain.token_uri(token_id).await?;
            let parent_bytes = p.pinner.fetch(cid_of_uri(&parent_uri)?).await?;
            let parent: TokenMetadata = serde_json::from_slice(&parent_bytes)
                .map_err(|e| StageError::Fail(format!("metadata {parent_uri} of token {token_id} is not ours: {e}")))?;
            let Plan::Evolve { prompt, negative_prompt, seed, record } =
                plan(living, &parent_uri, &parent, trigger, reading)
            else {
                let state = EvolutionState::Skipped {
                    token_id: token_id.into(),
                    reason: format!("reached living.max_generations ({})", living.max_generations),
                };
                p.store.put(&key, &state).await?;
                return Ok(Evolved { state, did_work: true });
            };
            let image = p.pinner.fetch(cid_of_uri(&parent.image)?).await?;
            let pp = &parent.provenance;
            let job_id: JobId = pp
                .job_id
                .parse()
                .map_err(|e| StageError::Fail(format!("metadata {parent_uri}: provenance.job_id: {e}")))?;
            let req = GenerationRequest {
                job_id,
                prompt: prompt.clone(),
                negative_prompt,
                params: GenerationParams {
                    steps: pp.steps,
                    guidance: pp.guidance,
                    width: pp.width,
                    height: pp.height,
                    scheduler: pp.scheduler.clone(),
                    seed,
                },
                init_image: Some(InitImage { png: image, strength: living.strength }),
            };
            let out = p.generator.generate(&req).await?;
            let generation = record.generation;
            let name = format!("{}-evolution-{generation}", pp.job_id);
            let image_cid = pin_checked(p.pinner, &format!("{name}.png"), out.png).await?;
            let mut metadata = evolved_metadata(&parent, &image_cid, &prompt, &out.record, *record);
            metadata.provenance.signature = Some(p.signer.sign(&metadata.provenance).await?);
            let metadata_cid = pin_checked(p.pinner, &format!("{name}.json"), metadata.to_json()).await?;
            p.store
                .put(&key, &EvolutionState::Published { token_id: token_id.into(), metadata_cid: metadata_cid.clone() })
                .await?;
            info!(token_id, generation, image = %image_cid, metadata = %metadata_cid, "evolution published");
            metadata_cid
        }
    };
    let tx_hash = p.chain.set_token_uri(token_id, &format!("ipfs://{metadata_cid}")).await?;
    let state = EvolutionState::Updated { token_id: token_id.into(), metadata_cid, tx_hash };
    p.store.put(&key, &state).await?;
    Ok(Evolved { state, did_work: true })
}

/// One event of a scan: [`run`], and where it ended when it did work. An event that can never
/// evolve its token (foreign metadata, a refused update) is recorded as skipped, so the watch
/// moves on; a transient error stops the scan, which leaves its cursor before this range and
/// comes back to it (what was done is recorded, so it is not done twice).
async fn handle(
    p: &EvolvePorts<'_>,
    living: &LivingSection,
    trigger: Trigger,
    token_id: &str,
    reading: Option<OracleReading>,
) -> Result<Option<EvolutionState>, StageError> {
    let key = evolution_key(&trigger, token_id, reading.is_some());
    match run(p, living, trigger, token_id, reading).await {
        // Handled by an earlier scan that stopped later in this range.
        Ok(Evolved { did_work: false, .. }) => Ok(None),
        Ok(Evolved { state, .. }) => Ok(Some(state)),
        Err(e @ StageError::Retry(_)) => Err(e),
        Err(StageError::Fail(why)) => {
            warn!(token = %token_id, "evolution refused: {why}");
            let state = EvolutionState::Skipped { token_id: token_id.into(), reason: why };
            p.store.put(&key, &state).await?;
            Ok(Some(state))
        }
    }
}

/// Most blocks asked for in one `eth_getLogs` (public RPCs cap the range).
pub const LOG_RANGE: u64 = 5_000;

/// One collection's watch: where to look on chain.
pub struct Watch<'a> {
    /// The contract's transfers.
    pub source: &'a dyn TransferSource,
    /// Name of the scan cursor (chain and contract).
    pub cursor: String,
    /// Chain id (part of each event's key).
    pub chain_id: u64,
    /// Blocks kept behind the head: `chain.confirmations - 1`.
    pub lag: u64,
    /// First block when the watch has no cursor yet.
    pub from_block: u64,
}

/// Handles every confirmed transfer after the cursor, in chain order, and moves the cursor
/// past each range once all its events are handled. Stops early (cursor saved) once
/// `deadline` passes, so a Lambda invocation ends inside its timeout. Returns what happened to
/// each transfer that did work in this call.
pub async fn scan(
    p: &EvolvePorts<'_>,
    living: &LivingSection,
    watch: &Watch<'_>,
    deadline: Option<std::time::Instant>,
) -> Result<Vec<(Transfer, EvolutionState)>, StageError> {
    let head = watch.source.head().await?;
    let safe = head.saturating_sub(watch.lag);
    let mut from = p.store.cursor(&watch.cursor).await?.unwrap_or(watch.from_block);
    let mut done = Vec::new();
    while from <= safe {
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            break;
        }
        let to = (from + LOG_RANGE - 1).min(safe);
        for t in watch.source.transfers(from, to).await? {
            let trigger = Trigger {
                chain_id: watch.chain_id,
                block: t.block,
                tx_hash: t.tx_hash.clone(),
                log_index: t.log_index,
            };
            if let Some(state) = handle(p, living, trigger, &t.token_id, None).await? {
                done.push((t, state));
            }
        }
        p.store.set_cursor(&watch.cursor, to + 1).await?;
        from = to + 1;
    }
    Ok(done)
}

/// Handles every confirmed answer of `feed` after its cursor, in chain order: an answer in
/// another mood than the last one evolves every token of the collection (`watch`: its mints,
/// chain, lag and first block) minted by then, each once; an answer in the same mood changes
/// nothing. The mood of the last answer acted on is kept next to the feed's cursor, so a
/// restart neither repeats nor misses a change. Stops early (cursor saved) once `deadline`
/// passes. Returns what happened to each token that did work in this call.
pub async fn scan_oracle(
    p: &EvolvePorts<'_>,
    living: &LivingSection,
    watch: &Watch<'_>,
    feed: &dyn OracleSource,
    deadline: Option<std::time::Instant>,
) -> Result<Vec<(String, EvolutionState)>, StageError> {
    let oracle =
        living.oracle.as_ref().ok_or_else(|| StageError::Fail("the collection has no [living.oracle]".into()))?;
    let decimals = feed.decimals().await?;
    let feed_address = feed.address();
    let cursor = format!("{}:feed:{feed_address}", watch.cursor);
    let mood_key = format!("{cursor}:mood");
    let head = watch.source.head().await?;
    let safe = head.saturating_sub(watch.lag);
    let mut from = p.store.cursor(&cursor).await?.unwrap_or(watch.from_block);
    // The last mood acted on, plus one (0: none yet, so the first answer sets the mood).
    let mut last = p.store.cursor(&mood_key).await?.unwrap_or(0);
    let mut done = Vec::new();
    // The collection's mints, read once per call in log-range windows as far as the answers
    // need them (public RPCs cap a log query's range).
    let (mut minted, mut minted_to) = (Vec::new(), watch.from_block);
    while from <= safe {
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            break;
        }
        let to = (from + LOG_RANGE - 1).min(safe);
        for answer in feed.answers(from, to).await? {
            let value = answer
                .value(decimals)
                .ok_or_else(|| StageError::Fail(format!("the feed's answer `{}` is not a number", answer.answer)))?;
            let mood = oracle.mood_of(value);
            if mood as u64 + 1 == last {
                continue;
            }
            let trigger = Trigger {
                chain_id: watch.chain_id,
                block: answer.block,
                tx_hash: answer.tx_hash.clone(),
                log_index: answer.log_index,
            };
            let reading = OracleReading {
                feed: feed_address.clone(),
                round: answer.round.clone(),
                answer: answer.answer.clone(),
                decimals,
                mood: oracle.moods[mood].words.clone(),
            };
            info!(answer = %answer.answer, mood = %reading.mood, block = answer.block, "the feed moved into another mood");
            while minted_to <= answer.block {
                let end = (minted_to + LOG_RANGE - 1).min(answer.block);
                minted.extend(watch.source.mints(minted_to, end).await?);
                minted_to = end + 1;
            }
            // Minted after the answer in its own block: it was made in the new world.
            let tokens: Vec<String> = minted
                .iter()
                .filter(|m: &&Transfer| (m.block, m.log_index) <= (answer.block, answer.log_index))
                .map(|m| m.token_id.clone())
                .collect();
            for token in tokens {
                // A big collection takes several calls: the answer's tokens done so far are
                // recorded, and the cursor and mood stay where they were for the next call.
                if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                    return Ok(done);
                }
                if let Some(state) = handle(p, living, trigger.clone(), &token, Some(reading.clone())).await? {
                    done.push((token, state));
                }
            }
            last = mood as u64 + 1;
            p.store.set_cursor(&mood_key, last).await?;
        }
        p.store.set_cursor(&cursor, to + 1).await?;
        from = to + 1;
    }
    Ok(done)
}

/// One pass of a collection's watch: its feed's answers when it lives by a price feed
/// (`feed`, from `[living.oracle]`), else its transfers. Returns each token that did work,
/// with where its evolution ended.
pub async fn scan_collection(
    p: &EvolvePorts<'_>,
    living: &LivingSection,
    watch: &Watch<'_>,
    feed: Option<&dyn OracleSource>,
    deadline: Option<std::time::Instant>,
) -> Result<Vec<(String, EvolutionState)>, StageError> {
    match feed {
        Some(feed) => scan_oracle(p, living, watch, feed, deadline).await,
        None => Ok(scan(p, living, watch, deadline).await?.into_iter().map(|(t, state)| (t.token_id, state)).collect()),
    }
}
