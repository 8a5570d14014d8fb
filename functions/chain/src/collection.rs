//! The `Minter` port on a LatentCollection (ERC-721) contract, through alloy.
//!
//! Exactly-once is the contract's job: it refuses a job id it has seen. This adapter reads the
//! chain before sending (a redelivered message finds the token and sends nothing), and treats
//! the contract's `AlreadyMinted` refusal as success with the existing token. Getting a
//! transaction mined (nonce, fees, replacement, confirmations) is [`crate::tx`]'s.

use std::str::FromStr;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionReceipt;
use async_trait::async_trait;
use latentmint_core::batch::{BatchId, BatchPlan};
use latentmint_core::ledger::{Fate, Ledger, Via};
use latentmint_core::living::Transfer;
use latentmint_core::ports::{
    BatchReceipt, MetadataUpdater, MintReceipt, Minter, PortError, PortResult, TransferSource,
};
use latentmint_core::{EvmAddress, JobId};
use tracing::{info, warn};

use crate::ChainError;
use crate::contract::LatentCollection;
use crate::ledger::{KeptLedger, Kind};
use crate::tx::error::classify;
use crate::tx::send::Landed;
use crate::tx::{SendPolicy, Sender};
use crate::{from_alloy, to_alloy};

/// Mints ERC-721 tokens on a LatentCollection contract, one job or one batch at a time,
/// through its wallet's transaction manager (`tx::Sender`).
pub struct CollectionMinter {
    pub(crate) contract: LatentCollection::LatentCollectionInstance<DynProvider>,
    tx: Sender,
    /// The contract's mints so far, read from its events (kept between reads).
    ledger: KeptLedger,
}

impl CollectionMinter {
    pub(crate) fn new(tx: Sender, contract: EvmAddress) -> Self {
        Self {
            contract: LatentCollection::new(to_alloy(contract), tx.provider.clone()),
            tx,
            ledger: KeptLedger::default(),
        }
    }

    /// How this minter's transactions are sent.
    pub fn policy(&self) -> SendPolicy {
        self.tx.policy
    }

    /// The contract.
    pub fn address(&self) -> EvmAddress {
        from_alloy(*self.contract.address())
    }

    /// The contract binding (for tests and tools).
    pub fn contract(&self) -> &LatentCollection::LatentCollectionInstance<DynProvider> {
        &self.contract
    }

    /// `tokenURI(id)`.
    pub async fn token_uri(&self, token_id: &str) -> Result<String, ChainError> {
        let id = U256::from_str(token_id).map_err(|e| ChainError::Config(format!("token id `{token_id}`: {e}")))?;
        self.contract.tokenURI(id).call().await.map_err(|e| ChainError::Rpc(e.to_string()))
    }

    /// Points `token_id` at `uri` (`setTokenURI`, which emits ERC-4906 `MetadataUpdate`), once:
    /// nothing is sent when the token points there already, and an unclear outcome reads the
    /// chain before sending again. Returns the transaction hash when this call sent one.
    pub async fn set_token_uri(&self, token_id: &str, uri: &str) -> PortResult<Option<String>> {
        let id = U256::from_str(token_id).map_err(|e| PortError::Permanent(format!("token id `{token_id}`: {e}")))?;
        let there = || async move {
            let now = self
                .contract
                .tokenURI(id)
                .call()
                .await
                .map_err(|e| PortError::Transient(format!("reading tokenURI({token_id}): {e}")))?;
            Ok((now == uri).then_some(now))
        };
        if there().await?.is_some() {
            info!(token_id, uri, "token already points at its new metadata; nothing sent");
            return Ok(None);
        }
        let call = self.contract.setTokenURI(id, uri.to_string()).from(self.tx.from);
        let l2_gas = call
            .estimate_gas()
            .await
            .map_err(|e| classify::<LatentCollection::LatentCollectionErrors>("setTokenURI", e))?;
        match self.tx.send_guarded("setTokenURI", call, l2_gas, there).await? {
            Landed::Found(_) => Ok(None),
            Landed::Mined(receipt, tx_hash) if receipt.status() => Ok(Some(tx_hash)),
            Landed::Mined(_, tx_hash) => Err(PortError::Permanent(format!("setTokenURI {tx_hash} reverted"))),
        }
    }

    /// The chain's latest block number.
    pub async fn head(&self) -> Result<u64, ChainError> {
        self.contract.provider().get_block_number().await.map_err(|e| ChainError::Rpc(e.to_string()))
    }

    /// Transfers between wallets (mints and burns left out) in blocks `from..=to`, in chain order.
    pub async fn transfers(&self, from: u64, to: u64) -> Result<Vec<Transfer>, ChainError> {
        self.transfer_logs(from, to, false).await
    }

