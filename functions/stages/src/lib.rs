//! # latentmint-stages
//!
//! One module per pipeline stage, in the order a job meets them:
//! [`intake`] → [`generate`] → [`review`] → [`publish`] → [`mint`]; then, for living NFTs,
//! [`evolve`] each time a token changes hands.
//!
//! Each stage is a plain async function over one job and the adapters it declares
//! ([`ports`]: a Lambda function holds only its stage's, the local runner all of them in
//! [`Ports`]); it knows nothing of Lambda, SQS or SQLite. [`process`] lifts a stage to one queue delivery and says whether to
//! delete the message or retry it; the Lambda binaries, the local runner and the tests all
//! call it the same way.
//!
//! Delivery is at-least-once, so every stage is idempotent: a job already past the stage is
//! left as it is, and the stage only re-sends the next message when the job sits exactly where
//! this stage leaves it (the crash-between-write-and-send case).

pub mod evolve;
pub mod generate;
pub mod intake;
pub mod mint;
pub mod operator;
pub mod ports;
pub mod publish;
pub mod reconcile;
pub mod review;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use latentmint_core::ports::{Delivery, PortError};
use latentmint_core::{Job, JobId, JobState, Stage, StageMessage};
use tracing::{Instrument, error, info, info_span, warn};

pub use crate::ports::{Pipeline, Ports, StagePorts};

/// Why a stage did not finish a job.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StageError {
    /// Try again later (the message is retried, then dead-lettered).
    #[error("{0}")]
    Retry(String),
    /// Will never succeed: the job is marked failed and the message deleted.
    #[error("{0}")]
    Fail(String),
}

impl From<PortError> for StageError {
    fn from(e: PortError) -> Self {
        match e {
            PortError::Transient(m) => StageError::Retry(m),
            PortError::NotFound(m) => StageError::Fail(format!("not found: {m}")),
            PortError::Permanent(m) => StageError::Fail(m),
        }
    }
}

/// What a stage did with a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageOutcome {
    /// The job.
    pub job_id: JobId,
    /// Its state afterwards.
    pub state: JobState,
    /// The stage to notify next, if any.
    pub next: Option<Stage>,
    /// False when the job had already passed this stage (a redelivery).
    pub did_work: bool,
}

impl StageOutcome {
    pub(crate) fn done(job: &Job, next: Option<Stage>) -> Self {
        Self { job_id: job.id(), state: job.state, next, did_work: true }
    }

    /// A redelivery to `stage`: forward only if the job sits where `stage` leaves it (the
    /// pipeline's table, [`Stage::leaves`]), because then the next message may have been lost
    /// in a crash.
    pub(crate) fn redelivered(job: &Job, stage: Stage) -> Self {
        let next = if job.state == stage.leaves() { stage.next() } else { None };
        Self { job_id: job.id(), state: job.state, next, did_work: false }
    }
}

/// What to do with a delivery once processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Delete it: done (or failed for good, recorded on the job).
    Ack(Option<StageOutcome>),
    /// Make it visible again after the delay.
    Retry(Duration, String),
}

/// The time in Unix milliseconds: lease deadlines, and the token that tells a resend apart
/// from the message it replaces (see [`StageMessage::resend`]).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub(crate) async fn load<P: Pipeline + ?Sized>(ports: &P, id: JobId) -> Result<Job, StageError> {
    ports.jobs().get(id).await?.ok_or_else(|| StageError::Fail(format!("job {id} is not in the job store")))
}

/// Writes `job` if its stored state is still `from`. If another worker advanced it first,
/// returns the stored job instead (the caller treats that as a redelivery).
pub(crate) async fn save<P: Pipeline + ?Sized>(
    ports: &P,
    job: &Job,
    from: JobState,
) -> Result<Option<Job>, StageError> {
    if ports.jobs().update(job, from).await? { Ok(None) } else { Ok(Some(load(ports, job.id()).await?)) }
}

