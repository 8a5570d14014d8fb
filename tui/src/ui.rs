//! Drawing: a pure function of the app state, one function per pane. Overlays (help, the
//! confirmation, a job in full) draw over the list.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Table, TableState, Wrap};
use ratatui_image::{Resize, StatefulImage};

use crate::app::{App, Mode, View, duration};
use latentmint_core::Job;
use latentmint_core::qa::CheckVerdict;

/// Every key, as the help overlay lists them: (keys, what they do).
pub const KEYS: &[(&str, &str)] = &[
    ("j k ↓ ↑", "move down / up"),
    ("PgDn PgUp", "move a page"),
    ("g G Home End", "first / last job"),
    ("Enter", "open the job: its QA report, prompt, parameters, token"),
    ("/", "filter by prompt, job id or state (Enter keeps, Esc clears)"),
    ("space", "mark the job and move down"),
    ("*", "mark every job shown, or unmark them"),
    ("a  r", "approve / reject the marked jobs, or the selected one"),
    ("u", "undo the last decision (for 5 s, before it is released)"),
    ("f", "switch between the staging queue and failed or rejected jobs"),
    ("t", "retry the selected failed job"),
    ("R", "resume stalled jobs (their messages dead-lettered or lost)"),
    ("?", "this help"),
    ("q Esc", "back; quit from the list"),
];

/// The key bar: what fits at 80 columns.
const BAR: &[(&str, &str)] = &[
    ("?", "help"),
    ("/", "filter"),
    ("⏎", "open"),
    ("␣", "mark"),
    ("a", "approve"),
    ("r", "reject"),
    ("u", "undo"),
    ("f", "failed"),
    ("q", "quit"),
];

