//! Living-NFT bookkeeping in SQLite: the state of each evolution by its trigger, and how far
//! the chain has been scanned.

use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use latentmint_core::living::EvolutionState;
use latentmint_core::ports::{EvolutionStore, PortError, PortResult};
use rusqlite::{Connection, OptionalExtension, params};

use crate::queue::now_ms;
use crate::{db_err, open_db};

/// SQLite evolution store and scan cursor.
pub struct SqliteEvolutionStore {
    conn: Mutex<Connection>,
}

impl SqliteEvolutionStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> PortResult<Self> {
        let conn = open_db(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS evolutions (
                 trigger    TEXT PRIMARY KEY,
                 body       TEXT NOT NULL,
                 updated_at INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS cursors (
                 name  TEXT PRIMARY KEY,
                 block INTEGER NOT NULL
             );",
        )
        .map_err(db_err)?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> PortResult<std::sync::MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| PortError::Permanent("evolution database lock poisoned".into()))
    }
}

#[async_trait]
impl EvolutionStore for SqliteEvolutionStore {
    async fn get(&self, key: &str) -> PortResult<Option<EvolutionState>> {
        let body: Option<String> = self
            .conn()?
            .query_row("SELECT body FROM evolutions WHERE trigger = ?1", params![key], |r| r.get(0))
            .optional()
            .map_err(db_err)?;
        body.map(|b| {
            serde_json::from_str(&b).map_err(|e| PortError::Permanent(format!("corrupt evolution record {key}: {e}")))
        })
        .transpose()
    }

    async fn put(&self, key: &str, state: &EvolutionState) -> PortResult<()> {
        let body = serde_json::to_string(state).map_err(|e| PortError::Permanent(e.to_string()))?;
        self.conn()?
            .execute(
                "INSERT INTO evolutions (trigger, body, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(trigger) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
                params![key, body, now_ms()],
            )
            .map_err(db_err)?;
        Ok(())
    }

    async fn cursor(&self, name: &str) -> PortResult<Option<u64>> {
        self.conn()?
            .query_row("SELECT block FROM cursors WHERE name = ?1", params![name], |r| r.get::<_, i64>(0))
            .optional()
            .map(|b| b.map(|b| b as u64))
            .map_err(db_err)
    }

    async fn set_cursor(&self, name: &str, next: u64) -> PortResult<()> {
        self.conn()?
            .execute(
                "INSERT INTO cursors (name, block) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET block = excluded.block",
                params![name, next as i64],
            )
            .map_err(db_err)?;
        Ok(())
    }
}
