//! Generate: the job's prompt becomes a PNG in the blob store, with its generation record.

use latentmint_core::ports::GenerationRequest;
use latentmint_core::{JobId, JobState, Stage};

use crate::{Ports, StageError, StageOutcome, load, save};

/// Blob key of a job's image: named by its bytes as well as the job, so that the key the job
/// records always holds the bytes its record describes. Images may differ between attempts
/// (Content Credentials are salted and signed anew each time); a slower duplicate delivery
/// then writes a key no job points to instead of replacing the recorded image.
pub fn image_key(id: JobId, image_sha256: &str) -> String {
    format!("images/{id}-{}.png", image_sha256.get(..16).unwrap_or(image_sha256))
}

/// Runs generation for `id`.
pub async fn run(ports: &Ports, id: JobId) -> Result<StageOutcome, StageError> {
    let mut job = load(ports, id).await?;
    if job.state != JobState::Queued {
        return Ok(StageOutcome::redelivered(&job, JobState::Generated, Stage::Review));
    }
    let req = GenerationRequest {
        job_id: id,
        prompt: job.spec.prompt.clone(),
        negative_prompt: job.spec.negative_prompt.clone(),
        params: job.spec.params.clone(),
        init_image: None,
    };
    let image = ports.generator.generate(&req).await?;
    let key = image_key(id, &image.record.image_sha256);
    ports.blobs.put(&key, image.png).await?;
    job.record_generation(key, image.record).map_err(|e| StageError::Fail(e.to_string()))?;
    if let Some(current) = save(ports, &job, JobState::Queued).await? {
        return Ok(StageOutcome::redelivered(&current, JobState::Generated, Stage::Review));
    }
    Ok(StageOutcome::done(&job, Some(Stage::Review)))
}
