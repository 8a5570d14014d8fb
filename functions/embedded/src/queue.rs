//! Queues with SQS semantics in SQLite: at-least-once delivery, a visibility timeout per
//! receive, a receive count, and redrive to `<queue>-dlq` once a message has been received
//! more than `max_receives` times (SQS's maxReceiveCount). State lives in one file, so a killed
//! run loses nothing: unacknowledged messages simply become visible again.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use latentmint_core::ports::{DEAD_LETTER_SUFFIX, Delivery, PortError, PortResult, Queue, QueueStats, dead_letters};
use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use tracing::warn;

use crate::{db_err, open_db};

/// SQLite-backed queues (all queues share one table).
pub struct SqliteQueue {
    conn: Mutex<Connection>,
    max_receives: u32,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl SqliteQueue {
    /// Opens (creating if needed) the queue database at `path`.
    pub fn open(path: &Path, max_receives: u32) -> PortResult<Self> {
        let conn = open_db(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS messages (
                 id            INTEGER PRIMARY KEY AUTOINCREMENT,
                 queue         TEXT    NOT NULL,
                 body          TEXT    NOT NULL,
                 receive_count INTEGER NOT NULL DEFAULT 0,
                 visible_at    INTEGER NOT NULL,
                 receipt       TEXT,
                 sent_at       INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS messages_ready ON messages(queue, visible_at);
             CREATE UNIQUE INDEX IF NOT EXISTS messages_receipt ON messages(receipt);",
        )
        .map_err(db_err)?;
        Ok(Self { conn: Mutex::new(conn), max_receives: max_receives.max(1) })
    }

    fn conn(&self) -> PortResult<std::sync::MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| PortError::Permanent("queue database lock poisoned".into()))
    }

    /// Makes every in-flight message visible now. Only for a runner that holds the data
    /// directory's lock at start-up: any lease still held belongs to a process that died.
    pub fn release_in_flight(&self) -> PortResult<usize> {
        let c = self.conn()?;
        c.execute(
            "UPDATE messages SET visible_at = 0, receipt = NULL WHERE visible_at > ?1 AND receipt IS NOT NULL",
            params![now_ms()],
        )
        .map_err(db_err)
    }

    /// Bodies in a queue (for tests and the dashboard).
    pub fn peek(&self, queue: &str) -> PortResult<Vec<String>> {
        let c = self.conn()?;
        let mut st = c.prepare("SELECT body FROM messages WHERE queue = ?1 ORDER BY id").map_err(db_err)?;
        let rows = st.query_map(params![queue], |r| r.get::<_, String>(0)).map_err(db_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
    }
}

fn new_receipt() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn send(&self, queue: &str, body: &str) -> PortResult<()> {
        let now = now_ms();
        self.conn()?
            .execute(
                "INSERT INTO messages (queue, body, visible_at, sent_at) VALUES (?1, ?2, ?3, ?3)",
                params![queue, body, now],
            )
            .map_err(db_err)?;
        Ok(())
    }

    async fn receive(&self, queue: &str, max: usize, visibility: Duration) -> PortResult<Vec<Delivery>> {
        let mut c = self.conn()?;
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db_err)?;
        let now = now_ms();
        let candidates: Vec<(i64, String, u32)> = {
            let mut st = tx
                .prepare("SELECT id, body, receive_count FROM messages WHERE queue = ?1 AND visible_at <= ?2 ORDER BY id LIMIT ?3")
                .map_err(db_err)?;
            let rows = st
                .query_map(params![queue, now, (max as i64) * 2 + 1], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(db_err)?;
            rows.collect::<Result<_, _>>().map_err(db_err)?
        };
        let mut out = Vec::new();
        for (id, body, count) in candidates {
            if out.len() >= max {
                break;
            }
            // A dead-letter queue has none of its own (as in SQS): its messages are read by a
            // resume, however often they were received before.
            if count >= self.max_receives && !queue.ends_with(DEAD_LETTER_SUFFIX) {
                // Received too often without success: park it for a human instead of looping.
                warn!(queue, message_id = id, receives = count, "moving message to the dead-letter queue");
                tx.execute(
                    "UPDATE messages SET queue = ?1, visible_at = ?2, receipt = NULL WHERE id = ?3",
                    params![dead_letters(queue), now, id],
                )
                .map_err(db_err)?;
                continue;
            }
            let receipt = new_receipt();
            tx.execute(
                "UPDATE messages SET receive_count = receive_count + 1, visible_at = ?1, receipt = ?2 WHERE id = ?3",
                params![now + visibility.as_millis() as i64, receipt, id],
            )
            .map_err(db_err)?;
            out.push(Delivery { message_id: id.to_string(), receipt, body, receive_count: count + 1 });
        }
        tx.commit().map_err(db_err)?;
        Ok(out)
    }

