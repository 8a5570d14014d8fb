//! The intake function: a collection file becomes jobs in the job table and messages on the
//! generate queue, through the same [`latentmint_stages::intake::submit`] the local runner
//! calls. The file comes over HTTP (API Gateway HTTP API, IAM-signed: [`handle_http`]), or is
//! dropped under `collections/` in the stack's bucket, or named by a schedule
//! ([`handle_file`]). A shop's webhook sends single orders, HMAC-signed, against such a file
//! ([`handle_webhook`]).
//!
//! `POST` a collection file (TOML, or the same structure as JSON with `Content-Type:
//! application/json`). Answers `202` with the job ids; `400` naming the field and the fix;
//! `413` when the file or its batch is too large; `503` when the table or queue did not answer
//! (send the same body again: job ids are hashes of the request, so nothing is duplicated).
//!
//! The stack decides where tokens are minted: a collection that names another chain or
//! contract is refused rather than silently minted elsewhere. What the stack sets for every
//! collection when it is deployed (living NFTs, the mint batch) and a file asks otherwise is
//! named in the answer's `not_used`, with the parameters that would make it so. Local-only
//! settings (model folder, RPC URLs, IPFS API) are ignored here; the stack's functions have
//! their own.

use std::sync::Arc;

use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::http::{HeaderValue, Method, header};
use base64::Engine as _;
use latentmint_aws::{SecretError, SecretVersions, SharedSecret};
use latentmint_core::collection::{Collection, CollectionFile, EditionsSection, LivingSection};
use latentmint_core::ports::BlobStore;
use latentmint_core::{EvmAddress, FieldError};
use latentmint_stages::intake::{Intake, submit};
use latentmint_stages::{StageError, ports};
use serde::Serialize;
use tracing::{error, info, warn};

/// Largest request body accepted: a collection file, not a data upload.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Most jobs one request may create; each is a conditional write and a queue message inside
/// the function's timeout. Larger batches: split the file, or `latentmint run`.
pub const MAX_JOBS: usize = 500;

/// Where and how this stack mints, which a submitted collection must agree with.
#[derive(Debug, Clone, PartialEq)]
pub struct StackChain {
    /// Chain id the mint function signs for.
    pub chain_id: u64,
    /// The collection contract the mint function calls.
    pub contract: EvmAddress,
    /// The editions the mint function makes (ERC-1155); none: ERC-721 tokens.
    pub editions: Option<EditionsSection>,
    /// How the live function evolves tokens (`LivingEnabled` and the `Living*` parameters);
    /// none: tokens never evolve.
    pub living: Option<LivingSection>,
    /// The most jobs the mint function mints in one transaction (`MintBatchSize`).
    pub mint_batch: u32,
}

/// A setting of the file that the stack decides for every collection, and that this stack
/// has otherwise: the jobs are accepted and made the stack's way.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotUsed {
    /// The field of the file.
    pub field: String,
    /// What the file asks, and what the stack does instead.
    pub why: String,
    /// How to have it the file's way.
    pub fix: String,
}

/// What a submission did (the `202` body).
#[derive(Debug, Serialize)]
pub struct Accepted {
    /// Collection name.
    pub collection: String,
    /// Jobs in the file.
    pub jobs: usize,
    /// New jobs, queued for generation.
    pub queued: usize,
    /// Known jobs not yet settled, sent again to the stage each waits for (its message may
    /// have been lost, or dead-lettered when its retries ran out): how a stalled batch resumes.
    pub requeued: usize,
    /// Known jobs no stage moves on (minted, rejected, failed, or awaiting an operator's
    /// decision): left as they are.
    pub unchanged: usize,
    /// Every job id of the file.
    pub job_ids: Vec<String>,
    /// Settings of the file this stack does not follow (it decides them when deployed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_used: Vec<NotUsed>,
}

/// Why a submission was refused or stopped: what is wrong, and where and how to fix it when a
/// field is at fault. `status` is the HTTP status it answers with.
#[derive(Debug, Serialize)]
pub struct Refused {
    /// HTTP status: 400/413 for the file, 500/503 for the stack.
    #[serde(skip)]
    pub status: i64,
    /// What is wrong.
    pub error: String,
    /// The field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Refused {
    fn new(status: i64, error: impl Into<String>) -> Self {
        Self { status, error: error.into(), field: None, fix: None }
    }

    fn field(e: FieldError) -> Self {
        Self { status: 400, error: e.to_string(), field: Some(e.field), fix: Some(e.fix) }
    }

    /// Worth trying again with the same file (the stack did not answer).
    pub fn is_transient(&self) -> bool {
        self.status == 503
    }
}

fn json(status: i64, body: &impl Serialize) -> ApiGatewayV2httpResponse {
    let mut r = ApiGatewayV2httpResponse::default();
    r.status_code = status;
    r.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.body = Some(Body::Text(serde_json::to_string(body).unwrap_or_else(|_| "{}".into())));
    r
}

fn answer(r: Result<Accepted, Refused>) -> ApiGatewayV2httpResponse {
    match r {
        Ok(a) => json(202, &a),
        Err(e) => json(e.status, &e),
    }
}

/// Reads a collection file's bytes: size and encoding checked.
fn text_of(bytes: Vec<u8>) -> Result<String, Refused> {
    if bytes.len() > MAX_BODY_BYTES {
        let n = bytes.len();
        return Err(Refused::new(413, format!("the file has {n} bytes; a collection file may have {MAX_BODY_BYTES}")));
    }
    let text = String::from_utf8(bytes).map_err(|_| Refused::new(400, "the file is not UTF-8 text"))?;
    if text.trim().is_empty() {
        return Err(Refused::new(
            400,
            "the file is empty; send a collection file (TOML, or JSON with Content-Type: application/json)",
        ));
    }
    Ok(text)
}

