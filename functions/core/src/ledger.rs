//! The chain's record of a collection's mints, rebuilt from the contract's events: which job
//! became which token, on which path, in which transaction.
//!
//! The chain is the source of truth about mints; a job store, a data folder and `tokens.json`
//! are caches of it. The contract claims each job's [`Position`] on every mint path, so on
//! one contract a job has at most one token and a position at most one job; the ledger is how
//! a run that lost its local state learns what was minted, and how a collector's check sees
//! a duplicate on a contract that did not enforce that.

use std::collections::BTreeMap;

use crate::batch::BatchId;
use crate::cid::{dag_pb_cid_of_digest, raw_cid_of_digest};
use crate::job::{JobId, Position};

/// How a token was minted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// Alone: the token id is the sha2-256 digest of its metadata (`ipfs://<raw cid>`).
    Alone,
    /// In a batch: token `first + index`, metadata file `index` of the batch's directory.
    Batch {
        /// The minter's name for the batch.
        batch: BatchId,
        /// The batch's first token.
        first: u64,
        /// The job's place in the batch.
        index: u32,
        /// The directory holding the batch's metadata.
        directory_cid: String,
    },
    /// As an ERC-1155 edition: the token id is the edition's.
    Edition {
        /// The edition's metadata, from its `EditionCreated` event (None if that event was
        /// not read).
        metadata_cid: Option<String>,
    },
}

/// One job's token, as the chain's events tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainMint {
    /// The job the event names.
    pub job: JobId,
    /// Its token (decimal).
    pub token_id: String,
    /// The transaction that minted it.
    pub tx_hash: String,
    /// Its block.
    pub block: u64,
    /// The event's index in its block (chain order within a block).
    pub log_index: u64,
    /// How.
    pub via: Via,
}

impl ChainMint {
    /// The URI the token was minted with: `ipfs://<metadata cid>` alone (its id is the
    /// metadata's digest) or as an edition, `ipfs://<directory>/<index>` in a batch.
    pub fn minted_uri(&self) -> Option<String> {
        match &self.via {
            Via::Batch { index, directory_cid, .. } => Some(format!("ipfs://{directory_cid}/{index}")),
            _ => self.known_metadata_cid().map(|c| format!("ipfs://{c}")),
        }
    }

    /// The metadata CID the chain alone tells: a single mint's id read as its digest, an
    /// edition's from its creation; `None` for a batch token (an entry of its directory).
    pub fn known_metadata_cid(&self) -> Option<String> {
        match &self.via {
            Via::Alone => token_digest(&self.token_id).map(|d| raw_cid_of_digest(&d)),
            Via::Edition { metadata_cid } => metadata_cid.clone(),
            Via::Batch { .. } => None,
        }
    }
}

/// A single mint's token id (decimal) as the 32-byte digest it is.
pub fn token_digest(token_id: &str) -> Option<[u8; 32]> {
    decimal_to_be(token_id)
}

/// The token id (decimal) of a single mint whose metadata has raw CID `metadata_cid`: the
/// CID's sha2-256 digest as a number.
pub fn single_token_id(metadata_cid: &str) -> Option<String> {
    crate::cid::raw_sha256_digest(metadata_cid).map(|d| be_to_decimal(&d))
}

/// The directory CID of a batch from the digest the contract stores.
pub fn directory_cid(digest: &[u8; 32]) -> String {
    dag_pb_cid_of_digest(digest)
}

/// Why `job` can never be minted on this contract: `holder`, another job, holds its position.
pub fn position_taken(job: JobId, holder: &ChainMint) -> String {
    format!(
        "job {}'s {} was minted as token {} for job {} (in {}): the collection file changed after that job was minted (a prompt, a count or their order); a position is minted once, so restore the earlier file, or add new prompts after the last one",
        job.short(),
        job.position(),
        holder.token_id,
        holder.job.short(),
        holder.tx_hash
    )
}

/// A job (or a position) holding more than one token: what a collector's check must refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Duplicate {
    /// One job id, several tokens.
    Job {
        /// The job.
        job: JobId,
        /// Its tokens, in chain order.
        tokens: Vec<String>,
    },
    /// One position, several jobs (a contract that did not claim positions).
    Position {
        /// The position.
        position: Position,
        /// The jobs and their tokens, in chain order.
        holders: Vec<(JobId, String)>,
    },
}

