//! Batches: published jobs minted together in one transaction (`mintBatch` to one recipient,
//! `mintBatchTo` to several). Token *i* of a batch is its *i*-th job, and its metadata is file
//! `i` of one UnixFS directory, whose CID the contract stores once for the whole batch.
//!
//! Exactly-once across retries rests on the plan being fixed before anything is sent:
//! 1. the plan (jobs in order, recipients, metadata CIDs, directory CID) is stored;
//! 2. each job is claimed for it (`Published` → `Minting`, a compare-and-swap on the state);
//! 3. only when every job of the plan is claimed by it does the transaction go out, under the
//!    batch id (a hash of its job ids), which the contract refuses twice.
//!
//! A retry after a crash finds the claim on its job, reads the same plan and sends (or finds
//! on chain) the same batch. A job is never in two batches: a claim is only taken from
//! `Published`, and a plan whose jobs could not all be claimed is never sent (its claims are
//! released).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;

use crate::address::EvmAddress;
use crate::cid::{cid_of_bytes, directory_cid};
use crate::id::JobId;

/// The most jobs one batch may hold: a batch of 100 distinct recipients costs about 5.5M gas,
/// well inside an L2 block, and a plan is read whole by every retry.
pub const MAX_BATCH: usize = 100;

crate::hex_id::hex_id!(
    /// A batch's id: its idempotency key on chain (`bytes32 batchId`).
    BatchId,
    "batch id"
);

impl BatchId {
    /// The id of a batch of `jobs`, in order. A different hash domain than job ids, so a batch
    /// id never collides with a job id on the contract's key space.
    pub fn of(jobs: &[JobId]) -> Self {
        let mut h = Sha256::new();
        h.update(b"latentmint/batch/v1\0");
        for j in jobs {
            h.update(j.as_bytes());
        }
        Self(h.finalize().into())
    }
}

/// A job's place in a batch, recorded on the job when it is claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchSlot {
    /// The batch.
    pub batch: BatchId,
    /// The job's position: its token is the batch's first token plus this.
    pub index: u32,
}

/// One job as a batch member: who gets its token and its published metadata.
#[derive(Debug, Clone)]
pub struct Member {
    /// The job.
    pub job: JobId,
    /// Who receives its token.
    pub recipient: EvmAddress,
    /// Its metadata's CID, as recorded when it was published.
    pub metadata_cid: String,
    /// Its metadata bytes (checked against the CID).
    pub metadata: Vec<u8>,
}

/// The fixed composition of one batch, stored before its jobs are claimed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchPlan {
    /// Its id (a hash of `jobs`).
    pub id: BatchId,
    /// Its jobs, in token order.
    pub jobs: Vec<JobId>,
    /// Each job's recipient, in the same order.
    pub recipients: Vec<EvmAddress>,
    /// Each job's metadata CID, in the same order: file `i` of the directory.
    pub metadata_cids: Vec<String>,
    /// The directory holding every job's metadata as file `0`, `1`, ...
    pub directory_cid: String,
}

/// A batch that cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// No members, or more than [`MAX_BATCH`].
    #[error("a batch holds 1 to {MAX_BATCH} jobs, not {0}")]
    Size(usize),
    /// A job appears twice.
    #[error("job {0} appears twice in one batch")]
    Duplicate(String),
    /// Metadata bytes that are not what the job published.
    #[error("job {job}: its metadata bytes hash to {got}, but it published {want}")]
    Metadata {
        /// The job.
        job: String,
        /// The CID recorded on the job.
        want: String,
        /// The CID of the bytes given.
        got: String,
    },
}

impl BatchPlan {
    /// Plans a batch of `members` in the order given: file `i` of its directory is member
    /// `i`'s metadata.
    pub fn new(members: Vec<Member>) -> Result<Self, BatchError> {
        if members.is_empty() || members.len() > MAX_BATCH {
            return Err(BatchError::Size(members.len()));
        }
        let mut seen = HashSet::new();
        for m in &members {
            if !seen.insert(m.job) {
                return Err(BatchError::Duplicate(m.job.to_string()));
            }
            let got = cid_of_bytes(&m.metadata);
            if got != m.metadata_cid {
                return Err(BatchError::Metadata { job: m.job.to_string(), want: m.metadata_cid.clone(), got });
            }
        }
        let files: Vec<(String, &[u8])> =
            members.iter().enumerate().map(|(i, m)| (i.to_string(), m.metadata.as_slice())).collect();
        // Names are "0", "1", ...: never empty, never duplicated.
        let directory_cid = directory_cid(&files).map_err(|_| BatchError::Size(members.len()))?;
        let jobs: Vec<JobId> = members.iter().map(|m| m.job).collect();
        Ok(Self {
            id: BatchId::of(&jobs),
            jobs,
            recipients: members.iter().map(|m| m.recipient).collect(),
            metadata_cids: members.into_iter().map(|m| m.metadata_cid).collect(),
            directory_cid,
        })
    }

