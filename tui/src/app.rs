//! Dashboard state and key handling, separate from drawing so both can be tested.
//!
//! Keys follow the habits of k9s, lazygit and less: `j`/`k` and the arrows move, `PgUp`/`PgDn`
//! page, `g`/`G` and `Home`/`End` jump, `/` filters, `Enter` opens, `?` helps, `Esc`/`q` go
//! back (and quit from the list). A decision on more than one job asks first; every decision
//! waits [`UNDO_WINDOW`] before it is released to the queue, and `u` takes it back until then.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use latentmint_core::ports::{BlobStore, JobStore, Queue, QueueStats};
use latentmint_core::{Job, JobId, JobState, Stage};
use ratatui_image::picker::Picker;
use ratatui_image::protocol::StatefulProtocol;

/// How long a decision can be taken back (`u`) before it is released to the queue.
pub const UNDO_WINDOW: Duration = Duration::from_secs(5);

/// What the dashboard shows.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Depths of each stage queue.
    pub queues: Vec<(Stage, QueueStats)>,
    /// Jobs per state.
    pub counts: Vec<(JobState, u64)>,
    /// The QA staging queue: jobs waiting for an operator, oldest first.
    pub staging: Vec<Job>,
    /// Jobs that stopped short of a token (failed or rejected), with why.
    pub stopped: Vec<Job>,
    /// When each waiting job entered the staging queue (ms since the Unix epoch), where the
    /// job store keeps it.
    pub waiting_since: BTreeMap<JobId, u64>,
    /// When each minted job was minted (ms since the Unix epoch), for the throughput.
    pub minted_at: BTreeMap<JobId, u64>,
    /// When this was read (ms since the Unix epoch).
    pub read_at: u64,
}

/// How far back the throughput looks.
pub const THROUGHPUT_WINDOW_MS: u64 = 10 * 60 * 1000;

impl Snapshot {
    /// How long the oldest waiting job has waited (ms), where the store says.
    pub fn oldest_wait_ms(&self) -> Option<u64> {
        self.staging
            .iter()
            .filter_map(|j| self.waiting_since.get(&j.id()))
            .min()
            .map(|t| self.read_at.saturating_sub(*t))
    }

    /// Jobs minted per minute over the last ten minutes, where the store says when.
    pub fn minted_per_min(&self) -> Option<f64> {
        if self.minted_at.is_empty() {
            return None;
        }
        let since = self.read_at.saturating_sub(THROUGHPUT_WINDOW_MS);
        let n = self.minted_at.values().filter(|t| **t >= since).count();
        Some(n as f64 / (THROUGHPUT_WINDOW_MS as f64 / 60_000.0))
    }

    /// Jobs on their way to a token (not settled, not waiting for a human).
    pub fn in_progress(&self) -> u64 {
        self.counts.iter().filter(|(s, _)| !s.is_final() && *s != JobState::AwaitingReview).map(|(_, n)| n).sum()
    }

    /// When the jobs on their way should all be minted, at the current throughput (ms).
    pub fn eta_ms(&self) -> Option<u64> {
        let rate = self.minted_per_min().filter(|r| *r > 0.0)?;
        let left = self.in_progress();
        (left > 0).then(|| (left as f64 / rate * 60_000.0) as u64)
    }
}

/// `ms` as people read a wait: `45s`, `3m 12s`, `2h 05m`, `3d 4h`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Which list the middle of the dashboard shows (`f` switches).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The QA staging queue, to decide.
    #[default]
    Staging,
    /// Failed and rejected jobs, to see why.
    Stopped,
}

/// What has the keyboard.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The list: moving, marking, deciding.
    #[default]
    List,
    /// The key reference (`?`).
    Help,
    /// Typing a filter (`/`).
    Filter,
    /// Asking before deciding more than one job.
    Confirm(Decision),
    /// The selected job in full (`Enter`).
    Detail,
}

/// Approve or reject these jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The jobs.
    pub ids: Vec<JobId>,
    /// Approve (true) or reject (false).
    pub approve: bool,
}

impl Decision {
    /// "approve 3 jobs", "reject job 1a2b3c4d".
    pub fn describe(&self) -> String {
        format!("{} {}", if self.approve { "approve" } else { "reject" }, self.subject())
    }

