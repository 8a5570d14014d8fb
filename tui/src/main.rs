//! `latentmint-tui`: watch every queue of a run, or of a deployed stack, and approve or
//! reject the jobs that automatic QA was unsure about.
//!
//! Usage: `latentmint-tui .latentmint/<collection>` (a local run's folder, or its `pipeline.db`), or
//! `latentmint-tui --queue-prefix latentmint-dev- --jobs-table <table> --bucket <bucket>` (the
//! SAM stack's SQS queues, DynamoDB table and image bucket, with the usual AWS credentials and
//! region). The selected job's image is shown next to the staging queue, in coloured half
//! blocks, or with the terminal's graphics protocol (sixel, kitty, iTerm2) with `--graphics`.
//! Keys: `?` lists them all. `a`/`r` approve or reject the selected job, or every job marked
//! with `space` (`*` marks them all); more than one asks first, and `u` undoes a decision for
//! five seconds before it is released; `Enter` opens a job's QA report; `/` filters; `f`
//! switches to the jobs that failed or were rejected, with why.

use latentmint_tui::{app, ui};

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use crossterm::event::{self, Event, KeyCode, KeyEventKind};
use latentmint_core::Stage;
use latentmint_core::ports::{BlobStore, JobStore, Queue};
use latentmint_embedded::{FsBlobStore, SqliteJobStore, SqliteQueue};
use ratatui_image::picker::Picker;

use app::{Action, App, Decision, Key};

/// Operator dashboard for a latentmint run or stack.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// A local run's folder (`.latentmint/<collection>`) or its database (`pipeline.db` in it).
    #[arg(required_unless_present = "queue_prefix")]
    db: Option<PathBuf>,
    /// A deployed stack instead: the prefix of its queue names (`latentmint-<Stage>-`).
    #[arg(long, requires_all = ["jobs_table", "bucket"], conflicts_with = "db")]
    queue_prefix: Option<String>,
    /// The stack's DynamoDB job table (output `JobsTableName`).
    #[arg(long, requires = "queue_prefix")]
    jobs_table: Option<String>,
    /// The stack's image bucket (output `ImageBucketName`), for the previews.
    #[arg(long, requires = "queue_prefix")]
    bucket: Option<String>,
    /// Message group of the stack's FIFO mint queue (parameter `MintWallet`).
    #[arg(long, default_value = "wallet-1")]
    mint_group: String,
    /// Draw previews with the terminal's graphics protocol (sixel, kitty, iTerm2), asked of the
    /// terminal at start. Off by default: coloured half blocks work in every terminal, and a
    /// terminal that never answers the question would swallow the first keys typed.
    #[arg(long)]
    graphics: bool,
    /// Name recorded with each decision.
    #[arg(long, env = "USER", default_value = "operator")]
    operator: String,
    /// Resume stalled jobs as `R` does, print what was done and exit, without the dashboard
    /// (for runbooks, alarms' handlers and schedules); exits 1 if the resume stopped.
    #[arg(long)]
    resume: bool,
}

/// The ports the dashboard reads and decides through, and what to tell the operator after a
/// decision.
struct Backend {
    queue: Box<dyn Queue>,
    jobs: Box<dyn JobStore>,
    blobs: Box<dyn BlobStore>,
    /// Where the data comes from, for the header.
    source: String,
    /// Who publishes an approved job.
    publisher: &'static str,
    after_resume: &'static str,
}