    /// Mints (transfers from the zero address) in blocks `from..=to`, in chain order.
    pub async fn mints(&self, from: u64, to: u64) -> Result<Vec<Transfer>, ChainError> {
        self.transfer_logs(from, to, true).await
    }

    async fn transfer_logs(&self, from: u64, to: u64, mints: bool) -> Result<Vec<Transfer>, ChainError> {
        let mut query = self.contract.Transfer_filter().from_block(from).to_block(to);
        if mints {
            query = query.topic1(B256::ZERO);
        }
        let logs =
            query.query().await.map_err(|e| ChainError::Rpc(format!("eth_getLogs Transfer {from}..={to}: {e}")))?;
        let mut out: Vec<Transfer> = logs
            .into_iter()
            // Between wallets, or from nobody: a burn is neither.
            .filter(|(t, _)| !t.to.is_zero() && t.from.is_zero() == mints)
            .filter_map(|(t, log)| {
                Some(Transfer {
                    token_id: t.tokenId.to_string(),
                    block: log.block_number?,
                    tx_hash: format!("{:#x}", log.transaction_hash?),
                    log_index: log.log_index?,
                })
            })
            .collect();
        out.sort_by_key(|t| (t.block, t.log_index));
        Ok(out)
    }

    /// `ownerOf(id)`.
    pub async fn owner_of(&self, token_id: &str) -> Result<EvmAddress, ChainError> {
        let id = U256::from_str(token_id).map_err(|e| ChainError::Config(format!("token id `{token_id}`: {e}")))?;
        self.contract.ownerOf(id).call().await.map(from_alloy).map_err(|e| ChainError::Rpc(e.to_string()))
    }

    /// `totalMinted()`.
    pub async fn total_supply(&self) -> Result<u64, ChainError> {
        let s = self.contract.totalMinted().call().await.map_err(|e| ChainError::Rpc(e.to_string()))?;
        u64::try_from(s).map_err(|_| ChainError::Rpc("totalSupply exceeds u64".into()))
    }
}

#[async_trait]
impl Minter for CollectionMinter {
    async fn fates(&self, jobs: &[JobId]) -> PortResult<Vec<Fate>> {
        let claimed =
            crate::ledger::claimed(&self.contract, jobs).await.map_err(|e| PortError::Transient(e.to_string()))?;
        if !claimed.iter().any(|c| *c) {
            return Ok(vec![Fate::Unminted; jobs.len()]);
        }
        // The events were read after the bitmap, so they cover every position it holds; if
        // they do not (a replica answered short), what was kept is read again, once.
        let mut ledger = self.ledger().await.map_err(|e| PortError::Transient(e.to_string()))?;
        if jobs.iter().zip(&claimed).any(|(j, c)| *c && ledger.fate(*j) == Fate::Unminted) {
            self.ledger.forget().await;
            ledger = self.ledger().await.map_err(|e| PortError::Transient(e.to_string()))?;
        }
        jobs.iter()
            .zip(claimed)
            .map(|(job, claimed)| match (claimed, ledger.fate(*job)) {
                (false, _) => Ok(Fate::Unminted),
                (true, Fate::Unminted) => Err(PortError::Transient(format!(
                    "the contract holds job {}'s {} as minted, but no mint event names it: the RPC did not return every log of the contract",
                    job.short(),
                    job.position()
                ))),
                (true, fate) => Ok(fate),
            })
            .collect()
    }

    async fn mint(&self, job: JobId, to: EvmAddress, metadata_cid: &str) -> PortResult<MintReceipt> {
        // A single mint's token id is the metadata CID's 32-byte digest; the contract rebuilds
        // `ipfs://<cid>` from it.
        let digest = latentmint_core::cid::raw_sha256_digest(metadata_cid).ok_or_else(|| {
            PortError::Permanent(format!(
                "metadata CID {metadata_cid} is not a single raw block (CIDv1, raw, sha2-256)"
            ))
        })?;
        // Read before write: a redelivered or retried message, a run that lost its records,
        // finds the token and stops here.
        if let Some(found) = self.found(job).await? {
            info!(job = %job.short(), token_id = %found.token_id, "already minted on chain; nothing sent");
            return Ok(found);
        }
        let call = self.contract.mint(to_alloy(to), B256::from(*job.as_bytes()), B256::from(digest)).from(self.tx.from);
        // The estimate runs the mint: a refusal (already minted, paused, missing role) shows
        // here, before anything is paid.
        let l2_gas = match call.estimate_gas().await {
            Ok(g) => g,
            Err(e) => {
                match e.as_decoded_interface_error::<LatentCollection::LatentCollectionErrors>() {
                    // Another worker won the race: the guard kept it to one token.
                    Some(LatentCollection::LatentCollectionErrors::AlreadyMinted(_)) => {
                        warn!(job = %job.short(), "the contract refused a second mint of this job");
                        return self.found(job).await?.ok_or_else(|| {
                            PortError::Transient(format!(
                                "job {} is minted, but its event is not readable yet",
                                job.short()
                            ))
                        });
                    }
                    Some(LatentCollection::LatentCollectionErrors::TokenExists(t)) => {
                        return Err(PortError::Permanent(format!(
                            "metadata {metadata_cid} is already token {} (for another job): a job's metadata names its job, so this record was copied",
                            t.tokenId
                        )));
                    }
                    _ => return Err(classify::<LatentCollection::LatentCollectionErrors>("mint", e)),
                }
            }
        };
        let done = || async { Ok(self.found(job).await?.map(|r| r.token_id)) };
        match self.tx.send_guarded("mint", call, l2_gas, done).await? {
            Landed::Found(_) => self.found(job).await?.ok_or_else(|| {
                PortError::Transient(format!("job {} was minted meanwhile; reading it again", job.short()))
            }),
            Landed::Mined(receipt, tx_hash) => self.finish(job, *receipt, tx_hash).await,
        }
    }

