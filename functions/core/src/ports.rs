//! Ports: the small traits through which stage code reaches the outside world. Adapters
//! implement them (SQLite and files locally; SQS, S3, SageMaker and KMS in AWS; alloy for the
//! chain), so the same stage code runs in Lambda, in the local runner and in tests.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::address::EvmAddress;
use crate::batch::{BatchId, BatchPlan};
use crate::job::{GenerationRecord, Job, JobId, JobState};
pub use crate::job::{GenerationRequest, InitImage};
use crate::ledger::{ChainMint, Fate};

/// An adapter failed. The stage decides from the kind whether to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// The thing asked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Worth retrying later (network, throttling, a busy database).
    #[error("{0} (will retry)")]
    Transient(String),
    /// Retrying will not help (bad input, a revert, a corrupt file).
    #[error("{0}")]
    Permanent(String),
}

/// Shorthand for port results.
pub type PortResult<T> = Result<T, PortError>;

/// One received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Stable message id.
    pub message_id: String,
    /// Handle for this receipt: ack/nack with it (a later receive gets a new one).
    pub receipt: String,
    /// Message body.
    pub body: String,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
}

/// Depths of a queue, for dashboards and for knowing when a batch is done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Ready to be received.
    pub visible: u64,
    /// Received and not yet acknowledged (or delayed).
    pub in_flight: u64,
    /// In the queue's dead-letter queue.
    pub dead: u64,
}

/// The dead-letter queue of `queue` (`<queue>-dlq`): where its messages go once they ran out
/// of receives. Every [`Queue`] receives from and acks on it as on any queue (a resume clears
/// the dead letters whose jobs it sent on).
pub fn dead_letters(queue: &str) -> String {
    format!("{queue}{DEAD_LETTER_SUFFIX}")
}

/// What names a dead-letter queue after its queue.
pub const DEAD_LETTER_SUFFIX: &str = "-dlq";

/// A queue with SQS semantics: at-least-once delivery, visibility timeout, receive count,
/// and a dead-letter queue ([`dead_letters`]) after too many receives.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Appends a message.
    async fn send(&self, queue: &str, body: &str) -> PortResult<()>;
    /// Receives up to `max` messages, hiding them from other consumers for `visibility`.
    async fn receive(&self, queue: &str, max: usize, visibility: Duration) -> PortResult<Vec<Delivery>>;
    /// Deletes a received message: it is done.
    async fn ack(&self, queue: &str, receipt: &str) -> PortResult<()>;
    /// Makes a received message visible again after `delay` (a retry).
    async fn nack(&self, queue: &str, receipt: &str, delay: Duration) -> PortResult<()>;
    /// Current depths.
    async fn stats(&self, queue: &str) -> PortResult<QueueStats>;
    /// The bodies of the messages `queue` holds, waiting or in flight, when the queue can tell
    /// without taking them; `None` when it cannot (SQS shows a message only by receiving it,
    /// which would hide it from its consumer). An operator's resume reads it so as not to send
    /// a job a second message.
    async fn held(&self, _queue: &str) -> PortResult<Option<Vec<String>>> {
        Ok(None)
    }
}

/// Opaque byte storage by key (filesystem locally, S3 in AWS).
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores `bytes` under `key`, replacing what was there.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> PortResult<()>;
    /// Reads `key`.
    async fn get(&self, key: &str) -> PortResult<Vec<u8>>;
}

