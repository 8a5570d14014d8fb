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

use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::http::{HeaderValue, Method, header};
use base64::Engine as _;
use latentmint_core::collection::{Collection, CollectionFile, EditionsSection, LivingSection};
use latentmint_core::ports::BlobStore;
use latentmint_core::{EvmAddress, FieldError};
use latentmint_stages::intake::{Intake, submit};
use latentmint_stages::{StageError, ports};
use serde::Serialize;
use tracing::{error, info, warn};

#[cfg(test)]
mod tests;
mod webhook;

pub use webhook::{MAX_WEBHOOK_BYTES, WebhookKeys, handle_webhook};

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
    // Model folders and reference images are paths on the machine that wrote the file; the
    // stack's review function runs its layer's models and its bucket's references.
    let qa = &collection.file.qa;
    let named = [
        ("qa.clip", qa.clip.is_some()),
        ("qa.safety_checker", qa.safety_checker.is_some()),
        ("qa.references", !qa.references.is_empty()),
    ];
    for (field, set) in named {
        if set {
            out.push(NotUsed {
                field: field.into(),
                why: "names files on the machine that wrote it; this stack's review function runs the models of its generation layer and the reference images under BrandReferences".into(),
                fix: "remove it (the stack decides), or build the layer with these models (LATENTMINT_LAYER_QA_CLIP, a model with safety_checker/) and upload the references under BrandReferences".into(),
            });
        }
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
