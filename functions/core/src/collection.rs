//! The collection spec: what a studio writes (a TOML file) and how it expands into jobs.
//!
//! Parsing is strict (`deny_unknown_fields`) so a misspelt key is an error, not a silently
//! ignored setting. Validation collects the first problem with its field path.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::address::EvmAddress;
use crate::field::FieldError;
use crate::job::{GenerationParams, JobId, JobSpec, seed_from_digest};
use crate::sanitize::{MAX_DESCRIPTION_CHARS, MAX_PROMPT_CHARS, clean_text, sanitize_prompt};

pub use crate::network::LOCAL_CHAIN_ID;
use crate::network::{self, Network};

/// Schedulers the engine implements.
pub const SCHEDULERS: &[&str] = &["ddim", "euler", "euler_a", "dpmpp_2m", "lcm"];

/// A collection file that failed to load.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file is not valid TOML or does not have the expected shape.
    #[error("{file}: {message}")]
    Parse {
        /// The collection file.
        file: String,
        /// The parser's message: it names the line, the key and what was expected.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("{file}: {error}")]
    Field {
        /// The collection file.
        file: String,
        /// The offending field.
        error: FieldError,
    },
}

impl CollectionFile {
    /// How many jobs the file asks for (the sum of its prompts' counts), known before any job
    /// is made: the caps of the CLI ([`MAX_JOBS`]) and of the intake function check this.
    pub fn job_count(&self) -> u64 {
        self.prompts.iter().map(|p| u64::from(p.count)).sum()
    }
}

/// The collection file exactly as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionFile {
    /// Identity and look of the collection.
    pub collection: CollectionSection,
    /// Image generation settings shared by every prompt.
    pub generation: GenerationSection,
    /// Where tokens are minted.
    #[serde(default)]
    pub chain: ChainSection,
    /// Where metadata and images are pinned.
    #[serde(default)]
    pub ipfs: IpfsSection,
    /// Automatic QA thresholds.
    #[serde(default)]
    pub review: ReviewSection,
    /// Weighted traits that prompt templates refer to as `{name}`.
    #[serde(default)]
    pub traits: Vec<TraitSection>,
    /// The prompts (or templates) to mint.
    #[serde(default)]
    pub prompts: Vec<PromptSection>,
    /// Living NFTs: tokens evolve when they change hands.
    #[serde(default)]
    pub living: Option<LivingSection>,
    /// ERC-1155 editions instead of ERC-721 tokens: each image becomes an edition with many
    /// copies.
    #[serde(default)]
    pub editions: Option<EditionsSection>,
}

/// Most copies one job may mint at once (the contract takes a uint128; this keeps a typo such
/// as an extra digit from minting millions).
pub const MAX_EDITION_COPIES: u64 = 1_000_000;

/// The largest weight of a trait value: enough for any ratio, and a trait's sum stays finite.
pub const MAX_WEIGHT: f64 = 1e12;

/// The most jobs one collection file may ask for (the sum of its prompts' counts): checked
/// before any job is made, and far inside a job position's 32-bit place.
pub const MAX_JOBS: u64 = 100_000;

/// `[editions]`: the collection mints ERC-1155 editions on a LatentEditions contract. Each
/// approved image becomes one edition (its metadata fixed at creation) and `copies` of it go
/// to the recipient; without this section each image is one ERC-721 token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EditionsSection {
    /// Copies minted to the recipient when the edition is made.
    #[serde(default = "default_copies")]
    pub copies: u64,
    /// The edition's cap, enforced on chain for every later mint too; absent: an open edition.
    #[serde(default)]
    pub max_supply: Option<u64>,
}

fn default_copies() -> u64 {
    1
}

impl EditionsSection {
    /// Checks the numbers.
    pub fn check(&self) -> Result<(), FieldError> {
        if self.copies == 0 || self.copies > MAX_EDITION_COPIES {
            return Err(FieldError::new(
                "editions.copies",
                format!("{} is out of range", self.copies),
                format!("use 1 to {MAX_EDITION_COPIES} copies per edition"),
            ));
        }
        if let Some(cap) = self.max_supply
            && cap < self.copies
        {
            return Err(FieldError::new(
                "editions.max_supply",
                format!("{cap} is below editions.copies ({})", self.copies),
                "raise max_supply to at least the copies minted, or remove it for an open edition",
            ));
        }
        Ok(())
    }
}

/// `[living]`: each transfer of a token (not its mint) regenerates its image from the current
/// one (img2img) and points the token at new metadata (ERC-4906 `MetadataUpdate`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LivingSection {
    /// How far each evolution moves from the current image, in (0, 1].
    #[serde(default = "default_living_strength")]
    pub strength: f32,
    /// Prompt of an evolution: `{prompt}` is the token's original prompt, `{generation}` the
    /// evolution's number (1, 2, ...).
    #[serde(default = "default_living_prompt")]
    pub prompt: String,
    /// Evolutions per token; transfers after that leave it as it is.
    #[serde(default = "default_max_generations")]
    pub max_generations: u32,
    /// `[living.oracle]`: evolve on a price feed's answers instead of on transfers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oracle: Option<OracleSection>,
}

/// Most moods an oracle section may name.
pub const MAX_MOODS: usize = 16;

/// `[living.oracle]`: the collection lives by the world, not by its trades. Each time a
/// Chainlink-style price feed (AggregatorV3: `AnswerUpdated` events, `decimals()`) answers
/// with a value in another mood than its last answer, every token evolves once, its prompt
/// given that mood's words (`{mood}` in `living.prompt`). Transfers then evolve nothing.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OracleSection {
    /// The feed's aggregator contract (EIP-55 or lower case).
    pub feed: String,
    /// The moods, in rising order: each but the last covers answers below its `below` (in the
    /// feed's units, its decimals applied), the last everything above.
    pub moods: Vec<Mood>,
}

/// One band of answers and the words it gives the prompt.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Mood {
    /// Answers below this (and at or above the previous mood's) are this mood; the last mood
    /// has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
    /// What `{mood}` becomes in the prompt.
    pub words: String,
}