/// Parses and validates a collection file into a collection this stack may mint.
fn collection(text: &str, is_json: bool, stack: &StackChain) -> Result<Collection, Refused> {
    let file: CollectionFile = if is_json {
        serde_json::from_str(text).map_err(|e| Refused::new(400, format!("the JSON body is not a collection: {e}")))?
    } else {
        toml::from_str(text).map_err(|e| {
            Refused::new(400, format!("the body is not a collection file: {}", e.to_string().trim_end()))
        })?
    };
    // Counted from the counts, before anything is checked or expanded: a small body can ask for
    // millions of jobs.
    let total = file.job_count();
    if total > MAX_JOBS as u64 {
        return Err(Refused {
            status: 413,
            error: format!("the collection asks for {total} jobs; one request may create {MAX_JOBS}"),
            field: Some("prompts".into()),
            fix: Some(format!(
                "split the drop into collections of at most {MAX_JOBS} jobs, each with its own collection.name (a job's place is counted within its collection), or mint it with `latentmint run`"
            )),
        });
    }
    // Whether the file names a chain at all: validation fills in the local dev chain otherwise.
    let names_chain = file.chain.network.is_some() || file.chain.chain_id.is_some();
    let collection = Collection::validate(file).map_err(Refused::field)?;
    let chain = &collection.file.chain;
    if names_chain && chain.id() != stack.chain_id {
        return Err(Refused::field(FieldError::new(
            if chain.network.is_some() { "chain.network" } else { "chain.chain_id" },
            format!("names chain {}, but this stack mints on chain {}", chain.id(), stack.chain_id),
            "remove it (the stack decides) or submit to the stack of that chain",
        )));
    }
    if let Some(c) = collection.contract.filter(|c| *c != stack.contract) {
        return Err(Refused::field(FieldError::new(
            "chain.contract",
            format!("is {c}, but this stack mints with {}", stack.contract),
            "remove it (the stack decides) or submit to the stack of that contract",
        )));
    }
    match (collection.file.editions, stack.editions) {
        (Some(_), None) => {
            return Err(Refused::field(FieldError::new(
                "editions",
                "asks for ERC-1155 editions, but this stack mints one ERC-721 token per image",
                "remove [editions], or submit to a stack deployed with EditionCopies",
            )));
        }
        (Some(asked), Some(minted)) if asked != minted => {
            return Err(Refused::field(FieldError::new(
                "editions",
                format!(
                    "asks for {} copies (cap {}), but this stack mints {} copies (cap {})",
                    asked.copies,
                    cap(asked),
                    minted.copies,
                    cap(minted)
                ),
                "remove [editions] (the stack decides) or submit to the stack of those editions",
            )));
        }
        _ => {}
    }
    Ok(collection)
}

fn cap(e: EditionsSection) -> String {
    e.max_supply.map_or_else(|| "none".to_string(), |m| m.to_string())
}

/// What the file asks that the stack decides otherwise. Unlike the chain, the contract and
/// the editions (what a token is, fixed once minted), these can be changed later by deploying
/// the stack again, so they are named rather than refused.
fn not_used(collection: &Collection, stack: &StackChain) -> Vec<NotUsed> {
    let mut out = Vec::new();
    match (&collection.file.living, &stack.living) {
        (Some(_), None) => out.push(NotUsed {
            field: "living".into(),
            why: "asks for living NFTs, but this stack's live function is off: its tokens do not evolve".into(),
            fix: "deploy the stack with LivingEnabled=true and the Living* parameters of this [living]".into(),
        }),
        (Some(asked), Some(runs)) if asked != runs => out.push(NotUsed {
            field: "living".into(),
            why: format!("asks for {}, but this stack evolves every token with {}", living(asked), living(runs)),
            fix: "remove [living] (the stack decides), or deploy the stack with these Living* parameters".into(),
        }),
        _ => {}
    }
    let batch = collection.file.chain.batch_size;
    if batch > 1 && batch != stack.mint_batch {
        out.push(NotUsed {
            field: "chain.batch_size".into(),
            why: match stack.mint_batch {
                1 => format!("is {batch}, but this stack mints each job alone (MintBatchSize=1)"),
                n => format!("is {batch}, but this stack mints at most {n} jobs per transaction (MintBatchSize={n})"),
            },
            fix: "remove it (the stack decides), or deploy the stack with MintBatchSize (1 to 10)".into(),
        });
    }
    out
}

/// A living section as the template's parameters name its settings.
fn living(l: &LivingSection) -> String {
    let on = l.oracle.as_ref().map_or_else(|| "transfers".to_string(), |o| format!("the feed {}", o.feed));
    format!(
        "LivingStrength={} LivingPrompt={:?} LivingMaxGenerations={} (evolving on {on})",
        l.strength, l.prompt, l.max_generations
    )
}

/// Validates a collection file (TOML, or JSON) against the stack and submits its jobs through
/// the same `intake::submit` as the local runner.
pub async fn submit_text(
    ports: &ports::Intake,
    stack: &StackChain,
    text: &str,
    is_json: bool,
) -> Result<Accepted, Refused> {
    let collection = collection(text, is_json, stack)?;
    let not_used = not_used(&collection, stack);
    let specs = collection.jobs().map_err(Refused::field)?;
    let name = collection.file.collection.name.clone();
    let mut accepted = Accepted {
        collection: name.clone(),
        jobs: specs.len(),
        queued: 0,
        requeued: 0,
        unchanged: 0,
        job_ids: specs.iter().map(|s| s.id.to_string()).collect(),
        not_used,
    };
    for n in &accepted.not_used {
        warn!(collection = %name, field = %n.field, fix = %n.fix, "not used: {}", n.why);
    }
    for spec in specs {
        let id = spec.id;
        match submit(ports, spec).await {
            Ok(Intake::Queued) => accepted.queued += 1,
            Ok(Intake::Requeued(_)) => accepted.requeued += 1,
            Ok(Intake::Known(_)) => accepted.unchanged += 1,
            Err(e) => {
                // Transient (throttled, unreachable): the caller retries. Anything else is the
                // stack's fault, not the request's.
                let status = if matches!(e, StageError::Retry(_)) { 503 } else { 500 };
                warn!(collection = %name, job = %id.short(), "intake stopped: {e}");
                return Err(Refused::new(
                    status,
                    format!(
                        "recording job {id} failed ({e}); send the same file again: jobs already recorded are not duplicated"
                    ),
                ));
            }
        }
    }
    info!(collection = %name, jobs = accepted.jobs, queued = accepted.queued, "collection submitted");
    Ok(accepted)
}