async fn backend(args: &Args) -> anyhow::Result<Backend> {
    match (&args.db, &args.queue_prefix, &args.jobs_table, &args.bucket) {
        (Some(given), ..) => {
            // A run's folder names its database too.
            let db = if given.is_dir() { given.join("pipeline.db") } else { given.clone() };
            if !db.is_file() {
                bail!(
                    "{} does not exist: give a run's folder (.latentmint/<collection>) or its pipeline.db; `latentmint run FILE` creates them",
                    db.display()
                );
            }
            let db = &db;
            Ok(Backend {
                queue: Box::new(SqliteQueue::open(db, 5).context("opening the queues")?),
                jobs: Box::new(SqliteJobStore::open(db).context("opening the job store")?),
                // The run keeps its images next to its database.
                blobs: Box::new(FsBlobStore::new(db.parent().unwrap_or(Path::new(".")).join("blobs"))),
                source: format!("run {}", db.display()),
                publisher: "the next `latentmint run` of this collection (or the one running now)",
                after_resume: "a running `latentmint run` picks them up, or the next one",
            })
        }
        (None, Some(prefix), Some(table), Some(bucket)) => {
            let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
            Ok(Backend {
                queue: Box::new(
                    latentmint_aws::SqsQueue::new(aws_sdk_sqs::Client::new(&cfg), prefix.clone())
                        .with_fifo(Stage::Mint.queue(), args.mint_group.clone()),
                ),
                jobs: Box::new(latentmint_aws::DynamoJobStore::new(aws_sdk_dynamodb::Client::new(&cfg), table.clone())),
                blobs: Box::new(latentmint_aws::S3BlobStore::stage_blobs(
                    aws_sdk_s3::Client::new(&cfg),
                    bucket.clone(),
                )),
                source: format!("stack {prefix}* · table {table}"),
                publisher: "the stack's publish function",
                after_resume: "the stack's functions pick them up",
            })
        }
        _ => bail!("give a run's pipeline.db, or --queue-prefix, --jobs-table and --bucket of a deployed stack"),
    }
}

/// Decides each job in turn (each is its own compare-and-swap; one that another operator
/// decided first is reported, the others still go through) and says what happened.
async fn decide_all(b: &Backend, d: &Decision, operator: &str) -> String {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for id in &d.ids {
        match latentmint_stages::operator::decide(b.jobs.as_ref(), b.queue.as_ref(), *id, d.approve, operator).await {
            Ok(_) => done.push(*id),
            Err(e) => failed.push(format!("job {}: {e}", id.short())),
        }
    }
    let what = match done.as_slice() {
        [] => String::new(),
        [one] => format!("job {}", one.short()),
        many => format!("{} jobs", many.len()),
    };
    let mut status = match (what.is_empty(), d.approve) {
        (true, _) => String::new(),
        (false, true) => format!("approved {what}: {} publishes and mints it", b.publisher),
        (false, false) => format!("rejected {what}: no token will be minted for it"),
    };
    if done.len() > 1 {
        status = status.replace(" it", " them");
    }
    if !failed.is_empty() {
        if !status.is_empty() {
            status.push_str(" · ");
        }
        status.push_str(&failed.join(" · "));
    }
    status
}

/// Sends every unsettled job on to the stage it waits for, and says how many went where (or,
/// as the error, why it stopped).
async fn resume(b: &Backend) -> Result<String, String> {
    let r = latentmint_stages::operator::resume(b.jobs.as_ref(), b.queue.as_ref())
        .await
        .map_err(|e| format!("resume stopped: {e}; resume again (a job sent twice is done once)"))?;
    let jobs = |n: usize| if n == 1 { "1 job".to_string() } else { format!("{n} jobs") };
    let mut parts = Vec::new();
    if r.sent.is_empty() && r.queued == 0 && r.unknown.is_empty() && r.cleared == 0 {
        return Ok("nothing to resume: every job is settled or awaits review".into());
    }
    if r.sent.is_empty() {
        parts.push("nothing to resume".to_string());
    } else {
        let per_stage: Vec<String> = Stage::ALL
            .iter()
            .filter_map(|stage| {
                let n = r.sent.iter().filter(|(_, s)| s == stage).count();
                (n > 0).then(|| format!("{n} to {}", stage.queue()))
            })
            .collect();
        parts.push(format!("resumed {} ({})", jobs(r.sent.len()), per_stage.join(", ")));
    }
    if r.queued > 0 {
        let verb = if r.queued == 1 { "has" } else { "have" };
        parts.push(format!("{} {verb} a message queued already", jobs(r.queued)));
    }
    for (stage, n) in &r.unknown {
        parts.push(format!(
            "{} not sent: the {} queue holds messages and cannot say for which jobs; resume again once it is empty",
            jobs(*n),
            stage.queue()
        ));
    }
    match r.cleared {
        0 => {}
        1 => parts.push("1 dead letter cleared".into()),
        n => parts.push(format!("{n} dead letters cleared")),
    }
    let mut text = parts.join("; ");
    if !r.sent.is_empty() {
        text.push_str(&format!("; {}", b.after_resume));
    }
    Ok(text)
}

