//! # latentmint-aws
//!
//! Adapters to AWS services: the stage queues on SQS ([`SqsQueue`]), blobs on S3
//! ([`S3BlobStore`]), job records on DynamoDB ([`DynamoJobStore`]), a KMS transaction signer
//! ([`KmsSigner`]) and Content Credentials signer ([`KmsClaimSigner`]), image generation on a
//! SageMaker endpoint
//! ([`SageMakerGenerator`]) and the policy that puts it in front of the local ONNX engine
//! ([`FallbackGenerator`]: retries with backoff and jitter, a circuit breaker, and the
//! fallback's reason recorded in provenance), and the shops' webhook secret from Secrets Manager
//! ([`SharedSecret`]).

mod credentials;
mod dynamodb;
mod evolutions;
mod fallback;
mod kms;
mod s3;
mod sagemaker;
mod secrets;
mod sqs;

pub use credentials::{KmsClaimSigner, kms_stamper};
pub use dynamodb::{DynamoJobStore, STATE_INDEX};
pub use evolutions::DynamoEvolutionStore;
pub use fallback::{CircuitBreaker, FallbackGenerator, NoLocalEngine, RetryPolicy, generator_stack};
pub use kms::{KmsError, KmsSigner};
pub use s3::{S3BlobStore, STAGE_PREFIX};
pub use sagemaker::{AsyncInvocation, S3Location, SageMakerGenerator};
pub use secrets::{SecretError, SecretVersions, SharedSecret};
pub use sqs::SqsQueue;
