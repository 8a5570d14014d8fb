//! Living NFTs through the real binary on a real anvil: a collection is minted, a collector
//! transfers a token, and `latentmint live` grows that token a new image (img2img from the
//! current one with the real ONNX model), pins new metadata whose provenance names the parent
//! and the transfer, and moves the token with `setTokenURI` (ERC-4906 `MetadataUpdate`).
//! Watching again changes nothing; a token past `max_generations` stays as it is. Every
//! provenance record is signed by the minting wallet, `latentmint provenance` checks it, and
//! `latentmint verify` checks each token from the chain inwards.

use std::path::Path;
use std::process::Command;

use alloy::primitives::U256;
use latentmint_chain::{Chain, CollectionMinter, LocalNode, SendPolicy, to_alloy};
use latentmint_core::EvmAddress;
use latentmint_core::metadata::TokenMetadata;
use latentmint_core::ports::{ContentSource, Pinner, ProvenanceSigner};
use latentmint_e2e::{anvil, latentmint_bin, latentmint_run, ort_library, tiny_model};
use latentmint_embedded::LocalContentStore;

const CHAIN_ID: u64 = 31_337;

fn collection(rpc_url: &str, recipient: EvmAddress) -> String {
    format!(
        r#"
[collection]
name = "Living Test"
symbol = "LIVE"
recipient = "{recipient}"

[generation]
model = "{model}"
steps = 8
width = 64
height = 64
seed = 3

[chain]
chain_id = {CHAIN_ID}
rpc_url = "{rpc_url}"

[living]
strength = 0.5
prompt = "{{prompt}}, generation {{generation}}"
max_generations = 1

[[prompts]]
text = "a red square"

[[prompts]]
text = "a blue circle"
"#,
        model = tiny_model().display(),
    )
}

