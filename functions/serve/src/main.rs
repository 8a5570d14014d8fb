//! `serve`: the SageMaker bring-your-own-container server around the latentmint engine.
//!
//! SageMaker starts the container as `docker run <image> serve` and talks to port 8080:
//! `GET /ping` (healthy once the model is loaded) and `POST /invocations` (the JSON contract in
//! `latentmint_generation_api`). The server also answers
//! `POST /endpoints/{name}/invocations`, the path the AWS SDK calls, so the SDK can be pointed
//! at a local server with an endpoint URL. Sessions are created once at start-up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use clap::Parser;
use latentmint_core::sanitize::sanitize_prompt;
use latentmint_diffusion::{DiffusionError, Engine, EngineOptions, GENERATOR_NAME, ImageRequest, InitImage};
use latentmint_generation_api::{API_VERSION, ApiError, ApiGenerator, ApiModel, ApiRequest, ApiResponse};
use tracing::{error, info};

/// SageMaker inference server for latentmint.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// SageMaker passes `serve`; accepted and ignored.
    #[arg(hide = true)]
    mode: Option<String>,
    /// Model folder (SageMaker unpacks the model archive into /opt/ml/model).
    #[arg(long, env = "SM_MODEL_DIR", default_value = "/opt/ml/model")]
    model: PathBuf,
    /// Address to listen on (the container passes 0.0.0.0; tests keep 127.0.0.1).
    #[arg(long, env = "LATENTMINT_SERVE_HOST", default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port (SageMaker uses 8080).
    #[arg(long, env = "LATENTMINT_SERVE_PORT", default_value_t = 8080)]
    port: u16,
    /// ONNX Runtime threads per operator (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Run on the GPU through the CUDA execution provider.
    #[arg(long, env = "LATENTMINT_CUDA")]
    cuda: bool,
}

struct AppState {
    engine: Mutex<Engine>,
    model: ApiModel,
    backend: String,
}

type Shared = Arc<AppState>;

fn reply(status: StatusCode, error: String) -> Response {
    (status, Json(ApiError { error })).into_response()
}

/// The largest request body taken: a 2048 x 2048 init image that does not compress (about 17 MB
/// as base64) with room to spare.
const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;

async fn ping() -> &'static str {
    "ok"
}

async fn invoke(State(st): State<Shared>, body: Result<Json<ApiRequest>, JsonRejection>) -> Response {
    let req = match body {
        Ok(Json(r)) => r,
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                format!("body: {}; send the JSON request documented in docs/engine.md", e.body_text()),
            );
        }
    };
    let prompt = match sanitize_prompt("prompt", &req.prompt) {
        Ok(p) => p,
        Err(e) => return reply(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let init_image = match (&req.init_image_png_base64, req.strength) {
        (None, None) => None,
        (Some(b64), Some(strength)) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("init_image_png_base64: not base64 ({e})"))
                .and_then(|png| {
                    latentmint_diffusion::decode_rgb(&png).map_err(|e| format!("init_image_png_base64: {e}"))
                });
            match decoded {
                Ok((rgb, w, h)) if (w, h) == (req.width, req.height) => Some(InitImage { rgb, strength }),
                Ok((_, w, h)) => {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        format!("init_image_png_base64: is {w}x{h}; send width and height of the image"),
                    );
                }
                Err(e) => return reply(StatusCode::BAD_REQUEST, e),
            }
        }
        _ => {
            return reply(
                StatusCode::BAD_REQUEST,
                "init_image_png_base64 and strength: give both for img2img, or neither".into(),
            );
        }
    };
    let image_req = ImageRequest {
        prompt,
        negative_prompt: req.negative_prompt.clone(),
        seed: req.seed,
        steps: req.steps,
        guidance: req.guidance,
        width: req.width,
        height: req.height,
        scheduler: req.scheduler.clone(),
        initial_latents: None,
        step_noise: None,
        init_image,
    };
    let count = req.num_images as usize;
    let st2 = st.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut engine = st2.engine.lock().map_err(|_| DiffusionError::BadOutput("engine lock poisoned".into()))?;
        engine.generate_batch(&image_req, count)
    })
    .await;
    match result {
        Ok(Ok(images)) => {
            let b64 = |png: &[u8]| base64::engine::general_purpose::STANDARD.encode(png);
            let Some(out) = images.first() else {
                return reply(StatusCode::INTERNAL_SERVER_ERROR, "the engine returned no image".into());
            };
            Json(ApiResponse {
                version: API_VERSION,
                image_png_base64: b64(&out.png),
                more_images_png_base64: images[1..].iter().map(|i| b64(&i.png)).collect(),
                parameters: req,
                prompt_truncated: out.prompt_truncated,
                model: st.model.clone(),
                generator: ApiGenerator {
                    name: GENERATOR_NAME.into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    backend: st.backend.clone(),
                },
                elapsed_ms: (out.total_seconds * 1000.0) as u64,
            })
            .into_response()
        }
        Ok(Err(e @ DiffusionError::Request { .. })) => reply(StatusCode::BAD_REQUEST, e.to_string()),
        Ok(Err(e)) => {
            error!("generation failed: {e}");
            reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, format!("generation thread: {e}")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let opts = EngineOptions {
        ort_library: None,
        intra_threads: args.threads,
        cuda: args.cuda,
        parallel_cfg: None,
        loras: vec![],
    };
    let model_dir = args.model.clone();
    let engine = tokio::task::spawn_blocking(move || Engine::load(&model_dir, &opts))
        .await?
        .with_context(|| format!("loading the model from {}", args.model.display()))?;
    let info = engine.model();
    let model = ApiModel { id: info.id.clone(), sha256: info.digest().to_string(), files: info.files.clone() };
    let backend = if args.cuda { "onnx-cuda" } else { "onnx-cpu" }.to_string();
    let state = Arc::new(AppState { engine: Mutex::new(engine), model, backend });
    let app = Router::new()
        .route("/ping", get(ping))
        .route("/invocations", post(invoke))
        .route("/endpoints/{name}/invocations", post(invoke))
        // axum's default (2 MB) refused img2img requests whose init image is larger: SageMaker
        // sends real-time bodies of up to 6 MB and async inputs of up to 1 GB. The init image
        // is the only large field, and its decoder is capped separately (64 MiB of pixels).
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(state);
    let addr = SocketAddr::new(args.host, args.port);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    info!(%addr, "serving");
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