/// Draws the whole dashboard (mutable only for the image preview, which scales itself to
/// its area once and keeps the result, and for the page size the list reports).
pub fn draw(f: &mut Frame<'_>, app: &mut App) {
    let [header, top, middle, selected, status, bar] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(7),
        Constraint::Min(5),
        Constraint::Length(5),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    draw_header(f, app, header);
    draw_top(f, app, top);
    let [list_area, preview_area] =
        Layout::horizontal([Constraint::Percentage(62), Constraint::Percentage(38)]).areas(middle);
    draw_list(f, app, list_area);
    draw_preview(f, app, preview_area);
    draw_selected(f, app, selected);
    draw_status(f, app, status);
    draw_bar(f, bar);
    match app.mode.clone() {
        Mode::Help => draw_help(f, f.area()),
        Mode::Confirm(d) => {
            let text = format!("{}?", capital(&d.describe()));
            draw_confirm(f, f.area(), &text);
        }
        Mode::Detail => {
            // The job in full on the left, its image kept beside it, both down to the status.
            let whole = middle.union(selected);
            let left = Rect { width: list_area.width, ..whole };
            let right = Rect { x: preview_area.x, width: preview_area.width, ..whole };
            draw_detail(f, app, left);
            f.render_widget(Clear, right);
            draw_preview(f, app, right);
        }
        Mode::List | Mode::Filter => {}
    }
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

fn draw_header(f: &mut Frame<'_>, app: &App, area: Rect) {
    let mut collections: Vec<&str> =
        app.snapshot.staging.iter().chain(&app.snapshot.stopped).map(|j| j.spec.collection.as_str()).collect();
    collections.sort_unstable();
    collections.dedup();
    let named = match collections.as_slice() {
        [] => String::new(),
        [one] => format!(" · {one}"),
        many => format!(" · {} collections", many.len()),
    };
    // What an operator asks first (how long jobs wait, how fast tokens come), then where from.
    let snap = &app.snapshot;
    let mut pace = String::new();
    if let Some(ms) = snap.oldest_wait_ms() {
        pace.push_str(&format!(" · oldest waiting {}", duration(ms)));
    }
    if let Some(rate) = snap.minted_per_min() {
        pace.push_str(&format!(" · {rate:.1} minted/min"));
    }
    if let Some(ms) = snap.eta_ms() {
        pace.push_str(&format!(" · {} on their way, ~{} left", snap.in_progress(), duration(ms)));
    }
    let line =
        Line::from(vec![Span::styled("latentmint", bold()), Span::raw(format!("{named}{pace} · {}", app.source))]);
    f.render_widget(Paragraph::new(line), area);
}

fn draw_top(f: &mut Frame<'_>, app: &App, area: Rect) {
    let [queues_area, jobs_area] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    let queue_rows = app.snapshot.queues.iter().map(|(s, st)| {
        let dead_style = if st.dead > 0 { Style::default().fg(Color::Red) } else { Style::default() };
        Row::new(vec![
            Span::raw(s.queue().to_string()),
            st.visible.to_string().into(),
            st.in_flight.to_string().into(),
            Span::styled(st.dead.to_string(), dead_style),
        ])
    });
    let queues = Table::new(
        queue_rows,
        [Constraint::Length(10), Constraint::Length(8), Constraint::Length(10), Constraint::Length(6)],
    )
    .header(Row::new(["queue", "waiting", "in flight", "dead"]).style(bold()))
    .block(Block::default().borders(Borders::ALL).title(" queues "));
    f.render_widget(queues, queues_area);

    // Two columns of states, so every state fits in the pane's height.
    let counts = &app.snapshot.counts;
    let half = counts.len().div_ceil(2);
    let rows = (0..half).map(|i| {
        let cell = |k: usize| counts.get(k).map(|(s, n)| (s.to_string(), n.to_string())).unwrap_or_default();
        let ((s1, n1), (s2, n2)) = (cell(i), cell(i + half));
        Row::new(vec![s1, n1, s2, n2])
    });
    let jobs = Table::new(
        rows,
        [Constraint::Length(15), Constraint::Length(5), Constraint::Length(11), Constraint::Length(5)],
    )
    .block(Block::default().borders(Borders::ALL).title(" jobs "));
    f.render_widget(jobs, jobs_area);
}

/// Why a waiting job waits, in one line: the checks' findings.
fn why(j: &Job) -> String {
    j.qa.as_ref().map(|q| q.why().join("; ")).unwrap_or_else(|| "no QA report".into())
}

fn draw_list(f: &mut Frame<'_>, app: &mut App, area: Rect) {
    let filter = if app.filter.is_empty() { String::new() } else { format!(" matching \"{}\"", app.filter) };
    // Only the rows in view are built: a queue of 10,000 jobs draws as fast as one of ten.
    // The rows a page moves: the list's height less its borders and header.
    let height = usize::from(area.height.saturating_sub(3)).max(1);
    app.page = height;
    let offset = app.scroll(height);
    let total = app.row_count();
    let (rows, widths, columns, title): (Vec<Row<'_>>, Vec<Constraint>, Vec<&str>, String) = match app.view {
        View::Staging => {
            let rows = app.window(offset, height).into_iter().map(|j| {
                let mark = match app.pending.as_ref().filter(|p| p.decision.ids.contains(&j.id())) {
                    Some(p) if p.decision.approve => "→a",
                    Some(_) => "→r",
                    None if app.marked.contains(&j.id()) => "✓",
                    None => "",
                };
                let waited = app
                    .snapshot
                    .waiting_since
                    .get(&j.id())
                    .map_or_else(|| "-".to_string(), |t| duration(app.snapshot.read_at.saturating_sub(*t)));
                Row::new(vec![mark.to_string(), j.id().short(), waited, why(j), j.spec.prompt.clone()])
            });
            let marked = if app.marked.is_empty() { String::new() } else { format!(", {} marked", app.marked.len()) };
            (
                rows.collect(),
                vec![
                    Constraint::Length(2),
                    Constraint::Length(8),
                    Constraint::Length(7),
                    Constraint::Fill(3),
                    Constraint::Fill(2),
                ],
                vec!["", "job", "waited", "why it waits", "prompt"],
                format!(" QA staging: {total} waiting{filter}{marked} "),
            )
        }
        View::Stopped => {
            let rows = app.window(offset, height).into_iter().map(|j| {
                Row::new(vec![
                    j.id().short(),
                    j.state.to_string(),
                    j.error.clone().unwrap_or_default(),
                    j.spec.prompt.clone(),
                ])
            });
            (
                rows.collect(),
                vec![Constraint::Length(8), Constraint::Length(9), Constraint::Fill(2), Constraint::Fill(1)],
                vec!["job", "state", "why", "prompt"],
                format!(" Stopped: {total} failed or rejected{filter} (t retries a failed job) "),
            )
        }
    };
    let table = Table::new(rows, widths)
        .header(Row::new(columns).style(bold()))
        .block(Block::default().borders(Borders::ALL).title(title))
        .row_highlight_style(Style::default().bg(Color::Blue).fg(Color::White));
    let mut state = TableState::default();
    if total > 0 {
        state.select(Some(app.selected.saturating_sub(offset)));
    }
    f.render_stateful_widget(table, area, &mut state);
}

fn draw_preview(f: &mut Frame<'_>, app: &mut App, area: Rect) {
    let block = Block::default().borders(Borders::ALL).title(" image ");
    let inner = block.inner(area);
    f.render_widget(block, area);
    match app.preview.as_mut().map(|p| &mut p.image) {
        // Scaled up too: a 64x64 demo image would otherwise fill a few cells.
        Some(Ok(image)) => f.render_stateful_widget(StatefulImage::default().resize(Resize::Scale(None)), inner, image),
        Some(Err(why)) => f.render_widget(
            Paragraph::new(why.as_str()).style(Style::default().fg(Color::Red)).wrap(Wrap { trim: true }),
            inner,
        ),
        None => {}
    }
}

fn draw_selected(f: &mut Frame<'_>, app: &App, area: Rect) {
    let lines: Vec<Line<'_>> = match app.selected_job() {
        Some(j) => {
            let mut lines = vec![
                Line::from(match j.batch {
                    // A job failed with its batch: the batch's other jobs share its fate.
                    Some(slot) => {
                        format!("job {}  ({}, batch {} entry {})", j.id(), j.state, slot.batch.short(), slot.index)
                    }
                    None => format!("job {}  ({})", j.id(), j.state),
                }),
                Line::from(format!("prompt: {}", j.spec.prompt)),
            ];
            lines.push(match &j.error {
                Some(why) => Line::from(format!("why: {why}")).style(Style::default().fg(Color::Red)),
                None => Line::from(format!("QA: {}", why(j))),
            });
            lines
        }
        None if !app.filter.is_empty() => vec![Line::from(format!("no job matches \"{}\"", app.filter))],
        None if app.view == View::Stopped => vec![Line::from("no job failed or was rejected")],
        None => vec![Line::from("nothing waiting for review")],
    };
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" selected (Enter: all of it) ")),
        area,
    );
}

