//! Messages passed between stages over queues. Versioned: a consumer refuses a version it
//! does not know (the message then goes to the dead-letter queue instead of being misread).

use serde::{Deserialize, Serialize};

use crate::id::JobId;
pub use crate::pipeline::Stage;

/// Current wire version.
pub const MESSAGE_VERSION: u32 = 1;

/// A request for a stage to process one job. The job's details live in the job store, so a
/// message is tiny and a redelivered one can never carry stale data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageMessage {
    /// Wire version.
    pub v: u32,
    /// Which stage.
    pub stage: Stage,
    /// Which job.
    pub job_id: JobId,
    /// Set when intake sends the message again for a job it already knows (a token of the
    /// send, e.g. its time): the body differs from the message it replaces, so a FIFO queue's
    /// deduplication (by content, five minutes) does not drop it while that one sits in a
    /// dead-letter queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resend: Option<u64>,
}

/// A message body that could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// Not JSON of the expected shape.
    #[error("message body is not a stage message: {0}")]
    Malformed(String),
    /// A version this build does not speak.
    #[error("message version {0} is not supported (this build speaks {MESSAGE_VERSION})")]
    Version(u32),
    /// Sent to the wrong queue.
    #[error("message for stage {got:?} arrived on the {expected:?} queue")]
    WrongStage {
        /// The queue's stage.
        expected: Stage,
        /// The message's stage.
        got: Stage,
    },
}

impl StageMessage {
    /// A message for `stage` about `job_id`.
    pub fn new(stage: Stage, job_id: JobId) -> Self {
        Self { v: MESSAGE_VERSION, stage, job_id, resend: None }
    }

    /// A message for `stage` about `job_id` that replaces an earlier one which may be lost or
    /// dead-lettered; `token` tells it apart from that one (see [`StageMessage::resend`]).
    pub fn resend(stage: Stage, job_id: JobId, token: u64) -> Self {
        Self { resend: Some(token), ..Self::new(stage, job_id) }
    }

    /// JSON body.
    pub fn to_body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a body received on `expected`'s queue.
    pub fn parse(body: &str, expected: Stage) -> Result<Self, MessageError> {
        let m: StageMessage = serde_json::from_str(body).map_err(|e| MessageError::Malformed(e.to_string()))?;
        if m.v != MESSAGE_VERSION {
            return Err(MessageError::Version(m.v));
        }
        if m.stage != expected {
            return Err(MessageError::WrongStage { expected, got: m.stage });
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let id = JobId::from_bytes([7; 32]);
        let m = StageMessage::new(Stage::Mint, id);
        assert_eq!(StageMessage::parse(&m.to_body(), Stage::Mint).unwrap(), m);
        assert!(matches!(StageMessage::parse(&m.to_body(), Stage::Publish), Err(MessageError::WrongStage { .. })));
        let v2 = m.to_body().replace("\"v\":1", "\"v\":2");
        assert!(matches!(StageMessage::parse(&v2, Stage::Mint), Err(MessageError::Version(2))));
        assert!(matches!(StageMessage::parse("nope", Stage::Mint), Err(MessageError::Malformed(_))));
        // A resend is a body of its own, and reads as the same request.
        let again = StageMessage::resend(Stage::Mint, id, 1_764_000_000_000);
        assert_ne!(again.to_body(), m.to_body());
        assert_eq!(StageMessage::parse(&again.to_body(), Stage::Mint).unwrap().job_id, id);
        assert!(!m.to_body().contains("resend"), "first sends keep their one body");
    }
}