/// Sends failed job `id` back to the stage that failed it, and says where.
async fn retry(b: &Backend, id: latentmint_core::JobId) -> String {
    match latentmint_stages::operator::retry(b.jobs.as_ref(), b.queue.as_ref(), id).await {
        Ok(stage) => format!("job {} goes back to the {} stage; {}", id.short(), stage.queue(), b.after_resume),
        Err(e) => format!("job {}: {e}", id.short()),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let b = rt.block_on(backend(&args))?;
    if args.resume {
        match rt.block_on(resume(&b)) {
            Ok(done) => println!("{done}"),
            Err(stopped) => bail!(stopped),
        }
        return Ok(());
    }
    // Fail before taking over the terminal when the stack or database cannot be read.
    let mut app = App::default();
    app.source = b.source.clone();
    rt.block_on(app.refresh(b.queue.as_ref(), b.jobs.as_ref())).context("reading the queues and jobs")?;
    let mut terminal = ratatui::init();
    // Asked after entering the alternate screen and before reading events, as the terminal
    // answers on stdin.
    let picker = if args.graphics {
        Picker::from_query_stdio().unwrap_or_else(|_| Picker::halfblocks())
    } else {
        Picker::halfblocks()
    };
    let release = |app: &mut App, decisions: Vec<Decision>| {
        for d in decisions {
            app.status = rt.block_on(decide_all(&b, &d, &args.operator));
        }
        app.invalidate();
    };
    let result = (|| -> anyhow::Result<()> {
        // Data is read again every second, and at once after a key; drawing only follows a
        // change, so an idle dashboard costs a read a second.
        let mut last_read = std::time::Instant::now();
        let mut dirty = true;
        while !app.quit {
            let due = app.due(std::time::Instant::now());
            if !due.is_empty() {
                release(&mut app, due);
                dirty = true;
            }
            if dirty || last_read.elapsed() >= Duration::from_secs(1) {
                rt.block_on(app.refresh(b.queue.as_ref(), b.jobs.as_ref()))?;
                rt.block_on(app.load_preview(b.blobs.as_ref(), &picker));
                rt.block_on(app.load_history(b.jobs.as_ref()));
                terminal.draw(|f| ui::draw(f, &mut app))?;
                last_read = std::time::Instant::now();
                dirty = false;
            }
            if !event::poll(Duration::from_millis(200))? {
                continue;
            }
            let Event::Key(k) = event::read()? else { continue };
            if k.kind != KeyEventKind::Press {
                continue;
            }
            let key = match k.code {
                KeyCode::Char(c) => Key::Char(c),
                KeyCode::Down => Key::Down,
                KeyCode::Up => Key::Up,
                KeyCode::PageDown => Key::PageDown,
                KeyCode::PageUp => Key::PageUp,
                KeyCode::Home => Key::Home,
                KeyCode::End => Key::End,
                KeyCode::Enter => Key::Enter,
                KeyCode::Esc => Key::Esc,
                KeyCode::Backspace => Key::Backspace,
                _ => continue,
            };
            match app.on_key(key, std::time::Instant::now()) {
                Action::Resume => {
                    app.status = rt.block_on(resume(&b)).unwrap_or_else(|stopped| stopped);
                    app.invalidate();
                }
                Action::Retry(id) => {
                    app.status = rt.block_on(retry(&b, id));
                    app.invalidate();
                }
                Action::None => {}
            }
            dirty = true;
        }
        Ok(())
    })();
    // What the operator decided stands: a decision still in its undo window is released.
    let left = app.release_now();
    release(&mut app, left);
    ratatui::restore();
    if !app.status.is_empty() {
        println!("{}", app.status);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use latentmint_core::ports::{JobStore, Queue};
    use latentmint_core::qa::QaReport;
    use latentmint_core::{Job, JobState};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn now() -> std::time::Instant {
        std::time::Instant::now()
    }

    /// The decision the app releases once its undo window has passed.
    fn released(app: &mut App) -> Decision {
        let mut due = app.due(now() + app::UNDO_WINDOW);
        assert_eq!(due.len(), 1, "one decision is due");
        due.remove(0)
    }

    fn waiting_job(prompt: &str) -> Job {
        let spec = latentmint_core::testing::CollectionToml::new("T", "T").prompt(prompt).jobs().remove(0);
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
        term.draw(|f| ui::draw(f, &mut app)).unwrap();
        let screen = screen_text(&term);
        assert!(screen.contains("QA staging: 2 waiting"), "{screen}");
        assert!(screen.contains("murky fog") && screen.contains("0.31"));
        // Every job state has a row, the final ones included.
        for state in ["queued", "generating", "awaiting_review", "minting", "minted", "failed"] {
            assert!(screen.contains(state), "no row for {state}: {screen}");
        }

        app.on_key('j', now());
        assert_eq!(app.on_key('a', now()), Action::None);
        let d = released(&mut app);
        assert!(d.approve);
        assert_eq!(d.ids, vec![app.snapshot.staging[1].id()]);
        latentmint_stages::operator::decide(&jobs, &queue, d.ids[0], true, "ada").await.unwrap();
        app.refresh(&queue, &jobs).await.unwrap();
        assert_eq!(app.snapshot.staging.len(), 1);
        assert_eq!(queue.stats("publish").await.unwrap().visible, 1, "approval queues publication");
    }

    fn red_png() -> Vec<u8> {
        let img = image::RgbImage::from_pixel(64, 64, image::Rgb([220, 20, 30]));
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png).unwrap();
        png.into_inner()
    }

    /// Cells drawn in the image's red, as half blocks colour them.
    /// The screen as a user reads it: one line of text per row, without styles.
    fn screen_text(term: &Terminal<TestBackend>) -> String {
        let buf = term.backend().buffer();
        buf.content()
            .chunks(usize::from(buf.area.width))
            .map(|row| row.iter().map(|c| c.symbol()).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn red_cells(term: &Terminal<TestBackend>) -> usize {
        let is_red =
            |c: ratatui::style::Color| matches!(c, ratatui::style::Color::Rgb(r, g, b) if r > 180 && g < 60 && b < 60);
        term.backend().buffer().content().iter().filter(|c| is_red(c.fg) || is_red(c.bg)).count()
    }

    #[tokio::test]
    async fn shows_the_selected_jobs_image_or_why_it_cannot() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("p.db");
        let (queue, jobs) = (SqliteQueue::open(&db, 5).unwrap(), SqliteJobStore::open(&db).unwrap());
        let blobs = FsBlobStore::new(dir.path().join("blobs"));
        let mut red = waiting_job("red square");
        red.image_key = Some("images/red.png".into());
        blobs.put("images/red.png", red_png()).await.unwrap();
        let mut lost = waiting_job("lost square");
        lost.image_key = Some("images/gone.png".into());
        jobs.insert_if_absent(&red).await.unwrap();
        jobs.insert_if_absent(&lost).await.unwrap();

        let mut app = App::default();
        app.refresh(&queue, &jobs).await.unwrap();
        app.selected = app.snapshot.staging.iter().position(|j| j.id() == red.id()).unwrap();
        let picker = Picker::halfblocks();
        app.load_preview(&blobs, &picker).await;
        let mut term = Terminal::new(TestBackend::new(100, 30)).unwrap();
        term.draw(|f| ui::draw(f, &mut app)).unwrap();
        assert!(red_cells(&term) > 50, "the red image is drawn:\n{}", screen_text(&term));

        // The other job's image is missing from the store: the panel says so, in place of it.
        app.selected = app.snapshot.staging.iter().position(|j| j.id() == lost.id()).unwrap();
        app.load_preview(&blobs, &picker).await;
        term.draw(|f| ui::draw(f, &mut app)).unwrap();
        let screen = screen_text(&term);
        assert!(screen.contains("images/gone.png could not be") && screen.contains("not found"), "{screen}");
        assert_eq!(red_cells(&term), 0, "{screen}");
    }

    /// Operators shrink their terminals: every pane, the image preview and the failed-jobs
    /// view included, draws at any size down to one cell without panicking.
    #[tokio::test]
    async fn draws_at_any_terminal_size() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("p.db");
        let (queue, jobs) = (SqliteQueue::open(&db, 5).unwrap(), SqliteJobStore::open(&db).unwrap());
        let blobs = FsBlobStore::new(dir.path().join("blobs"));
        let mut red = waiting_job("a red square with a rather long prompt that will not fit a narrow window");
        red.image_key = Some("images/red.png".into());
        blobs.put("images/red.png", red_png()).await.unwrap();
        jobs.insert_if_absent(&red).await.unwrap();
        jobs.insert_if_absent(&waiting_job("grey sea")).await.unwrap();
        let mut app = App::default();
        app.refresh(&queue, &jobs).await.unwrap();
        app.load_preview(&blobs, &Picker::halfblocks()).await;
        for failed_view in [false, true] {
            if failed_view {
                app.on_key('f', now());
            }
            for (w, h) in [(1, 1), (2, 2), (10, 3), (20, 5), (30, 8), (40, 10), (60, 12), (80, 16), (200, 60)] {
                let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
                term.draw(|f| ui::draw(f, &mut app)).unwrap_or_else(|e| panic!("{w}x{h}: {e}"));
            }
        }
    }

    /// The dashboard's ports on a fresh local database (kept while the folder lives).
    fn local_backend() -> (tempfile::TempDir, Backend) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("p.db");
        let b = Backend {
            queue: Box::new(SqliteQueue::open(&db, 5).unwrap()),
            jobs: Box::new(SqliteJobStore::open(&db).unwrap()),
            blobs: Box::new(FsBlobStore::new(dir.path().join("blobs"))),
            source: "test".into(),
            publisher: "the next run",
            after_resume: "picked up",
        };
        (dir, b)
    }

    #[tokio::test]
    async fn r_resumes_stalled_jobs_at_the_stage_each_waits_for() {
        let (_dir, b) = local_backend();
        let mut app = App::default();
        assert_eq!(app.on_key('R', now()), Action::Resume);
        assert_eq!(resume(&b).await.unwrap(), "nothing to resume: every job is settled or awaits review");
        // Two jobs whose mint messages ran out of retries, one whose publish did, one waiting
        // for an operator (not the dashboard's to move on).
        let stalled = [("one", JobState::Published), ("two", JobState::Published), ("three", JobState::Approved)];
        for (prompt, state) in stalled {
            let mut j = waiting_job(prompt);
            j.state = state;
            b.jobs.insert_if_absent(&j).await.unwrap();
        }
        b.jobs.insert_if_absent(&waiting_job("four")).await.unwrap();
        assert_eq!(resume(&b).await.unwrap(), "resumed 3 jobs (1 to publish, 2 to mint); picked up");
        assert_eq!(b.queue.stats("mint").await.unwrap().visible, 2);
        assert_eq!(b.queue.stats("publish").await.unwrap().visible, 1);
        assert_eq!(b.queue.stats("review").await.unwrap().visible, 0);
    }

    /// With nothing written, a refresh reads no job again, yet the waits it shows keep growing.
    #[tokio::test]
    async fn an_idle_refresh_keeps_the_clock_of_the_waits_moving() {
        let (_dir, b) = local_backend();
        b.jobs.insert_if_absent(&waiting_job("one")).await.unwrap();
        let mut app = App::default();
        app.refresh(b.queue.as_ref(), b.jobs.as_ref()).await.unwrap();
        let first = app.snapshot.read_at;
        tokio::time::sleep(Duration::from_millis(20)).await;
        app.refresh(b.queue.as_ref(), b.jobs.as_ref()).await.unwrap();
        assert!(app.snapshot.read_at > first, "the second read's clock moved");
        assert_eq!(app.snapshot.staging.len(), 1);
    }

    /// Four approved jobs each have a publish message queued: `R` sends none of them another
    /// (before, 4 approved jobs became 8 publish messages), and says why.
    #[tokio::test]
    async fn r_sends_no_second_message_to_a_job_that_has_one_queued() {
        let (_dir, b) = local_backend();
        for prompt in ["one", "two", "three", "four"] {
            let j = waiting_job(prompt);
            b.jobs.insert_if_absent(&j).await.unwrap();
            latentmint_stages::operator::decide(b.jobs.as_ref(), b.queue.as_ref(), j.id(), true, "ada").await.unwrap();
        }
        assert_eq!(b.queue.stats("publish").await.unwrap().visible, 4);
        let said = resume(&b).await.unwrap();
        assert_eq!(said, "nothing to resume; 4 jobs have a message queued already");
        assert_eq!(b.queue.stats("publish").await.unwrap().visible, 4, "no duplicates");
        // One of the messages is lost (taken and deleted, its job not published): that job,
        // and only it, is sent on.
        let taken = b.queue.receive("publish", 1, Duration::from_secs(60)).await.unwrap();
        b.queue.ack("publish", &taken[0].receipt).await.unwrap();
        let said = resume(&b).await.unwrap();
        assert!(said.starts_with("resumed 1 job (1 to publish); 3 jobs have a message queued already"), "{said}");
        assert_eq!(b.queue.stats("publish").await.unwrap().visible, 4);
    }

    #[tokio::test]
    async fn t_retries_the_selected_failed_job_and_not_a_rejected_one() {
        let (_dir, b) = local_backend();
        let mut failed = waiting_job("failed at mint");
        (failed.state, failed.metadata_cid) = (JobState::Failed, Some("bafkreimeta".into()));
        failed.error = Some("the contract refused the mint".into());
        let mut rejected = waiting_job("rejected by ada");
        (rejected.state, rejected.error) = (JobState::Rejected, Some("rejected by ada".into()));
        b.jobs.insert_if_absent(&failed).await.unwrap();
        b.jobs.insert_if_absent(&rejected).await.unwrap();
        let mut app = App::default();
        assert!(matches!(app.on_key('t', now()), Action::None) && app.status.contains("f lists them"));
        app.on_key('f', now());
        app.refresh(b.queue.as_ref(), b.jobs.as_ref()).await.unwrap();
        let row = |app: &App, prompt: &str| app.rows().iter().position(|j| j.spec.prompt == prompt).unwrap();
        app.selected = row(&app, "rejected by ada");
        assert_eq!(app.on_key('t', now()), Action::None);
        assert!(app.status.contains("not retried"), "{}", app.status);
        app.selected = row(&app, "failed at mint");
        assert_eq!(app.on_key('t', now()), Action::Retry(failed.id()));
        let status = retry(&b, failed.id()).await;
        assert_eq!(status, format!("job {} goes back to the mint stage; picked up", failed.id().short()));
        assert_eq!(b.jobs.get(failed.id()).await.unwrap().unwrap().state, JobState::Published);
        assert_eq!(b.queue.stats("mint").await.unwrap().visible, 1);
    }

    #[tokio::test]
    async fn a_marked_batch_is_decided_at_once_and_a_job_decided_elsewhere_is_named() {
        let (_dir, b) = local_backend();
        let batch = [waiting_job("one"), waiting_job("two"), waiting_job("three")];
        for j in &batch {
            b.jobs.insert_if_absent(j).await.unwrap();
        }
        let mut app = App::default();
        app.refresh(b.queue.as_ref(), b.jobs.as_ref()).await.unwrap();

        // Mark "one" and "three" (space), leave "two".
        for prompt in ["one", "three"] {
            app.selected = app.rows().iter().position(|j| j.spec.prompt == prompt).unwrap();
            app.on_key(' ', now());
        }
        let mut term = Terminal::new(TestBackend::new(110, 30)).unwrap();
        term.draw(|f| ui::draw(f, &mut app)).unwrap();
        let screen = screen_text(&term);
        assert!(screen.contains("3 waiting, 2 marked") && screen.matches('✓').count() == 2, "{screen}");

        // Another operator rejects "three" first: "one" still goes through, "three" is named.
        let three = batch[2].id();
        latentmint_stages::operator::decide(b.jobs.as_ref(), b.queue.as_ref(), three, false, "bob").await.unwrap();
        app.on_key('a', now());
        assert!(matches!(&app.mode, app::Mode::Confirm(d) if d.ids.len() == 2), "two jobs: asked first");
        app.on_key('y', now());
        let d = released(&mut app);
        assert_eq!(d.ids.len(), 2);
        assert!(app.marked.is_empty(), "a decision uses up the marks");
        let status = decide_all(&b, &d, "ada").await;
        assert!(
            status.starts_with(&format!("approved job {}: the next run publishes", batch[0].id().short())),
            "{status}"
        );
        assert!(status.contains(&format!("job {}", three.short())), "{status}");
        assert_eq!(b.queue.stats("publish").await.unwrap().visible, 1, "only the approved job is queued");
        app.refresh(b.queue.as_ref(), b.jobs.as_ref()).await.unwrap();
        assert_eq!(app.snapshot.staging.iter().map(|j| j.spec.prompt.as_str()).collect::<Vec<_>>(), ["two"]);

        // `*` marks every waiting job, and again clears them.
        app.on_key('*', now());
        assert_eq!(app.marked.len(), 1);
        app.on_key('*', now());
        assert!(app.marked.is_empty());
    }

    #[tokio::test]
    async fn f_shows_the_failed_and_rejected_jobs_with_why() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("p.db");
        let (queue, jobs) = (SqliteQueue::open(&db, 5).unwrap(), SqliteJobStore::open(&db).unwrap());
        let mut failed = waiting_job("lost at sea");
        failed.state = JobState::Failed;
        failed.error = Some("mint: AlreadyMinted reverted".into());
        let rejected = waiting_job("grey blur");
        for j in [&failed, &rejected, &waiting_job("still waiting")] {
            jobs.insert_if_absent(j).await.unwrap();
        }
        latentmint_stages::operator::decide(&jobs, &queue, rejected.id(), false, "bob").await.unwrap();

        let mut app = App::default();
        app.refresh(&queue, &jobs).await.unwrap();
        app.on_key('f', now());
        let mut term = Terminal::new(TestBackend::new(120, 30)).unwrap();
        term.draw(|f| ui::draw(f, &mut app)).unwrap();
        let screen = screen_text(&term);
        assert!(screen.contains("Stopped: 2 failed or rejected"), "{screen}");
        assert!(screen.contains("mint: AlreadyMinted reverted") && screen.contains("rejected by bob"), "{screen}");
        assert!(!screen.contains("still waiting"), "{screen}");
        // Nothing is decided from this list.
        assert_eq!(app.on_key('a', now()), Action::None);
        assert!(app.status.contains("staging queue"), "{}", app.status);
        app.on_key('f', now());
        assert_eq!(app.rows().len(), 1, "back to the staging queue");
    }
}
