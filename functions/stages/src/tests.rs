//! Stage logic over the embedded adapters (real SQLite queues and job store, real files),
//! with a scripted generator, pinner and minter so each failure can be staged on purpose.
//! The real ONNX engine and chain are exercised in the repository's tests/.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use latentmint_core::batch::BatchPlan;
use latentmint_core::collection::LivingSection;
use latentmint_core::living::{EvolutionState, Trigger};
use latentmint_core::metadata::TokenMetadata;
use latentmint_core::ports::*;
use latentmint_core::testing::CollectionToml;
use latentmint_core::{JobId, JobState, Stage, StageMessage};
use latentmint_embedded::LocalContentStore;

use crate::evolve::{self, EvolvePorts, Evolved};
use crate::testing::*;
use crate::{Disposition, StageError, intake, operator, process};

#[tokio::test]
async fn jobs_flow_from_intake_to_minted() {
    let r = rig(None);
    let specs = specs(&["a red circle", "a blue square", "a green ring"]);
    for s in specs.clone() {
        assert_eq!(intake::submit(&r.ports, s).await.unwrap(), intake::Intake::Queued);
    }
    drain(&r).await;
    for s in &specs {
        let j = r.jobs.get(s.id).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Minted);
        assert!(j.image_cid.unwrap().starts_with("bafkrei"));
        assert_eq!(j.reviewed_by.as_deref(), Some("auto"));
    }
    assert_eq!(r.minter.txs.load(Ordering::SeqCst), 3);
    // The minted token points at metadata whose image is the job's image.
    let (_, to, uri) = r.minter.tokens.lock().unwrap()[&specs[0].id].clone();
    assert_eq!(to, specs[0].recipient);
    assert!(uri.starts_with("bafkrei"));
}

#[tokio::test]
async fn resubmitting_and_redelivering_does_no_work_twice() {
    let r = rig(None);
    let s = specs(&["a red circle"]).remove(0);
    intake::submit(&r.ports, s.clone()).await.unwrap();
    // A retried request before generation re-queues (the first message may have been lost).
    assert_eq!(intake::submit(&r.ports, s.clone()).await.unwrap(), intake::Intake::Requeued(Stage::Generate));
    drain(&r).await;
    assert_eq!(r.generator.calls.load(Ordering::SeqCst), 1, "two generate messages, one generation");
    assert_eq!(intake::submit(&r.ports, s.clone()).await.unwrap(), intake::Intake::Known(JobState::Minted));
    // Stale messages of every stage arrive again: nothing changes, nothing is minted again.
    for stage in Stage::ALL {
        r.queue.send(stage.queue(), &StageMessage::new(stage, s.id).to_body()).await.unwrap();
    }
    drain(&r).await;
    assert_eq!(r.minter.txs.load(Ordering::SeqCst), 1);
    assert_eq!(r.generator.calls.load(Ordering::SeqCst), 1);
}

/// Two jobs whose mints met a paused contract until their messages were dead-lettered (the
/// contract is still paused).
async fn stalled_at_mint() -> (Rig, Vec<latentmint_core::JobSpec>) {
    let r = rig(None);
    let s = specs(&["a red circle", "a blue square"]);
    r.minter.paused.store(true, Ordering::SeqCst);
    for spec in &s {
        intake::submit(&r.ports, spec.clone()).await.unwrap();
    }
    drain(&r).await;
    (r, s)
}

#[tokio::test]
async fn a_batch_stalled_past_its_retries_resumes_when_submitted_again() {
    let (r, s) = stalled_at_mint().await;
    // Each mint was retried until its message went to the dead-letter queue: the jobs wait,
    // published, neither failed nor minted.
    assert_eq!(r.queue.stats("mint").await.unwrap().dead, 2);
    for spec in &s {
        assert_eq!(state(&r, spec.id).await, JobState::Published);
    }
    // Unpaused, the same submission sends each job on to the stage it waits for.
    r.minter.paused.store(false, Ordering::SeqCst);
    for spec in &s {
        assert_eq!(intake::submit(&r.ports, spec.clone()).await.unwrap(), intake::Intake::Requeued(Stage::Mint));
    }
    drain(&r).await;
    for spec in &s {
        assert_eq!(state(&r, spec.id).await, JobState::Minted);
    }
    assert_eq!(r.minter.txs.load(Ordering::SeqCst), 2);
    assert_eq!(r.generator.calls.load(Ordering::SeqCst), 2, "nothing made again");
}