fn draw_status(f: &mut Frame<'_>, app: &App, area: Rect) {
    let line = if app.mode == Mode::Filter {
        Line::from(vec![Span::styled("/", bold()), Span::raw(app.filter.clone()), Span::raw("▏")])
    } else {
        Line::from(app.status.clone()).style(Style::default().fg(Color::Yellow))
    };
    f.render_widget(Paragraph::new(line), area);
}

fn draw_bar(f: &mut Frame<'_>, area: Rect) {
    let mut spans = Vec::new();
    for (key, what) in BAR {
        spans.push(Span::styled(*key, Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)));
        spans.push(Span::raw(format!(" {what}  ")));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// A box of `w` x `h` cells centred in `area` (clipped to it).
fn centred(area: Rect, w: u16, h: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(h.min(area.height))]).flex(Flex::Center).areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(w.min(area.width))]).flex(Flex::Center).areas(row);
    cell
}

fn draw_help(f: &mut Frame<'_>, area: Rect) {
    let rows = KEYS.iter().map(|(k, what)| Row::new(vec![Span::styled(*k, bold()), Span::raw(*what)]));
    let table = Table::new(rows, [Constraint::Length(13), Constraint::Fill(1)])
        .block(Block::default().borders(Borders::ALL).title(" keys (? or Esc closes) "));
    let h = u16::try_from(KEYS.len()).unwrap_or(u16::MAX).saturating_add(2);
    let popup = centred(area, 78, h);
    f.render_widget(Clear, popup);
    f.render_widget(table, popup);
}

