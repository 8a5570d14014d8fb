//! Stage logic over the embedded adapters (real SQLite queues and job store, real files),
//! with a scripted generator, pinner and minter so each failure can be staged on purpose.
//! The real ONNX engine and chain are exercised in the repository's tests/.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use latentmint_core::cid::cid_of_bytes;
use latentmint_core::collection::Collection;
use latentmint_core::ports::*;
use latentmint_core::{EvmAddress, GenerationRecord, JobId, JobState, Stage, StageMessage};
use latentmint_embedded::{FsBlobStore, LocalContentStore, SqliteJobStore, SqliteQueue};

use crate::{Disposition, Ports, intake, process, review};

/// Draws a textured image, or a black one when the prompt says "black", or fails
/// transiently while `fail_next` > 0.
#[derive(Default)]
struct ScriptedGenerator {
    calls: AtomicUsize,
    fail_next: AtomicUsize,
}

fn png(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    let mut wr = enc.write_header().unwrap();
    let data: Vec<u8> = (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).flat_map(|(x, y)| f(x, y)).collect();
    wr.write_image_data(&data).unwrap();
    drop(wr);
    out
}

#[async_trait]
impl Generator for ScriptedGenerator {
    async fn generate(&self, req: &GenerationRequest) -> PortResult<GeneratedImage> {
        if self.fail_next.load(Ordering::SeqCst) > 0 {
            self.fail_next.fetch_sub(1, Ordering::SeqCst);
            return Err(PortError::Transient("endpoint throttled".into()));
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        let black = req.prompt.contains("black");
        let grey = req.prompt.contains("murky");
        let bytes = png(16, 16, |x, y| {
            if black {
                [0, 0, 0]
            } else if grey {
                let v = 120 + ((x + y) % 2 * 14) as u8;
                [v, v, v]
            } else {
                [(x * 16) as u8, (y * 16) as u8, ((x ^ y) * 16) as u8]
            }
        });
        Ok(GeneratedImage {
            record: GenerationRecord {
                model_id: "scripted".into(),
                model_sha256: "00".repeat(32),
                model_files: Default::default(),
                params: req.params.clone(),
                prompt_truncated: false,
                generator: "scripted".into(),
                generator_version: "0".into(),
                backend: "test".into(),
                fallback_reason: None,
                adapters: vec![],
                elapsed_ms: 0,
                image_sha256: String::new(),
            },
            png: bytes,
        })
    }
}

/// An in-memory contract: refuses a job twice, counts transactions.
#[derive(Default)]
struct GuardedMinter {
    tokens: Mutex<HashMap<JobId, (String, EvmAddress, String)>>,
    txs: AtomicUsize,
}

#[async_trait]
impl Minter for GuardedMinter {
    async fn minted_token(&self, job: JobId) -> PortResult<Option<String>> {
        Ok(self.tokens.lock().unwrap().get(&job).map(|t| t.0.clone()))
    }
    async fn mint(&self, job: JobId, to: EvmAddress, uri: &str) -> PortResult<MintReceipt> {
        let mut t = self.tokens.lock().unwrap();
        if let Some(existing) = t.get(&job) {
            return Ok(MintReceipt { token_id: existing.0.clone(), tx_hash: None });
        }
        let id = (t.len() + 1).to_string();
        t.insert(job, (id.clone(), to, uri.to_string()));
        self.txs.fetch_add(1, Ordering::SeqCst);
        Ok(MintReceipt { token_id: id, tx_hash: Some(format!("0xtx{}", t.len())) })
    }
}

/// A pinner that answers with a wrong CID.
struct LyingPinner;

#[async_trait]
impl Pinner for LyingPinner {
    async fn pin(&self, _name: &str, _bytes: Vec<u8>) -> PortResult<String> {
        Ok(cid_of_bytes(b"something else"))
    }
    async fn fetch(&self, cid: &str) -> PortResult<Vec<u8>> {
        Err(PortError::NotFound(cid.into()))
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    ports: Ports,
    queue: Arc<SqliteQueue>,
    jobs: Arc<SqliteJobStore>,
    generator: Arc<ScriptedGenerator>,
    minter: Arc<GuardedMinter>,
}

fn rig(pinner: Option<Arc<dyn Pinner>>) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let queue = Arc::new(SqliteQueue::open(&db, 5).unwrap());
    let jobs = Arc::new(SqliteJobStore::open(&db).unwrap());
    let generator = Arc::new(ScriptedGenerator::default());
    let minter = Arc::new(GuardedMinter::default());
    let ports = Ports {
        queue: queue.clone(),
        jobs: jobs.clone(),
        blobs: Arc::new(FsBlobStore::new(dir.path().join("blobs"))),
        generator: generator.clone(),
        pinner: pinner.unwrap_or_else(|| Arc::new(LocalContentStore::new(dir.path().join("ipfs")))),
        minter: minter.clone(),
    };
    Rig { _dir: dir, ports, queue, jobs, generator, minter }
}

fn specs(prompts: &[&str]) -> Vec<latentmint_core::JobSpec> {
    let mut text = String::from(
        "[collection]\nname = \"T\"\nsymbol = \"T\"\nrecipient = \"0x70997970C51812dc3A010C7d01b50e0d17dc79C8\"\n[generation]\nmodel = \"m\"\n",
    );
    for p in prompts {
        text.push_str(&format!("[[prompts]]\ntext = \"{p}\"\n"));
    }
    Collection::from_toml("t.toml", &text).unwrap().jobs().unwrap()
}

/// Processes every visible message of every stage until the queues are quiet.
async fn drain(r: &Rig) -> Vec<Disposition> {
    let mut seen = Vec::new();
    loop {
        let mut any = false;
        for stage in Stage::ALL {
            for d in r.queue.receive(stage.queue(), 10, Duration::from_secs(30)).await.unwrap() {
                any = true;
                let disp = process(&r.ports, stage, &d).await;
                match &disp {
                    Disposition::Ack(_) => r.queue.ack(stage.queue(), &d.receipt).await.unwrap(),
                    Disposition::Retry(..) => r.queue.nack(stage.queue(), &d.receipt, Duration::ZERO).await.unwrap(),
                }
                seen.push(disp);
            }
        }
        if !any {
            return seen;
        }
    }
}

async fn state(r: &Rig, id: JobId) -> JobState {
    r.jobs.get(id).await.unwrap().unwrap().state
}

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
    assert_eq!(intake::submit(&r.ports, s.clone()).await.unwrap(), intake::Intake::Requeued);
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

#[tokio::test]
async fn unsure_images_wait_for_an_operator() {
    let r = rig(None);
    let ss = specs(&["a murky fog", "another murky fog"]);
    for s in ss.clone() {
        intake::submit(&r.ports, s).await.unwrap();
    }
    drain(&r).await;
    assert_eq!(state(&r, ss[0].id).await, JobState::AwaitingReview);
    review::decide(r.jobs.as_ref(), r.queue.as_ref(), ss[0].id, true, "ada").await.unwrap();
    review::decide(r.jobs.as_ref(), r.queue.as_ref(), ss[1].id, false, "ada").await.unwrap();
    // Deciding twice is refused.
    assert!(review::decide(r.jobs.as_ref(), r.queue.as_ref(), ss[1].id, true, "bob").await.is_err());
    drain(&r).await;
    let approved = r.jobs.get(ss[0].id).await.unwrap().unwrap();
    assert_eq!((approved.state, approved.reviewed_by.as_deref()), (JobState::Minted, Some("ada")));
    assert_eq!(state(&r, ss[1].id).await, JobState::Rejected);
    assert_eq!(r.minter.txs.load(Ordering::SeqCst), 1);
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
async fn a_garbled_message_ends_in_the_dead_letter_queue() {
    let r = rig(None);
    r.queue.send("mint", "{not json").await.unwrap();
    drain(&r).await;
    let st = r.queue.stats("mint").await.unwrap();
    assert_eq!((st.visible, st.in_flight, st.dead), (0, 0, 1));
}
