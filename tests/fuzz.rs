//! Property tests of everything that reads bytes a user, an operator or a shop sends: the
//! collection parser and validator, the intake function's body, the webhook handler, the stage
//! messages and the `.npy` latents reader. Each starts from the committed corpus
//! (`tests/fuzz-corpus/`: real collection files, orders, messages) and mutates it: bytes flipped,
//! inserted (controls, bidi overrides, emoji, braces, huge numbers), spliced and cut.
//!
//! The properties: nothing panics; every refusal names a field or says what is wrong, with a
//! fix; whatever is accepted is clean (every text field passes the same rule again, every job
//! id carries its file position, the job count stays under the cap).
//!
//! CI runs `PROPTEST_CASES` cases per property (256 by default); `scripts/fuzz.sh` runs many
//! more and prints how many each property reached.

use std::sync::Arc;

use latentmint_core::collection::{Collection, MAX_JOBS, SpecError};
use latentmint_core::{Stage, StageMessage};
use proptest::prelude::*;

fn corpus(ext: &str) -> Vec<Vec<u8>> {
    let dir = latentmint_e2e::repo_root().join("tests/fuzz-corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .{ext} file in {}", dir.display());
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Pieces worth inserting: what hostile or unlucky input is made of.
const PIECES: &[&str] = &[
    "\u{0}",
    "\u{7}",
    "\u{1b}[31m",
    "\u{202E}",
    "\u{061C}",
    "\u{200B}",
    "\u{FEFF}",
    "\u{FFFF}",
    "\u{9B}",
    "é",
    "e\u{301}",
    "赤",
    "🔴",
    "👨‍👩‍👧",
    "{",
    "}",
    "{colour}",
    "\"",
    "\\",
    "\n",
    "\r\n",
    "\t",
    "[[prompts]]\n",
    "count = 1000\n",
    "count = 4294967296\n",
    "weight = 1e308",
    "weight = -1",
    "weight = nan",
    "= ",
    "[",
    "]",
    "\u{2028}",
    "0x",
    "ipfs://",
    "text = \"",
    "1e400",
    "-0",
    " ",
];

#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, usize),
    Remove(usize, usize),
    Splice(usize, usize, usize),
    Cut(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<usize>(), 0..PIECES.len()).prop_map(|(i, p)| Edit::Insert(i, p)),
        (any::<usize>(), 1usize..40).prop_map(|(i, n)| Edit::Remove(i, n)),
        (any::<usize>(), any::<usize>(), 1usize..200).prop_map(|(a, b, n)| Edit::Splice(a, b, n)),
        any::<usize>().prop_map(Edit::Cut),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = bytes.len().max(1);
        match *e {
            Edit::Flip(i, b) if !bytes.is_empty() => bytes[i % len] ^= b,
            Edit::Insert(i, p) => {
                let at = i % (bytes.len() + 1);
                bytes.splice(at..at, PIECES[p].bytes());
            }
            Edit::Remove(i, n) if !bytes.is_empty() => {
                let at = i % len;
                let end = (at + n).min(bytes.len());
                bytes.drain(at..end);
            }
            Edit::Splice(a, b, n) if !bytes.is_empty() => {
                let from = a % len;
                let piece: Vec<u8> = bytes[from..(from + n).min(bytes.len())].to_vec();
                let at = b % (bytes.len() + 1);
                bytes.splice(at..at, piece);
            }
            Edit::Cut(i) => bytes.truncate(i % (bytes.len() + 1)),
            _ => {}
        }
    }
    bytes
}

/// A corpus entry of `ext` with a few edits.
fn mutated(ext: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let files = corpus(ext);
    (0..files.len(), proptest::collection::vec(edit(), 0..6))
        .prop_map(move |(i, edits)| apply(files[i].clone(), &edits))
}

fn config() -> ProptestConfig {
    // No failure file beside the sources: a failure prints its minimal input instead.
    ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
}

/// One line of clean text: no refused code point, no whitespace but single inner spaces.
fn clean(field: &str, text: &str) {
    for c in text.chars() {
        assert!(latentmint_core::sanitize::refused(c).is_none(), "{field}: accepted U+{:04X} in {text:?}", c as u32);
        assert!(c == ' ' || !c.is_whitespace(), "{field}: whitespace U+{:04X} left in {text:?}", c as u32);
    }
    assert!(!text.starts_with(' ') && !text.ends_with(' ') && !text.contains("  "), "{field}: {text:?}");
}

/// Clean text of several lines: no refused code point but line breaks and tabs.
fn clean_lines(field: &str, text: &str) {
    for c in text.chars().filter(|c| !matches!(c, '\n' | '\t')) {
        assert!(latentmint_core::sanitize::refused(c).is_none(), "{field}: accepted U+{:04X} in {text:?}", c as u32);
    }
}

