//! The intake function's doors: HTTP, dropped files and schedules, signed orders.

use std::sync::Arc;
use std::time::Duration;

use latentmint_core::JobState;
use latentmint_core::ports::{JobStore, Queue};
use latentmint_embedded::{SqliteJobStore, SqliteQueue};

use latentmint_aws::{SecretError, SecretVersions};

use super::*;

const NEON: &str = include_str!("../../../../examples/neon-shapes.toml");

struct Rig {
    _dir: tempfile::TempDir,
    queue: Arc<SqliteQueue>,
    jobs: Arc<SqliteJobStore>,
    ports: ports::Intake,
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(SqliteQueue::open(&dir.path().join("q.db"), 5).unwrap());
    let jobs = Arc::new(SqliteJobStore::open(&dir.path().join("jobs.db")).unwrap());
    let ports = ports::Intake { queue: queue.clone(), jobs: jobs.clone() };
    Rig { _dir: dir, queue, jobs, ports }
}

/// The example collection names chain 412346 and no contract.
fn stack() -> StackChain {
    StackChain {
        chain_id: 412_346,
        contract: EvmAddress::from_bytes([0x11; 20]),
        editions: None,
        living: None,
        mint_batch: 1,
    }
}

/// A request as API Gateway's HTTP API delivers it (payload format 2.0).
fn request(method: &str, content_type: &str, body: &str, base64: bool) -> ApiGatewayV2httpRequest {
    serde_json::from_value(serde_json::json!({
        "version": "2.0",
        "routeKey": "POST /collections",
        "rawPath": "/collections",
        "rawQueryString": "",
        "headers": { "content-type": content_type },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example",
            "requestId": "req",
            "routeKey": "POST /collections",
            "stage": "$default",
            "time": "25/Nov/2026:18:00:00 +0000",
            "timeEpoch": 1_795_629_600_000_i64,
            "http": { "method": method, "path": "/collections", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test" }
        },
        "body": body,
        "isBase64Encoded": base64
    }))
    .expect("an HTTP API v2 payload")
}

fn body(r: &ApiGatewayV2httpResponse) -> serde_json::Value {
    match &r.body {
        Some(Body::Text(t)) => serde_json::from_str(t).expect("JSON body"),
        other => panic!("no text body: {other:?}"),
    }
}