impl OracleSection {
    /// The feed's address, checked.
    pub fn feed_address(&self) -> Result<EvmAddress, FieldError> {
        EvmAddress::parse_any_case(&self.feed).map_err(|e| {
            FieldError::new(
                "living.oracle.feed",
                e.to_string(),
                "give the price feed's aggregator address (0x + 40 hex digits)",
            )
        })
    }

    /// The index of the mood `answer` (in the feed's units) falls in.
    pub fn mood_of(&self, answer: f64) -> usize {
        self.moods.iter().position(|m| m.below.is_none_or(|b| answer < b)).unwrap_or(self.moods.len().saturating_sub(1))
    }

    fn check(&self) -> Result<(), FieldError> {
        self.feed_address()?;
        let fix = "list the moods in rising order, each but the last with `below`, e.g. \
                   [{ below = 2000, words = \"under a stormy sky\" }, { words = \"in bright sunshine\" }]";
        if self.moods.len() < 2 || self.moods.len() > MAX_MOODS {
            return Err(FieldError::new(
                "living.oracle.moods",
                format!("has {} moods; a feed needs 2 to {MAX_MOODS} to move between", self.moods.len()),
                fix,
            ));
        }
        let mut last = f64::NEG_INFINITY;
        for (i, m) in self.moods.iter().enumerate() {
            let field = format!("living.oracle.moods[{i}]");
            if m.words.trim().is_empty() || m.words.chars().count() > 200 {
                return Err(FieldError::new(
                    format!("{field}.words"),
                    "must be 1 to 200 characters",
                    "write the words the prompt gets in this mood",
                ));
            }
            let is_last = i + 1 == self.moods.len();
            match (m.below, is_last) {
                (Some(b), false) if b.is_finite() && b > last => last = b,
                (None, true) => {}
                (Some(_), true) => {
                    return Err(FieldError::new(format!("{field}.below"), "is set on the last mood", fix));
                }
                _ => {
                    return Err(FieldError::new(
                        format!("{field}.below"),
                        "is missing, not a number, or not above the previous mood's",
                        fix,
                    ));
                }
            }
        }
        Ok(())
    }
}

impl LivingSection {
    /// Checks the settings; with `steps`, also that each evolution runs at least one step.
    pub fn check(&self, steps: Option<u32>) -> Result<(), FieldError> {
        let runs = steps.is_none_or(|n| (n as f32 * self.strength).floor() >= 1.0);
        if !(self.strength > 0.0 && self.strength <= 1.0 && runs) {
            return Err(FieldError::new(
                "living.strength",
                match steps {
                    Some(n) => format!("{} runs no denoising step with {n} steps", self.strength),
                    None => format!("{} is out of range", self.strength),
                },
                "use a strength in (0, 1] with generation.steps * strength >= 1",
            ));
        }
        if !self.prompt.contains("{prompt}") || self.prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(FieldError::new(
                "living.prompt",
                "must contain {prompt} and stay within the prompt length limit",
                "write e.g. \"{prompt}, weathered, generation {generation}\"",
            ));
        }
        match (&self.oracle, self.prompt.contains("{mood}")) {
            (Some(oracle), true) => oracle.check()?,
            (Some(_), false) => {
                return Err(FieldError::new(
                    "living.prompt",
                    "has no {mood}, so the oracle's moods would not show",
                    "write e.g. \"{prompt}, {mood}\"",
                ));
            }
            (None, true) => {
                return Err(FieldError::new(
                    "living.prompt",
                    "has {mood} but there is no [living.oracle] to give it",
                    "add [living.oracle] with a feed and moods, or take {mood} out",
                ));
            }
            (None, false) => {}
        }
        if self.max_generations == 0 {
            return Err(FieldError::new(
                "living.max_generations",
                "is 0",
                "use 1 or more, or remove [living] for tokens that never change",
            ));
        }
        Ok(())
    }
}

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

fn default_living_strength() -> f32 {
    0.5
}

fn default_living_prompt() -> String {
    "{prompt}".into()
}

fn default_max_generations() -> u32 {
    16
}

/// `[ipfs]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IpfsSection {
    /// Kubo RPC API of the IPFS node or pinning service to pin to (`http://127.0.0.1:5001`);
    /// absent: a local content store in the data folder. `LATENTMINT_IPFS_AUTH`, if set, is
    /// sent as its Authorization header.
    #[serde(default)]
    pub api_url: Option<String>,
}

/// `[collection]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionSection {
    /// Human name, also the token name prefix.
    pub name: String,
    /// Token symbol.
    pub symbol: String,
    /// Collection description, copied into every token's metadata.
    #[serde(default)]
    pub description: String,
    /// Style suffix appended to every prompt (the brand's look).
    #[serde(default)]
    pub style: String,
    /// Negative prompt for every job.
    #[serde(default)]
    pub negative_prompt: String,
    /// EIP-55 checksummed address that receives the tokens.
    pub recipient: String,
}

/// `[generation]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationSection {
    /// Model folder (ONNX Stable Diffusion layout), relative to the collection file.
    pub model: String,
    /// Denoising steps.
    #[serde(default = "default_steps")]
    pub steps: u32,
    /// Classifier-free guidance scale.
    #[serde(default = "default_guidance")]
    pub guidance: f32,
    /// Image width in pixels.
    #[serde(default = "default_size")]
    pub width: u32,
    /// Image height in pixels.
    #[serde(default = "default_size")]
    pub height: u32,
    /// Scheduler name.
    #[serde(default = "default_scheduler")]
    pub scheduler: String,
    /// Base seed; each job's seed derives from it and the job's position.
    #[serde(default)]
    pub seed: u64,
    /// SageMaker endpoint to generate on first; the local ONNX engine is the fallback.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `s3://bucket/prefix` to stage requests under and invoke the endpoint asynchronously
    /// (`InvokeEndpointAsync`, for long jobs and endpoints that scale to zero) instead of in
    /// real time.
    #[serde(default)]
    pub endpoint_async_input: Option<String>,
    /// Seconds to wait for an asynchronous result before the local fallback runs.
    #[serde(default = "default_async_timeout")]
    pub endpoint_async_timeout_secs: u64,
    /// LoRA adapters (the brand's style) merged into the model.
    #[serde(default)]
    pub lora: Vec<LoraSection>,
}

