//! Review (QA staging): the automatic checks of the image, then the collection's `[review]`
//! policy decides approve / reject / ask a human. Jobs the policy sends to a human wait in
//! `awaiting_review` until an operator decides (`latentmint review`, the dashboard).

use latentmint_core::qa::QaReport;
use latentmint_core::{Job, JobId, JobState, Stage};

use crate::ports::{self, Inspecting, StagePorts};
use crate::{StageError, StageOutcome, load, save};

/// Runs the automatic checks for `id`, compares its image with the collection's others, and
/// records the policy's decision with every check and the reason.
pub async fn run<P: Inspecting>(ports: &P, id: JobId) -> Result<StageOutcome, StageError> {
    let mut job = load(ports, id).await?;
    if job.state != JobState::Generated {
        return Ok(StageOutcome::redelivered(&job, Stage::Review));
    }
    let key = job.image_key.clone().ok_or_else(|| StageError::Fail("generated job has no image".into()))?;
    let png = ports.blobs().get(&key).await?;
    let mut report = ports.inspector().inspect(&job.spec, &png).await?;
    // The hash is stored before the others are read: of two copies of one picture reviewed at
    // once, the second to store its hash sees the first's, so the pair never passes unseen.
    job.qa = Some(report.clone());
    if let Some(current) = save(ports, &job, JobState::Generated).await? {
        return Ok(StageOutcome::redelivered(&current, Stage::Review));
    }
    let policy = job.spec.review;
    let others = ports.jobs().list(None).await?;
    if let Some(check) = policy.duplicate_check(report.phash.as_deref(), earlier_images(&job, &others)) {
        report.checks.push(check);
    }
    let (verdict, reason) = policy.decide(id, &report.checks);
    report.reason = Some(reason);
    job.record_qa(report, verdict).map_err(|e| StageError::Fail(e.to_string()))?;
    if let Some(current) = save(ports, &job, JobState::Generated).await? {
        return Ok(StageOutcome::redelivered(&current, Stage::Review));
    }
    let next = if verdict == Stage::Review.leaves() { Stage::Review.next() } else { None };
    Ok(StageOutcome::done(&job, next))
}

/// The perceptual hashes of `job`'s collection's other images that count: not rejected (a
/// rejected image will never be a token).
fn earlier_images<'a>(job: &Job, all: &'a [Job]) -> impl Iterator<Item = (JobId, &'a str)> {
    let (me, collection) = (job.id(), job.spec.collection.clone());
    all.iter()
        .filter(move |j| j.id() != me && j.spec.collection == collection && j.state != JobState::Rejected)
        .filter_map(|j| Some((j.id(), j.qa.as_ref().and_then(|q: &QaReport| q.phash.as_deref())?)))
}

impl StagePorts for ports::Review {
    const STAGE: Stage = Stage::Review;
    async fn run(&self, id: JobId, _: &str) -> Result<StageOutcome, StageError> {
        run(self, id).await
    }
}
