//! Jobs and their state machine.
//!
//! ```text
//! Queued ──claim──> Generating ──generate──> Generated ──review──> Approved ──publish──> Published ──mint──> Minted
//!                                                         │  └──> AwaitingReview ──operator──> Approved | Rejected
//!                                                         └─────> Rejected          Published ──claim──> Minting ──mint──> Minted
//! any non-final state ──(permanent error)──> Failed
//! ```
//! Every transition is checked here; stores only persist what these methods allow, with a
//! compare-and-swap on the previous state so two workers cannot both advance one job.

use serde::{Deserialize, Serialize};

use crate::address::EvmAddress;
use crate::batch::BatchSlot;
pub use crate::generation::{GUIDANCE_RANGE, GenerationParams, LORA_SCALE_RANGE, MAX_IMAGE_SIDE, seed_from_digest};
pub use crate::id::{JobId, Position};
pub use crate::pipeline::JobState;
use crate::qa::{QaReport, ReviewSection};

/// What a generator is asked to make.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationRequest {
    /// The job (for logs and provenance).
    pub job_id: JobId,
    /// Prompt.
    pub prompt: String,
    /// Negative prompt.
    pub negative_prompt: String,
    /// Parameters.
    pub params: GenerationParams,
    /// Start from this image instead of pure noise (img2img): how a living NFT evolves.
    pub init_image: Option<InitImage>,
}

/// An image to start from, and how far to move away from it.
#[derive(Debug, Clone, PartialEq)]
pub struct InitImage {
    /// PNG bytes, the request's width x height.
    pub png: Vec<u8>,
    /// 0 keeps the image, 1 ignores it; `round_down(steps * strength)` steps run.
    pub strength: f32,
}

/// What to make: fixed at intake, never changed afterwards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Stable id.
    pub id: JobId,
    /// Collection name.
    pub collection: String,
    /// Position of the prompt in the collection file.
    pub index: u32,
    /// Which copy of that prompt.
    pub copy: u32,
    /// The template as written.
    pub template: String,
    /// The composed prompt (template filled, style appended).
    pub prompt: String,
    /// Negative prompt.
    pub negative_prompt: String,
    /// Chosen trait values, in template order.
    pub traits: Vec<(String, String)>,
    /// Generation parameters.
    pub params: GenerationParams,
    /// Who receives the token.
    pub recipient: EvmAddress,
    /// Description written into the token metadata.
    #[serde(default)]
    pub description: String,
    /// QA thresholds of the collection.
    #[serde(default)]
    pub review: ReviewSection,
    /// For a job from an outside request (a shop's order): the caller's id for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}

/// How an image was made: everything needed to reproduce it and to prove where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationRecord {
    /// Model identifier (the `_name_or_path` of the export, or the folder name).
    pub model_id: String,
    /// SHA-256 over the model's files (see `model_files`), hex.
    pub model_sha256: String,
    /// SHA-256 of each model file, keyed by its path inside the model folder.
    pub model_files: std::collections::BTreeMap<String, String>,
    /// Parameters actually used.
    pub params: GenerationParams,
    /// True when the prompt was longer than the text encoder's window and was cut.
    pub prompt_truncated: bool,
    /// Generator program name.
    pub generator: String,
    /// Generator program version.
    pub generator_version: String,
    /// Which path produced the image (e.g. `onnx-cpu`, `sagemaker:<endpoint>`).
    pub backend: String,
    /// Why the fallback generator made it instead of the endpoint, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// LoRA adapters merged into the model, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adapters: Vec<AdapterRecord>,
    /// Wall time of the generation.
    pub elapsed_ms: u64,
    /// SHA-256 of the PNG bytes, hex.
    pub image_sha256: String,
}

impl GenerationRecord {
    /// A record with made-up values and `seed`, for tests of code that reads one.
    #[doc(hidden)]
    pub fn for_tests(seed: u64) -> Self {
        Self {
            model_id: "tiny".into(),
            model_sha256: "cd".repeat(32),
            model_files: Default::default(),
            params: GenerationParams { steps: 4, guidance: 7.5, width: 32, height: 32, scheduler: "ddim".into(), seed },
            prompt_truncated: false,
            generator: "latentmint-diffusion".into(),
            generator_version: "0.1.0".into(),
            backend: "onnx-cpu".into(),
            fallback_reason: None,
            adapters: vec![],
            elapsed_ms: 1,
            image_sha256: "ef".repeat(32),
        }
    }
}

