//! Dashboard state and key handling, separate from drawing so both can be tested.

use std::collections::BTreeSet;

use latentmint_core::ports::{BlobStore, JobStore, Queue, QueueStats};
use latentmint_core::{Job, JobId, JobState, Stage};
use ratatui_image::picker::Picker;
use ratatui_image::protocol::StatefulProtocol;

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
    /// The list shown.
    pub view: View,
    /// Selected row of the list shown.
    pub selected: usize,
    /// Last action's result, shown in the footer.
    pub status: String,
    /// Set by `q`.
    pub quit: bool,
    /// The selected job's image: the operator judges what QA was unsure about by looking.
    pub preview: Option<Preview>,
    /// Jobs marked for one decision together (a batch looked through, then approved).
    pub marked: BTreeSet<JobId>,
}

/// What a key press asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do outside the app.
    None,
    /// Approve (true) or reject (false) these jobs: the marked ones, or else the selected one.
    Decide(Vec<JobId>, bool),
    /// Send every job that is not settled on to the stage it waits for (`R`): after a stall
    /// whose cause is gone, for jobs whose messages were dead-lettered.
    Resume,
    /// Send this failed job back to the stage that failed it (`t`), its cause fixed.
    Retry(JobId),
}

impl App {
    /// Reads fresh data through the ports.
    pub async fn refresh(&mut self, queue: &dyn Queue, jobs: &dyn JobStore) -> Result<(), latentmint_core::PortError> {
        let mut queues = Vec::new();
        for s in Stage::ALL {
            queues.push((s, queue.stats(s.queue()).await?));
        }
        let counts = jobs.counts().await?;
        let staging = jobs.list(Some(JobState::AwaitingReview)).await?;
        let mut stopped = jobs.list(Some(JobState::Failed)).await?;
        stopped.extend(jobs.list(Some(JobState::Rejected)).await?);
        self.snapshot = Snapshot {
            queues,
            counts: JobState::ALL.iter().map(|s| (*s, counts.get(s).copied().unwrap_or(0))).collect(),
            staging,
            stopped,
        };
        self.selected = self.selected.min(self.rows().len().saturating_sub(1));
        // A mark outlives its job's stay in the queue only until the next refresh.
        let waiting: BTreeSet<JobId> = self.snapshot.staging.iter().map(Job::id).collect();
        self.marked.retain(|id| waiting.contains(id));
        Ok(())
    }

    /// The jobs of the list shown.
    pub fn rows(&self) -> &[Job] {
        match self.view {
            View::Staging => &self.snapshot.staging,
            View::Stopped => &self.snapshot.stopped,
        }
    }

    /// Loads the selected job's image when the selection moved to another job (read once per
    /// job, not at every refresh).
    pub async fn load_preview(&mut self, blobs: &dyn BlobStore, picker: &Picker) {
        let Some(job) = self.rows().get(self.selected) else {
            self.preview = None;
            return;
        };
        if self.preview.as_ref().is_some_and(|p| p.job == job.id()) {
            return;
        }
        let image = match &job.image_key {
            None => Err("this job has no image yet".to_string()),
            Some(key) => match blobs.get(key).await {
                Err(e) => Err(format!("image {key} could not be read: {e}")),
                Ok(bytes) => image::load_from_memory(&bytes)
                    .map(|img| picker.new_resize_protocol(img))
                    .map_err(|e| format!("image {key} is not a readable PNG: {e}")),
            },
        };
        self.preview = Some(Preview { job: job.id(), image });
    }

    /// Handles a key.
    pub fn on_key(&mut self, key: char) -> Action {
        let n = self.rows().len();
        match key {
            'q' => self.quit = true,
            'R' => return Action::Resume,
            'f' => {
                self.view = if self.view == View::Staging { View::Stopped } else { View::Staging };
                self.selected = 0;
            }
            ' ' | '*' | 'a' | 'r' if self.view == View::Stopped => {
                self.status = "decisions are made in the staging queue: f shows it".into();
            }
            't' => match self.rows().get(self.selected) {
                Some(job) if self.view == View::Stopped && job.state == JobState::Failed => {
                    return Action::Retry(job.id());
                }
                Some(_) if self.view == View::Stopped => {
                    self.status = "a rejected job was decided, not failed: it is not retried".into();
                }
                _ => self.status = "t retries a failed job: f lists them".into(),
            },
            'j' | '↓' if n > 0 => self.selected = (self.selected + 1).min(n - 1),
            'k' | '↑' => self.selected = self.selected.saturating_sub(1),
            ' ' => {
                if let Some(id) = self.snapshot.staging.get(self.selected).map(Job::id)
                    && !self.marked.remove(&id)
                {
                    self.marked.insert(id);
                }
            }
            '*' => {
                if self.marked.len() == n {
                    self.marked.clear();
                } else {
                    self.marked = self.snapshot.staging.iter().map(Job::id).collect();
                }
            }
            'a' | 'r' => {
                if !self.marked.is_empty() {
                    return Action::Decide(std::mem::take(&mut self.marked).into_iter().collect(), key == 'a');
                }
                if let Some(job) = self.snapshot.staging.get(self.selected) {
                    return Action::Decide(vec![job.id()], key == 'a');
                }
                self.status = "nothing is waiting for review".into();
            }
            _ => {}
        }
        Action::None
    }
}
