//! One behaviour, two queues: the same scenarios against the embedded SQLite queue and against
//! SQS (moto over the wire, queues with a redrive policy as the SAM stack declares them). Stage
//! code sees only the `Queue` port, so both must agree on delivery, visibility, receive counts,
//! dead-lettering and reading the dead letters back.

use std::collections::BTreeSet;
use std::time::Duration;

use latentmint_aws::SqsQueue;
use latentmint_core::ports::{Queue, dead_letters};
use latentmint_core::{Stage, StageMessage};
use latentmint_e2e::Moto;
use latentmint_embedded::SqliteQueue;

/// Messages are received, hidden while in flight, acknowledged, retried with a higher receive
/// count, dead-lettered after two receives, and read back from the dead-letter queue.
async fn conformance(q: &dyn Queue, name: &str) {
    q.send(name, "1").await.unwrap();
    q.send(name, "2").await.unwrap();
    let got = q.receive(name, 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(got.iter().map(|d| d.body.as_str()).collect::<BTreeSet<_>>(), BTreeSet::from(["1", "2"]));
    assert!(got.iter().all(|d| d.receive_count == 1), "{got:?}");
    assert_ne!(got[0].message_id, got[1].message_id);
    assert!(q.receive(name, 10, Duration::from_secs(60)).await.unwrap().is_empty(), "hidden while in flight");
    let s = q.stats(name).await.unwrap();
    assert_eq!((s.visible, s.in_flight, s.dead), (0, 2, 0));

    q.ack(name, &got[0].receipt).await.unwrap();
    q.nack(name, &got[1].receipt, Duration::ZERO).await.unwrap();
    let again = q.receive(name, 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(again.len(), 1, "the acked one is gone, the nacked one is back");
    assert_eq!((again[0].message_id.as_str(), again[0].receive_count), (got[1].message_id.as_str(), 2));
    assert_ne!(again[0].receipt, got[1].receipt, "a new receipt per receive");
    q.ack(name, &again[0].receipt).await.unwrap();
    assert_eq!(q.stats(name).await.unwrap(), Default::default());

    q.send(name, "poison").await.unwrap();
    for n in 1..=2 {
        let d = q.receive(name, 1, Duration::from_secs(60)).await.unwrap();
        assert_eq!((d[0].body.as_str(), d[0].receive_count), ("poison", n));
        q.nack(name, &d[0].receipt, Duration::ZERO).await.unwrap();
    }
    assert!(q.receive(name, 1, Duration::from_secs(60)).await.unwrap().is_empty(), "no third delivery");
    let s = q.stats(name).await.unwrap();
    assert_eq!((s.visible, s.in_flight, s.dead), (0, 0, 1), "dead-lettered");

    // The dead-letter queue is read and cleared like any queue (a resume does so), however
    // often its message was received before.
    let dlq = dead_letters(name);
    let dead = q.receive(&dlq, 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(dead.iter().map(|d| d.body.as_str()).collect::<Vec<_>>(), ["poison"]);
    q.ack(&dlq, &dead[0].receipt).await.unwrap();
    assert_eq!(q.stats(name).await.unwrap(), Default::default(), "cleared");
}

#[tokio::test]
async fn the_embedded_queue_behaves_as_specified() {
    let d = tempfile::tempdir().unwrap();
    let q = SqliteQueue::open(&d.path().join("q.db"), 2).unwrap();
    conformance(&q, "conf").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqs_behaves_the_same() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    moto.queue_with_dlq("latentmint-test-conf", "").await;
    conformance(&SqsQueue::new(sqs.clone(), "latentmint-test-"), "conf").await;

    // The mint queue is FIFO (one message group per wallet); it behaves the same.
    moto.queue_with_dlq("latentmint-test-mint", ".fifo").await;
    let fifo = SqsQueue::new(sqs.clone(), "latentmint-test-").with_fifo("mint", "0xWallet");
    conformance(&fifo, "mint").await;

    // Content deduplication (five minutes): the same stage message sent twice is one message
    // (a re-send after a crash). Intake's resend of a job's message is a body of its own, so
    // it is delivered even while the message it replaces sits in the dead-letter queue.
    let job = latentmint_core::JobId::from_bytes([3; 32]);
    let first = StageMessage::new(Stage::Mint, job).to_body();
    fifo.send("mint", &first).await.unwrap();
    fifo.send("mint", &first).await.unwrap();
    for n in 1..=2 {
        let d = fifo.receive("mint", 10, Duration::from_secs(60)).await.unwrap();
        assert_eq!((d.len(), d[0].receive_count), (1, n), "one message, however often it was sent");
        fifo.nack("mint", &d[0].receipt, Duration::ZERO).await.unwrap();
    }
    assert!(fifo.receive("mint", 10, Duration::from_secs(60)).await.unwrap().is_empty(), "no third delivery");
    assert_eq!(fifo.stats("mint").await.unwrap().dead, 1, "dead-lettered");
    // SQS would drop the same body again for five minutes, dead-lettered or not (moto 5.2
    // forgets it once it leaves the queue, so that part is AWS's documented behaviour only).
    assert_ne!(StageMessage::resend(Stage::Mint, job, 1).to_body(), first);
    fifo.send("mint", &StageMessage::resend(Stage::Mint, job, 1).to_body()).await.unwrap();
    let d = fifo.receive("mint", 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(d.len(), 1, "the resend is delivered");
    assert_eq!(StageMessage::parse(&d[0].body, Stage::Mint).unwrap().job_id, job);

    // A queue the stack does not have is a configuration error that names the fix.
    let err = SqsQueue::new(sqs, "latentmint-test-").send("nope", "x").await.unwrap_err().to_string();
    assert!(err.contains("latentmint-test-nope") && err.contains("sam deploy"), "{err}");
}
