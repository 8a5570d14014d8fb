//! Job records in SQLite, with compare-and-swap on the state column.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use latentmint_core::ports::{JobStore, PortError, PortResult};
use latentmint_core::{Job, JobId, JobState};
use rusqlite::{Connection, OptionalExtension, params};

use crate::queue::now_ms;
use crate::{db_err, open_db};

/// SQLite job store.
pub struct SqliteJobStore {
    conn: Mutex<Connection>,
}

fn decode(body: String) -> PortResult<Job> {
    serde_json::from_str(&body).map_err(|e| PortError::Permanent(format!("corrupt job record: {e}")))
}

fn encode(job: &Job) -> PortResult<String> {
    serde_json::to_string(job).map_err(|e| PortError::Permanent(format!("cannot encode job: {e}")))
}

/// The rows of `sql`, each a text and a non-negative number (a state and a count, an id and a
/// time).
fn text_and_number(c: &Connection, sql: &str, args: impl rusqlite::Params) -> PortResult<Vec<(String, u64)>> {
    let mut st = c.prepare(sql).map_err(db_err)?;
    let rows = st.query_map(args, |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).map_err(db_err)?;
    rows.map(|row| row.map(|(text, n)| (text, u64::try_from(n).unwrap_or(0))).map_err(db_err)).collect()
}

/// Appends one step (a state entered, and when) to job `id`'s history.
fn record_step(c: &Connection, id: &str, state: JobState, at: i64) -> PortResult<()> {
    c.execute("INSERT INTO job_history (id, state, at) VALUES (?1, ?2, ?3)", params![id, state.as_str(), at])
        .map_err(db_err)?;
    Ok(())
}

impl SqliteJobStore {
    /// Opens (creating if needed) the job database at `path`.
    pub fn open(path: &Path) -> PortResult<Self> {
        let conn = open_db(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS jobs (
                 seq        INTEGER PRIMARY KEY AUTOINCREMENT,
                 id         TEXT NOT NULL UNIQUE,
                 state      TEXT NOT NULL,
                 body       TEXT NOT NULL,
                 updated_at INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
             -- Each state a job entered and when, for an operator's look at one job.
             CREATE TABLE IF NOT EXISTS job_history (
                 id    TEXT NOT NULL,
                 state TEXT NOT NULL,
                 at    INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS job_history_id ON job_history(id);",
        )
        .map_err(db_err)?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> PortResult<std::sync::MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| PortError::Permanent("job database lock poisoned".into()))
    }
}

#[async_trait]
impl JobStore for SqliteJobStore {
    async fn insert_if_absent(&self, job: &Job) -> PortResult<bool> {
        let c = self.conn()?;
        let tx = c.unchecked_transaction().map_err(db_err)?;
        let (id, at) = (job.id().to_string(), now_ms());
        let n = tx
            .execute(
                "INSERT OR IGNORE INTO jobs (id, state, body, updated_at) VALUES (?1, ?2, ?3, ?4)",
                params![id, job.state.as_str(), encode(job)?, at],
            )
            .map_err(db_err)?;
        if n == 1 {
            record_step(&tx, &id, job.state, at)?;
        }
        tx.commit().map_err(db_err)?;
        Ok(n == 1)
    }

    async fn get(&self, id: JobId) -> PortResult<Option<Job>> {
        let body: Option<String> = self
            .conn()?
            .query_row("SELECT body FROM jobs WHERE id = ?1", params![id.to_string()], |r| r.get(0))
            .optional()
            .map_err(db_err)?;
        body.map(decode).transpose()
    }

    async fn update(&self, job: &Job, expected: JobState) -> PortResult<bool> {
        let c = self.conn()?;
        let tx = c.unchecked_transaction().map_err(db_err)?;
        let (id, at) = (job.id().to_string(), now_ms());
        let n = tx
            .execute(
                "UPDATE jobs SET state = ?1, body = ?2, updated_at = ?3 WHERE id = ?4 AND state = ?5",
                params![job.state.as_str(), encode(job)?, at, id, expected.as_str()],
            )
            .map_err(db_err)?;
        // A new state only: a write that keeps the state (a retry's note) is no step.
        if n == 1 && job.state != expected {
            record_step(&tx, &id, job.state, at)?;
        }
        tx.commit().map_err(db_err)?;
        Ok(n == 1)
    }

