//! `latentmint-tui`: watch every queue of a run, or of a deployed stack, and approve or
//! reject the jobs that automatic QA was unsure about.
//!
//! Usage: `latentmint-tui .latentmint/<collection>/pipeline.db` (a local run), or
//! `latentmint-tui --queue-prefix latentmint-dev- --jobs-table <table>` (the SAM stack's SQS
//! queues and DynamoDB table, with the usual AWS credentials and region).

mod app;
mod ui;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use crossterm::event::{self, Event, KeyCode, KeyEventKind};
use latentmint_core::Stage;
use latentmint_core::ports::{JobStore, Queue};
use latentmint_embedded::{SqliteJobStore, SqliteQueue};

use app::{Action, App};

/// Operator dashboard for a latentmint run or stack.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// A local run's database (`.latentmint/<collection>/pipeline.db`).
    #[arg(required_unless_present = "queue_prefix")]
    db: Option<PathBuf>,
    /// A deployed stack instead: the prefix of its queue names (`latentmint-<Stage>-`).
    #[arg(long, requires = "jobs_table", conflicts_with = "db")]
    queue_prefix: Option<String>,
    /// The stack's DynamoDB job table (output `JobsTableName`).
    #[arg(long, requires = "queue_prefix")]
    jobs_table: Option<String>,
    /// Message group of the stack's FIFO mint queue (parameter `MintWallet`).
    #[arg(long, default_value = "wallet-1")]
    mint_group: String,
    /// Name recorded with each decision.
    #[arg(long, env = "USER", default_value = "operator")]
    operator: String,
}

/// The ports the dashboard reads and decides through, and what to tell the operator after a
/// decision.
struct Backend {
    queue: Box<dyn Queue>,
    jobs: Box<dyn JobStore>,
    after_decision: &'static str,
}

async fn backend(args: &Args) -> anyhow::Result<Backend> {
    match (&args.db, &args.queue_prefix, &args.jobs_table) {
        (Some(db), _, _) => {
            if !db.is_file() {
                bail!("{} does not exist: give the pipeline.db of a run (latentmint run creates it)", db.display());
            }
            Ok(Backend {
                queue: Box::new(SqliteQueue::open(db, 5).context("opening the queues")?),
                jobs: Box::new(SqliteJobStore::open(db).context("opening the job store")?),
                after_decision: "a running `latentmint run` picks it up",
            })
        }
        (None, Some(prefix), Some(table)) => {
            let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
            Ok(Backend {
                queue: Box::new(
                    latentmint_aws::SqsQueue::new(aws_sdk_sqs::Client::new(&cfg), prefix.clone())
                        .with_fifo(Stage::Mint.queue(), args.mint_group.clone()),
                ),
                jobs: Box::new(latentmint_aws::DynamoJobStore::new(aws_sdk_dynamodb::Client::new(&cfg), table.clone())),
                after_decision: "the stack's publish function picks it up",
            })
        }
        _ => bail!("give a run's pipeline.db, or --queue-prefix and --jobs-table of a deployed stack"),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let b = rt.block_on(backend(&args))?;
    // Fail before taking over the terminal when the stack or database cannot be read.
    let mut app = App::default();
    rt.block_on(app.refresh(b.queue.as_ref(), b.jobs.as_ref())).context("reading the queues and jobs")?;
    let mut terminal = ratatui::init();
    let result = (|| -> anyhow::Result<()> {
        while !app.quit {
            rt.block_on(app.refresh(b.queue.as_ref(), b.jobs.as_ref()))?;
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
                let r = rt.block_on(latentmint_stages::review::decide(
                    b.jobs.as_ref(),
                    b.queue.as_ref(),
                    id,
                    approve,
                    &args.operator,
                ));
                app.status = match r {
                    Ok(state) => format!("job {} is now {state}; {}", id.short(), b.after_decision),
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
