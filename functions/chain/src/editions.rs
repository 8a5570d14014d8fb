//! The `Minter` port on a LatentEditions (ERC-1155) contract: each job becomes one edition.
//!
//! An edition takes two transactions, `createEdition(job, metadata digest, cap)` and
//! `mint(key = job, edition, recipient, copies)`, and each is guarded on chain: the contract
//! refuses a second edition of a job and a second use of a mint key. So a crash between the two,
//! or after either, heals itself on redelivery: the retry reads `editionOfJob` and
//! `mintedBy(job)` first, finds what was done, and sends only what is missing.

use alloy::primitives::{B256, U256};
use alloy::providers::DynProvider;
use async_trait::async_trait;
use latentmint_core::batch::{BatchId, BatchPlan};
use latentmint_core::ledger::{Fate, Ledger};
use latentmint_core::ports::{BatchReceipt, MintReceipt, Minter, PortError, PortResult};
use latentmint_core::{EvmAddress, JobId};
use tracing::{info, warn};

use crate::ChainError;
use crate::contract::LatentEditions::{self, LatentEditionsErrors, LatentEditionsInstance};
use crate::ledger::{KeptLedger, Kind};
use crate::tx::error::classify;
use crate::tx::send::Landed;
use crate::tx::{SendPolicy, Sender};
use crate::{from_alloy, to_alloy};

/// What each job of an edition collection mints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EditionTerms {
    /// Copies minted to the job's recipient.
    pub copies: u128,
    /// The edition's cap, kept by the contract for every later mint too; 0: an open edition.
    pub max_supply: u128,
}

impl From<latentmint_core::collection::EditionsSection> for EditionTerms {
    fn from(e: latentmint_core::collection::EditionsSection) -> Self {
        Self { copies: e.copies.into(), max_supply: e.max_supply.unwrap_or(0).into() }
    }
}

/// Mints ERC-1155 editions on a LatentEditions contract, one job at a time, through its
/// wallet's transaction manager (`tx::Sender`).
pub struct EditionsMinter {
    contract: LatentEditionsInstance<DynProvider>,
    terms: EditionTerms,
    tx: Sender,
    /// The contract's mints so far, read from its events (kept between reads).
    ledger: KeptLedger,
}

impl EditionsMinter {
    pub(crate) fn new(tx: Sender, contract: EvmAddress, terms: EditionTerms) -> Self {
        Self {
            contract: LatentEditions::new(to_alloy(contract), tx.provider.clone()),
            terms,
            tx,
            ledger: KeptLedger::default(),
        }
    }

    /// The contract.
    pub fn address(&self) -> EvmAddress {
        from_alloy(*self.contract.address())
    }

    /// What each job mints.
    pub fn terms(&self) -> EditionTerms {
        self.terms
    }

    /// How this minter's transactions are sent.
    pub fn policy(&self) -> SendPolicy {
        self.tx.policy
    }

    /// Every mint of the contract so far, read from its events (see [`crate::ledger`]).
    pub async fn ledger(&self) -> Result<Ledger, ChainError> {
        let deployed = async {
            self.contract.deployedBlock().call().await.map_err(|e| ChainError::Rpc(format!("deployedBlock(): {e}")))
        };
        let (provider, address) = (self.contract.provider(), *self.contract.address());
        self.ledger.read(provider, address, Kind::Editions, self.tx.policy.confirmations, deployed).await
    }

    /// The receipt of `job`'s edition mint from the chain's events, once `mintedBy(job)` says
    /// there is one.
    async fn edition_found(&self, job: JobId) -> PortResult<Option<MintReceipt>> {
        let Some(token_id) = self.minted_edition(job).await? else { return Ok(None) };
        let ledger = self.ledger().await.map_err(|e| PortError::Transient(e.to_string()))?;
        let found = ledger.of(job).cloned();
        // Minted but its event not (yet) served: what the contract says, with no transaction.
        Ok(Some(MintReceipt { token_id, tx_hash: found.as_ref().map(|m| m.tx_hash.clone()), found }))
    }

    /// The edition whose copies were minted for `job` (`mintedBy(job)`), if any.
    async fn minted_edition(&self, job: JobId) -> PortResult<Option<String>> {
        let id = self
            .contract
            .mintedBy(key(job))
            .call()
            .await
            .map_err(|e| PortError::Transient(format!("reading mintedBy(jobId): {e}")))?;
        Ok((!id.is_zero()).then(|| id.to_string()))
    }

    /// The edition created for `job` (`editionOfJob(job)`), minted or not.
    async fn edition_of(&self, job: JobId) -> PortResult<Option<U256>> {
        let id = self
            .contract
            .editionOfJob(key(job))
            .call()
            .await
            .map_err(|e| PortError::Transient(format!("reading editionOfJob(jobId): {e}")))?;
        Ok((!id.is_zero()).then_some(id))
    }

