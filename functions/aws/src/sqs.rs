//! The `Queue` port on Amazon SQS: the stage queues of the SAM stack (`template.yaml`), each
//! with a redrive policy to its `-dlq` queue. SQS already has the semantics the port describes
//! (at-least-once delivery, visibility timeout, receive count, dead-lettering after
//! `maxReceiveCount`), so this adapter is a translation, not a re-implementation.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use latentmint_core::ports::{DEAD_LETTER_SUFFIX, Delivery, PortError, PortResult, Queue, QueueStats, dead_letters};
use sha2::Digest;

/// SQS receives at most 10 messages per call.
const SQS_MAX_BATCH: usize = 10;

/// Stage queues on SQS, named `<prefix><queue>` (the stack names them
/// `latentmint-<stage>-<queue>`).
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    prefix: String,
    urls: Mutex<HashMap<String, String>>,
    /// FIFO queues by base name, with the message group their messages go to.
    fifo: HashMap<String, String>,
}

impl SqsQueue {
    /// Queues named `<prefix><queue>` through `client`.
    pub fn new(client: aws_sdk_sqs::Client, prefix: impl Into<String>) -> Self {
        Self { client, prefix: prefix.into(), urls: Mutex::new(HashMap::new()), fifo: HashMap::new() }
    }

    /// `queue` (and its dead-letter queue) are FIFO queues, named `<prefix><queue>.fifo`, and
    /// every message sent to it joins message group `group`: the stack's mint queue, with the
    /// wallet as group, so one wallet's mints are processed one at a time in order.
    pub fn with_fifo(mut self, queue: impl Into<String>, group: impl Into<String>) -> Self {
        self.fifo.insert(queue.into(), group.into());
        self
    }

    /// The SQS name of `queue` and, for a FIFO queue, its message group.
    fn name(&self, queue: &str) -> (String, Option<&str>) {
        let base = queue.strip_suffix(DEAD_LETTER_SUFFIX).unwrap_or(queue);
        match self.fifo.get(base) {
            Some(group) => (format!("{}{queue}.fifo", self.prefix), Some(group.as_str())),
            None => (format!("{}{queue}", self.prefix), None),
        }
    }

    fn error<E>(&self, what: &str, queue: &str, e: SdkError<E, aws_sdk_sqs::config::http::HttpResponse>) -> PortError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let name = self.name(queue).0;
        let code = e.code().unwrap_or_default().to_string();
        if code.contains("NonExistentQueue") || code.contains("QueueDoesNotExist") {
            return PortError::Permanent(format!(
                "SQS queue {name} does not exist: deploy the stack (sam deploy) or fix the queue prefix `{}`",
                self.prefix
            ));
        }
        let status = e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
        let message = format!("SQS {what} on {name}: {}", DisplayErrorContext(&e));
        // Throttling, 5xx and transport trouble pass; anything else is a bug or a permission.
        if matches!(e, SdkError::ServiceError(_)) && (400..500).contains(&status) && !code.contains("Throttl") {
            PortError::Permanent(message)
        } else {
            PortError::Transient(message)
        }
    }

    async fn url(&self, queue: &str) -> PortResult<String> {
        if let Some(u) = self.urls.lock().ok().and_then(|m| m.get(queue).cloned()) {
            return Ok(u);
        }
        let out = self
            .client
            .get_queue_url()
            .queue_name(self.name(queue).0)
            .send()
            .await
            .map_err(|e| self.error("GetQueueUrl", queue, e))?;
        let url = out.queue_url().unwrap_or_default().to_string();
        if let Ok(mut m) = self.urls.lock() {
            m.insert(queue.to_string(), url.clone());
        }
        Ok(url)
    }

    async fn depth(&self, queue: &str) -> PortResult<(u64, u64)> {
        let url = self.url(queue).await?;
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| self.error("GetQueueAttributes", queue, e))?;
        let get = |k: QueueAttributeName| -> u64 {
            out.attributes().and_then(|a| a.get(&k)).and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        Ok((
            get(QueueAttributeName::ApproximateNumberOfMessages),
            get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                + get(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        ))
    }
}

/// Whole seconds for SQS (it counts in seconds), rounding up so a short wait is never zero.
fn secs(d: Duration) -> i32 {
    d.as_secs_f64().ceil().min(43_200.0) as i32
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, queue: &str, body: &str) -> PortResult<()> {
        let url = self.url(queue).await?;
        let mut send = self.client.send_message().queue_url(url).message_body(body);
        if let Some(group) = self.name(queue).1 {
            // Deduplicated by content: the same stage message twice within SQS's five-minute
            // window is one message (a re-send after a crash, not new work).
            let dedup = hex::encode(sha2::Sha256::digest(body.as_bytes()));
            send = send.message_group_id(group).message_deduplication_id(dedup);
        }
        send.send().await.map_err(|e| self.error("SendMessage", queue, e))?;
        Ok(())
    }

    async fn receive(&self, queue: &str, max: usize, visibility: Duration) -> PortResult<Vec<Delivery>> {
        let url = self.url(queue).await?;
        let out = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.clamp(1, SQS_MAX_BATCH) as i32)
            .visibility_timeout(secs(visibility))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| self.error("ReceiveMessage", queue, e))?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                let receive_count = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1);
                Some(Delivery {
                    message_id: m.message_id()?.to_string(),
                    receipt: m.receipt_handle()?.to_string(),
                    body: m.body().unwrap_or_default().to_string(),
                    receive_count,
                })
            })
            .collect())
    }

    async fn ack(&self, queue: &str, receipt: &str) -> PortResult<()> {
        let url = self.url(queue).await?;
        self.client
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| self.error("DeleteMessage", queue, e))?;
        Ok(())
    }

    async fn nack(&self, queue: &str, receipt: &str, delay: Duration) -> PortResult<()> {
        let url = self.url(queue).await?;
        self.client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt)
            .visibility_timeout(secs(delay))
            .send()
            .await
            .map_err(|e| self.error("ChangeMessageVisibility", queue, e))?;
        Ok(())
    }

    async fn stats(&self, queue: &str) -> PortResult<QueueStats> {
        let (visible, in_flight) = self.depth(queue).await?;
        let (dead_visible, dead_in_flight) = self.depth(&dead_letters(queue)).await?;
        Ok(QueueStats { visible, in_flight, dead: dead_visible + dead_in_flight })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(secs(Duration::ZERO), 0);
        assert_eq!(secs(Duration::from_millis(1)), 1);
        assert_eq!(secs(Duration::from_millis(1500)), 2);
        assert_eq!(secs(Duration::from_secs(999_999)), 43_200);
    }
}