fn live(file: &Path, data: &Path, key: &str) -> String {
    let out = Command::new(latentmint_bin())
        .arg("live")
        .arg(file)
        .arg("--data-dir")
        .arg(data)
        .args(["--once", "--no-progress", "--threads", "1"])
        .env("ORT_DYLIB_PATH", ort_library())
        .env("LATENTMINT_SIGNER_KEY", key)
        .output()
        .expect("latentmint live runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "latentmint live failed:\n{stderr}");
    stderr
}

/// Token ids minted by the contract, in mint order.
async fn minted(minter: &CollectionMinter) -> Vec<U256> {
    let logs = minter.contract().Transfer_filter().from_block(0).query().await.expect("Transfer logs");
    logs.into_iter().filter(|(t, _)| t.from.is_zero()).map(|(t, _)| t.tokenId).collect()
}

async fn metadata_update_count(minter: &CollectionMinter) -> usize {
    minter.contract().MetadataUpdate_filter().from_block(0).query().await.expect("MetadataUpdate logs").len()
}

async fn transfer(node: &LocalNode, contract: EvmAddress, key_index: usize, to: EvmAddress, id: U256) -> String {
    let owner = Chain::connect(&node.rpc_url, node.dev_key(key_index).unwrap(), CHAIN_ID).await.unwrap();
    let m = owner.minter(contract, SendPolicy::confirmations(1));
    let from = owner.sender();
    let receipt = m
        .contract()
        .transferFrom(to_alloy(from), to_alloy(to), id)
        .from(to_alloy(from))
        .send()
        .await
        .expect("transfer sent")
        .get_receipt()
        .await
        .expect("transfer mined");
    assert!(receipt.status(), "transfer succeeded");
    format!("{:#x}", receipt.transaction_hash)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transferred_token_grows_a_new_image_once() {
    let node = LocalNode::spawn(&anvil(), CHAIN_ID, None).await.expect("anvil starts");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let minter_key = node.dev_key(0).unwrap().to_string();
    let chain = Chain::connect(&node.rpc_url, &minter_key, CHAIN_ID).await.unwrap();
    // Collectors: anvil's second and third dev accounts.
    let alice = Chain::connect(&node.rpc_url, node.dev_key(1).unwrap(), CHAIN_ID).await.unwrap().sender();
    let bob = Chain::connect(&node.rpc_url, node.dev_key(2).unwrap(), CHAIN_ID).await.unwrap().sender();
    let file = dir.path().join("living.toml");
    std::fs::write(&file, collection(&node.rpc_url, alice)).unwrap();

    let out = latentmint_run(&file, &data).env("LATENTMINT_SIGNER_KEY", &minter_key).output().unwrap();
    assert!(out.status.success(), "run failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let deployment: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("living-test/deployment.json")).unwrap()).unwrap();
    let contract = EvmAddress::parse_any_case(deployment["contract"].as_str().unwrap()).unwrap();
    let m = chain.minter(contract, SendPolicy::confirmations(1));
    let ids = minted(&m).await;
    assert_eq!(ids.len(), 2, "both tokens minted");
    let (moved, kept) = (ids[0], ids[1]);
    let uri_of = |id: U256| {
        let m = &m;
        async move { m.token_uri(&id.to_string()).await.unwrap() }
    };
    let (moved_before, kept_before) = (uri_of(moved).await, uri_of(kept).await);

    // Nothing changed hands yet: nothing evolves.
    let quiet = live(&file, &data, &minter_key);
    assert!(quiet.contains("0 evolution(s)"), "{quiet}");
    assert_eq!(metadata_update_count(&m).await, 0);

    let tx = transfer(&node, contract, 1, bob, moved).await;
    let out = live(&file, &data, &minter_key);
    assert!(out.contains("1 evolution(s)"), "{out}");
    let moved_after = uri_of(moved).await;
    assert_ne!(moved_after, moved_before, "the transferred token points at new metadata");
    assert_eq!(uri_of(kept).await, kept_before, "the other token is untouched");
    assert_eq!(metadata_update_count(&m).await, 1, "one ERC-4906 MetadataUpdate");

    // The new metadata says where it came from; its image grew from the old one.
    let store = LocalContentStore::new(data.join("living-test/ipfs"));
    let read = |uri: String| {
        let store = &store;
        async move {
            let cid = uri.strip_prefix("ipfs://").unwrap().to_string();
            store.fetch(&cid).await.unwrap()
        }
    };
    let parent: TokenMetadata = serde_json::from_slice(&read(moved_before.clone()).await).unwrap();
    let child: TokenMetadata = serde_json::from_slice(&read(moved_after.clone()).await).unwrap();
    let evo = child.provenance.evolution.clone().expect("an evolution record");
    assert_eq!(evo.generation, 1);
    assert_eq!(evo.parent_metadata, moved_before);
    assert_eq!(evo.parent_image, parent.image);
    assert_eq!(evo.trigger.tx_hash, tx, "the transfer that caused it");
    assert_eq!(evo.trigger.chain_id, CHAIN_ID);
    assert_eq!(child.provenance.job_id, parent.provenance.job_id, "still the same token");
    assert_eq!(child.provenance.prompt, format!("{}, generation 1", parent.provenance.prompt));
    assert_ne!(child.image, parent.image, "a new image");
    let png = read(child.image.clone()).await;
    assert_eq!(&png[1..4], b"PNG");

    // Both records are signed by the minting wallet (EIP-712), and a collector can check it.
    let minter_address = chain.sender();
    assert_eq!(latentmint_chain::provenance::verify(&parent.provenance), Ok(minter_address));
    assert_eq!(latentmint_chain::provenance::verify(&child.provenance), Ok(minter_address));
    let file_of = |name: &str, m: &TokenMetadata| {
        let f = dir.path().join(name);
        std::fs::write(&f, m.to_json()).unwrap();
        f
    };
    let check = |f: &Path| Command::new(latentmint_bin()).arg("provenance").arg(f).output().unwrap();
    let ok = check(&file_of("child.json", &child));
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains(&minter_address.to_string()));
    // With the image: its bytes must be the ones the signed record names.
    let child_png = dir.path().join("child.png");
    std::fs::write(&child_png, &png).unwrap();
    let parent_png = dir.path().join("parent.png");
    std::fs::write(&parent_png, read(parent.image.clone()).await).unwrap();
    let with_image = |img: &Path| {
        Command::new(latentmint_bin())
            .arg("provenance")
            .arg(dir.path().join("child.json"))
            .arg("--image")
            .arg(img)
            .output()
            .unwrap()
    };
    let out = with_image(&child_png);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The evolved image's Content Credentials agree with the record; trusted under the run's CA.
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("content credentials: C2PA manifest valid (no CA given to trust)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let trusted = Command::new(latentmint_bin())
        .arg("provenance")
        .arg(dir.path().join("child.json"))
        .arg("--image")
        .arg(&child_png)
        .arg("--credentials-ca")
        .arg(data.join("living-test/c2pa/ca.pem"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&trusted.stdout).contains("C2PA manifest trusted"), "{trusted:?}");
    let swapped = with_image(&parent_png);
    assert_eq!(swapped.status.code(), Some(1), "another image is refused");
    assert!(String::from_utf8_lossy(&swapped.stderr).contains("not the image this record describes"));
    let mut forged = child.clone();
    forged.provenance.prompt = "a forged prompt".into();
    let bad = check(&file_of("forged.json", &forged));
    assert_eq!(bad.status.code(), Some(1), "a changed record is refused");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("changed after signing"));
    // The lineage it prints is signed too: a record claiming another parent is refused.
    assert!(String::from_utf8_lossy(&ok.stdout).contains("evolution 1 of ipfs://"), "{ok:?}");
    let mut other_parent = child.clone();
    if let Some(e) = other_parent.provenance.evolution.as_mut() {
        e.parent_metadata = format!("ipfs://{}", latentmint_core::cid::cid_of_bytes(b"another token's metadata"));
    }
    let bad = check(&file_of("other-parent.json", &other_parent));
    assert_eq!(bad.status.code(), Some(1), "a changed lineage is refused");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("changed after signing"));

    // Watching again: the event was handled, nothing is sent.
    let again = live(&file, &data, &minter_key);
    assert!(again.contains("0 evolution(s)"), "{again}");
    assert_eq!(metadata_update_count(&m).await, 1);

    // Running the collection again mints nothing and checks both tokens, the evolved one by its
    // new record.
    let rerun = latentmint_run(&file, &data).env("LATENTMINT_SIGNER_KEY", &minter_key).output().unwrap();
    let stdout = String::from_utf8_lossy(&rerun.stdout);
    assert!(rerun.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&rerun.stderr));
    assert!(stdout.contains("verified on chain: 2 tokens (1 held by their recipients)"), "{stdout}");
    assert_eq!(minted(&m).await.len(), 2, "nothing minted again");

    // Past max_generations (1): another transfer leaves the token as it is.
    transfer(&node, contract, 2, alice, moved).await;
    let stays = live(&file, &data, &minter_key);
    assert!(stays.contains("stays: reached living.max_generations"), "{stays}");
    assert_eq!(uri_of(moved).await, moved_after);
    assert_eq!(metadata_update_count(&m).await, 1);

    // The run wrote every token's whole id where tools and collectors find it.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("living-test/tokens.json")).unwrap()).unwrap();
    assert_eq!(manifest["contract"].as_str(), Some(contract.to_string().as_str()));
    assert!(manifest["deployed_block"].as_u64().is_some_and(|b| b > 0), "{manifest}");
    let listed: std::collections::BTreeSet<String> =
        manifest["jobs"].as_array().unwrap().iter().map(|j| j["token_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(listed, ids.iter().map(U256::to_string).collect(), "{manifest}");

    // A collector checks both tokens from the chain inwards, with no key: the evolved one's
    // record by the metadata updater, the other's by the minter.
    let ipfs = data.join("living-test/ipfs");
    let verify_with = |contract: EvmAddress, token: U256, extra: &[&std::ffi::OsStr]| {
        let out = Command::new(latentmint_bin())
            .args(["verify", "--rpc-url", &node.rpc_url, "--contract", &contract.to_string(), "--token"])
            .arg(token.to_string())
            .arg("--ipfs-dir")
            .arg(&ipfs)
            .args(extra)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    let verify = |contract: EvmAddress, token: U256| verify_with(contract, token, &[]);
    let reproduce_with =
        |token: U256, model: &Path| verify_with(contract, token, &["--reproduce-with".as_ref(), model.as_os_str()]);
    let (code, out) = verify(contract, moved);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("held METADATA_ROLE at block") && out.contains("verified: every check holds"), "{out}");
    // The evolved image carries Content Credentials naming its parent; trusted once the run's
    // development CA is given.
    assert!(out.contains("ok   content credentials: C2PA manifest valid (no CA given to trust)"), "{out}");
    let ca = data.join("living-test/c2pa/ca.pem");
    let (code, out) = verify_with(contract, moved, &["--credentials-ca".as_ref(), ca.as_os_str()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ok   content credentials: C2PA manifest trusted (its chain ends at the CA given)"), "{out}");
    let (code, out) = verify(contract, kept);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("held MINTER_ROLE at block") && out.contains("when the token was minted"), "{out}");
    assert!(out.contains(&kept_before), "{out}");

    // Each image made again from its signed record with the model it names: the minted one
    // from its prompt and seed, the evolved one from its parent image.
    let made_again = "ok   the record's prompt, seed and parameters make this image: made again pixel for pixel";
    let (code, out) = reproduce_with(kept, &tiny_model());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ok   the model is the one the record names") && out.contains(made_again), "{out}");
    let (code, out) = reproduce_with(moved, &tiny_model());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ok   the parent image is the one the record names") && out.contains(made_again), "{out}");
    // Another model is named for what it is, before anything is generated.
    let (code, out) = reproduce_with(kept, &tiny_model().with_file_name("shapes-sd"));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL the model is the one the record names") && !out.contains("make this image"), "{out}");

    // An adapter the record does not name is refused, naming what the record does name.
    let (code, out) = verify_with(
        contract,
        kept,
        &["--reproduce-with".as_ref(), tiny_model().as_os_str(), "--lora".as_ref(), file.as_os_str()],
    );
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("--lora") && out.contains("is not one of the record's adapters (it names none)"), "{out}");

    // A record that misstates its seed, signed by the metadata updater and put behind the
    // evolved token: signature, contract, role, job and image hash all hold. The image's own
    // Content Credentials (stamped at generation) say otherwise, and making the image again
    // shows that the record does not describe it.
    let mut misstated = child.clone();
    misstated.provenance.seed += 1;
    misstated.provenance.signature = Some(chain.provenance_signer(contract).sign(&misstated.provenance).await.unwrap());
    let misstated_cid = store.pin("misstated.json", misstated.to_json()).await.unwrap();
    m.set_token_uri(&moved.to_string(), &format!("ipfs://{misstated_cid}")).await.unwrap();
    let (code, out) = verify(contract, moved);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out.matches("FAIL").count(), 1, "the chain-side checks cannot see it: {out}");
    assert!(out.contains("FAIL content credentials: the C2PA manifest's seed is not the signed record's"), "{out}");
    let (code, out) = reproduce_with(moved, &tiny_model());
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL the record's prompt, seed and parameters make this image") && out.contains("dB PSNR"),
        "{out}"
    );
    m.set_token_uri(&moved.to_string(), &moved_after).await.unwrap();

    // The same token id on another contract does not exist: an error, not a verdict.
    let other = chain.deploy("Other", "OTHER").await.unwrap();
    let (code, out) = verify(other, kept);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("does not exist"), "{out}");

    // The studio rotates its minting key: a new wallet gets MINTER_ROLE, the old one loses it.
    // Tokens minted while the old key held the role stay verified, and the withdrawal is shown.
    // (Through the minter's own connection: its sends set their nonces, the contract calls
    // below take theirs from the node.)
    let admin = m.contract();
    let role = admin.MINTER_ROLE().call().await.unwrap();
    let grant = admin.grantRole(role, to_alloy(bob)).send().await.unwrap();
    assert!(grant.get_receipt().await.unwrap().status());
    let revoke = admin.revokeRole(role, to_alloy(minter_address)).send().await.unwrap();
    assert!(revoke.get_receipt().await.unwrap().status());
    let (code, out) = verify(contract, kept);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("when the token was minted; withdrawn at block"), "{out}");

    // The old key loses its other role too (METADATA_ROLE, which also vouches for records),
    // and bob, the new metadata updater, puts the old key's record behind the token again (the
    // contract call itself, as the minter skips a URI already in place): the contract did not
    // vouch for that record when it was set.
    let metadata_role = admin.METADATA_ROLE().call().await.unwrap();
    let grant = admin.grantRole(metadata_role, to_alloy(bob)).send().await.unwrap();
    assert!(grant.get_receipt().await.unwrap().status());
    let revoke = admin.revokeRole(metadata_role, to_alloy(minter_address)).send().await.unwrap();
    assert!(revoke.get_receipt().await.unwrap().status());
    let as_bob = Chain::connect(&node.rpc_url, node.dev_key(2).unwrap(), CHAIN_ID).await.unwrap();
    let bobs = latentmint_chain::contract::LatentCollection::new(to_alloy(contract), as_bob.provider().clone());
    let reset = bobs.setTokenURI(kept, kept_before.clone()).send().await.unwrap();
    assert!(reset.get_receipt().await.unwrap().status());
    let (code, out) = verify(contract, kept);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL the signer held the contract's role when the record was set")
            && out.contains("did not hold MINTER_ROLE at block")
            && out.contains("when this record was put behind the token"),
        "{out}"
    );

    // A record signed for another contract, put behind the token by the metadata updater: the
    // signature is valid, but not for this collection.
    let mut replayed: TokenMetadata = serde_json::from_slice(&read(kept_before.clone()).await).unwrap();
    replayed.provenance.signature = Some(chain.provenance_signer(other).sign(&replayed.provenance).await.unwrap());
    let replayed_cid = store.pin("replayed.json", replayed.to_json()).await.unwrap();
    let put = bobs.setTokenURI(kept, format!("ipfs://{replayed_cid}")).send().await.unwrap();
    assert!(put.get_receipt().await.unwrap().status());
    let (code, out) = reproduce_with(kept, &tiny_model());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("ok   provenance record is signed and unchanged"), "{out}");
    assert!(out.contains("FAIL signed for this contract and chain"), "{out}");
    assert!(out.contains("not made again: the checks above must hold first"), "{out}");

    // The content store hands out other bytes for the evolved image: caught by its CID.
    let image_cid = child.image.strip_prefix("ipfs://").unwrap();
    std::fs::write(ipfs.join(image_cid), read(parent.image.clone()).await).unwrap();
    let (code, out) = verify(contract, moved);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL image fetched") && out.contains(image_cid), "{out}");

    // The whole collection in one pass: a line per token, each with its first failed check.
    let (code, out) = verify_with(contract, U256::ZERO, &[]);
    assert_eq!(code, Some(2), "token 0 does not exist: {out}");
    let out = Command::new(latentmint_bin())
        .args(["verify", "--rpc-url", &node.rpc_url, "--contract", &contract.to_string(), "--all", "--ipfs-dir"])
        .arg(&ipfs)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&format!("FAIL {kept}: signed for this contract and chain")), "{stdout}");
    assert!(stdout.contains(&format!("FAIL {moved}: image fetched")), "{stdout}");
    assert!(stdout.contains("NOT verified: 2 of 2 tokens failed a check"), "{stdout}");
    // The same as JSON, for marketplaces and scripts: every check of every token.
    let out = Command::new(latentmint_bin())
        .args(["verify", "--rpc-url", &node.rpc_url, "--contract", &contract.to_string(), "--all", "--json"])
        .arg("--ipfs-dir")
        .arg(&ipfs)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((doc["verified"].as_u64(), doc["failed"].as_u64()), (Some(0), Some(2)), "{doc}");
    let first_failure = |token: U256| {
        let t = doc["tokens"].as_array().unwrap().iter().find(|t| t["token_id"] == token.to_string()).unwrap();
        assert_eq!(t["verified"], false, "{t}");
        let failed = t["checks"].as_array().unwrap().iter().find(|c| c["ok"] == false).unwrap();
        failed["what"].as_str().unwrap().to_string()
    };
    assert_eq!(first_failure(kept), "signed for this contract and chain");
    assert_eq!(first_failure(moved), "image fetched");
}

