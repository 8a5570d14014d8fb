//! The SageMaker path end to end on one machine: aws-sdk-sagemakerruntime → the container's
//! `serve` binary (local, on 127.0.0.1) → a real PNG from the real engine; and the fallback to
//! the local ONNX engine when the endpoint is down or returns garbage, recorded in provenance.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sagemakerruntime::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sagemakerruntime::primitives::Blob;
use latentmint_aws::{CircuitBreaker, FallbackGenerator, RetryPolicy, SageMakerGenerator};
use latentmint_core::generation_api::{ApiRequest, ApiResponse};
use latentmint_core::ports::{GenerationRequest, Generator, PortError};
use latentmint_core::{GenerationParams, JobId};
use latentmint_diffusion::{EngineOptions, OnnxGenerator};
use latentmint_e2e::{ort_library, serve_bin, tiny_model};

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_serve() -> Server {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(serve_bin())
        .arg("serve")
        .arg("--model")
        .arg(tiny_model())
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--threads", "1"])
        .env("ORT_DYLIB_PATH", ort_library())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("listening on"), "serve said {line:?}");
    Server { child, url: format!("http://127.0.0.1:{port}") }
}

fn client(url: &str) -> aws_sdk_sagemakerruntime::Client {
    let cfg = aws_sdk_sagemakerruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(Credentials::new("local", "local", None, None, "static"))
        .retry_config(aws_sdk_sagemakerruntime::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_sagemakerruntime::Client::from_conf(cfg)
}

fn request(width: u32) -> GenerationRequest {
    GenerationRequest {
        job_id: JobId::from_bytes([2; 32]),
        prompt: "a blue square".into(),
        negative_prompt: "blurry".into(),
        params: GenerationParams { steps: 4, guidance: 7.5, width, height: 64, scheduler: "euler".into(), seed: 11 },
    }
}

fn onnx() -> Arc<OnnxGenerator> {
    Arc::new(
        OnnxGenerator::load(
            &tiny_model(),
            &EngineOptions {
                ort_library: Some(ort_library()),
                intra_threads: 1,
                cuda: false,
                parallel_cfg: None,
                loras: vec![],
            },
        )
        .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_invoke_endpoint_reaches_serve_and_returns_a_png() {
    let server = start_serve();
    // GET /ping, as SageMaker's health check does.
    let mut s = std::net::TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
    write!(s, "GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut ping = String::new();
    s.read_to_string(&mut ping).unwrap();
    assert!(ping.starts_with("HTTP/1.1 200"), "{ping}");
    let req = ApiRequest::new("a blue square", "blurry", &request(64).params);
    let out = client(&server.url)
        .invoke_endpoint()
        .endpoint_name("latentmint-dev")
        .content_type("application/json")
        .body(Blob::new(serde_json::to_vec(&req).unwrap()))
        .send()
        .await
        .expect("invoke_endpoint");
    let resp: ApiResponse = serde_json::from_slice(out.body().unwrap().as_ref()).unwrap();
    assert_eq!(resp.parameters, req);
    assert_eq!(resp.model.id, "latentmint/tiny-sd-random");
    assert_eq!(resp.generator.backend, "onnx-cpu");

    // Through the Generator port: the endpoint's image is byte-identical to the local engine's.
    let remote = SageMakerGenerator::new(client(&server.url), "latentmint-dev").generate(&request(64)).await.unwrap();
    assert_eq!(remote.record.backend, "sagemaker:latentmint-dev (onnx-cpu)");
    let local = onnx().generate(&request(64)).await.unwrap();
    assert_eq!(remote.png, local.png, "same engine, same request, same bytes");
    assert_eq!(remote.record.model_sha256, local.record.model_sha256);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_request_is_refused_with_its_field_and_not_retried() {
    let server = start_serve();
    let err = SageMakerGenerator::new(client(&server.url), "latentmint-dev").generate(&request(63)).await.unwrap_err();
    match err {
        PortError::Permanent(m) => {
            assert!(m.contains("latentmint-dev") && m.contains("width") && m.contains("HTTP 400"), "{m}")
        }
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoint_down_falls_back_to_onnx_and_says_so() {
    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sm = SageMakerGenerator::new(client(&format!("http://127.0.0.1:{port}")), "latentmint-down");
    let policy =
        RetryPolicy { attempts: 2, base_delay: Duration::from_millis(5), max_delay: Duration::from_millis(10) };
    let g = FallbackGenerator::new(
        Some(("latentmint-down".into(), Arc::new(sm))),
        onnx(),
        policy,
        CircuitBreaker::new(3, Duration::from_secs(30)),
    );
    let img = g.generate(&request(64)).await.unwrap();
    assert_eq!(img.record.backend, "onnx-cpu");
    let why = img.record.fallback_reason.expect("fallback reason recorded");
    assert!(why.contains("latentmint-down") && why.contains("unreachable"), "{why}");
    assert!(img.png.starts_with(b"\x89PNG"));
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_from_the_endpoint_is_named_and_falls_back() {
    // An HTTP server that answers every request with 200 and a body that is not the contract.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten().take(8) {
            let mut buf = [0u8; 65536];
            let _ = stream.read(&mut buf);
            let body = "<html>502 from a proxy</html>";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let sm = SageMakerGenerator::new(client(&url), "latentmint-garbage");
    let err = sm.generate(&request(64)).await.unwrap_err().to_string();
    assert!(err.contains("endpoint latentmint-garbage") && err.contains("not a latentmint response"), "{err}");
    let policy = RetryPolicy { attempts: 1, ..RetryPolicy::default() };
    let g = FallbackGenerator::new(
        Some(("latentmint-garbage".into(), Arc::new(sm))),
        onnx(),
        policy,
        CircuitBreaker::new(3, Duration::from_secs(30)),
    );
    let img = g.generate(&request(64)).await.unwrap();
    assert_eq!(img.record.backend, "onnx-cpu");
    assert!(img.record.fallback_reason.unwrap().contains("not a latentmint response"));
}
