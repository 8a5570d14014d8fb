//! Endpoint first, local engine second.
//!
//! The endpoint is tried with retries (exponential backoff, full jitter) on transient errors:
//! throttling, 5xx, timeouts, a model that is not ready, garbage. When it still fails, or when
//! the circuit breaker is open because it failed repeatedly, the fallback generator makes the
//! image and the reason is recorded in its provenance. A request the endpoint refuses as
//! invalid is not retried and not sent to the fallback: it would fail there too.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use latentmint_core::ports::{GeneratedImage, GenerationRequest, Generator, PortError, PortResult};
use rand::Rng;
use tracing::warn;

/// How often and how patiently to retry the endpoint.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per image (1 = no retry).
    pub attempts: u32,
    /// First backoff ceiling.
    pub base_delay: Duration,
    /// Largest backoff ceiling.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { attempts: 3, base_delay: Duration::from_millis(200), max_delay: Duration::from_secs(5) }
    }
}

impl RetryPolicy {
    /// Full-jitter backoff before retry `attempt` (0-based): uniform in [0, min(max, base * 2^n)].
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.base_delay.saturating_mul(1u32 << attempt.min(16)).min(self.max_delay);
        Duration::from_secs_f64(rand::rng().random::<f64>() * ceiling.as_secs_f64())
    }
}

/// Stops calling an endpoint that keeps failing: after `threshold` consecutive failed images
/// it opens for `cooldown`, then lets one request through (half-open); a success closes it.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    failures: u32,
    open_until: Option<Instant>,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self { threshold: threshold.max(1), cooldown, failures: 0, open_until: None }
    }

    /// May the endpoint be called at `now`?
    pub fn allows(&self, now: Instant) -> bool {
        self.open_until.is_none_or(|t| now >= t)
    }

    /// The endpoint served an image.
    pub fn record_success(&mut self) {
        self.failures = 0;
        self.open_until = None;
    }

    /// The endpoint failed an image (after its retries).
    pub fn record_failure(&mut self, now: Instant) {
        self.failures += 1;
        if self.failures >= self.threshold {
            self.open_until = Some(now + self.cooldown);
        }
    }

    /// Open right now.
    pub fn is_open(&self, now: Instant) -> bool {
        !self.allows(now)
    }
}

/// Endpoint-first generator with a fallback.
pub struct FallbackGenerator {
    primary: Option<(String, Arc<dyn Generator>)>,
    fallback: Arc<dyn Generator>,
    policy: RetryPolicy,
    breaker: Mutex<CircuitBreaker>,
}

/// The generator stack every runner builds, `latentmint run` and the Lambda functions alike:
/// the SageMaker `endpoint` (named, for provenance) first, with retries and a circuit breaker
/// (3 failures open it for 60 s), and the local ONNX engine as the fallback. Without an
/// endpoint the local engine alone; with an endpoint but no local engine, a failed endpoint
/// fails the job, saying how to add the fallback.
pub fn generator_stack(
    endpoint: Option<(String, Arc<dyn Generator>)>,
    local: Option<Arc<dyn Generator>>,
) -> Result<Arc<dyn Generator>, PortError> {
    Ok(match (endpoint, local) {
        (Some(primary), local) => Arc::new(FallbackGenerator::new(
            Some(primary),
            local.unwrap_or_else(|| Arc::new(NoLocalEngine)),
            RetryPolicy::default(),
            CircuitBreaker::new(3, Duration::from_secs(60)),
        )),
        (None, Some(local)) => local,
        (None, None) => {
            return Err(PortError::Permanent(
                "no generator: set a SageMaker endpoint (LATENTMINT_ENDPOINT, generation.endpoint) or an ONNX model folder (LATENTMINT_MODEL_DIR, generation.model), or both".into(),
            ));
        }
    })
}

/// The fallback of a stack without a local engine (`LATENTMINT_MODEL_DIR` unset): the endpoint
/// is its only generator, so when the endpoint fails the job fails, saying why.
pub struct NoLocalEngine;

#[async_trait]
impl Generator for NoLocalEngine {
    async fn generate(&self, _: &GenerationRequest) -> PortResult<GeneratedImage> {
        Err(PortError::Permanent(
            "the SageMaker endpoint failed and this function has no local engine to fall back on; set LATENTMINT_MODEL_DIR (the stack's GenerationLayer) for the ONNX fallback".into(),
        ))
    }
}