/// Backoff for the n-th receive: 1, 2, 4, ... seconds, at most 60.
pub fn backoff(receive_count: u32) -> Duration {
    Duration::from_secs(1u64 << receive_count.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

/// Processes one delivery from `stage`'s queue with the runner's whole set of adapters: the
/// local runner's and the tests' entry, which hands [`process_stage`] that stage's share.
pub async fn process(ports: &Ports, stage: Stage, delivery: &Delivery) -> Disposition {
    match stage {
        Stage::Generate => process_stage(&ports.generate(), delivery).await,
        Stage::Review => process_stage(&ports.review(), delivery).await,
        Stage::Publish => process_stage(&ports.publish(), delivery).await,
        Stage::Mint => process_stage(&ports.mint(), delivery).await,
    }
}

/// Processes one delivery from the queue of `P`'s stage: runs the stage, sends the next
/// message, and says whether the delivery is done. What a Lambda function calls with its
/// stage's adapters alone.
pub async fn process_stage<P: StagePorts>(ports: &P, delivery: &Delivery) -> Disposition {
    let stage = P::STAGE;
    let msg = match StageMessage::parse(&delivery.body, stage) {
        Ok(m) => m,
        Err(e) => {
            // Never succeeds: retry at once so it reaches the dead-letter queue quickly.
            error!(queue = stage.queue(), message_id = %delivery.message_id, "unreadable message: {e}");
            return Disposition::Retry(Duration::ZERO, e.to_string());
        }
    };
    // Every line logged for this delivery carries the job and the stage, so one job's path can
    // be followed through the stages (in CloudWatch, a filter on `job_id`).
    let span = job_span(msg.job_id, stage, &delivery.message_id);
    async {
        let result = ports.run(msg.job_id, &delivery.message_id).await;
        settle(ports, stage, delivery, msg.job_id, result).await
    }
    .instrument(span)
    .await
}

/// The span of one job's work in one stage: `job_id` (the whole id), `stage` (its queue's
/// name) and the delivery's `message_id`.
pub fn job_span(id: JobId, stage: Stage, message_id: &str) -> tracing::Span {
    info_span!("job", job_id = %id, stage = stage.queue(), message_id = %message_id)
}

/// Processes the deliveries of one receive from `stage`'s queue, one disposition per delivery
/// in order. The mint stage mints the published jobs among them together, at most `batch` per
/// transaction ([`mint_all`]); with `batch` 1, and on every other stage, this is [`process`] on
/// each delivery in turn.
pub async fn process_all(ports: &Ports, stage: Stage, deliveries: &[Delivery], batch: usize) -> Vec<Disposition> {
    if stage == Stage::Mint && batch > 1 {
        return mint_all(&ports.mint(), deliveries, batch).await;
    }
    let mut out = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        out.push(process(ports, stage, d).await);
    }
    out
}

/// Mints the published jobs of one receive from the mint queue together, at most `batch` per
/// transaction ([`mint::run_many`]), one disposition per delivery in order.
pub async fn mint_all(ports: &ports::Mint, deliveries: &[Delivery], batch: usize) -> Vec<Disposition> {
    let stage = Stage::Mint;
    let mut parsed = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        match StageMessage::parse(&d.body, stage) {
            Ok(m) => parsed.push(Ok(m.job_id)),
            Err(e) => {
                error!(queue = stage.queue(), message_id = %d.message_id, "unreadable message: {e}");
                parsed.push(Err(Disposition::Retry(Duration::ZERO, e.to_string())));
            }
        }
    }
    let mut ids: Vec<JobId> = parsed.iter().filter_map(|p| p.as_ref().ok().copied()).collect();
    // The same job twice in one receive (a resend beside the original) is minted once.
    ids.sort();
    ids.dedup();
    let minted = mint::run_many(ports, &ids, batch).instrument(info_span!("mint_batch", jobs = ids.len())).await;
    let results: std::collections::HashMap<JobId, Result<StageOutcome, StageError>> =
        ids.iter().copied().zip(minted).collect();
    let mut out = Vec::with_capacity(deliveries.len());
    for (d, p) in deliveries.iter().zip(parsed) {
        out.push(match p {
            Err(disposition) => disposition,
            Ok(id) => {
                let result = results
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| Err(StageError::Retry(format!("job {} was not minted", id.short()))));
                settle(ports, stage, d, id, result).instrument(job_span(id, stage, &d.message_id)).await
            }
        });
    }
    out
}

/// What becomes of `delivery` once its job's stage ended with `result`.
async fn settle<P: Pipeline>(
    ports: &P,
    stage: Stage,
    delivery: &Delivery,
    id: JobId,
    result: Result<StageOutcome, StageError>,
) -> Disposition {
    match result {
        Ok(outcome) => {
            if let Some(next) = outcome.next
                && let Err(e) = ports.queue().send(next.queue(), &StageMessage::new(next, id).to_body()).await
            {
                // The job is saved; redelivery of this message re-sends the next one.
                return Disposition::Retry(backoff(delivery.receive_count), format!("cannot queue {next:?}: {e}"));
            }
            if outcome.did_work {
                info!(stage = ?stage, job = %id.short(), state = %outcome.state, "stage done");
            }
            Disposition::Ack(Some(outcome))
        }
        Err(StageError::Retry(m)) => {
            warn!(stage = ?stage, job = %id.short(), attempt = delivery.receive_count, "will retry: {m}");
            Disposition::Retry(backoff(delivery.receive_count), m)
        }
        Err(StageError::Fail(m)) => {
            error!(stage = ?stage, job = %id.short(), "failed: {m}");
            match fail_job(ports, id, &m).await {
                Ok(()) => Disposition::Ack(None),
                Err(e) => Disposition::Retry(backoff(delivery.receive_count), format!("cannot record failure: {e}")),
            }
        }
    }
}

/// Marks a job failed with `reason`, unless it is already final.
async fn fail_job<P: Pipeline>(ports: &P, id: JobId, reason: &str) -> Result<(), StageError> {
    let Some(mut job) = ports.jobs().get(id).await? else { return Ok(()) };
    let from = job.state;
    if job.record_failure(reason.to_string()).is_ok() {
        save(ports, &job, from).await?;
    }
    Ok(())
}
