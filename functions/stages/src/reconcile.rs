//! The chain is the source of truth: a job store is made to agree with it before a run
//! generates or mints anything.
//!
//! A run that lost its job store (or its whole data folder), that restored one from a backup,
//! that moved machines, or that crashed between a mint and its write does not know what became
//! of some jobs. It asks the chain once for all of them ([`Minter::fates`]: the contract's
//! position bitmap, then its mint events) and:
//! - a job the chain holds a token for takes the chain's word ([`Job::adopt_chain_mint`]): the
//!   token, its transaction, its metadata and image CIDs, and the content itself when the
//!   content store has it. It is never generated or minted again;
//! - a job whose position holds another job's token is a conflict: the collection file changed
//!   after that mint. The caller refuses the run before anything is done;
//! - a job the store says is minted but the chain does not know (a reset local chain) goes back
//!   to `published`, and its mint is queued.
//!
//! [`Minter::fates`]: latentmint_core::ports::Minter::fates

use latentmint_core::batch::BatchSlot;
use latentmint_core::cid::{cid_of_bytes, directory_links};
use latentmint_core::ledger::{ChainMint, Fate, Via};
use latentmint_core::metadata::TokenMetadata;
use latentmint_core::{Adoption, Job, JobId, JobSpec, JobState, Stage, StageMessage};
use tracing::{info, warn};

use crate::StageError;
use crate::generate::image_key;
use crate::ports::{Images, Minting, Pinning};

/// What a reconciliation found.
#[derive(Debug, Default)]
pub struct Reconciled {
    /// Jobs the chain holds a token for, whether the store knew it or not.
    pub on_chain: Vec<JobId>,
    /// Of those, the ones whose record now takes the chain's word (it did not know the token,
    /// or held other content than the token points at).
    pub adopted: Vec<JobId>,
    /// Adopted jobs whose content could not be read back, and why: their token exists, but
    /// this run can neither show nor check its image.
    pub unrecovered: Vec<(JobId, String)>,
    /// Jobs whose position holds another job's token, and that token.
    pub conflicts: Vec<(JobId, ChainMint)>,
    /// Jobs the store had as minted whose token the chain does not know: their mint is queued.
    pub lost: Vec<JobId>,
    /// Jobs the store holds short of a final state that are no longer in the collection file
    /// (it was edited since they were queued): failed, so they are never minted.
    pub retired: Vec<JobId>,
}

