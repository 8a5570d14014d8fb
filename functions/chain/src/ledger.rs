//! The contract's mint events read into a [`Ledger`]: which job became which token, in which
//! transaction. How a minter (before it sends) and a collector's check (`verify --all`) learn
//! what the chain holds, whatever local state survives.
//!
//! Reads are incremental: blocks at least `confirmations` deep are scanned once and kept; the
//! blocks above them are scanned again on every read, so a reorganised tip is never cached.
//! A log query the RPC refuses for its size is split in halves until it is accepted, so the
//! scan works against providers that cap the range or the number of results of one query.

use std::future::Future;
use std::pin::Pin;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEvent;
use latentmint_core::JobId;
use latentmint_core::batch::BatchId;
use latentmint_core::ledger::{ChainMint, Ledger, Via, directory_cid};

use crate::ChainError;
use crate::contract::{LatentCollection, LatentEditions};

/// Which contract's events make the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// LatentCollection: `JobMinted` and `BatchMinted`.
    Collection,
    /// LatentEditions: `EditionMinted` (its key is the job id).
    Editions,
}

/// How deep a block must be before its mints are kept and not read again: deeper than the
/// reorganisations L2s see, and than a lagging replica behind a load balancer.
pub const SETTLED_DEPTH: u64 = 64;

/// A ledger kept between reads.
#[derive(Debug)]
pub struct LedgerCache {
    address: Address,
    kind: Kind,
    /// The first block to scan (the contract's deployment block).
    start: u64,
    /// Blocks `start..=settled_to` are in `settled` and never read again.
    settled_to: Option<u64>,
    settled: Ledger,
}

impl LedgerCache {
    /// An empty cache for the contract at `address`, whose events start at block `start`.
    pub fn new(address: Address, kind: Kind, start: u64) -> Self {
        Self { address, kind, start, settled_to: None, settled: Ledger::default() }
    }

    /// Forgets what was read: the next read scans from the deployment block again (when the
    /// chain holds a mint no kept event names, a replica must have answered short).
    pub fn forget(&mut self) {
        self.settled_to = None;
        self.settled = Ledger::default();
    }

    /// Every mint up to the chain's head: the settled part from the cache, the tip (the last
    /// [`SETTLED_DEPTH`] blocks, or `confirmations` if more) read again.
    pub async fn read(&mut self, provider: &DynProvider, confirmations: u64) -> Result<Ledger, ChainError> {
        let head = provider.get_block_number().await.map_err(|e| ChainError::Rpc(format!("eth_blockNumber: {e}")))?;
        let safe = head.saturating_sub(confirmations.max(SETTLED_DEPTH));
        let from = self.settled_to.map_or(self.start, |b| b + 1);
        if from <= safe {
            let found = scan(provider, self.address, self.kind, from, safe).await?;
            self.settled.extend(found);
            self.settled_to = Some(safe);
        }
        let mut ledger = self.settled.clone();
        let tip_from = self.settled_to.map_or(self.start, |b| b + 1);
        if tip_from <= head {
            ledger.extend(scan(provider, self.address, self.kind, tip_from, head).await?);
        }
        Ok(ledger)
    }
}

/// A minter's [`LedgerCache`], made on its first read (from the contract's deployment block)
/// and shared by its clones.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeptLedger(std::sync::Arc<tokio::sync::Mutex<Option<LedgerCache>>>);

impl KeptLedger {
    /// Every mint of the contract at `address` so far; `deployed_block` is asked once, on the
    /// first read.
    pub(crate) async fn read<F>(
        &self,
        provider: &DynProvider,
        address: Address,
        kind: Kind,
        confirmations: u64,
        deployed_block: F,
    ) -> Result<Ledger, ChainError>
    where
        F: Future<Output = Result<U256, ChainError>>,
    {
        let mut cache = self.0.lock().await;
        let cache = match cache.as_mut() {
            Some(c) => c,
            None => {
                let start = deployed_block.await?;
                let start =
                    u64::try_from(start).map_err(|_| ChainError::Rpc(format!("deployedBlock() answered {start}")))?;
                cache.insert(LedgerCache::new(address, kind, start))
            }
        };
        cache.read(provider, confirmations).await
    }

    /// Forgets what was read (see [`LedgerCache::forget`]).
    pub(crate) async fn forget(&self) {
        if let Some(c) = self.0.lock().await.as_mut() {
            c.forget();
        }
    }
}

/// The mints of the contract at `address` in blocks `from..=to`, in chain order.
pub async fn scan(
    provider: &DynProvider,
    address: Address,
    kind: Kind,
    from: u64,
    to: u64,
) -> Result<Vec<ChainMint>, ChainError> {
    let topics: Vec<B256> = match kind {
        Kind::Collection => {
            vec![LatentCollection::JobMinted::SIGNATURE_HASH, LatentCollection::BatchMinted::SIGNATURE_HASH]
        }
        Kind::Editions => {
            vec![LatentEditions::EditionCreated::SIGNATURE_HASH, LatentEditions::EditionMinted::SIGNATURE_HASH]
        }
    };
    let filter = Filter::new().address(address).event_signature(topics);
    let mut logs = logs_split(provider, &filter, from, to).await?;
    logs.sort_by_key(|l| (l.block_number, l.log_index));
    let mut out = Vec::new();
    // An edition's metadata, from its creation (which comes before its copies' mint).
    let mut editions = std::collections::HashMap::new();
    for log in logs {
        decode(&log, &mut editions, &mut out)?;
    }
    Ok(out)
}

