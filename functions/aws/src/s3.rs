//! The `BlobStore` port on Amazon S3: generated images and staged payloads under a key prefix
//! in the stack's bucket. A put is atomic in S3 (readers see the old or the new object), as the
//! filesystem store gets by writing through a rename.

use async_trait::async_trait;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use latentmint_core::ports::{BlobStore, PortError, PortResult};

/// Where the stage functions keep their blobs in the stack's bucket (`blobs/images/...`,
/// `blobs/metadata/...`, `blobs/batches/...`): template.yaml's policies name the same paths.
pub const STAGE_PREFIX: &str = "blobs/";

/// Blobs in `s3://<bucket>/<prefix><key>`.
pub struct S3BlobStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl S3BlobStore {
    /// Blobs under `prefix` (e.g. `blobs/`) in `bucket`.
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into(), prefix: prefix.into() }
    }

    /// A stack's stage blobs (generated images, staged payloads) in its bucket: the one place
    /// the stage functions and the operator's dashboard agree on where they are (and the
    /// template's IAM policies grant, [`STAGE_PREFIX`]).
    pub fn stage_blobs(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self::new(client, bucket, STAGE_PREFIX)
    }

    /// The keys under `under` (relative to the store's prefix), sorted, at most `max`: an
    /// error when there are more, so a folder that grew past what is meant to be read is not
    /// cut short unseen.
    pub async fn keys_under(&self, under: &str, max: usize) -> PortResult<Vec<String>> {
        let full = format!("{}{under}", self.prefix);
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(&full).into_paginator().send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("ListObjectsV2", &full, e))?;
            for object in page.contents() {
                if let Some(k) = object.key().and_then(|k| k.strip_prefix(self.prefix.as_str())) {
                    keys.push(k.to_string());
                }
            }
            if keys.len() > max {
                return Err(PortError::Permanent(format!(
                    "s3://{}/{full}: more than {max} objects; keep at most {max} there",
                    self.bucket
                )));
            }
        }
        keys.sort();
        Ok(keys)
    }

    fn key(&self, key: &str) -> PortResult<String> {
        if key.is_empty() || key.starts_with('/') || key.split('/').any(|p| p == ".." || p == "." || p.is_empty()) {
            return Err(PortError::Permanent(format!("blob key `{key}` must be a relative path without `..`")));
        }
        Ok(format!("{}{key}", self.prefix))
    }

    fn error<E>(&self, what: &str, key: &str, e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> PortError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let at = format!("s3://{}/{key}", self.bucket);
        let status = e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
        let code = e.code().unwrap_or_default().to_string();
        if code == "NoSuchBucket" {
            return PortError::Permanent(format!(
                "{what} {at}: the bucket does not exist: deploy the stack (sam deploy) or fix the bucket name"
            ));
        }
        if status == 404 || code == "NoSuchKey" {
            return PortError::NotFound(at);
        }
        let message = format!("{what} {at}: {}", DisplayErrorContext(&e));
        if matches!(e, SdkError::ServiceError(_)) && (400..500).contains(&status) && status != 429 && code != "SlowDown"
        {
            PortError::Permanent(message)
        } else {
            PortError::Transient(message)
        }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> PortResult<()> {
        let k = self.key(key)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&k)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| self.error("PutObject", &k, e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> PortResult<Vec<u8>> {
        let k = self.key(key)?;
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&k)
            .send()
            .await
            .map_err(|e| self.error("GetObject", &k, e))?;
        let body =
            out.body.collect().await.map_err(|e| {
                PortError::Transient(format!("GetObject s3://{}/{k}: reading the body: {e}", self.bucket))
            })?;
        Ok(body.into_bytes().to_vec())
    }
}
