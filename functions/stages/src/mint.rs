//! Mint: one token per job, guarded on chain, either alone or with other jobs in one batch.
//!
//! The contract claims each job's position on every path (alone, in a batch to one or many
//! recipients), so a job is minted at most once however jobs are grouped and whichever run
//! sends them. Before sending, this stage asks the chain what it holds: a job found minted
//! (a redelivery, a crash between the mint and the job store write, another run or grouping)
//! takes the chain's token and content ([`crate::reconcile::adoption`]) and nothing is sent.
//!
//! Alone ([`run`]): the minter reads the chain before sending.
//!
//! In batches ([`run_many`]): the published jobs of one receive are planned into batches (see
//! `latentmint_core::batch` for why a plan is fixed, stored and claimed before anything is
//! sent); a retry finds the batch on chain by its id and records its tokens, and a plan one of
//! whose jobs was minted elsewhere is released, never sent.

use std::collections::BTreeMap;

use latentmint_core::batch::{BatchId, BatchPlan, Member, token_ids};
use latentmint_core::ledger::{ChainMint, Fate, position_taken};
use latentmint_core::ports::PortError;
use latentmint_core::{Job, JobId, JobState};
use tracing::{info, warn};

use crate::ports::{self, Images, Minting, Pinning, StagePorts};
use crate::{StageError, StageOutcome, load, save};

/// Runs the mint for `id` alone.
pub async fn run<P: Images + Pinning + Minting>(ports: &P, id: JobId) -> Result<StageOutcome, StageError> {
    let mut job = load(ports, id).await?;
    if job.state == JobState::Minting {
        // Claimed for a batch: minted only with it.
        let mut settled = settle(ports, claimed_batch(&job)?).await?;
        return settled.remove(&id).ok_or_else(|| StageError::Fail(format!("job {id} is not in its batch's plan")));
    }
    if job.state != JobState::Published {
        return Ok(StageOutcome { job_id: id, state: job.state, next: None, did_work: false });
    }
    let metadata_cid =
        job.metadata_cid.clone().ok_or_else(|| StageError::Fail("published job has no metadata CID".into()))?;
    let receipt = ports.minter().mint(id, job.spec.recipient, &metadata_cid).await?;
    match receipt.found {
        // Minted before, maybe by another run with other content or in a batch: the chain's word.
        Some(m) => return adopt(ports, job, &m).await,
        None => job.record_mint(receipt.token_id, receipt.tx_hash).map_err(|e| StageError::Fail(e.to_string()))?,
    }
    if let Some(current) = save(ports, &job, JobState::Published).await? {
        return Ok(StageOutcome { job_id: id, state: current.state, next: None, did_work: false });
    }
    Ok(StageOutcome::done(&job, None))
}

/// Records what the chain says of `job`'s token `m` on the job (its token, transaction, place
/// in a batch and content), from whatever state the job is in.
async fn adopt<P: Images + Pinning + Minting>(
    ports: &P,
    mut job: Job,
    m: &ChainMint,
) -> Result<StageOutcome, StageError> {
    let from = job.state;
    let adoption = crate::reconcile::adoption(ports, &job, m).await;
    if let Some(why) = &adoption.missing {
        warn!(job = %job.id().short(), token = %m.token_id, "minted on chain; its content could not be read back: {why}");
    }
    job.adopt_chain_mint(adoption);
    if let Some(current) = save(ports, &job, from).await? {
        return Ok(StageOutcome { job_id: job.id(), state: current.state, next: None, did_work: false });
    }
    info!(job = %job.id().short(), token = %m.token_id, tx = %m.tx_hash, "already minted on chain; recorded, nothing sent");
    Ok(StageOutcome { job_id: job.id(), state: job.state, next: None, did_work: false })
}

/// Asks the chain about `jobs` before they are planned: a job found minted is recorded (and
/// filed in `results`), one whose position holds another job fails; the rest come back.
async fn unminted<P: Images + Pinning + Minting>(
    ports: &P,
    jobs: Vec<Job>,
    results: &mut BTreeMap<JobId, Result<StageOutcome, StageError>>,
) -> Result<Vec<Job>, StageError> {
    let ids: Vec<JobId> = jobs.iter().map(Job::id).collect();
    let fates = ports.minter().fates(&ids).await?;
    let mut rest = Vec::with_capacity(jobs.len());
    for (job, fate) in jobs.into_iter().zip(fates) {
        match fate {
            Fate::Unminted => rest.push(job),
            Fate::Minted(m) => {
                let id = job.id();
                results.insert(id, adopt(ports, job, &m).await);
            }
            Fate::PositionTaken(holder) => {
                results.insert(job.id(), Err(StageError::Fail(position_taken(job.id(), &holder))));
            }
        }
    }
    Ok(rest)
}

