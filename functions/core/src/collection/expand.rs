//! Expansion: a validated collection becomes its jobs, deterministically (the same file always
//! yields the same job ids, seeds and traits), and an outside request becomes one job.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

use super::schema::*;
use super::{Collection, placeholders};
use crate::address::EvmAddress;
use crate::field::FieldError;
use crate::job::{GenerationParams, JobId, JobSpec, seed_from_digest};
use crate::sanitize::{MAX_PROMPT_CHARS, sanitize_prompt};

impl GenerationSection {
    /// The parameters of one job with `seed`.
    fn params(&self, seed: u64) -> GenerationParams {
        GenerationParams {
            steps: self.steps,
            guidance: self.guidance,
            width: self.width,
            height: self.height,
            scheduler: self.scheduler.clone(),
            seed,
        }
    }
}

impl CollectionSection {
    /// `text` with the collection's style appended (the brand's look on every prompt).
    fn styled(&self, text: &str) -> String {
        if self.style.is_empty() { text.to_string() } else { format!("{text}, {}", self.style) }
    }
}

impl Collection {
    /// same job ids, seeds and traits, so re-submitting a batch never duplicates work.
    pub fn jobs(&self) -> Result<Vec<JobSpec>, FieldError> {
        let f = &self.file;
        let g = &f.generation;
        let mut out = Vec::new();
        // Positions in file order: every copy of prompt 0, then of prompt 1, ... (at most
        // MAX_JOBS, checked by `validate`).
        let mut position = 0u32;
        for (i, p) in f.prompts.iter().enumerate() {
            for copy in 0..p.count {
                let seed = p.seed.unwrap_or_else(|| derive_seed(g.seed, i as u64, u64::from(copy)));
                let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x7472_6169_7473);
                let mut traits = Vec::new();
                let mut text = p.text.clone();
                for name in placeholders(&p.text) {
                    if traits.iter().any(|(n, _): &(String, String)| *n == name) {
                        continue;
                    }
                    let Some(t) = f.traits.iter().find(|t| t.name == name) else { continue };
                    let value = pick_weighted(&mut rng, &t.values);
                    text = text.replace(&format!("{{{name}}}"), &value);
                    traits.push((name, value));
                }
                let prompt = f.collection.styled(&text);
                if prompt.chars().count() > MAX_PROMPT_CHARS {
                    return Err(FieldError::new(
                        format!("prompts[{i}].text"),
                        "is too long once traits and style are added",
                        "shorten the template or the style",
                    ));
                }
                let params = g.params(seed);
                let id =
                    JobId::derive(&f.collection.name, &f.collection.symbol, position, i as u32, copy, &prompt, &params);
                position += 1;
                out.push(JobSpec {
                    id,
                    collection: f.collection.name.clone(),
                    index: i as u32,
                    copy,
                    template: p.text.clone(),
                    prompt,
                    negative_prompt: f.collection.negative_prompt.clone(),
                    traits,
                    params,
                    recipient: self.recipient,
                    description: f.collection.description.clone(),
                    review: f.review,
                    request: None,
                });
            }
        }
        Ok(out)
    }
}

impl Collection {
    /// One job for an outside request (a shop's order, an API call): `request_id` is the
    /// caller's id for it, so a retried webhook maps to the same job; the prompt is cleaned and
    /// gets the collection's style; the seed derives from the request id. The recipient
    /// defaults to the collection's.
    pub fn job_for_request(
        &self,
        request_id: &str,
        prompt: &str,
        recipient: Option<EvmAddress>,
    ) -> Result<JobSpec, FieldError> {
        let request_id = request_id.trim();
        if request_id.is_empty()
            || request_id.len() > 128
            || !request_id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:#".contains(c))
        {
            return Err(FieldError::new(
                "order_id",
                format!("`{request_id}` is not a usable request id"),
                "send the order's id: 1 to 128 letters, digits or -_.:#",
            ));
        }
        let f = &self.file;
        let g = &f.generation;
        let text = sanitize_prompt("prompt", prompt)?;
        let composed = f.collection.styled(&text);
        if composed.chars().count() > MAX_PROMPT_CHARS {
            return Err(FieldError::new("prompt", "is too long once the style is added", "shorten the prompt"));
        }
        let mut h = Sha256::new();
        h.update(b"latentmint/seed/request/v1");
        h.update(g.seed.to_be_bytes());
        h.update(request_id.as_bytes());
        let seed = seed_from_digest(&h.finalize().into());
        let params = g.params(seed);
        Ok(JobSpec {
            id: JobId::derive_request(&f.collection.name, &f.collection.symbol, request_id, &composed, &params),
            collection: f.collection.name.clone(),
            index: 0,
            copy: 0,
            template: text,
            prompt: composed,
            negative_prompt: f.collection.negative_prompt.clone(),
            traits: vec![],
            params,
            recipient: recipient.unwrap_or(self.recipient),
            description: f.collection.description.clone(),
            review: f.review,
            request: Some(request_id.to_string()),
        })
    }
}

/// One of a trait's values, drawn by weight.
pub(super) fn pick_weighted(rng: &mut ChaCha20Rng, values: &[TraitValue]) -> String {
    let total: f64 = values.iter().map(|v| v.weight).sum();
    let mut x = rng.random::<f64>() * total;
    for v in values {
        if x < v.weight {
            return v.value.clone();
        }
        x -= v.weight;
    }
    values.last().map(|v| v.value.clone()).unwrap_or_default()
}

/// Seed for copy `copy` of prompt `index`: a hash, so neighbouring jobs get unrelated noise.
fn derive_seed(base: u64, index: u64, copy: u64) -> u64 {
    let mut h = Sha256::new();
    h.update(b"latentmint/seed/v1");
    h.update(base.to_be_bytes());
    h.update(index.to_be_bytes());
    h.update(copy.to_be_bytes());
    seed_from_digest(&h.finalize().into())
}
