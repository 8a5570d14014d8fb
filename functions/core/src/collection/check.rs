//! Validation, one check per section, in the order a file is read: the first problem is
//! returned with its field path and the fix.

use std::collections::BTreeMap;

use super::schema::*;
use super::{Collection, placeholders};
use crate::address::EvmAddress;
use crate::field::FieldError;
use crate::network;
use crate::sanitize::{MAX_DESCRIPTION_CHARS, MAX_PROMPT_CHARS, clean_text, sanitize_prompt};

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

impl OracleSection {
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

impl Collection {
    /// Checks every field, one section after another in the order a file is read; the first
    /// problem found is returned with its path.
    pub fn validate(mut f: CollectionFile) -> Result<Self, FieldError> {
        let recipient = collection(&mut f.collection)?;
        generation(&f.generation)?;
        ipfs(&f.ipfs)?;
        let contract = chain(&mut f.chain)?;
        review(&f.review)?;
        qa(&f.qa)?;
        let names = traits(&mut f.traits)?;
        prompts(&mut f.prompts, &names)?;
        together(&f)?;
        Ok(Self { file: f, recipient, contract })
    }
}

/// `[collection]`: name, symbol, style, description; the recipient parsed.
fn collection(c: &mut CollectionSection) -> Result<EvmAddress, FieldError> {
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

    Ok(recipient)
}

/// `[generation]`: the model, the sampler's numbers, LoRA adapters, the endpoint.
fn generation(g: &GenerationSection) -> Result<(), FieldError> {
    if g.model.trim().is_empty() {
        return Err(FieldError::new(
            "generation.model",
            "is empty",
            "point it at an ONNX Stable Diffusion model folder",
        ));
    }
    if !(1..=150).contains(&g.steps) {
        return Err(FieldError::new("generation.steps", format!("{} is out of range", g.steps), "use 1 to 150 steps"));
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

    Ok(())
}

/// `[ipfs]`.
fn ipfs(i: &IpfsSection) -> Result<(), FieldError> {
    if let Some(url) = &i.api_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(FieldError::new(
            "ipfs.api_url",
            format!("`{url}` is not an HTTP(S) URL"),
            "use the node's Kubo RPC API, e.g. http://127.0.0.1:5001, or remove it",
        ));
    }

    Ok(())
}

/// `[chain]`: the contract and RPC URLs, the network preset (which sets the chain id), the fee and confirmation settings.
fn chain(chain: &mut ChainSection) -> Result<Option<EvmAddress>, FieldError> {
    let contract = match &chain.contract {
        Some(s) => Some(EvmAddress::parse_any_case(s).map_err(|e| {
            FieldError::new(
                "chain.contract",
                e.to_string(),
                "give the deployed contract's address, or remove the key to deploy one",
            )
        })?),
        None => None,
    };
    for (field, url) in
        chain.rpc_url.iter().map(|u| ("chain.rpc_url", u)).chain(chain.rpc_urls.iter().map(|u| ("chain.rpc_urls", u)))
    {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(FieldError::new(
                field,
                format!("`{url}` is not an HTTP(S) URL"),
                "use e.g. http://127.0.0.1:8545, or remove it to start a local node",
            ));
        }
    }
    if let Some(name) = &chain.network {
        let Some(preset) = network::by_name(name) else {
            let names: Vec<&str> = network::NETWORKS.iter().map(|n| n.name).collect();
            return Err(FieldError::new(
                "chain.network",
                format!("`{name}` is not a known network"),
                format!("use one of: {}, or remove it and set chain.chain_id", names.join(", ")),
            ));
        };
        match chain.chain_id {
            Some(id) if id != preset.chain_id => {
                return Err(FieldError::new(
                    "chain.chain_id",
                    format!("{id} is not {name}'s chain id ({})", preset.chain_id),
                    "remove chain.chain_id (the network sets it) or fix it",
                ));
            }
            _ => chain.chain_id = Some(preset.chain_id),
        }
    }
    chain.chain_id = Some(chain.id());
    if chain.confirmations == Some(0) {
        return Err(FieldError::new("chain.confirmations", "is 0", "use 1 or more (1: included in a block)"));
    }
    if !(5..=3600).contains(&chain.stuck_after_secs) {
        return Err(FieldError::new(
            "chain.stuck_after_secs",
            format!("{} is out of range", chain.stuck_after_secs),
            "use 5 to 3600 seconds",
        ));
    }
    if let Some(g) = chain.max_fee_gwei
        && !(g.is_finite() && g > 0.0)
    {
        return Err(FieldError::new(
            "chain.max_fee_gwei",
            format!("{g} is not a fee"),
            "use a positive number of gwei, or remove it",
        ));
    }
    if chain.chain_id == Some(0) {
        return Err(FieldError::new("chain.chain_id", "is 0", "use the chain's id, e.g. 42161 for Arbitrum One"));
    }

