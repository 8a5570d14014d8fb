//! Intake: jobs from a validated collection enter the job store and the generate queue.
//!
//! Idempotent by construction: job ids are hashes of the request, so submitting the same
//! collection again (a retried webhook, a restarted run) finds the jobs already there.

use latentmint_core::{Job, JobSpec, JobState, Stage, StageMessage};

use crate::{Ports, StageError};

/// What intake did with one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intake {
    /// New job, queued for generation.
    Queued,
    /// Known job still waiting for generation: queued again in case its message was lost.
    Requeued,
    /// Known job already past generation: nothing to do.
    Known(JobState),
}

/// Records `spec` and queues its generation.
pub async fn submit(ports: &Ports, spec: JobSpec) -> Result<Intake, StageError> {
    let job = Job::new(spec);
    let inserted = ports.jobs.insert_if_absent(&job).await?;
    let current = if inserted { job } else { crate::load(ports, job.id()).await? };
    if current.state != JobState::Queued {
        return Ok(Intake::Known(current.state));
    }
    // Sent after the insert: a crash in between is healed by the next submit, which re-sends.
    ports.queue.send(Stage::Generate.queue(), &StageMessage::new(Stage::Generate, current.id()).to_body()).await?;
    Ok(if inserted { Intake::Queued } else { Intake::Requeued })
}