/// `[[generation.lora]]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoraSection {
    /// safetensors file, relative to the collection file.
    pub path: String,
    /// Strength (1.0 as trained).
    #[serde(default = "default_lora_scale")]
    pub scale: f32,
}

fn default_lora_scale() -> f32 {
    1.0
}

fn default_steps() -> u32 {
    20
}
fn default_guidance() -> f32 {
    7.5
}
fn default_size() -> u32 {
    64
}
fn default_scheduler() -> String {
    "ddim".into()
}

fn default_async_timeout() -> u64 {
    900
}

/// `[chain]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSection {
    /// A preset by name (`arbitrum-one`, `arbitrum-sepolia`, `base`, `base-sepolia`, `polygon`,
    /// `polygon-amoy`, `local`): chain id, L1 fee handling and confirmations.
    #[serde(default)]
    pub network: Option<String>,
    /// Chain id the RPC must report (the preset's when a network is named; the local dev
    /// chain otherwise). Always set after validation.
    #[serde(default)]
    pub chain_id: Option<u64>,
    /// JSON-RPC URL; absent (with `rpc_urls` empty) means "start a local anvil".
    #[serde(default)]
    pub rpc_url: Option<String>,
    /// Several JSON-RPC URLs in order of preference: when one fails, the next serves.
    #[serde(default)]
    pub rpc_urls: Vec<String>,
    /// Deployed LatentCollection contract; absent means "deploy one".
    #[serde(default)]
    pub contract: Option<String>,
    /// Most the minter pays per gas, in gwei; above it mints wait. Absent: no cap.
    #[serde(default)]
    pub max_fee_gwei: Option<f64>,
    /// Confirmations before a mint counts (the preset's when absent).
    #[serde(default)]
    pub confirmations: Option<u64>,
    /// Seconds a sent mint may stay unmined before it is replaced with a higher fee.
    #[serde(default = "default_stuck_after")]
    pub stuck_after_secs: u64,
    /// AWS KMS key (id, ARN or `alias/...`, spec ECC_SECG_P256K1) that signs transactions. Required
    /// on every chain but the local one: raw private keys are for local dev chains only.
    #[serde(default)]
    pub kms_key_id: Option<String>,
    /// The most tokens minted in one transaction (`mintBatch`: one metadata directory and, to
    /// one recipient, one ownership write for the whole batch). 1: each job minted alone.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
}

fn default_batch_size() -> u32 {
    1
}

fn default_stuck_after() -> u64 {
    90
}

impl ChainSection {
    /// The chain id.
    pub fn id(&self) -> u64 {
        self.chain_id.unwrap_or(LOCAL_CHAIN_ID)
    }

    /// The preset for this chain, named or recognised by id.
    pub fn preset(&self) -> Option<&'static Network> {
        self.network.as_deref().and_then(network::by_name).or_else(|| network::by_chain_id(self.id()))
    }

    /// The RPC URLs in order of preference (empty: start a local node).
    pub fn rpc_urls(&self) -> Vec<String> {
        self.rpc_url.iter().chain(&self.rpc_urls).cloned().collect()
    }

    /// True for a local development chain, the only place a raw private key may sign.
    pub fn is_local(&self) -> bool {
        matches!(self.id(), LOCAL_CHAIN_ID | 31_337)
    }

    /// Confirmations to wait for.
    pub fn confirmations(&self) -> u64 {
        self.confirmations.or(self.preset().map(|p| p.confirmations)).unwrap_or(1).max(1)
    }
}

impl Default for ChainSection {
    /// A file without `[chain]` names no chain, exactly like an empty `[chain]` section:
    /// validation fills in the local dev chain, and a stack's intake leaves the chain to the
    /// stack.
    fn default() -> Self {
        Self {
            network: None,
            chain_id: None,
            rpc_url: None,
            rpc_urls: vec![],
            contract: None,
            max_fee_gwei: None,
            confirmations: None,
            stuck_after_secs: default_stuck_after(),
            kms_key_id: None,
            batch_size: default_batch_size(),
        }
    }
}

/// `[review]`: automatic QA thresholds on the 0..1 quality score.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewSection {
    /// Score at or above which an image is approved without a human.
    #[serde(default = "default_approve")]
    pub auto_approve_at: f32,
    /// Score below which an image is rejected without a human.
    #[serde(default = "default_reject")]
    pub auto_reject_below: f32,
}

fn default_approve() -> f32 {
    0.5
}
fn default_reject() -> f32 {
    0.15
}

impl Default for ReviewSection {
    fn default() -> Self {
        Self { auto_approve_at: default_approve(), auto_reject_below: default_reject() }
    }
}

/// `[[traits]]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TraitSection {
    /// Placeholder name used in templates as `{name}`; also the attribute's trait_type.
    pub name: String,
    /// Possible values with relative weights.
    pub values: Vec<TraitValue>,
}

/// One weighted trait value.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TraitValue {
    /// The text substituted into the prompt.
    pub value: String,
    /// Relative weight (> 0).
    #[serde(default = "default_weight")]
    pub weight: f64,
}

fn default_weight() -> f64 {
    1.0
}

/// `[[prompts]]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSection {
    /// Prompt text, may contain `{trait}` placeholders.
    pub text: String,
    /// How many tokens to draw from this template (each with its own seed and traits).
    #[serde(default = "default_count")]
    pub count: u32,
    /// Fixed seed for this prompt (only with count = 1).
    #[serde(default)]
    pub seed: Option<u64>,
}

fn default_count() -> u32 {
    1
}

/// A validated collection, ready to expand into jobs.
#[derive(Debug, Clone)]
pub struct Collection {
    /// The file as written (validated).
    pub file: CollectionFile,
    /// Parsed recipient.
    pub recipient: EvmAddress,
    /// Parsed contract address, if one is configured.
    pub contract: Option<EvmAddress>,
}

