//! # latentmint-lambda
//!
//! The stage Lambda functions, as thin as the aws-lambda-rust-runtime examples: an SQS event
//! comes in, each record becomes a [`Delivery`] for [`latentmint_stages::process`] (the same
//! call the local runner and the tests make), and the records to retry go back as partial
//! batch failures (`ReportBatchItemFailures`), with their visibility set to the stage's
//! backoff. Everything else, the wiring from environment variables to adapters, is in
//! `main.rs`.

pub mod intake;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use latentmint_core::Stage;
use latentmint_core::ports::Delivery;
use latentmint_stages::ports::{Mint, Pipeline, StagePorts};
use latentmint_stages::{Disposition, mint_all, process_stage};
use tracing::{error, warn};

/// Handles one SQS event for the stage of `ports`, which hold that stage's adapters and no
/// others. On a FIFO queue (`fifo`) the first failure stops the batch and every record after it
/// is returned unprocessed, so a message group keeps its order (one sender per wallet).
pub async fn handle<P: StagePorts>(ports: &P, event: SqsEvent, fifo: bool) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    let mut stopped = false;
    for delivery in deliveries(P::STAGE, event) {
        if stopped {
            response.add_failure(delivery.message_id);
            continue;
        }
        let disposition = process_stage(ports, &delivery).await;
        stopped = fifo && matches!(disposition, Disposition::Retry(..));
        settle(ports, P::STAGE, delivery, disposition, &mut response).await;
    }
    response
}

/// Handles one SQS event of the mint queue with `batch` above 1: the event's published jobs
/// are minted together, at most `batch` per transaction ([`latentmint_stages::mint_all`]).
pub async fn handle_mint_batch(ports: &Mint, event: SqsEvent, batch: usize) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    let deliveries = deliveries(Stage::Mint, event);
    // One transaction for the lot: order within it is the plan's, so nothing is held back.
    let dispositions = mint_all(ports, &deliveries, batch).await;
    for (delivery, disposition) in deliveries.into_iter().zip(dispositions) {
        settle(ports, Stage::Mint, delivery, disposition, &mut response).await;
    }
    response
}

/// The event's records as deliveries (a record without an id or receipt handle is skipped).
fn deliveries(stage: Stage, event: SqsEvent) -> Vec<Delivery> {
    let mut deliveries = Vec::with_capacity(event.records.len());
    for record in event.records {
        let (Some(message_id), Some(receipt)) = (record.message_id, record.receipt_handle) else {
            error!(queue = stage.queue(), "an SQS record without message id or receipt handle; skipped");
            continue;
        };
        let receive_count = record.attributes.get("ApproximateReceiveCount").and_then(|v| v.parse().ok()).unwrap_or(1);
        deliveries.push(Delivery { message_id, receipt, body: record.body.unwrap_or_default(), receive_count });
    }
    deliveries
}

/// Reports `delivery` as failed when it is to be retried, after setting its backoff.
async fn settle<P: Pipeline>(
    ports: &P,
    stage: Stage,
    delivery: Delivery,
    disposition: Disposition,
    response: &mut SqsBatchResponse,
) {
    if let Disposition::Retry(delay, why) = disposition {
        warn!(queue = stage.queue(), message_id = %delivery.message_id, ?delay, "retrying: {why}");
        // The backoff becomes the message's visibility; Lambda keeps the message because it
        // is reported as failed.
        if let Err(e) = ports.queue().nack(stage.queue(), &delivery.receipt, delay).await {
            warn!(queue = stage.queue(), "could not set the retry delay: {e}");
        }
        response.add_failure(delivery.message_id);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use aws_lambda_events::event::sqs::SqsMessage;
    use latentmint_core::ports::Queue;
    use latentmint_core::{JobId, StageMessage};
    use latentmint_embedded::{FsBlobStore, SqliteJobStore, SqliteQueue};

    use super::*;

    struct Rig {
        _dir: tempfile::TempDir,
        queue: Arc<SqliteQueue>,
        ports: latentmint_stages::ports::Review,
    }

    fn rig() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let queue = Arc::new(SqliteQueue::open(&dir.path().join("q.db"), 5).unwrap());
        // The review function's adapters, and only those.
        let ports = latentmint_stages::ports::Review {
            queue: queue.clone(),
            jobs: Arc::new(SqliteJobStore::open(&dir.path().join("jobs.db")).unwrap()),
            blobs: Arc::new(FsBlobStore::new(dir.path().join("blobs"))),
            inspector: Arc::new(latentmint_qa::ImageInspector::new()),
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
        let resp = handle(&r.ports, ev, false).await;
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
        let resp = handle(&r.ports, ev, true).await;
        assert_eq!(ids(&resp), all, "order within the message group is kept");
    }
}
