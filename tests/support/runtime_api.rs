//! A stand-in for the Lambda Runtime API, so the real `latentmint-lambda` binary can run in a
//! test as it runs in Lambda: it polls `GET /2018-06-01/runtime/invocation/next` for an event
//! and posts the handler's answer to `.../invocation/{id}/response` (or `.../error`).
//!
//! This is the HTTP contract of AWS's "Lambda runtime API" (the one the Runtime Interface
//! Emulator serves), with the headers `lambda_runtime` reads: request id, deadline and the
//! invoked function's ARN. Events are handed out one at a time, in the order [`invoke`] queues
//! them.
//!
//! [`invoke`]: RuntimeApi::invoke

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::sync::{Mutex, mpsc};

/// What the function answered to one event.
#[derive(Debug)]
pub enum Answer {
    /// `POST .../invocation/{id}/response`: the handler's result.
    Response(serde_json::Value),
    /// `POST .../invocation/{id}/error`: the handler failed.
    Error(serde_json::Value),
}

#[derive(Clone)]
struct Shared {
    events: Arc<Mutex<mpsc::UnboundedReceiver<(String, serde_json::Value)>>>,
    answers: mpsc::UnboundedSender<(String, Answer)>,
    function_arn: String,
}

/// The stand-in, listening on 127.0.0.1 until dropped.
pub struct RuntimeApi {
    /// `127.0.0.1:<port>`: the value of `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    events: mpsc::UnboundedSender<(String, serde_json::Value)>,
    answers: Mutex<mpsc::UnboundedReceiver<(String, Answer)>>,
    task: tokio::task::JoinHandle<()>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn next(State(s): State<Shared>) -> axum::response::Response {
    // Long poll, as Lambda does: the runtime waits here between events.
    let Some((id, event)) = s.events.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + Duration::from_secs(900);
    (
        [
            ("lambda-runtime-aws-request-id", id),
            ("lambda-runtime-deadline-ms", deadline.as_millis().to_string()),
            ("lambda-runtime-invoked-function-arn", s.function_arn.clone()),
            ("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000".to_string()),
            ("content-type", "application/json".to_string()),
        ],
        event.to_string(),
    )
        .into_response()
}

fn json(body: &Bytes) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into()))
}

async fn response(State(s): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let _ = s.answers.send((id, Answer::Response(json(&body))));
    StatusCode::ACCEPTED
}

async fn error(State(s): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let _ = s.answers.send((id, Answer::Error(json(&body))));
    StatusCode::ACCEPTED
}

async fn init_error(State(s): State<Shared>, body: Bytes) -> StatusCode {
    let _ = s.answers.send(("init".into(), Answer::Error(json(&body))));
    StatusCode::ACCEPTED
}

impl RuntimeApi {
    /// Starts one on a free port, for a function named `function`.
    pub async fn start(function: &str) -> Self {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (answers_tx, answers_rx) = mpsc::unbounded_channel();
        let shared = Shared {
            events: Arc::new(Mutex::new(events_rx)),
            answers: answers_tx,
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function}"),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("free port");
        let address = listener.local_addr().expect("address").to_string();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            address,
            events: events_tx,
            answers: Mutex::new(answers_rx),
            task,
            next_id: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// Hands `event` to the function without waiting for its answer.
    pub fn send(&self, event: serde_json::Value) {
        let id = format!("req-{}", self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let _ = self.events.send((id, event));
    }

    /// Hands `event` to the function and waits up to `within` for its answer. `None`: no
    /// answer in time (the function is stuck, or exited; its stderr says why).
    pub async fn invoke(&self, event: serde_json::Value, within: Duration) -> Option<Answer> {
        let id = format!("req-{}", self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        self.events.send((id.clone(), event)).ok()?;
        let mut answers = self.answers.lock().await;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (got, answer) = tokio::time::timeout_at(deadline, answers.recv()).await.ok()??;
            if got == id || got == "init" {
                return Some(answer);
            }
        }
    }
}