impl Collection {
    /// Parses and validates a collection file's text. `file` names it in errors.
    pub fn from_toml(file: &str, text: &str) -> Result<Self, SpecError> {
        let parsed: CollectionFile = toml::from_str(text)
            .map_err(|e| SpecError::Parse { file: file.to_string(), message: e.to_string().trim_end().to_string() })?;
        Self::validate(parsed).map_err(|error| SpecError::Field { file: file.to_string(), error })
    }

    /// Checks every field; the first problem found is returned with its path.
    pub fn validate(mut f: CollectionFile) -> Result<Self, FieldError> {
        let c = &mut f.collection;
        if c.name.trim().is_empty() {
            return Err(FieldError::new("collection.name", "is empty", "name the collection, e.g. \"Neon Shapes\""));
        }
        c.name = sanitize_prompt("collection.name", &c.name)?;
        if c.name.chars().count() > 64 {
            return Err(FieldError::new("collection.name", "is longer than 64 characters", "use a shorter name"));
        }
        if c.symbol.is_empty()
            || c.symbol.len() > 11
            || !c.symbol.chars().all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit())
        {
            return Err(FieldError::new(
                "collection.symbol",
                format!("`{}` is not a token symbol", c.symbol),
                "use 1 to 11 upper-case letters or digits, e.g. \"NEON\"",
            ));
        }
        if !c.style.trim().is_empty() {
            c.style = sanitize_prompt("collection.style", &c.style)?;
        }
        if !c.negative_prompt.trim().is_empty() {
            c.negative_prompt = sanitize_prompt("collection.negative_prompt", &c.negative_prompt)?;
        }
        c.description = clean_text("collection.description", &c.description, MAX_DESCRIPTION_CHARS)?;
        let recipient = EvmAddress::parse_checksummed(&c.recipient).map_err(|e| {
            FieldError::new(
                "collection.recipient",
                e.to_string(),
                "copy the address from the wallet, which writes the checksummed form",
            )
        })?;

        let g = &f.generation;
        if g.model.trim().is_empty() {
            return Err(FieldError::new(
                "generation.model",
                "is empty",
                "point it at an ONNX Stable Diffusion model folder",
            ));
        }
        if !(1..=150).contains(&g.steps) {
            return Err(FieldError::new(
                "generation.steps",
                format!("{} is out of range", g.steps),
                "use 1 to 150 steps",
            ));
        }
        if !crate::job::GUIDANCE_RANGE.contains(&g.guidance) {
            return Err(FieldError::new(
                "generation.guidance",
                format!("{} is out of range", g.guidance),
                "use a scale from 0 to 30 (7.5 is typical)",
            ));
        }
        for (name, v) in [("generation.width", g.width), ("generation.height", g.height)] {
            if v == 0 || v > crate::job::MAX_IMAGE_SIDE || v % 8 != 0 {
                return Err(FieldError::new(
                    name,
                    format!("{v} is not a usable size"),
                    format!("use a multiple of 8 from 8 to {}", crate::job::MAX_IMAGE_SIDE),
                ));
            }
        }
        for (i, l) in g.lora.iter().enumerate() {
            if l.path.trim().is_empty() {
                return Err(FieldError::new(
                    format!("generation.lora[{i}].path"),
                    "is empty",
                    "point it at a .safetensors LoRA file",
                ));
            }
            if !crate::job::LORA_SCALE_RANGE.contains(&l.scale) {
                return Err(FieldError::new(
                    format!("generation.lora[{i}].scale"),
                    format!("{} is out of range", l.scale),
                    "use a strength from -4 to 4 (1.0 as trained)",
                ));
            }
        }
        if let Some(ep) = &g.endpoint {
            let ok = !ep.is_empty()
                && ep.len() <= 63
                && ep.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !ep.starts_with('-')
                && !ep.ends_with('-');
            if !ok {
                return Err(FieldError::new(
                    "generation.endpoint",
                    format!("`{ep}` is not a SageMaker endpoint name"),
                    "use 1-63 letters, digits and inner hyphens, or remove the key to generate locally",
                ));
            }
        }
        if let Some(url) = &g.endpoint_async_input {
            let bucket = url.strip_prefix("s3://").map(|r| r.split('/').next().unwrap_or(""));
            let ok = bucket.is_some_and(|b| {
                b.len() >= 3 && b.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            });
            if !ok {
                return Err(FieldError::new(
                    "generation.endpoint_async_input",
                    format!("`{url}` is not an S3 location"),
                    "write it as s3://bucket/prefix (the bucket the endpoint's async config can read)",
                ));
            }
            if g.endpoint.is_none() {
                return Err(FieldError::new(
                    "generation.endpoint_async_input",
                    "is set but generation.endpoint is not",
                    "name the async endpoint in generation.endpoint, or remove this key",
                ));
            }
        }
        if !(1..=3600).contains(&g.endpoint_async_timeout_secs) {
            return Err(FieldError::new(
                "generation.endpoint_async_timeout_secs",
                format!("{} is out of range", g.endpoint_async_timeout_secs),
                "use 1 to 3600 seconds (SageMaker's async invocation limit)",
            ));
        }
        if !SCHEDULERS.contains(&g.scheduler.as_str()) {
            return Err(FieldError::new(
                "generation.scheduler",
                format!("`{}` is not a known scheduler", g.scheduler),
                format!("use one of: {}", SCHEDULERS.join(", ")),
            ));
        }