    /// "3 jobs", "job 1a2b3c4d".
    pub fn subject(&self) -> String {
        match self.ids.as_slice() {
            [one] => format!("job {}", one.short()),
            many => format!("{} jobs", many.len()),
        }
    }
}

/// A decision made and not yet released: `u` takes it back until `due`.
#[derive(Debug, Clone)]
pub struct Pending {
    /// What was decided.
    pub decision: Decision,
    /// When it is released to the queue.
    pub due: Instant,
}

/// A key, as the dashboard reads it (the terminal's key codes mapped in `main.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A character key.
    Char(char),
    /// Arrow up.
    Up,
    /// Arrow down.
    Down,
    /// Page up.
    PageUp,
    /// Page down.
    PageDown,
    /// Home.
    Home,
    /// End.
    End,
    /// Enter.
    Enter,
    /// Escape.
    Esc,
    /// Backspace.
    Backspace,
}

impl From<char> for Key {
    fn from(c: char) -> Self {
        Key::Char(c)
    }
}

/// The image of the selected job, ready to draw (or why it is not).
pub struct Preview {
    /// Whose image it is.
    pub job: JobId,
    /// The decoded image in the terminal's graphics protocol, or what went wrong.
    pub image: Result<StatefulProtocol, String>,
}

/// Dashboard state.
#[derive(Default)]
pub struct App {
    /// Latest data.
    pub snapshot: Snapshot,
    /// Where the data comes from (a run's database, a stack's queues), for the header.
    pub source: String,
    /// The list shown.
    pub view: View,
    /// What has the keyboard.
    pub mode: Mode,
    /// Selected row of the list shown (an index into [`App::rows`]).
    pub selected: usize,
    /// Rows a page moves (`PgUp`/`PgDn`): the list's height, set when it is drawn.
    pub page: usize,
    /// The filter (`/`): rows whose prompt, job id or state contain it, any case.
    pub filter: String,
    /// Last action's result, shown above the key bar.
    pub status: String,
    /// Set by `q` on the list.
    pub quit: bool,
    /// The selected job's image: the operator judges what QA was unsure about by looking.
    pub preview: Option<Preview>,
    /// Jobs marked for one decision together (a batch looked through, then approved).
    pub marked: BTreeSet<JobId>,
    /// A decision waiting out its undo window.
    pub pending: Option<Pending>,
    /// The opened job's history: the states it entered and when (ms since the Unix epoch).
    pub history: Option<(JobId, Vec<(JobState, u64)>)>,
    /// Decisions to release at once (a pending one that another decision pushed out).
    ready: Vec<Decision>,
    /// The rows of the list shown, after the filter: indexes into the snapshot's list.
    shown: Vec<usize>,
    /// The job store's revision when the jobs were last read (`None`: read at the next
    /// refresh).
    revision: Option<u64>,
    /// The first row drawn of the list, kept so the selection stays in view.
    pub offset: usize,
}

/// What a key press asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do outside the app.
    None,
    /// Send every job that is not settled on to the stage it waits for (`R`): after a stall
    /// whose cause is gone, for jobs whose messages were dead-lettered.
    Resume,
    /// Send this failed job back to the stage that failed it (`t`), its cause fixed.
    Retry(JobId),
}

impl App {
    /// Reads fresh data through the ports: the queues' depths always, the jobs when the store
    /// says they changed (or cannot say), or after [`App::invalidate`].
    pub async fn refresh(&mut self, queue: &dyn Queue, jobs: &dyn JobStore) -> Result<(), latentmint_core::PortError> {
        let mut queues = Vec::new();
        for s in Stage::ALL {
            queues.push((s, queue.stats(s.queue()).await?));
        }
        let read_at =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let revision = jobs.revision().await?;
        if revision.is_some() && revision == self.revision {
            // The jobs are as they were; the waits they show still grow.
            self.snapshot.queues = queues;
            self.snapshot.read_at = read_at;
            return Ok(());
        }
        self.revision = revision;
        let counts = jobs.counts().await?;
        let staging = jobs.list(Some(JobState::AwaitingReview)).await?;
        let mut stopped = jobs.list(Some(JobState::Failed)).await?;
        stopped.extend(jobs.list(Some(JobState::Rejected)).await?);
        self.set_snapshot(Snapshot {
            queues,
            counts: JobState::ALL.iter().map(|s| (*s, counts.get(s).copied().unwrap_or(0))).collect(),
            staging,
            stopped,
            waiting_since: jobs.changed_at(JobState::AwaitingReview).await?,
            minted_at: jobs.changed_at(JobState::Minted).await?,
            read_at,
        });
        Ok(())
    }

