//! Review (QA staging): automatic checks decide approve / reject / ask a human. Jobs the
//! checks are unsure about wait in `awaiting_review` until an operator decides (the TUI).

use latentmint_core::qa::{QaReport, decode_rgb};
use latentmint_core::{JobId, JobState, Stage};

use crate::ports::{self, Images, StagePorts};
use crate::{StageError, StageOutcome, load, save};

/// Runs the automatic checks for `id`.
pub async fn run<P: Images>(ports: &P, id: JobId) -> Result<StageOutcome, StageError> {
    let mut job = load(ports, id).await?;
    if job.state != JobState::Generated {
        return Ok(StageOutcome::redelivered(&job, Stage::Review));
    }
    let key = job.image_key.clone().ok_or_else(|| StageError::Fail("generated job has no image".into()))?;
    let png_bytes = ports.blobs().get(&key).await?;
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

impl StagePorts for ports::Review {
    const STAGE: Stage = Stage::Review;
    async fn run(&self, id: JobId, _: &str) -> Result<StageOutcome, StageError> {
        run(self, id).await
    }
}