/// A LoRA adapter that shaped an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterRecord {
    /// File name.
    pub name: String,
    /// SHA-256 of the adapter file.
    pub sha256: String,
    /// Strength it was merged with.
    pub scale: f32,
}

/// A job with everything the pipeline learned about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// What to make.
    pub spec: JobSpec,
    /// Where it is.
    pub state: JobState,
    /// Blob store key of the PNG.
    pub image_key: Option<String>,
    /// How the image was made.
    pub generation: Option<GenerationRecord>,
    /// Automatic QA result.
    pub qa: Option<QaReport>,
    /// Who decided the review outcome (`auto` or an operator name).
    pub reviewed_by: Option<String>,
    /// CID of the image.
    pub image_cid: Option<String>,
    /// CID of the metadata JSON.
    pub metadata_cid: Option<String>,
    /// Who generates it, until when (while `generating`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<GenerationLease>,
    /// Its place in a batch, while and after it is minted with others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchSlot>,
    /// Token id (decimal; uint256 on chain).
    pub token_id: Option<String>,
    /// Transaction that minted it.
    pub tx_hash: Option<String>,
    /// Why it failed or was rejected.
    pub error: Option<String>,
    /// Set when the record was adopted from the chain and the token's content could not be
    /// read back (it was lost with an earlier data folder): why. The token exists; this record
    /// cannot show or check its bytes, and a later reconciliation tries again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_missing: Option<String>,
}

/// What the chain (and the content its token points to) says of a minted job that a record
/// did not know: see [`Job::adopt_chain_mint`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Adoption {
    /// The job's token.
    pub token_id: String,
    /// The transaction that minted it (from the mint event).
    pub tx_hash: Option<String>,
    /// Its place in a batch, when minted in one.
    pub batch: Option<BatchSlot>,
    /// The metadata the token points at, when it could be told (always for a token minted
    /// alone, whose id is the metadata's digest; from the directory block for a batch).
    pub metadata_cid: Option<String>,
    /// The image that metadata names, when the metadata could be read.
    pub image_cid: Option<String>,
    /// Where the image's bytes were put in the blob store, when they could be read.
    pub image_key: Option<String>,
    /// The metadata's generation record, when it could be read.
    pub generation: Option<GenerationRecord>,
    /// What of the token's content could not be read back, and why.
    pub missing: Option<String>,
}

/// The claim of one queue message on generating a job. Generation is the costly stage (a GPU
/// or minutes of CPU), and queues deliver at least once: a job's message may be resent (an
/// operator's resume, a collection submitted again on a schedule) while it is being generated.
/// The message that claims the job generates it; another message finds it claimed and leaves
/// it, since the holder's own message is redelivered if the holder dies. The claim lapses at
/// `until_ms`, for a message that is gone for good (dead-lettered, then resumed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationLease {
    /// The queue's id of the message that holds it (stable across its redeliveries).
    pub message_id: String,
    /// Unix time in milliseconds after which another message may take the job over.
    pub until_ms: u64,
}

