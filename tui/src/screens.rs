//! Snapshot tests of each screen at 80x24 and 200x50: the list, help, a job in full, the
//! confirmation, the filter and the failed jobs. A change to what an operator sees shows up as
//! a diff of `tui/src/snapshots/` to review (`cargo insta review`, or `INSTA_UPDATE=always`).

use std::time::Instant;

use latentmint_core::qa::{CheckVerdict, QaCheck, QaReport, QaTag};
use latentmint_core::testing::CollectionToml;
use latentmint_core::{Job, JobState, Stage};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use crate::app::{App, Snapshot, View};
use crate::ui;

fn check(check: &str, value: f64, threshold: &str, verdict: CheckVerdict, detail: &str) -> QaCheck {
    QaCheck {
        check: check.into(),
        value,
        threshold: threshold.into(),
        verdict,
        detail: detail.into(),
        model: (check == "adherence").then(|| "shapes-clip sha256:fd0346f8a987529f".into()),
    }
}

/// A collection of `n` waiting jobs with reports like the demo's, and two stopped ones.
fn snapshot(n: usize) -> Snapshot {
    let prompts = ["a red circle", "a blue square on a dark field", "a green ring", "a yellow triangle"];
    let mut toml = CollectionToml::new("Neon Shapes", "NEON");
    for p in prompts {
        toml = toml.prompt_times(p, u32::try_from(n.div_ceil(prompts.len())).unwrap_or(1));
    }
    let mut jobs: Vec<Job> = toml.jobs().into_iter().take(n).map(Job::new).collect();
    for (i, j) in jobs.iter_mut().enumerate() {
        j.state = JobState::AwaitingReview;
        let mut report = QaReport::for_tests(0.995);
        report.checks = vec![
            check("technical", 0.995, ">= 0.50 passes, < 0.15 rejects", CheckVerdict::Pass, "score 0.99"),
            if i % 2 == 0 {
                check(
                    "adherence",
                    0.04,
                    ">= 0.30 for the value asked",
                    CheckVerdict::Human,
                    "colour: asked red, sees blue (0.91; red 0.04)",
                )
            } else {
                check(
                    "duplicate",
                    2.0,
                    "<= 4 bits of 64 is a duplicate",
                    CheckVerdict::Human,
                    "a near-duplicate of job 5f1c2a9e (2 bits of 64 differ)",
                )
            },
        ];
        report.tags = vec![QaTag {
            trait_type: "colour".into(),
            value: "blue".into(),
            score: 0.91,
            model: "shapes-clip sha256:fd0346f8a987529f".into(),
        }];
        j.qa = Some(report);
        j.image_key = Some(format!("images/{}.png", j.id().short()));
    }
    let stopped_spec = CollectionToml::new("Neon Shapes", "NEON").prompt("lost at sea").prompt("grey blur").jobs();
    let mut stopped: Vec<Job> = stopped_spec.into_iter().map(Job::new).collect();
    (stopped[0].state, stopped[0].error) =
        (JobState::Failed, Some("mint: the contract refused the mint (paused)".into()));
    (stopped[1].state, stopped[1].error) = (JobState::Rejected, Some("rejected by ada".into()));
    let counts = JobState::ALL
        .iter()
        .map(|s| {
            let n = match s {
                JobState::AwaitingReview => n as u64,
                JobState::Minted => 12,
                JobState::Queued => 4,
                _ => 0,
            };
            (*s, n)
        })
        .collect();
    // A fixed clock: each job has waited a little longer than the one after it; twelve
    // tokens were minted over the last six minutes.
    let read_at = 1_800_000_000_000;
    let waiting_since =
        jobs.iter().enumerate().map(|(i, j)| (j.id(), read_at - 3_600_000 + i as u64 * 97_000)).collect();
    let minted = CollectionToml::new("Minted", "M").prompt_times("minted", 12).jobs();
    let minted_at = minted.iter().enumerate().map(|(i, j)| (j.id, read_at - i as u64 * 30_000)).collect();
    Snapshot {
        queues: Stage::ALL.iter().map(|s| (*s, latentmint_core::ports::QueueStats::default())).collect(),
        counts,
        staging: jobs,
        stopped,
        waiting_since,
        minted_at,
        read_at,
    }
}

fn app(n: usize) -> App {
    let mut app = App::default();
    app.source = "run .latentmint/neon-shapes/pipeline.db".into();
    app.set_snapshot(snapshot(n));
    app
}

fn screen(app: &mut App, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| ui::draw(f, app)).unwrap();
    let buf = term.backend().buffer();
    buf.content()
        .chunks(usize::from(buf.area.width))
        .map(|row| row.iter().map(|c| c.symbol()).collect::<String>().trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each screen at both sizes, named `<screen>_<w>x<h>`.
fn both(name: &str, setup: impl Fn(&mut App)) {
    for (w, h) in [(80, 24), (200, 50)] {
        let mut a = app(15);
        setup(&mut a);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), screen(&mut a, w, h));
    }
}

#[test]
fn list() {
    both("list", |a| {
        a.on_key('j', Instant::now());
        a.on_key(' ', Instant::now());
    });
}

#[test]
fn help() {
    both("help", |a| {
        a.on_key('?', Instant::now());
    });
}

#[test]
fn detail() {
    both("detail", |a| {
        a.on_key(crate::app::Key::Enter, Instant::now());
        // What the job store says the opened job went through.
        let (id, t) = (a.selected_job().map(|j| j.id()).unwrap(), a.snapshot.read_at);
        let steps =
            [(JobState::Queued, 4_000_000), (JobState::Generating, 3_700_000), (JobState::AwaitingReview, 3_600_000)];
        a.history = Some((id, steps.iter().map(|(s, ago)| (*s, t - ago)).collect()));
    });
}

#[test]
fn confirm() {
    both("confirm", |a| {
        a.on_key('*', Instant::now());
        a.on_key('r', Instant::now());
    });
}

#[test]
fn filter() {
    both("filter", |a| {
        a.on_key('/', Instant::now());
        for c in "ring".chars() {
            a.on_key(c, Instant::now());
        }
    });
}

#[test]
fn failed() {
    both("failed", |a| {
        a.on_key('f', Instant::now());
    });
}

/// The key bar fits 80 columns: its last hint, `q quit`, shows.
#[test]
fn the_key_bar_fits_80_columns() {
    let s = screen(&mut app(3), 80, 24);
    let bar = s.lines().last().unwrap_or_default();
    assert!(bar.contains("q quit"), "{bar}");
    // In the failed list too.
    let mut a = app(3);
    a.view = View::Stopped;
    assert!(screen(&mut a, 80, 24).lines().last().unwrap_or_default().contains("q quit"));
}
