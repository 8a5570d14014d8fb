//! The Kubo RPC pinner against a real IPFS node (js-ipfs, offline, on 127.0.0.1): the node's
//! CIDs equal ours for a one-block file, a multi-chunk file and an empty one; what is pinned
//! comes back from the API and from the node's own gateway, checked against its CID; a
//! collector's check reads a run's tokens through either.

use latentmint_core::cid::cid_of_bytes;
use latentmint_core::ports::{ContentSource, JobStore, Pinner};
use latentmint_e2e::IpfsNode;
use latentmint_ipfs::KuboPinner;

/// A plain HTTP/1.1 GET; the body.
fn http_get(base: &str, path: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP answer") + 4;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let body = raw[split..].to_vec();
    if head.contains("transfer-encoding: chunked") { dechunk(&body) } else { body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&b[..line_end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[line_end + 2..line_end + 2 + size]);
        b = &b[line_end + 2 + size + 2..];
    }
}

fn content(size: usize, seed: u8) -> Vec<u8> {
    (0..size).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_node_agrees_with_our_cids_and_serves_what_it_pinned() {
    let node = IpfsNode::start();
    let pinner = KuboPinner::new(&node.api, None).unwrap();
    for (name, bytes) in
        [("metadata.json", br#"{"name":"token"}"#.to_vec()), ("empty", Vec::new()), ("image.png", content(600_000, 7))]
    {
        let ours = cid_of_bytes(&bytes);
        let theirs = pinner.pin(name, bytes.clone()).await.unwrap();
        assert_eq!(theirs, ours, "{name}: the node's CID");
        assert_eq!(pinner.fetch(&ours).await.unwrap(), bytes, "{name}: back through the API");
    }
    // Through the gateway, as a wallet or marketplace would read it.
    let cid = cid_of_bytes(br#"{"name":"token"}"#);
    let body = http_get(&node.gateway, &format!("/ipfs/{cid}"));
    assert_eq!(body, br#"{"name":"token"}"#);
    // And through the gateway adapter, a file of three chunks (a dag-pb root) included.
    let gateway = latentmint_ipfs::Gateway::new(&node.gateway).unwrap();
    let big = content(600_000, 7);
    assert_eq!(gateway.fetch(&cid_of_bytes(&big)).await.unwrap(), big);

    // A batch's metadata directory: the node builds the directory we computed, and its node
    // block comes back from the API, checked.
    let files: Vec<(String, Vec<u8>)> =
        (0..12).map(|i| (i.to_string(), format!("{{\"n\":{i}}}").into_bytes())).collect();
    let ours = latentmint_core::cid::directory_cid(&files).unwrap();
    assert_eq!(pinner.pin_directory("batch-1", files.clone()).await.unwrap(), ours, "the node's directory CID");
    let links = latentmint_core::cid::directory_links(&ours, &pinner.fetch_block(&ours).await.unwrap()).unwrap();
    assert_eq!(links.len(), 12);
    for (name, bytes) in &files {
        assert!(links.contains(&(name.clone(), cid_of_bytes(bytes))), "entry {name}");
    }
    // A file's block is the file when it is one chunk.
    let one = cid_of_bytes(&files[3].1);
    assert_eq!(pinner.fetch_block(&one).await.unwrap(), files[3].1);
    // js-ipfs's gateway predates the Trustless Gateway's raw blocks: it answers a directory
    // with a listing page, and is named as such.
    let e = gateway.fetch_block(&ours).await.unwrap_err().to_string();
    assert!(e.contains("not a raw block") && e.contains("--ipfs-api"), "{e}");
}

/// The whole local run with `[ipfs] api_url` and batches of two: every token's metadata and
/// image are pinned on the node (a batch's metadata as a directory), and the run's own
/// on-chain check reads them back from it; so do collectors, through the API and the gateway.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_pins_its_tokens_on_the_node() {
    let node = IpfsNode::start();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("c.toml");
    std::fs::write(
        &file,
        latentmint_e2e::tiny_collection("Pinned", "PIN")
            .section("[review]\nauto_approve_at = 0.0\nauto_reject_below = 0.0\n[chain]\nbatch_size = 2")
            .section(&format!("[ipfs]\napi_url = \"{}\"", node.api))
            .prompt_times("a red circle", 3)
            .text(),
    )
    .unwrap();
    let out = latentmint_e2e::latentmint_run(&file, &tmp.path().join("data"))
        .arg("--anvil")
        .arg(latentmint_e2e::anvil())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("verified on chain: 3 tokens"), "{stdout}");
    // Nothing went to the local content folder: the node holds it all.
    assert!(!tmp.path().join("data/pinned/ipfs").exists());

    // A collector checks each token with the node as the only content source: the run's chain
    // is reloaded from its saved state.
    let dir = tmp.path().join("data/pinned");
    let deployment: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("deployment.json")).unwrap()).unwrap();
    let chain_id = deployment["chain_id"].as_u64().unwrap();
    let chain = latentmint_chain::LocalNode::spawn(
        &latentmint_e2e::anvil(),
        chain_id,
        Some(&dir.join("chain/anvil-state.json")),
    )
    .await
    .unwrap();
    let jobs = latentmint_embedded::SqliteJobStore::open(&dir.join("pipeline.db")).unwrap();
    let minted = jobs.list(Some(latentmint_core::JobState::Minted)).await.unwrap();
    assert_eq!(minted.len(), 3);
    // Two in one batch (token i is file i of its directory), the third alone.
    let batched: Vec<_> = minted.iter().filter(|j| j.batch.is_some()).collect();
    assert_eq!(batched.len(), 2, "{minted:?}");
    assert_eq!(batched[0].tx_hash, batched[1].tx_hash, "one transaction for the batch");
    for job in minted {
        let out = std::process::Command::new(latentmint_e2e::latentmint_bin())
            .args(["verify", "--rpc-url", &chain.rpc_url, "--contract", deployment["contract"].as_str().unwrap()])
            .args(["--token", job.token_id.as_deref().unwrap(), "--ipfs-api", &node.api])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            stdout.contains("held MINTER_ROLE at block") && stdout.contains("verified: every check holds"),
            "{stdout}"
        );
        assert_eq!(job.batch.is_some(), stdout.contains("metadata is in the batch directory"), "{stdout}");
    }
    // The whole collection at once, from the deployment block the run recorded.
    let out = std::process::Command::new(latentmint_e2e::latentmint_bin())
        .args(["verify", "--rpc-url", &chain.rpc_url, "--contract", deployment["contract"].as_str().unwrap()])
        .args(["--all", "--ipfs-api", &node.api, "--from-block", &deployment["block"].to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("3 tokens minted by") && stdout.contains("verified: 3 of 3 tokens"), "{stdout}");
    assert_eq!(stdout.matches("ok   ").count(), 3, "{stdout}");

    // A collector without an IPFS node reads the same content through the node's HTTP gateway:
    // the token minted alone checks out; a batch token needs its directory's raw block, which
    // js-ipfs's gateway cannot serve, and the check says so instead of passing unchecked.
    let verify_through_gateway = |token: &str| {
        std::process::Command::new(latentmint_e2e::latentmint_bin())
            .args(["verify", "--rpc-url", &chain.rpc_url, "--contract", deployment["contract"].as_str().unwrap()])
            .args(["--token", token, "--gateway", &node.gateway, "--from-block", &deployment["block"].to_string()])
            .output()
            .unwrap()
    };
    let alone = batched_out(&jobs).await;
    let out = verify_through_gateway(alone.0.token_id.as_deref().unwrap());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("verified: every check holds"), "{stdout}");
    let out = verify_through_gateway(alone.1.token_id.as_deref().unwrap());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && stdout.contains("Trustless Gateway"), "{stdout}");
}

/// The job minted alone and one minted in a batch.
async fn batched_out(jobs: &latentmint_embedded::SqliteJobStore) -> (latentmint_core::Job, latentmint_core::Job) {
    let minted = jobs.list(Some(latentmint_core::JobState::Minted)).await.unwrap();
    let alone = minted.iter().find(|j| j.batch.is_none()).expect("a job minted alone").clone();
    let batched = minted.iter().find(|j| j.batch.is_some()).expect("a job minted in a batch").clone();
    (alone, batched)
}
