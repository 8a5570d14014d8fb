//! `latentmint-tui --resume`: what `R` does, without a terminal, for runbooks and schedules.

use std::process::Command;
use std::time::Duration;

use latentmint_core::ports::{JobStore, Queue, dead_letters};
use latentmint_core::testing::CollectionToml;
use latentmint_core::{Job, JobState, Stage, StageMessage};
use latentmint_embedded::{SqliteJobStore, SqliteQueue};

fn tui(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_latentmint-tui")).args(args).output().expect("the binary runs")
}

#[tokio::test]
async fn resume_without_the_dashboard_sends_a_stalled_job_on_and_clears_its_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pipeline.db");
    let mut job = Job::new(CollectionToml::new("T", "T").prompt("a red circle").jobs().remove(0));
    job.state = JobState::Published;
    // The dashboard's queues dead-letter after five receives, as a run's do.
    let (jobs, queue) = (SqliteJobStore::open(&db).unwrap(), SqliteQueue::open(&db, 5).unwrap());
    jobs.insert_if_absent(&job).await.unwrap();
    queue.send("mint", &StageMessage::new(Stage::Mint, job.id()).to_body()).await.unwrap();
    for _ in 0..6 {
        for d in queue.receive("mint", 1, Duration::ZERO).await.unwrap() {
            queue.nack("mint", &d.receipt, Duration::ZERO).await.unwrap();
        }
    }
    assert_eq!(queue.stats("mint").await.unwrap().dead, 1);

    let out = tui(&["--resume", db.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("resumed 1 job (1 to mint); 1 dead letter cleared"), "{stdout}");
    let st = queue.stats("mint").await.unwrap();
    assert_eq!((st.visible, st.dead), (1, 0), "sent on, and nothing left dead");
    assert!(queue.receive(&dead_letters("mint"), 10, Duration::ZERO).await.unwrap().is_empty());

    // Nothing to read: an error naming the file, and a failing exit status for the runbook.
    let missing = tui(&["--resume", dir.path().join("nope.db").to_str().unwrap()]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.db does not exist"));

    // A run's folder names its database; the job has its message now: none is added.
    let by_folder = tui(&["--resume", db.parent().unwrap().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&by_folder.stdout);
    assert!(by_folder.status.success(), "{stdout}{}", String::from_utf8_lossy(&by_folder.stderr));
    assert_eq!(stdout.trim(), "nothing to resume; 1 job has a message queued already");
    assert_eq!(queue.stats("mint").await.unwrap().visible, 1);
    let empty = tempfile::tempdir().unwrap();
    let no_run = tui(&["--resume", empty.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&no_run.stderr);
    assert!(
        !no_run.status.success() && stderr.contains("pipeline.db does not exist") && stderr.contains("run's folder"),
        "{stderr}"
    );
}