/// Mints the jobs `ids` (one receive of the mint queue), at most `max` per transaction: jobs
/// already claimed for a batch finish that batch; the other published ones are planned into
/// new batches in collection order (a batch of one is minted alone, which is cheaper). Returns
/// one result per id, in order.
pub async fn run_many<P: Images + Pinning + Minting>(
    ports: &P,
    ids: &[JobId],
    max: usize,
) -> Vec<Result<StageOutcome, StageError>> {
    let mut results: BTreeMap<JobId, Result<StageOutcome, StageError>> = BTreeMap::new();
    let mut claimed: Vec<BatchId> = Vec::new();
    let mut fresh = Vec::new();
    for &id in ids {
        match load(ports, id).await {
            Ok(job) if job.state == JobState::Published => fresh.push(job),
            Ok(job) if job.state == JobState::Minting => match claimed_batch(&job) {
                Ok(b) if !claimed.contains(&b) => claimed.push(b),
                Ok(_) => {}
                Err(e) => {
                    results.insert(id, Err(e));
                }
            },
            Ok(job) => {
                results.insert(id, Ok(StageOutcome { job_id: id, state: job.state, next: None, did_work: false }));
            }
            Err(e) => {
                results.insert(id, Err(e));
            }
        }
    }
    // Batches planned before (a crash, a retry) first: their plans may hold jobs received
    // here as published, which must not go into a new plan, and a plan voided there releases
    // its jobs to be planned here. So, after settling any, what is left is read again.
    if !claimed.is_empty() {
        for b in claimed {
            settle_into(ports, ids, b, &mut results).await;
        }
        fresh.clear();
        let pending: Vec<JobId> = ids.iter().copied().filter(|id| !results.contains_key(id)).collect();
        for id in pending {
            match load(ports, id).await {
                Ok(job) if job.state == JobState::Published => fresh.push(job),
                Ok(job) => {
                    results.insert(id, Ok(StageOutcome { job_id: id, state: job.state, next: None, did_work: false }));
                }
                Err(e) => {
                    results.insert(id, Err(e));
                }
            }
        }
    }
    // What the chain holds already is recorded, not planned (another run, another grouping).
    let fresh = match unminted(ports, fresh.clone(), &mut results).await {
        Ok(rest) => rest,
        Err(e) => {
            for job in &fresh {
                results.entry(job.id()).or_insert_with(|| Err(e.clone()));
            }
            Vec::new()
        }
    };
    let mut fresh = fresh;
    // Tokens in collection order within a batch: the first prompt's job gets the first token.
    fresh.sort_by(|a, b| {
        (&a.spec.collection, a.spec.index, a.spec.copy).cmp(&(&b.spec.collection, b.spec.index, b.spec.copy))
    });
    for group in fresh.chunks(max.max(1)) {
        if let [job] = group {
            results.insert(job.id(), run(ports, job.id()).await);
            continue;
        }
        match plan(ports, group).await {
            Ok(b) => settle_into(ports, ids, b, &mut results).await,
            Err(e) => {
                for job in group {
                    results.insert(job.id(), Err(e.clone()));
                }
            }
        }
    }
    ids.iter()
        .map(|id| {
            results
                .remove(id)
                .unwrap_or_else(|| Err(StageError::Retry(format!("job {} was planned again", id.short()))))
        })
        .collect()
}

/// Settles batch `b` and files the outcome under each of `ids` in it.
async fn settle_into<P: Images + Pinning + Minting>(
    ports: &P,
    ids: &[JobId],
    b: BatchId,
    results: &mut BTreeMap<JobId, Result<StageOutcome, StageError>>,
) {
    match settle(ports, b).await {
        Ok(outcomes) => {
            results.extend(outcomes.into_iter().filter(|(id, _)| ids.contains(id)).map(|(id, o)| (id, Ok(o))))
        }
        Err(e) => {
            // Every job of the batch shares its fate; only the ones received here report it.
            for &id in ids {
                if !results.contains_key(&id) && in_batch(ports, id, b).await {
                    results.insert(id, Err(e.clone()));
                }
            }
        }
    }
}