proptest! {
    #![proptest_config(config())]

    /// The collection parser and validator: a refusal names the field and the fix; what is
    /// accepted is clean and expands to at most MAX_JOBS jobs, each carrying its position.
    #[test]
    fn collection_files(bytes in mutated("toml")) {
        let text = String::from_utf8_lossy(&bytes);
        match Collection::from_toml("fuzz.toml", &text) {
            Ok(c) => {
                let f = &c.file;
                clean("name", &f.collection.name);
                if !f.collection.style.is_empty() {
                    clean("style", &f.collection.style);
                }
                clean_lines("description", &f.collection.description);
                prop_assert!(f.job_count() <= MAX_JOBS);
                let jobs = c.jobs();
                if let Ok(jobs) = jobs {
                    prop_assert_eq!(jobs.len() as u64, f.job_count());
                    for (i, j) in jobs.iter().enumerate() {
                        clean("prompt", &j.prompt);
                        prop_assert_eq!(j.id.position().index() as usize, i);
                    }
                }
            }
            Err(SpecError::Field { error, .. }) => {
                prop_assert!(!error.field.is_empty() && !error.fix.is_empty(), "{error}");
            }
            Err(SpecError::Parse { message, .. }) => prop_assert!(!message.is_empty()),
        }
    }

    /// The stage messages a queue may hold: anything that is not one is refused, never a panic.
    #[test]
    fn stage_messages(bytes in mutated("json")) {
        let text = String::from_utf8_lossy(&bytes);
        for stage in Stage::ALL {
            if let Ok(m) = StageMessage::parse(&text, stage) {
                prop_assert_eq!(m.stage, stage);
            }
        }
    }

    /// The signature header of a webhook: parsed or refused, and a random one never holds.
    #[test]
    fn webhook_signatures(header in "\\PC{0,120}", body in proptest::collection::vec(any::<u8>(), 0..200)) {
        use latentmint_core::webhook::Signature;
        if let Ok(s) = Signature::parse(Some(&header)) {
            let now = s.timestamp;
            prop_assert!(s.check(now, [b"secret".as_slice()], "neon", "POST", "/webhooks/neon", &body).is_err());
        }
    }

    /// The `.npy` latents reader: bytes of a real array, mutated, are read in the exact shape or
    /// refused with what was found.
    #[test]
    fn npy_latents(bytes in mutated("npy"), channels in 1usize..9) {
        let want = [1, channels, 4, 4];
        match latentmint_diffusion::latents::read_latents(&bytes, want) {
            Ok(v) => prop_assert_eq!(v.len(), want.iter().product::<usize>()),
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }
}

/// The intake function's body and its webhook, end to end over embedded adapters: every
/// answer is an HTTP status with a message, never a panic, and nothing is recorded for a
/// refusal.
#[test]
fn intake_bodies_and_webhooks() {
    use latentmint_lambda::intake::{StackChain, handle_webhook, submit_text};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let jobs = Arc::new(latentmint_embedded::SqliteJobStore::open(&db).unwrap());
    let ports = latentmint_stages::ports::Intake {
        queue: Arc::new(latentmint_embedded::SqliteQueue::open(&db, 5).unwrap()),
        jobs: jobs.clone(),
    };
    let stack = StackChain {
        chain_id: 412_346,
        contract: latentmint_core::EvmAddress::from_bytes([0x11; 20]),
        editions: None,
        living: None,
        mint_batch: 1,
    };
    let files = latentmint_embedded::FsBlobStore::new(dir.path().join("bucket"));
    let keys = latentmint_aws::SecretVersions { current: b"stack secret".to_vec(), previous: None };
    let mut runner = proptest::test_runner::TestRunner::new(config());
    let bodies = (mutated("toml"), any::<bool>(), "\\PC{0,80}", mutated("json"));
    runner
        .run(&bodies, |(toml, is_json, header, order)| {
            let text = String::from_utf8_lossy(&toml).into_owned();
            rt.block_on(async {
                if let Err(refused) = submit_text(&ports, &stack, &text, is_json).await {
                    prop_assert!([400, 413, 500, 503].contains(&refused.status), "{refused:?}");
                    prop_assert!(!refused.error.is_empty());
                }
                let req = serde_json::from_value(serde_json::json!({
                    "version": "2.0", "routeKey": "POST /webhooks/{collection}", "rawPath": "/webhooks/neon",
                    "rawQueryString": "", "headers": {"x-latentmint-signature": header, "x-latentmint-delivery": "d-1"},
                    "pathParameters": {"collection": "neon"},
                    "requestContext": {"accountId": "1", "apiId": "a", "domainName": "d", "requestId": "r",
                        "routeKey": "POST /webhooks/{collection}", "stage": "$default", "time": "t", "timeEpoch": 0,
                        "http": {"method": "POST", "path": "/webhooks/neon", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "f"}},
                    "body": String::from_utf8_lossy(&order), "isBase64Encoded": false
                }))
                .unwrap();
                let resp = handle_webhook(&ports, &stack, &files, Some(&keys), req).await;
                // Random signatures never hold: refused before the order is read.
                prop_assert!([400, 401, 413].contains(&resp.status_code), "{}", resp.status_code);
                Ok(())
            })
        })
        .unwrap();
    use latentmint_core::ports::JobStore;
    let recorded = rt.block_on(jobs.list(None)).unwrap();
    assert!(recorded.iter().all(|j| j.spec.request.is_none()), "no order was recorded");
}
