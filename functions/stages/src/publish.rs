//! Publish: metadata with provenance signed by the publisher (EIP-712), CIDs computed here
//! from our own bytes, pinned, and the pinner's CIDs checked against ours.

use latentmint_core::cid::cid_of_bytes;
use latentmint_core::metadata::TokenMetadata;
use latentmint_core::ports::{Pinner, PortError};
use latentmint_core::{JobId, JobState, Stage};

use crate::ports::{self, Images, Pinning, Signing, StagePorts};
use crate::{StageError, StageOutcome, load, save};

/// Pins `bytes` and checks the pinner's CID against the one computed here.
pub(crate) async fn pin_checked(pinner: &dyn Pinner, name: &str, bytes: Vec<u8>) -> Result<String, StageError> {
    let ours = cid_of_bytes(&bytes);
    let theirs = pinner.pin(name, bytes).await?;
    if theirs != ours {
        return Err(StageError::Fail(format!(
            "the pinner returned CID {theirs} for {name}, but its bytes hash to {ours}; refusing to publish"
        )));
    }
    Ok(ours)
}

/// Runs publication for `id`.
pub async fn run<P: Images + Pinning + Signing>(ports: &P, id: JobId) -> Result<StageOutcome, StageError> {
    let mut job = load(ports, id).await?;
    if job.state != JobState::Approved {
        return Ok(StageOutcome::redelivered(&job, Stage::Publish));
    }
    let key = job.image_key.clone().ok_or_else(|| StageError::Fail("approved job has no image".into()))?;
    let png = ports.blobs().get(&key).await?;
    let image_cid = pin_checked(ports.pinner(), &format!("{id}.png"), png).await?;
    let metadata = TokenMetadata::build(&job, &image_cid).map_err(|e| StageError::Fail(e.to_string()))?;
    let signed = signed_metadata(ports, id, metadata).await?;
    let metadata_cid = pin_checked(ports.pinner(), &format!("{id}.json"), signed).await?;
    job.record_publication(image_cid, metadata_cid).map_err(|e| StageError::Fail(e.to_string()))?;
    if let Some(current) = save(ports, &job, JobState::Approved).await? {
        return Ok(StageOutcome::redelivered(&current, Stage::Publish));
    }
    Ok(StageOutcome::done(&job, Stage::Publish.next()))
}

/// `metadata` signed, as JSON. A signature made by an earlier attempt is reused when that
/// attempt signed this same record: KMS signatures differ on every call (ECDSA with a random
/// nonce), so a publish retried after a crash would otherwise pin a second, differently signed
/// metadata document for the same token. The signed copy is stored before it is pinned.
async fn signed_metadata<P: Images + Signing>(
    ports: &P,
    id: JobId,
    mut metadata: TokenMetadata,
) -> Result<Vec<u8>, StageError> {
    let key = format!("metadata/{id}.json");
    match ports.blobs().get(&key).await {
        Ok(bytes) => {
            if let Ok(mut earlier) = serde_json::from_slice::<TokenMetadata>(&bytes) {
                earlier.provenance.signature = None;
                if earlier == metadata {
                    return Ok(bytes);
                }
            }
        }
        Err(PortError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    metadata.provenance.signature = Some(ports.signer().sign(&metadata.provenance).await?);
    let bytes = metadata.to_json();
    ports.blobs().put(&key, bytes.clone()).await?;
    Ok(bytes)
}

impl StagePorts for ports::Publish {
    const STAGE: Stage = Stage::Publish;
    async fn run(&self, id: JobId, _: &str) -> Result<StageOutcome, StageError> {
        run(self, id).await
    }
}
