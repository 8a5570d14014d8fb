//! The `Generator` port on a SageMaker real-time endpoint running the latentmint container
//! (`serve`), speaking the JSON contract in `latentmint_core::generation_api`.

use async_trait::async_trait;
use aws_sdk_sagemakerruntime::Client;
use aws_sdk_sagemakerruntime::error::{DisplayErrorContext, SdkError};
use aws_sdk_sagemakerruntime::operation::invoke_endpoint::InvokeEndpointError;
use aws_sdk_sagemakerruntime::primitives::Blob;
use base64::Engine as _;
use latentmint_core::GenerationRecord;
use latentmint_core::generation_api::{ApiRequest, ApiResponse};
use latentmint_core::ports::{GeneratedImage, GenerationRequest, Generator, PortError, PortResult};
use sha2::{Digest, Sha256};

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Generates on a SageMaker endpoint.
#[derive(Clone, Debug)]
pub struct SageMakerGenerator {
    client: Client,
    endpoint: String,
}

impl SageMakerGenerator {
    /// A generator for `endpoint` through `client`. Retries belong to [`crate::FallbackGenerator`];
    /// give the client a retry config of one attempt so failures reach it quickly.
    pub fn new(client: Client, endpoint: impl Into<String>) -> Self {
        Self { client, endpoint: endpoint.into() }
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

    /// The endpoint name.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn classify(
        &self,
        e: SdkError<InvokeEndpointError, aws_sdk_sagemakerruntime::config::http::HttpResponse>,
    ) -> PortError {
        let name = &self.endpoint;
        match &e {
            SdkError::ServiceError(se) => {
                let status = se.raw().status().as_u16();
                let body = se.raw().body().bytes().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
                let client_error = match se.err() {
                    InvokeEndpointError::ValidationError(_) => true,
                    InvokeEndpointError::ModelError(m) => {
                        m.original_status_code().is_some_and(|c| (400..500).contains(&c) && c != 429)
                    }
                    InvokeEndpointError::ModelNotReadyException(_)
                    | InvokeEndpointError::ServiceUnavailable(_)
                    | InvokeEndpointError::InternalFailure(_)
                    | InvokeEndpointError::InternalDependencyException(_) => false,
                    _ => (400..500).contains(&status) && status != 429 && !body.contains("Throttling"),
                };
                let detail = if body.is_empty() {
                    DisplayErrorContext(&e).to_string()
                } else {
                    body.chars().take(300).collect()
                };
                if client_error {
                    PortError::Permanent(format!("endpoint {name} refused the request (HTTP {status}): {detail}"))
                } else {
                    PortError::Transient(format!("endpoint {name} failed (HTTP {status}): {detail}"))
                }
            }
            _ => PortError::Transient(format!("endpoint {name} unreachable: {}", DisplayErrorContext(&e))),
        }
    }
}

#[async_trait]
impl Generator for SageMakerGenerator {
    async fn generate(&self, req: &GenerationRequest) -> PortResult<GeneratedImage> {
        let name = &self.endpoint;
        let api_req = ApiRequest::new(&req.prompt, &req.negative_prompt, &req.params);
        let body = serde_json::to_vec(&api_req).map_err(|e| PortError::Permanent(e.to_string()))?;
        let out = self
            .client
            .invoke_endpoint()
            .endpoint_name(name)
            .content_type("application/json")
            .accept("application/json")
            .body(Blob::new(body))
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        let bytes = out.body().map(|b| b.as_ref()).unwrap_or_default();
        // A broken or foreign container is the endpoint's fault: transient, so the fallback runs.
        let resp: ApiResponse = serde_json::from_slice(bytes).map_err(|e| {
            let head: String = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned();
            PortError::Transient(format!(
                "endpoint {name} returned something that is not a latentmint response ({e}): {head:?}"
            ))
        })?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(resp.image_png_base64.as_bytes())
            .map_err(|e| PortError::Transient(format!("endpoint {name}: image is not base64: {e}")))?;
        if !png.starts_with(PNG_MAGIC) {
            return Err(PortError::Transient(format!("endpoint {name}: image is not a PNG")));
        }
        if resp.parameters != api_req {
            return Err(PortError::Transient(format!(
                "endpoint {name} ran other parameters than asked ({:?} instead of {:?})",
                resp.parameters, api_req
            )));
        }
        let record = GenerationRecord {
            model_id: resp.model.id,
            model_sha256: resp.model.sha256,
            model_files: resp.model.files,
            params: req.params.clone(),
            prompt_truncated: resp.prompt_truncated,
            generator: resp.generator.name,
            generator_version: resp.generator.version,
            backend: format!("sagemaker:{name} ({})", resp.generator.backend),
            fallback_reason: None,
            adapters: vec![],
            elapsed_ms: resp.elapsed_ms,
            image_sha256: hex::encode(Sha256::digest(&png)),
        };
        Ok(GeneratedImage { png, record })
    }
}
