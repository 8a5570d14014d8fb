//! Stamping as part of generation: a `Generator` whose images leave it with credentials.

use std::sync::Arc;

use async_trait::async_trait;
use latentmint_core::ports::{GeneratedImage, GenerationRequest, Generator, PortError, PortResult};
use sha2::{Digest, Sha256};

use crate::Stamper;

/// Wraps a generator (ONNX, SageMaker, the fallback of both) so that every image it returns
/// carries Content Credentials, and its record's `image_sha256` names the stamped bytes.
pub struct Credentialed {
    inner: Arc<dyn Generator>,
    stamper: Arc<Stamper>,
}

impl Credentialed {
    /// `inner`'s images, stamped by `stamper`.
    pub fn new(inner: Arc<dyn Generator>, stamper: Arc<Stamper>) -> Self {
        Self { inner, stamper }
    }
}

#[async_trait]
impl Generator for Credentialed {
    async fn generate(&self, req: &GenerationRequest) -> PortResult<GeneratedImage> {
        let mut image = self.inner.generate(req).await?;
        // A few milliseconds of hashing and one ECDSA signature: not worth a blocking thread.
        let png = self
            .stamper
            .stamp(&image.png, req, &image.record)
            .await
            .map_err(|e| PortError::Permanent(format!("job {}: {e}", req.job_id.short())))?;
        image.record.image_sha256 = hex::encode(Sha256::digest(&png));
        image.png = png;
        Ok(image)
    }
}
