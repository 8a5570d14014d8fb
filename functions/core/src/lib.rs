//! # latentmint-core
//!
//! The pure domain of latentmint: no I/O, no AWS, chain or ONNX types.
//!
//! A job's life, in the order the modules are used:
//! - [`collection`]: a collection file is parsed, validated and expanded into [`job::JobSpec`]s
//!   (prompts composed from style and weighted traits, stable job ids, seeds);
//! - [`sanitize`]: every prompt is cleaned first;
//! - [`job`]: the job and its state machine;
//! - [`message`]: the message each stage sends the next;
//! - [`qa`]: automatic image checks for the review stage;
//! - [`metadata`] and [`cid`]: ERC-721 metadata with provenance, and kubo-compatible CIDs;
//! - [`batch`]: published jobs minted together, and how a batch stays exactly-once;
//! - [`ledger`]: the chain's record of what was minted, which local state only caches;
//! - [`ports`]: the traits adapters implement.

pub mod address;
pub mod batch;
pub mod cid;
pub mod collection;
pub mod field;
pub mod generation;
mod hex_id;
pub mod id;
pub mod job;
pub mod ledger;
pub mod living;
pub mod message;
pub mod metadata;
pub mod network;
pub mod pipeline;
pub mod ports;
pub mod qa;
pub mod redact;
pub mod sanitize;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod webhook;

pub use address::EvmAddress;
pub use field::FieldError;
pub use job::{
    Adoption, ClaimError, GenerationLease, GenerationParams, GenerationRecord, Job, JobId, JobSpec, JobState, Position,
};
pub use message::{Stage, StageMessage};
pub use ports::PortError;