    /// Creates `job`'s edition if need be, then mints its copies to `to`, each step once.
    async fn mint_edition(&self, job: JobId, to: EvmAddress, digest: B256) -> PortResult<MintReceipt> {
        let terms = self.terms;
        if let Some(found) = self.edition_found(job).await? {
            info!(job = %job.short(), edition = found.token_id, "edition already minted on chain; nothing sent");
            return Ok(found);
        }
        let id = match self.edition_of(job).await? {
            Some(id) => id,
            None => self.create_edition(job, digest).await?,
        };
        let c = &self.contract;
        // An edition's metadata is fixed when it is made: one made by an earlier attempt must
        // carry what this job published, or its copies would point at other metadata.
        let made =
            c.editions(id).call().await.map_err(|e| PortError::Transient(format!("reading editions({id}): {e}")))?;
        if made.metadataDigest != digest {
            return Err(PortError::Permanent(format!(
                "edition {id} of job {job} was created with metadata digest {}, but the job published {digest}",
                made.metadataDigest
            )));
        }
        let call = c.mint(key(job), id, to_alloy(to), terms.copies).from(self.tx.from);
        let l2_gas = match call.estimate_gas().await {
            Ok(g) => g,
            Err(e) => {
                if let Some(LatentEditionsErrors::AlreadyMinted(a)) =
                    e.as_decoded_interface_error::<LatentEditionsErrors>()
                {
                    warn!(job = %job.short(), edition = %a.id, "the contract refused a second mint of this job");
                    return self.edition_found(job).await?.ok_or_else(|| {
                        PortError::Transient(format!("job {} is minted, but mintedBy does not say so yet", job.short()))
                    });
                }
                return Err(classify::<LatentEditionsErrors>("edition mint", e));
            }
        };
        match self.tx.send_guarded("edition mint", call, l2_gas, || self.minted_edition(job)).await? {
            Landed::Found(_) => self
                .edition_found(job)
                .await?
                .ok_or_else(|| PortError::Transient(format!("job {}'s edition was minted meanwhile", job.short()))),
            Landed::Mined(receipt, tx_hash) if receipt.status() => {
                info!(job = %job.short(), edition = %id, copies = terms.copies, tx = %tx_hash, "edition minted");
                Ok(MintReceipt { token_id: id.to_string(), tx_hash: Some(tx_hash), found: None })
            }
            Landed::Mined(_, tx_hash) => match self.edition_found(job).await? {
                Some(found) => Ok(found),
                None => Err(PortError::Permanent(format!("edition mint transaction {tx_hash} reverted"))),
            },
        }
    }

    /// `createEdition` for `job`; the edition's id (an earlier attempt's, if it was made meanwhile).
    async fn create_edition(&self, job: JobId, digest: B256) -> PortResult<U256> {
        let terms = self.terms;
        let c = &self.contract;
        let call = c.createEdition(key(job), digest, terms.max_supply).from(self.tx.from);
        let l2_gas = match call.estimate_gas().await {
            Ok(g) => g,
            Err(e) => {
                if let Some(LatentEditionsErrors::EditionExists(x)) =
                    e.as_decoded_interface_error::<LatentEditionsErrors>()
                {
                    return Ok(x.id);
                }
                return Err(classify::<LatentEditionsErrors>("createEdition", e));
            }
        };
        let made = || async { Ok(self.edition_of(job).await?.map(|id| id.to_string())) };
        let found = match self.tx.send_guarded("createEdition", call, l2_gas, made).await? {
            Landed::Found(id) => Some(id),
            Landed::Mined(receipt, tx_hash) => {
                let created = receipt.decoded_log::<LatentEditions::EditionCreated>().map(|l| l.data.id);
                match created {
                    Some(id) if receipt.status() => {
                        info!(job = %job.short(), edition = %id, tx = %tx_hash, "edition created");
                        return Ok(id);
                    }
                    // Reverted: another attempt made it first, or a real failure.
                    _ => made().await?,
                }
            }
        };
        found
            .and_then(|id| id.parse::<U256>().ok())
            .ok_or_else(|| PortError::Permanent(format!("createEdition for job {job} reverted")))
    }
}

#[async_trait]
impl Minter for EditionsMinter {
    async fn fates(&self, jobs: &[JobId]) -> PortResult<Vec<Fate>> {
        // Editions are keyed by the whole job id on chain (`mintedBy`); a position held by
        // another job is told from the events (the contract does not keep positions).
        let ledger = self.ledger().await.map_err(|e| PortError::Transient(e.to_string()))?;
        Ok(jobs.iter().map(|j| ledger.fate(*j)).collect())
    }

    async fn mint(&self, job: JobId, to: EvmAddress, metadata_cid: &str) -> PortResult<MintReceipt> {
        // The edition keeps the metadata CID's 32-byte digest; the contract rebuilds `ipfs://<cid>`.
        let digest = latentmint_core::cid::raw_sha256_digest(metadata_cid).ok_or_else(|| {
            PortError::Permanent(format!(
                "metadata CID {metadata_cid} is not a single raw block (CIDv1, raw, sha2-256)"
            ))
        })?;
        self.mint_edition(job, to, B256::from(digest)).await
    }

    async fn minted_batch(&self, _batch: BatchId) -> PortResult<Option<BatchReceipt>> {
        Err(no_batches())
    }

    async fn mint_batch(&self, _plan: &BatchPlan) -> PortResult<BatchReceipt> {
        Err(no_batches())
    }
}

/// Why an editions contract takes no batch (the collection check refuses the setting first).
fn no_batches() -> PortError {
    PortError::Permanent(
        "ERC-1155 editions are minted one job at a time; batches are for ERC-721 collections (set chain.batch_size = 1)"
            .into(),
    )
}

/// The job id as the contract's 32-byte key (edition per job, mint key).
fn key(job: JobId) -> B256 {
    B256::from(*job.as_bytes())
}