impl std::fmt::Display for Duplicate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Job { job, tokens } => write!(f, "job {job} owns {} tokens: {}", tokens.len(), tokens.join(" and ")),
            Self::Position { position, holders } => {
                let list: Vec<String> = holders.iter().map(|(j, t)| format!("job {} (token {t})", j.short())).collect();
                write!(f, "{position} was minted {} times: {}", holders.len(), list.join(" and "))
            }
        }
    }
}

/// What the chain says of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// No token, and its position is free.
    Unminted,
    /// Minted: its token.
    Minted(ChainMint),
    /// Its position holds another job's token (the collection file was edited after that
    /// job was minted): this job can never be minted on this contract.
    PositionTaken(ChainMint),
}

/// Every mint of one contract, in chain order, indexed by job and by position.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    mints: Vec<ChainMint>,
    by_job: BTreeMap<JobId, Vec<usize>>,
    by_position: BTreeMap<Position, Vec<usize>>,
}

impl Ledger {
    /// Adds mints, in chain order (a caller scanning blocks forward adds them in order).
    pub fn extend(&mut self, mints: impl IntoIterator<Item = ChainMint>) {
        for m in mints {
            let i = self.mints.len();
            self.by_job.entry(m.job).or_default().push(i);
            self.by_position.entry(m.job.position()).or_default().push(i);
            self.mints.push(m);
        }
    }

    /// Every mint, in chain order.
    pub fn mints(&self) -> &[ChainMint] {
        &self.mints
    }

    /// How many tokens the events name.
    pub fn len(&self) -> usize {
        self.mints.len()
    }

    /// True when nothing was minted.
    pub fn is_empty(&self) -> bool {
        self.mints.is_empty()
    }

    /// The job's (first) token.
    pub fn of(&self, job: JobId) -> Option<&ChainMint> {
        self.by_job.get(&job).and_then(|v| v.first()).map(|&i| &self.mints[i])
    }

    /// What the chain says of `job`.
    pub fn fate(&self, job: JobId) -> Fate {
        if let Some(m) = self.of(job) {
            return Fate::Minted(m.clone());
        }
        match self.by_position.get(&job.position()).and_then(|v| v.first()) {
            Some(&i) => Fate::PositionTaken(self.mints[i].clone()),
            None => Fate::Unminted,
        }
    }

    /// The tokens of batch `batch`, in order, if it was minted.
    pub fn batch(&self, batch: BatchId) -> Vec<&ChainMint> {
        self.mints.iter().filter(|m| matches!(&m.via, Via::Batch { batch: b, .. } if *b == batch)).collect()
    }

    /// The job a token belongs to, by the events.
    pub fn job_of_token(&self, token_id: &str) -> Option<&ChainMint> {
        self.mints.iter().find(|m| m.token_id == token_id)
    }

    /// Every job with more than one token, and every position with more than one job.
    pub fn duplicates(&self) -> Vec<Duplicate> {
        let mut out = Vec::new();
        for (job, idx) in &self.by_job {
            if idx.len() > 1 {
                out.push(Duplicate::Job {
                    job: *job,
                    tokens: idx.iter().map(|&i| self.mints[i].token_id.clone()).collect(),
                });
            }
        }
        for (position, idx) in &self.by_position {
            let mut holders: Vec<(JobId, String)> = Vec::new();
            for &i in idx {
                let m = &self.mints[i];
                if !holders.iter().any(|(j, _)| *j == m.job) {
                    holders.push((m.job, m.token_id.clone()));
                }
            }
            if holders.len() > 1 {
                out.push(Duplicate::Position { position: *position, holders });
            }
        }
        out
    }
}

/// A decimal string as 32 big-endian bytes (no overflow: at most 2^256 - 1).
fn decimal_to_be(s: &str) -> Option<[u8; 32]> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for b in s.bytes() {
        // out = out * 10 + digit
        let mut carry = u32::from(b - b'0');
        for byte in out.iter_mut().rev() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        if carry != 0 {
            return None;
        }
    }
    Some(out)
}

