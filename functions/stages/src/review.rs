//! Review (QA staging): automatic checks decide approve / reject / ask a human. Jobs the
//! checks are unsure about wait in `awaiting_review` until an operator decides (the TUI).

use latentmint_core::ports::{JobStore, Queue};
use latentmint_core::qa::{QaReport, decode_rgb};
use latentmint_core::{JobId, JobState, Stage, StageMessage};

use crate::{Ports, StageError, StageOutcome, load, save};

/// Runs the automatic checks for `id`.
pub async fn run(ports: &Ports, id: JobId) -> Result<StageOutcome, StageError> {
    let mut job = load(ports, id).await?;
    if job.state != JobState::Generated {
        return Ok(StageOutcome::redelivered(&job, Stage::Review));
    }
    let key = job.image_key.clone().ok_or_else(|| StageError::Fail("generated job has no image".into()))?;
    let png_bytes = ports.blobs.get(&key).await?;
    let (rgb, w, h) = decode_rgb(&png_bytes).map_err(|e| StageError::Fail(format!("{key}: {e}")))?;
    let report = QaReport::measure(&rgb, w, h).ok_or_else(|| StageError::Fail(format!("{key}: empty image")))?;
    let verdict = report.verdict(&job.spec.review);
    job.record_qa(report, verdict).map_err(|e| StageError::Fail(e.to_string()))?;
    if let Some(current) = save(ports, &job, JobState::Generated).await? {
        return Ok(StageOutcome::redelivered(&current, Stage::Review));
    }
    let next = if verdict == Stage::Review.leaves() { Stage::Review.next() } else { None };
    Ok(StageOutcome::done(&job, next))
}

/// An operator's decision on a job in the staging queue. Approving queues its publication.
/// Needs only the job store and the queue, so the dashboard can call it.
pub async fn decide(
    jobs: &dyn JobStore,
    queue: &dyn Queue,
    id: JobId,
    approve: bool,
    operator: &str,
) -> Result<JobState, StageError> {
    // Recorded on the job and shown in dashboards: one clean line, never escape sequences.
    let operator =
        latentmint_core::sanitize::clean_operator("operator", operator).map_err(|e| StageError::Fail(e.to_string()))?;
    let mut job = jobs.get(id).await?.ok_or_else(|| StageError::Fail(format!("job {id} is not in the job store")))?;
    job.record_operator_decision(approve, &operator).map_err(|e| StageError::Fail(e.to_string()))?;
    if !jobs.update(&job, JobState::AwaitingReview).await? {
        return Err(StageError::Fail(format!("job {} was decided by someone else meanwhile", id.short())));
    }
    if approve {
        queue.send(Stage::Publish.queue(), &StageMessage::new(Stage::Publish, id).to_body()).await?;
    }
    Ok(job.state)
}