fn draw_confirm(f: &mut Frame<'_>, area: Rect, question: &str) {
    let popup = centred(area, 50, 5);
    let text = vec![
        Line::from(question.to_string()).style(bold()),
        Line::from("y or Enter: yes · n or Esc: no"),
        Line::from("(u undoes it for 5 s after)"),
    ];
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: true }).block(Block::default().borders(Borders::ALL).title(" confirm ")),
        popup,
    );
}

fn draw_detail(f: &mut Frame<'_>, app: &App, area: Rect) {
    let Some(j) = app.selected_job() else { return };
    let mut lines = vec![
        Line::from(vec![Span::styled(format!("job {}", j.id()), bold()), Span::raw(format!("  {}", j.state))]),
        Line::from(format!(
            "collection: {}  (job {} of its prompt, copy {})",
            j.spec.collection,
            j.spec.index + 1,
            j.spec.copy + 1
        )),
        Line::from(format!("prompt: {}", j.spec.prompt)),
    ];
    if !j.spec.negative_prompt.is_empty() {
        lines.push(Line::from(format!("negative: {}", j.spec.negative_prompt)));
    }
    if let Some(g) = &j.generation {
        let p = &g.params;
        lines.push(Line::from(format!(
            "made by {} ({}) · {} steps, guidance {}, {} · seed {} · {}x{} · {} ms",
            g.model_id, g.backend, p.steps, p.guidance, p.scheduler, p.seed, p.width, p.height, g.elapsed_ms
        )));
    }
    if let Some(q) = &j.qa {
        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled("QA report", bold())));
        for c in &q.checks {
            let colour = match c.verdict {
                CheckVerdict::Pass => Color::Green,
                CheckVerdict::Human => Color::Yellow,
                CheckVerdict::Reject => Color::Red,
            };
            let verdict = format!("{:?}", c.verdict).to_lowercase();
            let model = c.model.as_deref().map(|m| format!(" [{m}]")).unwrap_or_default();
            lines.push(Line::from(vec![
                Span::styled(format!("  {verdict:<6}"), Style::default().fg(colour)),
                Span::raw(format!(" {:<10} {:.3} ({}){model}: {}", c.check, c.value, c.threshold, c.detail)),
            ]));
        }
        for t in &q.tags {
            lines.push(Line::from(format!("  sees {}: {} ({:.2}, {})", t.trait_type, t.value, t.score, t.model)));
        }
        if let Some(r) = &q.reason {
            lines.push(Line::from(format!("  decided: {r}")));
        }
    }
    lines.push(Line::from(""));
    if let Some(key) = &j.image_key {
        lines.push(Line::from(format!("image: {key}")));
    }
    if let Some((_, steps)) = app.history.as_ref().filter(|(id, _)| *id == j.id())
        && !steps.is_empty()
    {
        let now = app.snapshot.read_at;
        let path: Vec<String> =
            steps.iter().map(|(state, at)| format!("{state} {} ago", duration(now.saturating_sub(*at)))).collect();
        lines.push(Line::from(format!("history: {}", path.join(" → "))));
    }
    if let Some(t) = app.snapshot.waiting_since.get(&j.id()) {
        lines
            .push(Line::from(format!("waiting for a human for {}", duration(app.snapshot.read_at.saturating_sub(*t)))));
    }
    if let Some(by) = &j.reviewed_by {
        lines.push(Line::from(format!("reviewed by: {by}")));
    }
    if let Some(token) = &j.token_id {
        lines.push(Line::from(format!(
            "token {token} · tx {} · metadata ipfs://{}",
            j.tx_hash.as_deref().unwrap_or("-"),
            j.metadata_cid.as_deref().unwrap_or("-")
        )));
    }
    if let Some(e) = &j.error {
        lines.push(Line::from(format!("why: {e}")).style(Style::default().fg(Color::Red)));
    }
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(" job (Esc back · a approve · r reject) ")),
        area,
    );
}
