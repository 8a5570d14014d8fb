//! Generate: the job's prompt becomes a PNG in the blob store, with its generation record.
//!
//! The message that claims the job ([`Job::claim_generation`]) generates it; a second message
//! for the same job (a resume, a collection submitted again, a duplicate delivery) finds it
//! claimed and is dropped, so the costly part runs once however often the job is sent.

use std::time::Duration;

use latentmint_core::ports::GenerationRequest;
use latentmint_core::{ClaimError, Job, JobId, JobState, Stage};
use tracing::{info, warn};

use crate::ports::{self, Generating, Images, StagePorts};
use crate::{StageError, StageOutcome, load, now_ms, save};

/// How long a claim on a job holds. At least the longest a generation may run (the generate
/// function's 840 s timeout) and at most the generate queue's visibility timeout (900 s), so
/// that a holder that died has its own message redelivered by the time its claim lapses, and
/// a resend after that takes the job over.
pub const GENERATION_LEASE: Duration = Duration::from_secs(840);

/// Blob key of a job's image: named by its bytes as well as the job, so that the key the job
/// records always holds the bytes its record describes. Images may differ between attempts
/// (Content Credentials are salted and signed anew each time); a slower duplicate delivery
/// then writes a key no job points to instead of replacing the recorded image.
pub fn image_key(id: JobId, image_sha256: &str) -> String {
    format!("images/{id}-{}.png", image_sha256.get(..16).unwrap_or(image_sha256))
}

/// Runs generation for `id`, on behalf of the queue message `message_id`.
pub async fn run<P: Images + Generating>(ports: &P, id: JobId, message_id: &str) -> Result<StageOutcome, StageError> {
    let mut job = load(ports, id).await?;
    let from = match job.claim_generation(message_id, now_ms(), GENERATION_LEASE.as_millis() as u64) {
        Ok(from) => from,
        Err(ClaimError::Held { holder, .. }) => {
            info!(job = %id.short(), holder = %holder, "being generated for another message; this one is dropped");
            return Ok(StageOutcome::redelivered(&job, Stage::Generate));
        }
        Err(ClaimError::Transition(_)) => {
            return Ok(StageOutcome::redelivered(&job, Stage::Generate));
        }
    };
    if let Some(current) = save(ports, &job, from).await? {
        // Claimed by another message in between.
        return Ok(StageOutcome::redelivered(&current, Stage::Generate));
    }
    match generate(ports, &mut job).await {
        Err(StageError::Retry(m)) => {
            // Let the job go, so that whichever of its messages comes next may claim it; if this
            // write fails too, this message's redelivery still holds the claim.
            let mut released = job.clone();
            if released.release_generation().is_ok()
                && let Err(e) = save(ports, &released, JobState::Generating).await
            {
                warn!(job = %id.short(), "claim not released: {e}");
            }
            Err(StageError::Retry(m))
        }
        Err(e) => Err(e),
        Ok(()) => match save(ports, &job, JobState::Generating).await? {
            Some(current) => Ok(StageOutcome::redelivered(&current, Stage::Generate)),
            None => Ok(StageOutcome::done(&job, Stage::Generate.next())),
        },
    }
}

/// Makes the image of claimed `job`, stores it and records it on the job (not yet saved).
async fn generate<P: Images + Generating>(ports: &P, job: &mut Job) -> Result<(), StageError> {
    let id = job.id();
    let req = GenerationRequest {
        job_id: id,
        prompt: job.spec.prompt.clone(),
        negative_prompt: job.spec.negative_prompt.clone(),
        params: job.spec.params.clone(),
        init_image: None,
    };
    let image = ports.generator().generate(&req).await?;
    let key = image_key(id, &image.record.image_sha256);
    ports.blobs().put(&key, image.png).await?;
    job.record_generation(key, image.record).map_err(|e| StageError::Fail(e.to_string()))
}

impl StagePorts for ports::Generate {
    const STAGE: Stage = Stage::Generate;
    async fn run(&self, id: JobId, message_id: &str) -> Result<StageOutcome, StageError> {
        run(self, id, message_id).await
    }
}
