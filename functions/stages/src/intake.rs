//! Intake: jobs from a validated collection enter the job store and the generate queue.
//!
//! Idempotent by construction: job ids are hashes of the request, so submitting the same
//! collection again (a retried webhook, a restarted run) finds the jobs already there. A job
//! found part way (its message lost, or dead-lettered after its retries ran out: an RPC down
//! for an hour, a paused contract) is sent on to the stage it waits for, so submitting again
//! is how a stalled batch is resumed. Every stage is idempotent, so a message sent twice costs
//! a no-op.

use latentmint_core::{Job, JobSpec, JobState, Stage, StageMessage};

use crate::ports::Pipeline;
use crate::{StageError, now_ms};

/// What intake did with one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intake {
    /// New job, queued for generation.
    Queued,
    /// Known job not yet settled: queued again for `Stage`, the one it waits for, in case its
    /// message was lost or dead-lettered.
    Requeued(Stage),
    /// Known job that waits for no stage (minted, rejected, failed, or waiting for an
    /// operator's decision): nothing to do.
    Known(JobState),
}

/// The stage a job in `state` waits for; `None` when no stage moves it on.
pub fn waiting_for(state: JobState) -> Option<Stage> {
    state.waiting_for()
}

/// Records `spec` and queues its generation (or, for a known job, the stage it waits for).
pub async fn submit<P: Pipeline>(ports: &P, spec: JobSpec) -> Result<Intake, StageError> {
    let job = Job::new(spec);
    let inserted = ports.jobs().insert_if_absent(&job).await?;
    let current = if inserted { job } else { crate::load(ports, job.id()).await? };
    let Some(stage) = waiting_for(current.state) else {
        return Ok(Intake::Known(current.state));
    };
    // Sent after the insert: a crash in between is healed by the next submit, which re-sends.
    let message = if inserted {
        StageMessage::new(stage, current.id())
    } else {
        // Its own body, or a FIFO queue would take it for the one it replaces (see resend).
        StageMessage::resend(stage, current.id(), now_ms())
    };
    ports.queue().send(stage.queue(), &message.to_body()).await?;
    Ok(if inserted { Intake::Queued } else { Intake::Requeued(stage) })
}
