//! The collection file's parser, checks and expansion.

use super::expand::pick_weighted;
use super::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

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
        ("neon-shapes.toml", include_str!("../../../../examples/neon-shapes.toml")),
        ("neon-editions.toml", include_str!("../../../../examples/neon-editions.toml")),
        ("neon-drop.toml", include_str!("../../../../examples/neon-drop.toml")),
    ] {
        let c = Collection::from_toml(name, text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!c.jobs().unwrap().is_empty(), "{name}");
    }
    let drop = Collection::from_toml("d", include_str!("../../../../examples/neon-drop.toml")).unwrap();
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
    let e = Collection::from_toml("c.toml", &with("network = \"arbitrum-one\"\nchain_id = 1")).unwrap_err().to_string();
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

#[test]
fn lora_strengths_from_minus_four_to_four_are_taken() {
    let with = |scale: f32| format!("{GOOD}\n[[generation.lora]]\npath = \"brand.safetensors\"\nscale = {scale}\n");
    for ok in [-4.0, -0.5, 0.0, 1.0, 4.0] {
        let c = Collection::from_toml("c", &with(ok)).unwrap();
        assert_eq!(c.file.generation.lora[0].scale, ok);
    }
    for bad in [-4.5, 4.5] {
        let e = Collection::from_toml("c", &with(bad)).unwrap_err();
        assert!(e.to_string().contains("generation.lora[0].scale"), "{e}");
    }
}
