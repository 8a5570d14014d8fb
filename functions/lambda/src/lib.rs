//! # latentmint-lambda
//!
//! The stage Lambda functions, as thin as the aws-lambda-rust-runtime examples: an SQS event
//! comes in, each record becomes a [`Delivery`] for [`latentmint_stages::process`] (the same
//! call the local runner and the tests make), and the records to retry go back as partial
//! batch failures (`ReportBatchItemFailures`), with their visibility set to the stage's
//! backoff. Everything else, the wiring from environment variables to adapters, is in
//! `main.rs`.

pub mod intake;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use latentmint_core::batch::{BatchId, BatchPlan};
use latentmint_core::metadata::{Provenance, ProvenanceSignature};
use latentmint_core::ports::{
    BatchReceipt, BlobStore, ContentSource, Delivery, GeneratedImage, GenerationRequest, Generator, MintReceipt,
    Minter, Pinner, PortError, PortResult, ProvenanceSigner,
};
use latentmint_core::{EvmAddress, JobId, Stage};
use latentmint_stages::{Disposition, Ports, process, process_all};
use tracing::{error, warn};

/// Handles one SQS event for `stage`. On a FIFO queue (`fifo`) the first failure stops the
/// batch and every record after it is returned unprocessed, so a message group keeps its order
/// (one sender per wallet). With `batch` above 1 the mint stage mints the event's published jobs
/// together, at most `batch` per transaction ([`latentmint_stages::process_all`]).
pub async fn handle(ports: &Ports, stage: Stage, event: SqsEvent, fifo: bool, batch: usize) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    let mut deliveries = Vec::with_capacity(event.records.len());
    for record in event.records {
        let (Some(message_id), Some(receipt)) = (record.message_id, record.receipt_handle) else {
            error!(queue = stage.queue(), "an SQS record without message id or receipt handle; skipped");
            continue;
        };
        let receive_count = record.attributes.get("ApproximateReceiveCount").and_then(|v| v.parse().ok()).unwrap_or(1);
        deliveries.push(Delivery { message_id, receipt, body: record.body.unwrap_or_default(), receive_count });
    }
    if stage == Stage::Mint && batch > 1 {
        // One transaction for the lot: order within it is the plan's, so nothing is held back.
        let dispositions = process_all(ports, stage, &deliveries, batch).await;
        for (delivery, disposition) in deliveries.into_iter().zip(dispositions) {
            settle(ports, stage, delivery, disposition, &mut response).await;
        }
        return response;
    }
    let mut stopped = false;
    for delivery in deliveries {
        if stopped {
            response.add_failure(delivery.message_id);
            continue;
        }
        let disposition = process(ports, stage, &delivery).await;
        stopped = fifo && matches!(disposition, Disposition::Retry(..));
        settle(ports, stage, delivery, disposition, &mut response).await;
    }
    response
}

/// Reports `delivery` as failed when it is to be retried, after setting its backoff.
async fn settle(
    ports: &Ports,
    stage: Stage,
    delivery: Delivery,
    disposition: Disposition,
    response: &mut SqsBatchResponse,
) {
    if let Disposition::Retry(delay, why) = disposition {
        warn!(queue = stage.queue(), message_id = %delivery.message_id, ?delay, "retrying: {why}");
        // The backoff becomes the message's visibility; Lambda keeps the message because it
        // is reported as failed.
        if let Err(e) = ports.queue.nack(stage.queue(), &delivery.receipt, delay).await {
            warn!(queue = stage.queue(), "could not set the retry delay: {e}");
        }
        response.add_failure(delivery.message_id);
    }
}

