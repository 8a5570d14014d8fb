//! The `JobStore` port on DynamoDB: one item per job (`id` hash key) holding the state, the
//! record as JSON and its intake time. Compare-and-swap is a conditional write on the state,
//! insert-if-absent a conditional put, so two Lambda invocations racing on one job cannot both
//! advance it. A `by-state` index (state, created) serves "jobs in state S in intake order".

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use latentmint_core::ports::{JobStore, PortError, PortResult};
use latentmint_core::{Job, JobId, JobState};

/// Name of the state index (template.yaml declares it).
pub const STATE_INDEX: &str = "by-state";

/// Job records in a DynamoDB table.
pub struct DynamoJobStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

/// Intake order: milliseconds since the epoch times 1000 plus a per-process counter, so jobs
/// inserted in the same millisecond keep their order.
fn created() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    ms * 1000 + SEQ.fetch_add(1, Ordering::Relaxed) % 1000
}

type Item = HashMap<String, AttributeValue>;

/// Now, in ms since the Unix epoch: when a record was last written (`updated`).
fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// One step of a job's history as the table keeps it: `{state, at}`.
fn step(state: JobState, at: u64) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("state".to_string(), AttributeValue::S(state.as_str().into())),
        ("at".to_string(), AttributeValue::N(at.to_string())),
    ]))
}

fn decode(item: &Item) -> PortResult<(u64, Job)> {
    let body = item
        .get("body")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| PortError::Permanent("job item without body".into()))?;
    let job = serde_json::from_str(body).map_err(|e| PortError::Permanent(format!("corrupt job record: {e}")))?;
    let created = item.get("created").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0);
    Ok((created, job))
}

fn encode(job: &Job) -> PortResult<AttributeValue> {
    serde_json::to_string(job)
        .map(AttributeValue::S)
        .map_err(|e| PortError::Permanent(format!("cannot encode job: {e}")))
}

/// A DynamoDB failure as a port error: a missing table or a refused request is permanent and
/// says what to fix; throttling and server trouble are transient.
pub(crate) fn dynamo_error<E>(
    table: &str,
    what: &str,
    e: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = e.code().unwrap_or_default().to_string();
    let message = format!("DynamoDB {what} on {table}: {}", DisplayErrorContext(&e));
    if code == "ResourceNotFoundException" {
        return PortError::Permanent(format!(
            "DynamoDB table {table} does not exist: deploy the stack (sam deploy) or fix the table name"
        ));
    }
    let status = e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
    let throttled = code.contains("Throttl") || code == "ProvisionedThroughputExceededException";
    if matches!(e, SdkError::ServiceError(_)) && (400..500).contains(&status) && !throttled {
        PortError::Permanent(message)
    } else {
        PortError::Transient(message)
    }
}

impl DynamoJobStore {
    /// Jobs in `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    fn error<E>(&self, what: &str, e: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>) -> PortError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        dynamo_error(&self.table, what, e)
    }

    /// A conditional write: true if written, false if its condition did not hold (another
    /// writer got there first), an error otherwise.
    fn written<T, E>(
        &self,
        what: &str,
        r: Result<T, SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>,
    ) -> PortResult<bool>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match r {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(self.error(what, e)),
        }
    }

    /// Every item, through all pages of a scan (or of the state index query).
    async fn items(&self, state: Option<JobState>) -> PortResult<Vec<Item>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = match state {
                Some(s) => {
                    let r = self
                        .client
                        .query()
                        .table_name(&self.table)
                        .index_name(STATE_INDEX)
                        .key_condition_expression("#s = :s")
                        .expression_attribute_names("#s", "state")
                        .expression_attribute_values(":s", AttributeValue::S(s.as_str().into()))
                        .set_exclusive_start_key(start.take())
                        .send()
                        .await
                        .map_err(|e| self.error("Query", e))?;
                    (r.items().to_vec(), r.last_evaluated_key().cloned())
                }
                None => {
                    let r = self
                        .client
                        .scan()
                        .table_name(&self.table)
                        .set_exclusive_start_key(start.take())
                        .send()
                        .await
                        .map_err(|e| self.error("Scan", e))?;
                    (r.items().to_vec(), r.last_evaluated_key().cloned())
                }
            };
            out.extend(page.0);
            match page.1 {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}

