//! A stand-in for SageMaker's asynchronous inference service, for tests on one machine.
//!
//! It answers `POST /endpoints/{name}/async-invocations` as SageMaker does (202, the inference
//! id in the body, the output and failure locations in `X-Amzn-SageMaker-*` headers), then, in
//! the background, does what SageMaker does for an async endpoint: reads the staged request
//! from S3, posts it to the container's `/invocations`, and writes the container's answer to
//! the output location, or its error to the failure location. The container is the real
//! `serve` binary and S3 is moto over the wire; only this queueing glue is the test's.
//! An endpoint named `silent` accepts requests and never answers (for timeout tests).

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sagemakerruntime::primitives::Blob;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};

#[derive(Clone)]
struct Service {
    s3: aws_sdk_s3::Client,
    container: aws_sdk_sagemakerruntime::Client,
    output_bucket: String,
}

/// The stand-in, listening on 127.0.0.1 until dropped.
pub struct AsyncEndpoint {
    /// `http://127.0.0.1:<port>`: the SageMaker runtime endpoint URL for the SDK.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AsyncEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn split(url: &str) -> Option<(String, String)> {
    let (b, k) = url.strip_prefix("s3://")?.split_once('/')?;
    Some((b.to_string(), k.to_string()))
}

async fn invoke(State(svc): State<Service>, Path(name): Path<String>, headers: HeaderMap) -> axum::response::Response {
    let header = |h: &str| headers.get(h).and_then(|v| v.to_str().ok()).map(str::to_string);
    let Some((in_bucket, in_key)) = header("X-Amzn-SageMaker-InputLocation").as_deref().and_then(split) else {
        return (StatusCode::BAD_REQUEST, Json(serde_json::json!({"message": "InputLocation missing or not s3://"})))
            .into_response();
    };
    let id = header("X-Amzn-SageMaker-Inference-Id").unwrap_or_else(|| format!("{:x}", rand_id()));
    let out_key = format!("async-output/{id}.out");
    let fail_key = format!("async-failures/{id}-error.out");
    let (bucket, s3, container) = (svc.output_bucket.clone(), svc.s3.clone(), svc.container.clone());
    if name != "silent" {
        tokio::spawn(async move {
            let body = match s3.get_object().bucket(&in_bucket).key(&in_key).send().await {
                Ok(o) => o.body.collect().await.map(|b| b.into_bytes().to_vec()).unwrap_or_default(),
                Err(e) => format!("{{\"error\": \"input: {e}\"}}").into_bytes(),
            };
            let answer = container
                .invoke_endpoint()
                .endpoint_name(&name)
                .content_type("application/json")
                .body(Blob::new(body))
                .send()
                .await;
            let (key, bytes) = match answer {
                Ok(out) => (out_key, out.body().map(|b| b.as_ref().to_vec()).unwrap_or_default()),
                Err(e) => {
                    let raw = e.raw_response().and_then(|r| r.body().bytes()).map(<[u8]>::to_vec);
                    (fail_key, raw.unwrap_or_else(|| format!("{e:?}").into_bytes()))
                }
            };
            let _ = s3.put_object().bucket(&bucket).key(key).body(ByteStream::from(bytes)).send().await;
        });
    }
    let b = &svc.output_bucket;
    (
        StatusCode::ACCEPTED,
        [
            ("X-Amzn-SageMaker-OutputLocation", format!("s3://{b}/async-output/{id}.out")),
            ("X-Amzn-SageMaker-FailureLocation", format!("s3://{b}/async-failures/{id}-error.out")),
        ],
        Json(serde_json::json!({ "InferenceId": id })),
    )
        .into_response()
}

fn rand_id() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

impl AsyncEndpoint {
    /// Starts the stand-in in front of the container at `container_url`, writing results to
    /// `output_bucket` through `s3`.
    pub async fn start(s3: aws_sdk_s3::Client, container_url: &str, output_bucket: &str) -> Self {
        let cfg = aws_sdk_sagemakerruntime::Config::builder()
            .behavior_version(aws_sdk_sagemakerruntime::config::BehaviorVersion::latest())
            .region(aws_sdk_sagemakerruntime::config::Region::new("us-east-1"))
            .endpoint_url(container_url)
            .credentials_provider(aws_sdk_sagemakerruntime::config::Credentials::new("t", "t", None, None, "static"))
            .retry_config(aws_sdk_sagemakerruntime::config::retry::RetryConfig::disabled())
            .build();
        let svc = Service {
            s3,
            container: aws_sdk_sagemakerruntime::Client::from_conf(cfg),
            output_bucket: output_bucket.to_string(),
        };
        let app = Router::new().route("/endpoints/{name}/async-invocations", post(invoke)).with_state(svc);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, task }
    }
}