    /// The job's slot in this batch, if it is a member.
    pub fn slot(&self, job: JobId) -> Option<BatchSlot> {
        let index = self.jobs.iter().position(|j| *j == job)?;
        Some(BatchSlot { batch: self.id, index: u32::try_from(index).ok()? })
    }

    /// The one recipient of every token, when they all go to one wallet (then `mintBatch`,
    /// one ownership write for the whole batch).
    pub fn single_recipient(&self) -> Option<EvmAddress> {
        let first = *self.recipients.first()?;
        self.recipients.iter().all(|r| *r == first).then_some(first)
    }

    /// The blob store key the plan is kept under.
    pub fn key(id: BatchId) -> String {
        format!("batches/{id}.json")
    }
}

/// The tokens of a minted batch: `first`, `first + 1`, ... in job order (decimal strings,
/// as token ids are stored). `first` is a sequential id far below 2^64.
pub fn token_ids(first: u64, count: usize) -> Vec<String> {
    (0..count as u64).map(|i| (first + i).to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::{directory_block, directory_links};

    fn member(n: u8, to: u8) -> Member {
        let metadata = format!("{{\"name\":\"#{n}\"}}").into_bytes();
        Member {
            job: JobId::from_bytes([n; 32]),
            recipient: EvmAddress::from_bytes([to; 20]),
            metadata_cid: cid_of_bytes(&metadata),
            metadata,
        }
    }

    #[test]
    fn a_plan_puts_job_i_at_file_i_and_its_id_depends_on_the_jobs_and_their_order() {
        let members = vec![member(1, 9), member(2, 9), member(3, 8)];
        let files: Vec<(String, Vec<u8>)> =
            members.iter().enumerate().map(|(i, m)| (i.to_string(), m.metadata.clone())).collect();
        let plan = BatchPlan::new(members).unwrap();
        assert_eq!(plan.slot(JobId::from_bytes([3; 32])), Some(BatchSlot { batch: plan.id, index: 2 }));
        assert_eq!(plan.slot(JobId::from_bytes([4; 32])), None);
        assert_eq!(plan.single_recipient(), None);
        let (_, block) = directory_block(&files).unwrap();
        let links = directory_links(&plan.directory_cid, &block).unwrap();
        for (i, cid) in plan.metadata_cids.iter().enumerate() {
            assert!(links.contains(&(i.to_string(), cid.clone())), "file {i} is job {i}'s metadata");
        }
        let swapped = BatchPlan::new(vec![member(2, 9), member(1, 9), member(3, 8)]).unwrap();
        assert_ne!(plan.id, swapped.id);
        assert_ne!(plan.id.as_bytes(), JobId::from_bytes([1; 32]).as_bytes());
        let one = BatchPlan::new(vec![member(1, 9), member(2, 9)]).unwrap();
        assert_eq!(one.single_recipient(), Some(EvmAddress::from_bytes([9; 20])));
        assert_eq!(token_ids(7, 3), ["7", "8", "9"]);
    }

    #[test]
    fn bad_plans_are_refused_with_the_job_named() {
        assert_eq!(BatchPlan::new(vec![]).unwrap_err(), BatchError::Size(0));
        let e = BatchPlan::new(vec![member(1, 9), member(1, 9)]).unwrap_err();
        assert!(matches!(e, BatchError::Duplicate(_)));
        let mut m = member(1, 9);
        m.metadata.push(b' ');
        let e = BatchPlan::new(vec![m]).unwrap_err().to_string();
        assert!(e.contains(&JobId::from_bytes([1; 32]).to_string()) && e.contains("published"), "{e}");
    }

    #[test]
    fn a_plan_round_trips_through_json() {
        let plan = BatchPlan::new(vec![member(1, 9), member(2, 8)]).unwrap();
        let back: BatchPlan = serde_json::from_str(&serde_json::to_string(&plan).unwrap()).unwrap();
        assert_eq!(back, plan);
        assert_eq!(BatchPlan::key(plan.id), format!("batches/{}.json", plan.id));
    }
}