    /// Makes the next refresh read the jobs again (after this dashboard changed them itself,
    /// which the store's revision does not count).
    pub fn invalidate(&mut self) {
        self.revision = None;
    }

    /// Shows `snapshot`, keeping the selection on the same job where it is still listed.
    pub fn set_snapshot(&mut self, snapshot: Snapshot) {
        let was = self.selected_job().map(Job::id);
        self.snapshot = snapshot;
        // A mark outlives its job's stay in the queue only until the next refresh.
        let waiting: BTreeSet<JobId> = self.snapshot.staging.iter().map(Job::id).collect();
        self.marked.retain(|id| waiting.contains(id));
        self.apply_filter();
        if let Some(id) = was
            && let Some(i) = self.rows().iter().position(|j| j.id() == id)
        {
            self.selected = i;
        }
    }

    fn list(&self) -> &[Job] {
        match self.view {
            View::Staging => &self.snapshot.staging,
            View::Stopped => &self.snapshot.stopped,
        }
    }

    fn apply_filter(&mut self) {
        let needle = self.filter.to_lowercase();
        self.shown = self
            .list()
            .iter()
            .enumerate()
            .filter(|(_, j)| {
                needle.is_empty()
                    || j.spec.prompt.to_lowercase().contains(&needle)
                    || j.id().to_string().contains(&needle)
                    || j.state.to_string().contains(&needle)
            })
            .map(|(i, _)| i)
            .collect();
        self.selected = self.selected.min(self.shown.len().saturating_sub(1));
    }

    /// The jobs of the list shown, after the filter.
    pub fn rows(&self) -> Vec<&Job> {
        self.window(0, self.shown.len())
    }

    /// How many jobs the list shown holds, after the filter.
    pub fn row_count(&self) -> usize {
        self.shown.len()
    }

    /// `len` jobs of the list shown from row `from`: what one screen draws.
    pub fn window(&self, from: usize, len: usize) -> Vec<&Job> {
        let list = self.list();
        self.shown.iter().skip(from).take(len).filter_map(|i| list.get(*i)).collect()
    }

    /// The first row to draw in `height` rows so that the selection is in view, moving the
    /// view as little as possible (as a list scrolls).
    pub fn scroll(&mut self, height: usize) -> usize {
        let height = height.max(1);
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + height {
            self.offset = self.selected + 1 - height;
        }
        self.offset = self.offset.min(self.shown.len().saturating_sub(1));
        self.offset
    }

    /// The selected job.
    pub fn selected_job(&self) -> Option<&Job> {
        self.shown.get(self.selected).and_then(|i| self.list().get(*i))
    }

    /// Whether `id` is part of the decision waiting out its undo window.
    pub fn is_pending(&self, id: JobId) -> bool {
        self.pending.as_ref().is_some_and(|p| p.decision.ids.contains(&id))
    }

    /// Loads the selected job's image when the selection moved to another job (read once per
    /// job, not at every refresh).
    pub async fn load_preview(&mut self, blobs: &dyn BlobStore, picker: &Picker) {
        let Some(job) = self.selected_job() else {
            self.preview = None;
            return;
        };
        if self.preview.as_ref().is_some_and(|p| p.job == job.id()) {
            return;
        }
        let (id, key) = (job.id(), job.image_key.clone());
        let image = match key {
            None => Err("this job has no image yet".to_string()),
            Some(key) => match blobs.get(&key).await {
                Err(e) => Err(format!("image {key} could not be read: {e}")),
                Ok(bytes) => image::load_from_memory(&bytes)
                    .map(|img| picker.new_resize_protocol(img))
                    .map_err(|e| format!("image {key} is not a readable PNG: {e}")),
            },
        };
        self.preview = Some(Preview { job: id, image });
    }