    async fn minted_batch(&self, batch: BatchId) -> PortResult<Option<BatchReceipt>> {
        let ledger = self.ledger().await.map_err(|e| PortError::Transient(e.to_string()))?;
        Ok(ledger.batch(batch).first().and_then(|m| match &m.via {
            Via::Batch { first, .. } => {
                Some(BatchReceipt { first: *first, tx_hash: Some(m.tx_hash.clone()), sent: false })
            }
            _ => None,
        }))
    }

    async fn mint_batch(&self, plan: &BatchPlan) -> PortResult<BatchReceipt> {
        // The contract stores the directory CID's 32-byte digest and rebuilds `ipfs://<dir>/<i>`.
        let digest = latentmint_core::cid::dag_pb_sha256_digest(&plan.directory_cid).ok_or_else(|| {
            PortError::Permanent(format!(
                "batch {}: directory CID {} is not a dag-pb CIDv1 with sha2-256",
                plan.id, plan.directory_cid
            ))
        })?;
        if plan.jobs.is_empty() || plan.recipients.len() != plan.jobs.len() {
            return Err(PortError::Permanent(format!(
                "batch {}: {} jobs but {} recipients",
                plan.id,
                plan.jobs.len(),
                plan.recipients.len()
            )));
        }
        // Read before write: a retried batch finds its tokens and sends nothing.
        if let Some(found) = self.minted_batch(plan.id).await? {
            info!(batch = %plan.id.short(), first = found.first, "batch already minted on chain; nothing sent");
            return Ok(found);
        }
        let key = B256::from(*plan.id.as_bytes());
        let jobs: Vec<B256> = plan.jobs.iter().map(|j| B256::from(*j.as_bytes())).collect();
        let (digest, root) = (B256::from(digest), B256::ZERO);
        // One recipient: ERC721A writes ownership once for the whole batch.
        match plan.single_recipient() {
            Some(to) => {
                let call = self.contract.mintBatch(key, to_alloy(to), jobs, digest, root).from(self.tx.from);
                self.send_batch(plan, call).await
            }
            None => {
                let to: Vec<Address> = plan.recipients.iter().map(|r| to_alloy(*r)).collect();
                let call = self.contract.mintBatchTo(key, to, jobs, digest, root).from(self.tx.from);
                self.send_batch(plan, call).await
            }
        }
    }
}

impl CollectionMinter {
    /// Every mint of the contract so far, read from its events: what was read before is kept,
    /// the chain's tip is read again (see [`crate::ledger`]).
    pub async fn ledger(&self) -> Result<Ledger, ChainError> {
        let deployed = async {
            self.contract.deployedBlock().call().await.map_err(|e| ChainError::Rpc(format!("deployedBlock(): {e}")))
        };
        let (provider, address) = (self.contract.provider(), *self.contract.address());
        self.ledger.read(provider, address, Kind::Collection, self.tx.policy.confirmations, deployed).await
    }

    /// The receipt of `job`'s token if the chain has it; a permanent error if its position
    /// holds another job.
    async fn found(&self, job: JobId) -> PortResult<Option<MintReceipt>> {
        match self.fates(&[job]).await?.into_iter().next() {
            Some(Fate::Minted(m)) => {
                Ok(Some(MintReceipt { token_id: m.token_id.clone(), tx_hash: Some(m.tx_hash.clone()), found: Some(m) }))
            }
            Some(Fate::PositionTaken(holder)) => {
                Err(PortError::Permanent(latentmint_core::ledger::position_taken(job, &holder)))
            }
            _ => Ok(None),
        }
    }

