//! Living NFTs: a token that changes hands grows a new image from its current one.
//!
//! Everything about an evolution is derived from the on-chain event that caused it (the
//! [`Trigger`]): its seed, its number, its prompt. Processing the same event again therefore
//! makes the same request, and the record in the new metadata says exactly which event,
//! which parent metadata and which parameters produced the image.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::collection::LivingSection;
use crate::job::{GenerationRecord, seed_from_digest};
use crate::metadata::{Attribute, Provenance, TokenMetadata};
pub use crate::metadata::{EvolutionRecord, OracleReading, Trigger};

/// One ERC-721 `Transfer` between wallets (mints and burns are not transfers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Token id (decimal).
    pub token_id: String,
    /// Block number.
    pub block: u64,
    /// Transaction hash (0x-prefixed).
    pub tx_hash: String,
    /// Log index in the block.
    pub log_index: u64,
}

/// One `AnswerUpdated` event of a price feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The answer (a decimal integer, the feed's decimals not applied).
    pub answer: String,
    /// Round id (decimal).
    pub round: String,
    /// Block number.
    pub block: u64,
    /// Transaction hash (0x-prefixed).
    pub tx_hash: String,
    /// Log index in the block.
    pub log_index: u64,
}

impl Answer {
    /// The answer in the feed's units: `answer / 10^decimals`.
    pub fn value(&self, decimals: u8) -> Option<f64> {
        let raw: f64 = self.answer.parse().ok()?;
        Some(raw / 10f64.powi(i32::from(decimals)))
    }
}

/// Where one evolution stands. Written before and after the one on-chain step, so a crash
/// between them is resumed rather than repeated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EvolutionState {
    /// The new image and metadata are pinned; the token does not point at them yet.
    Published {
        /// The token.
        token_id: String,
        /// CID of the new metadata.
        metadata_cid: String,
    },
    /// The token points at the new metadata.
    Updated {
        /// The token.
        token_id: String,
        /// CID of the new metadata.
        metadata_cid: String,
        /// The `setTokenURI` transaction (none when the chain already had it).
        tx_hash: Option<String>,
    },
    /// Nothing to do for this event (the token reached `max_generations`).
    Skipped {
        /// The token.
        token_id: String,
        /// Why.
        reason: String,
    },
}

/// What to generate for one evolution, or why not.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Generate this.
    Evolve {
        /// Prompt.
        prompt: String,
        /// Negative prompt (the token's own).
        negative_prompt: String,
        /// Seed derived from the trigger.
        seed: u64,
        /// The record that goes into the new metadata (boxed: a plan is mostly this).
        record: Box<EvolutionRecord>,
    },
    /// The token has evolved `living.max_generations` times already.
    Exhausted,
}

/// Plans the evolution of a token whose current metadata (at `parent_uri`) is `parent`; with
/// `reading`, the feed's answer that caused it (its mood fills `{mood}`).
pub fn plan(
    living: &LivingSection,
    parent_uri: &str,
    parent: &TokenMetadata,
    trigger: Trigger,
    reading: Option<OracleReading>,
) -> Plan {
    let p = &parent.provenance;
    let generation = p.evolution.as_ref().map_or(0, |e| e.generation) + 1;
    if generation > living.max_generations {
        return Plan::Exhausted;
    }
    // The token's original prompt, not the last evolution's, so prompts do not pile up.
    let base = base_prompt(parent);
    let mood = reading.as_ref().map_or("", |r| r.mood.as_str());
    let prompt = living
        .prompt
        .replace("{prompt}", base)
        .replace("{generation}", &generation.to_string())
        .replace("{mood}", mood);
    let mut h = Sha256::new();
    h.update(b"latentmint/evolution/v1\0");
    h.update(trigger.key().as_bytes());
    h.update(p.job_id.as_bytes());
    // Below 2^53 like every seed: the signed record's seed must survive a JSON round trip.
    let seed = seed_from_digest(&h.finalize().into());
    Plan::Evolve {
        prompt,
        negative_prompt: p.negative_prompt.clone(),
        seed,
        record: Box::new(EvolutionRecord {
            generation,
            parent_metadata: parent_uri.to_string(),
            parent_image: parent.image.clone(),
            trigger,
            strength: living.strength,
            oracle: reading,
        }),
    }
}

/// The prompt the token was minted with (kept as the `base_prompt` attribute once evolved).
fn base_prompt(m: &TokenMetadata) -> &str {
    m.attributes
        .iter()
        .find(|a| a.trait_type == "base_prompt")
        .map(|a| a.value.as_str())
        .unwrap_or(&m.provenance.prompt)
}