/// Handles one HTTP API request.
pub async fn handle_http(
    ports: &ports::Intake,
    stack: &StackChain,
    req: ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    if req.request_context.http.method != Method::POST {
        let mut r = json(405, &Refused::new(405, "POST a collection file to submit its jobs"));
        r.headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let raw = req.body.as_deref().unwrap_or_default();
    let bytes = if req.is_base64_encoded {
        match base64::engine::general_purpose::STANDARD.decode(raw) {
            Ok(b) => b,
            Err(e) => {
                return answer(Err(Refused::new(400, format!("the body is marked base64 but does not decode: {e}"))));
            }
        }
    } else {
        raw.as_bytes().to_vec()
    };
    let is_json = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
    match text_of(bytes) {
        Ok(text) => answer(submit_text(ports, stack, &text, is_json).await),
        Err(e) => answer(Err(e)),
    }
}

/// Submits the collection file stored at `key` (a file dropped under `collections/` in the
/// stack's bucket, or the one a schedule names): TOML, or JSON when the key ends in `.json`.
/// A file the stack cannot read or reach is an error (the invocation is retried); a file that
/// is wrong is answered with the refusal, logged, and not retried (it would fail again).
pub async fn handle_file(
    ports: &ports::Intake,
    stack: &StackChain,
    files: &dyn BlobStore,
    key: &str,
) -> Result<serde_json::Value, String> {
    let bytes = files.get(key).await.map_err(|e| format!("collection file {key}: {e}"))?;
    let result = match text_of(bytes) {
        Ok(text) => submit_text(ports, stack, &text, key.ends_with(".json")).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(a) => serde_json::to_value(&a).map_err(|e| e.to_string()),
        Err(e) if e.is_transient() => Err(e.error),
        Err(e) => {
            error!(file = key, error = %e.error, field = ?e.field, fix = ?e.fix, "collection file refused");
            serde_json::to_value(&e).map_err(|e| e.to_string())
        }
    }
}

pub use latentmint_core::webhook::{DELIVERY_HEADER, SIGNATURE_HEADER};
/// Largest webhook body accepted.
pub const MAX_WEBHOOK_BYTES: usize = 64 * 1024;

/// What a shop's webhook sends: one order, one token.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Order {
    /// The shop's id of the order: the job's idempotency key.
    order_id: String,
    /// The buyer's prompt.
    prompt: String,
    /// The buyer's wallet (EIP-55); the collection's recipient when absent.
    #[serde(default)]
    recipient: Option<String>,
}

/// The `202` body of a webhook (and, with `replayed`, the `200` of a delivery sent again).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct OrderAccepted {
    job_id: String,
    state: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    replayed: bool,
}

/// A delivery's first answer, kept under its collection and id
/// (`webhooks/deliveries/<collection>/<id>.json` in the bucket).
#[derive(Debug, Serialize, serde::Deserialize)]
struct Delivered {
    /// SHA-256 of the body it came with: the same id with another body is refused.
    body_sha256: String,
    answer: OrderAccepted,
}

/// Where the HMAC keys of the shops' webhooks come from: the stack's Secrets Manager secret
/// ([`SharedSecret`]), or fixed versions ([`SecretVersions`], in tests and local tools).
#[async_trait::async_trait]
pub trait WebhookKeys: Send + Sync {
    /// The versions a signature may match, the current one first.
    async fn versions(&self) -> Result<Arc<SecretVersions>, SecretError>;
    /// The versions read again after a signature matched none of them (the secret may have
    /// just been rotated); `None` when they were read too recently or did not change.
    async fn refresh(&self) -> Result<Option<Arc<SecretVersions>>, SecretError>;
}

#[async_trait::async_trait]
impl WebhookKeys for SharedSecret {
    async fn versions(&self) -> Result<Arc<SecretVersions>, SecretError> {
        SharedSecret::versions(self).await
    }
    async fn refresh(&self) -> Result<Option<Arc<SecretVersions>>, SecretError> {
        SharedSecret::refresh(self).await
    }
}

#[async_trait::async_trait]
impl WebhookKeys for SecretVersions {
    async fn versions(&self) -> Result<Arc<SecretVersions>, SecretError> {
        Ok(Arc::new(self.clone()))
    }
    async fn refresh(&self) -> Result<Option<Arc<SecretVersions>>, SecretError> {
        Ok(None)
    }
}

const SIGNATURE_FIX: &str = "sign `<t>\\n<METHOD>\\n<path>\\n<body>` with the collection's key (`latentmint webhook-key`) as HMAC-SHA256 and send `x-latentmint-signature: t=<unix seconds>,v1=<hex>`; see docs/webhooks.md";

/// Checks the request's signature against the collection's keys under the stack's secret,
/// reading the secret again once if it matches none (a rotation).
async fn check_signature(
    keys: &dyn WebhookKeys,
    slug: &str,
    path: &str,
    body: &[u8],
    header: Option<&str>,
) -> Result<(), Refused> {
    use latentmint_core::webhook::{Signature, SignatureError};
    let refused =
        |e: SignatureError| Refused { status: 401, error: e.to_string(), field: None, fix: Some(SIGNATURE_FIX.into()) };
    let signature = Signature::parse(header).map_err(refused)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let unreadable = |e: SecretError| {
        error!(error = %e, "the webhook secret could not be read");
        Refused::new(503, "the stack could not read its webhook secret; nothing was recorded, send the order again")
    };
    let check = |v: &SecretVersions| signature.check(now, v.iter(), slug, "POST", path, body);
    match check(&*keys.versions().await.map_err(unreadable)?) {
        Ok(()) => return Ok(()),
        Err(SignatureError::Mismatch) => {}
        Err(e) => return Err(refused(e)),
    }
    if let Some(fresh) = keys.refresh().await.map_err(unreadable)?
        && check(&fresh).is_ok()
    {
        return Ok(());
    }
    Err(refused(SignatureError::Mismatch))
}

/// Handles `POST /webhooks/{collection}`: a signed order becomes one job of the collection
/// whose file is `collections/{collection}.toml` in the stack's bucket. The order id is the
/// idempotency key, so a shop retrying its webhook creates nothing twice. `keys` is `None` when
/// the stack has no webhook secret: every order is refused.
pub async fn handle_webhook(
    ports: &ports::Intake,
    stack: &StackChain,
    files: &dyn BlobStore,
    keys: Option<&dyn WebhookKeys>,
    req: ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    answer_order(webhook(ports, stack, files, keys, req).await)
}