/// A port this function does not use: a message that reaches it was routed to the wrong queue.
/// Holds the function's name (`intake`, or a stage's queue name).
pub struct NotInThisFunction(pub &'static str);

impl NotInThisFunction {
    fn refuse<T>(&self, port: &str) -> PortResult<T> {
        Err(PortError::Permanent(format!(
            "the {} function has no {port}: this message belongs to another stage's queue",
            self.0
        )))
    }
}

#[async_trait]
impl ProvenanceSigner for NotInThisFunction {
    async fn sign(&self, _: &Provenance) -> PortResult<ProvenanceSignature> {
        self.refuse("provenance signer")
    }
}

#[async_trait]
impl BlobStore for NotInThisFunction {
    async fn put(&self, _: &str, _: Vec<u8>) -> PortResult<()> {
        self.refuse("blob store")
    }
    async fn get(&self, _: &str) -> PortResult<Vec<u8>> {
        self.refuse("blob store")
    }
}

#[async_trait]
impl Generator for NotInThisFunction {
    async fn generate(&self, _: &GenerationRequest) -> PortResult<GeneratedImage> {
        self.refuse("generator")
    }
}

#[async_trait]
impl Pinner for NotInThisFunction {
    async fn pin(&self, _: &str, _: Vec<u8>) -> PortResult<String> {
        self.refuse("IPFS pinner")
    }
    async fn pin_directory(&self, _: &str, _: Vec<(String, Vec<u8>)>) -> PortResult<String> {
        self.refuse("IPFS pinner")
    }
}

#[async_trait]
impl ContentSource for NotInThisFunction {
    async fn fetch(&self, _: &str) -> PortResult<Vec<u8>> {
        self.refuse("IPFS pinner")
    }
    async fn fetch_block(&self, _: &str) -> PortResult<Vec<u8>> {
        self.refuse("IPFS pinner")
    }
}

#[async_trait]
impl Minter for NotInThisFunction {
    async fn fates(&self, _: &[JobId]) -> PortResult<Vec<latentmint_core::ledger::Fate>> {
        self.refuse("minter")
    }
    async fn mint(&self, _: JobId, _: EvmAddress, _: &str) -> PortResult<MintReceipt> {
        self.refuse("minter")
    }
    async fn minted_batch(&self, _: BatchId) -> PortResult<Option<BatchReceipt>> {
        self.refuse("minter")
    }
    async fn mint_batch(&self, _: &BatchPlan) -> PortResult<BatchReceipt> {
        self.refuse("minter")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use aws_lambda_events::event::sqs::SqsMessage;
    use latentmint_core::StageMessage;
    use latentmint_core::ports::Queue;
    use latentmint_embedded::{FsBlobStore, LocalContentStore, SqliteJobStore, SqliteQueue};

    use super::*;

    struct Rig {
        _dir: tempfile::TempDir,
        queue: Arc<SqliteQueue>,
        ports: Ports,
    }

    fn rig() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let queue = Arc::new(SqliteQueue::open(&dir.path().join("q.db"), 5).unwrap());
        let ports = Ports {
            queue: queue.clone(),
            jobs: Arc::new(SqliteJobStore::open(&dir.path().join("jobs.db")).unwrap()),
            blobs: Arc::new(FsBlobStore::new(dir.path().join("blobs"))),
            generator: Arc::new(NotInThisFunction("review")),
            pinner: Arc::new(LocalContentStore::new(dir.path().join("ipfs"))),
            minter: Arc::new(NotInThisFunction("review")),
            signer: Arc::new(NotInThisFunction("review")),
        };
        Rig { _dir: dir, queue, ports }
    }

    /// Sends `bodies` to the review queue and returns them as Lambda would deliver them.
    async fn event(r: &Rig, bodies: &[String]) -> SqsEvent {
        for b in bodies {
            r.queue.send("review", b).await.unwrap();
        }
        let got = r.queue.receive("review", 10, Duration::from_secs(60)).await.unwrap();
        let mut ev = SqsEvent::default();
        for d in got {
            let mut m = SqsMessage::default();
            m.message_id = Some(d.message_id);
            m.receipt_handle = Some(d.receipt);
            m.body = Some(d.body);
            m.attributes.insert("ApproximateReceiveCount".into(), d.receive_count.to_string());
            ev.records.push(m);
        }
        ev
    }

    fn ids(r: &SqsBatchResponse) -> Vec<String> {
        r.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect()
    }

    #[tokio::test]
    async fn retries_come_back_as_batch_failures_with_their_delay() {
        let r = rig();
        // A job the store does not know fails for good (acknowledged); garbage is retried.
        let unknown = StageMessage::new(Stage::Review, JobId::from_bytes([7; 32])).to_body();
        let ev = event(&r, &["not a stage message".to_string(), unknown]).await;
        let first = ev.records[0].message_id.clone().unwrap();
        let resp = handle(&r.ports, Stage::Review, ev, false, 1).await;
        assert_eq!(ids(&resp), [first], "only the retry is reported");
        // Its visibility was set to the backoff (0 for garbage): it is back, received twice.
        let again = r.queue.receive("review", 10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].receive_count, 2);
    }

    #[tokio::test]
    async fn on_a_fifo_queue_the_first_failure_returns_the_rest_unprocessed() {
        let r = rig();
        let unknown = StageMessage::new(Stage::Review, JobId::from_bytes([7; 32])).to_body();
        let ev = event(&r, &["garbage".to_string(), unknown]).await;
        let all: Vec<String> = ev.records.iter().map(|m| m.message_id.clone().unwrap()).collect();
        let resp = handle(&r.ports, Stage::Review, ev, true, 1).await;
        assert_eq!(ids(&resp), all, "order within the message group is kept");
    }

    #[tokio::test]
    async fn ports_a_function_does_not_have_refuse_by_name() {
        let e = NotInThisFunction("review").mint(JobId::from_bytes([1; 32]), EvmAddress::from_bytes([1; 20]), "x");
        let msg = e.await.unwrap_err().to_string();
        assert!(msg.contains("review function has no minter"), "{msg}");
    }
}
