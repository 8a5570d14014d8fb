//! Fault injection between the minter and a real anvil: an RPC proxy on 127.0.0.1 that
//! forwards `eth_sendRawTransaction` to the node (so the mint really lands) and then drops the
//! connection before the answer comes back, exactly as a flaky RPC provider does. The
//! outcome is unclear to the minter; its retry reads the chain, finds the token, and sends
//! nothing. One token, no loss.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use latentmint_chain::{Chain, LocalNode, SendPolicy};
use latentmint_core::cid::cid_of_bytes;
use latentmint_core::ports::{Minter, PortError};
use latentmint_core::{EvmAddress, JobId};
use latentmint_e2e::anvil;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CHAIN_ID: u64 = 412_346;

/// Reads one HTTP/1.1 request or response (headers + Content-Length body).
async fn read_http(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)))
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(buf);
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// What the proxy does wrong, to the first `n` requests it applies to.
#[derive(Clone, Copy)]
enum Fault {
    /// Forward `eth_sendRawTransaction` to the node, then drop the connection before the
    /// answer (the node has the transaction; the client never hears about it).
    DropSendAnswers(usize),
    /// Answer HTTP 429 without forwarding, as a provider over its rate limit does.
    RateLimitFirst(usize),
}

const RATE_LIMITED: &str = r#"{"code":429,"message":"Your app has exceeded its compute units per second capacity"}"#;

/// Starts an HTTP proxy to `upstream` on 127.0.0.1 that injects `fault`; returns its URL and
/// how many requests the fault has counted (its first `n` are the faulty ones).
async fn proxy(upstream: String, fault: Fault) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let counted = Arc::new(AtomicUsize::new(0));
    let c = counted.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let c = c.clone();
            tokio::spawn(async move {
                while let Some(req) = read_http(&mut client).await {
                    if let Fault::RateLimitFirst(n) = fault
                        && c.fetch_add(1, Ordering::SeqCst) < n
                    {
                        let resp = format!(
                            "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{RATE_LIMITED}",
                            RATE_LIMITED.len()
                        );
                        if client.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    let Ok(mut up) = TcpStream::connect(&upstream).await else { return };
                    if up.write_all(&req).await.is_err() {
                        return;
                    }
                    let Some(resp) = read_http(&mut up).await else { return };
                    if let Fault::DropSendAnswers(n) = fault
                        && String::from_utf8_lossy(&req).contains("eth_sendRawTransaction")
                        && c.fetch_add(1, Ordering::SeqCst) < n
                    {
                        return;
                    }
                    if client.write_all(&resp).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, counted)
}

#[tokio::test(flavor = "multi_thread")]
async fn rpc_drops_after_broadcast_and_the_retry_finds_the_token() {
    let node = LocalNode::spawn(&anvil(), CHAIN_ID, None).await.unwrap();
    let key = node.dev_key(0).unwrap().to_string();
    let direct = Chain::connect(&node.rpc_url, &key, CHAIN_ID).await.unwrap();
    let contract = direct.deploy("Faults", "FLT").await.unwrap();

    let (proxy, dropped) =
        proxy(node.rpc_url.trim_start_matches("http://").to_string(), Fault::DropSendAnswers(1)).await;
    let flaky = Chain::connect(&proxy, &key, CHAIN_ID).await.unwrap().minter(contract, SendPolicy::confirmations(1));
    let job = JobId::from_bytes([0xAB; 32]);
    let to = EvmAddress::parse_checksummed("0x70997970C51812dc3A010C7d01b50e0d17dc79C8").unwrap();
    let cid = cid_of_bytes(b"metadata");

    let first = flaky.mint(job, to, &cid).await;
    assert!(matches!(first, Err(PortError::Transient(_))), "an unclear outcome is transient: {first:?}");
    assert_eq!(dropped.load(Ordering::SeqCst), 1);

    // The mint landed although the minter never saw the answer. anvil answers
    // eth_sendRawTransaction when the transaction enters its pool and mines it just after, so
    // under load the block can trail the (dropped) answer by a moment.
    let reader = direct.minter(contract, SendPolicy::confirmations(1));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while reader.total_supply().await.unwrap() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(reader.total_supply().await.unwrap(), 1);

    // The retry (a redelivered message) reads the chain first and sends nothing.
    let retry = flaky.mint(job, to, &cid).await.unwrap();
    assert_eq!(retry.token_id, latentmint_core::ledger::single_token_id(&cid).unwrap());
    assert!(!retry.sent(), "found on chain, not sent");
    assert!(retry.tx_hash.is_some(), "the transaction the answer was lost for, read from the mint event");
    assert_eq!(reader.total_supply().await.unwrap(), 1, "still one token");
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "no second transaction was sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_answers_are_retried_with_backoff() {
    let node = LocalNode::spawn(&anvil(), CHAIN_ID, None).await.unwrap();
    let key = node.dev_key(0).unwrap().to_string();
    let (proxy, refused) =
        proxy(node.rpc_url.trim_start_matches("http://").to_string(), Fault::RateLimitFirst(3)).await;
    // The first requests (chain id, deploy) meet 429s and go through on retry, after waiting:
    // three refusals cost at least the first backoff (250 ms) each time, a retry loop without
    // a delay would not.
    let started = std::time::Instant::now();
    let chain = Chain::connect(&proxy, &key, CHAIN_ID).await.expect("connects through the rate limit");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(3 * 250),
        "retried without backing off: {:?}",
        started.elapsed()
    );
    let contract = chain.deploy("Limits", "LIM").await.unwrap();
    let job = JobId::from_bytes([0xCD; 32]);
    let to = EvmAddress::parse_checksummed("0x70997970C51812dc3A010C7d01b50e0d17dc79C8").unwrap();
    let r =
        chain.minter(contract, SendPolicy::confirmations(1)).mint(job, to, &cid_of_bytes(b"limited")).await.unwrap();
    assert_eq!(r.token_id, latentmint_core::ledger::single_token_id(&cid_of_bytes(b"limited")).unwrap());
    assert!(refused.load(Ordering::SeqCst) > 3, "the proxy refused 3 requests and served the rest");
}