    async fn ack(&self, queue: &str, receipt: &str) -> PortResult<()> {
        let n = self
            .conn()?
            .execute("DELETE FROM messages WHERE queue = ?1 AND receipt = ?2", params![queue, receipt])
            .map_err(db_err)?;
        if n == 0 {
            // The lease expired and someone else holds the message now; their ack will delete it.
            warn!(queue, "ack with an expired receipt ignored");
        }
        Ok(())
    }

    async fn nack(&self, queue: &str, receipt: &str, delay: Duration) -> PortResult<()> {
        self.conn()?
            .execute(
                "UPDATE messages SET visible_at = ?1, receipt = NULL WHERE queue = ?2 AND receipt = ?3",
                params![now_ms() + delay.as_millis() as i64, queue, receipt],
            )
            .map_err(db_err)?;
        Ok(())
    }

    async fn stats(&self, queue: &str) -> PortResult<QueueStats> {
        let c = self.conn()?;
        let now = now_ms();
        let count = |sql: &str, q: &str| -> PortResult<u64> {
            c.query_row(sql, params![q, now], |r| r.get::<_, i64>(0))
                .optional()
                .map_err(db_err)
                .map(|v| v.unwrap_or(0) as u64)
        };
        Ok(QueueStats {
            visible: count("SELECT COUNT(*) FROM messages WHERE queue = ?1 AND visible_at <= ?2", queue)?,
            in_flight: count("SELECT COUNT(*) FROM messages WHERE queue = ?1 AND visible_at > ?2", queue)?,
            dead: count("SELECT COUNT(*) FROM messages WHERE queue = ?1 AND ?2 >= 0", &dead_letters(queue))?,
        })
    }

    async fn held(&self, queue: &str) -> PortResult<Option<Vec<String>>> {
        let c = self.conn()?;
        let mut stmt = c.prepare("SELECT body FROM messages WHERE queue = ?1 ORDER BY id").map_err(db_err)?;
        let bodies = stmt
            .query_map(params![queue], |r| r.get::<_, String>(0))
            .map_err(db_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_err)?;
        Ok(Some(bodies))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(max: u32) -> (tempfile::TempDir, SqliteQueue) {
        let d = tempfile::tempdir().unwrap();
        let q = SqliteQueue::open(&d.path().join("q.db"), max).unwrap();
        (d, q)
    }

    #[tokio::test]
    async fn fifo_ack_and_visibility() {
        let (_d, q) = q(5);
        q.send("a", "1").await.unwrap();
        q.send("a", "2").await.unwrap();
        let got = q.receive("a", 1, Duration::from_secs(60)).await.unwrap();
        assert_eq!(got[0].body, "1");
        assert_eq!(got[0].receive_count, 1);
        // Hidden while in flight.
        let next = q.receive("a", 10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(next.iter().map(|d| d.body.as_str()).collect::<Vec<_>>(), ["2"]);
        let s = q.stats("a").await.unwrap();
        assert_eq!((s.visible, s.in_flight), (0, 2));
        q.ack("a", &got[0].receipt).await.unwrap();
        assert_eq!(q.stats("a").await.unwrap().in_flight, 1);
    }

    #[tokio::test]
    async fn expired_visibility_redelivers_with_a_higher_count() {
        let (_d, q) = q(5);
        q.send("a", "x").await.unwrap();
        let first = q.receive("a", 1, Duration::from_millis(0)).await.unwrap();
        let again = q.receive("a", 1, Duration::from_secs(60)).await.unwrap();
        assert_eq!(again[0].body, "x");
        assert_eq!(again[0].receive_count, 2);
        assert_ne!(first[0].receipt, again[0].receipt);
        // The stale receipt no longer deletes the message.
        q.ack("a", &first[0].receipt).await.unwrap();
        assert_eq!(q.stats("a").await.unwrap().in_flight, 1);
    }

    #[tokio::test]
    async fn redrive_to_dlq_after_max_receives() {
        let (_d, q) = q(2);
        q.send("a", "poison").await.unwrap();
        for _ in 0..2 {
            let d = q.receive("a", 1, Duration::from_secs(60)).await.unwrap();
            q.nack("a", &d[0].receipt, Duration::ZERO).await.unwrap();
        }
        assert!(q.receive("a", 1, Duration::from_secs(60)).await.unwrap().is_empty());
        let s = q.stats("a").await.unwrap();
        assert_eq!((s.visible, s.in_flight, s.dead), (0, 0, 1));
        assert_eq!(q.peek("a-dlq").unwrap(), ["poison"]);
    }

    #[tokio::test]
    async fn survives_reopen_and_release_in_flight() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("q.db");
        {
            let q = SqliteQueue::open(&path, 5).unwrap();
            q.send("a", "kept").await.unwrap();
            q.receive("a", 1, Duration::from_secs(3600)).await.unwrap();
        }
        let q = SqliteQueue::open(&path, 5).unwrap();
        assert!(q.receive("a", 1, Duration::from_secs(60)).await.unwrap().is_empty());
        assert_eq!(q.release_in_flight().unwrap(), 1);
        assert_eq!(q.receive("a", 1, Duration::from_secs(60)).await.unwrap()[0].body, "kept");
    }
}