impl FallbackGenerator {
    /// `primary` (named, for provenance) in front of `fallback`. Without a primary, every image
    /// comes from the fallback, with the reason "no endpoint configured".
    pub fn new(
        primary: Option<(String, Arc<dyn Generator>)>,
        fallback: Arc<dyn Generator>,
        policy: RetryPolicy,
        breaker: CircuitBreaker,
    ) -> Self {
        Self { primary, fallback, policy, breaker: Mutex::new(breaker) }
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, CircuitBreaker> {
        // The breaker holds plain counters: a panic elsewhere cannot leave it inconsistent.
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Generator for FallbackGenerator {
    async fn generate(&self, req: &GenerationRequest) -> PortResult<GeneratedImage> {
        let reason = match &self.primary {
            None => "no endpoint configured".to_string(),
            Some((name, _)) if !self.breaker().allows(Instant::now()) => {
                format!("endpoint {name} skipped: circuit open after repeated failures")
            }
            Some((name, primary)) => {
                let mut last = String::new();
                let mut served = None;
                for attempt in 0..self.policy.attempts.max(1) {
                    match primary.generate(req).await {
                        Ok(img) => {
                            served = Some(img);
                            break;
                        }
                        Err(PortError::Permanent(m)) => return Err(PortError::Permanent(m)),
                        Err(e) => {
                            warn!(endpoint = %name, attempt = attempt + 1, "endpoint failed: {e}");
                            last = e.to_string();
                            if attempt + 1 < self.policy.attempts {
                                tokio::time::sleep(self.policy.delay(attempt)).await;
                            }
                        }
                    }
                }
                if let Some(img) = served {
                    self.breaker().record_success();
                    return Ok(img);
                }
                self.breaker().record_failure(Instant::now());
                format!("endpoint {name} failed {} times, last: {last}", self.policy.attempts.max(1))
            }
        };
        let mut img = self.fallback.generate(req).await?;
        img.record.fallback_reason = Some(reason);
        Ok(img)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use latentmint_core::{GenerationParams, GenerationRecord, JobId};

    use super::*;

    struct Scripted {
        calls: AtomicUsize,
        fail_first: usize,
        error: PortError,
        backend: &'static str,
    }

    impl Scripted {
        fn new(fail_first: usize, error: PortError, backend: &'static str) -> Arc<Self> {
            Arc::new(Self { calls: AtomicUsize::new(0), fail_first, error, backend })
        }
    }

    #[async_trait]
    impl Generator for Scripted {
        async fn generate(&self, req: &GenerationRequest) -> PortResult<GeneratedImage> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if n < self.fail_first {
                return Err(self.error.clone());
            }
            Ok(GeneratedImage {
                png: vec![1],
                record: GenerationRecord {
                    model_id: "m".into(),
                    model_sha256: String::new(),
                    model_files: Default::default(),
                    params: req.params.clone(),
                    prompt_truncated: false,
                    generator: "g".into(),
                    generator_version: "0".into(),
                    backend: self.backend.into(),
                    fallback_reason: None,
                    adapters: vec![],
                    elapsed_ms: 0,
                    image_sha256: String::new(),
                },
            })
        }
    }

    fn req() -> GenerationRequest {
        GenerationRequest {
            job_id: JobId::from_bytes([1; 32]),
            prompt: "p".into(),
            negative_prompt: String::new(),
            params: GenerationParams {
                steps: 1,
                guidance: 1.0,
                width: 8,
                height: 8,
                scheduler: "ddim".into(),
                seed: 0,
            },
            init_image: None,
        }
    }

    fn quick() -> RetryPolicy {
        RetryPolicy { attempts: 3, base_delay: Duration::from_millis(1), max_delay: Duration::from_millis(2) }
    }

    #[tokio::test]
    async fn retries_then_serves_from_the_endpoint() {
        let primary = Scripted::new(2, PortError::Transient("503".into()), "sagemaker");
        let fallback = Scripted::new(0, PortError::Transient(String::new()), "onnx-cpu");
        let g = FallbackGenerator::new(
            Some(("ep".into(), primary.clone())),
            fallback.clone(),
            quick(),
            CircuitBreaker::new(3, Duration::from_secs(60)),
        );
        let img = g.generate(&req()).await.unwrap();
        assert_eq!(img.record.backend, "sagemaker");
        assert_eq!(img.record.fallback_reason, None);
        assert_eq!(primary.calls.load(Ordering::SeqCst), 3);
        assert_eq!(fallback.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn falls_back_and_records_why() {
        let primary =
            Scripted::new(usize::MAX, PortError::Transient("endpoint ep failed (HTTP 503)".into()), "sagemaker");
        let fallback = Scripted::new(0, PortError::Transient(String::new()), "onnx-cpu");
        let g = FallbackGenerator::new(
            Some(("ep".into(), primary.clone())),
            fallback,
            quick(),
            CircuitBreaker::new(10, Duration::from_secs(60)),
        );
        let img = g.generate(&req()).await.unwrap();
        assert_eq!(img.record.backend, "onnx-cpu");
        let why = img.record.fallback_reason.unwrap();
        assert!(why.contains("endpoint ep failed 3 times") && why.contains("503"), "{why}");
    }

    #[tokio::test]
    async fn circuit_opens_and_stops_calling_the_endpoint() {
        let primary = Scripted::new(usize::MAX, PortError::Transient("timeout".into()), "sagemaker");
        let fallback = Scripted::new(0, PortError::Transient(String::new()), "onnx-cpu");
        let g = FallbackGenerator::new(
            Some(("ep".into(), primary.clone())),
            fallback,
            quick(),
            CircuitBreaker::new(2, Duration::from_secs(60)),
        );
        for _ in 0..2 {
            g.generate(&req()).await.unwrap();
        }
        assert_eq!(primary.calls.load(Ordering::SeqCst), 6);
        let img = g.generate(&req()).await.unwrap();
        assert_eq!(primary.calls.load(Ordering::SeqCst), 6, "open circuit: endpoint not called");
        assert!(img.record.fallback_reason.unwrap().contains("circuit open"));
    }

    #[tokio::test]
    async fn invalid_requests_are_not_retried_or_sent_to_the_fallback() {
        let primary =
            Scripted::new(usize::MAX, PortError::Permanent("width: 63 is not a multiple".into()), "sagemaker");
        let fallback = Scripted::new(0, PortError::Transient(String::new()), "onnx-cpu");
        let g = FallbackGenerator::new(
            Some(("ep".into(), primary.clone())),
            fallback.clone(),
            quick(),
            CircuitBreaker::new(2, Duration::from_secs(60)),
        );
        assert!(matches!(g.generate(&req()).await, Err(PortError::Permanent(_))));
        assert_eq!((primary.calls.load(Ordering::SeqCst), fallback.calls.load(Ordering::SeqCst)), (1, 0));
    }

    #[test]
    fn breaker_half_opens_after_cooldown_and_closes_on_success() {
        let now = Instant::now();
        let mut b = CircuitBreaker::new(1, Duration::from_secs(10));
        b.record_failure(now);
        assert!(b.is_open(now + Duration::from_secs(5)));
        assert!(b.allows(now + Duration::from_secs(10)));
        b.record_success();
        assert!(b.allows(now));
    }

    #[test]
    fn backoff_is_bounded_full_jitter() {
        let p =
            RetryPolicy { attempts: 5, base_delay: Duration::from_millis(100), max_delay: Duration::from_millis(300) };
        for attempt in 0..6 {
            let cap = Duration::from_millis(300).min(Duration::from_millis(100 << attempt));
            let samples: Vec<Duration> = (0..400).map(|_| p.delay(attempt)).collect();
            assert!(samples.iter().all(|d| *d <= cap), "{attempt}: above {cap:?}");
            // Full jitter is uniform over [0, cap]: it waits, about half the cap on average,
            // and reaches past three quarters of it. A loop with no delay fails here.
            let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
            assert!(mean >= cap * 2 / 5 && mean <= cap * 3 / 5, "{attempt}: mean {mean:?} of a cap of {cap:?}");
            assert!(samples.iter().any(|d| *d >= cap * 3 / 4), "{attempt}: never near the cap");
        }
    }

    #[tokio::test]
    async fn a_generate_function_without_a_local_engine_says_how_to_give_it_one() {
        let req = GenerationRequest {
            job_id: latentmint_core::JobId::from_bytes([1; 32]),
            prompt: "p".into(),
            negative_prompt: String::new(),
            params: latentmint_core::GenerationParams {
                steps: 1,
                guidance: 1.0,
                width: 8,
                height: 8,
                scheduler: "ddim".into(),
                seed: 1,
            },
            init_image: None,
        };
        let msg = NoLocalEngine.generate(&req).await.unwrap_err().to_string();
        assert!(msg.contains("LATENTMINT_MODEL_DIR"), "{msg}");
    }

    #[test]
    fn a_stack_needs_an_endpoint_or_a_local_engine() {
        let e = generator_stack(None, None).err().unwrap().to_string();
        assert!(e.contains("LATENTMINT_MODEL_DIR") && e.contains("generation.endpoint"), "{e}");
    }
}
