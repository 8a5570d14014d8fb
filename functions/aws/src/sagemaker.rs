//! The `Generator` port on a SageMaker endpoint running the latentmint container (`serve`),
//! speaking the JSON contract in `latentmint_generation_api`.
//!
//! Two ways in, one contract:
//! - real-time (`InvokeEndpoint`): the request in the call's body, the response in the reply;
//!   SageMaker caps it at 60 s and 6 MB.
//! - asynchronous (`InvokeEndpointAsync`): the request is staged in S3, SageMaker queues it,
//!   runs it through the same container and writes the response to an S3 output location
//!   (or an error to a failure location), which this adapter polls. For long jobs (big
//!   images, many steps, batches) and for endpoints that scale to zero.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sagemakerruntime::Client;
use aws_sdk_sagemakerruntime::config::http::HttpResponse;
use aws_sdk_sagemakerruntime::error::{DisplayErrorContext, SdkError};
use aws_sdk_sagemakerruntime::operation::invoke_endpoint::InvokeEndpointError;
use aws_sdk_sagemakerruntime::operation::invoke_endpoint_async::InvokeEndpointAsyncError;
use aws_sdk_sagemakerruntime::primitives::Blob;
use base64::Engine as _;
use latentmint_core::GenerationRecord;
use latentmint_core::ports::{GeneratedImage, GenerationRequest, Generator, PortError, PortResult};
use latentmint_generation_api::{ApiError, ApiRequest, ApiResponse};
use sha2::{Digest, Sha256};
use tracing::{debug, warn};

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// An `s3://bucket/key` location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// Bucket name.
    pub bucket: String,
    /// Object key (or key prefix), without a leading slash.
    pub key: String,
}

impl S3Location {
    /// Parses `s3://bucket/key`; `what` names the setting in the error.
    pub fn parse(what: &str, url: &str) -> Result<Self, PortError> {
        let bad = |why: &str| PortError::Permanent(format!("{what}: `{url}` {why}; write it as s3://bucket/prefix"));
        let rest = url.strip_prefix("s3://").ok_or_else(|| bad("is not an s3:// URL"))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.len() < 3
            || !bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        {
            return Err(bad("has no valid bucket name"));
        }
        Ok(Self { bucket: bucket.into(), key: key.trim_matches('/').into() })
    }

