//! A shop's webhook: one signed order becomes one job of a collection the stack already has,
//! answered once and the same way to every replay of its delivery.

use std::sync::Arc;

use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::http::Method;
use base64::Engine as _;
use latentmint_aws::{SecretError, SecretVersions, SharedSecret};
use latentmint_core::ports::BlobStore;
use latentmint_core::{EvmAddress, FieldError};
use latentmint_stages::intake::{Intake, submit};
use latentmint_stages::{StageError, ports};
use serde::Serialize;
use tracing::{error, info, warn};

use super::*;

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