/// Durable job records with compare-and-swap updates.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Inserts `job` unless a job with its id exists. Returns true if inserted.
    async fn insert_if_absent(&self, job: &Job) -> PortResult<bool>;
    /// Reads a job.
    async fn get(&self, id: JobId) -> PortResult<Option<Job>>;
    /// Writes `job` only if the stored state is still `expected`. Returns false if another
    /// worker got there first (the caller re-reads and treats it as redelivery).
    async fn update(&self, job: &Job, expected: JobState) -> PortResult<bool>;
    /// Jobs, optionally only those in `state`, in intake order.
    async fn list(&self, state: Option<JobState>) -> PortResult<Vec<Job>>;
    /// How many jobs are in each state.
    async fn counts(&self) -> PortResult<BTreeMap<JobState, u64>>;
    /// A number that changes whenever another writer (another process, another connection)
    /// changes the store, where the store can tell cheaply; `None` when it cannot. A dashboard
    /// reads the jobs again only when it changes.
    async fn revision(&self) -> PortResult<Option<u64>> {
        Ok(None)
    }
    /// When each job in `state` was last written (ms since the Unix epoch), where the store
    /// keeps it (empty where it does not): how long a job has waited, how fast jobs settle.
    async fn changed_at(&self, _state: JobState) -> PortResult<BTreeMap<JobId, u64>> {
        Ok(BTreeMap::new())
    }
    /// The states job `id` entered, each with when (ms since the Unix epoch), oldest first,
    /// where the store keeps them (empty where it does not).
    async fn history(&self, _id: JobId) -> PortResult<Vec<(JobState, u64)>> {
        Ok(vec![])
    }
}

/// A generated image.
#[derive(Debug, Clone)]
pub struct GeneratedImage {
    /// PNG bytes.
    pub png: Vec<u8>,
    /// How it was made.
    pub record: GenerationRecord,
}

/// Turns prompts into images (ONNX locally, SageMaker in AWS).
#[async_trait]
pub trait Generator: Send + Sync {
    /// Generates one image.
    async fn generate(&self, req: &GenerationRequest) -> PortResult<GeneratedImage>;
}

/// The automatic checks of one image: statistics, its perceptual hash, and the secondary
/// models a deployment has (the `latentmint-qa` crate). What the checks mean for the job is
/// the review policy's ([`crate::qa::ReviewSection::decide`]).
#[async_trait]
pub trait Inspector: Send + Sync {
    /// Checks `png`, the image made for `job`: a report with one entry per check made under
    /// the job's `[review]` policy, and the image's perceptual hash (which the review stage
    /// compares with the collection's other images).
    async fn inspect(&self, job: &crate::job::JobSpec, png: &[u8]) -> PortResult<crate::qa::QaReport>;
}

/// Reads content by CID (a local store, an IPFS node, an HTTP gateway). What it returns is
/// checked against the CID, so the source need not be trusted.
#[async_trait]
pub trait ContentSource: Send + Sync {
    /// Fetches content by CID.
    async fn fetch(&self, cid: &str) -> PortResult<Vec<u8>>;
    /// Fetches the one block `cid` names, as stored (a directory's node, where `fetch` would
    /// not make sense), checked against the CID.
    async fn fetch_block(&self, cid: &str) -> PortResult<Vec<u8>>;
}

/// Content-addressed storage (a local store, an IPFS node, a pinning service): a content
/// source that also takes content.
#[async_trait]
pub trait Pinner: ContentSource {
    /// Stores and pins `bytes`; returns the CID the store computed (the caller compares it
    /// with its own).
    async fn pin(&self, name: &str, bytes: Vec<u8>) -> PortResult<String>;
    /// Stores and pins a flat directory of `files` (name, bytes) called `name`; returns the
    /// directory's CID as the store computed it.
    async fn pin_directory(&self, name: &str, files: Vec<(String, Vec<u8>)>) -> PortResult<String>;
}

/// A confirmed mint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintReceipt {
    /// Token id (decimal).
    pub token_id: String,
    /// The transaction that minted it: this call's, or for a token found on chain the one
    /// its mint event names (`None` only where the chain could not tell).
    pub tx_hash: Option<String>,
    /// For a token found on chain instead of sent: how it was minted. It may sit in a batch,
    /// or point at other metadata than this call asked for, when another run minted the job.
    pub found: Option<ChainMint>,
}

impl MintReceipt {
    /// True when this call sent the mint (false: the chain had the token already).
    pub fn sent(&self) -> bool {
        self.found.is_none()
    }
}

