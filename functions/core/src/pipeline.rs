//! The pipeline in one place: where a job can be ([`JobState`]), the stages that move it
//! ([`Stage`]), and one table saying which stage takes a job from which state, where it leaves
//! it, and what comes next. Stages, the runners' resume and the dashboard read the order from
//! here instead of restating it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a job is in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepted by intake, waiting for generation.
    Queued,
    /// Being generated, under the lease of one queue message (see the job module's `GenerationLease`): a
    /// second message for the job (a resend, a duplicate delivery) does not generate it again.
    Generating,
    /// Image generated and stored.
    Generated,
    /// QA was unsure: waiting in the staging queue for an operator.
    AwaitingReview,
    /// Approved (automatically or by an operator).
    Approved,
    /// Rejected by QA or an operator; never minted.
    Rejected,
    /// Metadata built and pinned.
    Published,
    /// Claimed for a batch (see the batch module): minted with the batch's other jobs, once
    /// every one of them is claimed.
    Minting,
    /// Token minted and confirmed.
    Minted,
    /// A permanent error; see the job's `error`.
    Failed,
}

impl JobState {
    /// All states, in pipeline order.
    pub const ALL: [JobState; 10] = [
        Self::Queued,
        Self::Generating,
        Self::Generated,
        Self::AwaitingReview,
        Self::Approved,
        Self::Rejected,
        Self::Published,
        Self::Minting,
        Self::Minted,
        Self::Failed,
    ];

    /// No further work will happen to a job in this state.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Rejected | Self::Minted | Self::Failed)
    }

    /// The state has passed `other` on the happy path (used for idempotent re-delivery).
    pub fn has_passed(self, other: JobState) -> bool {
        self.rank() > other.rank() && self != Self::Failed && self != Self::Rejected
    }

    fn rank(self) -> u8 {
        match self {
            Self::Queued => 0,
            Self::Generating => 1,
            Self::Generated => 2,
            Self::AwaitingReview => 3,
            Self::Approved => 4,
            Self::Rejected => 4,
            Self::Published => 5,
            Self::Minting => 6,
            Self::Minted => 7,
            Self::Failed => 8,
        }
    }

    /// Lower-case name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Generating => "generating",
            Self::Generated => "generated",
            Self::AwaitingReview => "awaiting_review",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Published => "published",
            Self::Minting => "minting",
            Self::Minted => "minted",
            Self::Failed => "failed",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| format!("unknown job state `{s}`"))
    }
}

/// The stage a message asks for. Each stage has its own queue, named after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Make the image.
    Generate,
    /// Automatic QA, maybe the staging queue.
    Review,
    /// Metadata, CIDs, pinning.
    Publish,
    /// On-chain mint.
    Mint,
}

impl Stage {
    /// All stages in pipeline order.
    pub const ALL: [Stage; 4] = [Stage::Generate, Stage::Review, Stage::Publish, Stage::Mint];

    /// The queue that feeds this stage.
    pub fn queue(self) -> &'static str {
        match self {
            Stage::Generate => "generate",
            Stage::Review => "review",
            Stage::Publish => "publish",
            Stage::Mint => "mint",
        }
    }
}

impl std::str::FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.queue() == s)
            .ok_or_else(|| format!("`{s}` is not a stage; use one of: {}", Self::ALL.map(|st| st.queue()).join(", ")))
    }
}

/// One row of the pipeline: `stage` takes a job in one of `takes`, leaves it in `leaves` when
/// it goes on, and hands it to `next`.
struct Row {
    stage: Stage,
    takes: &'static [JobState],
    leaves: JobState,
    next: Option<Stage>,
}

/// The pipeline's order, the only place it is written.
const PIPELINE: [Row; 4] = [
    Row {
        stage: Stage::Generate,
        takes: &[JobState::Queued, JobState::Generating],
        leaves: JobState::Generated,
        next: Some(Stage::Review),
    },
    Row { stage: Stage::Review, takes: &[JobState::Generated], leaves: JobState::Approved, next: Some(Stage::Publish) },
    Row { stage: Stage::Publish, takes: &[JobState::Approved], leaves: JobState::Published, next: Some(Stage::Mint) },
    Row { stage: Stage::Mint, takes: &[JobState::Published, JobState::Minting], leaves: JobState::Minted, next: None },
];

impl Stage {
    fn row(self) -> &'static Row {
        // Every stage has its row (a test walks them all).
        &PIPELINE[self as usize]
    }

    /// The stage after this one on the happy path (`None` after the mint).
    pub fn next(self) -> Option<Stage> {
        self.row().next
    }

    /// The state this stage leaves a job in when it sends it on: a redelivered message finds
    /// the job there when the next message may have been lost in a crash.
    pub fn leaves(self) -> JobState {
        self.row().leaves
    }
}

impl JobState {
    /// The stage a job in this state waits for (`None`: settled, or waiting for an operator).
    pub fn waiting_for(self) -> Option<Stage> {
        PIPELINE.iter().find(|r| r.takes.contains(&self)).map(|r| r.stage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_one_row_per_stage_in_order() {
        for (i, s) in Stage::ALL.into_iter().enumerate() {
            assert_eq!(PIPELINE[i].stage, s);
            assert_eq!(s.row().stage, s);
        }
        let order: Vec<Stage> = std::iter::successors(Some(Stage::Generate), |s| s.next()).collect();
        assert_eq!(order, Stage::ALL);
    }

    #[test]
    fn every_state_waits_for_the_stage_that_takes_it() {
        use JobState::*;
        let expect = [
            (Queued, Some(Stage::Generate)),
            (Generating, Some(Stage::Generate)),
            (Generated, Some(Stage::Review)),
            (AwaitingReview, None),
            (Approved, Some(Stage::Publish)),
            (Rejected, None),
            (Published, Some(Stage::Mint)),
            (Minting, Some(Stage::Mint)),
            (Minted, None),
            (Failed, None),
        ];
        for (state, stage) in expect {
            assert_eq!(state.waiting_for(), stage, "{state}");
        }
        // What a stage leaves, the next stage takes.
        for s in Stage::ALL {
            assert_eq!(s.leaves().waiting_for(), s.next(), "{s:?}");
        }
    }

    #[test]
    fn state_names_are_the_stored_ones_and_read_back() {
        let names: Vec<String> = JobState::ALL.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            names,
            [
                "queued",
                "generating",
                "generated",
                "awaiting_review",
                "approved",
                "rejected",
                "published",
                "minting",
                "minted",
                "failed"
            ]
        );
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>(), Ok(s));
            // Stored as JSON the same way.
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("Minted".parse::<JobState>().is_err() && "".parse::<JobState>().is_err());
        let finals: Vec<JobState> = JobState::ALL.into_iter().filter(|s| s.is_final()).collect();
        assert_eq!(finals, [JobState::Rejected, JobState::Minted, JobState::Failed]);
    }

    #[test]
    fn queue_names_are_the_deployed_ones_and_read_back() {
        // The stack's queues are `<prefix><name>` (template.yaml): these names are a contract.
        let names: Vec<&str> = Stage::ALL.iter().map(|s| s.queue()).collect();
        assert_eq!(names, ["generate", "review", "publish", "mint"]);
        for s in Stage::ALL {
            assert_eq!(s.queue().parse::<Stage>(), Ok(s));
        }
        let e = "minting".parse::<Stage>().unwrap_err();
        assert!(e.contains("`minting` is not a stage") && e.contains("generate, review, publish, mint"), "{e}");
    }
}