    fn child(&self, name: &str) -> Self {
        let key = if self.key.is_empty() { name.to_string() } else { format!("{}/{name}", self.key) };
        Self { bucket: self.bucket.clone(), key }
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// Asynchronous invocation: where requests are staged and how long to wait for results.
#[derive(Clone, Debug)]
pub struct AsyncInvocation {
    s3: aws_sdk_s3::Client,
    input: S3Location,
    timeout: Duration,
    first_poll: Duration,
    max_poll: Duration,
}

impl AsyncInvocation {
    /// Requests are written under `input` (`s3://bucket/prefix`) with `s3`; a result not in S3
    /// `timeout` after the call is an endpoint failure (the fallback runs).
    pub fn new(s3: aws_sdk_s3::Client, input: S3Location, timeout: Duration) -> Self {
        Self { s3, input, timeout, first_poll: Duration::from_millis(100), max_poll: Duration::from_secs(5) }
    }
}

/// Generates on a SageMaker endpoint.
#[derive(Clone, Debug)]
pub struct SageMakerGenerator {
    client: Client,
    endpoint: String,
    asynchronous: Option<AsyncInvocation>,
}

/// The facts common to both invocation errors.
struct Failure {
    status: u16,
    body: String,
    /// The service said the request itself is wrong (do not retry, do not fall back).
    client_error: bool,
}

impl SageMakerGenerator {
    /// A generator for `endpoint` through `client`. Retries belong to [`crate::FallbackGenerator`];
    /// give the client a retry config of one attempt so failures reach it quickly.
    pub fn new(client: Client, endpoint: impl Into<String>) -> Self {
        Self { client, endpoint: endpoint.into(), asynchronous: None }
    }

    /// A generator using the default AWS configuration chain (env, profile, IMDS, ...), with
    /// the SDK's own retries off.
    pub async fn from_env(endpoint: impl Into<String>) -> Self {
        let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        Self::new(Client::new(&cfg), endpoint)
    }

    /// Invoke the endpoint asynchronously (requests and results through S3) instead of in
    /// real time.
    pub fn with_async(mut self, invocation: AsyncInvocation) -> Self {
        self.asynchronous = Some(invocation);
        self
    }

    /// The endpoint name.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn classify(&self, f: Failure, detail: impl FnOnce() -> String) -> PortError {
        let name = &self.endpoint;
        let detail = if f.body.is_empty() { detail() } else { f.body.chars().take(300).collect() };
        if f.client_error {
            PortError::Permanent(format!("endpoint {name} refused the request (HTTP {}): {detail}", f.status))
        } else {
            PortError::Transient(format!("endpoint {name} failed (HTTP {}): {detail}", f.status))
        }
    }

    fn sdk_error<E, F>(&self, e: SdkError<E, HttpResponse>, client_error: F) -> PortError
    where
        E: std::error::Error + Send + Sync + 'static,
        F: FnOnce(&E, u16, &str) -> bool,
    {
        match &e {
            SdkError::ServiceError(se) => {
                let status = se.raw().status().as_u16();
                let body = se.raw().body().bytes().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
                let client_error = client_error(se.err(), status, &body);
                self.classify(Failure { status, body, client_error }, || DisplayErrorContext(&e).to_string())
            }
            _ => PortError::Transient(format!("endpoint {} unreachable: {}", self.endpoint, DisplayErrorContext(&e))),
        }
    }

    /// Fallback classification by status: 4xx other than throttling is the request's fault.
    fn status_says_client_error(status: u16, body: &str) -> bool {
        (400..500).contains(&status) && status != 429 && !body.contains("Throttling")
    }

    async fn invoke_real_time(&self, body: Vec<u8>) -> PortResult<Vec<u8>> {
        let out = self
            .client
            .invoke_endpoint()
            .endpoint_name(&self.endpoint)
            .content_type("application/json")
            .accept("application/json")
            .body(Blob::new(body))
            .send()
            .await
            .map_err(|e| {
                self.sdk_error(e, |err, status, body| match err {
                    InvokeEndpointError::ValidationError(_) => true,
                    InvokeEndpointError::ModelError(m) => {
                        m.original_status_code().is_some_and(|c| (400..500).contains(&c) && c != 429)
                    }
                    InvokeEndpointError::ModelNotReadyException(_)
                    | InvokeEndpointError::ServiceUnavailable(_)
                    | InvokeEndpointError::InternalFailure(_)
                    | InvokeEndpointError::InternalDependencyException(_) => false,
                    _ => Self::status_says_client_error(status, body),
                })
            })?;
        Ok(out.body().map(|b| b.as_ref().to_vec()).unwrap_or_default())
    }

    /// Stages the request in S3, invokes the endpoint asynchronously and waits for the result
    /// object (or the failure object) to appear.
    async fn invoke_async(&self, io: &AsyncInvocation, body: Vec<u8>, id: &str) -> PortResult<Vec<u8>> {
        let name = &self.endpoint;
        let input = io.input.child(&format!("{id}.json"));
        let s3_error = |what: &str, loc: &S3Location, e: &dyn std::fmt::Display| {
            PortError::Transient(format!("endpoint {name}: cannot {what} {loc}: {e}"))
        };
        io.s3
            .put_object()
            .bucket(&input.bucket)
            .key(&input.key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| s3_error("stage the request at", &input, &aws_sdk_s3::error::DisplayErrorContext(e)))?;
        let sent =
            self.client
                .invoke_endpoint_async()
                .endpoint_name(name)
                .input_location(input.to_string())
                .content_type("application/json")
                .accept("application/json")
                .inference_id(id)
                .invocation_timeout_seconds(io.timeout.as_secs().clamp(1, 3600) as i32)
                .send()
                .await
                .map_err(|e| {
                    self.sdk_error(e, |err, status, body| match err {
                        InvokeEndpointAsyncError::ValidationError(_) => true,
                        InvokeEndpointAsyncError::ServiceUnavailable(_)
                        | InvokeEndpointAsyncError::InternalFailure(_) => false,
                        _ => Self::status_says_client_error(status, body),
                    })
                });
        let result = match sent {
            Ok(out) => {
                let output = out
                    .output_location()
                    .ok_or_else(|| PortError::Transient(format!("endpoint {name}: async call gave no output location")))
                    .and_then(|u| S3Location::parse("OutputLocation", u));
                let failure = out.failure_location().map(|u| S3Location::parse("FailureLocation", u)).transpose();
                match (output, failure) {
                    (Ok(output), Ok(failure)) => self.wait_for_result(io, &output, failure.as_ref()).await,
                    (Err(e), _) | (_, Err(e)) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        // The staged request has served its purpose either way.
        if let Err(e) = io.s3.delete_object().bucket(&input.bucket).key(&input.key).send().await {
            warn!(%input, "could not delete the staged request: {}", aws_sdk_s3::error::DisplayErrorContext(e));
        }
        result
    }

    async fn wait_for_result(
        &self,
        io: &AsyncInvocation,
        output: &S3Location,
        failure: Option<&S3Location>,
    ) -> PortResult<Vec<u8>> {
        let name = &self.endpoint;
        let deadline = Instant::now() + io.timeout;
        let mut delay = io.first_poll;
        loop {
            if let Some(bytes) = self.fetch(io, output).await? {
                return Ok(bytes);
            }
            if let Some(failure) = failure
                && let Some(bytes) = self.fetch(io, failure).await?
            {
                // The container answered with an error body: a refused request is permanent,
                // anything else is the endpoint's trouble.
                let text = String::from_utf8_lossy(&bytes);
                return Err(match serde_json::from_slice::<ApiError>(&bytes) {
                    Ok(ApiError { error }) if error.contains(':') && error.contains(';') => {
                        PortError::Permanent(format!("endpoint {name} refused the request: {error}"))
                    }
                    _ => PortError::Transient(format!(
                        "endpoint {name} failed asynchronously ({failure}): {}",
                        text.chars().take(300).collect::<String>()
                    )),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(PortError::Transient(format!(
                    "endpoint {name}: no result at {output} after {} s (async invocation timed out)",
                    io.timeout.as_secs()
                )));
            }
            debug!(%output, ?delay, "waiting for the async result");
            tokio::time::sleep(delay.min(deadline - now)).await;
            delay = (delay * 3 / 2).min(io.max_poll);
        }
    }

    /// The object's bytes, or `None` while it does not exist yet.
    async fn fetch(&self, io: &AsyncInvocation, at: &S3Location) -> PortResult<Option<Vec<u8>>> {
        match io.s3.get_object().bucket(&at.bucket).key(&at.key).send().await {
            Ok(obj) => {
                let bytes = obj.body.collect().await.map_err(|e| {
                    PortError::Transient(format!("endpoint {}: reading {at} failed: {e}", self.endpoint))
                })?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
            Err(SdkError::ServiceError(se)) if se.err().is_no_such_key() || se.raw().status().as_u16() == 404 => {
                Ok(None)
            }
            Err(e) => Err(PortError::Transient(format!(
                "endpoint {}: reading {at} failed: {}",
                self.endpoint,
                aws_sdk_s3::error::DisplayErrorContext(e)
            ))),
        }
    }

    /// Generates `count` images of one request in one call (seeds `seed`, `seed + 1`, ...).
    pub async fn generate_many(&self, req: &GenerationRequest, count: u32) -> PortResult<Vec<GeneratedImage>> {
        let name = &self.endpoint;
        let api_req = ApiRequest {
            num_images: count,
            init_image_png_base64: req
                .init_image
                .as_ref()
                .map(|i| base64::engine::general_purpose::STANDARD.encode(&i.png)),
            strength: req.init_image.as_ref().map(|i| i.strength),
            ..ApiRequest::new(&req.prompt, &req.negative_prompt, &req.params)
        };
        let body = serde_json::to_vec(&api_req).map_err(|e| PortError::Permanent(e.to_string()))?;
        let bytes = match &self.asynchronous {
            None => self.invoke_real_time(body).await?,
            Some(io) => {
                // Unique per attempt: a retry must not pick up an earlier attempt's objects.
                let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
                let id = format!("{}-{}-{nanos}", req.job_id, req.params.seed);
                self.invoke_async(io, body, &id).await?
            }
        };
        // A broken or foreign container is the endpoint's fault: transient, so the fallback runs.
        let resp: ApiResponse = serde_json::from_slice(&bytes).map_err(|e| {
            let head: String = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned();
            PortError::Transient(format!(
                "endpoint {name} returned something that is not a latentmint response ({e}): {head:?}"
            ))
        })?;
        resp.model
            .check()
            .map_err(|e| PortError::Transient(format!("endpoint {name} named its model wrongly: {e}")))?;
        if resp.parameters != api_req {
            return Err(PortError::Transient(format!(
                "endpoint {name} ran other parameters than asked ({:?} instead of {:?})",
                resp.parameters, api_req
            )));
        }
        let encoded: Vec<&String> =
            std::iter::once(&resp.image_png_base64).chain(&resp.more_images_png_base64).collect();
        if encoded.len() != count as usize {
            return Err(PortError::Transient(format!(
                "endpoint {name} returned {} images for {count} asked",
                encoded.len()
            )));
        }
        let mut images = Vec::with_capacity(encoded.len());
        for (k, b64) in encoded.into_iter().enumerate() {
            let png = base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|e| PortError::Transient(format!("endpoint {name}: image {k} is not base64: {e}")))?;
            if !png.starts_with(PNG_MAGIC) {
                return Err(PortError::Transient(format!("endpoint {name}: image {k} is not a PNG")));
            }
            let mut params = req.params.clone();
            params.seed = params.seed.wrapping_add(k as u64);
            let record = GenerationRecord {
                model_id: resp.model.id.clone(),
                model_sha256: resp.model.sha256.clone(),
                model_files: resp.model.files.clone(),
                params,
                prompt_truncated: resp.prompt_truncated,
                generator: resp.generator.name.clone(),
                generator_version: resp.generator.version.clone(),
                backend: format!(
                    "sagemaker{}:{name} ({})",
                    if self.asynchronous.is_some() { "-async" } else { "" },
                    resp.generator.backend
                ),
                fallback_reason: None,
                adapters: vec![],
                elapsed_ms: resp.elapsed_ms,
                image_sha256: hex::encode(Sha256::digest(&png)),
            };
            images.push(GeneratedImage { png, record });
        }
        Ok(images)
    }
}

#[async_trait]
impl Generator for SageMakerGenerator {
    async fn generate(&self, req: &GenerationRequest) -> PortResult<GeneratedImage> {
        let mut images = self.generate_many(req, 1).await?;
        images.pop().ok_or_else(|| PortError::Transient(format!("endpoint {} returned no image", self.endpoint)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_locations_parse_and_name_the_setting() {
        let l = S3Location::parse("x", "s3://my-bucket/async/in/").unwrap();
        assert_eq!((l.bucket.as_str(), l.key.as_str()), ("my-bucket", "async/in"));
        assert_eq!(l.child("a.json").to_string(), "s3://my-bucket/async/in/a.json");
        assert_eq!(S3Location::parse("x", "s3://b12").unwrap().child("a").to_string(), "s3://b12/a");
        for bad in ["https://b/k", "s3://", "s3://Bad_Bucket/k"] {
            let e = S3Location::parse("generation.async_input", bad).unwrap_err().to_string();
            assert!(e.contains("generation.async_input") && e.contains("s3://bucket/prefix"), "{e}");
        }
    }
}