/// Mints tokens; the contract claims each job's position on every path, so a job is minted
/// at most once however it is grouped.
#[async_trait]
pub trait Minter: Send + Sync {
    /// What the chain says of each job of `jobs`, in order: its token, its position taken by
    /// another job, or nothing (read fresh from the chain).
    async fn fates(&self, jobs: &[JobId]) -> PortResult<Vec<Fate>>;
    /// Mints one token for `job` to `to` whose metadata has CID `metadata_cid`. If the chain
    /// says the job is already minted, returns that token (no second token can exist); if its
    /// position holds another job, a permanent error naming it.
    async fn mint(&self, job: JobId, to: EvmAddress, metadata_cid: &str) -> PortResult<MintReceipt>;
    /// Batch `batch`, if it is minted (read from the chain).
    async fn minted_batch(&self, batch: BatchId) -> PortResult<Option<BatchReceipt>>;
    /// Mints `plan` in one transaction: token `first + i` to its i-th recipient, metadata file
    /// `i` of its directory. If the chain says the batch is minted, returns it; a job of the
    /// plan minted elsewhere makes the contract refuse the whole batch.
    async fn mint_batch(&self, plan: &BatchPlan) -> PortResult<BatchReceipt>;

    /// The token already minted for `job`, if any.
    async fn minted_token(&self, job: JobId) -> PortResult<Option<String>> {
        Ok(match self.fates(&[job]).await?.into_iter().next() {
            Some(Fate::Minted(m)) => Some(m.token_id),
            _ => None,
        })
    }
}

/// A confirmed batch mint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReceipt {
    /// The batch's first token id; job `i` got `first + i`.
    pub first: u64,
    /// The transaction that minted it (this call's, or the one its event names).
    pub tx_hash: Option<String>,
    /// True when this call sent it.
    pub sent: bool,
}

/// Reads and moves a token's metadata pointer: how a living NFT shows its new image.
#[async_trait]
pub trait MetadataUpdater: Send + Sync {
    /// `tokenURI(token_id)`.
    async fn token_uri(&self, token_id: &str) -> PortResult<String>;
    /// Points the token at `uri`, once: nothing is sent when it points there already. The
    /// transaction hash when this call sent one.
    async fn set_token_uri(&self, token_id: &str, uri: &str) -> PortResult<Option<String>>;
}

/// Where each evolution stands, keyed by the event that caused it ([`crate::living::Trigger::key`]),
/// so an event is acted on once however often it is seen.
#[async_trait]
pub trait EvolutionStore: Send + Sync {
    /// The recorded state of the evolution for `key`.
    async fn get(&self, key: &str) -> PortResult<Option<crate::living::EvolutionState>>;
    /// Records the state of the evolution for `key`.
    async fn put(&self, key: &str, state: &crate::living::EvolutionState) -> PortResult<()>;
    /// The next block to scan for the watch `name` (a chain and contract), if recorded.
    async fn cursor(&self, name: &str) -> PortResult<Option<u64>>;
    /// Records that every block before `next` is done for `name`.
    async fn set_cursor(&self, name: &str, next: u64) -> PortResult<()>;
}

/// Reads a collection contract's transfers, in chain order.
#[async_trait]
pub trait TransferSource: Send + Sync {
    /// The latest block number.
    async fn head(&self) -> PortResult<u64>;
    /// Transfers between wallets in blocks `from..=to`, in chain order.
    async fn transfers(&self, from: u64, to: u64) -> PortResult<Vec<crate::living::Transfer>>;
    /// Mints (transfers from the zero address) in blocks `from..=to`, in chain order: the
    /// tokens an oracle's answer evolves.
    async fn mints(&self, from: u64, to: u64) -> PortResult<Vec<crate::living::Transfer>>;
}

/// Reads a Chainlink-style price feed (AggregatorV3): what `[living.oracle]` evolves on.
#[async_trait]
pub trait OracleSource: Send + Sync {
    /// The feed's address (EIP-55), for the record.
    fn address(&self) -> String;
    /// The feed's decimals.
    async fn decimals(&self) -> PortResult<u8>;
    /// Its `AnswerUpdated` events in blocks `from..=to`, in chain order.
    async fn answers(&self, from: u64, to: u64) -> PortResult<Vec<crate::living::Answer>>;
}

/// Signs provenance records as the publisher (the minting wallet: a local key, or KMS).
#[async_trait]
pub trait ProvenanceSigner: Send + Sync {
    /// The signature over `p` (its `signature` field is not part of what is signed).
    async fn sign(&self, p: &crate::metadata::Provenance) -> PortResult<crate::metadata::ProvenanceSignature>;
}