fn decode(
    log: &Log,
    editions: &mut std::collections::HashMap<U256, String>,
    out: &mut Vec<ChainMint>,
) -> Result<(), ChainError> {
    let (Some(block), Some(log_index), Some(tx)) = (log.block_number, log.log_index, log.transaction_hash) else {
        return Ok(()); // pending: not a mint yet
    };
    let tx_hash = format!("{tx:#x}");
    let bad = |e: alloy::sol_types::Error| ChainError::Rpc(format!("an undecodable mint event in {tx_hash}: {e}"));
    match log.topic0() {
        Some(t) if *t == LatentCollection::JobMinted::SIGNATURE_HASH => {
            let ev = LatentCollection::JobMinted::decode_log(&log.inner).map_err(bad)?;
            out.push(ChainMint {
                job: JobId::from_bytes(ev.jobId.0),
                token_id: ev.tokenId.to_string(),
                tx_hash,
                block,
                log_index,
                via: Via::Alone,
            });
        }
        Some(t) if *t == LatentCollection::BatchMinted::SIGNATURE_HASH => {
            let ev = LatentCollection::BatchMinted::decode_log(&log.inner).map_err(bad)?;
            let first = u64::try_from(ev.first).map_err(|_| {
                ChainError::Rpc(format!("BatchMinted in {tx_hash}: first token {} is no batch id", ev.first))
            })?;
            let dir = directory_cid(&ev.directoryDigest.0);
            for (i, job) in ev.jobIds.iter().enumerate() {
                out.push(ChainMint {
                    job: JobId::from_bytes(job.0),
                    token_id: (first + i as u64).to_string(),
                    tx_hash: tx_hash.clone(),
                    block,
                    log_index,
                    via: Via::Batch {
                        batch: BatchId::from_bytes(ev.batchId.0),
                        first,
                        index: i as u32,
                        directory_cid: dir.clone(),
                    },
                });
            }
        }
        Some(t) if *t == LatentEditions::EditionCreated::SIGNATURE_HASH => {
            let ev = LatentEditions::EditionCreated::decode_log(&log.inner).map_err(bad)?;
            editions.insert(ev.id, latentmint_core::cid::raw_cid_of_digest(&ev.metadataDigest.0));
        }
        Some(t) if *t == LatentEditions::EditionMinted::SIGNATURE_HASH => {
            let ev = LatentEditions::EditionMinted::decode_log(&log.inner).map_err(bad)?;
            out.push(ChainMint {
                job: JobId::from_bytes(ev.key.0),
                token_id: ev.id.to_string(),
                tx_hash,
                block,
                log_index,
                via: Via::Edition { metadata_cid: editions.get(&ev.id).cloned() },
            });
        }
        _ => {}
    }
    Ok(())
}

/// `eth_getLogs` over `from..=to`, split in halves while the RPC refuses the query for its
/// size (a range cap, a result cap, a timeout).
fn logs_split<'a>(
    provider: &'a DynProvider,
    filter: &'a Filter,
    from: u64,
    to: u64,
) -> Pin<Box<dyn Future<Output = Result<Vec<Log>, ChainError>> + Send + 'a>> {
    Box::pin(async move {
        let query = filter.clone().from_block(from).to_block(to);
        match provider.get_logs(&query).await {
            Ok(logs) => Ok(logs),
            Err(e) if from < to && too_big(&e.to_string()) => {
                let mid = from + (to - from) / 2;
                let mut a = logs_split(provider, filter, from, mid).await?;
                a.extend(logs_split(provider, filter, mid + 1, to).await?);
                Ok(a)
            }
            Err(e) => Err(ChainError::Rpc(format!("eth_getLogs over blocks {from}..={to}: {e}"))),
        }
    })
}

/// How providers word a refusal of a log query for its size.
fn too_big(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    [
        "range",
        "too many",
        "too large",
        "limited to",
        "exceed",
        "more than",
        "timeout",
        "timed out",
        "response size",
        "query returned",
    ]
    .iter()
    .any(|k| m.contains(k))
}

/// Which of `jobs` have their position claimed on a LatentCollection: the bitmap words their
/// positions fall in, read in as few calls as runs of neighbouring words allow.
pub async fn claimed(
    contract: &LatentCollection::LatentCollectionInstance<DynProvider>,
    jobs: &[JobId],
) -> Result<Vec<bool>, ChainError> {
    let words: std::collections::BTreeSet<u64> = jobs.iter().map(|j| j.position().0 >> 8).collect();
    let mut bits = std::collections::HashMap::new();
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for w in words {
        match runs.last_mut() {
            // Neighbours (or near: a gap of a few words costs less than another call).
            Some((start, count)) if w - (*start + *count) < 4 && *count < 1024 => *count = w - *start + 1,
            _ => runs.push((w, 1)),
        }
    }
    for (start, count) in runs {
        let got = contract
            .mintedWords(U256::from(start), U256::from(count))
            .call()
            .await
            .map_err(|e| ChainError::Rpc(format!("mintedWords({start}, {count}): {e}")))?;
        for (i, word) in got.into_iter().enumerate() {
            bits.insert(start + i as u64, word);
        }
    }
    Ok(jobs
        .iter()
        .map(|j| {
            let p = j.position().0;
            bits.get(&(p >> 8)).is_some_and(|w| w.bit((p & 0xff) as usize))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_refusals_are_told_from_other_failures() {
        for m in [
            "query returned more than 10000 results",
            "block range is too large",
            "exceed maximum block range: 50000",
            "Log response size exceeded.",
            "eth_getLogs is limited to a 10,000 range",
        ] {
            assert!(too_big(m), "{m}");
        }
        for m in ["connection refused", "invalid params: bad address", "method not found"] {
            assert!(!too_big(m), "{m}");
        }
    }
}
