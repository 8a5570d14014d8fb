//! # latentmint-embedded
//!
//! Adapters that need nothing but a folder: SQLite queues with SQS semantics, a SQLite job
//! store, a filesystem blob store and a local content-addressed (IPFS-style) store. They are
//! the defaults of a local run and the stand-ins the tests use.

mod blobs;
mod jobs;
mod living;
mod queue;

use std::path::Path;

pub use blobs::{FsBlobStore, LocalContentStore, write_atomic};
pub use jobs::SqliteJobStore;
pub use living::SqliteEvolutionStore;
pub use queue::SqliteQueue;

use latentmint_core::ports::{PortError, PortResult};

pub(crate) fn db_err(e: rusqlite::Error) -> PortError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::DatabaseBusy || f.code == rusqlite::ErrorCode::DatabaseLocked =>
        {
            PortError::Transient(format!("database busy: {e}"))
        }
        other => PortError::Permanent(format!("database: {other}")),
    }
}

/// Opens a database in WAL mode, so the dashboard can read while a run writes.
pub(crate) fn open_db(path: &Path) -> PortResult<rusqlite::Connection> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| PortError::Permanent(format!("{}: {e}", dir.display())))?;
    }
    let c = rusqlite::Connection::open(path).map_err(db_err)?;
    c.busy_timeout(std::time::Duration::from_secs(10)).map_err(db_err)?;
    c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;").map_err(db_err)?;
    Ok(c)
}
