//! The real `latentmint-tui` binary in a pseudo-terminal, driven by keys as an operator types
//! them, its screen read back through a terminal emulator (vt100): marking every waiting job
//! and approving asks first, with the count; `y` starts the decision and `u` takes it back, so
//! nothing is released; a decision left in its window is released when the operator quits.

use std::io::{Read, Write};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use latentmint_core::ports::{JobStore, Queue};
use latentmint_core::testing::CollectionToml;
use latentmint_core::{Job, JobState};
use latentmint_embedded::{SqliteJobStore, SqliteQueue};

/// The dashboard on `db` in a 120x40 pseudo-terminal.
struct Terminal {
    process: rexpect::process::PtyProcess,
    input: std::fs::File,
    screen: Arc<Mutex<vt100::Parser>>,
}

impl Terminal {
    fn start(db: &std::path::Path) -> Self {
        let mut cmd = Command::new("sh");
        // The size is set on the terminal itself, as a terminal emulator does.
        cmd.arg("-c")
            .arg("stty rows 40 cols 120 && exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_latentmint-tui"))
            .arg(db)
            .env("TERM", "xterm-256color")
            .env("USER", "pty-test");
        let process = rexpect::process::PtyProcess::new(cmd).expect("the dashboard starts in a pty");
        let mut output = process.get_file_handle().unwrap();
        let input = process.get_file_handle().unwrap();
        let screen = Arc::new(Mutex::new(vt100::Parser::new(40, 120, 0)));
        let feed = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = output.read(&mut buf) {
                if n == 0 {
                    break;
                }
                feed.lock().unwrap().process(&buf[..n]);
            }
        });
        Self { process, input, screen }
    }

    /// Types `keys`, as a terminal sends what is typed.
    fn keys(&mut self, keys: &str) {
        self.input.write_all(keys.as_bytes()).unwrap();
        self.input.flush().unwrap();
    }

    fn contents(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    /// Waits until the screen shows `text`.
    fn shows(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.contents().contains(text) {
            assert!(Instant::now() < deadline, "the screen never showed {text:?}:\n{}", self.contents());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

async fn waiting_jobs(db: &std::path::Path, prompts: &[&str]) -> SqliteJobStore {
    let jobs = SqliteJobStore::open(db).unwrap();
    let mut toml = CollectionToml::new("Pty", "PTY");
    for p in prompts {
        toml = toml.prompt(p);
    }
    for spec in toml.jobs() {
        let mut j = Job::new(spec);
        j.state = JobState::AwaitingReview;
        jobs.insert_if_absent(&j).await.unwrap();
    }
    jobs
}

async fn states(jobs: &SqliteJobStore) -> Vec<JobState> {
    jobs.list(None).await.unwrap().into_iter().map(|j| j.state).collect()
}

#[tokio::test]
async fn approve_asks_first_and_undo_takes_it_back_in_a_real_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pipeline.db");
    let jobs = waiting_jobs(&db, &["a red circle", "a blue square", "a green ring"]).await;
    let queue = SqliteQueue::open(&db, 5).unwrap();

    let mut t = Terminal::start(&db);
    t.shows("QA staging: 3 waiting");
    t.shows("? help");
    t.keys("*");
    t.shows("3 waiting, 3 marked");
    t.keys("a");
    t.shows("Approve 3 jobs?");
    t.keys("y");
    t.shows("Approve 3 jobs in 5 s: u undoes it until then");
    t.keys("u");
    t.shows("undone: 3 jobs stay in the staging queue");
    // Past the window: nothing was released.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(states(&jobs).await, vec![JobState::AwaitingReview; 3]);
    assert_eq!(queue.stats("publish").await.unwrap().visible, 0);

    // One job approved, and the dashboard quit inside the window: the decision stands.
    t.keys("g");
    t.keys("a");
    t.shows("in 5 s: u undoes it");
    t.keys("q");
    let status = t.process.wait().unwrap();
    assert!(matches!(status, rexpect::process::wait::WaitStatus::Exited(_, 0)), "{status:?}");
    let approved = states(&jobs).await.into_iter().filter(|s| *s == JobState::Approved).count();
    assert_eq!(approved, 1);
    assert_eq!(queue.stats("publish").await.unwrap().visible, 1);
}