#[async_trait]
impl JobStore for DynamoJobStore {
    async fn insert_if_absent(&self, job: &Job) -> PortResult<bool> {
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("id", AttributeValue::S(job.id().to_string()))
            .item("state", AttributeValue::S(job.state.as_str().into()))
            .item("body", encode(job)?)
            .item("created", AttributeValue::N(created().to_string()))
            .item("updated", AttributeValue::N(now_ms().to_string()))
            .item("history", AttributeValue::L(vec![step(job.state, now_ms())]))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await;
        self.written("PutItem", r)
    }

    async fn get(&self, id: JobId) -> PortResult<Option<Job>> {
        let r = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error("GetItem", e))?;
        r.item().map(|i| decode(i).map(|(_, j)| j)).transpose()
    }

    async fn update(&self, job: &Job, expected: JobState) -> PortResult<bool> {
        let now = now_ms();
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(job.id().to_string()))
            .condition_expression("#s = :expected")
            .expression_attribute_names("#s", "state")
            .expression_attribute_values(":new", AttributeValue::S(job.state.as_str().into()))
            .expression_attribute_values(":expected", AttributeValue::S(expected.as_str().into()))
            .expression_attribute_values(":body", encode(job)?)
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()));
        // A new state is a step of the job's history; a write that keeps the state is not.
        let request = if job.state == expected {
            request.update_expression("SET #s = :new, body = :body, updated = :now")
        } else {
            request
                .update_expression(
                    "SET #s = :new, body = :body, updated = :now, history = list_append(if_not_exists(history, :none), :step)",
                )
                .expression_attribute_values(":none", AttributeValue::L(vec![]))
                .expression_attribute_values(":step", AttributeValue::L(vec![step(job.state, now)]))
        };
        let r = request.send().await;
        self.written("UpdateItem", r)
    }

    async fn list(&self, state: Option<JobState>) -> PortResult<Vec<Job>> {
        let mut jobs = self.items(state).await?.iter().map(decode).collect::<PortResult<Vec<_>>>()?;
        jobs.sort_by_key(|(created, _)| *created);
        Ok(jobs.into_iter().map(|(_, j)| j).collect())
    }

    async fn history(&self, id: JobId) -> PortResult<Vec<(JobState, u64)>> {
        let r = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(id.to_string()))
            .projection_expression("history")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error("GetItem", e))?;
        let steps = r.item().and_then(|i| i.get("history")).and_then(|h| h.as_l().ok()).cloned().unwrap_or_default();
        let mut out = Vec::with_capacity(steps.len());
        for s in steps {
            let Ok(m) = s.as_m() else { continue };
            let state = m.get("state").and_then(|v| v.as_s().ok()).map(|v| v.parse::<JobState>());
            let at = m.get("at").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok());
            if let (Some(Ok(state)), Some(at)) = (state, at) {
                out.push((state, at));
            }
        }
        Ok(out)
    }

    async fn changed_at(&self, state: JobState) -> PortResult<BTreeMap<JobId, u64>> {
        let mut out = BTreeMap::new();
        for item in self.items(Some(state)).await? {
            let id = item.get("id").and_then(|v| v.as_s().ok()).and_then(|s| s.parse::<JobId>().ok());
            let at = item.get("updated").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok());
            // Records written before `updated` was kept have none: left out.
            if let (Some(id), Some(at)) = (id, at) {
                out.insert(id, at);
            }
        }
        Ok(out)
    }

    async fn counts(&self) -> PortResult<BTreeMap<JobState, u64>> {
        // Only the state attribute travels: dashboards poll this.
        let mut out = BTreeMap::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .projection_expression("#s")
                .expression_attribute_names("#s", "state")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.error("Scan", e))?;
            for item in page.items() {
                let s = item.get("state").and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or_default();
                let state: JobState = s.parse().map_err(PortError::Permanent)?;
                *out.entry(state).or_insert(0) += 1;
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }
}
