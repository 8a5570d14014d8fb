//! Mint: one token per job, guarded on chain. The minter reads the chain before sending, and
//! the contract refuses a job id twice, so a crash between the mint and the job store write
//! heals itself on redelivery: the retry finds the token and records it.

use latentmint_core::{JobId, JobState};

use crate::{Ports, StageError, StageOutcome, load, save};

/// Runs the mint for `id`.
pub async fn run(ports: &Ports, id: JobId) -> Result<StageOutcome, StageError> {
    let mut job = load(ports, id).await?;
    if job.state != JobState::Published {
        return Ok(StageOutcome { job_id: id, state: job.state, next: None, did_work: false });
    }
    let metadata_cid =
        job.metadata_cid.clone().ok_or_else(|| StageError::Fail("published job has no metadata CID".into()))?;
    let receipt = ports.minter.mint(id, job.spec.recipient, &metadata_cid).await?;
    job.record_mint(receipt.token_id, receipt.tx_hash).map_err(|e| StageError::Fail(e.to_string()))?;
    if let Some(current) = save(ports, &job, JobState::Published).await? {
        return Ok(StageOutcome { job_id: id, state: current.state, next: None, did_work: false });
    }
    Ok(StageOutcome::done(&job, None))
}