fn claimed_batch(job: &Job) -> Result<BatchId, StageError> {
    job.batch
        .map(|s| s.batch)
        .ok_or_else(|| StageError::Fail(format!("job {} is minting but names no batch", job.id().short())))
}

async fn in_batch<P: Images + Pinning + Minting>(ports: &P, id: JobId, batch: BatchId) -> bool {
    matches!(ports.jobs().get(id).await, Ok(Some(j)) if j.batch.is_some_and(|s| s.batch == batch))
}

/// Each job's signed metadata, as the publish stage stored it before pinning.
async fn metadata_of<P: Images + Pinning + Minting>(ports: &P, job: &Job) -> Result<Vec<u8>, StageError> {
    Ok(ports.blobs().get(&format!("metadata/{}.json", job.id())).await?)
}

/// Plans `group` as one batch, stores the plan and claims its jobs. Returns the batch to
/// settle; a job that could not be claimed (another worker got there first) makes the plan
/// void and its claims are released.
async fn plan<P: Images + Pinning + Minting>(ports: &P, group: &[Job]) -> Result<BatchId, StageError> {
    let mut members = Vec::with_capacity(group.len());
    for job in group {
        let metadata_cid = job
            .metadata_cid
            .clone()
            .ok_or_else(|| StageError::Fail(format!("published job {} has no metadata CID", job.id().short())))?;
        members.push(Member {
            job: job.id(),
            recipient: job.spec.recipient,
            metadata_cid,
            metadata: metadata_of(ports, job).await?,
        });
    }
    let plan = BatchPlan::new(members).map_err(|e| StageError::Fail(e.to_string()))?;
    let bytes = serde_json::to_vec_pretty(&plan).map_err(|e| StageError::Fail(format!("batch plan: {e}")))?;
    ports.blobs().put(&BatchPlan::key(plan.id), bytes).await?;
    for job in group {
        let mut claimed = job.clone();
        let slot = plan.slot(job.id()).ok_or_else(|| StageError::Fail("a planned job is not in its plan".into()))?;
        claimed.claim_for_batch(slot).map_err(|e| StageError::Fail(e.to_string()))?;
        if save(ports, &claimed, JobState::Published).await?.is_some() {
            release(ports, &plan).await?;
            return Err(StageError::Retry(format!(
                "job {} changed while batch {} was planned; planning again",
                job.id().short(),
                plan.id.short()
            )));
        }
    }
    info!(batch = %plan.id.short(), jobs = plan.jobs.len(), "batch planned");
    Ok(plan.id)
}

/// Lets go of every job still claimed for `plan`: it was never sent.
async fn release<P: Images + Pinning + Minting>(ports: &P, plan: &BatchPlan) -> Result<(), StageError> {
    for &id in &plan.jobs {
        let Some(mut job) = ports.jobs().get(id).await? else { continue };
        if job.state == JobState::Minting && job.batch.is_some_and(|s| s.batch == plan.id) {
            job.release_batch().map_err(|e| StageError::Fail(e.to_string()))?;
            save(ports, &job, JobState::Minting).await?;
        }
    }
    warn!(batch = %plan.id.short(), "batch released unsent; its jobs are planned again");
    Ok(())
}

