//! Test doubles shared by the stage tests and, with the `testing` feature, by other crates'
//! tests: a scripted generator, an in-memory contract that claims positions as LatentCollection
//! does, signers and pinners that misbehave on purpose, and a [`Rig`] wiring them with the
//! embedded adapters (real SQLite queues and job store, real files).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use latentmint_core::batch::{BatchId, BatchPlan};
use latentmint_core::cid::cid_of_bytes;
use latentmint_core::ledger::{ChainMint, Ledger, Via};
use latentmint_core::ports::*;
use latentmint_core::testing::CollectionToml;
use latentmint_core::{EvmAddress, GenerationRecord, JobId, JobState, Stage};
use latentmint_embedded::{FsBlobStore, LocalContentStore, SqliteJobStore, SqliteQueue};

use crate::{Disposition, Ports, process};

/// Draws a textured image, or a black one when the prompt says "black", or fails
/// transiently while `fail_next` > 0. It waits while a test holds `hold`.
#[derive(Default)]
pub struct ScriptedGenerator {
    /// Successful generations.
    pub calls: AtomicUsize,
    /// Transient failures still to give before the next success.
    pub fail_next: AtomicUsize,
    /// The last request.
    pub last: Mutex<Option<GenerationRequest>>,
    /// Held by a test to keep a generation waiting.
    pub hold: tokio::sync::Mutex<()>,
}