    /// Estimates and sends a batch mint; the contract refuses it whole if any of its jobs is
    /// minted already.
    async fn send_batch<C: alloy::contract::CallDecoder>(
        &self,
        plan: &BatchPlan,
        call: alloy::contract::CallBuilder<&DynProvider, C>,
    ) -> PortResult<BatchReceipt> {
        let l2_gas = match call.estimate_gas().await {
            Ok(g) => g,
            Err(e) => {
                if let Some(LatentCollection::LatentCollectionErrors::AlreadyMinted(a)) =
                    e.as_decoded_interface_error::<LatentCollection::LatentCollectionErrors>()
                {
                    if let Some(found) = self.minted_batch(plan.id).await? {
                        return Ok(found);
                    }
                    // A job of the plan was minted elsewhere (alone, or by another run in
                    // another grouping): the plan can never be sent; the stage plans again.
                    return Err(PortError::Transient(format!(
                        "batch {}: job {} is minted already, so the contract refuses the batch; its jobs are read from the chain and planned again",
                        plan.id.short(),
                        JobId::from_bytes(a.jobId.0).short()
                    )));
                }
                return Err(classify::<LatentCollection::LatentCollectionErrors>("batch mint", e));
            }
        };
        let found = || async { Ok(self.minted_batch(plan.id).await?.map(|f| f.first.to_string())) };
        match self.tx.send_guarded("batch mint", call, l2_gas, found).await? {
            Landed::Found(_) => self.minted_batch(plan.id).await?.ok_or_else(|| {
                PortError::Transient(format!("batch {} was minted meanwhile; reading it again", plan.id.short()))
            }),
            Landed::Mined(receipt, tx_hash) => {
                let minted = receipt.decoded_log::<LatentCollection::BatchMinted>().filter(|_| receipt.status());
                match minted {
                    Some(ev) => {
                        let first = u64::try_from(ev.data.first)
                            .map_err(|_| PortError::Permanent(format!("batch first token {}", ev.data.first)))?;
                        info!(batch = %plan.id.short(), first, jobs = plan.jobs.len(), gas = receipt.gas_used, "batch minted");
                        Ok(BatchReceipt { first, tx_hash: Some(tx_hash), sent: true })
                    }
                    // Reverted: another sender's copy of this batch landed first, or a job of
                    // it was minted elsewhere meanwhile, or the contract was paused.
                    None => match self.minted_batch(plan.id).await? {
                        Some(found) => Ok(found),
                        None => Err(PortError::Transient(format!(
                            "batch mint transaction {tx_hash} reverted; its jobs are read from the chain and planned again"
                        ))),
                    },
                }
            }
        }
    }
}

#[async_trait]
impl MetadataUpdater for CollectionMinter {
    async fn token_uri(&self, token_id: &str) -> PortResult<String> {
        CollectionMinter::token_uri(self, token_id)
            .await
            .map_err(|e| PortError::Transient(format!("tokenURI({token_id}): {e}")))
    }

    async fn set_token_uri(&self, token_id: &str, uri: &str) -> PortResult<Option<String>> {
        CollectionMinter::set_token_uri(self, token_id, uri).await
    }
}

#[async_trait]
impl TransferSource for CollectionMinter {
    async fn head(&self) -> PortResult<u64> {
        CollectionMinter::head(self).await.map_err(|e| PortError::Transient(e.to_string()))
    }

    async fn transfers(&self, from: u64, to: u64) -> PortResult<Vec<Transfer>> {
        CollectionMinter::transfers(self, from, to).await.map_err(|e| PortError::Transient(e.to_string()))
    }

    async fn mints(&self, from: u64, to: u64) -> PortResult<Vec<Transfer>> {
        CollectionMinter::mints(self, from, to).await.map_err(|e| PortError::Transient(e.to_string()))
    }
}

impl CollectionMinter {
    async fn finish(&self, job: JobId, receipt: TransactionReceipt, tx_hash: String) -> PortResult<MintReceipt> {
        if !receipt.status() {
            // Reverted on chain: either the guard (someone else minted it) or a real failure.
            if let Some(found) = self.found(job).await? {
                return Ok(found);
            }
            return Err(PortError::Permanent(format!("mint transaction {tx_hash} reverted")));
        }
        // The contract's JobMinted names the new token (its id is the metadata digest).
        let token_id = receipt
            .decoded_log::<LatentCollection::JobMinted>()
            .filter(|l| l.data.jobId.0 == *job.as_bytes())
            .map(|l| l.data.tokenId.to_string())
            .ok_or_else(|| PortError::Permanent(format!("mint {tx_hash} succeeded but emitted no JobMinted event")))?;
        Ok(MintReceipt { token_id, tx_hash: Some(tx_hash), found: None })
    }
}