#[tokio::test]
async fn resume_sends_every_unsettled_job_on_and_nothing_is_done_twice() {
    let (r, s) = stalled_at_mint().await;
    r.minter.paused.store(false, Ordering::SeqCst);
    assert_eq!(r.queue.stats("mint").await.unwrap().dead, 2);
    let resumed = operator::resume(r.jobs.as_ref(), r.queue.as_ref()).await.unwrap();
    assert_eq!(resumed.sent.iter().map(|(_, stage)| *stage).collect::<Vec<_>>(), vec![Stage::Mint, Stage::Mint]);
    // Their dead letters are gone: the dead-letter queue shows only what is still stalled.
    assert_eq!((resumed.cleared, r.queue.stats("mint").await.unwrap().dead), (2, 0));
    drain(&r).await;
    for spec in &s {
        assert_eq!(state(&r, spec.id).await, JobState::Minted);
    }
    // Settled jobs wait for nothing: resuming again sends nothing.
    assert_eq!(operator::resume(r.jobs.as_ref(), r.queue.as_ref()).await.unwrap(), operator::Resumed::default());
    assert_eq!(r.minter.txs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn resume_sends_on_the_job_of_every_dead_letter_and_keeps_what_is_no_stage_message() {
    let r = rig(None);
    let s = specs(&["a red circle"]).remove(0);
    intake::submit(&r.ports, s.clone()).await.unwrap();
    // Its generate message dies (received past MaxReceives), beside a message no stage reads.
    r.queue.send("generate", "{not json").await.unwrap();
    for _ in 0..6 {
        for d in r.queue.receive("generate", 10, Duration::ZERO).await.unwrap() {
            r.queue.nack("generate", &d.receipt, Duration::ZERO).await.unwrap();
        }
    }
    assert_eq!(r.queue.stats("generate").await.unwrap().dead, 2);
    let resumed = operator::resume(r.jobs.as_ref(), r.queue.as_ref()).await.unwrap();
    assert_eq!((resumed.sent, resumed.cleared), (vec![(s.id, Stage::Generate)], 1));
    assert_eq!(r.queue.stats("generate").await.unwrap().dead, 1, "the garbled one stays for a human");
    drain(&r).await;
    assert_eq!(state(&r, s.id).await, JobState::Minted);
}

#[tokio::test]
async fn a_failed_job_is_retried_at_the_stage_that_failed_it() {
    // The pinner lies: publication fails the job for good.
    let r = rig(Some(Arc::new(LyingPinner)));
    let s = specs(&["a red circle"]).remove(0);
    intake::submit(&r.ports, s.clone()).await.unwrap();
    drain(&r).await;
    assert_eq!(state(&r, s.id).await, JobState::Failed);
    // Resuming does not touch it: failed is final until an operator says otherwise.
    assert!(operator::resume(r.jobs.as_ref(), r.queue.as_ref()).await.unwrap().sent.is_empty());
    assert_eq!(operator::retry(r.jobs.as_ref(), r.queue.as_ref(), s.id).await.unwrap(), Stage::Publish);
    let job = r.jobs.get(s.id).await.unwrap().unwrap();
    assert_eq!((job.state, job.error), (JobState::Approved, None));
    assert_eq!(r.queue.stats("publish").await.unwrap().visible, 1);
    // A job that is not failed is refused by name.
    let e = operator::retry(r.jobs.as_ref(), r.queue.as_ref(), s.id).await.unwrap_err().to_string();
    assert!(e.contains("only a failed job can be retried"), "{e}");
}

#[test]
fn each_unsettled_state_waits_for_one_stage() {
    use intake::waiting_for;
    assert_eq!(waiting_for(JobState::Queued), Some(Stage::Generate));
    assert_eq!(waiting_for(JobState::Generated), Some(Stage::Review));
    assert_eq!(waiting_for(JobState::Approved), Some(Stage::Publish));
    assert_eq!(waiting_for(JobState::Published), Some(Stage::Mint));
    // An operator moves a job awaiting review on; the others are final.
    for s in [JobState::AwaitingReview, JobState::Rejected, JobState::Minted, JobState::Failed] {
        assert_eq!(waiting_for(s), None, "{s}");
    }
}

#[tokio::test]
async fn a_lost_next_message_is_resent_on_redelivery() {
    let r = rig(None);
    let s = specs(&["a red circle"]).remove(0);
    intake::submit(&r.ports, s.clone()).await.unwrap();
    // Generate, but "crash" before the review message is sent: keep the delivery unacked
    // and remove what the stage queued.
    let d = r.queue.receive("generate", 1, Duration::ZERO).await.unwrap().remove(0);
    let Disposition::Ack(Some(outcome)) = process(&r.ports, Stage::Generate, &d).await else { panic!() };
    assert_eq!(outcome.next, Some(Stage::Review));
    let lost = r.queue.receive("review", 10, Duration::from_secs(3600)).await.unwrap();
    assert_eq!(lost.len(), 1);
    // The generate message comes back (visibility 0): the stage forwards again.
    drain(&r).await;
    assert_eq!(state(&r, s.id).await, JobState::Minted);
    assert_eq!(r.generator.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn qa_rejects_a_black_image_and_nothing_is_minted() {
    let r = rig(None);
    let s = specs(&["a black void"]).remove(0);
    intake::submit(&r.ports, s.clone()).await.unwrap();
    drain(&r).await;
    let j = r.jobs.get(s.id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Rejected);
    assert!(j.error.unwrap().contains("automatic QA"));
    assert_eq!(r.minter.txs.load(Ordering::SeqCst), 0);
}

/// Two jobs that make the same picture (same prompt, same seed): the second waits for a human,
/// its report naming the first; a third, different picture is approved.
#[tokio::test]
async fn a_picture_made_twice_waits_for_a_human_naming_the_first() {
    let r = rig(None);
    let ss = CollectionToml::new("T", "T")
        .section("[[prompts]]\ntext = \"a red circle\"\nseed = 7\n[[prompts]]\ntext = \"a red circle\"\nseed = 7")
        .prompt("a blue square")
        .jobs();
    for s in ss.clone() {
        intake::submit(&r.ports, s).await.unwrap();
    }
    drain(&r).await;
    assert_eq!(state(&r, ss[0].id).await, JobState::Minted);
    assert_eq!(state(&r, ss[2].id).await, JobState::Minted);
    let copy = r.jobs.get(ss[1].id).await.unwrap().unwrap();
    assert_eq!(copy.state, JobState::AwaitingReview);
    let qa = copy.qa.unwrap();
    let dup = qa.checks.iter().find(|c| c.check == "duplicate").unwrap();
    assert_eq!((dup.value, dup.verdict), (0.0, latentmint_core::qa::CheckVerdict::Human));
    assert!(dup.detail.contains(&ss[0].id.short()), "{}", dup.detail);
    assert_eq!(qa.why(), vec![format!("duplicate: {}", dup.detail)]);
    assert_eq!(r.minter.txs.load(Ordering::SeqCst), 2);
}

/// A copy whose original is still being reviewed (its hash stored, its verdict not yet) is
/// caught too: the hash is stored before the others are read.
#[tokio::test]
async fn a_copy_of_an_image_under_review_is_caught() {
    let r = rig(None);
    let ss = CollectionToml::new("T", "T")
        .section("[[prompts]]\ntext = \"a red circle\"\nseed = 7\n[[prompts]]\ntext = \"a red circle\"\nseed = 7")
        .jobs();
    for s in ss.clone() {
        intake::submit(&r.ports, s).await.unwrap();
    }
    // Generate both, then stage the first mid-review: its hash stored, still `generated`.
    for d in r.queue.receive(Stage::Generate.queue(), 10, Duration::from_secs(30)).await.unwrap() {
        assert!(matches!(process(&r.ports, Stage::Generate, &d).await, Disposition::Ack(_)));
        r.queue.ack(Stage::Generate.queue(), &d.receipt).await.unwrap();
    }
    let mut first = r.jobs.get(ss[0].id).await.unwrap().unwrap();
    let png = r.ports.blobs.get(first.image_key.as_deref().unwrap()).await.unwrap();
    first.qa = Some(r.ports.inspector.inspect(&first.spec, &png).await.unwrap());
    assert!(r.jobs.update(&first, JobState::Generated).await.unwrap());
    crate::review::run(&r.ports.review(), ss[1].id).await.unwrap();
    assert_eq!(state(&r, ss[1].id).await, JobState::AwaitingReview);
}

/// `mode = "all"` holds every image, even one every check passes; `sample = 1` does the same
/// for images the checks pass, and still rejects what they reject.
#[tokio::test]
async fn the_review_policy_can_send_every_image_to_a_human() {
    for (review, good, black) in [
        ("mode = \"all\"", JobState::AwaitingReview, JobState::AwaitingReview),
        ("sample = 1.0", JobState::AwaitingReview, JobState::Rejected),
        ("sample = 0.0", JobState::Minted, JobState::Rejected),
    ] {
        let r = rig(None);
        let ss = CollectionToml::new("T", "T")
            .section(&format!("[review]\n{review}"))
            .prompt("a red circle")
            .prompt("a black night")
            .jobs();
        for s in ss.clone() {
            intake::submit(&r.ports, s).await.unwrap();
        }
        drain(&r).await;
        assert_eq!((state(&r, ss[0].id).await, state(&r, ss[1].id).await), (good, black), "{review}");
        let why = r.jobs.get(ss[0].id).await.unwrap().unwrap().qa.unwrap().reason.unwrap();
        assert!(why.contains(review.split(' ').next().unwrap()) || good == JobState::Minted, "{review}: {why}");
    }
}

#[tokio::test]
async fn unsure_images_wait_for_an_operator() {
    let r = rig(None);
    let ss = specs(&["a murky fog", "another murky fog"]);
    for s in ss.clone() {
        intake::submit(&r.ports, s).await.unwrap();
    }
    drain(&r).await;
    assert_eq!(state(&r, ss[0].id).await, JobState::AwaitingReview);
    operator::decide(r.jobs.as_ref(), r.queue.as_ref(), ss[0].id, true, "ada").await.unwrap();
    operator::decide(r.jobs.as_ref(), r.queue.as_ref(), ss[1].id, false, "ada").await.unwrap();
    // Deciding twice is refused.
    assert!(operator::decide(r.jobs.as_ref(), r.queue.as_ref(), ss[1].id, true, "bob").await.is_err());
    drain(&r).await;
    let approved = r.jobs.get(ss[0].id).await.unwrap().unwrap();
    assert_eq!((approved.state, approved.reviewed_by.as_deref()), (JobState::Minted, Some("ada")));
    assert_eq!(state(&r, ss[1].id).await, JobState::Rejected);
    assert_eq!(r.minter.txs.load(Ordering::SeqCst), 1);
}

/// The publisher crashes after pinning, before the job records its CIDs. With a signer whose
/// signatures differ on every call (KMS), the retry still publishes the same metadata
/// document: one token, one metadata CID, nothing else pinned, one signature made.
#[tokio::test]
async fn a_publish_retried_after_a_crash_pins_the_same_metadata() {
    let mut r = rig(None);
    let pinner = Arc::new(RecordingPinner {
        inner: LocalContentStore::new(r.dir.path().join("ipfs")),
        pinned: Mutex::default(),
    });
    let signer = Arc::new(NoncedSigner::default());
    r.ports.pinner = pinner.clone();
    r.ports.signer = signer.clone();
    let s = specs(&["a red circle"]).remove(0);
    intake::submit(&r.ports, s.clone()).await.unwrap();
    // Generate and review, and keep the approved record: the state the crash leaves behind.
    for stage in [Stage::Generate, Stage::Review] {
        for d in r.queue.receive(stage.queue(), 10, Duration::ZERO).await.unwrap() {
            process(&r.ports, stage, &d).await;
            r.queue.ack(stage.queue(), &d.receipt).await.unwrap();
        }
    }
    assert_eq!(state(&r, s.id).await, JobState::Approved);
    let approved = r.jobs.get(s.id).await.unwrap().unwrap();
    let first = crate::publish::run(&r.ports, s.id).await.unwrap();
    let published = r.jobs.get(s.id).await.unwrap().unwrap();
    assert_eq!(published.state, JobState::Published, "{first:?}");
    // The crash: the pins happened, the job record did not move.
    assert!(r.jobs.update(&approved, JobState::Published).await.unwrap());
    crate::publish::run(&r.ports, s.id).await.unwrap();
    let again = r.jobs.get(s.id).await.unwrap().unwrap();
    assert_eq!(again.metadata_cid, published.metadata_cid, "the retry publishes the same document");
    let mut distinct = pinner.pinned.lock().unwrap().clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 2, "one image and one metadata document pinned: {distinct:?}");
    assert_eq!(signer.calls.load(Ordering::SeqCst), 1, "signed once");
}

#[tokio::test]
async fn a_pinner_with_the_wrong_cid_fails_the_job_before_minting() {
    let r = rig(Some(Arc::new(LyingPinner)));
    let s = specs(&["a red circle"]).remove(0);
    intake::submit(&r.ports, s.clone()).await.unwrap();
    drain(&r).await;
    let j = r.jobs.get(s.id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Failed);
    assert!(j.error.unwrap().contains("refusing to publish"));
    assert_eq!(r.minter.txs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn transient_generator_errors_are_retried() {
    let r = rig(None);
    r.generator.fail_next.store(2, Ordering::SeqCst);
    let s = specs(&["a red circle"]).remove(0);
    intake::submit(&r.ports, s.clone()).await.unwrap();
    let seen = drain(&r).await;
    assert_eq!(seen.iter().filter(|d| matches!(d, Disposition::Retry(..))).count(), 2);
    assert_eq!(state(&r, s.id).await, JobState::Minted);
}

#[tokio::test]
async fn a_job_sent_again_while_it_is_generated_is_generated_once() {
    let r = rig(None);
    let s = specs(&["a red circle"]).remove(0);
    intake::submit(&r.ports, s.clone()).await.unwrap();
    let first = r.queue.receive("generate", 1, Duration::from_secs(60)).await.unwrap().remove(0);
    let hold = r.generator.hold.lock().await;
    let ports = r.ports.clone();
    let generating = tokio::spawn(async move { process(&ports, Stage::Generate, &first).await });
    while state(&r, s.id).await != JobState::Generating {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Meanwhile an operator resumes (the message in flight is the job's: nothing is sent),
    // and the collection is submitted again.
    let resumed = operator::resume(r.jobs.as_ref(), r.queue.as_ref()).await.unwrap();
    assert_eq!((resumed.sent, resumed.queued), (vec![], 1));
    assert_eq!(intake::submit(&r.ports, s.clone()).await.unwrap(), intake::Intake::Requeued(Stage::Generate));
    for resend in r.queue.receive("generate", 10, Duration::from_secs(60)).await.unwrap() {
        // Dropped: the claim's holder finishes the job and sends it on. (Generating it again
        // would wait for `hold`: the timeout turns that into a failure.)
        let d = tokio::time::timeout(Duration::from_secs(10), process(&r.ports, Stage::Generate, &resend))
            .await
            .expect("a resend of a claimed job generated it again");
        assert!(matches!(&d, Disposition::Ack(Some(o)) if !o.did_work && o.next.is_none()), "{d:?}");
    }
    drop(hold);
    let d = generating.await.unwrap();
    assert!(matches!(&d, Disposition::Ack(Some(o)) if o.did_work && o.next == Some(Stage::Review)), "{d:?}");
    assert_eq!(r.generator.calls.load(Ordering::SeqCst), 1, "generated once");
    let job = r.jobs.get(s.id).await.unwrap().unwrap();
    assert_eq!((job.state, job.lease), (JobState::Generated, None));
}

#[tokio::test]
async fn a_generation_that_will_be_retried_lets_the_job_go_and_a_lapsed_claim_is_taken_over() {
    let r = rig(None);
    let s = specs(&["a red circle"]).remove(0);
    intake::submit(&r.ports, s.clone()).await.unwrap();
    r.generator.fail_next.store(1, Ordering::SeqCst);
    let d = r.queue.receive("generate", 1, Duration::from_secs(60)).await.unwrap().remove(0);
    assert!(matches!(process(&r.ports, Stage::Generate, &d).await, Disposition::Retry(..)));
    let job = r.jobs.get(s.id).await.unwrap().unwrap();
    assert_eq!((job.state, &job.lease), (JobState::Queued, &None), "released for whichever message comes next");

    // A holder that died long ago, whose message is gone (dead-lettered): a resume takes over.
    let mut stale = job;
    stale.claim_generation("gone", 0, 1).unwrap();
    assert!(r.jobs.update(&stale, JobState::Queued).await.unwrap());
    r.queue.ack("generate", &d.receipt).await.unwrap();
    assert_eq!(operator::resume(r.jobs.as_ref(), r.queue.as_ref()).await.unwrap().sent, vec![(s.id, Stage::Generate)]);
    drain(&r).await;
    assert_eq!(state(&r, s.id).await, JobState::Minted);
    assert_eq!(r.generator.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_garbled_message_ends_in_the_dead_letter_queue() {
    let r = rig(None);
    r.queue.send("mint", "{not json").await.unwrap();
    drain(&r).await;
    let st = r.queue.stats("mint").await.unwrap();
    assert_eq!((st.visible, st.in_flight, st.dead), (0, 0, 1));
}

/// An in-memory `tokenURI` table: counts `setTokenURI` transactions; the next ones can fail
/// (an RPC that drops the answer).
#[derive(Default)]
struct Uris {
    uris: Mutex<HashMap<String, String>>,
    /// Transactions that moved a pointer.
    txs: AtomicUsize,
    /// Calls of `set_token_uri`, whatever they did: an event acted on once calls it once.
    calls: AtomicUsize,
    fail_next: AtomicUsize,
}

#[async_trait]
impl MetadataUpdater for Uris {
    async fn token_uri(&self, token_id: &str) -> PortResult<String> {
        self.uris.lock().unwrap().get(token_id).cloned().ok_or_else(|| PortError::NotFound(token_id.into()))
    }
    async fn set_token_uri(&self, token_id: &str, uri: &str) -> PortResult<Option<String>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail_next.load(Ordering::SeqCst) > 0 {
            self.fail_next.fetch_sub(1, Ordering::SeqCst);
            return Err(PortError::Transient("RPC dropped the answer".into()));
        }
        let mut u = self.uris.lock().unwrap();
        if u.get(token_id).is_some_and(|now| now == uri) {
            return Ok(None);
        }
        u.insert(token_id.into(), uri.into());
        Ok(Some(format!("0xset{}", self.txs.fetch_add(1, Ordering::SeqCst) + 1)))
    }
}

#[derive(Default)]
struct MemEvolutions(Mutex<HashMap<String, EvolutionState>>, Mutex<HashMap<String, u64>>);

#[async_trait]
impl EvolutionStore for MemEvolutions {
    async fn get(&self, key: &str) -> PortResult<Option<EvolutionState>> {
        Ok(self.0.lock().unwrap().get(key).cloned())
    }
    async fn put(&self, key: &str, state: &EvolutionState) -> PortResult<()> {
        self.0.lock().unwrap().insert(key.into(), state.clone());
        Ok(())
    }
    async fn cursor(&self, name: &str) -> PortResult<Option<u64>> {
        Ok(self.1.lock().unwrap().get(name).copied())
    }
    async fn set_cursor(&self, name: &str, next: u64) -> PortResult<()> {
        self.1.lock().unwrap().insert(name.into(), next);
        Ok(())
    }
}

/// A chain with a fixed head, list of transfers and list of mints.
struct Transfers(u64, Vec<latentmint_core::living::Transfer>, Vec<latentmint_core::living::Transfer>);

#[async_trait]
impl TransferSource for Transfers {
    async fn head(&self) -> PortResult<u64> {
        Ok(self.0)
    }
    async fn transfers(&self, from: u64, to: u64) -> PortResult<Vec<latentmint_core::living::Transfer>> {
        Ok(self.1.iter().filter(|t| (from..=to).contains(&t.block)).cloned().collect())
    }
    async fn mints(&self, from: u64, to: u64) -> PortResult<Vec<latentmint_core::living::Transfer>> {
        Ok(self.2.iter().filter(|t| (from..=to).contains(&t.block)).cloned().collect())
    }
}

/// A price feed with fixed answers.
struct Feed(u8, Vec<latentmint_core::living::Answer>);

#[async_trait]
impl OracleSource for Feed {
    fn address(&self) -> String {
        "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419".into()
    }
    async fn decimals(&self) -> PortResult<u8> {
        Ok(self.0)
    }
    async fn answers(&self, from: u64, to: u64) -> PortResult<Vec<latentmint_core::living::Answer>> {
        Ok(self.1.iter().filter(|a| (from..=to).contains(&a.block)).cloned().collect())
    }
}

fn evolve_ports<'a>(r: &'a Rig, uris: &'a Uris, store: &'a MemEvolutions) -> EvolvePorts<'a> {
    EvolvePorts {
        generator: r.generator.as_ref(),
        pinner: r.ports.pinner.as_ref(),
        chain: uris,
        store,
        signer: &DigestSigner,
    }
}

/// A collection of one token, minted: the rig, and the token's id and URI.
async fn one_minted_token() -> (Rig, String, String) {
    let r = rig(None);
    let spec = specs(&["a red circle"]).remove(0);
    intake::submit(&r.ports, spec.clone()).await.unwrap();
    drain(&r).await;
    let (token, _, cid) = r.minter.tokens.lock().unwrap()[&spec.id].clone();
    (r, token, format!("ipfs://{cid}"))
}

fn transfer(log_index: u64) -> Trigger {
    Trigger { chain_id: 31_337, block: 7, tx_hash: format!("0x{}", "aa".repeat(32)), log_index }
}

#[tokio::test]
async fn a_transfer_evolves_its_token_once_even_when_the_update_is_cut_off() {
    let (r, token, minted_uri) = one_minted_token().await;
    let uris = Uris::default();
    uris.uris.lock().unwrap().insert(token.clone(), minted_uri.clone());
    let store = MemEvolutions::default();
    let ports = evolve_ports(&r, &uris, &store);
    let living = LivingSection { strength: 0.6, prompt: "{prompt}, older".into(), max_generations: 3, oracle: None };

    // The pointer update fails after the new image and metadata are pinned (a crash there).
    uris.fail_next.store(1, Ordering::SeqCst);
    let err = evolve::run(&ports, &living, transfer(1), &token, None).await.unwrap_err();
    assert!(matches!(err, StageError::Retry(_)), "{err:?}");
    assert!(matches!(store.get(&transfer(1).key()).await.unwrap(), Some(EvolutionState::Published { .. })));
    let generated = r.generator.calls.load(Ordering::SeqCst);

    // The retry only moves the pointer: no second image, one transaction.
    let done = evolve::run(&ports, &living, transfer(1), &token, None).await.unwrap();
    assert!(done.did_work);
    let EvolutionState::Updated { metadata_cid, tx_hash, .. } = done.state else { panic!("{done:?}") };
    assert_eq!(tx_hash.as_deref(), Some("0xset1"));
    assert_eq!(r.generator.calls.load(Ordering::SeqCst), generated, "resumed, not regenerated");
    assert_eq!(uris.token_uri(&token).await.unwrap(), format!("ipfs://{metadata_cid}"));
    let again = evolve::run(&ports, &living, transfer(1), &token, None).await.unwrap();
    assert_eq!(again, Evolved { state: again.state.clone(), did_work: false });
    assert_eq!(uris.txs.load(Ordering::SeqCst), 1, "the event is acted on once");
    assert_eq!(uris.calls.load(Ordering::SeqCst), 2, "the cut-off update and its retry; the third run calls nothing");

    // The image grew from the minted one, and the metadata says so.
    let parent: TokenMetadata =
        serde_json::from_slice(&r.ports.pinner.fetch(minted_uri.trim_start_matches("ipfs://")).await.unwrap()).unwrap();
    let req = r.generator.last.lock().unwrap().clone().expect("a generation");
    let init = req.init_image.expect("img2img");
    assert_eq!(init.strength, 0.6);
    let parent_png = r.ports.pinner.fetch(parent.image.trim_start_matches("ipfs://")).await.unwrap();
    assert_eq!(init.png, parent_png, "from the token's current image");
    assert_eq!(req.prompt, format!("{}, older", parent.provenance.prompt));
    let child: TokenMetadata = serde_json::from_slice(&r.ports.pinner.fetch(&metadata_cid).await.unwrap()).unwrap();
    assert!(child.provenance.signature.is_some(), "the new record is signed");
    assert!(parent.provenance.signature.is_some(), "minted records are signed at publication");
    let evo = child.provenance.evolution.expect("evolution record");
    assert_eq!((evo.generation, evo.parent_metadata.as_str()), (1, minted_uri.as_str()));
    assert_eq!(evo.trigger, transfer(1));
}

#[tokio::test]
async fn metadata_that_is_not_pinned_content_is_refused_for_good() {
    let (r, token, _) = one_minted_token().await;
    let uris = Uris::default();
    uris.uris.lock().unwrap().insert(token.clone(), "https://example.com/1.json".into());
    let store = MemEvolutions::default();
    let ports = evolve_ports(&r, &uris, &store);
    let living = LivingSection { strength: 0.5, prompt: "{prompt}".into(), max_generations: 1, oracle: None };
    let err = evolve::run(&ports, &living, transfer(2), &token, None).await.unwrap_err();
    assert!(matches!(&err, StageError::Fail(m) if m.contains("ipfs://")), "{err:?}");
    assert_eq!(uris.txs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_scan_moves_its_cursor_only_past_handled_transfers() {
    let (r, token, minted_uri) = one_minted_token().await;
    let uris = Uris::default();
    uris.uris.lock().unwrap().insert(token.clone(), minted_uri);
    let store = MemEvolutions::default();
    let ports = evolve_ports(&r, &uris, &store);
    let living = LivingSection { strength: 0.5, prompt: "{prompt}".into(), max_generations: 4, oracle: None };
    let moved = latentmint_core::living::Transfer {
        token_id: token.clone(),
        block: 3,
        tx_hash: format!("0x{}", "bb".repeat(32)),
        log_index: 0,
    };
    // Block 9 is the head but not yet confirmed (lag 2): only blocks up to 7 are read.
    let chain = Transfers(9, vec![moved.clone()], vec![]);
    let watch = evolve::Watch { source: &chain, cursor: "c".into(), chain_id: 31_337, lag: 2, from_block: 0 };

    uris.fail_next.store(1, Ordering::SeqCst);
    assert!(matches!(evolve::scan(&ports, &living, &watch, None).await, Err(StageError::Retry(_))));
    assert_eq!(store.cursor("c").await.unwrap(), None, "a failed range is read again");

    let done = evolve::scan(&ports, &living, &watch, None).await.unwrap();
    assert_eq!(done.len(), 1);
    assert!(matches!(&done[0], (t, EvolutionState::Updated { .. }) if *t == moved));
    assert_eq!(store.cursor("c").await.unwrap(), Some(8));
    assert!(evolve::scan(&ports, &living, &watch, None).await.unwrap().is_empty(), "nothing new");
    assert_eq!(uris.txs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_answer_in_another_mood_evolves_every_token_minted_by_then_once() {
    use latentmint_core::collection::{Mood, OracleSection};
    use latentmint_core::living::{Answer, Transfer};
    let r = rig(None);
    let s = specs(&["a red circle", "a blue square"]);
    for spec in &s {
        intake::submit(&r.ports, spec.clone()).await.unwrap();
    }
    drain(&r).await;
    let uris = Uris::default();
    let tokens: Vec<String> = s
        .iter()
        .map(|spec| {
            let (token, _, cid) = r.minter.tokens.lock().unwrap()[&spec.id].clone();
            uris.uris.lock().unwrap().insert(token.clone(), format!("ipfs://{cid}"));
            token
        })
        .collect();
    let store = MemEvolutions::default();
    let ports = evolve_ports(&r, &uris, &store);
    let feed_address = "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419".to_string();
    let living = LivingSection {
        strength: 0.5,
        prompt: "{prompt}, {mood}".into(),
        max_generations: 4,
        oracle: Some(OracleSection {
            feed: feed_address.clone(),
            moods: vec![
                Mood { below: Some(2000.0), words: "under a stormy sky".into() },
                Mood { below: None, words: "in bright sunshine".into() },
            ],
        }),
    };
    let at = |block, log_index| (block, format!("0x{:064x}", block * 100 + log_index), log_index);
    let minted = |token: &str, block| {
        let (block, tx_hash, log_index) = at(block, 0);
        Transfer { token_id: token.into(), block, tx_hash, log_index }
    };
    let answer = |value: &str, block| {
        let (block, tx_hash, log_index) = at(block, 1);
        Answer { answer: value.into(), round: block.to_string(), block, tx_hash, log_index }
    };
    // The second token is minted after the first answer: only later answers evolve it.
    let chain = Transfers(20, vec![], vec![minted(&tokens[0], 1), minted(&tokens[1], 6)]);
    // 8 decimals: 1500, then 1800 (the same mood), then 2500.
    let feed = Feed(8, vec![answer("150000000000", 5), answer("180000000000", 7), answer("250000000000", 9)]);
    let watch = evolve::Watch { source: &chain, cursor: "o".into(), chain_id: 31_337, lag: 0, from_block: 0 };
    // A call already out of time reads nothing and moves nothing.
    let past = Some(std::time::Instant::now());
    assert!(evolve::scan_oracle(&ports, &living, &watch, &feed, past).await.unwrap().is_empty());
    assert_eq!(uris.txs.load(Ordering::SeqCst), 0);
    let done = evolve::scan_oracle(&ports, &living, &watch, &feed, None).await.unwrap();
    let evolved: Vec<&str> = done.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(evolved, [tokens[0].as_str(), tokens[0].as_str(), tokens[1].as_str()]);
    assert_eq!(uris.txs.load(Ordering::SeqCst), 3);
    let req = r.generator.last.lock().unwrap().clone().expect("a generation");
    assert!(req.prompt.ends_with(", in bright sunshine"), "{}", req.prompt);
    // The record says which answer moved it.
    let EvolutionState::Updated { metadata_cid, .. } = &done[2].1 else { panic!("{done:?}") };
    let child: TokenMetadata = serde_json::from_slice(&r.ports.pinner.fetch(metadata_cid).await.unwrap()).unwrap();
    let reading = child.provenance.evolution.and_then(|e| e.oracle).expect("the feed's reading");
    assert_eq!(
        (reading.answer.as_str(), reading.decimals, reading.mood.as_str()),
        ("250000000000", 8, "in bright sunshine")
    );
    assert_eq!(reading.feed, feed_address);
    // Scanning again changes nothing; the last mood is remembered.
    assert!(evolve::scan_oracle(&ports, &living, &watch, &feed, None).await.unwrap().is_empty());
    assert_eq!(store.cursor(&format!("o:feed:{feed_address}:mood")).await.unwrap(), Some(2));
    assert_eq!(uris.txs.load(Ordering::SeqCst), 3);
}

/// Runs every stage but the mint until the queues before it are quiet: the jobs wait,
/// published, in the mint queue.
async fn publish_all(r: &Rig) {
    loop {
        let mut any = false;
        for stage in [Stage::Generate, Stage::Review, Stage::Publish] {
            for d in r.queue.receive(stage.queue(), 10, Duration::from_secs(30)).await.unwrap() {
                any = true;
                match process(&r.ports, stage, &d).await {
                    Disposition::Ack(_) => r.queue.ack(stage.queue(), &d.receipt).await.unwrap(),
                    Disposition::Retry(..) => r.queue.nack(stage.queue(), &d.receipt, Duration::ZERO).await.unwrap(),
                }
            }
        }
        if !any {
            return;
        }
    }
}

/// One receive of up to `n` mint messages, minted in batches of at most `batch`.
async fn mint_receive(r: &Rig, n: usize, batch: usize) -> Vec<Disposition> {
    let got = r.queue.receive(Stage::Mint.queue(), n, Duration::from_secs(30)).await.unwrap();
    let out = crate::process_all(&r.ports, Stage::Mint, &got, batch).await;
    for (d, disp) in got.iter().zip(&out) {
        match disp {
            Disposition::Ack(_) => r.queue.ack(Stage::Mint.queue(), &d.receipt).await.unwrap(),
            Disposition::Retry(..) => r.queue.nack(Stage::Mint.queue(), &d.receipt, Duration::ZERO).await.unwrap(),
        }
    }
    out
}

async fn published(r: &Rig, n: usize) -> Vec<latentmint_core::Job> {
    let s = specs(&["a red circle", "a blue square", "a green ring", "a pink star", "a gold moon"]);
    for spec in s.iter().take(n) {
        intake::submit(&r.ports, spec.clone()).await.unwrap();
    }
    publish_all(r).await;
    let mut jobs = Vec::new();
    for spec in s.iter().take(n) {
        let j = r.jobs.get(spec.id).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Published);
        jobs.push(j);
    }
    jobs
}

/// The plan the mint stage would make of `jobs`, stored, with the first `claimed` jobs claimed
/// for it: where a mint worker that crashed mid-way left things.
async fn planned(r: &Rig, jobs: &[latentmint_core::Job], claimed: usize) -> BatchPlan {
    let mut members = Vec::new();
    for j in jobs {
        members.push(latentmint_core::batch::Member {
            job: j.id(),
            recipient: j.spec.recipient,
            metadata_cid: j.metadata_cid.clone().unwrap(),
            metadata: r.ports.blobs.get(&format!("metadata/{}.json", j.id())).await.unwrap(),
        });
    }
    let plan = BatchPlan::new(members).unwrap();
    r.ports.blobs.put(&BatchPlan::key(plan.id), serde_json::to_vec(&plan).unwrap()).await.unwrap();
    for j in jobs.iter().take(claimed) {
        let mut c = j.clone();
        c.claim_for_batch(plan.slot(j.id()).unwrap()).unwrap();
        assert!(r.jobs.update(&c, JobState::Published).await.unwrap());
    }
    plan
}

#[tokio::test]
async fn the_published_jobs_of_one_receive_are_minted_in_one_transaction() {
    let r = rig(None);
    let jobs = published(&r, 3).await;
    let out = mint_receive(&r, 10, 50).await;
    assert!(out.iter().all(|d| matches!(d, Disposition::Ack(_))), "{out:?}");
    assert_eq!(r.minter.txs.load(Ordering::SeqCst), 1, "one transaction for the three");
    let plan = r.minter.batches.lock().unwrap().values().next().unwrap().1.clone();
    // Token first + i is the plan's job i, and file i of the pinned directory is its metadata.
    let block = r.ports.pinner.fetch_block(&plan.directory_cid).await.unwrap();
    let links = latentmint_core::cid::directory_links(&plan.directory_cid, &block).unwrap();
    for (i, id) in plan.jobs.iter().enumerate() {
        let j = r.jobs.get(*id).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Minted);
        assert_eq!(j.token_id, Some((1000 + i as u64).to_string()));
        assert_eq!(j.batch.map(|s| (s.batch, s.index)), Some((plan.id, i as u32)));
        assert!(links.contains(&(i.to_string(), j.metadata_cid.clone().unwrap())));
    }
    let ids: Vec<JobId> = jobs.iter().map(|j| j.id()).collect();
    assert_eq!(plan.jobs, ids, "tokens in collection order");
    // Redelivered, the messages mint nothing more, and do not even ask the minter to.
    let calls = r.minter.calls.load(Ordering::SeqCst);
    for j in &jobs {
        r.queue.send(Stage::Mint.queue(), &StageMessage::new(Stage::Mint, j.id()).to_body()).await.unwrap();
    }
    mint_receive(&r, 10, 50).await;
    assert_eq!(r.minter.txs.load(Ordering::SeqCst), 1);
    assert_eq!(r.minter.calls.load(Ordering::SeqCst), calls, "minted jobs are not sent to the minter again");
}

#[tokio::test]
async fn batches_hold_at_most_the_configured_size_and_a_lone_job_is_minted_alone() {
    let r = rig(None);
    published(&r, 5).await;
    mint_receive(&r, 10, 2).await;
    assert_eq!(r.minter.txs.load(Ordering::SeqCst), 3, "2 + 2 + 1");
    assert_eq!(r.minter.batches.lock().unwrap().len(), 2);
    assert_eq!(r.minter.tokens.lock().unwrap().len(), 1, "the fifth alone, as a single mint");
}

#[tokio::test]
async fn a_crash_between_two_claims_is_finished_by_the_retry_with_the_same_plan() {
    let r = rig(None);
    let jobs = published(&r, 3).await;
    let plan = planned(&r, &jobs, 1).await;
    // The retry receives the messages in another order: the stored plan still decides.
    let out = mint_receive(&r, 10, 50).await;
    assert!(out.iter().all(|d| matches!(d, Disposition::Ack(_))), "{out:?}");
    assert_eq!(r.minter.txs.load(Ordering::SeqCst), 1);
    assert!(r.minter.batches.lock().unwrap().contains_key(&plan.id), "the stored plan was sent");
    for j in &jobs {
        assert_eq!(state(&r, j.id()).await, JobState::Minted);
    }
}

#[tokio::test]
async fn a_crash_after_the_batch_was_sent_records_its_tokens_and_sends_nothing() {
    let r = rig(None);
    let jobs = published(&r, 2).await;
    mint_receive(&r, 10, 50).await;
    assert_eq!(r.minter.txs.load(Ordering::SeqCst), 1);
    // The job store writes after the transaction were lost.
    for j in &jobs {
        let mut lost = r.jobs.get(j.id()).await.unwrap().unwrap();
        let token = lost.token_id.take();
        lost.state = JobState::Minting;
        assert!(r.jobs.update(&lost, JobState::Minted).await.unwrap());
        r.queue.send(Stage::Mint.queue(), &StageMessage::new(Stage::Mint, j.id()).to_body()).await.unwrap();
        // One at a time, as a worker with batches of 1 would.
        mint_receive(&r, 1, 1).await;
        assert_eq!(r.jobs.get(j.id()).await.unwrap().unwrap().token_id, token);
    }
    assert_eq!(r.minter.txs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_plan_whose_job_was_minted_alone_is_released_and_nothing_is_minted_twice() {
    let r = rig(None);
    let jobs = published(&r, 2).await;
    planned(&r, &jobs, 1).await;
    // Meanwhile the second job was minted alone (an older worker, before batching was on).
    crate::mint::run(&r.ports, jobs[1].id()).await.unwrap();
    // The plan can never be sent whole: its claim is released and the job minted alone.
    let out = mint_receive(&r, 10, 50).await;
    assert!(out.iter().all(|d| matches!(d, Disposition::Ack(_))), "{out:?}");
    let first = r.jobs.get(jobs[0].id()).await.unwrap().unwrap();
    assert_eq!((first.state, first.batch), (JobState::Minted, None));
    assert!(r.minter.batches.lock().unwrap().is_empty(), "the void plan was never sent");
    assert_eq!(r.minter.tokens.lock().unwrap().len(), 2, "one token per job");
}

#[tokio::test]
async fn a_pinner_that_names_another_directory_stops_the_batch_before_it_is_sent() {
    let r = rig(None);
    let jobs = published(&r, 2).await;
    let mut ports = r.ports.clone();
    ports.pinner = Arc::new(LyingPinner);
    let got = r.queue.receive(Stage::Mint.queue(), 10, Duration::from_secs(30)).await.unwrap();
    let out = crate::process_all(&ports, Stage::Mint, &got, 50).await;
    assert!(out.iter().all(|d| matches!(d, Disposition::Ack(None))), "{out:?}");
    assert_eq!(r.minter.txs.load(Ordering::SeqCst), 0);
    for j in &jobs {
        let j = r.jobs.get(j.id()).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Failed);
        assert!(j.error.as_deref().unwrap_or_default().contains("refusing to mint"), "{:?}", j.error);
    }
}

/// A second run against the same contract: its own job store and folder (a lost or moved data
/// folder), the content store `content` (the first run's, when it survived).
fn rig_beside(first: &Rig, content: Option<std::path::PathBuf>) -> Rig {
    let mut r = rig(content.map(|dir| Arc::new(LocalContentStore::new(dir)) as Arc<dyn Pinner>));
    r.ports.minter = first.minter.clone();
    r.minter = first.minter.clone();
    r
}

fn content_dir(r: &Rig) -> std::path::PathBuf {
    r.dir.path().join("ipfs")
}

#[tokio::test]
async fn regrouped_batches_mint_nothing_twice_either_way() {
    for (first_batch, second_batch) in [(2, 3), (1, 4), (4, 1)] {
        let a = rig(None);
        published(&a, 4).await;
        mint_receive(&a, 10, first_batch).await;
        let txs = a.minter.txs.load(Ordering::SeqCst);
        let tokens: Vec<_> = {
            let mut t = Vec::new();
            for spec in specs(&["a red circle", "a blue square", "a green ring", "a pink star"]) {
                t.push(a.jobs.get(spec.id).await.unwrap().unwrap().token_id.unwrap());
            }
            t
        };
        // Another run of the same collection (a fresh folder, the same content), batched otherwise.
        let b = rig_beside(&a, Some(content_dir(&a)));
        let jobs = published(&b, 4).await;
        let calls = b.minter.calls.load(Ordering::SeqCst);
        let out = mint_receive(&b, 10, second_batch).await;
        assert!(out.iter().all(|d| matches!(d, Disposition::Ack(_))), "{out:?}");
        assert_eq!(b.minter.txs.load(Ordering::SeqCst), txs, "{first_batch} then {second_batch}: nothing sent");
        if second_batch > 1 {
            // Batches read the chain before they are planned; a single mint reads it in `mint`.
            assert_eq!(b.minter.calls.load(Ordering::SeqCst), calls, "not even tried: the chain was read first");
        }
        for (j, token) in jobs.iter().zip(&tokens) {
            let j = b.jobs.get(j.id()).await.unwrap().unwrap();
            assert_eq!((j.state, j.token_id.as_ref()), (JobState::Minted, Some(token)));
            assert!(j.tx_hash.is_some(), "the minting transaction, from the chain's events");
        }
        assert!(b.minter.ledger.lock().unwrap().duplicates().is_empty());
    }
}

#[tokio::test]
async fn a_run_that_lost_its_store_reconciles_before_it_generates() {
    let a = rig(None);
    published(&a, 3).await;
    mint_receive(&a, 10, 2).await;
    let b = rig_beside(&a, Some(content_dir(&a)));
    let s = specs(&["a red circle", "a blue square", "a green ring", "a pink star"]);
    let found = crate::reconcile::reconcile(&b.ports, &s).await.unwrap();
    assert_eq!(found.on_chain.len(), 3);
    assert_eq!(found.adopted.len(), 3);
    assert!(found.unrecovered.is_empty(), "{:?}", found.unrecovered);
    assert!(found.conflicts.is_empty());
    for spec in s.iter().cloned() {
        intake::submit(&b.ports, spec).await.unwrap();
    }
    drain(&b).await;
    assert_eq!(b.generator.calls.load(Ordering::SeqCst), 1, "only the job the chain does not know is generated");
    for spec in &s[..3] {
        let (mine, theirs) = (b.jobs.get(spec.id).await.unwrap().unwrap(), a.jobs.get(spec.id).await.unwrap().unwrap());
        assert_eq!(mine.token_id, theirs.token_id);
        assert_eq!((&mine.metadata_cid, &mine.image_cid), (&theirs.metadata_cid, &theirs.image_cid));
        // The image came back from the content store into this run's blob store.
        assert!(b.ports.blobs.get(mine.image_key.as_deref().unwrap()).await.is_ok());
    }
    assert_eq!(state(&b, s[3].id).await, JobState::Minted);
    // Without the content store, the tokens are still found; what is missing is said.
    let c = rig_beside(&a, None);
    let found = crate::reconcile::reconcile(&c.ports, &s).await.unwrap();
    assert_eq!((found.adopted.len(), found.unrecovered.len()), (4, 4), "{:?}", found.unrecovered);
    assert!(found.unrecovered[0].1.contains("is not in the content store"), "{:?}", found.unrecovered);
}

#[tokio::test]
async fn a_job_at_a_position_another_job_holds_is_never_minted() {
    let a = rig(None);
    published(&a, 1).await;
    mint_receive(&a, 10, 1).await;
    // The file's first prompt was edited after its job was minted: a new job at position 0.
    let b = rig_beside(&a, None);
    let edited = specs(&["a red circle, edited"]);
    assert_eq!(edited[0].id.position(), specs(&["a red circle"])[0].id.position());
    let found = crate::reconcile::reconcile(&b.ports, &edited).await.unwrap();
    assert_eq!(found.conflicts.len(), 1, "the run would be refused here");
    // Pushed through anyway (a worker that skipped the check): refused, and nothing is sent.
    intake::submit(&b.ports, edited[0].clone()).await.unwrap();
    drain(&b).await;
    let j = b.jobs.get(edited[0].id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Failed);
    assert!(j.error.as_deref().unwrap_or_default().contains("position 0 was minted as token"), "{:?}", j.error);
    assert_eq!(a.minter.txs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_plan_whose_job_another_run_minted_meanwhile_is_released_unsent() {
    let a = rig(None);
    let jobs = published(&a, 3).await;
    // This run planned all three and claimed them, then stalled before sending.
    planned(&a, &jobs, 3).await;
    // Meanwhile another run (its own folder, same content) minted the second job alone.
    let b = rig_beside(&a, Some(content_dir(&a)));
    published(&b, 3).await;
    crate::mint::run(&b.ports, jobs[1].id()).await.unwrap();
    assert_eq!(a.minter.txs.load(Ordering::SeqCst), 1);
    // The stalled plan is never sent; its jobs are planned again, the minted one adopted.
    for _ in 0..3 {
        mint_receive(&a, 10, 50).await;
    }
    assert_eq!(a.minter.txs.load(Ordering::SeqCst), 2, "the other two, in one new batch");
    let mut tokens = std::collections::HashSet::new();
    for j in &jobs {
        let j = a.jobs.get(j.id()).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Minted);
        tokens.insert(j.token_id.unwrap());
    }
    assert_eq!(tokens.len(), 3, "one token per job");
    assert!(a.minter.ledger.lock().unwrap().duplicates().is_empty());
}

#[tokio::test]
async fn a_batch_found_by_its_id_but_minted_with_other_content_is_adopted_with_the_chains() {
    let a = rig(None);
    let mine = published(&a, 2).await;
    mint_receive(&a, 10, 50).await;
    // Another folder made the same jobs with other bytes (its signer salts every signature),
    // so the same grouping has the same batch id but another directory.
    let mut b = rig_beside(&a, Some(content_dir(&a)));
    b.ports.signer = Arc::new(NoncedSigner::default());
    let theirs = published(&b, 2).await;
    assert_ne!(theirs[0].metadata_cid, mine[0].metadata_cid, "other content");
    planned(&b, &theirs, 2).await;
    let txs = a.minter.txs.load(Ordering::SeqCst);
    for j in &theirs {
        crate::mint::run(&b.ports, j.id()).await.unwrap();
    }
    assert_eq!(a.minter.txs.load(Ordering::SeqCst), txs, "nothing sent");
    for (t, m) in theirs.iter().zip(&mine) {
        let (t, m) = (b.jobs.get(t.id()).await.unwrap().unwrap(), a.jobs.get(m.id()).await.unwrap().unwrap());
        assert_eq!(t.state, JobState::Minted);
        assert_eq!((&t.token_id, &t.metadata_cid, &t.image_cid), (&m.token_id, &m.metadata_cid, &m.image_cid));
        assert!(t.content_missing.is_none(), "{:?}", t.content_missing);
    }
}

#[tokio::test]
async fn jobs_outside_the_file_are_retired_and_never_minted_again_on_a_local_record() {
    let a = rig(None);
    let jobs = published(&a, 2).await;
    mint_receive(&a, 10, 1).await;
    let s = specs(&["a red circle", "a blue square"]);
    // A job queued by an earlier version of the file, and a minted one the chain does not know
    // (a record of another version): neither is in the file now.
    let stale = specs(&["a prompt since removed"])[0].clone();
    let mut old = latentmint_core::Job::new(specs(&["z", "an old minted job"])[1].clone());
    old.state = JobState::Minted;
    old.token_id = Some("999".into());
    a.jobs.insert_if_absent(&old).await.unwrap();
    intake::submit(&a.ports, stale.clone()).await.unwrap();
    let found = crate::reconcile::reconcile(&a.ports, &s).await.unwrap();
    assert_eq!(found.retired, vec![stale.id]);
    assert!(found.lost.is_empty(), "a record outside the file is never minted again: {:?}", found.lost);
    assert_eq!(state(&a, stale.id).await, JobState::Failed);
    drain(&a).await;
    assert_eq!(state(&a, old.id()).await, JobState::Minted);
    assert_eq!(a.minter.txs.load(Ordering::SeqCst), jobs.len(), "only the file's jobs were minted");
}

#[tokio::test]
async fn content_lost_then_back_is_adopted_again() {
    let a = rig(None);
    published(&a, 1).await;
    mint_receive(&a, 10, 1).await;
    let mut b = rig_beside(&a, None);
    let s = specs(&["a red circle"]);
    let found = crate::reconcile::reconcile(&b.ports, &s).await.unwrap();
    assert_eq!(found.unrecovered.len(), 1);
    let j = b.jobs.get(s[0].id).await.unwrap().unwrap();
    assert!(j.content_missing.is_some() && j.image_key.is_none());
    // The content store is back (a restored backup, the IPFS node reachable again).
    b.ports.pinner = Arc::new(LocalContentStore::new(content_dir(&a)));
    let found = crate::reconcile::reconcile(&b.ports, &s).await.unwrap();
    assert_eq!((found.adopted.len(), found.unrecovered.len()), (1, 0));
    let j = b.jobs.get(s[0].id).await.unwrap().unwrap();
    assert!(j.content_missing.is_none() && j.image_key.is_some(), "{j:?}");
    assert!(b.ports.blobs.get(j.image_key.as_deref().unwrap()).await.is_ok());
}

#[test]
fn backoff_doubles_from_a_second_to_a_minute() {
    let got: Vec<u64> = (0..=9).map(|n| crate::backoff(n).as_secs()).collect();
    assert_eq!(got, [1, 1, 2, 4, 8, 16, 32, 60, 60, 60], "a retry waits, and longer each time");
}

/// Log lines of the current thread, kept in memory while a test captures them.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

thread_local! {
    static CAPTURING: std::cell::RefCell<Option<Captured>> = const { std::cell::RefCell::new(None) };
}

/// The writer of the test binary's one subscriber: into the current thread's capture, if any.
struct ThreadSink;

impl std::io::Write for ThreadSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURING.with(|c| {
            if let Some(c) = &*c.borrow() {
                c.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures this thread's log lines (JSON, as in Lambda) from now on. One global subscriber
/// listens for the whole test binary: a subscriber set for one thread only would see spans
/// that other threads, running with none, have already marked as of no interest.
fn capture_logs() -> Captured {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let subscriber = tracing_subscriber::fmt().json().with_writer(|| ThreadSink).finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber of the stage tests");
    });
    let c = Captured::default();
    CAPTURING.with(|t| *t.borrow_mut() = Some(c.clone()));
    c
}

#[tokio::test]
async fn every_line_of_a_jobs_work_names_the_job_and_the_stage() {
    let logs = capture_logs();
    let r = rig(None);
    r.generator.fail_next.store(1, Ordering::SeqCst);
    let s = specs(&["a red circle"]).remove(0);
    intake::submit(&r.ports, s.clone()).await.unwrap();
    drain(&r).await;
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // The retried generation, and each stage's "stage done", inside the job's span.
    let mut stages_seen = std::collections::BTreeSet::new();
    for line in &lines {
        let msg = line["fields"]["message"].as_str().unwrap_or_default();
        if msg.starts_with("will retry") || msg == "stage done" {
            let span = &line["span"];
            assert_eq!(span["name"], "job", "{line}");
            assert_eq!(span["job_id"], s.id.to_string(), "{line}");
            stages_seen.insert(span["stage"].as_str().unwrap().to_string());
        }
    }
    assert!(lines.iter().any(|l| l["fields"]["message"].as_str().is_some_and(|m| m.starts_with("will retry"))));
    let all: std::collections::BTreeSet<String> = Stage::ALL.iter().map(|s| s.queue().to_string()).collect();
    assert_eq!(stages_seen, all, "{text}");
}

/// A content store whose copies of one kind of file come back altered (a byte flipped): JSON
/// metadata when `metadata`, else PNG images.
struct Tampering {
    inner: LocalContentStore,
    metadata: bool,
}

#[async_trait]
impl Pinner for Tampering {
    async fn pin(&self, name: &str, bytes: Vec<u8>) -> PortResult<String> {
        self.inner.pin(name, bytes).await
    }
    async fn pin_directory(&self, name: &str, files: Vec<(String, Vec<u8>)>) -> PortResult<String> {
        self.inner.pin_directory(name, files).await
    }
}

#[async_trait]
impl ContentSource for Tampering {
    async fn fetch(&self, cid: &str) -> PortResult<Vec<u8>> {
        let mut bytes = self.inner.fetch(cid).await?;
        if bytes.starts_with(b"{") == self.metadata
            && let Some(last) = bytes.last_mut()
        {
            *last ^= 1;
        }
        Ok(bytes)
    }
    async fn fetch_block(&self, cid: &str) -> PortResult<Vec<u8>> {
        self.inner.fetch_block(cid).await
    }
}

#[tokio::test]
async fn content_that_does_not_match_its_cid_is_never_adopted() {
    let a = rig(None);
    published(&a, 1).await;
    mint_receive(&a, 10, 1).await;
    let s = specs(&["a red circle"]);
    let theirs = a.jobs.get(s[0].id).await.unwrap().unwrap();
    for metadata in [true, false] {
        let mut b = rig_beside(&a, None);
        b.ports.pinner = Arc::new(Tampering { inner: LocalContentStore::new(content_dir(&a)), metadata });
        let found = crate::reconcile::reconcile(&b.ports, &s).await.unwrap();
        assert_eq!(found.unrecovered.len(), 1);
        let why = &found.unrecovered[0].1;
        let what = if metadata { "metadata" } else { "image" };
        assert!(why.contains(&format!("copy of {what}")) && why.contains("does not match its CID"), "{why}");
        let j = b.jobs.get(s[0].id).await.unwrap().unwrap();
        // The token is the chain's either way; no altered byte reaches the record.
        assert_eq!((j.state, &j.token_id), (JobState::Minted, &theirs.token_id));
        assert_eq!(j.image_key, None);
        assert_eq!(j.image_cid, if metadata { None } else { theirs.image_cid.clone() });
    }
}

#[tokio::test]
async fn a_record_that_already_says_what_the_chain_says_is_left_as_it_is() {
    let a = rig(None);
    published(&a, 1).await;
    mint_receive(&a, 10, 1).await;
    let b = rig_beside(&a, Some(content_dir(&a)));
    let s = specs(&["a red circle"]);
    assert_eq!(crate::reconcile::reconcile(&b.ports, &s).await.unwrap().adopted.len(), 1);
    let again = crate::reconcile::reconcile(&b.ports, &s).await.unwrap();
    assert_eq!((again.on_chain.len(), again.adopted.len()), (1, 0), "known already: nothing adopted twice");
    // The minting run's own record knows its token too.
    assert!(crate::reconcile::reconcile(&a.ports, &s).await.unwrap().adopted.is_empty());
}

#[tokio::test]
async fn reconciling_a_run_in_progress_leaves_its_jobs_as_they_are() {
    let a = rig(None);
    let jobs = published(&a, 3).await;
    // One of them minted, two published and on their way: the file's own jobs, none final.
    mint_receive(&a, 1, 1).await;
    let s = specs(&["a red circle", "a blue square", "a green ring", "a pink star", "a gold moon"]);
    let before: Vec<JobState> = states_of(&a, &jobs).await;
    let found = crate::reconcile::reconcile(&a.ports, &s).await.unwrap();
    assert!(found.retired.is_empty() && found.lost.is_empty() && found.adopted.is_empty(), "{found:?}");
    assert_eq!(found.on_chain.len(), 1);
    assert_eq!(states_of(&a, &jobs).await, before, "no job of the file is retired or sent again");
}

async fn states_of(r: &Rig, jobs: &[latentmint_core::Job]) -> Vec<JobState> {
    let mut out = Vec::new();
    for j in jobs {
        out.push(state(r, j.id()).await);
    }
    out
}