fn answer_order(r: Result<OrderAccepted, Refused>) -> ApiGatewayV2httpResponse {
    match r {
        Ok(a) if a.replayed => json(200, &a),
        Ok(a) => json(202, &a),
        Err(e) => json(e.status, &e),
    }
}

async fn webhook(
    ports: &ports::Intake,
    stack: &StackChain,
    files: &dyn BlobStore,
    keys: Option<&dyn WebhookKeys>,
    req: ApiGatewayV2httpRequest,
) -> Result<OrderAccepted, Refused> {
    if req.request_context.http.method != Method::POST {
        return Err(Refused::new(405, "POST an order to this webhook"));
    }
    let keys = keys.ok_or_else(|| {
        Refused::new(
            404,
            "webhooks are not configured on this stack: deploy it with the WebhookSecretArn parameter \
             (a Secrets Manager secret holding the shops' signing secret)",
        )
    })?;
    let raw = req.body.as_deref().unwrap_or_default();
    let body = if req.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|e| Refused::new(400, format!("the body is marked base64 but does not decode: {e}")))?
    } else {
        raw.as_bytes().to_vec()
    };
    if body.len() > MAX_WEBHOOK_BYTES {
        return Err(Refused::new(413, format!("an order may have {MAX_WEBHOOK_BYTES} bytes")));
    }
    let slug = req.path_parameters.get("collection").map(String::as_str).unwrap_or_default();
    if slug.is_empty() || !slug.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        return Err(Refused::new(
            400,
            format!("collection `{slug}` in the path is not a collection file's name (a-z, 0-9, -)"),
        ));
    }
    // The path the shop signed: it names the collection, so a signature holds for one only.
    let path = format!("/webhooks/{slug}");
    let header = req.headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    check_signature(keys, slug, &path, &body, header).await?;
    let delivery = req.headers.get(DELIVERY_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !latentmint_core::webhook::valid_delivery_id(delivery) {
        return Err(Refused {
            status: 400,
            error: format!("{DELIVERY_HEADER} is missing or not a delivery id"),
            field: None,
            fix: Some(
                "send the shop's id of this delivery: 1 to 128 letters, digits or -_.: (the same id on a retry)".into(),
            ),
        });
    }
    // A delivery answered before is answered again, never processed twice.
    let record = format!("webhooks/deliveries/{slug}/{delivery}.json");
    let body_sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body));
    match files.get(&record).await {
        Ok(bytes) => {
            let before: Delivered = serde_json::from_slice(&bytes)
                .map_err(|e| Refused::new(500, format!("the record of delivery {delivery} is unreadable: {e}")))?;
            if before.body_sha256 != body_sha256 {
                return Err(Refused::new(
                    409,
                    format!(
                        "delivery {delivery} was received before with another body; send a new order under a new delivery id"
                    ),
                ));
            }
            info!(collection = slug, delivery, "a delivery received again: its first answer, nothing done");
            return Ok(OrderAccepted { replayed: true, ..before.answer });
        }
        Err(latentmint_core::PortError::NotFound(_)) => {}
        Err(e) => return Err(Refused::new(503, format!("reading the record of delivery {delivery}: {e}"))),
    }
    let order: Order = serde_json::from_slice(&body).map_err(|e| Refused {
        status: 400,
        error: format!("the body is not an order: {e}"),
        field: None,
        fix: Some(
            "send {\"order_id\": \"...\", \"prompt\": \"...\", \"recipient\": \"0x...\"} (recipient optional)".into(),
        ),
    })?;
    let recipient = order
        .recipient
        .as_deref()
        .map(|r| {
            EvmAddress::parse_checksummed(r).map_err(|e| {
                Refused::field(FieldError::new(
                    "recipient",
                    e.to_string(),
                    "send the wallet address with its EIP-55 checksum",
                ))
            })
        })
        .transpose()?;
    let key = format!("collections/{slug}.toml");
    let bytes = files.get(&key).await.map_err(|e| match e {
        latentmint_core::PortError::NotFound(_) => Refused::new(
            404,
            format!("no collection file {key} in the stack's bucket; drop one there (it is submitted as a batch too)"),
        ),
        other => Refused::new(503, format!("reading {key}: {other}")),
    })?;
    let collection = collection(&text_of(bytes)?, false, stack)?;
    let spec = collection.job_for_request(&order.order_id, &order.prompt, recipient).map_err(Refused::field)?;
    let job_id = spec.id.to_string();
    let state = match submit(ports, spec).await {
        Ok(Intake::Queued) => "queued",
        Ok(Intake::Requeued(_)) => "requeued",
        // The job's own state: what the shop can tell its buyer (`minted`, `awaiting_review`, ...).
        Ok(Intake::Known(state)) => state.as_str(),
        Err(e) => {
            let status = if matches!(e, StageError::Retry(_)) { 503 } else { 500 };
            return Err(Refused::new(status, format!("recording the order failed ({e}); the shop's retry is safe")));
        }
    };
    info!(collection = slug, job = %job_id, state, delivery, "order received");
    let answer = OrderAccepted { job_id, state: state.to_string(), replayed: false };
    // Kept after the job is recorded: a record lost here only means a replay is processed
    // again, and the order id makes that create nothing twice.
    let kept = serde_json::to_vec(&Delivered { body_sha256, answer: answer.clone() }).unwrap_or_default();
    if let Err(e) = files.put(&record, kept).await {
        warn!(collection = slug, delivery, "the delivery's answer could not be kept: {e}");
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use latentmint_core::JobState;
    use latentmint_core::ports::{JobStore, Queue};
    use latentmint_embedded::{SqliteJobStore, SqliteQueue};

    use super::*;

    const NEON: &str = include_str!("../../../examples/neon-shapes.toml");

    struct Rig {
        _dir: tempfile::TempDir,
        queue: Arc<SqliteQueue>,
        jobs: Arc<SqliteJobStore>,
        ports: ports::Intake,
    }

    fn rig() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let queue = Arc::new(SqliteQueue::open(&dir.path().join("q.db"), 5).unwrap());
        let jobs = Arc::new(SqliteJobStore::open(&dir.path().join("jobs.db")).unwrap());
        let ports = ports::Intake { queue: queue.clone(), jobs: jobs.clone() };
        Rig { _dir: dir, queue, jobs, ports }
    }

    /// The example collection names chain 412346 and no contract.
    fn stack() -> StackChain {
        StackChain {
            chain_id: 412_346,
            contract: EvmAddress::from_bytes([0x11; 20]),
            editions: None,
            living: None,
            mint_batch: 1,
        }
    }

    /// A request as API Gateway's HTTP API delivers it (payload format 2.0).
    fn request(method: &str, content_type: &str, body: &str, base64: bool) -> ApiGatewayV2httpRequest {
        serde_json::from_value(serde_json::json!({
            "version": "2.0",
            "routeKey": "POST /collections",
            "rawPath": "/collections",
            "rawQueryString": "",
            "headers": { "content-type": content_type },
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "api",
                "domainName": "api.example",
                "requestId": "req",
                "routeKey": "POST /collections",
                "stage": "$default",
                "time": "25/Nov/2026:18:00:00 +0000",
                "timeEpoch": 1_795_629_600_000_i64,
                "http": { "method": method, "path": "/collections", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test" }
            },
            "body": body,
            "isBase64Encoded": base64
        }))
        .expect("an HTTP API v2 payload")
    }

    fn body(r: &ApiGatewayV2httpResponse) -> serde_json::Value {
        match &r.body {
            Some(Body::Text(t)) => serde_json::from_str(t).expect("JSON body"),
            other => panic!("no text body: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_collection_becomes_recorded_jobs_and_generate_messages() {
        let r = rig();
        let resp = handle_http(&r.ports, &stack(), request("POST", "application/toml", NEON, false)).await;
        assert_eq!(resp.status_code, 202, "{:?}", resp.body);
        let b = body(&resp);
        assert_eq!((b["jobs"].as_u64(), b["queued"].as_u64()), (Some(8), Some(8)), "{b}");
        let ids: Vec<String> = serde_json::from_value(b["job_ids"].clone()).unwrap();
        let queued = r.jobs.list(Some(JobState::Queued)).await.unwrap();
        let mut recorded: Vec<String> = queued.iter().map(|j| j.id().to_string()).collect();
        let mut want = ids.clone();
        recorded.sort();
        want.sort();
        assert_eq!(recorded, want, "every job id answered is recorded, and no other");
        let messages = r.queue.receive("generate", 10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(messages.len(), 8, "one generate message per job");
    }

    #[tokio::test]
    async fn the_same_body_again_duplicates_nothing() {
        let r = rig();
        let req = || request("POST", "text/plain", NEON, false);
        assert_eq!(handle_http(&r.ports, &stack(), req()).await.status_code, 202);
        let again = handle_http(&r.ports, &stack(), req()).await;
        let b = body(&again);
        assert_eq!((b["queued"].as_u64(), b["requeued"].as_u64()), (Some(0), Some(8)), "{b}");
        assert_eq!(r.jobs.list(None).await.unwrap().len(), 8, "still eight jobs");
    }

    #[tokio::test]
    async fn json_bodies_and_base64_encoding_are_read() {
        let r = rig();
        let value: serde_json::Value = toml::from_str(NEON).unwrap();
        let encoded = base64::engine::general_purpose::STANDARD.encode(value.to_string());
        let resp = handle_http(&r.ports, &stack(), request("POST", "application/json", &encoded, true)).await;
        assert_eq!(resp.status_code, 202, "{:?}", resp.body);
        assert_eq!(body(&resp)["jobs"].as_u64(), Some(8));
    }

    /// The example collection as editions of `copies` (its `[living]` removed: living NFTs are ERC-721).
    fn with_editions(copies: u64) -> String {
        let (start, end) = (NEON.find("[living]").unwrap(), NEON.find("[[traits]]").unwrap());
        format!("{}[editions]\ncopies = {copies}\n\n{}", &NEON[..start], &NEON[end..])
    }

    #[tokio::test]
    async fn a_stack_of_editions_takes_collections_that_agree_with_it() {
        let r = rig();
        let editions = StackChain { editions: Some(EditionsSection { copies: 5, max_supply: None }), ..stack() };
        let resp =
            handle_http(&r.ports, &editions, request("POST", "application/toml", &with_editions(5), false)).await;
        assert_eq!(resp.status_code, 202, "{:?}", resp.body);
        // No [editions]: the stack decides, as for the chain and the contract.
        let (start, end) = (NEON.find("[living]").unwrap(), NEON.find("[[traits]]").unwrap());
        let plain = format!("{}{}", &NEON[..start], &NEON[end..]);
        let resp = handle_http(&r.ports, &editions, request("POST", "application/toml", &plain, false)).await;
        assert_eq!(resp.status_code, 202, "{:?}", resp.body);
    }

    /// The example's `[living]` as the stack's `Living*` parameters would give it.
    fn neon_living() -> LivingSection {
        Collection::from_toml("neon.toml", NEON).unwrap().file.living.expect("the example is living")
    }

    #[tokio::test]
    async fn what_the_stack_decides_otherwise_is_named_and_the_jobs_are_taken() {
        let r = rig();
        let not_used = |resp: &ApiGatewayV2httpResponse| {
            assert_eq!(resp.status_code, 202, "{:?}", resp.body);
            let b = body(resp);
            let list = b["not_used"].as_array().cloned().unwrap_or_default();
            list.iter()
                .map(|n| (n["field"].as_str().unwrap().to_string(), format!("{}: {}", n["why"], n["fix"])))
                .collect::<Vec<_>>()
        };
        let post = |text: &str| request("POST", "application/toml", text, false);

        // The example asks for living NFTs; the default stack's live function is off.
        let off = not_used(&handle_http(&r.ports, &stack(), post(NEON)).await);
        assert_eq!(off.len(), 1, "{off:?}");
        assert_eq!(off[0].0, "living");
        assert!(off[0].1.contains("do not evolve") && off[0].1.contains("LivingEnabled=true"), "{off:?}");
        assert_eq!(r.jobs.list(None).await.unwrap().len(), 8, "the jobs are taken all the same");

        // A stack that evolves tokens the file's way: nothing to say.
        let living = StackChain { living: Some(neon_living()), ..stack() };
        assert_eq!(not_used(&handle_http(&r.ports, &living, post(NEON)).await), vec![]);

        // Another way: the stack's settings are named, as the template's parameters.
        let other = StackChain { living: Some(LivingSection { strength: 0.25, ..neon_living() }), ..stack() };
        let differs = not_used(&handle_http(&r.ports, &other, post(NEON)).await);
        assert_eq!(differs.len(), 1, "{differs:?}");
        assert!(differs[0].1.contains("LivingStrength=0.25"), "{differs:?}");

        // A batch size the stack does not mint with (a living collection mints alone).
        let (start, end) = (NEON.find("[living]").unwrap(), NEON.find("[[traits]]").unwrap());
        let batched = format!("{}{}", &NEON[..start], &NEON[end..])
            .replace("chain_id = 412346", "chain_id = 412346\nbatch_size = 10");
        let alone = not_used(&handle_http(&r.ports, &stack(), post(&batched)).await);
        assert_eq!(alone.len(), 1, "{alone:?}");
        assert_eq!(alone[0].0, "chain.batch_size");
        assert!(alone[0].1.contains("each job alone (MintBatchSize=1)"), "{alone:?}");
        let batches = StackChain { mint_batch: 10, ..stack() };
        assert_eq!(not_used(&handle_http(&r.ports, &batches, post(&batched)).await), vec![]);
    }

    #[tokio::test]
    async fn bad_input_is_refused_with_the_field_and_the_fix_and_records_nothing() {
        let r = rig();
        let cases = [
            (NEON.replace("steps = 20", "steps = 0"), stack(), 400, Some("generation.steps")),
            (NEON.to_string(), StackChain { chain_id: 42_161, ..stack() }, 400, Some("chain.chain_id")),
            (
                NEON.replace(
                    "chain_id = 412346",
                    "chain_id = 412346\ncontract = \"0x2222222222222222222222222222222222222222\"",
                ),
                stack(),
                400,
                Some("chain.contract"),
            ),
            (with_editions(5), stack(), 400, Some("editions")),
            (
                with_editions(5),
                StackChain { editions: Some(EditionsSection { copies: 10, max_supply: None }), ..stack() },
                400,
                Some("editions"),
            ),
            ("this is not toml [".to_string(), stack(), 400, None),
            (" ".to_string(), stack(), 400, None),
            (NEON.replace("count = 6", "count = 600"), stack(), 413, Some("prompts")),
            ("#".repeat(MAX_BODY_BYTES + 1), stack(), 413, None),
        ];
        for (text, stack, status, field) in cases {
            let resp = handle_http(&r.ports, &stack, request("POST", "application/toml", &text, false)).await;
            let b = body(&resp);
            assert_eq!(resp.status_code, status, "{b}");
            assert_eq!(b["field"].as_str(), field, "{b}");
            assert!(!b["error"].as_str().unwrap_or_default().is_empty(), "says what is wrong: {b}");
            if field.is_some() {
                assert!(!b["fix"].as_str().unwrap_or_default().is_empty(), "says how to fix it: {b}");
            }
        }
        assert!(r.jobs.list(None).await.unwrap().is_empty(), "no job from a refused request");
        assert!(r.queue.receive("generate", 10, Duration::from_secs(60)).await.unwrap().is_empty());
    }

    /// A file without `[chain]` leaves the chain to the stack, whatever chain the stack is on.
    #[tokio::test]
    async fn a_file_that_names_no_chain_is_taken_by_a_stack_on_any_chain() {
        let r = rig();
        let text = "[collection]\nname = \"N\"\nsymbol = \"N\"\nrecipient = \"0x70997970C51812dc3A010C7d01b50e0d17dc79C8\"\n\
                    [generation]\nmodel = \"m\"\n[[prompts]]\ntext = \"a red circle\"\n";
        let sepolia = StackChain { chain_id: 421_614, ..stack() };
        let resp = handle_http(&r.ports, &sepolia, request("POST", "application/toml", text, false)).await;
        assert_eq!(resp.status_code, 202, "{:?}", resp.body);
        let named = format!("{text}[chain]\nchain_id = 412346\n");
        let resp = handle_http(&r.ports, &sepolia, request("POST", "application/toml", &named, false)).await;
        assert_eq!(body(&resp)["field"].as_str(), Some("chain.chain_id"), "a file naming another chain is refused");
    }

    #[tokio::test]
    async fn only_post_submits() {
        let r = rig();
        let resp = handle_http(&r.ports, &stack(), request("GET", "application/toml", NEON, false)).await;
        assert_eq!(resp.status_code, 405);
        assert_eq!(resp.headers.get(header::ALLOW).and_then(|v| v.to_str().ok()), Some("POST"));
        assert!(r.jobs.list(None).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_dropped_file_is_submitted_and_a_bad_one_is_answered_not_retried() {
        let r = rig();
        let dir = tempfile::tempdir().unwrap();
        let files = latentmint_embedded::FsBlobStore::new(dir.path().to_path_buf());
        files.put("collections/neon.toml", NEON.as_bytes().to_vec()).await.unwrap();
        let ok = handle_file(&r.ports, &stack(), &files, "collections/neon.toml").await.unwrap();
        assert_eq!((ok["jobs"].as_u64(), ok["queued"].as_u64()), (Some(8), Some(8)), "{ok}");
        // The schedule naming the same file again: nothing new.
        let again = handle_file(&r.ports, &stack(), &files, "collections/neon.toml").await.unwrap();
        assert_eq!(again["queued"].as_u64(), Some(0), "{again}");

        files.put("collections/bad.toml", NEON.replace("steps = 20", "steps = 0").into_bytes()).await.unwrap();
        let refused = handle_file(&r.ports, &stack(), &files, "collections/bad.toml").await.unwrap();
        assert_eq!(refused["field"].as_str(), Some("generation.steps"), "{refused}");
        assert!(refused["fix"].as_str().is_some_and(|f| !f.is_empty()));

        let value: serde_json::Value = toml::from_str(NEON).unwrap();
        files.put("collections/neon.json", value.to_string().into_bytes()).await.unwrap();
        let from_json = handle_file(&r.ports, &stack(), &files, "collections/neon.json").await.unwrap();
        assert_eq!(from_json["jobs"].as_u64(), Some(8), "{from_json}");

        let missing = handle_file(&r.ports, &stack(), &files, "collections/nope.toml").await.unwrap_err();
        assert!(missing.contains("collections/nope.toml"), "names the file: {missing}");
        assert_eq!(r.jobs.list(None).await.unwrap().len(), 8, "the bad file added nothing");
    }

    const SECRET: &[u8] = b"shop-shared-secret";

    /// The stack's keys: one version, never rotated.
    fn keys() -> SecretVersions {
        SecretVersions { current: SECRET.to_vec(), previous: None }
    }

    fn now() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    }

    /// What the shop of `collection` sends for `body`: signed now with its collection's key
    /// under the stack's secret `secret`.
    fn sign(collection: &str, body: &str, secret: &[u8]) -> String {
        sign_at(collection, body, secret, now())
    }

    fn sign_at(collection: &str, body: &str, secret: &[u8], t: u64) -> String {
        let key = latentmint_core::webhook::collection_key(secret, collection);
        latentmint_core::webhook::signature_header(&key, t, "POST", &format!("/webhooks/{collection}"), body.as_bytes())
    }

    /// A webhook call as the HTTP API delivers it, with delivery id `d-<hash of the body>`.
    fn order(collection: &str, body: &str, signature: Option<String>) -> ApiGatewayV2httpRequest {
        let delivery = format!("d-{}", &hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body))[..12]);
        delivered(collection, body, signature, Some(&delivery))
    }

    fn delivered(
        collection: &str,
        body: &str,
        signature: Option<String>,
        delivery: Option<&str>,
    ) -> ApiGatewayV2httpRequest {
        let mut headers = serde_json::json!({ "content-type": "application/json" });
        if let Some(sig) = signature {
            headers[SIGNATURE_HEADER] = serde_json::Value::String(sig);
        }
        if let Some(d) = delivery {
            headers[DELIVERY_HEADER] = serde_json::Value::String(d.to_string());
        }
        serde_json::from_value(serde_json::json!({
            "version": "2.0",
            "routeKey": "POST /webhooks/{collection}",
            "rawPath": format!("/webhooks/{collection}"),
            "rawQueryString": "",
            "headers": headers,
            "pathParameters": { "collection": collection },
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "domainName": "api.example", "requestId": "req",
                "routeKey": "POST /webhooks/{collection}", "stage": "$default", "time": "25/Nov/2026:18:00:00 +0000",
                "timeEpoch": 1_795_629_600_000_i64,
                "http": { "method": "POST", "path": format!("/webhooks/{collection}"), "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "shop" }
            },
            "body": body,
            "isBase64Encoded": false
        }))
        .expect("an HTTP API v2 payload")
    }

    fn shop_files() -> (tempfile::TempDir, latentmint_embedded::FsBlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let files = latentmint_embedded::FsBlobStore::new(dir.path().to_path_buf());
        (dir, files)
    }

    #[tokio::test]
    async fn a_signed_order_becomes_one_job_however_often_the_shop_sends_it() {
        let r = rig();
        let (_d, files) = shop_files();
        files.put("collections/neon-shapes.toml", NEON.as_bytes().to_vec()).await.unwrap();
        let payload = r#"{"order_id": "A-1001", "prompt": "a red star", "recipient": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"}"#;
        let send = || order("neon-shapes", payload, Some(sign("neon-shapes", payload, SECRET)));
        let first = handle_webhook(&r.ports, &stack(), &files, Some(&keys()), send()).await;
        assert_eq!(first.status_code, 202, "{:?}", first.body);
        let b = body(&first);
        assert_eq!(b["state"], "queued");
        // The same order in a new delivery (the shop sent it twice): the same job.
        let twice =
            delivered("neon-shapes", payload, Some(sign("neon-shapes", payload, SECRET)), Some("another-delivery"));
        let again = body(&handle_webhook(&r.ports, &stack(), &files, Some(&keys()), twice).await);
        assert_eq!((again["job_id"].clone(), again["state"].as_str()), (b["job_id"].clone(), Some("requeued")));
        let jobs = r.jobs.list(None).await.unwrap();
        assert_eq!(jobs.len(), 1, "one order, one job");
        let spec = &jobs[0].spec;
        assert_eq!(spec.request.as_deref(), Some("A-1001"));
        assert!(spec.prompt.starts_with("a red star"), "{}", spec.prompt);
        assert_eq!(spec.recipient.to_checksum(), "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC");
    }

    #[tokio::test]
    async fn unsigned_or_wrong_orders_are_refused_and_record_nothing() {
        let r = rig();
        let (_d, files) = shop_files();
        files.put("collections/neon-shapes.toml", NEON.as_bytes().to_vec()).await.unwrap();
        let good = r#"{"order_id": "A-1", "prompt": "a red star"}"#;
        let keys = keys();
        // (request, the stack's keys, status, field)
        type Case<'a> = (ApiGatewayV2httpRequest, Option<&'a dyn WebhookKeys>, i64, Option<&'a str>);
        let cases: Vec<Case<'_>> = vec![
            (order("neon-shapes", good, None), Some(&keys), 401, None),
            (order("neon-shapes", good, Some(sign("neon-shapes", good, b"another secret"))), Some(&keys), 401, None),
            (order("neon-shapes", good, Some("sha256=zz".into())), Some(&keys), 401, None),
            (order("neon-shapes", good, Some(sign("neon-shapes", good, SECRET))), None, 404, None),
            (order("no-such", good, Some(sign("no-such", good, SECRET))), Some(&keys), 404, None),
            (order("Neon Shapes", good, Some(sign("Neon Shapes", good, SECRET))), Some(&keys), 400, None),
            // Signed for another collection (its key, its path), replayed here.
            (order("neon-shapes", good, Some(sign("other-shop", good, SECRET))), Some(&keys), 401, None),
            // Captured and sent again ten minutes later, or signed in the future.
            (
                order("neon-shapes", good, Some(sign_at("neon-shapes", good, SECRET, now() - 600))),
                Some(&keys),
                401,
                None,
            ),
            (
                order("neon-shapes", good, Some(sign_at("neon-shapes", good, SECRET, now() + 600))),
                Some(&keys),
                401,
                None,
            ),
            // The old scheme: the body alone.
            (order("neon-shapes", good, Some("sha256=00ff".into())), Some(&keys), 401, None),
            // No delivery id.
            (delivered("neon-shapes", good, Some(sign("neon-shapes", good, SECRET)), None), Some(&keys), 400, None),
        ];
        for (req, keys, status, field) in cases {
            let resp = handle_webhook(&r.ports, &stack(), &files, keys, req).await;
            let b = body(&resp);
            assert_eq!((resp.status_code, b["field"].as_str()), (status, field), "{b}");
        }
        for (payload, field) in [
            (r#"{"order_id": "A-2", "prompt": "bad\u0007"}"#, Some("prompt")),
            (
                r#"{"order_id": "A-3", "prompt": "x", "recipient": "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"}"#,
                Some("recipient"),
            ),
            (r#"{"order_id": "", "prompt": "x"}"#, Some("order_id")),
            (r#"{"order_id": "A-4", "prompt": "x", "price": 5}"#, None),
        ] {
            let req = order("neon-shapes", payload, Some(sign("neon-shapes", payload, SECRET)));
            let resp = handle_webhook(&r.ports, &stack(), &files, Some(&keys), req).await;
            let b = body(&resp);
            assert_eq!((resp.status_code, b["field"].as_str()), (400, field), "{payload}: {b}");
            assert!(b["fix"].as_str().is_some_and(|f| !f.is_empty()), "says how to fix it: {b}");
        }
        assert!(r.jobs.list(None).await.unwrap().is_empty(), "no job from a refused order");
    }

    /// Keys whose secret is rotated behind the function's back: `versions` answers what was
    /// read before, `refresh` what is there now (or fails when `now` is `None`); counts the
    /// refreshes.
    struct Rotated {
        cached: SecretVersions,
        now: Option<SecretVersions>,
        refreshes: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl WebhookKeys for Rotated {
        async fn versions(&self) -> Result<Arc<SecretVersions>, SecretError> {
            Ok(Arc::new(self.cached.clone()))
        }
        async fn refresh(&self) -> Result<Option<Arc<SecretVersions>>, SecretError> {
            self.refreshes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            match &self.now {
                Some(now) => Ok(Some(Arc::new(now.clone()))),
                None => Err(SecretError { secret: "webhook".into(), message: "throttled".into() }),
            }
        }
    }

    #[tokio::test]
    async fn a_rotated_secret_is_read_again_and_the_previous_one_still_signs() {
        let r = rig();
        let (_d, files) = shop_files();
        files.put("collections/neon-shapes.toml", NEON.as_bytes().to_vec()).await.unwrap();
        let (old, new) = (b"old-secret".to_vec(), b"new-secret".to_vec());
        let rotated = Rotated {
            cached: SecretVersions { current: old.clone(), previous: None },
            now: Some(SecretVersions { current: new.clone(), previous: Some(old.clone()) }),
            refreshes: Default::default(),
        };
        let send = |id: &str, secret: &[u8]| {
            let payload = format!(r#"{{"order_id": "{id}", "prompt": "a red star"}}"#);
            order("neon-shapes", &payload, Some(sign("neon-shapes", &payload, secret)))
        };
        let answer = |resp: ApiGatewayV2httpResponse| (resp.status_code, body(&resp));

        let (code, b) = answer(handle_webhook(&r.ports, &stack(), &files, Some(&rotated), send("B-1", &old)).await);
        assert_eq!(code, 202, "{b}");
        assert_eq!(rotated.refreshes.load(std::sync::atomic::Ordering::SeqCst), 0, "a match needs no refresh");

        // Signed with the new secret, which the cached keys do not know yet.
        let (code, b) = answer(handle_webhook(&r.ports, &stack(), &files, Some(&rotated), send("B-2", &new)).await);
        assert_eq!(code, 202, "{b}");
        assert_eq!(rotated.refreshes.load(std::sync::atomic::Ordering::SeqCst), 1);

        // The previous version still signs.
        let after = SecretVersions { current: new.clone(), previous: Some(old.clone()) };
        let (code, b) = answer(handle_webhook(&r.ports, &stack(), &files, Some(&after), send("B-3", &old)).await);
        assert_eq!(code, 202, "{b}");

        // A secret that cannot be read: a retryable 503, no secret in the answer, nothing recorded.
        let broken = Rotated {
            cached: SecretVersions { current: old.clone(), previous: None },
            now: None,
            refreshes: Default::default(),
        };
        let (code, b) = answer(handle_webhook(&r.ports, &stack(), &files, Some(&broken), send("B-4", &new)).await);
        assert_eq!(code, 503, "{b}");
        assert!(!b.to_string().contains("new-secret") && !b.to_string().contains("old-secret"), "{b}");
        let requests: Vec<_> = r.jobs.list(None).await.unwrap().into_iter().filter_map(|j| j.spec.request).collect();
        assert_eq!(requests.len(), 3, "B-1..B-3 recorded, B-4 not: {requests:?}");
        assert!(!requests.iter().any(|q| q == "B-4"));
    }

    /// A delivery sent again (a shop's retry, or a captured request within the window) gets
    /// its first answer back and is never processed twice; the same id with another body is
    /// refused.
    #[tokio::test]
    async fn a_delivery_is_processed_once_and_answered_again() {
        let r = rig();
        let (_d, files) = shop_files();
        files.put("collections/neon-shapes.toml", NEON.as_bytes().to_vec()).await.unwrap();
        let payload = r#"{"order_id": "C-1", "prompt": "a red star"}"#;
        let send = |body: &str| delivered("neon-shapes", body, Some(sign("neon-shapes", body, SECRET)), Some("evt-42"));
        let first = handle_webhook(&r.ports, &stack(), &files, Some(&keys()), send(payload)).await;
        assert_eq!(first.status_code, 202, "{:?}", first.body);
        let sent = r.queue.stats("generate").await.unwrap().visible;
        let again = handle_webhook(&r.ports, &stack(), &files, Some(&keys()), send(payload)).await;
        let b = body(&again);
        assert_eq!((again.status_code, b["replayed"].as_bool()), (200, Some(true)), "{b}");
        assert_eq!(b["job_id"], body(&first)["job_id"], "the first answer");
        assert_eq!(r.queue.stats("generate").await.unwrap().visible, sent, "nothing sent on");
        let other = r#"{"order_id": "C-2", "prompt": "a blue star"}"#;
        let conflict = handle_webhook(&r.ports, &stack(), &files, Some(&keys()), send(other)).await;
        assert_eq!(conflict.status_code, 409, "{:?}", conflict.body);
        assert_eq!(r.jobs.list(None).await.unwrap().len(), 1, "one job");
    }
}
