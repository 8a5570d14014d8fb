//! The collection file's shape: every section and key, with its default. Parsing is strict
//! (`deny_unknown_fields`), so a misspelt key is an error, not a silently ignored setting.

use serde::{Deserialize, Serialize};

use crate::address::EvmAddress;
use crate::field::FieldError;
use crate::network::{self, LOCAL_CHAIN_ID, Network};

pub use crate::qa::ReviewSection;

/// Schedulers the engine implements.
pub const SCHEDULERS: &[&str] = &["ddim", "euler", "euler_a", "dpmpp_2m", "lcm"];

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
    /// The review policy.
    #[serde(default)]
    pub review: ReviewSection,
    /// The secondary models the review stage runs.
    #[serde(default)]
    pub qa: QaSection,
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

/// `[qa]`: the secondary models of the review stage, in folders relative to the collection
/// file (the policy that reads their findings is `[review]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QaSection {
    /// A CLIP-style image-text model (the layout `infra/model/train_clip_scorer.py` writes):
    /// prompt adherence and automatic attributes.
    #[serde(default)]
    pub clip: Option<String>,
    /// Images of the brand's look (PNG files): an image far from all of them, as the model
    /// sees it, goes to a human (`[review] min_brand_similarity`). Needs `clip`.
    #[serde(default)]
    pub references: Vec<String>,
    /// A Stable Diffusion safety checker in diffusers' layout (a folder with
    /// `safety_checker/model.onnx` and `feature_extractor/`): a flagged image waits for a
    /// human. Without it, the one the generation model's folder ships (if any) runs.
    #[serde(default)]
    pub safety_checker: Option<String>,
}

/// Most reference images a collection may name.
pub const MAX_REFERENCES: usize = 64;

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
