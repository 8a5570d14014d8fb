//! The operator's decision on a deployed stack: what `latentmint-tui --queue-prefix ...
//! --jobs-table ...` does when a key is pressed, on moto's SQS and DynamoDB over the wire, the
//! queues and table as template.yaml declares them.

use latentmint_core::testing::CollectionToml;
use std::time::Duration;

use latentmint_aws::{DynamoJobStore, SqsQueue};
use latentmint_core::ports::{JobStore, Queue, dead_letters};
use latentmint_core::qa::QaReport;
use latentmint_core::{Job, JobState, Stage, StageMessage};
use latentmint_e2e::Moto;

fn waiting(prompt: &str) -> Job {
    let mut j = Job::new(CollectionToml::new("T", "T").prompt(prompt).jobs().remove(0));
    j.state = JobState::AwaitingReview;
    j.qa = Some(QaReport::for_tests(0.31));
    j
}

/// The stack's queues (the mint queue FIFO, one group per wallet) and job table on `moto`, as
/// the dashboard reaches them with `--queue-prefix latentmint-ops- --jobs-table ...`.
async fn stack(moto: &Moto) -> (SqsQueue, DynamoJobStore) {
    for stage in Stage::ALL {
        let suffix = if stage == Stage::Mint { ".fifo" } else { "" };
        moto.queue_with_dlq(&format!("latentmint-ops-{}", stage.queue()), suffix).await;
    }
    moto.jobs_table("latentmint-ops-jobs").await;
    let queue = SqsQueue::new(moto.sqs(), "latentmint-ops-").with_fifo(Stage::Mint.queue(), "wallet-1");
    (queue, DynamoJobStore::new(moto.dynamodb(), "latentmint-ops-jobs"))
}

#[tokio::test(flavor = "multi_thread")]
async fn approving_and_rejecting_on_the_stack_moves_jobs_and_queues_publication() {
    let moto = Moto::start();
    let (queue, jobs) = stack(&moto).await;
    let (a, b) = (waiting("murky fog"), waiting("grey sea"));
    jobs.insert_if_absent(&a).await.unwrap();
    jobs.insert_if_absent(&b).await.unwrap();

    // What the dashboard lists: every queue's depth and the staging queue.
    for stage in Stage::ALL {
        assert_eq!(queue.stats(stage.queue()).await.unwrap().visible, 0, "{stage:?}");
    }
    assert_eq!(jobs.list(Some(JobState::AwaitingReview)).await.unwrap().len(), 2);

    let approved = latentmint_stages::operator::decide(&jobs, &queue, a.id(), true, "ada").await.unwrap();
    let rejected = latentmint_stages::operator::decide(&jobs, &queue, b.id(), false, "ada").await.unwrap();
    assert_eq!((approved, rejected), (JobState::Approved, JobState::Rejected));
    let stored = jobs.get(a.id()).await.unwrap().unwrap();
    assert_eq!(stored.reviewed_by.as_deref(), Some("ada"));
    assert_eq!(jobs.list(Some(JobState::AwaitingReview)).await.unwrap().len(), 0);

    // Only the approved job goes on, to the publish function's queue.
    let got = queue.receive("publish", 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(StageMessage::parse(&got[0].body, Stage::Publish).unwrap(), StageMessage::new(Stage::Publish, a.id()));
    // A second decision on a decided job changes nothing.
    let again = latentmint_stages::operator::decide(&jobs, &queue, b.id(), true, "bob").await;
    assert!(again.is_err(), "a rejected job stays rejected");
}

/// `R` on a stack: the jobs whose messages ran out of retries (here the mint's, on the FIFO
/// queue, and a publish) are sent on to the stage each waits for, and their dead letters are
/// cleared, so the dead-letter queues, and the stack's alarms on them, show only what needs a
/// human: a message no stage reads, which does not hold up the FIFO queue's others.
#[tokio::test(flavor = "multi_thread")]
async fn resuming_a_stack_sends_stalled_jobs_on_and_clears_their_dead_letters() {
    let moto = Moto::start();
    let (queue, jobs) = stack(&moto).await;
    // First in the FIFO dead-letter queue, ahead of the mints: a message no stage reads.
    queue.send(&dead_letters("mint"), "{not json").await.unwrap();
    let mut stalled = Vec::new();
    for (prompt, state, stage) in [
        ("one", JobState::Published, Stage::Mint),
        ("two", JobState::Published, Stage::Mint),
        ("three", JobState::Approved, Stage::Publish),
    ] {
        let mut j = waiting(prompt);
        j.state = state;
        jobs.insert_if_absent(&j).await.unwrap();
        // Its message is received past the queue's two receives: dead-lettered.
        queue.send(stage.queue(), &StageMessage::new(stage, j.id()).to_body()).await.unwrap();
        for _ in 0..3 {
            for d in queue.receive(stage.queue(), 10, Duration::from_secs(30)).await.unwrap() {
                queue.nack(stage.queue(), &d.receipt, Duration::ZERO).await.unwrap();
            }
        }
        stalled.push((j.id(), stage));
    }
    assert_eq!(queue.stats("mint").await.unwrap().dead, 3);
    assert_eq!(queue.stats("publish").await.unwrap().dead, 1);

    let resumed = latentmint_stages::operator::resume(&jobs, &queue).await.unwrap();
    let mut sent = resumed.sent.clone();
    sent.sort_by_key(|(id, _)| *id);
    stalled.sort_by_key(|(id, _)| *id);
    assert_eq!((sent, resumed.cleared), (stalled, 3));
    for stage in Stage::ALL {
        let kept = u64::from(stage == Stage::Mint);
        assert_eq!(queue.stats(stage.queue()).await.unwrap().dead, kept, "{stage:?}: only the garbled one is left");
    }
    let garbled = queue.receive(&dead_letters("mint"), 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(garbled.iter().map(|d| d.body.as_str()).collect::<Vec<_>>(), ["{not json"], "kept, and visible");
    assert_eq!(queue.receive("mint", 10, Duration::from_secs(30)).await.unwrap().len(), 2, "both mints sent on");
    assert_eq!(queue.receive("publish", 10, Duration::from_secs(30)).await.unwrap().len(), 1);

    // Resumed again while those messages are in flight: SQS cannot say whose they are, so
    // nothing is sent twice; the operator is told which queues to let drain first.
    let again = latentmint_stages::operator::resume(&jobs, &queue).await.unwrap();
    assert!(again.sent.is_empty(), "{again:?}");
    assert_eq!(again.unknown, vec![(Stage::Publish, 1), (Stage::Mint, 2)]);
    let st = queue.stats("mint").await.unwrap();
    assert_eq!(st.visible + st.in_flight, 2, "no second message");
}