/// A pseudo-random value for pixel (x, y) of picture `picture` (splitmix64).
fn noise(picture: u64, x: u32, y: u32) -> u64 {
    let mut z = picture ^ (u64::from(x) << 32 | u64::from(y)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A `w` x `h` RGB PNG, each pixel from `f`.
pub fn png(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
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
        drop(self.hold.lock().await);
        if self.fail_next.load(Ordering::SeqCst) > 0 {
            self.fail_next.fetch_sub(1, Ordering::SeqCst);
            return Err(PortError::Transient("endpoint throttled".into()));
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        *self.last.lock().unwrap() = Some(req.clone());
        let black = req.prompt.contains("black");
        let picture = req.prompt.bytes().fold(req.params.seed, |h, b| h.wrapping_mul(0x100_0000_01b3) ^ u64::from(b));
        let grey = req.prompt.contains("murky");
        let bytes = png(16, 16, |x, y| {
            if black {
                [0, 0, 0]
            } else if grey {
                let v = 120 + ((x + y) % 2 * 14) as u8;
                [v, v, v]
            } else {
                // Texture that differs with the seed and the prompt, as a real generator's
                // pictures do (the review stage's duplicate check compares them).
                let n = noise(picture, x, y);
                [n as u8, (n >> 8) as u8, (n >> 16) as u8]
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

/// An in-memory contract: claims each job's position on every path as LatentCollection does,
/// answers from its events, counts every call and every transaction, can be paused.
#[derive(Default)]
pub struct GuardedMinter {
    /// Single mints: job → (token, recipient, metadata CID).
    pub tokens: Mutex<HashMap<JobId, (String, EvmAddress, String)>>,
    /// Batch mints: batch → (first token, plan).
    pub batches: Mutex<HashMap<BatchId, (u64, BatchPlan)>>,
    /// Every mint, as the contract's events tell them.
    pub ledger: Mutex<Ledger>,
    /// Transactions that minted something.
    pub txs: AtomicUsize,
    /// Calls of `mint` and `mint_batch`, whatever they did.
    pub calls: AtomicUsize,
    /// While set, every mint is refused as the paused contract refuses it.
    pub paused: std::sync::atomic::AtomicBool,
}

impl GuardedMinter {
    /// The contract's refusal of a job whose position is taken (the estimate reverts).
    fn claimed(&self, jobs: &[JobId]) -> Option<JobId> {
        let l = self.ledger.lock().unwrap();
        jobs.iter().copied().find(|j| !matches!(l.fate(*j), latentmint_core::ledger::Fate::Unminted))
    }
}

#[async_trait]
impl Minter for GuardedMinter {
    async fn fates(&self, jobs: &[JobId]) -> PortResult<Vec<latentmint_core::ledger::Fate>> {
        let l = self.ledger.lock().unwrap();
        Ok(jobs.iter().map(|j| l.fate(*j)).collect())
    }
    async fn mint(&self, job: JobId, to: EvmAddress, uri: &str) -> PortResult<MintReceipt> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.paused.load(Ordering::SeqCst) {
            return Err(PortError::Transient("the contract is paused".into()));
        }
        match self.ledger.lock().unwrap().fate(job) {
            latentmint_core::ledger::Fate::Minted(m) => {
                return Ok(MintReceipt {
                    token_id: m.token_id.clone(),
                    tx_hash: Some(m.tx_hash.clone()),
                    found: Some(m),
                });
            }
            latentmint_core::ledger::Fate::PositionTaken(h) => {
                return Err(PortError::Permanent(latentmint_core::ledger::position_taken(job, &h)));
            }
            latentmint_core::ledger::Fate::Unminted => {}
        }
        let id = latentmint_core::ledger::single_token_id(uri).unwrap_or_else(|| uri.to_string());
        let tx = format!("0xtx{}", self.txs.fetch_add(1, Ordering::SeqCst) + 1);
        self.tokens.lock().unwrap().insert(job, (id.clone(), to, uri.to_string()));
        self.ledger.lock().unwrap().extend([ChainMint {
            job,
            token_id: id.clone(),
            tx_hash: tx.clone(),
            block: 1,
            log_index: 0,
            via: Via::Alone,
        }]);
        Ok(MintReceipt { token_id: id, tx_hash: Some(tx), found: None })
    }
    async fn minted_batch(&self, batch: BatchId) -> PortResult<Option<BatchReceipt>> {
        Ok(self.batches.lock().unwrap().get(&batch).map(|b| BatchReceipt {
            first: b.0,
            tx_hash: Some(format!("0xbatch-{}", batch.short())),
            sent: false,
        }))
    }
    async fn mint_batch(&self, plan: &BatchPlan) -> PortResult<BatchReceipt> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.paused.load(Ordering::SeqCst) {
            return Err(PortError::Transient("the contract is paused".into()));
        }
        if let Some(found) = self.minted_batch(plan.id).await? {
            return Ok(found);
        }
        if let Some(j) = self.claimed(&plan.jobs) {
            return Err(PortError::Transient(format!("AlreadyMinted({j}): the contract refuses the batch")));
        }
        let mut b = self.batches.lock().unwrap();
        // Sequential ids from 1000, as ERC721A's, apart from the single mints' ids.
        let first = 1000 + b.values().map(|(_, p)| p.jobs.len() as u64).sum::<u64>();
        b.insert(plan.id, (first, plan.clone()));
        self.txs.fetch_add(1, Ordering::SeqCst);
        let tx = format!("0xbatch-{}", plan.id.short());
        let directory_cid = plan.directory_cid.clone();
        self.ledger.lock().unwrap().extend(plan.jobs.iter().enumerate().map(|(i, j)| ChainMint {
            job: *j,
            token_id: (first + i as u64).to_string(),
            tx_hash: tx.clone(),
            block: 2,
            log_index: 0,
            via: Via::Batch { batch: plan.id, first, index: i as u32, directory_cid: directory_cid.clone() },
        }));
        Ok(BatchReceipt { first, tx_hash: Some(tx), sent: true })
    }
}

/// Signs with a digest of the record (the EIP-712 signer is tested in the chain crate).
pub struct DigestSigner;

#[async_trait]
impl ProvenanceSigner for DigestSigner {
    async fn sign(
        &self,
        p: &latentmint_core::metadata::Provenance,
    ) -> PortResult<latentmint_core::metadata::ProvenanceSignature> {
        let bytes = serde_json::to_vec(p).unwrap();
        Ok(latentmint_core::metadata::ProvenanceSignature {
            scheme: "test".into(),
            signer: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8".into(),
            chain_id: 31_337,
            verifying_contract: "0x0000000000000000000000000000000000000000".into(),
            signature: cid_of_bytes(&bytes),
        })
    }
}

/// Signs like KMS: ECDSA with a random nonce, so every call gives another signature.
#[derive(Default)]
pub struct NoncedSigner {
    /// Signatures made.
    pub calls: AtomicUsize,
}

#[async_trait]
impl ProvenanceSigner for NoncedSigner {
    async fn sign(
        &self,
        p: &latentmint_core::metadata::Provenance,
    ) -> PortResult<latentmint_core::metadata::ProvenanceSignature> {
        let nonce = self.calls.fetch_add(1, Ordering::SeqCst);
        let mut sig = DigestSigner.sign(p).await?;
        sig.signature = format!("{}-{nonce}", sig.signature);
        Ok(sig)
    }
}

/// Pins into `inner` and remembers every CID it was asked to pin.
pub struct RecordingPinner {
    /// Where the content goes.
    pub inner: LocalContentStore,
    /// Every CID asked for, in order.
    pub pinned: Mutex<Vec<String>>,
}

#[async_trait]
impl Pinner for RecordingPinner {
    async fn pin(&self, name: &str, bytes: Vec<u8>) -> PortResult<String> {
        let cid = self.inner.pin(name, bytes).await?;
        self.pinned.lock().unwrap().push(cid.clone());
        Ok(cid)
    }
    async fn pin_directory(&self, name: &str, files: Vec<(String, Vec<u8>)>) -> PortResult<String> {
        let cid = self.inner.pin_directory(name, files).await?;
        self.pinned.lock().unwrap().push(cid.clone());
        Ok(cid)
    }
}

#[async_trait]
impl ContentSource for RecordingPinner {
    async fn fetch(&self, cid: &str) -> PortResult<Vec<u8>> {
        self.inner.fetch(cid).await
    }
    async fn fetch_block(&self, cid: &str) -> PortResult<Vec<u8>> {
        self.inner.fetch_block(cid).await
    }
}

/// A pinner that answers with a wrong CID.
pub struct LyingPinner;

#[async_trait]
impl Pinner for LyingPinner {
    async fn pin(&self, _name: &str, _bytes: Vec<u8>) -> PortResult<String> {
        Ok(cid_of_bytes(b"something else"))
    }
    async fn pin_directory(&self, _name: &str, _files: Vec<(String, Vec<u8>)>) -> PortResult<String> {
        Ok(cid_of_bytes(b"something else"))
    }
}

#[async_trait]
impl ContentSource for LyingPinner {
    async fn fetch(&self, cid: &str) -> PortResult<Vec<u8>> {
        Err(PortError::NotFound(cid.into()))
    }
    async fn fetch_block(&self, cid: &str) -> PortResult<Vec<u8>> {
        Err(PortError::NotFound(cid.into()))
    }
}

/// Every stage over the embedded adapters in a temporary folder, with the scripted generator
/// and minter kept at hand.
pub struct Rig {
    /// The temporary folder (kept while the rig lives).
    pub dir: tempfile::TempDir,
    /// Every adapter, over the files below.
    pub ports: Ports,
    /// The queues (SQLite).
    pub queue: Arc<SqliteQueue>,
    /// The job store (SQLite).
    pub jobs: Arc<SqliteJobStore>,
    /// The scripted generator.
    pub generator: Arc<ScriptedGenerator>,
    /// The in-memory contract.
    pub minter: Arc<GuardedMinter>,
}

/// A [`Rig`]; `pinner` replaces the local content store.
pub fn rig(pinner: Option<Arc<dyn Pinner>>) -> Rig {
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
        inspector: Arc::new(latentmint_qa::ImageInspector::new()),
        pinner: pinner.unwrap_or_else(|| Arc::new(LocalContentStore::new(dir.path().join("ipfs")))),
        minter: minter.clone(),
        signer: Arc::new(DigestSigner),
    };
    Rig { dir, ports, queue, jobs, generator, minter }
}

/// The jobs of a collection "T" with one job per prompt.
pub fn specs(prompts: &[&str]) -> Vec<latentmint_core::JobSpec> {
    prompts.iter().fold(CollectionToml::new("T", "T"), |c, p| c.prompt(p)).jobs()
}

/// Processes every visible message of every stage until the queues are quiet.
pub async fn drain(r: &Rig) -> Vec<Disposition> {
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

/// The job's state in the store.
pub async fn state(r: &Rig, id: JobId) -> JobState {
    r.jobs.get(id).await.unwrap().unwrap().state
}