/// 32 big-endian bytes as a decimal string.
fn be_to_decimal(bytes: &[u8; 32]) -> String {
    let mut n = *bytes;
    let mut digits = Vec::new();
    while n.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for byte in n.iter_mut() {
            let v = (rem << 8) | u32::from(*byte);
            *byte = (v / 10) as u8;
            rem = v % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    if digits.is_empty() {
        return "0".into();
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(position: u64, salt: u8) -> JobId {
        let mut b = [salt; 32];
        b[24..].copy_from_slice(&position.to_be_bytes());
        JobId::from_bytes(b)
    }

    fn alone(j: JobId, token: &str) -> ChainMint {
        ChainMint { job: j, token_id: token.into(), tx_hash: "0x1".into(), block: 1, log_index: 0, via: Via::Alone }
    }

    #[test]
    fn decimal_round_trip_of_a_digest() {
        let cid = crate::cid::cid_of_bytes(b"hello world");
        let id = single_token_id(&cid).unwrap();
        assert_eq!(id, "83814198383102558219731078260892729932246618004265700685467928187377105751529");
        let m = alone(job(1, 1), &id);
        assert_eq!(m.known_metadata_cid().as_deref(), Some(cid.as_str()));
        assert_eq!(m.minted_uri().unwrap(), format!("ipfs://{cid}"));
        assert_eq!(token_digest("0"), Some([0; 32]));
        assert_eq!(token_digest("12x"), None);
        // 2^256 does not fit.
        assert_eq!(
            token_digest("115792089237316195423570985008687907853269984665640564039457584007913129639936"),
            None
        );
        assert_eq!(be_to_decimal(&[0; 32]), "0");
    }

    #[test]
    fn fates_and_duplicates() {
        let mut l = Ledger::default();
        let (a, b, edited) = (job(1, 1), job(2, 2), job(1, 9));
        l.extend([alone(a, "10"), alone(b, "20")]);
        assert_eq!(l.fate(a), Fate::Minted(l.mints()[0].clone()));
        assert_eq!(l.fate(edited), Fate::PositionTaken(l.mints()[0].clone()));
        assert_eq!(l.fate(job(3, 3)), Fate::Unminted);
        assert!(l.duplicates().is_empty());
        // A contract that did not claim positions: the same job twice, another at its place.
        l.extend([alone(a, "11"), alone(edited, "12")]);
        let d = l.duplicates();
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!(d[0].to_string(), format!("job {a} owns 2 tokens: 10 and 11"));
        assert!(d[1].to_string().starts_with("position 1 was minted 2 times"), "{}", d[1]);
    }

    #[test]
    fn one_job_twice_at_its_position_is_one_duplicate_not_two() {
        let mut l = Ledger::default();
        let a = job(1, 1);
        l.extend([alone(a, "10"), alone(a, "11")]);
        assert_eq!(l.duplicates(), vec![Duplicate::Job { job: a, tokens: vec!["10".into(), "11".into()] }]);
        assert_eq!((l.len(), l.is_empty()), (2, false));
        let empty = Ledger::default();
        assert_eq!((empty.len(), empty.is_empty()), (0, true));
    }

    #[test]
    fn batch_tokens_are_found_by_batch_and_by_token() {
        let (a, b, c) = (job(1, 1), job(2, 2), job(3, 3));
        let batch = BatchId::of(&[a, b]);
        let dir = directory_cid(&[7; 32]);
        assert!(dir.starts_with("bafybei"), "{dir}");
        let in_batch = |j: JobId, index: u32| ChainMint {
            job: j,
            token_id: (100 + u64::from(index)).to_string(),
            tx_hash: "0x2".into(),
            block: 2,
            log_index: u64::from(index),
            via: Via::Batch { batch, first: 100, index, directory_cid: dir.clone() },
        };
        let mut l = Ledger::default();
        l.extend([in_batch(a, 0), in_batch(b, 1), alone(c, "7")]);
        assert_eq!(l.batch(batch).iter().map(|m| m.job).collect::<Vec<_>>(), vec![a, b]);
        assert_eq!(l.job_of_token("101").map(|m| m.job), Some(b));
        assert_eq!(l.job_of_token("7").map(|m| m.job), Some(c));
        assert_eq!(l.job_of_token("102"), None);
        assert_eq!(l.of(b).unwrap().minted_uri().unwrap(), format!("ipfs://{dir}/1"));
        let why = position_taken(job(2, 9), l.of(b).unwrap());
        assert!(why.contains("position 2") && why.contains("token 101") && why.contains(&b.short()), "{why}");
    }
}
