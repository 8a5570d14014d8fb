//! # latentmint-aws
//!
//! Adapters to AWS services. So far: image generation on a SageMaker endpoint
//! ([`SageMakerGenerator`]) and the policy that puts it in front of the local ONNX engine
//! ([`FallbackGenerator`]: retries with backoff and jitter, a circuit breaker, and the
//! fallback's reason recorded in provenance).

mod fallback;
mod sagemaker;

pub use fallback::{CircuitBreaker, FallbackGenerator, RetryPolicy};
pub use sagemaker::{AsyncInvocation, S3Location, SageMakerGenerator};
