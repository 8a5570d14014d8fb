//! Identities: a job's id and its position in its collection, derived from what the job is.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::generation::GenerationParams;

crate::hex_id::hex_id!(
    /// Stable 32-byte job identifier: a hash of what the job is, so a retried request maps to
    /// the same id, whose low 8 bytes are the job's [`Position`] in its collection. It is the
    /// idempotency key of the contract's mint guard, which claims the position on every mint
    /// path, so a job id is minted at most once however its jobs are grouped.
    JobId,
    "job id"
);

/// A job's place, carried in the low 8 bytes of its id, where the contract reads it: each
/// position is minted at most once. The upper 32 bits name the collection (a hash of its name
/// and symbol: collections sharing a contract never meet), the lower 32 are the job's place in
/// its file, 0, 1, 2 … in file order (every copy of prompt 0, then of prompt 1, …), so one
/// collection's positions are dense and share storage words. A job for an outside request (a
/// shop's order) takes a place in the upper half, from a hash of the collection and the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position(pub u64);

impl Position {
    /// Where outside requests' positions start (2^63).
    pub const REQUESTS: u64 = 1 << 63;

    /// Position `index` of the collection `name`/`symbol`'s file.
    pub fn in_file(name: &str, symbol: &str, index: u32) -> Self {
        let mut h = Sha256::new();
        h.update(b"latentmint/position/collection/v1\0");
        for part in [name, symbol] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        let d: [u8; 32] = h.finalize().into();
        // The top bit stays clear: that half is the requests'.
        let namespace = u64::from(u32::from_be_bytes([d[0], d[1], d[2], d[3]]) >> 1);
        Self((namespace << 32) | u64::from(index))
    }

    /// Whether a shop order (an outside request) holds this position.
    pub fn is_request(self) -> bool {
        self.0 >= Self::REQUESTS
    }

    /// The job's place in its collection file (meaningless for a request).
    pub fn index(self) -> u32 {
        (self.0 & 0xffff_ffff) as u32
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_request() {
            write!(f, "request position {:#x}", self.0)
        } else {
            // Its place in the file; the collection it belongs to is the one being spoken of.
            write!(f, "position {}", self.index())
        }
    }
}

impl JobId {
    /// The id of a collection item: collection identity, position (prompt `index`, `copy`,
    /// and its place `position` among all the file's jobs, see [`Position::in_file`]) and the
    /// exact request.
    #[allow(clippy::too_many_arguments)]
    pub fn derive(
        collection: &str,
        symbol: &str,
        position: u32,
        index: u32,
        copy: u32,
        prompt: &str,
        params: &GenerationParams,
    ) -> Self {
        let mut h = Sha256::new();
        h.update(b"latentmint/job/v2\0");
        for part in [collection, symbol, prompt, &params.scheduler] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        h.update(index.to_be_bytes());
        h.update(copy.to_be_bytes());
        h.update(position.to_be_bytes());
        hash_params(&mut h, params);
        Self::with_position(h.finalize().into(), Position::in_file(collection, symbol, position))
    }

    /// The id of a job for an outside request: collection identity, the caller's request id
    /// (an order id) and the exact request, so a retried webhook maps to the same job. Its
    /// position is a hash of the collection and the request id alone.
    pub fn derive_request(
        collection: &str,
        symbol: &str,
        request_id: &str,
        prompt: &str,
        params: &GenerationParams,
    ) -> Self {
        let mut h = Sha256::new();
        h.update(b"latentmint/job/request/v2\0");
        for part in [collection, symbol, request_id, prompt, &params.scheduler] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        hash_params(&mut h, params);
        let mut p = Sha256::new();
        p.update(b"latentmint/position/request/v1\0");
        for part in [collection, symbol, request_id] {
            p.update((part.len() as u64).to_be_bytes());
            p.update(part.as_bytes());
        }
        let d: [u8; 32] = p.finalize().into();
        let position = Position::REQUESTS | (u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]) >> 1);
        Self::with_position(h.finalize().into(), Position(position))
    }

    fn with_position(mut hash: [u8; 32], position: Position) -> Self {
        hash[24..].copy_from_slice(&position.0.to_be_bytes());
        Self::from_bytes(hash)
    }

    /// The job's position in its collection (the id's low 8 bytes).
    pub fn position(&self) -> Position {
        let b = self.as_bytes();
        Position(u64::from_be_bytes([b[24], b[25], b[26], b[27], b[28], b[29], b[30], b[31]]))
    }
}

/// The numeric generation parameters, in the order job ids have always hashed them.
fn hash_params(h: &mut Sha256, params: &GenerationParams) {
    h.update(params.seed.to_be_bytes());
    h.update(params.steps.to_be_bytes());
    h.update(params.guidance.to_bits().to_be_bytes());
    h.update(params.width.to_be_bytes());
    h.update(params.height.to_be_bytes());
}