        if let Some(url) = &f.ipfs.api_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(FieldError::new(
                "ipfs.api_url",
                format!("`{url}` is not an HTTP(S) URL"),
                "use the node's Kubo RPC API, e.g. http://127.0.0.1:5001, or remove it",
            ));
        }

        let contract = match &f.chain.contract {
            Some(s) => Some(EvmAddress::parse_any_case(s).map_err(|e| {
                FieldError::new(
                    "chain.contract",
                    e.to_string(),
                    "give the deployed contract's address, or remove the key to deploy one",
                )
            })?),
            None => None,
        };
        for (field, url) in f
            .chain
            .rpc_url
            .iter()
            .map(|u| ("chain.rpc_url", u))
            .chain(f.chain.rpc_urls.iter().map(|u| ("chain.rpc_urls", u)))
        {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(FieldError::new(
                    field,
                    format!("`{url}` is not an HTTP(S) URL"),
                    "use e.g. http://127.0.0.1:8545, or remove it to start a local node",
                ));
            }
        }
        if let Some(name) = &f.chain.network {
            let Some(preset) = network::by_name(name) else {
                let names: Vec<&str> = network::NETWORKS.iter().map(|n| n.name).collect();
                return Err(FieldError::new(
                    "chain.network",
                    format!("`{name}` is not a known network"),
                    format!("use one of: {}, or remove it and set chain.chain_id", names.join(", ")),
                ));
            };
            match f.chain.chain_id {
                Some(id) if id != preset.chain_id => {
                    return Err(FieldError::new(
                        "chain.chain_id",
                        format!("{id} is not {name}'s chain id ({})", preset.chain_id),
                        "remove chain.chain_id (the network sets it) or fix it",
                    ));
                }
                _ => f.chain.chain_id = Some(preset.chain_id),
            }
        }
        f.chain.chain_id = Some(f.chain.id());
        if f.chain.confirmations == Some(0) {
            return Err(FieldError::new("chain.confirmations", "is 0", "use 1 or more (1: included in a block)"));
        }
        if !(5..=3600).contains(&f.chain.stuck_after_secs) {
            return Err(FieldError::new(
                "chain.stuck_after_secs",
                format!("{} is out of range", f.chain.stuck_after_secs),
                "use 5 to 3600 seconds",
            ));
        }
        if let Some(g) = f.chain.max_fee_gwei
            && !(g.is_finite() && g > 0.0)
        {
            return Err(FieldError::new(
                "chain.max_fee_gwei",
                format!("{g} is not a fee"),
                "use a positive number of gwei, or remove it",
            ));
        }
        if f.chain.chain_id == Some(0) {
            return Err(FieldError::new("chain.chain_id", "is 0", "use the chain's id, e.g. 42161 for Arbitrum One"));
        }

        let r = f.review;
        if !(0.0..=1.0).contains(&r.auto_approve_at)
            || !(0.0..=1.0).contains(&r.auto_reject_below)
            || r.auto_reject_below > r.auto_approve_at
        {
            return Err(FieldError::new(
                "review",
                "thresholds are inconsistent",
                "use 0 <= auto_reject_below <= auto_approve_at <= 1",
            ));
        }

        let mut names = BTreeMap::new();
        for (i, t) in f.traits.iter_mut().enumerate() {
            let field = format!("traits[{i}]");
            if t.name.is_empty() || !t.name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
                return Err(FieldError::new(
                    format!("{field}.name"),
                    format!("`{}` is not a placeholder name", t.name),
                    "use letters, digits and _ only",
                ));
            }
            if names.insert(t.name.clone(), i).is_some() {
                return Err(FieldError::new(
                    format!("{field}.name"),
                    format!("`{}` is defined twice", t.name),
                    "give each trait a unique name",
                ));
            }
            if t.values.is_empty() {
                return Err(FieldError::new(format!("{field}.values"), "is empty", "give at least one value"));
            }
            for (j, v) in t.values.iter_mut().enumerate() {
                // The cleaned value is the one the prompt gets.
                v.value = sanitize_prompt(&format!("{field}.values[{j}].value"), &v.value)?;
                if v.value.contains(['{', '}']) {
                    return Err(FieldError::new(
                        format!("{field}.values[{j}].value"),
                        format!("`{}` holds a brace, which would read as a {{placeholder}} in the prompt", v.value),
                        "remove { and } from trait values",
                    ));
                }
                if !(v.weight.is_finite() && v.weight > 0.0 && v.weight <= MAX_WEIGHT) {
                    return Err(FieldError::new(
                        format!("{field}.values[{j}].weight"),
                        format!("{} is not a weight from above 0 to {MAX_WEIGHT}", v.weight),
                        "use a positive number; only the ratios between a trait's weights count",
                    ));
                }
            }
        }

        if f.prompts.is_empty() {
            return Err(FieldError::new(
                "prompts",
                "no [[prompts]] given",
                "add at least one [[prompts]] entry with a text",
            ));
        }
        for (i, p) in f.prompts.iter_mut().enumerate() {
            let field = format!("prompts[{i}].text");
            p.text = sanitize_prompt(&field, &p.text)?;
            for name in placeholders(&p.text) {
                if !names.contains_key(&name) {
                    return Err(FieldError::new(
                        &field,
                        format!("uses {{{name}}} but no trait of that name exists"),
                        "define it under [[traits]] or remove the placeholder",
                    ));
                }
            }
            if p.count == 0 || p.count > 1000 {
                return Err(FieldError::new(
                    format!("prompts[{i}].count"),
                    format!("{} is out of range", p.count),
                    "use 1 to 1000",
                ));
            }
            if p.seed.is_some() && p.count != 1 {
                return Err(FieldError::new(
                    format!("prompts[{i}].seed"),
                    "a fixed seed with count > 1 would mint identical images",
                    "drop the seed or set count = 1",
                ));
            }
        }
        // Counted before anything is expanded: a file's jobs are bounded by its counts.
        let total = f.job_count();
        if total > MAX_JOBS {
            return Err(FieldError::new(
                "prompts",
                format!("ask for {total} jobs in all; one collection file holds at most {MAX_JOBS}"),
                "lower the counts, or split the drop over several collections (each its own name)",
            ));
        }
        if let Some(l) = &f.living {
            l.check(Some(f.generation.steps))?;
        }
        let batch = f.chain.batch_size;
        if batch == 0 || batch as usize > crate::batch::MAX_BATCH {
            return Err(FieldError::new(
                "chain.batch_size",
                format!("{batch} is out of range"),
                format!("use 1 (each token minted alone) to {}", crate::batch::MAX_BATCH),
            ));
        }
        if batch > 1 && (f.editions.is_some() || f.living.is_some()) {
            return Err(FieldError::new(
                "chain.batch_size",
                format!(
                    "{batch} mints tokens in batches, but {} mints one job at a time",
                    if f.editions.is_some() {
                        "[editions] (ERC-1155)"
                    } else {
                        "[living] (each token evolves on its own record)"
                    }
                ),
                "set chain.batch_size = 1, or remove that section",
            ));
        }
        if let Some(e) = &f.editions {
            e.check()?;
            if f.living.is_some() {
                return Err(FieldError::new(
                    "living",
                    "living NFTs evolve ERC-721 tokens (ERC-4906 metadata updates), and [editions] mints ERC-1155 editions",
                    "remove [living], or remove [editions] to mint one ERC-721 token per image",
                ));
            }
        }
        Ok(Self { file: f, recipient, contract })
    }

    /// Expands the collection into jobs, deterministically: the same file always yields the
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