/// Makes the job store agree with the chain for the jobs of `specs`, which are the whole
/// collection file: jobs of the store outside it that are not final are retired (failed).
pub async fn reconcile<P: Images + Pinning + Minting>(ports: &P, specs: &[JobSpec]) -> Result<Reconciled, StageError> {
    let ids: Vec<JobId> = specs.iter().map(|s| s.id).collect();
    let wanted: std::collections::HashSet<JobId> = ids.iter().copied().collect();
    let mut out = Reconciled::default();
    for mut j in ports.jobs().list(None).await? {
        if wanted.contains(&j.id()) || j.state.is_final() {
            continue;
        }
        let from = j.state;
        let why = "no longer in the collection file (it was edited after this job was queued); a job outside the file is never minted".to_string();
        if j.record_failure(why).is_ok() && ports.jobs().update(&j, from).await? {
            warn!(job = %j.id().short(), "no longer in the collection file: retired");
            out.retired.push(j.id());
        }
    }
    let fates = ports.minter().fates(&ids).await?;
    for (id, fate) in ids.iter().copied().zip(fates) {
        let stored = ports.jobs().get(id).await?;
        match fate {
            Fate::Minted(m) => {
                out.on_chain.push(id);
                let Some(spec) =
                    stored.as_ref().map(|j| j.spec.clone()).or_else(|| specs.iter().find(|s| s.id == id).cloned())
                else {
                    continue;
                };
                if let Some(j) = &stored
                    && knows(j, &m)
                {
                    continue;
                }
                let from = stored.as_ref().map(|j| j.state);
                let mut job = stored.unwrap_or_else(|| Job::new(spec));
                let adoption = adoption(ports, &job, &m).await;
                let missing = adoption.missing.clone();
                job.adopt_chain_mint(adoption);
                let written = match from {
                    None => ports.jobs().insert_if_absent(&job).await?,
                    Some(state) => ports.jobs().update(&job, state).await?,
                };
                if !written {
                    // Another worker changed it meanwhile; the next run looks again.
                    warn!(job = %id.short(), "changed while it was reconciled; left for the next run");
                    continue;
                }
                info!(job = %id.short(), token = %m.token_id, tx = %m.tx_hash, "found minted on chain; the record takes the chain's word");
                out.adopted.push(id);
                if let Some(why) = missing {
                    out.unrecovered.push((id, why));
                }
            }
            Fate::PositionTaken(holder) => out.conflicts.push((id, holder)),
            Fate::Unminted => {
                // Only the file's own jobs: a record of another version of the file (its ids
                // are not these) is never minted again on the strength of a local record.
                if let Some(mut job) = stored.filter(|j| j.state == JobState::Minted && wanted.contains(&j.id())) {
                    warn!(job = %id.short(), "its token is missing from this chain (a reset local chain); minting it again");
                    job.record_token_lost().map_err(|e| StageError::Fail(e.to_string()))?;
                    if ports.jobs().update(&job, JobState::Minted).await? {
                        ports.queue().send(Stage::Mint.queue(), &StageMessage::new(Stage::Mint, id).to_body()).await?;
                        out.lost.push(id);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// True when `job`'s record already says what the chain says of it, its content included (a
/// record adopted without its content is adopted again, in case the content is back).
fn knows(job: &Job, m: &ChainMint) -> bool {
    job.state == JobState::Minted
        && job.content_missing.is_none()
        && job.token_id.as_deref() == Some(m.token_id.as_str())
        && job.tx_hash.as_deref() == Some(m.tx_hash.as_str())
        && m.known_metadata_cid().is_none_or(|c| job.metadata_cid.as_deref() == Some(c.as_str()))
}

/// What the chain and the content store say of `job`'s token `m`: its transaction, its batch
/// place, the metadata it points at and, where the content store has them, the image and
/// generation record; `missing` says what could not be read.
pub async fn adoption<P: Images + Pinning>(ports: &P, job: &Job, m: &ChainMint) -> Adoption {
    let mut a = Adoption { token_id: m.token_id.clone(), tx_hash: Some(m.tx_hash.clone()), ..Adoption::default() };
    let metadata_cid = match &m.via {
        Via::Alone | Via::Edition { .. } => m.known_metadata_cid(),
        Via::Batch { batch, index, directory_cid, .. } => {
            a.batch = Some(BatchSlot { batch: *batch, index: *index });
            match batch_entry(ports, directory_cid, *index).await {
                Ok(cid) => Some(cid),
                Err(why) => {
                    a.missing = Some(why);
                    return a;
                }
            }
        }
    };
    let Some(metadata_cid) = metadata_cid else {
        a.missing = Some("the chain does not say its metadata".into());
        return a;
    };
    a.metadata_cid = Some(metadata_cid.clone());
    if job.metadata_cid.as_deref() == Some(metadata_cid.as_str()) && job.image_key.is_some() {
        // The record holds this very content already.
        return a;
    }
    a.missing = recover(ports, job, &metadata_cid, &mut a).await.err();
    a
}

/// Reads the metadata `metadata_cid` and its image from the content store into `a` (the image
/// into the blob store); why not, when it cannot.
async fn recover<P: Images + Pinning>(
    ports: &P,
    job: &Job,
    metadata_cid: &str,
    a: &mut Adoption,
) -> Result<(), String> {
    let metadata = match ports.pinner().fetch(metadata_cid).await {
        Ok(bytes) if cid_of_bytes(&bytes) == metadata_cid => bytes,
        Ok(_) => return Err(format!("the content store's copy of metadata {metadata_cid} does not match its CID")),
        Err(e) => return Err(format!("metadata {metadata_cid} is not in the content store ({e})")),
    };
    let meta: TokenMetadata =
        serde_json::from_slice(&metadata).map_err(|e| format!("metadata {metadata_cid} is not token metadata: {e}"))?;
    let image_cid = meta
        .image_cid()
        .map(str::to_string)
        .ok_or_else(|| format!("metadata {metadata_cid} names no ipfs:// image"))?;
    a.image_cid = Some(image_cid.clone());
    match ports.pinner().fetch(&image_cid).await {
        Ok(png) if cid_of_bytes(&png) == image_cid => {
            let key = image_key(job.id(), &meta.provenance.image_sha256);
            ports.blobs().put(&key, png).await.map_err(|e| format!("image {image_cid} could not be stored: {e}"))?;
            a.image_key = Some(key);
            Ok(())
        }
        Ok(_) => Err(format!("the content store's copy of image {image_cid} does not match its CID")),
        Err(e) => Err(format!("image {image_cid} is not in the content store ({e})")),
    }
}

/// The CID of file `index` of the batch directory `dir`, read from the content store and
/// checked against the directory's CID.
async fn batch_entry<P: Images + Pinning>(ports: &P, dir: &str, index: u32) -> Result<String, String> {
    let block = ports
        .pinner()
        .fetch_block(dir)
        .await
        .map_err(|e| format!("batch directory {dir} is not in the content store ({e})"))?;
    let links = directory_links(dir, &block).map_err(|e| format!("batch directory {dir}: {e}"))?;
    links
        .into_iter()
        .find(|(name, _)| *name == index.to_string())
        .map(|(_, cid)| cid)
        .ok_or_else(|| format!("batch directory {dir} has no entry {index}"))
}