/// The metadata of the evolved token: the parent's name, description and traits, the new
/// image, and provenance for the new image with its evolution record.
pub fn evolved_metadata(
    parent: &TokenMetadata,
    image_cid: &str,
    prompt: &str,
    g: &GenerationRecord,
    record: EvolutionRecord,
) -> TokenMetadata {
    let base = base_prompt(parent).to_string();
    let mut attributes: Vec<Attribute> = parent
        .attributes
        .iter()
        // An automatic attribute described the parent's image, not the one evolved from it.
        .filter(|a| a.source.is_none() && !matches!(a.trait_type.as_str(), "seed" | "generation" | "base_prompt"))
        .cloned()
        .collect();
    attributes.push(Attribute { trait_type: "seed".into(), value: g.params.seed.to_string(), source: None });
    attributes.push(Attribute { trait_type: "generation".into(), value: record.generation.to_string(), source: None });
    attributes.push(Attribute { trait_type: "base_prompt".into(), value: base, source: None });
    let p = &parent.provenance;
    TokenMetadata {
        name: parent.name.clone(),
        description: parent.description.clone(),
        image: format!("ipfs://{image_cid}"),
        attributes,
        provenance: Provenance {
            evolution: Some(record),
            ..Provenance::from_generation(p.job_id.clone(), prompt, &p.negative_prompt, g)
        },
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn living() -> LivingSection {
        LivingSection {
            strength: 0.5,
            prompt: "{prompt}, generation {generation}".into(),
            max_generations: 2,
            oracle: None,
        }
    }

    fn trigger(log_index: u64) -> Trigger {
        Trigger { chain_id: 31_337, block: 9, tx_hash: format!("0x{}", "ab".repeat(32)), log_index }
    }

    fn generated(seed: u64) -> GenerationRecord {
        GenerationRecord::for_tests(seed)
    }

    /// A token as minted: no evolution yet.
    fn minted() -> TokenMetadata {
        TokenMetadata {
            name: "Neon #1".into(),
            description: "d".into(),
            image: "ipfs://parent-image".into(),
            attributes: vec![
                Attribute { trait_type: "colour".into(), value: "red".into(), source: None },
                Attribute { trait_type: "seed".into(), value: "7".into(), source: None },
            ],
            provenance: Provenance { job_id: "ff".repeat(32), ..Provenance::for_tests() },
        }
    }

    #[test]
    fn an_evolution_is_a_function_of_its_event() {
        let parent = minted();
        let a = plan(&living(), "ipfs://parent", &parent, trigger(1), None);
        assert_eq!(a, plan(&living(), "ipfs://parent", &parent, trigger(1), None), "same event, same plan");
        let Plan::Evolve { prompt, seed, record, negative_prompt } = a else { panic!("should evolve") };
        assert_eq!(prompt, "a red circle, generation 1");
        assert_eq!(negative_prompt, "blurry");
        assert_eq!(record.generation, 1);
        assert_eq!(record.parent_metadata, "ipfs://parent");
        assert_eq!(record.parent_image, "ipfs://parent-image");
        let Plan::Evolve { seed: other, .. } = plan(&living(), "ipfs://parent", &parent, trigger(2), None) else {
            panic!("should evolve")
        };
        assert_ne!(seed, other, "another event, another seed");
        assert!(seed < 1 << 53, "exact as a JSON number in any language");
    }

    #[test]
    fn a_feeds_answer_gives_its_mood_to_the_prompt_and_is_recorded() {
        let living = LivingSection { prompt: "{prompt}, {mood}".into(), ..living() };
        let reading = OracleReading {
            feed: "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419".into(),
            round: "18446744073709562301".into(),
            answer: "150000000000".into(),
            decimals: 8,
            mood: "under a stormy sky".into(),
        };
        let Plan::Evolve { prompt, record, .. } =
            plan(&living, "ipfs://parent", &minted(), trigger(1), Some(reading.clone()))
        else {
            panic!("should evolve")
        };
        assert_eq!(prompt, "a red circle, under a stormy sky");
        assert_eq!(record.oracle, Some(reading));
        let answer =
            Answer { answer: "150000000000".into(), round: "1".into(), block: 1, tx_hash: "0x".into(), log_index: 0 };
        assert_eq!(answer.value(8), Some(1500.0));
    }

    #[test]
    fn generations_count_up_from_the_original_prompt_and_stop_at_the_limit() {
        let parent = minted();
        let Plan::Evolve { prompt, record, .. } = plan(&living(), "ipfs://p0", &parent, trigger(1), None) else {
            panic!("should evolve")
        };
        let first = evolved_metadata(&parent, "img1", &prompt, &generated(11), *record);
        assert_eq!(first.image, "ipfs://img1");
        assert_eq!(first.provenance.seed, 11);
        assert_eq!(first.provenance.job_id, parent.provenance.job_id, "still the same token's job");
        let attr =
            |m: &TokenMetadata, k: &str| m.attributes.iter().find(|a| a.trait_type == k).map(|a| a.value.clone());
        assert_eq!(attr(&first, "generation").as_deref(), Some("1"));
        assert_eq!(attr(&first, "colour").as_deref(), Some("red"), "traits stay");
        let Plan::Evolve { prompt, record, .. } = plan(&living(), "ipfs://p1", &first, trigger(2), None) else {
            panic!("should evolve")
        };
        assert_eq!(prompt, "a red circle, generation 2", "from the original prompt, not the evolved one");
        let second = evolved_metadata(&first, "img2", &prompt, &generated(12), *record);
        assert_eq!(second.attributes.iter().filter(|a| a.trait_type == "generation").count(), 1);
        assert_eq!(plan(&living(), "ipfs://p2", &second, trigger(3), None), Plan::Exhausted);
        // The record survives the JSON round trip a collector's tool would make.
        let back: TokenMetadata = serde_json::from_slice(&second.to_json()).unwrap();
        assert_eq!(back.provenance.evolution.map(|e| e.generation), Some(2));
    }
}