alloy::sol! {
    #[sol(rpc)]
    contract PriceFeedStub {
        function updateAnswer(int256 answer) external;
    }
}

/// `[living.oracle]`: a price feed (the stand-in from infra/contracts, placed on anvil) moves
/// the collection between moods. An answer in another mood evolves every token once, an answer
/// in the same mood evolves nothing, transfers evolve nothing, and each new record names the
/// answer that made it and checks out from the chain inwards.
#[tokio::test(flavor = "multi_thread")]
async fn a_price_feed_moving_into_another_mood_evolves_every_token_once() {
    use alloy::providers::Provider;
    let node = LocalNode::spawn(&anvil(), CHAIN_ID, None).await.expect("anvil starts");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = node.dev_key(0).unwrap().to_string();
    let chain = Chain::connect(&node.rpc_url, &key, CHAIN_ID).await.unwrap();
    let alice = Chain::connect(&node.rpc_url, node.dev_key(1).unwrap(), CHAIN_ID).await.unwrap().sender();
    let artifact: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(latentmint_e2e::repo_root().join("infra/contracts/artifacts/PriceFeedStub.json"))
            .unwrap(),
    )
    .unwrap();
    let feed = alloy::primitives::Address::repeat_byte(0xfe);
    let _: serde_json::Value = chain
        .provider()
        .raw_request("anvil_setCode".into(), (feed, artifact["deployedBytecode"]["object"].as_str().unwrap()))
        .await
        .unwrap();
    let post = |usd: i64| {
        let feed = PriceFeedStub::new(feed, chain.provider().clone());
        async move {
            let answer = alloy::primitives::I256::try_from(usd * 100_000_000).unwrap();
            feed.updateAnswer(answer).send().await.unwrap().get_receipt().await.unwrap();
        }
    };
    let text = collection(&node.rpc_url, alice)
        .replace("name = \"Living Test\"", "name = \"Living Oracle\"")
        .replace("prompt = \"{prompt}, generation {generation}\"", "prompt = \"{prompt}, {mood}\"")
        .replace("max_generations = 1", "max_generations = 4")
        .replace(
            "[[prompts]]\ntext = \"a red square\"",
            &format!(
                "[living.oracle]\nfeed = \"{feed}\"\n\
                 [[living.oracle.moods]]\nbelow = 2000\nwords = \"under a stormy sky\"\n\
                 [[living.oracle.moods]]\nwords = \"in bright sunshine\"\n\n[[prompts]]\ntext = \"a red square\""
            ),
        );
    let file = dir.path().join("oracle.toml");
    std::fs::write(&file, text).unwrap();
    let out = latentmint_run(&file, &data).env("LATENTMINT_SIGNER_KEY", &key).output().unwrap();
    assert!(out.status.success(), "run failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let deployment: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("living-oracle/deployment.json")).unwrap()).unwrap();
    let contract = EvmAddress::parse_any_case(deployment["contract"].as_str().unwrap()).unwrap();
    let m = chain.minter(contract, SendPolicy::confirmations(1));
    let ids = minted(&m).await;
    assert_eq!(ids.len(), 2);

    let quiet = live(&file, &data, &key);
    assert!(quiet.contains("watching the price feed") && quiet.contains("0 evolution(s)"), "{quiet}");
    // A transfer evolves nothing in a collection that lives by its feed.
    transfer(&node, contract, 1, chain.sender(), ids[0]).await;
    post(1500).await;
    assert!(live(&file, &data, &key).contains("2 evolution(s)"), "the first answer sets the mood");
    post(1800).await;
    assert!(live(&file, &data, &key).contains("0 evolution(s)"), "the same mood changes nothing");
    post(2500).await;
    assert!(live(&file, &data, &key).contains("2 evolution(s)"), "another mood evolves every token");
    assert!(live(&file, &data, &key).contains("0 evolution(s)"), "each answer is acted on once");
    assert_eq!(metadata_update_count(&m).await, 4);

    let store = LocalContentStore::new(data.join("living-oracle/ipfs"));
    let uri = m.token_uri(&ids[1].to_string()).await.unwrap();
    let now: TokenMetadata =
        serde_json::from_slice(&store.fetch(uri.trim_start_matches("ipfs://")).await.unwrap()).unwrap();
    assert!(now.provenance.prompt.ends_with("a blue circle, in bright sunshine"), "{}", now.provenance.prompt);
    let evolution = now.provenance.evolution.clone().expect("an evolution record");
    assert_eq!(evolution.generation, 2);
    let reading = evolution.oracle.expect("the feed's answer");
    assert_eq!((reading.answer.as_str(), reading.decimals), ("250000000000", 8));
    assert_eq!(reading.feed, latentmint_chain::from_alloy(feed).to_string());
    assert_eq!(latentmint_chain::provenance::verify(&now.provenance), Ok(chain.sender()));

    // A collector's check of every token, from the chain inwards.
    let out = Command::new(latentmint_bin())
        .args(["verify", "--rpc-url", &node.rpc_url, "--contract", &contract.to_string(), "--all", "--ipfs-dir"])
        .arg(data.join("living-oracle/ipfs"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("verified: 2 of 2 tokens"), "{stdout}");
}