    /// Reads the opened job's history when a job is opened (once per job).
    pub async fn load_history(&mut self, jobs: &dyn JobStore) {
        if self.mode != Mode::Detail {
            return;
        }
        let Some(id) = self.selected_job().map(Job::id) else { return };
        if self.history.as_ref().is_some_and(|(h, _)| *h == id) {
            return;
        }
        // A store that cannot say shows no history; the detail still opens.
        let steps = jobs.history(id).await.unwrap_or_default();
        self.history = Some((id, steps));
    }

    /// The decisions to release at `now`: the pending one once its undo window has passed,
    /// and any a later decision pushed out.
    pub fn due(&mut self, now: Instant) -> Vec<Decision> {
        if self.pending.as_ref().is_some_and(|p| p.due <= now)
            && let Some(p) = self.pending.take()
        {
            self.ready.push(p.decision);
        }
        std::mem::take(&mut self.ready)
    }

    /// Every decision not yet released, taken out to be released now (on quit: what the
    /// operator decided stands).
    pub fn release_now(&mut self) -> Vec<Decision> {
        if let Some(p) = self.pending.take() {
            self.ready.push(p.decision);
        }
        std::mem::take(&mut self.ready)
    }

    /// Handles a key at `now`; a decision it starts is due [`UNDO_WINDOW`] later. A decision
    /// still pending when another is made is released at once (by the next [`App::due`]).
    pub fn on_key(&mut self, key: impl Into<Key>, now: Instant) -> Action {
        let key = key.into();
        match self.mode.clone() {
            Mode::Help => {
                if matches!(key, Key::Esc | Key::Char('q' | '?') | Key::Enter) {
                    self.mode = Mode::List;
                }
                Action::None
            }
            Mode::Detail => {
                match key {
                    Key::Esc | Key::Char('q') | Key::Enter => self.mode = Mode::List,
                    Key::Char('?') => self.mode = Mode::Help,
                    // Deciding from the detail is deciding the job it shows.
                    Key::Char('a' | 'r') if self.view == View::Staging => {
                        self.mode = Mode::List;
                        return self.on_key(key, now);
                    }
                    _ => {}
                }
                Action::None
            }
            Mode::Filter => {
                match key {
                    Key::Enter => self.mode = Mode::List,
                    Key::Esc => {
                        self.filter.clear();
                        self.mode = Mode::List;
                    }
                    Key::Backspace => {
                        self.filter.pop();
                    }
                    Key::Char(c) if !c.is_control() => self.filter.push(c),
                    _ => {}
                }
                self.apply_filter();
                Action::None
            }
            Mode::Confirm(decision) => {
                match key {
                    Key::Char('y' | 'Y') | Key::Enter => self.start(decision, now),
                    Key::Char('n' | 'N' | 'q') | Key::Esc => {
                        self.status = format!("not done: {} (the marks stay)", decision.describe());
                    }
                    _ => return Action::None,
                }
                self.mode = Mode::List;
                Action::None
            }
            Mode::List => self.on_list_key(key, now),
        }
    }

    fn start(&mut self, decision: Decision, now: Instant) {
        for id in &decision.ids {
            self.marked.remove(id);
        }
        self.status =
            format!("{} in {} s: u undoes it until then", capitalised(&decision.describe()), UNDO_WINDOW.as_secs());
        if let Some(old) = self.pending.replace(Pending { decision, due: now + UNDO_WINDOW }) {
            self.ready.push(old.decision);
        }
    }