/// `{name}` placeholders in order of first appearance.
fn placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if !name.is_empty() && !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
        rest = &after[end + 1..];
    }
    out
}

fn pick_weighted(rng: &mut ChaCha20Rng, values: &[TraitValue]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const GOOD: &str = r#"
[collection]
name = "Neon Shapes"
symbol = "NEON"
description = "Shapes."
style = "flat colours"
negative_prompt = "blurry"
recipient = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

[generation]
model = "../models/tiny-sd"
steps = 4

[[traits]]
name = "colour"
values = [{ value = "red", weight = 3 }, { value = "blue" }]

[[prompts]]
text = "a {colour} circle"
count = 3

[[prompts]]
text = "a green square"
seed = 7
"#;

    #[test]
    fn expands_deterministically() {
        let c = Collection::from_toml("c.toml", GOOD).unwrap();
        let a = c.jobs().unwrap();
        let b = c.jobs().unwrap();
        assert_eq!(a.len(), 4);
        assert_eq!(a.iter().map(|j| j.id).collect::<Vec<_>>(), b.iter().map(|j| j.id).collect::<Vec<_>>());
        assert!(a[0].prompt.ends_with(", flat colours"));
        assert!(a[0].prompt.starts_with("a red circle") || a[0].prompt.starts_with("a blue circle"));
        assert_eq!(a[3].params.seed, 7);
        let ids: std::collections::BTreeSet<_> = a.iter().map(|j| j.id).collect();
        assert_eq!(ids.len(), 4, "job ids are unique");
    }

    #[test]
    fn editions_have_defaults_and_bad_ones_are_named() {
        let with = |editions: &str| format!("{GOOD}\n[editions]\n{editions}\n");
        let e = Collection::from_toml("c.toml", &with("")).unwrap().file.editions.expect("[editions] present");
        assert_eq!(e, EditionsSection { copies: 1, max_supply: None });
        let e = Collection::from_toml("c.toml", &with("copies = 25\nmax_supply = 100")).unwrap().file.editions;
        assert_eq!(e, Some(EditionsSection { copies: 25, max_supply: Some(100) }));
        assert!(Collection::from_toml("c.toml", GOOD).unwrap().file.editions.is_none(), "absent: ERC-721");
        for (text, field, fix) in [
            ("copies = 0", "editions.copies", "use 1 to 1000000"),
            ("copies = 1000001", "editions.copies", "use 1 to 1000000"),
            ("copies = 10\nmax_supply = 5", "editions.max_supply", "at least the copies"),
            ("copies = 1\n[living]", "living", "remove [living], or remove [editions]"),
            ("supply = 5", "supply", "unknown field"),
        ] {
            let e = Collection::from_toml("c.toml", &with(text)).unwrap_err().to_string();
            assert!(e.contains(field) && e.contains(fix), "{text}: {e}");
        }
    }

    #[test]
    fn the_examples_are_valid_collections() {
        for (name, text) in [
            ("neon-shapes.toml", include_str!("../../../examples/neon-shapes.toml")),
            ("neon-editions.toml", include_str!("../../../examples/neon-editions.toml")),
            ("neon-drop.toml", include_str!("../../../examples/neon-drop.toml")),
        ] {
            let c = Collection::from_toml(name, text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!c.jobs().unwrap().is_empty(), "{name}");
        }
        let drop = Collection::from_toml("d", include_str!("../../../examples/neon-drop.toml")).unwrap();
        assert!(drop.file.chain.batch_size > 1, "the drop example mints in batches");
    }

    #[test]
    fn batch_size_defaults_to_one_and_bad_ones_are_named() {
        assert_eq!(Collection::from_toml("c.toml", GOOD).unwrap().file.chain.batch_size, 1);
        let with = |extra: &str| format!("{GOOD}\n[chain]\nbatch_size = {extra}\n");
        assert_eq!(Collection::from_toml("c.toml", &with("50")).unwrap().file.chain.batch_size, 50);
        for (text, fix) in [
            ("0", "use 1 (each token minted alone) to 100"),
            ("101", "use 1 (each token minted alone) to 100"),
            ("10\n[editions]", "set chain.batch_size = 1, or remove that section"),
            ("10\n[living]", "set chain.batch_size = 1, or remove that section"),
        ] {
            let e = Collection::from_toml("c.toml", &with(text)).unwrap_err().to_string();
            assert!(e.contains("chain.batch_size") && e.contains(fix), "{text}: {e}");
        }
    }

    #[test]
    fn living_settings_have_defaults_and_bad_ones_are_named() {
        let with = |living: &str| format!("{GOOD}\n[living]\n{living}\n");
        let c = Collection::from_toml("c.toml", &with("")).unwrap();
        let l = c.file.living.expect("[living] present");
        assert_eq!((l.strength, l.prompt.as_str(), l.max_generations), (0.5, "{prompt}", 16));
        assert!(Collection::from_toml("c.toml", GOOD).unwrap().file.living.is_none(), "absent: tokens never change");
        for (text, field) in [
            ("strength = 0.0", "living.strength"),
            ("strength = 1.5", "living.strength"),
            // 4 steps * 0.2 runs no step.
            ("strength = 0.2", "living.strength"),
            ("prompt = \"weathered\"", "living.prompt"),
            ("max_generations = 0", "living.max_generations"),
        ] {
            let e = Collection::from_toml("c.toml", &with(text)).unwrap_err().to_string();
            assert!(e.contains(field), "{text}: {e}");
        }
    }

    #[test]
    fn an_oracle_gives_moods_in_rising_order_and_bad_ones_are_named() {
        const FEED: &str = "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419";
        let with = |prompt: &str, moods: &str| {
            format!("{GOOD}\n[living]\nprompt = \"{prompt}\"\n[living.oracle]\nfeed = \"{FEED}\"\n{moods}\n")
        };
        let two = "[[living.oracle.moods]]\nbelow = 2000\nwords = \"under a stormy sky\"\n\
                   [[living.oracle.moods]]\nwords = \"in bright sunshine\"";
        let c = Collection::from_toml("c.toml", &with("{prompt}, {mood}", two)).unwrap();
        let oracle = c.file.living.and_then(|l| l.oracle).expect("[living.oracle] present");
        assert_eq!(oracle.feed_address().unwrap().to_string(), FEED);
        assert_eq!((oracle.mood_of(1999.99), oracle.mood_of(2000.0), oracle.mood_of(-5.0)), (0, 1, 0));
        for (prompt, moods, field) in [
            ("{prompt}", two, "living.prompt: has no {mood}"),
            ("{prompt}, {mood}", "[[living.oracle.moods]]\nwords = \"always\"", "living.oracle.moods: has 1 moods"),
            ("{prompt}, {mood}", &two.replace("below = 2000\n", ""), "living.oracle.moods[0].below"),
            ("{prompt}, {mood}", &format!("{two}\nbelow = 9"), "living.oracle.moods[1].below: is set on the last"),
            ("{prompt}, {mood}", &two.replace("under a stormy sky", " "), "living.oracle.moods[0].words"),
        ] {
            let e = Collection::from_toml("c.toml", &with(prompt, moods)).unwrap_err().to_string();
            assert!(e.contains(field), "{moods}: {e}");
        }
        let falling = format!("{two}\n[[living.oracle.moods]]\nwords = \"x\"").replacen(
            "words = \"in bright sunshine\"",
            "below = 1000\nwords = \"in bright sunshine\"",
            1,
        );
        let e = Collection::from_toml("c.toml", &with("{prompt}, {mood}", &falling)).unwrap_err().to_string();
        assert!(e.contains("living.oracle.moods[1].below: is missing, not a number, or not above"), "{e}");
        let e = Collection::from_toml("c.toml", &with("{prompt}, {mood}", two).replace(FEED, "0x12")).unwrap_err();
        assert!(e.to_string().contains("living.oracle.feed"), "{e}");
        // {mood} without an oracle has nothing to fill it.
        let e = Collection::from_toml("c.toml", &format!("{GOOD}\n[living]\nprompt = \"{{prompt}}, {{mood}}\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("has {mood} but there is no [living.oracle]"), "{e}");
    }

    #[test]
    fn an_empty_name_asks_for_a_name() {
        let e = Collection::from_toml("c.toml", &GOOD.replace("name = \"Neon Shapes\"", "name = \"  \""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("collection.name: is empty; name the collection"), "{e}");
    }

    #[test]
    fn a_request_becomes_one_job_keyed_by_its_id() {
        let c = Collection::from_toml("c.toml", GOOD).unwrap();
        let a = c.job_for_request("A-1001", "  a   purple star ", None).unwrap();
        assert_eq!(a.prompt, "a purple star, flat colours", "cleaned, styled");
        assert_eq!(a.recipient, c.recipient);
        assert_eq!(a.request.as_deref(), Some("A-1001"));
        let again = c.job_for_request("A-1001", "a purple star", None).unwrap();
        assert_eq!((again.id, again.params.seed), (a.id, a.params.seed), "a retried webhook is the same job");
        let other = c.job_for_request("A-1002", "a purple star", None).unwrap();
        assert_ne!(other.id, a.id);
        assert_ne!(other.params.seed, a.params.seed, "another order, another image");
        let to = EvmAddress::from_bytes([9; 20]);
        assert_eq!(c.job_for_request("A-1003", "x", Some(to)).unwrap().recipient, to);
        for (id, prompt, field) in [("", "x", "order_id"), ("a b", "x", "order_id"), ("A-1", "bad\u{7}", "prompt")] {
            let e = c.job_for_request(id, prompt, None).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
        // Not a template: no job of the file has this id.
        assert!(c.jobs().unwrap().iter().all(|j| j.id != a.id));
    }

    #[test]
    fn unknown_key_is_a_parse_error_naming_it() {
        let text = GOOD.replace("steps = 4", "stepz = 4");
        let e = Collection::from_toml("c.toml", &text).unwrap_err().to_string();
        assert!(e.contains("stepz"), "{e}");
    }

    #[test]
    fn missing_section_is_named() {
        let text = GOOD.replace("[generation]\nmodel = \"../models/tiny-sd\"\nsteps = 4\n", "");
        let e = Collection::from_toml("c.toml", &text).unwrap_err().to_string();
        assert!(e.contains("generation"), "{e}");
    }

    #[test]
    fn undefined_placeholder_is_refused() {
        let text = GOOD.replace("a {colour} circle", "a {shape}");
        let e = Collection::from_toml("c.toml", &text).unwrap_err().to_string();
        assert!(e.contains("prompts[0].text") && e.contains("{shape}"), "{e}");
    }

    #[test]
    fn chain_presets_set_the_chain_id_and_conflicts_are_named() {
        let with = |chain: &str| format!("{GOOD}\n[chain]\n{chain}\n");
        let c = Collection::from_toml("c.toml", &with("network = \"arbitrum-sepolia\"")).unwrap();
        assert_eq!(c.file.chain.id(), 421_614);
        assert_eq!(c.file.chain.preset().map(|p| p.l1_fees), Some(crate::network::L1Fees::ArbitrumNodeInterface));
        let c = Collection::from_toml("c.toml", &with("network = \"polygon\"\nchain_id = 137")).unwrap();
        assert_eq!(c.file.chain.confirmations(), 5);
        let c = Collection::from_toml("c.toml", &with("chain_id = 8453\nconfirmations = 3")).unwrap();
        assert_eq!((c.file.chain.preset().map(|p| p.name), c.file.chain.confirmations()), (Some("base"), 3));
        let c = Collection::from_toml("c.toml", GOOD).unwrap();
        assert_eq!(c.file.chain.id(), LOCAL_CHAIN_ID);
        let e =
            Collection::from_toml("c.toml", &with("network = \"arbitrum-one\"\nchain_id = 1")).unwrap_err().to_string();
        assert!(e.contains("chain.chain_id") && e.contains("42161"), "{e}");
        let e = Collection::from_toml("c.toml", &with("network = \"arbitrum\"")).unwrap_err().to_string();
        assert!(e.contains("chain.network") && e.contains("arbitrum-one"), "{e}");
        let urls = with("rpc_url = \"http://127.0.0.1:1\"\nrpc_urls = [\"http://127.0.0.1:2\", \"ws://x\"]");
        let e = Collection::from_toml("c.toml", &urls).unwrap_err().to_string();
        assert!(e.contains("chain.rpc_urls") && e.contains("ws://x"), "{e}");
        let ok = with("rpc_url = \"http://127.0.0.1:1\"\nrpc_urls = [\"http://127.0.0.1:2\"]");
        assert_eq!(Collection::from_toml("c.toml", &ok).unwrap().file.chain.rpc_urls().len(), 2);
    }

    #[test]
    fn async_endpoint_settings_are_checked() {
        let ok = GOOD.replace(
            "steps = 4",
            "steps = 4\nendpoint = \"sd-async\"\nendpoint_async_input = \"s3://studio-bucket/async\"",
        );
        let c = Collection::from_toml("c.toml", &ok).unwrap();
        assert_eq!(c.file.generation.endpoint_async_input.as_deref(), Some("s3://studio-bucket/async"));
        assert_eq!(c.file.generation.endpoint_async_timeout_secs, 900);
        let bad = ok.replace("s3://studio-bucket/async", "https://studio-bucket/async");
        let e = Collection::from_toml("c.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("generation.endpoint_async_input") && e.contains("s3://bucket/prefix"), "{e}");
        let lonely = GOOD.replace("steps = 4", "steps = 4\nendpoint_async_input = \"s3://studio-bucket/a\"");
        let e = Collection::from_toml("c.toml", &lonely).unwrap_err().to_string();
        assert!(e.contains("generation.endpoint is not"), "{e}");
    }

    #[test]
    fn endpoint_names_are_checked() {
        let ok = GOOD.replace("steps = 4", "steps = 4\nendpoint = \"latentmint-prod-1\"");
        assert_eq!(
            Collection::from_toml("c.toml", &ok).unwrap().file.generation.endpoint.as_deref(),
            Some("latentmint-prod-1")
        );
        let bad = GOOD.replace("steps = 4", "steps = 4\nendpoint = \"my endpoint\"");
        let e = Collection::from_toml("c.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("generation.endpoint"), "{e}");
    }

    #[test]
    fn weights_follow_their_ratio() {
        let values = vec![TraitValue { value: "a".into(), weight: 3.0 }, TraitValue { value: "b".into(), weight: 1.0 }];
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let n = 4000;
        let a = (0..n).filter(|_| pick_weighted(&mut rng, &values) == "a").count();
        let share = a as f64 / n as f64;
        assert!((share - 0.75).abs() < 0.03, "{share}");
    }

    fn refusal(text: &str) -> FieldError {
        match Collection::from_toml("c.toml", text) {
            Err(SpecError::Field { error, .. }) => error,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn trait_values_are_cleaned_braces_refused_and_weights_bounded() {
        let c = Collection::from_toml("c.toml", &GOOD.replace("value = \"red\"", "value = \"  deep\t red \"")).unwrap();
        let jobs = c.jobs().unwrap();
        assert!(jobs.iter().any(|j| j.prompt.contains("a deep red circle")), "{:?}", jobs[0].prompt);
        assert!(jobs.iter().all(|j| !j.prompt.contains('\t') && !j.prompt.contains("  ")));
        let e = refusal(&GOOD.replace("value = \"red\"", "value = \"{colour}\""));
        assert_eq!(e.field, "traits[0].values[0].value");
        assert!(e.problem.contains("brace"), "{e}");
        let e = refusal(&GOOD.replace("weight = 3", "weight = 1e308"));
        assert_eq!(e.field, "traits[0].values[0].weight");
    }

    #[test]
    fn the_description_is_one_clean_text_of_bounded_length() {
        let c = Collection::from_toml(
            "c.toml",
            &GOOD.replace("description = \"Shapes.\"", "description = \"Formes\\r\\ncafe\\u0301.\""),
        )
        .unwrap();
        assert_eq!(c.file.collection.description, "Formes\ncaf\u{e9}.");
        let e = refusal(&GOOD.replace("description = \"Shapes.\"", "description = \"evil\\u202Etxt\""));
        assert_eq!(e.field, "collection.description");
        assert!(e.problem.contains("bidirectional"), "{e}");
        let long = format!("description = \"{}\"", "x".repeat(6000));
        let e = refusal(&GOOD.replace("description = \"Shapes.\"", &long));
        assert!(e.problem.contains("the limit is 5000"), "{e}");
    }

    #[test]
    fn the_total_of_jobs_is_capped_before_anything_is_expanded() {
        let mut text = GOOD.to_string();
        for _ in 0..101 {
            text.push_str("[[prompts]]\ntext = \"a circle\"\ncount = 1000\n");
        }
        let e = refusal(&text);
        assert_eq!(e.field, "prompts");
        assert!(e.problem.contains("at most 100000"), "{e}");
    }
}
