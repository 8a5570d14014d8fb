//! The dashboard with 10,000 jobs waiting: how long a key takes to show (the key handled and
//! the data read again and the screen drawn, as the event loop does), and what an idle
//! dashboard costs (the loop's once-a-second read of the queues and the job store's revision,
//! and a redraw). The first read of the 10,000 jobs is timed apart (`first_read_ms`): it is
//! what the dashboard pays at start and whenever another process changes the store.
//!
//! The same state code and drawing as the binary: `App` on a real SQLite job store and queue
//! (`latentmint_embedded`), drawn into a ratatui `TestBackend` of 200x50.
//!
//!     cargo bench -p latentmint-e2e --bench dashboard --profile dev -- [--jobs 10000] [--keys 400]
//!
//! appends one JSON record to infra/bench/records/dashboard.jsonl; `python3
//! infra/bench/report.py` turns the records into infra/bench/DASHBOARD.md and checks the goals
//! (key to redraw p95 <= 50 ms, idle <= 2% of a core).

use std::time::{Duration, Instant};

use latentmint_core::ports::JobStore;
use latentmint_core::qa::{CheckVerdict, QaCheck, QaReport};
use latentmint_core::testing::CollectionToml;
use latentmint_core::{Job, JobState};
use latentmint_e2e::bench::{arg, machine};
use latentmint_embedded::{SqliteJobStore, SqliteQueue};
use latentmint_tui::app::{App, Key};
use latentmint_tui::ui;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

fn main() -> anyhow::Result<()> {
    let n = arg("--jobs", 10_000);
    let keys = arg("--keys", 400);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("pipeline.db");
    let (jobs, queue) = (SqliteJobStore::open(&db)?, SqliteQueue::open(&db, 5)?);
    eprintln!("writing {n} waiting jobs...");
    // Prompts of at most 1,000 copies each, as a collection file allows.
    let prompts = ["a red circle", "a blue square", "a green ring on a dark field", "a yellow triangle"];
    let mut toml = CollectionToml::new("Bench", "BENCH");
    for i in 0..n.div_ceil(1000) {
        toml = toml.prompt_times(&format!("{} {i}", prompts[i % prompts.len()]), 1000);
    }
    for (i, spec) in toml.jobs().into_iter().take(n).enumerate() {
        let mut j = Job::new(spec);
        j.state = JobState::AwaitingReview;
        let mut report = QaReport::for_tests(0.8);
        report.checks = vec![QaCheck {
            check: "adherence".into(),
            value: 0.1,
            threshold: ">= 0.30 for the value asked".into(),
            verdict: CheckVerdict::Human,
            detail: format!("colour: asked red, sees blue ({i})"),
            model: Some("shapes-clip sha256:fd0346f8a987529f".into()),
        }];
        j.qa = Some(report);
        rt.block_on(jobs.insert_if_absent(&j))?;
    }
    let mut app = App::default();
    let mut term = Terminal::new(TestBackend::new(200, 50))?;

    let t = Instant::now();
    rt.block_on(app.refresh(&queue, &jobs))?;
    let first_read_ms = t.elapsed().as_secs_f64() * 1000.0;
    // Idle: what the loop does once a second with no key pressed.
    let mut idle = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        rt.block_on(app.refresh(&queue, &jobs))?;
        term.draw(|f| ui::draw(f, &mut app))?;
        idle.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    assert_eq!(app.rows().len(), n, "every job is listed");

    // Keys: what an operator does with a long queue, each timed from the key to the redrawn
    // screen.
    let script: Vec<Key> = [
        vec![Key::Char('j'); 40],
        vec![Key::PageDown; 20],
        vec![Key::Char('G'), Key::Char('g'), Key::End, Key::Home],
        vec![Key::Char(' '); 30],
        vec![Key::Char('/'), Key::Char('r'), Key::Char('i'), Key::Char('n'), Key::Char('g'), Key::Enter],
        vec![Key::Char('*'), Key::Char('*'), Key::Esc],
        vec![Key::Enter, Key::Esc, Key::Char('?'), Key::Esc, Key::Char('f'), Key::Char('f')],
        vec![Key::PageUp; 10],
    ]
    .concat();
    let mut key_ms = Vec::new();
    let now = Instant::now();
    for k in script.iter().cycle().take(keys) {
        // As the event loop does after a key: handle it, read the data again (the queues'
        // depths; the jobs only if the store changed), draw.
        let t = Instant::now();
        app.on_key(*k, now);
        rt.block_on(app.refresh(&queue, &jobs))?;
        term.draw(|f| ui::draw(f, &mut app))?;
        key_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    // The real binary on the same store, in a pseudo-terminal, left alone: the CPU time the
    // kernel counts for it (/proc/<pid>/stat, user + system) over ten seconds.
    let binary_idle_share = binary_idle(&db)?;

    let mut sorted = key_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let mut idle_sorted = idle.clone();
    idle_sorted.sort_by(f64::total_cmp);
    let idle_share = percentile(&idle_sorted, 0.5) / Duration::from_secs(1).as_secs_f64() / 1000.0;
    let record = serde_json::json!({
        "date": chrono::Utc::now().format("%Y-%m-%d").to_string(),
        "machine": machine(),
        "build": if cfg!(debug_assertions) { "dev" } else { "release" },
        "jobs": n,
        "keys": keys,
        "terminal": "200x50",
        "key_ms_p50": percentile(&sorted, 0.5),
        "key_ms_p95": percentile(&sorted, 0.95),
        "key_ms_max": sorted.last().copied().unwrap_or(f64::NAN),
        "idle_tick_ms": idle,
        "idle_share": idle_share,
        "first_read_ms": first_read_ms,
        "binary_idle_share": binary_idle_share,
    });
    println!("{record}");
    let path = latentmint_e2e::repo_root().join("infra/bench/records/dashboard.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    text.push_str(&format!("{record}\n"));
    std::fs::write(&path, text)?;
    eprintln!("appended to {}", path.display());
    drop(queue);
    Ok(())
}

/// The share of one core the `latentmint-tui` binary uses while nobody types, with the run
/// folder of `db`, measured over ten seconds after it has started and read the jobs.
fn binary_idle(db: &std::path::Path) -> anyhow::Result<f64> {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("stty rows 50 cols 200 && exec \"$0\" \"$@\"")
        .arg(latentmint_e2e::tui_bin())
        .arg(db)
        .env("TERM", "xterm-256color");
    let mut process = rexpect::process::PtyProcess::new(cmd)?;
    // Drain what it draws, as a terminal would.
    let mut output = process.get_file_handle()?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while matches!(std::io::Read::read(&mut output, &mut buf), Ok(n) if n > 0) {}
    });
    let pid = process.child_pid.as_raw();
    let ticks = || -> anyhow::Result<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
        let f: Vec<&str> = after.split_whitespace().collect();
        Ok(f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
    };
    std::thread::sleep(Duration::from_secs(5));
    let (t0, c0) = (Instant::now(), ticks()?);
    std::thread::sleep(Duration::from_secs(10));
    let (elapsed, used) = (t0.elapsed().as_secs_f64(), ticks()? - c0);
    process.exit()?;
    // Clock ticks per second: 100 on Linux (sysconf(_SC_CLK_TCK)).
    Ok(used as f64 / 100.0 / elapsed)
}