#[tokio::test]
async fn a_collection_becomes_recorded_jobs_and_generate_messages() {
    let r = rig();
    let resp = handle_http(&r.ports, &stack(), request("POST", "application/toml", NEON, false)).await;
    assert_eq!(resp.status_code, 202, "{:?}", resp.body);
    let b = body(&resp);
    assert_eq!((b["jobs"].as_u64(), b["queued"].as_u64()), (Some(8), Some(8)), "{b}");
    let ids: Vec<String> = serde_json::from_value(b["job_ids"].clone()).unwrap();
    let queued = r.jobs.list(Some(JobState::Queued)).await.unwrap();
    let mut recorded: Vec<String> = queued.iter().map(|j| j.id().to_string()).collect();
    let mut want = ids.clone();
    recorded.sort();
    want.sort();
    assert_eq!(recorded, want, "every job id answered is recorded, and no other");
    let messages = r.queue.receive("generate", 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(messages.len(), 8, "one generate message per job");
}

#[tokio::test]
async fn the_same_body_again_duplicates_nothing() {
    let r = rig();
    let req = || request("POST", "text/plain", NEON, false);
    assert_eq!(handle_http(&r.ports, &stack(), req()).await.status_code, 202);
    let again = handle_http(&r.ports, &stack(), req()).await;
    let b = body(&again);
    assert_eq!((b["queued"].as_u64(), b["requeued"].as_u64()), (Some(0), Some(8)), "{b}");
    assert_eq!(r.jobs.list(None).await.unwrap().len(), 8, "still eight jobs");
}

#[tokio::test]
async fn json_bodies_and_base64_encoding_are_read() {
    let r = rig();
    let value: serde_json::Value = toml::from_str(NEON).unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(value.to_string());
    let resp = handle_http(&r.ports, &stack(), request("POST", "application/json", &encoded, true)).await;
    assert_eq!(resp.status_code, 202, "{:?}", resp.body);
    assert_eq!(body(&resp)["jobs"].as_u64(), Some(8));
}

/// The example collection as editions of `copies` (its `[living]` removed: living NFTs are ERC-721).
fn with_editions(copies: u64) -> String {
    let (start, end) = (NEON.find("[living]").unwrap(), NEON.find("[[traits]]").unwrap());
    format!("{}[editions]\ncopies = {copies}\n\n{}", &NEON[..start], &NEON[end..])
}

#[tokio::test]
async fn a_stack_of_editions_takes_collections_that_agree_with_it() {
    let r = rig();
    let editions = StackChain { editions: Some(EditionsSection { copies: 5, max_supply: None }), ..stack() };
    let resp = handle_http(&r.ports, &editions, request("POST", "application/toml", &with_editions(5), false)).await;
    assert_eq!(resp.status_code, 202, "{:?}", resp.body);
    // No [editions]: the stack decides, as for the chain and the contract.
    let (start, end) = (NEON.find("[living]").unwrap(), NEON.find("[[traits]]").unwrap());
    let plain = format!("{}{}", &NEON[..start], &NEON[end..]);
    let resp = handle_http(&r.ports, &editions, request("POST", "application/toml", &plain, false)).await;
    assert_eq!(resp.status_code, 202, "{:?}", resp.body);
}

/// The example's `[living]` as the stack's `Living*` parameters would give it.
fn neon_living() -> LivingSection {
    Collection::from_toml("neon.toml", NEON).unwrap().file.living.expect("the example is living")
}

#[tokio::test]
async fn what_the_stack_decides_otherwise_is_named_and_the_jobs_are_taken() {
    let r = rig();
    let not_used = |resp: &ApiGatewayV2httpResponse| {
        assert_eq!(resp.status_code, 202, "{:?}", resp.body);
        let b = body(resp);
        let list = b["not_used"].as_array().cloned().unwrap_or_default();
        list.iter()
            .map(|n| (n["field"].as_str().unwrap().to_string(), format!("{}: {}", n["why"], n["fix"])))
            .collect::<Vec<_>>()
    };
    let post = |text: &str| request("POST", "application/toml", text, false);

    // The example asks for living NFTs; the default stack's live function is off.
    let off = not_used(&handle_http(&r.ports, &stack(), post(NEON)).await);
    assert_eq!(off.len(), 1, "{off:?}");
    assert_eq!(off[0].0, "living");
    assert!(off[0].1.contains("do not evolve") && off[0].1.contains("LivingEnabled=true"), "{off:?}");
    assert_eq!(r.jobs.list(None).await.unwrap().len(), 8, "the jobs are taken all the same");

    // A stack that evolves tokens the file's way: nothing to say.
    let living = StackChain { living: Some(neon_living()), ..stack() };
    assert_eq!(not_used(&handle_http(&r.ports, &living, post(NEON)).await), vec![]);

    // Another way: the stack's settings are named, as the template's parameters.
    let other = StackChain { living: Some(LivingSection { strength: 0.25, ..neon_living() }), ..stack() };
    let differs = not_used(&handle_http(&r.ports, &other, post(NEON)).await);
    assert_eq!(differs.len(), 1, "{differs:?}");
    assert!(differs[0].1.contains("LivingStrength=0.25"), "{differs:?}");

    // A batch size the stack does not mint with (a living collection mints alone).
    let (start, end) = (NEON.find("[living]").unwrap(), NEON.find("[[traits]]").unwrap());
    let batched = format!("{}{}", &NEON[..start], &NEON[end..])
        .replace("chain_id = 412346", "chain_id = 412346\nbatch_size = 10");
    let alone = not_used(&handle_http(&r.ports, &stack(), post(&batched)).await);
    assert_eq!(alone.len(), 1, "{alone:?}");
    assert_eq!(alone[0].0, "chain.batch_size");
    assert!(alone[0].1.contains("each job alone (MintBatchSize=1)"), "{alone:?}");
    let batches = StackChain { mint_batch: 10, ..stack() };
    assert_eq!(not_used(&handle_http(&r.ports, &batches, post(&batched)).await), vec![]);

    // QA models and references named by path: the stack runs its own, and says so per key.
    let with_qa = format!("{batched}\n[qa]\nclip = \"../models/shapes-clip\"\nreferences = [\"brand/a.png\"]\n");
    let qa = not_used(&handle_http(&r.ports, &batches, post(&with_qa)).await);
    let fields: Vec<&str> = qa.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(fields, ["qa.clip", "qa.references"], "{qa:?}");
    assert!(qa[0].1.contains("BrandReferences") && qa[0].1.contains("generation layer"), "{qa:?}");
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_and_the_fix_and_records_nothing() {
    let r = rig();
    let cases = [
        (NEON.replace("steps = 20", "steps = 0"), stack(), 400, Some("generation.steps")),
        (NEON.to_string(), StackChain { chain_id: 42_161, ..stack() }, 400, Some("chain.chain_id")),
        (
            NEON.replace(
                "chain_id = 412346",
                "chain_id = 412346\ncontract = \"0x2222222222222222222222222222222222222222\"",
            ),
            stack(),
            400,
            Some("chain.contract"),
        ),
        (with_editions(5), stack(), 400, Some("editions")),
        (
            with_editions(5),
            StackChain { editions: Some(EditionsSection { copies: 10, max_supply: None }), ..stack() },
            400,
            Some("editions"),
        ),
        ("this is not toml [".to_string(), stack(), 400, None),
        (" ".to_string(), stack(), 400, None),
        (NEON.replace("count = 6", "count = 600"), stack(), 413, Some("prompts")),
        ("#".repeat(MAX_BODY_BYTES + 1), stack(), 413, None),
    ];
    for (text, stack, status, field) in cases {
        let resp = handle_http(&r.ports, &stack, request("POST", "application/toml", &text, false)).await;
        let b = body(&resp);
        assert_eq!(resp.status_code, status, "{b}");
        assert_eq!(b["field"].as_str(), field, "{b}");
        assert!(!b["error"].as_str().unwrap_or_default().is_empty(), "says what is wrong: {b}");
        if field.is_some() {
            assert!(!b["fix"].as_str().unwrap_or_default().is_empty(), "says how to fix it: {b}");
        }
    }
    assert!(r.jobs.list(None).await.unwrap().is_empty(), "no job from a refused request");
    assert!(r.queue.receive("generate", 10, Duration::from_secs(60)).await.unwrap().is_empty());
}

/// A file without `[chain]` leaves the chain to the stack, whatever chain the stack is on.
#[tokio::test]
async fn a_file_that_names_no_chain_is_taken_by_a_stack_on_any_chain() {
    let r = rig();
    let text = "[collection]\nname = \"N\"\nsymbol = \"N\"\nrecipient = \"0x70997970C51812dc3A010C7d01b50e0d17dc79C8\"\n\
                [generation]\nmodel = \"m\"\n[[prompts]]\ntext = \"a red circle\"\n";
    let sepolia = StackChain { chain_id: 421_614, ..stack() };
    let resp = handle_http(&r.ports, &sepolia, request("POST", "application/toml", text, false)).await;
    assert_eq!(resp.status_code, 202, "{:?}", resp.body);
    let named = format!("{text}[chain]\nchain_id = 412346\n");
    let resp = handle_http(&r.ports, &sepolia, request("POST", "application/toml", &named, false)).await;
    assert_eq!(body(&resp)["field"].as_str(), Some("chain.chain_id"), "a file naming another chain is refused");
}

#[tokio::test]
async fn only_post_submits() {
    let r = rig();
    let resp = handle_http(&r.ports, &stack(), request("GET", "application/toml", NEON, false)).await;
    assert_eq!(resp.status_code, 405);
    assert_eq!(resp.headers.get(header::ALLOW).and_then(|v| v.to_str().ok()), Some("POST"));
    assert!(r.jobs.list(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_dropped_file_is_submitted_and_a_bad_one_is_answered_not_retried() {
    let r = rig();
    let dir = tempfile::tempdir().unwrap();
    let files = latentmint_embedded::FsBlobStore::new(dir.path().to_path_buf());
    files.put("collections/neon.toml", NEON.as_bytes().to_vec()).await.unwrap();
    let ok = handle_file(&r.ports, &stack(), &files, "collections/neon.toml").await.unwrap();
    assert_eq!((ok["jobs"].as_u64(), ok["queued"].as_u64()), (Some(8), Some(8)), "{ok}");
    // The schedule naming the same file again: nothing new.
    let again = handle_file(&r.ports, &stack(), &files, "collections/neon.toml").await.unwrap();
    assert_eq!(again["queued"].as_u64(), Some(0), "{again}");

    files.put("collections/bad.toml", NEON.replace("steps = 20", "steps = 0").into_bytes()).await.unwrap();
    let refused = handle_file(&r.ports, &stack(), &files, "collections/bad.toml").await.unwrap();
    assert_eq!(refused["field"].as_str(), Some("generation.steps"), "{refused}");
    assert!(refused["fix"].as_str().is_some_and(|f| !f.is_empty()));

    let value: serde_json::Value = toml::from_str(NEON).unwrap();
    files.put("collections/neon.json", value.to_string().into_bytes()).await.unwrap();
    let from_json = handle_file(&r.ports, &stack(), &files, "collections/neon.json").await.unwrap();
    assert_eq!(from_json["jobs"].as_u64(), Some(8), "{from_json}");

    let missing = handle_file(&r.ports, &stack(), &files, "collections/nope.toml").await.unwrap_err();
    assert!(missing.contains("collections/nope.toml"), "names the file: {missing}");
    assert_eq!(r.jobs.list(None).await.unwrap().len(), 8, "the bad file added nothing");
}

const SECRET: &[u8] = b"shop-shared-secret";

/// The stack's keys: one version, never rotated.
fn keys() -> SecretVersions {
    SecretVersions { current: SECRET.to_vec(), previous: None }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// What the shop of `collection` sends for `body`: signed now with its collection's key
/// under the stack's secret `secret`.
fn sign(collection: &str, body: &str, secret: &[u8]) -> String {
    sign_at(collection, body, secret, now())
}

fn sign_at(collection: &str, body: &str, secret: &[u8], t: u64) -> String {
    let key = latentmint_core::webhook::collection_key(secret, collection);
    latentmint_core::webhook::signature_header(&key, t, "POST", &format!("/webhooks/{collection}"), body.as_bytes())
}

/// A webhook call as the HTTP API delivers it, with delivery id `d-<hash of the body>`.
fn order(collection: &str, body: &str, signature: Option<String>) -> ApiGatewayV2httpRequest {
    let delivery = format!("d-{}", &hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body))[..12]);
    delivered(collection, body, signature, Some(&delivery))
}

fn delivered(
    collection: &str,
    body: &str,
    signature: Option<String>,
    delivery: Option<&str>,
) -> ApiGatewayV2httpRequest {
    let mut headers = serde_json::json!({ "content-type": "application/json" });
    if let Some(sig) = signature {
        headers[SIGNATURE_HEADER] = serde_json::Value::String(sig);
    }
    if let Some(d) = delivery {
        headers[DELIVERY_HEADER] = serde_json::Value::String(d.to_string());
    }
    serde_json::from_value(serde_json::json!({
        "version": "2.0",
        "routeKey": "POST /webhooks/{collection}",
        "rawPath": format!("/webhooks/{collection}"),
        "rawQueryString": "",
        "headers": headers,
        "pathParameters": { "collection": collection },
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example", "requestId": "req",
            "routeKey": "POST /webhooks/{collection}", "stage": "$default", "time": "25/Nov/2026:18:00:00 +0000",
            "timeEpoch": 1_795_629_600_000_i64,
            "http": { "method": "POST", "path": format!("/webhooks/{collection}"), "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "shop" }
        },
        "body": body,
        "isBase64Encoded": false
    }))
    .expect("an HTTP API v2 payload")
}

fn shop_files() -> (tempfile::TempDir, latentmint_embedded::FsBlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let files = latentmint_embedded::FsBlobStore::new(dir.path().to_path_buf());
    (dir, files)
}

#[tokio::test]
async fn a_signed_order_becomes_one_job_however_often_the_shop_sends_it() {
    let r = rig();
    let (_d, files) = shop_files();
    files.put("collections/neon-shapes.toml", NEON.as_bytes().to_vec()).await.unwrap();
    let payload =
        r#"{"order_id": "A-1001", "prompt": "a red star", "recipient": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"}"#;
    let send = || order("neon-shapes", payload, Some(sign("neon-shapes", payload, SECRET)));
    let first = handle_webhook(&r.ports, &stack(), &files, Some(&keys()), send()).await;
    assert_eq!(first.status_code, 202, "{:?}", first.body);
    let b = body(&first);
    assert_eq!(b["state"], "queued");
    // The same order in a new delivery (the shop sent it twice): the same job.
    let twice = delivered("neon-shapes", payload, Some(sign("neon-shapes", payload, SECRET)), Some("another-delivery"));
    let again = body(&handle_webhook(&r.ports, &stack(), &files, Some(&keys()), twice).await);
    assert_eq!((again["job_id"].clone(), again["state"].as_str()), (b["job_id"].clone(), Some("requeued")));
    let jobs = r.jobs.list(None).await.unwrap();
    assert_eq!(jobs.len(), 1, "one order, one job");
    let spec = &jobs[0].spec;
    assert_eq!(spec.request.as_deref(), Some("A-1001"));
    assert!(spec.prompt.starts_with("a red star"), "{}", spec.prompt);
    assert_eq!(spec.recipient.to_checksum(), "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC");
}

#[tokio::test]
async fn unsigned_or_wrong_orders_are_refused_and_record_nothing() {
    let r = rig();
    let (_d, files) = shop_files();
    files.put("collections/neon-shapes.toml", NEON.as_bytes().to_vec()).await.unwrap();
    let good = r#"{"order_id": "A-1", "prompt": "a red star"}"#;
    let keys = keys();
    // (request, the stack's keys, status, field)
    type Case<'a> = (ApiGatewayV2httpRequest, Option<&'a dyn WebhookKeys>, i64, Option<&'a str>);
    let cases: Vec<Case<'_>> = vec![
        (order("neon-shapes", good, None), Some(&keys), 401, None),
        (order("neon-shapes", good, Some(sign("neon-shapes", good, b"another secret"))), Some(&keys), 401, None),
        (order("neon-shapes", good, Some("sha256=zz".into())), Some(&keys), 401, None),
        (order("neon-shapes", good, Some(sign("neon-shapes", good, SECRET))), None, 404, None),
        (order("no-such", good, Some(sign("no-such", good, SECRET))), Some(&keys), 404, None),
        (order("Neon Shapes", good, Some(sign("Neon Shapes", good, SECRET))), Some(&keys), 400, None),
        // Signed for another collection (its key, its path), replayed here.
        (order("neon-shapes", good, Some(sign("other-shop", good, SECRET))), Some(&keys), 401, None),
        // Captured and sent again ten minutes later, or signed in the future.
        (order("neon-shapes", good, Some(sign_at("neon-shapes", good, SECRET, now() - 600))), Some(&keys), 401, None),
        (order("neon-shapes", good, Some(sign_at("neon-shapes", good, SECRET, now() + 600))), Some(&keys), 401, None),
        // The old scheme: the body alone.
        (order("neon-shapes", good, Some("sha256=00ff".into())), Some(&keys), 401, None),
        // No delivery id.
        (delivered("neon-shapes", good, Some(sign("neon-shapes", good, SECRET)), None), Some(&keys), 400, None),
    ];
    for (req, keys, status, field) in cases {
        let resp = handle_webhook(&r.ports, &stack(), &files, keys, req).await;
        let b = body(&resp);
        assert_eq!((resp.status_code, b["field"].as_str()), (status, field), "{b}");
    }
    for (payload, field) in [
        (r#"{"order_id": "A-2", "prompt": "bad\u0007"}"#, Some("prompt")),
        (
            r#"{"order_id": "A-3", "prompt": "x", "recipient": "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"}"#,
            Some("recipient"),
        ),
        (r#"{"order_id": "", "prompt": "x"}"#, Some("order_id")),
        (r#"{"order_id": "A-4", "prompt": "x", "price": 5}"#, None),
    ] {
        let req = order("neon-shapes", payload, Some(sign("neon-shapes", payload, SECRET)));
        let resp = handle_webhook(&r.ports, &stack(), &files, Some(&keys), req).await;
        let b = body(&resp);
        assert_eq!((resp.status_code, b["field"].as_str()), (400, field), "{payload}: {b}");
        assert!(b["fix"].as_str().is_some_and(|f| !f.is_empty()), "says how to fix it: {b}");
    }
    assert!(r.jobs.list(None).await.unwrap().is_empty(), "no job from a refused order");
}

/// Keys whose secret is rotated behind the function's back: `versions` answers what was
/// read before, `refresh` what is there now (or fails when `now` is `None`); counts the
/// refreshes.
struct Rotated {
    cached: SecretVersions,
    now: Option<SecretVersions>,
    refreshes: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl WebhookKeys for Rotated {
    async fn versions(&self) -> Result<Arc<SecretVersions>, SecretError> {
        Ok(Arc::new(self.cached.clone()))
    }
    async fn refresh(&self) -> Result<Option<Arc<SecretVersions>>, SecretError> {
        self.refreshes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match &self.now {
            Some(now) => Ok(Some(Arc::new(now.clone()))),
            None => Err(SecretError { secret: "webhook".into(), message: "throttled".into() }),
        }
    }
}

#[tokio::test]
async fn a_rotated_secret_is_read_again_and_the_previous_one_still_signs() {
    let r = rig();
    let (_d, files) = shop_files();
    files.put("collections/neon-shapes.toml", NEON.as_bytes().to_vec()).await.unwrap();
    let (old, new) = (b"old-secret".to_vec(), b"new-secret".to_vec());
    let rotated = Rotated {
        cached: SecretVersions { current: old.clone(), previous: None },
        now: Some(SecretVersions { current: new.clone(), previous: Some(old.clone()) }),
        refreshes: Default::default(),
    };
    let send = |id: &str, secret: &[u8]| {
        let payload = format!(r#"{{"order_id": "{id}", "prompt": "a red star"}}"#);
        order("neon-shapes", &payload, Some(sign("neon-shapes", &payload, secret)))
    };
    let answer = |resp: ApiGatewayV2httpResponse| (resp.status_code, body(&resp));

    let (code, b) = answer(handle_webhook(&r.ports, &stack(), &files, Some(&rotated), send("B-1", &old)).await);
    assert_eq!(code, 202, "{b}");
    assert_eq!(rotated.refreshes.load(std::sync::atomic::Ordering::SeqCst), 0, "a match needs no refresh");

    // Signed with the new secret, which the cached keys do not know yet.
    let (code, b) = answer(handle_webhook(&r.ports, &stack(), &files, Some(&rotated), send("B-2", &new)).await);
    assert_eq!(code, 202, "{b}");
    assert_eq!(rotated.refreshes.load(std::sync::atomic::Ordering::SeqCst), 1);

    // The previous version still signs.
    let after = SecretVersions { current: new.clone(), previous: Some(old.clone()) };
    let (code, b) = answer(handle_webhook(&r.ports, &stack(), &files, Some(&after), send("B-3", &old)).await);
    assert_eq!(code, 202, "{b}");

    // A secret that cannot be read: a retryable 503, no secret in the answer, nothing recorded.
    let broken = Rotated {
        cached: SecretVersions { current: old.clone(), previous: None },
        now: None,
        refreshes: Default::default(),
    };
    let (code, b) = answer(handle_webhook(&r.ports, &stack(), &files, Some(&broken), send("B-4", &new)).await);
    assert_eq!(code, 503, "{b}");
    assert!(!b.to_string().contains("new-secret") && !b.to_string().contains("old-secret"), "{b}");
    let requests: Vec<_> = r.jobs.list(None).await.unwrap().into_iter().filter_map(|j| j.spec.request).collect();
    assert_eq!(requests.len(), 3, "B-1..B-3 recorded, B-4 not: {requests:?}");
    assert!(!requests.iter().any(|q| q == "B-4"));
}

/// A delivery sent again (a shop's retry, or a captured request within the window) gets
/// its first answer back and is never processed twice; the same id with another body is
/// refused.
#[tokio::test]
async fn a_delivery_is_processed_once_and_answered_again() {
    let r = rig();
    let (_d, files) = shop_files();
    files.put("collections/neon-shapes.toml", NEON.as_bytes().to_vec()).await.unwrap();
    let payload = r#"{"order_id": "C-1", "prompt": "a red star"}"#;
    let send = |body: &str| delivered("neon-shapes", body, Some(sign("neon-shapes", body, SECRET)), Some("evt-42"));
    let first = handle_webhook(&r.ports, &stack(), &files, Some(&keys()), send(payload)).await;
    assert_eq!(first.status_code, 202, "{:?}", first.body);
    let sent = r.queue.stats("generate").await.unwrap().visible;
    let again = handle_webhook(&r.ports, &stack(), &files, Some(&keys()), send(payload)).await;
    let b = body(&again);
    assert_eq!((again.status_code, b["replayed"].as_bool()), (200, Some(true)), "{b}");
    assert_eq!(b["job_id"], body(&first)["job_id"], "the first answer");
    assert_eq!(r.queue.stats("generate").await.unwrap().visible, sent, "nothing sent on");
    let other = r#"{"order_id": "C-2", "prompt": "a blue star"}"#;
    let conflict = handle_webhook(&r.ports, &stack(), &files, Some(&keys()), send(other)).await;
    assert_eq!(conflict.status_code, 409, "{:?}", conflict.body);
    assert_eq!(r.jobs.list(None).await.unwrap().len(), 1, "one job");
}