/// Finishes batch `id`: makes sure every job of its plan is claimed for it (a crash may have
/// come between two claims), finds it on chain or pins its directory and sends it, and
/// records each job's token.
async fn settle<P: Images + Pinning + Minting>(
    ports: &P,
    id: BatchId,
) -> Result<BTreeMap<JobId, StageOutcome>, StageError> {
    let plan: BatchPlan = match ports.blobs().get(&BatchPlan::key(id)).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| StageError::Fail(format!("batch plan {}: {e}", BatchPlan::key(id))))?,
        Err(PortError::NotFound(_)) => {
            return Err(StageError::Fail(format!(
                "batch {id}: its plan ({}) is missing from the blob store",
                BatchPlan::key(id)
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let mut jobs = Vec::with_capacity(plan.jobs.len());
    for &job_id in &plan.jobs {
        let mut job = load(ports, job_id).await?;
        let ours = job.batch.is_some_and(|s| s.batch == id);
        match job.state {
            JobState::Minting | JobState::Minted if ours => {}
            JobState::Published if job.batch.is_none() => {
                let slot =
                    plan.slot(job_id).ok_or_else(|| StageError::Fail("a planned job is not in its plan".into()))?;
                job.claim_for_batch(slot).map_err(|e| StageError::Fail(e.to_string()))?;
                if save(ports, &job, JobState::Published).await?.is_some() {
                    release(ports, &plan).await?;
                    return Err(StageError::Retry(format!(
                        "batch {} lost job {}; planned again",
                        id.short(),
                        job_id.short()
                    )));
                }
            }
            // Minted alone, failed, or in another batch: this plan can never be sent whole.
            _ => {
                release(ports, &plan).await?;
                return Err(StageError::Retry(format!(
                    "batch {}: job {} is {} elsewhere; its other jobs are planned again",
                    id.short(),
                    job_id.short(),
                    job.state
                )));
            }
        }
        jobs.push(job);
    }
    // Found by its id, the batch may have been minted by another folder with content of its
    // own (the id hashes only its jobs): each job takes the chain's word, content included.
    if ports.minter().minted_batch(id).await?.is_some() {
        let fates = ports.minter().fates(&plan.jobs).await?;
        let mut outcomes = BTreeMap::new();
        for (job, fate) in jobs.into_iter().zip(fates) {
            let outcome = match fate {
                Fate::Minted(m) => adopt(ports, job, &m).await?,
                other => {
                    return Err(StageError::Retry(format!(
                        "batch {} is on chain but job {} reads {other:?}; reading the chain again",
                        id.short(),
                        job.id().short()
                    )));
                }
            };
            outcomes.insert(outcome.job_id, outcome);
        }
        return Ok(outcomes);
    }
    // A job of the plan minted elsewhere meanwhile (alone, or by another run in another
    // grouping): the contract would refuse the batch; its jobs are planned again, and the
    // minted one then takes the chain's token.
    let minted_elsewhere =
        |fates: Vec<Fate>| plan.jobs.iter().zip(fates).find(|(_, f)| *f != Fate::Unminted).map(|(j, _)| *j);
    if let Some(job) = minted_elsewhere(ports.minter().fates(&plan.jobs).await?) {
        release(ports, &plan).await?;
        return Err(StageError::Retry(format!(
            "batch {}: job {} is minted on chain already; its jobs are planned again",
            id.short(),
            job.short()
        )));
    }
    pin_directory(ports, &plan, &jobs).await?;
    let receipt = match ports.minter().mint_batch(&plan).await {
        Ok(r) => r,
        Err(e) => {
            // Refused because a job was minted elsewhere in the meantime: release the plan now
            // rather than spend the message's receives on a batch that can never go out.
            if let Ok(fates) = ports.minter().fates(&plan.jobs).await
                && minted_elsewhere(fates).is_some()
            {
                release(ports, &plan).await?;
            }
            return Err(e.into());
        }
    };
    let tokens = token_ids(receipt.first, plan.jobs.len());
    let mut outcomes = BTreeMap::new();
    for (mut job, token) in jobs.into_iter().zip(tokens) {
        if job.state == JobState::Minted {
            outcomes.insert(job.id(), StageOutcome { job_id: job.id(), state: job.state, next: None, did_work: false });
            continue;
        }
        job.record_mint(token, receipt.tx_hash.clone()).map_err(|e| StageError::Fail(e.to_string()))?;
        let outcome = match save(ports, &job, JobState::Minting).await? {
            None => StageOutcome::done(&job, None),
            Some(current) => StageOutcome { job_id: job.id(), state: current.state, next: None, did_work: false },
        };
        outcomes.insert(job.id(), outcome);
    }
    info!(batch = %id.short(), first = receipt.first, jobs = plan.jobs.len(), "batch minted");
    Ok(outcomes)
}

/// Pins the batch's metadata directory, and checks the pinner's CID against the plan's.
async fn pin_directory<P: Images + Pinning + Minting>(
    ports: &P,
    plan: &BatchPlan,
    jobs: &[Job],
) -> Result<(), StageError> {
    let mut files = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        files.push((i.to_string(), metadata_of(ports, job).await?));
    }
    let theirs = ports.pinner().pin_directory(&format!("batch-{}", plan.id), files).await?;
    if theirs != plan.directory_cid {
        return Err(StageError::Fail(format!(
            "the pinner returned CID {theirs} for batch {}'s metadata directory, but the plan computed {}; refusing to mint",
            plan.id, plan.directory_cid
        )));
    }
    Ok(())
}

impl StagePorts for ports::Mint {
    const STAGE: latentmint_core::Stage = latentmint_core::Stage::Mint;
    async fn run(&self, id: JobId, _: &str) -> Result<StageOutcome, StageError> {
        run(self, id).await
    }
}
