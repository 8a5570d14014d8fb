//! One behaviour, two job stores: SQLite and DynamoDB (moto over the wire, the table and its
//! state index as template.yaml declares them) agree on insert-if-absent, compare-and-swap,
//! intake order and counts.

use latentmint_aws::DynamoJobStore;
use latentmint_core::ports::JobStore;
use latentmint_core::{EvmAddress, GenerationParams, Job, JobId, JobSpec, JobState};
use latentmint_e2e::Moto;
use latentmint_embedded::SqliteJobStore;

fn job(n: u8) -> Job {
    Job::new(JobSpec {
        id: JobId::from_bytes([n; 32]),
        collection: "Conf".into(),
        index: n as u32,
        copy: 0,
        template: "a square".into(),
        prompt: format!("a square {n}"),
        negative_prompt: String::new(),
        traits: vec![],
        params: GenerationParams { steps: 2, guidance: 1.0, width: 32, height: 32, scheduler: "ddim".into(), seed: 1 },
        recipient: EvmAddress::from_bytes([1; 20]),
        description: String::new(),
        review: Default::default(),
        request: None,
    })
}

async fn conformance(s: &dyn JobStore) {
    for n in 1..=5 {
        assert!(s.insert_if_absent(&job(n)).await.unwrap(), "job {n} inserted");
    }
    assert!(!s.insert_if_absent(&job(3)).await.unwrap(), "a second insert of one id is refused");
    let got = s.get(JobId::from_bytes([3; 32])).await.unwrap().expect("stored");
    assert_eq!(got, job(3));
    assert!(s.get(JobId::from_bytes([9; 32])).await.unwrap().is_none());

    // Compare-and-swap: the first writer from `queued` wins, the second sees false.
    let mut a = job(2);
    a.record_failure("first".into()).unwrap();
    let mut b = job(2);
    b.record_failure("second".into()).unwrap();
    assert!(s.update(&a, JobState::Queued).await.unwrap());
    assert!(!s.update(&b, JobState::Queued).await.unwrap(), "the stored state moved on");
    assert_eq!(s.get(a.id()).await.unwrap().unwrap().error.as_deref(), Some("first"));

    let all: Vec<JobId> = s.list(None).await.unwrap().iter().map(Job::id).collect();
    assert_eq!(all, (1..=5).map(|n| JobId::from_bytes([n; 32])).collect::<Vec<_>>(), "intake order");
    let queued: Vec<JobId> = s.list(Some(JobState::Queued)).await.unwrap().iter().map(Job::id).collect();
    assert_eq!(queued, [1, 3, 4, 5].map(|n| JobId::from_bytes([n; 32])));
    let counts = s.counts().await.unwrap();
    assert_eq!((counts.get(&JobState::Queued), counts.get(&JobState::Failed)), (Some(&4), Some(&1)));

    // When each job was last written, per state: the failed one's time is its update's.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let failed = s.changed_at(JobState::Failed).await.unwrap();
    assert_eq!(failed.keys().copied().collect::<Vec<_>>(), [a.id()]);
    assert!(failed.values().all(|t| now.abs_diff(*t) < 60_000), "{failed:?}");
    assert_eq!(s.changed_at(JobState::Queued).await.unwrap().len(), 4);
    assert!(s.changed_at(JobState::Minted).await.unwrap().is_empty());

    // Each state a job entered, in order: the failed job was queued, then failed; the losing
    // writer of the swap added nothing.
    let steps: Vec<JobState> = s.history(a.id()).await.unwrap().into_iter().map(|(state, _)| state).collect();
    assert_eq!(steps, [JobState::Queued, JobState::Failed]);
    let untouched: Vec<JobState> = s.history(job(4).id()).await.unwrap().into_iter().map(|(st, _)| st).collect();
    assert_eq!(untouched, [JobState::Queued]);
    assert!(s.history(JobId::from_bytes([9; 32])).await.unwrap().is_empty(), "no such job: no history");
}

#[tokio::test]
async fn the_sqlite_store_behaves_as_specified() {
    let d = tempfile::tempdir().unwrap();
    conformance(&SqliteJobStore::open(&d.path().join("jobs.db")).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamodb_behaves_the_same() {
    let moto = Moto::start();
    moto.jobs_table("latentmint-test-jobs").await;
    let db = moto.dynamodb();
    conformance(&DynamoJobStore::new(db.clone(), "latentmint-test-jobs")).await;
    let err = DynamoJobStore::new(db, "nope").get(JobId::from_bytes([1; 32])).await.unwrap_err().to_string();
    assert!(err.contains("nope") && err.contains("sam deploy"), "{err}");
}