    Ok(contract)
}

/// `[review]`: the review policy (see [`ReviewSection`] for what each boundary means).
fn review(r: &ReviewSection) -> Result<(), FieldError> {
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
    if !(0.0..=1.0).contains(&r.sample) {
        return Err(FieldError::new(
            "review.sample",
            format!("is {}", r.sample),
            "give the share of passing images a human sees as well, from 0 (none) to 1 (all)",
        ));
    }
    if !(-1.0..=1.0).contains(&r.min_brand_similarity) {
        return Err(FieldError::new(
            "review.min_brand_similarity",
            format!("is {}", r.min_brand_similarity),
            "give the least cosine similarity (-1 to 1) an image may have to its nearest reference image",
        ));
    }
    if !(0.0..=1.0).contains(&r.min_adherence) {
        return Err(FieldError::new(
            "review.min_adherence",
            format!("is {}", r.min_adherence),
            "give the least probability (0 to 1) the image-text model may give the value the prompt asks for",
        ));
    }
    if r.duplicate_distance > 32 {
        return Err(FieldError::new(
            "review.duplicate_distance",
            format!("is {} bits", r.duplicate_distance),
            "use 0 (the same picture only) to 32 bits of the 64-bit perceptual hash, or -1 to turn the check off",
        ));
    }

    Ok(())
}

/// `[qa]`: model folders and reference images are paths; references need the model that reads
/// them.
fn qa(q: &QaSection) -> Result<(), FieldError> {
    if q.clip.as_deref().is_some_and(|c| c.trim().is_empty()) {
        return Err(FieldError::new("qa.clip", "is empty", "give the folder of a CLIP export, or remove the key"));
    }
    if q.safety_checker.as_deref().is_some_and(|c| c.trim().is_empty()) {
        return Err(FieldError::new(
            "qa.safety_checker",
            "is empty",
            "give the folder of a safety checker export (safety_checker/model.onnx, feature_extractor/), or remove the key",
        ));
    }
    if !q.references.is_empty() && q.clip.is_none() {
        return Err(FieldError::new(
            "qa.references",
            "needs an image-text model to compare images with",
            "add qa.clip (a CLIP export), or remove qa.references",
        ));
    }
    if q.references.len() > MAX_REFERENCES {
        return Err(FieldError::new(
            "qa.references",
            format!("names {} images", q.references.len()),
            format!("name at most {MAX_REFERENCES} images of the brand's look"),
        ));
    }
    if let Some(i) = q.references.iter().position(|r| r.trim().is_empty()) {
        return Err(FieldError::new(format!("qa.references[{i}]"), "is empty", "give a PNG file's path"));
    }
    Ok(())
}

/// `[[traits]]`: names, values (cleaned in place) and weights; returns the names.
fn traits(traits: &mut [TraitSection]) -> Result<BTreeMap<String, usize>, FieldError> {
    let mut names = BTreeMap::new();
    for (i, t) in traits.iter_mut().enumerate() {
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

    Ok(names)
}

/// `[[prompts]]`: texts (cleaned in place), their placeholders, counts and seeds.
fn prompts(prompts: &mut [PromptSection], names: &BTreeMap<String, usize>) -> Result<(), FieldError> {
    if prompts.is_empty() {
        return Err(FieldError::new(
            "prompts",
            "no [[prompts]] given",
            "add at least one [[prompts]] entry with a text",
        ));
    }
    for (i, p) in prompts.iter_mut().enumerate() {
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
    Ok(())
}

/// What holds across sections: the total of jobs, `[living]` against the steps, the batch size against `[editions]` and `[living]`.
fn together(f: &CollectionFile) -> Result<(), FieldError> {
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
    Ok(())
}
