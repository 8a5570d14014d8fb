//! Drawing: a pure function of the app state.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState, Wrap};
use ratatui_image::{Resize, StatefulImage};

use crate::app::{App, View};

/// Draws the whole dashboard (mutable only for the image preview, which scales itself to
/// its area once and keeps the result).
pub fn draw(f: &mut Frame<'_>, app: &mut App) {
    let [top, middle, detail, footer] =
        Layout::vertical([Constraint::Length(12), Constraint::Min(5), Constraint::Length(6), Constraint::Length(1)])
            .areas(f.area());
    let [staging, preview_area] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(middle);
    let [queues_area, jobs_area] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(top);

    let queue_rows = app.snapshot.queues.iter().map(|(s, st)| {
        let dead_style = if st.dead > 0 { Style::default().fg(Color::Red) } else { Style::default() };
        Row::new(vec![
            ratatui::text::Span::raw(s.queue().to_string()),
            st.visible.to_string().into(),
            st.in_flight.to_string().into(),
            ratatui::text::Span::styled(st.dead.to_string(), dead_style),
        ])
    });
    let queues = Table::new(
        queue_rows,
        [Constraint::Length(10), Constraint::Length(9), Constraint::Length(10), Constraint::Length(6)],
    )
    .header(Row::new(["queue", "waiting", "in flight", "dead"]).style(Style::default().add_modifier(Modifier::BOLD)))
    .block(Block::default().borders(Borders::ALL).title(" queues "));
    f.render_widget(queues, queues_area);

    let job_rows = app.snapshot.counts.iter().map(|(s, n)| Row::new(vec![s.to_string(), n.to_string()]));
    let jobs = Table::new(job_rows, [Constraint::Length(16), Constraint::Length(8)])
        .block(Block::default().borders(Borders::ALL).title(" jobs "));
    f.render_widget(jobs, jobs_area);

    // The two lists differ in their rows and columns only.
    let (rows, widths, columns, title): (Vec<Row<'_>>, [Constraint; 4], [&str; 4], String) = match app.view {
        View::Staging => {
            let rows = app.snapshot.staging.iter().map(|j| {
                let score = j.qa.as_ref().map(|q| format!("{:.2}", q.score)).unwrap_or_else(|| "-".into());
                let mark = if app.marked.contains(&j.id()) { "✓" } else { "" };
                Row::new(vec![mark.to_string(), j.id().short(), score, j.spec.prompt.clone()])
            });
            let marked = if app.marked.is_empty() { String::new() } else { format!(", {} marked", app.marked.len()) };
            (
                rows.collect(),
                [Constraint::Length(1), Constraint::Length(9), Constraint::Length(6), Constraint::Min(10)],
                ["", "job", "score", "prompt"],
                format!(
                    " QA staging: {} waiting{marked}  (space mark, * all, a approve, r reject, f stopped jobs, R resume stalled, q quit) ",
                    app.snapshot.staging.len()
                ),
            )
        }
        View::Stopped => {
            let rows = app.snapshot.stopped.iter().map(|j| {
                let why = j.error.clone().unwrap_or_default();
                Row::new(vec![j.id().short(), j.state.to_string(), why, j.spec.prompt.clone()])
            });
            (
                rows.collect(),
                [Constraint::Length(9), Constraint::Length(9), Constraint::Fill(2), Constraint::Fill(1)],
                ["job", "state", "why", "prompt"],
                format!(
                    " Stopped: {} failed or rejected  (t retry failed, f staging queue, j/k move, R resume stalled, q quit) ",
                    app.snapshot.stopped.len()
                ),
            )
        }
    };
    let table = Table::new(rows, widths)
        .header(Row::new(columns).style(Style::default().add_modifier(Modifier::BOLD)))
        .block(Block::default().borders(Borders::ALL).title(title))
        .row_highlight_style(Style::default().bg(Color::Blue).fg(Color::White));
    let mut state = TableState::default();
    if !app.rows().is_empty() {
        state.select(Some(app.selected));
    }
    f.render_stateful_widget(table, staging, &mut state);

    let block = Block::default().borders(Borders::ALL).title(" image ");
    let inner = block.inner(preview_area);
    f.render_widget(block, preview_area);
    match app.preview.as_mut().map(|p| &mut p.image) {
        // Scaled up too: a 64x64 demo image would otherwise fill a few cells.
        Some(Ok(image)) => f.render_stateful_widget(StatefulImage::default().resize(Resize::Scale(None)), inner, image),
        Some(Err(why)) => f.render_widget(
            Paragraph::new(why.as_str()).style(Style::default().fg(Color::Red)).wrap(Wrap { trim: true }),
            inner,
        ),
        None => {}
    }

    let detail_lines: Vec<Line<'_>> = match app.rows().get(app.selected) {
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
            // What the checks said: each finding, or why it passed.
            for why in j.qa.as_ref().map(|q| q.why()).unwrap_or_default() {
                lines.push(Line::from(format!("QA: {why}")));
            }
            lines.push(match &j.error {
                Some(why) => Line::from(format!("why: {why}")).style(Style::default().fg(Color::Red)),
                None => Line::from(format!("image: {}", j.image_key.clone().unwrap_or_default())),
            });
            lines
        }
        None if app.view == View::Stopped => vec![Line::from("no job failed or was rejected")],
        None => vec![Line::from("nothing waiting for review")],
    };
    f.render_widget(
        Paragraph::new(detail_lines).block(Block::default().borders(Borders::ALL).title(" selected ")),
        detail,
    );
    f.render_widget(Paragraph::new(app.status.clone()).style(Style::default().fg(Color::Yellow)), footer);
}
