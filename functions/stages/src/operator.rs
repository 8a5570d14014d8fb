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
    /// Unsettled jobs not sent, as their stage's queue holds a message for them already.
    pub queued: usize,
    /// Unsettled jobs not sent as their stage's queue holds messages and cannot say for which
    /// jobs (SQS), per stage: resume again once it is empty, or let those messages run.
    pub unknown: Vec<(Stage, usize)>,
}

/// Which jobs `stage`'s queue holds a message for: `None` when the queue cannot say (it holds
/// messages, and cannot show them without taking them).
async fn held_jobs(queue: &dyn Queue, stage: Stage) -> Result<Option<HashSet<JobId>>, StageError> {
    match queue.held(stage.queue()).await? {
        Some(bodies) => {
            Ok(Some(bodies.iter().filter_map(|b| StageMessage::parse(b, stage).ok()).map(|m| m.job_id).collect()))
        }
        None => {
            let st = queue.stats(stage.queue()).await?;
            Ok((st.visible + st.in_flight == 0).then(HashSet::new))
        }
    }
}

/// Sends every job that is not settled on to the stage it waits for: what an operator does
/// once the cause of a stall is gone (the contract unpaused, the RPC back), for jobs whose
/// messages were dead-lettered, from the dashboard (`R`) or for a whole stack. A job whose
/// stage's queue holds a message for it already is not sent another; where the queue cannot
/// say for which jobs it holds messages (SQS), only an empty queue's jobs are sent, and the
/// others counted in [`Resumed::unknown`] (one being generated is left to the message that
/// claimed it). Only the unsettled states are read, each through the store's index by state,
/// not the whole table.
///
/// Then the stages' dead letters are cleared, so that the dead-letter queues (and the stack's
/// alarms on them) show only what is still stalled: each one's job is read after the letter
/// was, and sent on unless it was just now or is settled, before the letter is deleted. A
/// message that is no stage message stays for a human to look at.
pub async fn resume(jobs: &dyn JobStore, queue: &dyn Queue) -> Result<Resumed, StageError> {
    let token = now_ms();
    let mut sent = Vec::new();
    // Jobs that need no message from here: sent one now, or holding one already.
    let mut done: HashSet<JobId> = HashSet::new();
    let (mut queued, mut unknown) = (0, Vec::new());
    for state in JobState::ALL {
        let Some(stage) = waiting_for(state) else { continue };
        let held = held_jobs(queue, stage).await?;
        let mut not_known: usize = 0;
        for job in jobs.list(Some(state)).await? {
            match &held {
                Some(ids) if ids.contains(&job.id()) => {
                    queued += 1;
                    done.insert(job.id());
                }
                Some(_) => {
                    queue.send(stage.queue(), &StageMessage::resend(stage, job.id(), token).to_body()).await?;
                    sent.push((job.id(), stage));
                    done.insert(job.id());
                }
                None => not_known += 1,
            }
        }
        if not_known > 0 {
            unknown.push((stage, not_known));
        }
    }
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
    // A job counted unknown whose dead letter was found was sent on above: not unknown.
    let mut unknown_left = unknown;
    for (stage, n) in &mut unknown_left {
        let found = sent.iter().filter(|(_, s)| s == stage).count();
        *n = (*n).saturating_sub(found);
    }
    unknown_left.retain(|(_, n)| *n > 0);
    Ok(Resumed { sent, cleared, queued, unknown: unknown_left })
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
