//! `latentmint-tui`: watch every queue of a run and approve or reject the jobs that
//! automatic QA was unsure about.
//!
//! Usage: `latentmint-tui .latentmint/<collection>/pipeline.db`

mod app;
mod ui;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use crossterm::event::{self, Event, KeyCode, KeyEventKind};
use latentmint_embedded::{SqliteJobStore, SqliteQueue};

use app::{Action, App};

/// Operator dashboard for a latentmint run.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The run's database (`.latentmint/<collection>/pipeline.db`).
    db: PathBuf,
    /// Name recorded with each decision.
    #[arg(long, env = "USER", default_value = "operator")]
    operator: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.db.is_file() {
        bail!("{} does not exist: give the pipeline.db of a run (latentmint run creates it)", args.db.display());
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let queue = SqliteQueue::open(&args.db, 5).context("opening the queues")?;
    let jobs = SqliteJobStore::open(&args.db).context("opening the job store")?;
    let mut app = App::default();
    let mut terminal = ratatui::init();
    let result = (|| -> anyhow::Result<()> {
        while !app.quit {
            rt.block_on(app.refresh(&queue, &jobs))?;
            terminal.draw(|f| ui::draw(f, &app))?;
            if !event::poll(Duration::from_millis(500))? {
                continue;
            }
            let Event::Key(k) = event::read()? else { continue };
            if k.kind != KeyEventKind::Press {
                continue;
            }
            let c = match k.code {
                KeyCode::Char(c) => c,
                KeyCode::Down => '↓',
                KeyCode::Up => '↑',
                KeyCode::Esc => 'q',
                _ => continue,
            };
            if let Action::Decide(id, approve) = app.on_key(c) {
                let r = rt.block_on(latentmint_stages::review::decide(&jobs, &queue, id, approve, &args.operator));
                app.status = match r {
                    Ok(state) => format!("job {} is now {state}; a running `latentmint run` picks it up", id.short()),
                    Err(e) => format!("job {}: {e}", id.short()),
                };
            }
        }
        Ok(())
    })();
    ratatui::restore();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use latentmint_core::collection::Collection;
    use latentmint_core::ports::{JobStore, Queue};
    use latentmint_core::qa::QaReport;
    use latentmint_core::{Job, JobState};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn waiting_job(prompt: &str) -> Job {
        let text = format!(
            "[collection]\nname = \"T\"\nsymbol = \"T\"\nrecipient = \"0x70997970C51812dc3A010C7d01b50e0d17dc79C8\"\n[generation]\nmodel = \"m\"\n[[prompts]]\ntext = \"{prompt}\"\n"
        );
        let spec = Collection::from_toml("t", &text).unwrap().jobs().unwrap().remove(0);
        let mut j = Job::new(spec);
        j.state = JobState::AwaitingReview;
        j.qa = Some(QaReport::for_tests(0.31));
        j
    }

    #[tokio::test]
    async fn shows_staging_queue_and_approves_the_selected_job() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("p.db");
        let queue = SqliteQueue::open(&db, 5).unwrap();
        let jobs = SqliteJobStore::open(&db).unwrap();
        let (a, b) = (waiting_job("murky fog"), waiting_job("grey sea"));
        jobs.insert_if_absent(&a).await.unwrap();
        jobs.insert_if_absent(&b).await.unwrap();
        queue.send("generate", "{}").await.unwrap();

        let mut app = App::default();
        app.refresh(&queue, &jobs).await.unwrap();
        let mut term = Terminal::new(TestBackend::new(100, 24)).unwrap();
        term.draw(|f| ui::draw(f, &app)).unwrap();
        let screen = format!("{:?}", term.backend().buffer());
        assert!(screen.contains("QA staging: 2 waiting"), "{screen}");
        assert!(screen.contains("murky fog") && screen.contains("0.31"));
        // Every job state has a row, the final ones included.
        for state in ["queued", "awaiting_review", "minted", "failed"] {
            assert!(screen.contains(state), "no row for {state}: {screen}");
        }

        app.on_key('j');
        let Action::Decide(id, true) = app.on_key('a') else { panic!("expected approve") };
        assert_eq!(id, b.id());
        latentmint_stages::review::decide(&jobs, &queue, id, true, "ada").await.unwrap();
        app.refresh(&queue, &jobs).await.unwrap();
        assert_eq!(app.snapshot.staging.len(), 1);
        assert_eq!(queue.stats("publish").await.unwrap().visible, 1, "approval queues publication");
    }
}