    fn on_list_key(&mut self, key: Key, now: Instant) -> Action {
        let n = self.row_count();
        let last = n.saturating_sub(1);
        let page = self.page.max(1);
        match key {
            Key::Esc if !self.filter.is_empty() => {
                self.filter.clear();
                self.apply_filter();
            }
            Key::Char('q') | Key::Esc => self.quit = true,
            Key::Char('?') => self.mode = Mode::Help,
            Key::Char('/') => self.mode = Mode::Filter,
            Key::Enter if n > 0 => self.mode = Mode::Detail,
            Key::Char('j') | Key::Down => self.selected = (self.selected + 1).min(last),
            Key::Char('k') | Key::Up => self.selected = self.selected.saturating_sub(1),
            Key::PageDown => self.selected = (self.selected + page).min(last),
            Key::PageUp => self.selected = self.selected.saturating_sub(page),
            Key::Char('g') | Key::Home => self.selected = 0,
            Key::Char('G') | Key::End => self.selected = last,
            Key::Char('R') => return Action::Resume,
            Key::Char('f') => {
                self.view = if self.view == View::Staging { View::Stopped } else { View::Staging };
                self.selected = 0;
                self.apply_filter();
            }
            Key::Char('u') => match self.pending.take() {
                Some(p) => {
                    let verb = if p.decision.ids.len() == 1 { "stays" } else { "stay" };
                    self.status = format!("undone: {} {verb} in the staging queue", p.decision.subject());
                }
                None => self.status = "nothing to undo: decisions are released after 5 s".into(),
            },
            Key::Char(' ' | '*' | 'a' | 'r') if self.view == View::Stopped => {
                self.status = "decisions are made in the staging queue: f shows it".into();
            }
            Key::Char('t') => match self.selected_job() {
                Some(job) if self.view == View::Stopped && job.state == JobState::Failed => {
                    return Action::Retry(job.id());
                }
                Some(_) if self.view == View::Stopped => {
                    self.status = "a rejected job was decided, not failed: it is not retried".into();
                }
                _ => self.status = "t retries a failed job: f lists them".into(),
            },
            Key::Char(' ') => {
                if let Some(id) = self.selected_job().map(Job::id)
                    && !self.is_pending(id)
                    && !self.marked.remove(&id)
                {
                    self.marked.insert(id);
                }
                self.selected = (self.selected + 1).min(last);
            }
            Key::Char('*') => {
                // All the rows shown (the filter's, when one is set), or none.
                let shown: BTreeSet<JobId> =
                    self.rows().iter().map(|j| j.id()).filter(|id| !self.is_pending(*id)).collect();
                if !shown.is_empty() && shown.is_subset(&self.marked) {
                    self.marked.retain(|id| !shown.contains(id));
                } else {
                    self.marked.extend(shown);
                }
            }
            Key::Char(c @ ('a' | 'r')) => {
                let ids: Vec<JobId> = if self.marked.is_empty() {
                    self.selected_job().map(Job::id).filter(|id| !self.is_pending(*id)).into_iter().collect()
                } else {
                    self.marked.iter().copied().collect()
                };
                if ids.is_empty() {
                    self.status = if self.pending.is_some() {
                        "that job's decision is pending: u undoes it".into()
                    } else {
                        "nothing is waiting for review".into()
                    };
                    return Action::None;
                }
                let decision = Decision { ids, approve: c == 'a' };
                if decision.ids.len() > 1 {
                    self.mode = Mode::Confirm(decision);
                } else {
                    self.start(decision, now);
                }
            }
            _ => {}
        }
        Action::None
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use latentmint_core::testing::CollectionToml;

    /// An app showing `n` waiting jobs, "job 0" to "job n-1".
    fn app(n: u32) -> App {
        let mut toml = CollectionToml::new("T", "T");
        for i in 0..n {
            toml = toml.prompt(&format!("job {i}"));
        }
        let staging = toml
            .jobs()
            .into_iter()
            .map(|spec| {
                let mut j = Job::new(spec);
                j.state = JobState::AwaitingReview;
                j
            })
            .collect();
        let mut app = App { page: 10, ..App::default() };
        app.set_snapshot(Snapshot { staging, ..Snapshot::default() });
        app
    }

    fn prompt(app: &App) -> &str {
        app.selected_job().map_or("", |j| j.spec.prompt.as_str())
    }

    #[test]
    fn keys_people_know_move_through_a_long_list() {
        let t = Instant::now();
        let mut a = app(500);
        a.on_key(Key::PageDown, t);
        assert_eq!(prompt(&a), "job 10");
        a.on_key('G', t);
        assert_eq!(prompt(&a), "job 499");
        a.on_key(Key::PageDown, t);
        assert_eq!(prompt(&a), "job 499", "stops at the end");
        a.on_key(Key::Home, t);
        assert_eq!(prompt(&a), "job 0");
        a.on_key(Key::End, t);
        a.on_key('g', t);
        assert_eq!(prompt(&a), "job 0");
        // space marks and moves down, as in a file manager.
        a.on_key(' ', t);
        a.on_key(' ', t);
        assert_eq!(prompt(&a), "job 2");
        assert_eq!(a.marked.len(), 2);
        a.on_key('?', t);
        assert_eq!(a.mode, Mode::Help);
        a.on_key('j', t);
        assert_eq!(prompt(&a), "job 2", "keys under the help go to the help");
        a.on_key(Key::Esc, t);
        assert_eq!(a.mode, Mode::List);
        assert!(!a.quit, "Esc closes the help, not the dashboard");
    }

    #[test]
    fn a_filter_narrows_the_list_and_star_marks_only_what_it_shows() {
        let t = Instant::now();
        let mut a = app(30);
        a.on_key('/', t);
        for c in "job 2".chars() {
            a.on_key(c, t);
        }
        // "job 2" and "job 20" to "job 29".
        assert_eq!(a.rows().len(), 11);
        a.on_key(Key::Enter, t);
        a.on_key('*', t);
        assert_eq!(a.marked.len(), 11);
        a.on_key(Key::Esc, t);
        assert_eq!(a.rows().len(), 30, "Esc on the list clears the filter first");
        assert!(!a.quit);
        a.on_key('/', t);
        a.on_key('x', t);
        a.on_key(Key::Backspace, t);
        a.on_key(Key::Esc, t);
        assert!(a.filter.is_empty() && a.rows().len() == 30);
    }

    #[test]
    fn deciding_many_asks_first_and_a_no_changes_nothing() {
        let t = Instant::now();
        let mut a = app(499);
        a.on_key('*', t);
        a.on_key('r', t);
        let Mode::Confirm(d) = &a.mode else { panic!("{:?}", a.mode) };
        assert_eq!(d.describe(), "reject 499 jobs");
        a.on_key('n', t);
        assert_eq!(a.mode, Mode::List);
        assert!(a.pending.is_none() && a.due(t + UNDO_WINDOW * 2).is_empty(), "nothing decided");
        assert_eq!(a.marked.len(), 499, "the marks stay");
        assert!(a.status.starts_with("not done: reject 499 jobs"), "{}", a.status);
    }

    #[test]
    fn a_decision_waits_out_its_undo_window_and_u_takes_it_back() {
        let t = Instant::now();
        let mut a = app(3);
        a.on_key('a', t);
        assert!(a.status.contains("u undoes it"), "{}", a.status);
        assert!(a.due(t + UNDO_WINDOW / 2).is_empty(), "not released inside the window");
        a.on_key('u', t + UNDO_WINDOW / 2);
        assert!(
            a.status.starts_with("undone: job ") && a.status.ends_with("stays in the staging queue"),
            "{}",
            a.status
        );
        assert!(a.due(t + UNDO_WINDOW * 2).is_empty(), "an undone decision is never released");

        // Released once the window has passed, exactly once.
        a.on_key('r', t);
        let d = a.due(t + UNDO_WINDOW);
        assert_eq!((d.len(), d[0].approve), (1, false));
        assert!(a.due(t + UNDO_WINDOW * 3).is_empty());
        assert!(a.on_key('u', t + UNDO_WINDOW * 3) == Action::None && a.status.starts_with("nothing to undo"));
    }

    #[test]
    fn a_second_decision_releases_the_first_and_a_pending_job_is_not_decided_twice() {
        let t = Instant::now();
        let mut a = app(3);
        a.on_key('a', t);
        let first = a.pending.as_ref().map(|p| p.decision.ids.clone()).unwrap_or_default();
        a.on_key('a', t);
        assert!(a.status.contains("pending"), "the selected job is the pending one: {}", a.status);
        a.on_key('j', t);
        a.on_key('r', t);
        let released = a.due(t);
        assert_eq!(released.len(), 1, "the first is released at once, the second waits");
        assert_eq!(released[0].ids, first);
        // Quitting releases what is still pending: the operator's decision stands.
        let left = a.release_now();
        assert_eq!(left.len(), 1);
        assert!(!left[0].approve);
    }
}