    async fn history(&self, id: JobId) -> PortResult<Vec<(JobState, u64)>> {
        let sql = "SELECT state, at FROM job_history WHERE id = ?1 ORDER BY rowid";
        text_and_number(&*self.conn()?, sql, params![id.to_string()])?
            .into_iter()
            .map(|(state, at)| Ok((state.parse().map_err(PortError::Permanent)?, at)))
            .collect()
    }

    async fn list(&self, state: Option<JobState>) -> PortResult<Vec<Job>> {
        let c = self.conn()?;
        let bodies: Vec<String> = match state {
            Some(s) => {
                let mut st = c.prepare("SELECT body FROM jobs WHERE state = ?1 ORDER BY seq").map_err(db_err)?;
                st.query_map(params![s.as_str()], |r| r.get(0))
                    .map_err(db_err)?
                    .collect::<Result<_, _>>()
                    .map_err(db_err)?
            }
            None => {
                let mut st = c.prepare("SELECT body FROM jobs ORDER BY seq").map_err(db_err)?;
                st.query_map([], |r| r.get(0)).map_err(db_err)?.collect::<Result<_, _>>().map_err(db_err)?
            }
        };
        bodies.into_iter().map(decode).collect()
    }

    async fn counts(&self) -> PortResult<BTreeMap<JobState, u64>> {
        let sql = "SELECT state, COUNT(*) FROM jobs GROUP BY state";
        text_and_number(&*self.conn()?, sql, [])?
            .into_iter()
            .map(|(state, n)| Ok((state.parse().map_err(PortError::Permanent)?, n)))
            .collect()
    }

    async fn changed_at(&self, state: JobState) -> PortResult<BTreeMap<JobId, u64>> {
        let sql = "SELECT id, updated_at FROM jobs WHERE state = ?1";
        text_and_number(&*self.conn()?, sql, params![state.as_str()])?
            .into_iter()
            .map(|(id, at)| Ok((id.parse().map_err(|e| PortError::Permanent(format!("job id {id}: {e}")))?, at)))
            .collect()
    }

    async fn revision(&self) -> PortResult<Option<u64>> {
        // SQLite's own counter of commits by other connections to this database.
        let c = self.conn()?;
        let v: i64 = c.query_row("PRAGMA data_version", [], |r| r.get(0)).map_err(db_err)?;
        Ok(Some(v as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use latentmint_core::Job;
    use latentmint_core::testing::CollectionToml;

    /// The revision moves when another connection (another process: the runner) writes, so a
    /// dashboard reads the jobs again then, and only then.
    #[tokio::test]
    async fn the_revision_moves_when_another_writer_changes_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("p.db");
        let (dashboard, runner) = (SqliteJobStore::open(&db).unwrap(), SqliteJobStore::open(&db).unwrap());
        let before = dashboard.revision().await.unwrap();
        assert!(before.is_some());
        assert_eq!(dashboard.revision().await.unwrap(), before, "nothing written: the same");
        let job = Job::new(CollectionToml::new("T", "T").prompt("a red circle").jobs().remove(0));
        runner.insert_if_absent(&job).await.unwrap();
        assert_ne!(dashboard.revision().await.unwrap(), before, "another writer: changed");
        // And when: the write's time, for the job's state only.
        let at = dashboard.changed_at(JobState::Queued).await.unwrap();
        let now = u64::try_from(now_ms()).unwrap();
        assert!(at.get(&job.id()).is_some_and(|t| now.abs_diff(*t) < 60_000), "{at:?}");
        assert!(dashboard.changed_at(JobState::Minted).await.unwrap().is_empty());
    }
}
