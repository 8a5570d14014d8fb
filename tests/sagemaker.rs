//! The SageMaker path end to end on one machine: aws-sdk-sagemakerruntime → the container's
//! `serve` binary (local, on 127.0.0.1) → a real PNG from the real engine; and the fallback to
//! the local ONNX engine when the endpoint is down or returns garbage, recorded in provenance.
//! The asynchronous path goes SDK → a SageMaker async stand-in → the same `serve` binary, with
//! the request and the result in S3 (moto over the wire).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sagemakerruntime::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sagemakerruntime::primitives::Blob;
use latentmint_aws::{AsyncInvocation, CircuitBreaker, FallbackGenerator, RetryPolicy, S3Location, SageMakerGenerator};
use latentmint_core::ports::{GenerationRequest, Generator, PortError};
use latentmint_core::{GenerationParams, JobId};
use latentmint_diffusion::{EngineOptions, OnnxGenerator};
use latentmint_e2e::async_endpoint::AsyncEndpoint;
use latentmint_e2e::{Container, Moto, ort_library, tiny_model};
use latentmint_generation_api::{ApiRequest, ApiResponse};

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
        init_image: None,
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
    let server = Container::start(&tiny_model());
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

/// img2img over the wire (how a living NFT evolves on the GPU path): the endpoint's image from
/// an init image is byte-identical to the local engine's, and differs from text-to-image.
#[tokio::test(flavor = "multi_thread")]
async fn img2img_requests_carry_their_init_image_to_serve() {
    let server = Container::start(&tiny_model());
    let sm = SageMakerGenerator::new(client(&server.url), "latentmint-dev");
    let start = onnx().generate(&request(64)).await.unwrap().png;
    let evolve = GenerationRequest {
        init_image: Some(latentmint_core::ports::InitImage { png: start.clone(), strength: 0.5 }),
        ..request(64)
    };
    let remote = sm.generate(&evolve).await.unwrap();
    let local = onnx().generate(&evolve).await.unwrap();
    assert_eq!(remote.png, local.png, "same init image, same bytes");
    assert_ne!(remote.png, start, "the image moved away from its start");
    // An init image over axum's default body limit (2 MB), here made large by a text chunk: SageMaker
    // passes such bodies (6 MB real-time, more async), so the container must take them too.
    let big = GenerationRequest {
        init_image: Some(latentmint_core::ports::InitImage { png: with_padding(&start, 3 << 20), strength: 0.5 }),
        ..request(64)
    };
    assert_eq!(sm.generate(&big).await.unwrap().png, remote.png, "the same pixels, the same image");
    // An init image of another size is the caller's mistake: refused, naming the field.
    let wrong = GenerationRequest { params: request(128).params, ..evolve.clone() };
    match sm.generate(&wrong).await.unwrap_err() {
        PortError::Permanent(m) => assert!(m.contains("init_image_png_base64") && m.contains("64x64"), "{m}"),
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_request_is_refused_with_its_field_and_not_retried() {
    let server = Container::start(&tiny_model());
    let generator = SageMakerGenerator::new(client(&server.url), "latentmint-dev");
    // 65536 px would ask the container for gigabytes of latents: refused like any bad size,
    // and the container is still there to make the next image.
    for width in [63, 65536] {
        match generator.generate(&request(width)).await.unwrap_err() {
            PortError::Permanent(m) => {
                assert!(m.contains("latentmint-dev") && m.contains("width") && m.contains("HTTP 400"), "{m}")
            }
            other => panic!("width {width}: expected a permanent error, got {other:?}"),
        }
    }
    generator.generate(&request(64)).await.expect("the container serves the next request");
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

/// An HTTP server that answers every request with 200 and `body` (`content_type`).
fn answering(content_type: &'static str, body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten().take(8) {
            let mut buf = [0u8; 65536];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_from_the_endpoint_is_named_and_falls_back() {
    // A body that is not the contract, as a proxy in the way might send.
    let url = answering("text/html", "<html>502 from a proxy</html>".into());
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

    // The contract's shape, but a model digest that is not the digest over its files: it
    // would go into the signed record, so it is refused here.
    let body = serde_json::json!({
        "version": 1, "image_png_base64": "", "prompt_truncated": false, "elapsed_ms": 1,
        "parameters": {"prompt": "p", "negative_prompt": "", "seed": 1, "steps": 2, "guidance": 1.0,
                       "width": 64, "height": 64, "scheduler": "ddim"},
        "model": {"id": "sd", "sha256": "ab".repeat(32), "files": {"unet/model.onnx": "cd".repeat(32)}},
        "generator": {"name": "other", "version": "1", "backend": "onnx-cuda"}
    });
    let sm = SageMakerGenerator::new(client(&answering("application/json", body.to_string())), "latentmint-foreign");
    let err = sm.generate(&request(64)).await.unwrap_err().to_string();
    assert!(err.contains("endpoint latentmint-foreign named its model wrongly: model.sha256 is"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_comes_back_as_one_image_per_seed() {
    let server = Container::start(&tiny_model());
    let sm = SageMakerGenerator::new(client(&server.url), "latentmint-dev");
    let images = sm.generate_many(&request(64), 3).await.unwrap();
    assert_eq!(images.len(), 3);
    let local = onnx();
    for (k, img) in images.iter().enumerate() {
        let mut one = request(64);
        one.params.seed += k as u64;
        assert_eq!(img.record.params.seed, one.params.seed);
        let want = local.generate(&one).await.unwrap();
        // The batch ran as one UNet call; the same pixels as a single generation.
        let (a, b) = (image::load_from_memory(&img.png).unwrap(), image::load_from_memory(&want.png).unwrap());
        let max = a.as_bytes().iter().zip(b.as_bytes()).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
        assert!(max <= 1, "image {k} differs from the single generation by {max} levels");
    }
}

/// moto S3 with a bucket, the `serve` container, the async stand-in in front of it, and a
/// generator that invokes it asynchronously.
struct AsyncRig {
    _moto: Moto,
    _server: Container,
    _endpoint: AsyncEndpoint,
    s3: aws_sdk_s3::Client,
    url: String,
}

async fn async_rig() -> AsyncRig {
    let moto = Moto::start();
    let s3 = moto.s3();
    s3.create_bucket().bucket("latentmint-async").send().await.expect("create bucket");
    let server = Container::start(&tiny_model());
    let endpoint = AsyncEndpoint::start(s3.clone(), &server.url, "latentmint-async").await;
    let url = endpoint.url.clone();
    AsyncRig { _moto: moto, _server: server, _endpoint: endpoint, s3, url }
}

impl AsyncRig {
    fn generator(&self, endpoint: &str, timeout: Duration) -> SageMakerGenerator {
        let input = S3Location::parse("test", "s3://latentmint-async/async-input").unwrap();
        SageMakerGenerator::new(client(&self.url), endpoint).with_async(AsyncInvocation::new(
            self.s3.clone(),
            input,
            timeout,
        ))
    }

    async fn keys(&self, prefix: &str) -> Vec<String> {
        let out = self.s3.list_objects_v2().bucket("latentmint-async").prefix(prefix).send().await.unwrap();
        out.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_invoke_endpoint_async_goes_through_s3_and_returns_the_engine_png() {
    let rig = async_rig().await;
    let img = rig.generator("latentmint-dev", Duration::from_secs(60)).generate(&request(64)).await.unwrap();
    assert_eq!(img.record.backend, "sagemaker-async:latentmint-dev (onnx-cpu)");
    let local = onnx().generate(&request(64)).await.unwrap();
    assert_eq!(img.png, local.png, "same engine, same request, same bytes");
    // The result stays where SageMaker wrote it; the staged request is cleaned up.
    assert_eq!(rig.keys("async-output/").await.len(), 1);
    assert!(rig.keys("async-input/").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn async_failures_are_read_from_the_failure_location() {
    let rig = async_rig().await;
    let err = rig.generator("latentmint-dev", Duration::from_secs(60)).generate(&request(63)).await.unwrap_err();
    match err {
        PortError::Permanent(m) => assert!(m.contains("latentmint-dev") && m.contains("width"), "{m}"),
        other => panic!("expected a permanent error, got {other:?}"),
    }
    assert_eq!(rig.keys("async-failures/").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_async_result_that_never_comes_times_out_and_falls_back() {
    let rig = async_rig().await;
    let sm = rig.generator("silent", Duration::from_secs(1));
    let err = sm.generate(&request(64)).await.unwrap_err();
    assert!(matches!(&err, PortError::Transient(m) if m.contains("timed out") && m.contains("silent")), "{err:?}");
    let policy = RetryPolicy { attempts: 1, ..RetryPolicy::default() };
    let g = FallbackGenerator::new(
        Some(("silent".into(), Arc::new(sm))),
        onnx(),
        policy,
        CircuitBreaker::new(3, Duration::from_secs(30)),
    );
    let img = g.generate(&request(64)).await.unwrap();
    assert_eq!(img.record.backend, "onnx-cpu");
    assert!(img.record.fallback_reason.unwrap().contains("timed out"));
}

/// `png` re-encoded with `bytes` of text in a tEXt chunk (stored as is, uncompressed).
fn with_padding(png: &[u8], bytes: usize) -> Vec<u8> {
    let (rgb, w, h) = latentmint_diffusion::decode_rgb(png).unwrap();
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.add_text_chunk("padding".into(), "a".repeat(bytes)).unwrap();
    let mut writer = enc.write_header().unwrap();
    writer.write_image_data(&rgb).unwrap();
    writer.finish().unwrap();
    out
}
