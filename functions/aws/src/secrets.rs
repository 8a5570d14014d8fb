//! A shared secret kept in AWS Secrets Manager: the key the shops sign their order webhooks
//! with (HMAC-SHA256).
//!
//! The value is never in the function's environment, where anyone allowed to read the
//! function's configuration would see it: the function reads it with its own role, once, and
//! keeps it for a while ([`SharedSecret::new`]'s `ttl`). The previous version (`AWSPREVIOUS`)
//! is kept beside the current one, so that while a secret is being rotated, orders signed by a
//! shop that has not switched yet are still accepted. A signature that matches neither may mean
//! the secret was just rotated: [`SharedSecret::refresh`] reads it again, but not more often
//! than once per `min_refresh`, so forged requests cannot turn into a flood of Secrets Manager
//! calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::error::{DisplayErrorContext, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use tokio::sync::Mutex;

/// The secret could not be read.
#[derive(Debug, thiserror::Error)]
#[error("Secrets Manager secret {secret}: {message}")]
pub struct SecretError {
    /// The secret's ARN or name.
    pub secret: String,
    /// What went wrong, and the fix where there is one.
    pub message: String,
}

/// The versions of a secret a signature may be checked against: the current one first.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretVersions {
    /// `AWSCURRENT`.
    pub current: Vec<u8>,
    /// `AWSPREVIOUS`, when the secret has been rotated at least once.
    pub previous: Option<Vec<u8>>,
}

impl SecretVersions {
    /// The current version, then the previous one.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(self.current.as_slice()).chain(self.previous.as_deref())
    }
}

impl std::fmt::Debug for SecretVersions {
    // Never print a secret, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretVersions")
            .field("current", &"<redacted>")
            .field("previous", &self.previous.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A Secrets Manager secret, read on first use and cached.
pub struct SharedSecret {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    ttl: Duration,
    min_refresh: Duration,
    cached: Mutex<Option<(Instant, Arc<SecretVersions>)>>,
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSecret").field("secret_id", &self.secret_id).field("ttl", &self.ttl).finish()
    }
}

impl SharedSecret {
    /// The secret `secret_id` (ARN or name), kept for `ttl` after each read and read again on
    /// [`refresh`](Self::refresh) at most once per `min_refresh`.
    pub fn new(
        client: aws_sdk_secretsmanager::Client,
        secret_id: impl Into<String>,
        ttl: Duration,
        min_refresh: Duration,
    ) -> Self {
        Self { client, secret_id: secret_id.into(), ttl, min_refresh, cached: Mutex::new(None) }
    }

    /// The secret's versions: the cached ones while younger than the ttl, else read now.
    pub async fn versions(&self) -> Result<Arc<SecretVersions>, SecretError> {
        let mut cached = self.cached.lock().await;
        if let Some((read_at, versions)) = cached.as_ref()
            && read_at.elapsed() < self.ttl
        {
            return Ok(versions.clone());
        }
        let versions = Arc::new(self.read().await?);
        *cached = Some((Instant::now(), versions.clone()));
        Ok(versions)
    }

    /// Reads the secret again, unless the cached copy is younger than `min_refresh`: the new
    /// versions, or `None` when it was too soon or nothing changed.
    pub async fn refresh(&self) -> Result<Option<Arc<SecretVersions>>, SecretError> {
        let mut cached = self.cached.lock().await;
        if let Some((read_at, _)) = cached.as_ref()
            && read_at.elapsed() < self.min_refresh
        {
            return Ok(None);
        }
        let fresh = Arc::new(self.read().await?);
        let changed = cached.as_ref().is_none_or(|(_, old)| *old != fresh);
        *cached = Some((Instant::now(), fresh.clone()));
        Ok(changed.then_some(fresh))
    }

    async fn read(&self) -> Result<SecretVersions, SecretError> {
        let current = self.stage("AWSCURRENT").await?.unwrap_or_default();
        if current.is_empty() {
            return Err(
                self.error("is empty: put the shops' signing secret in it (aws secretsmanager put-secret-value)")
            );
        }
        let previous = self.stage("AWSPREVIOUS").await?.filter(|p| !p.is_empty());
        tracing::info!(secret = %self.secret_id, previous = previous.is_some(), "read the webhook secret");
        Ok(SecretVersions { current, previous })
    }

    /// One version stage's value (string or binary); `None` when the secret has no previous
    /// version.
    async fn stage(&self, stage: &str) -> Result<Option<Vec<u8>>, SecretError> {
        match self.client.get_secret_value().secret_id(&self.secret_id).version_stage(stage).send().await {
            Ok(out) => Ok(out.secret_string.map(String::into_bytes).or(out.secret_binary.map(|b| b.into_inner()))),
            Err(e) if not_found(&e) && stage == "AWSPREVIOUS" => Ok(None),
            Err(e) if not_found(&e) => {
                Err(self
                    .error("does not exist or has no current version: check the stack's WebhookSecretArn parameter"))
            }
            Err(e) => Err(self.error(&format!("GetSecretValue ({stage}) failed: {}", DisplayErrorContext(&e)))),
        }
    }

    fn error(&self, message: &str) -> SecretError {
        SecretError { secret: self.secret_id.clone(), message: message.to_string() }
    }
}

fn not_found(e: &SdkError<GetSecretValueError>) -> bool {
    e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_never_printed() {
        let v = SecretVersions { current: b"shop-secret".to_vec(), previous: Some(b"old-secret".to_vec()) };
        let printed = format!("{v:?}");
        assert!(!printed.contains("shop-secret") && !printed.contains("old-secret"), "{printed}");
        assert_eq!(v.iter().collect::<Vec<_>>(), vec![b"shop-secret".as_slice(), b"old-secret".as_slice()]);
    }
}