/// Why a message may not generate a job now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// Another message holds the job's lease.
    #[error("job {job} is being generated (message {holder}, until {until_ms} ms)")]
    Held {
        /// The job.
        job: String,
        /// The message that holds it.
        holder: String,
        /// When its lease lapses.
        until_ms: u64,
    },
    /// The job is past generation, or failed.
    #[error(transparent)]
    Transition(#[from] TransitionError),
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job {job}: cannot go from {from} to {to}")]
pub struct TransitionError {
    /// The job.
    pub job: String,
    /// Its current state.
    pub from: JobState,
    /// The refused target.
    pub to: JobState,
}

impl Job {
    /// A freshly accepted job.
    pub fn new(spec: JobSpec) -> Self {
        Self {
            spec,
            state: JobState::Queued,
            image_key: None,
            generation: None,
            qa: None,
            reviewed_by: None,
            image_cid: None,
            metadata_cid: None,
            lease: None,
            batch: None,
            token_id: None,
            tx_hash: None,
            error: None,
            content_missing: None,
        }
    }

    /// The id.
    pub fn id(&self) -> JobId {
        self.spec.id
    }

    fn advance(&mut self, allowed_from: &[JobState], to: JobState) -> Result<(), TransitionError> {
        if !allowed_from.contains(&self.state) {
            return Err(TransitionError { job: self.spec.id.short(), from: self.state, to });
        }
        self.state = to;
        Ok(())
    }

    /// Message `message_id` claims the job for generation until `now_ms + lease_ms`: from
    /// `queued`, from a lapsed lease, or again from its own lease (its redelivery after a
    /// crash or a retry). Returns the state the claim replaces, for the store's
    /// compare-and-swap.
    pub fn claim_generation(&mut self, message_id: &str, now_ms: u64, lease_ms: u64) -> Result<JobState, ClaimError> {
        let from = self.state;
        if let (JobState::Generating, Some(l)) = (from, &self.lease)
            && l.message_id != message_id
            && now_ms < l.until_ms
        {
            return Err(ClaimError::Held {
                job: self.spec.id.short(),
                holder: l.message_id.clone(),
                until_ms: l.until_ms,
            });
        }
        self.advance(&[JobState::Queued, JobState::Generating], JobState::Generating)?;
        self.lease = Some(GenerationLease { message_id: message_id.to_string(), until_ms: now_ms + lease_ms });
        Ok(from)
    }

    /// A generation that will be tried again lets the job go, so that whichever message
    /// comes first may claim it.
    pub fn release_generation(&mut self) -> Result<(), TransitionError> {
        self.advance(&[JobState::Generating], JobState::Queued)?;
        self.lease = None;
        Ok(())
    }

    /// Generation finished.
    pub fn record_generation(&mut self, image_key: String, record: GenerationRecord) -> Result<(), TransitionError> {
        self.advance(&[JobState::Queued, JobState::Generating], JobState::Generated)?;
        self.lease = None;
        self.image_key = Some(image_key);
        self.generation = Some(record);
        Ok(())
    }

    /// Automatic QA outcome.
    pub fn record_qa(&mut self, report: QaReport, to: JobState) -> Result<(), TransitionError> {
        if !matches!(to, JobState::Approved | JobState::Rejected | JobState::AwaitingReview) {
            return Err(TransitionError { job: self.spec.id.short(), from: self.state, to });
        }
        self.advance(&[JobState::Generated], to)?;
        if to == JobState::Rejected {
            self.error = Some(format!("rejected by automatic QA: {}", report.summary()));
        }
        if to != JobState::AwaitingReview {
            self.reviewed_by = Some("auto".into());
        }
        self.qa = Some(report);
        Ok(())
    }

    /// An operator's decision on a job waiting in the staging queue.
    pub fn record_operator_decision(&mut self, approve: bool, operator: &str) -> Result<(), TransitionError> {
        let to = if approve { JobState::Approved } else { JobState::Rejected };
        self.advance(&[JobState::AwaitingReview], to)?;
        self.reviewed_by = Some(operator.to_string());
        if !approve {
            self.error = Some(format!("rejected by {operator}"));
        }
        Ok(())
    }

    /// Metadata pinned.
    pub fn record_publication(&mut self, image_cid: String, metadata_cid: String) -> Result<(), TransitionError> {
        self.advance(&[JobState::Approved], JobState::Published)?;
        self.image_cid = Some(image_cid);
        self.metadata_cid = Some(metadata_cid);
        Ok(())
    }

    /// Claimed for a batch: from here it is minted only with that batch.
    pub fn claim_for_batch(&mut self, slot: BatchSlot) -> Result<(), TransitionError> {
        self.advance(&[JobState::Published], JobState::Minting)?;
        self.batch = Some(slot);
        Ok(())
    }

    /// A batch that was never sent lets its job go, to be planned again.
    pub fn release_batch(&mut self) -> Result<(), TransitionError> {
        self.advance(&[JobState::Minting], JobState::Published)?;
        self.batch = None;
        Ok(())
    }

    /// Token minted (alone, or with its batch).
    pub fn record_mint(&mut self, token_id: String, tx_hash: Option<String>) -> Result<(), TransitionError> {
        self.advance(&[JobState::Published, JobState::Minting], JobState::Minted)?;
        self.token_id = Some(token_id);
        self.tx_hash = tx_hash;
        Ok(())
    }

    /// The chain says this job is minted, and this record does not (a lost or restored job
    /// store, a data folder moved, a crash between the send and the write): the record takes
    /// the chain's word, from whatever state it was in, since no local decision outranks a
    /// token. Where the token points at other content than the record holds (a job
    /// regenerated after its record was lost gets new bytes), the record takes the token's
    /// CIDs and what could be recovered of its content, and drops its own.
    pub fn adopt_chain_mint(&mut self, a: Adoption) {
        self.state = JobState::Minted;
        self.token_id = Some(a.token_id);
        if a.tx_hash.is_some() {
            self.tx_hash = a.tx_hash;
        }
        self.batch = a.batch;
        self.lease = None;
        self.error = None;
        // Who let it through: the chain, for a record that never saw its review.
        if self.reviewed_by.is_none() {
            self.reviewed_by = Some("chain".into());
        }
        self.content_missing = a.missing;
        match a.metadata_cid {
            // The record's own content; what was read back fills what it lacked.
            Some(cid) if self.metadata_cid.as_deref() == Some(cid.as_str()) => {
                if a.image_key.is_some() {
                    self.image_cid = a.image_cid;
                    self.image_key = a.image_key;
                }
                if a.generation.is_some() {
                    self.generation = a.generation;
                }
            }
            // Other content than the record holds (a job regenerated after its record was
            // lost), or none known: the record names only what the token points at.
            other => {
                self.metadata_cid = other;
                self.image_cid = a.image_cid;
                self.image_key = a.image_key;
                self.generation = a.generation;
            }
        }
    }

    /// The chain no longer knows this job's token (a local dev chain was reset or its
    /// state file lost): back to `Published`, so the mint stage mints it on the chain as it
    /// is now. Only the local runner's reconciliation calls this, after reading the chain.
    pub fn record_token_lost(&mut self) -> Result<(), TransitionError> {
        self.advance(&[JobState::Minted], JobState::Published)?;
        self.batch = None;
        self.token_id = None;
        self.tx_hash = None;
        Ok(())
    }

    /// An operator sends a failed job back to where it stopped, once the cause is fixed (a
    /// model file restored, a pinning service replaced, a contract setting corrected): to the
    /// state its recorded progress shows, so the stage that failed it runs again. `published`
    /// when its metadata is pinned, `approved` when it was approved, `generated` when it has an
    /// image, else `queued`. Safe for exactly-once: a job is never failed after its mint, a
    /// mint reads the chain before it sends, and the contract refuses a job twice.
    pub fn record_retry(&mut self) -> Result<JobState, TransitionError> {
        let to = if self.metadata_cid.is_some() {
            JobState::Published
        } else if self.reviewed_by.is_some() {
            JobState::Approved
        } else if self.image_key.is_some() {
            JobState::Generated
        } else {
            JobState::Queued
        };
        self.advance(&[JobState::Failed], to)?;
        // A batch that failed was never minted: the job is planned afresh.
        self.batch = None;
        self.lease = None;
        self.error = None;
        Ok(to)
    }

    /// A permanent failure. A minted job can never be marked failed.
    pub fn record_failure(&mut self, reason: String) -> Result<(), TransitionError> {
        self.advance(
            &[
                JobState::Queued,
                JobState::Generating,
                JobState::Generated,
                JobState::Approved,
                JobState::Published,
                JobState::Minting,
            ],
            JobState::Failed,
        )?;
        self.error = Some(reason);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qa::QaReport;

    pub(crate) fn spec() -> JobSpec {
        let params =
            GenerationParams { steps: 4, guidance: 7.5, width: 64, height: 64, scheduler: "ddim".into(), seed: 1 };
        JobSpec {
            id: JobId::derive("c", "C", 0, 0, 0, "p", &params),
            collection: "c".into(),
            index: 0,
            copy: 0,
            template: "p".into(),
            prompt: "p".into(),
            negative_prompt: String::new(),
            traits: vec![],
            params,
            recipient: EvmAddress::from_bytes([1; 20]),
            description: String::new(),
            review: ReviewSection::default(),
            request: None,
        }
    }

    fn record() -> GenerationRecord {
        GenerationRecord {
            model_id: "m".into(),
            model_sha256: "00".into(),
            model_files: Default::default(),
            params: spec().params,
            prompt_truncated: false,
            generator: "g".into(),
            generator_version: "0".into(),
            backend: "onnx-cpu".into(),
            fallback_reason: None,
            adapters: vec![],
            elapsed_ms: 1,
            image_sha256: "00".into(),
        }
    }

    #[test]
    fn a_failed_job_is_retried_from_where_it_stopped() {
        let mut j = Job::new(spec());
        j.record_failure("the model file is missing".into()).unwrap();
        assert_eq!(j.record_retry(), Ok(JobState::Queued));
        assert_eq!(j.error, None);
        j.record_generation("k".into(), record()).unwrap();
        j.record_qa(QaReport::for_tests(0.9), JobState::Approved).unwrap();
        j.record_failure("the pinning service refused".into()).unwrap();
        assert_eq!(j.record_retry(), Ok(JobState::Approved));
        j.record_publication("bafyimage".into(), "bafymeta".into()).unwrap();
        j.record_failure("the contract refused the mint".into()).unwrap();
        assert_eq!(j.record_retry(), Ok(JobState::Published));
        // Only failed jobs: a minted (or rejected) one stays as it is.
        j.record_mint("1".into(), None).unwrap();
        assert!(j.record_retry().is_err());
        assert_eq!(j.state, JobState::Minted);
    }

    #[test]
    fn a_generation_lease_belongs_to_one_message_until_it_lapses() {
        let mut j = Job::new(spec());
        assert_eq!(j.claim_generation("m1", 1_000, 500), Ok(JobState::Queued));
        // Another message (a resend) leaves it while the lease holds.
        let held = j.claim_generation("m2", 1_499, 500).unwrap_err();
        assert!(matches!(&held, ClaimError::Held { holder, until_ms: 1_500, .. } if holder == "m1"), "{held:?}");
        // The holder's own redelivery takes it again, with a new lease.
        assert_eq!(j.claim_generation("m1", 1_200, 500), Ok(JobState::Generating));
        assert_eq!(j.lease.as_ref().map(|l| l.until_ms), Some(1_700));
        // Once it lapses, any message may take it over.
        assert_eq!(j.claim_generation("m2", 1_700, 500), Ok(JobState::Generating));
        assert_eq!(j.lease.as_ref().map(|l| l.message_id.as_str()), Some("m2"));
        j.release_generation().unwrap();
        assert_eq!((j.state, &j.lease), (JobState::Queued, &None));
        j.claim_generation("m3", 2_000, 500).unwrap();
        j.record_generation("k".into(), record()).unwrap();
        assert_eq!((j.state, &j.lease), (JobState::Generated, &None));
        assert!(matches!(j.claim_generation("m4", 9_000, 500), Err(ClaimError::Transition(_))), "past generation");
        // A failed generation is failed from its lease, and retried from queued.
        let mut f = Job::new(spec());
        f.claim_generation("m1", 0, 10).unwrap();
        f.record_failure("the model file is missing".into()).unwrap();
        assert_eq!(f.record_retry(), Ok(JobState::Queued));
        assert_eq!(f.lease, None);
    }

    #[test]
    fn a_batch_claim_is_taken_only_from_published_and_released_only_unminted() {
        let mut j = Job::new(spec());
        let slot = BatchSlot { batch: crate::batch::BatchId::of(&[j.id()]), index: 0 };
        assert!(j.claim_for_batch(slot).is_err(), "only a published job is claimed");
        j.record_generation("k".into(), record()).unwrap();
        j.record_qa(QaReport::for_tests(0.9), JobState::Approved).unwrap();
        j.record_publication("a".into(), "b".into()).unwrap();
        j.claim_for_batch(slot).unwrap();
        assert!(j.claim_for_batch(slot).is_err(), "never claimed twice");
        j.release_batch().unwrap();
        assert_eq!((j.state, j.batch), (JobState::Published, None));
        j.claim_for_batch(slot).unwrap();
        j.record_mint("7".into(), Some("0xabc".into())).unwrap();
        assert!(j.release_batch().is_err(), "a minted job stays minted");
        assert_eq!(j.batch, Some(slot), "the slot stays on the minted job");
        let back: Job = serde_json::from_str(&serde_json::to_string(&j).unwrap()).unwrap();
        assert_eq!(back, j);
    }

    #[test]
    fn happy_path() {
        let mut j = Job::new(spec());
        j.record_generation("k".into(), record()).unwrap();
        j.record_qa(QaReport::for_tests(0.9), JobState::Approved).unwrap();
        j.record_publication("a".into(), "b".into()).unwrap();
        j.record_mint("1".into(), None).unwrap();
        assert_eq!(j.state, JobState::Minted);
        assert!(j.record_failure("x".into()).is_err(), "a minted job never becomes failed");
    }

    #[test]
    fn rejected_job_cannot_be_published_or_minted() {
        let mut j = Job::new(spec());
        j.record_generation("k".into(), record()).unwrap();
        j.record_qa(QaReport::for_tests(0.0), JobState::Rejected).unwrap();
        assert!(j.record_publication("a".into(), "b".into()).is_err());
        assert!(j.record_mint("1".into(), None).is_err());
    }

    #[test]
    fn operator_decides_only_waiting_jobs() {
        let mut j = Job::new(spec());
        assert!(j.record_operator_decision(true, "op").is_err());
        j.record_generation("k".into(), record()).unwrap();
        j.record_qa(QaReport::for_tests(0.3), JobState::AwaitingReview).unwrap();
        j.record_operator_decision(true, "op").unwrap();
        assert_eq!(j.state, JobState::Approved);
        assert_eq!(j.reviewed_by.as_deref(), Some("op"));
    }

    #[test]
    fn job_id_round_trips_and_depends_on_content() {
        let s = spec();
        let id: JobId = s.id.to_string().parse().unwrap();
        assert_eq!(id, s.id);
        let mut p = s.params.clone();
        p.seed = 2;
        assert_ne!(JobId::derive("c", "C", 0, 0, 0, "p", &p), s.id);
    }

    #[test]
    fn the_low_eight_bytes_are_the_position() {
        let s = spec();
        let a = JobId::derive("c", "C", 7, 0, 0, "p", &s.params);
        assert_eq!(a.position(), Position::in_file("c", "C", 7));
        assert_eq!(a.position().index(), 7);
        assert_eq!(&a.as_bytes()[28..], &7u32.to_be_bytes());
        assert!(!a.position().is_request());
        // Another collection's jobs sit elsewhere, so collections can share a contract.
        assert_ne!(JobId::derive("d", "C", 7, 0, 0, "p", &s.params).position(), a.position());
        assert_eq!(JobId::derive("c", "C", 8, 0, 0, "p", &s.params).position().0, a.position().0 + 1, "dense");
        assert_ne!(JobId::derive("c", "C", 8, 0, 0, "p", &s.params), a, "another place, another job");
        // An order: the upper half, the same for a retried webhook, another for another order.
        let o = JobId::derive_request("c", "C", "order-1", "p", &s.params);
        assert!(o.position().is_request(), "{}", o.position());
        assert_eq!(JobId::derive_request("c", "C", "order-1", "p", &s.params), o);
        let other = JobId::derive_request("c", "C", "order-2", "p", &s.params).position();
        assert!(other.is_request() && other != o.position());
        // The position depends on the order alone: the same order with another prompt (a
        // style changed since) takes the same place, so it cannot be minted a second time.
        assert_eq!(JobId::derive_request("c", "C", "order-1", "q", &s.params).position(), o.position());
    }

    #[test]
    fn has_passed_orders_the_happy_path() {
        assert!(JobState::Minted.has_passed(JobState::Published));
        assert!(JobState::Published.has_passed(JobState::Generated));
        assert!(!JobState::Rejected.has_passed(JobState::Generated));
        assert!(!JobState::Queued.has_passed(JobState::Queued));
    }

    #[test]
    fn a_rejection_says_who_rejected_and_an_approval_carries_no_error() {
        let generated = || {
            let mut j = Job::new(spec());
            j.record_generation("k".into(), record()).unwrap();
            j
        };
        let mut auto = generated();
        auto.record_qa(QaReport::for_tests(0.0), JobState::Rejected).unwrap();
        assert!(auto.error.as_deref().is_some_and(|e| e.starts_with("rejected by automatic QA")), "{:?}", auto.error);
        let mut ok = generated();
        ok.record_qa(QaReport::for_tests(0.9), JobState::Approved).unwrap();
        assert_eq!((ok.error, ok.reviewed_by.as_deref()), (None, Some("auto")));
        let mut asked = generated();
        asked.record_qa(QaReport::for_tests(0.3), JobState::AwaitingReview).unwrap();
        assert_eq!(asked.reviewed_by, None);
        let mut yes = asked.clone();
        yes.record_operator_decision(true, "ana").unwrap();
        assert_eq!((yes.state, yes.error, yes.reviewed_by.as_deref()), (JobState::Approved, None, Some("ana")));
        asked.record_operator_decision(false, "ana").unwrap();
        assert_eq!((asked.state, asked.error.as_deref()), (JobState::Rejected, Some("rejected by ana")));
    }

    #[test]
    fn an_adopted_mint_takes_the_chains_token_and_content() {
        let published = || {
            let mut j = Job::new(spec());
            j.record_generation("k".into(), record()).unwrap();
            j.record_qa(QaReport::for_tests(0.9), JobState::Approved).unwrap();
            j.record_publication("bafyimage".into(), "bafymeta".into()).unwrap();
            j
        };
        let adoption = |metadata: &str| Adoption {
            token_id: "42".into(),
            tx_hash: Some("0xabc".into()),
            batch: None,
            metadata_cid: Some(metadata.into()),
            image_cid: None,
            image_key: None,
            generation: None,
            missing: Some("the image could not be read".into()),
        };
        // Its own content: what the record holds stays, the token is the chain's.
        let mut same = published();
        same.adopt_chain_mint(adoption("bafymeta"));
        assert_eq!(
            (same.state, same.token_id.as_deref(), same.tx_hash.as_deref()),
            (JobState::Minted, Some("42"), Some("0xabc"))
        );
        assert_eq!((same.image_cid.as_deref(), same.image_key.as_deref()), (Some("bafyimage"), Some("k")));
        assert!(same.generation.is_some());
        assert_eq!(same.content_missing.as_deref(), Some("the image could not be read"));
        // Other content: the record names only what the token points at.
        let mut other = published();
        other.adopt_chain_mint(adoption("bafyother"));
        assert_eq!(other.metadata_cid.as_deref(), Some("bafyother"));
        assert_eq!((&other.image_cid, &other.image_key, &other.generation), (&None, &None, &None));
        // A token the chain forgot: back to published, nothing of it kept.
        other.record_token_lost().unwrap();
        assert_eq!((other.state, &other.token_id, &other.tx_hash), (JobState::Published, &None, &None));
        assert!(other.record_token_lost().is_err(), "only a minted job loses its token");
    }

    #[test]
    fn positions_keep_files_and_requests_apart() {
        for (i, name) in ["a", "Neon Shapes", "🦀", "x".repeat(64).as_str()].into_iter().enumerate() {
            let p = Position::in_file(name, "SYM", i as u32 * 1000);
            assert!(!p.is_request(), "{name}: {p:?}");
            assert_eq!(p.index(), i as u32 * 1000);
            let id = JobId::derive_request(name, "SYM", "order-1", "p", &spec().params);
            assert!(id.position().is_request(), "{name}");
        }
        let id = JobId::derive("c", "C", 7, 0, 0, "p", &spec().params);
        assert_eq!(id.position(), Position::in_file("c", "C", 7));
    }
}
