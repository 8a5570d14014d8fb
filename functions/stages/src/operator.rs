//! What an operator does, in one place: decide a job waiting for review ([`decide`]), send
//! every stalled job on once its cause is gone ([`resume`]), and send a failed job back to the
//! stage that failed it ([`retry`]). Each needs only the job store and the queue, so the
//! dashboard, `latentmint review` and a stack's operator call them alike.

use std::collections::HashSet;
use std::time::Duration;

use latentmint_core::ports::{JobStore, Queue, dead_letters};
use latentmint_core::{JobId, JobState, Stage, StageMessage};

use crate::intake::waiting_for;
use crate::{StageError, now_ms};

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

/// How long a resume hides a dead letter it read, while it deals with its job.
const DEAD_LETTER_VISIBILITY: Duration = Duration::from_secs(300);

/// What [`resume`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resumed {
    /// The jobs sent on, and where.
    pub sent: Vec<(JobId, Stage)>,
    /// Dead letters deleted, their jobs sent on or found settled.
    pub cleared: usize,
}

/// Sends every job that is not settled on to the stage it waits for: what an operator does
/// once the cause of a stall is gone (the contract unpaused, the RPC back), for jobs whose
/// messages were dead-lettered, from the dashboard (`R`) or for a whole stack. A job already on
/// its way gets a second message, which its stage ignores (one being generated is left to the
/// message that claimed it). Only the unsettled states are read, each through the store's
/// index by state, not the whole table.
///
/// Then the stages' dead letters are cleared, so that the dead-letter queues (and the stack's
/// alarms on them) show only what is still stalled: each one's job is read after the letter
/// was, and sent on unless it was just now or is settled, before the letter is deleted. A
/// message that is no stage message stays for a human to look at.
pub async fn resume(jobs: &dyn JobStore, queue: &dyn Queue) -> Result<Resumed, StageError> {
    let token = now_ms();
    let mut sent = Vec::new();
    for state in JobState::ALL {
        let Some(stage) = waiting_for(state) else { continue };
        for job in jobs.list(Some(state)).await? {
            queue.send(stage.queue(), &StageMessage::resend(stage, job.id(), token).to_body()).await?;
            sent.push((job.id(), stage));
        }
    }
    let mut done: HashSet<JobId> = sent.iter().map(|(id, _)| *id).collect();
    let mut cleared = 0;
    for stage in Stage::ALL {
        let dlq = dead_letters(stage.queue());
        // Each receive hides what it returns, but what is kept is made visible again at once (a
        // FIFO queue gives one message group's next ten only once the last ten are gone): this
        // ends when a receive brings nothing not seen before.
        let mut kept = HashSet::new();
        loop {
            let got = queue.receive(&dlq, 10, DEAD_LETTER_VISIBILITY).await?;
            if got.iter().all(|d| kept.contains(&d.message_id)) {
                for d in &got {
                    queue.nack(&dlq, &d.receipt, Duration::ZERO).await?;
                }
                break;
            }
            for d in got {
                let Ok(message) = StageMessage::parse(&d.body, stage) else {
                    kept.insert(d.message_id);
                    queue.nack(&dlq, &d.receipt, Duration::ZERO).await?;
                    continue;
                };
                let id = message.job_id;
                // A job that died after the list above: sent on here.
                if let Some(job) = jobs.get(id).await?
                    && let Some(waits) = waiting_for(job.state)
                    && done.insert(id)
                {
                    queue.send(waits.queue(), &StageMessage::resend(waits, id, token).to_body()).await?;
                    sent.push((id, waits));
                }
                queue.ack(&dlq, &d.receipt).await?;
                cleared += 1;
            }
        }
    }
    Ok(Resumed { sent, cleared })
}

/// Sends failed job `id` back to where it stopped ([`latentmint_core::Job::record_retry`]) and on to the stage
/// that failed it: an operator's retry once the cause is fixed. Returns that stage.
pub async fn retry(jobs: &dyn JobStore, queue: &dyn Queue, id: JobId) -> Result<Stage, StageError> {
    let mut job = jobs.get(id).await?.ok_or_else(|| StageError::Fail(format!("job {id} is not in the job store")))?;
    let to = job.record_retry().map_err(|e| StageError::Fail(format!("{e}: only a failed job can be retried")))?;
    if !jobs.update(&job, JobState::Failed).await? {
        return Err(StageError::Fail(format!("job {} changed while it was being retried; look again", id.short())));
    }
    let stage = waiting_for(to).ok_or_else(|| StageError::Fail(format!("job {} went back to {to}", id.short())))?;
    queue.send(stage.queue(), &StageMessage::resend(stage, id, now_ms()).to_body()).await?;
    Ok(stage)
}
