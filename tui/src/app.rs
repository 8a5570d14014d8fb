//! Dashboard state and key handling, separate from drawing so both can be tested.

use latentmint_core::ports::{JobStore, Queue, QueueStats};
use latentmint_core::{Job, JobState, Stage};

/// What the dashboard shows.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Depths of each stage queue.
    pub queues: Vec<(Stage, QueueStats)>,
    /// Jobs per state.
    pub counts: Vec<(JobState, u64)>,
    /// The QA staging queue: jobs waiting for an operator, oldest first.
    pub staging: Vec<Job>,
}

/// Dashboard state.
#[derive(Debug, Default)]
pub struct App {
    /// Latest data.
    pub snapshot: Snapshot,
    /// Selected row of the staging list.
    pub selected: usize,
    /// Last action's result, shown in the footer.
    pub status: String,
    /// Set by `q`.
    pub quit: bool,
}

/// What a key press asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do outside the app.
    None,
    /// Approve (true) or reject (false) a job.
    Decide(latentmint_core::JobId, bool),
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
        self.snapshot = Snapshot {
            queues,
            counts: JobState::ALL.iter().map(|s| (*s, counts.get(s).copied().unwrap_or(0))).collect(),
            staging,
        };
        self.selected = self.selected.min(self.snapshot.staging.len().saturating_sub(1));
        Ok(())
    }

    /// Handles a key.
    pub fn on_key(&mut self, key: char) -> Action {
        let n = self.snapshot.staging.len();
        match key {
            'q' => self.quit = true,
            'j' | '↓' if n > 0 => self.selected = (self.selected + 1).min(n - 1),
            'k' | '↑' => self.selected = self.selected.saturating_sub(1),
            'a' | 'r' => {
                if let Some(job) = self.snapshot.staging.get(self.selected) {
                    return Action::Decide(job.id(), key == 'a');
                }
                self.status = "nothing is waiting for review".into();
            }
            _ => {}
        }
        Action::None
    }
}
