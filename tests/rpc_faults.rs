//! Fault injection between the minter and a real anvil: an RPC proxy on 127.0.0.1 that
//! forwards `eth_sendRawTransaction` to the node (so the mint really lands) and then drops the
//! connection before the answer comes back, exactly as a flaky RPC provider does. The
//! outcome is unclear to the minter; its retry reads the chain, finds the token, and sends
//! nothing. One token, no loss.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use latentmint_chain::{Chain, LocalNode};
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

/// Starts the proxy; returns its URL and the count of dropped answers.
async fn flaky_proxy(upstream: String, drops: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let d = d.clone();
            tokio::spawn(async move {
                while let Some(req) = read_http(&mut client).await {
                    let Ok(mut up) = TcpStream::connect(&upstream).await else { return };
                    if up.write_all(&req).await.is_err() {
                        return;
                    }
                    let Some(resp) = read_http(&mut up).await else { return };
                    let is_send = String::from_utf8_lossy(&req).contains("eth_sendRawTransaction");
                    if is_send && d.fetch_add(1, Ordering::SeqCst) < drops {
                        // The node has the transaction; the client never hears about it.
                        return;
                    }
                    if client.write_all(&resp).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, dropped)
}

#[tokio::test(flavor = "multi_thread")]
async fn rpc_drops_after_broadcast_and_the_retry_finds_the_token() {
    let node = LocalNode::spawn(&anvil(), CHAIN_ID, None).await.unwrap();
    let key = node.dev_key(0).unwrap().to_string();
    let direct = Chain::connect(&node.rpc_url, &key, CHAIN_ID).await.unwrap();
    let contract = direct.deploy("Faults", "FLT").await.unwrap();

    let (proxy, dropped) = flaky_proxy(node.rpc_url.trim_start_matches("http://").to_string(), 1).await;
    let flaky = Chain::connect(&proxy, &key, CHAIN_ID).await.unwrap().minter(contract, 1);
    let job = JobId::from_bytes([0xAB; 32]);
    let to = EvmAddress::parse_checksummed("0x70997970C51812dc3A010C7d01b50e0d17dc79C8").unwrap();
    let cid = cid_of_bytes(b"metadata");

    let first = flaky.mint(job, to, &cid).await;
    assert!(matches!(first, Err(PortError::Transient(_))), "an unclear outcome is transient: {first:?}");
    assert_eq!(dropped.load(Ordering::SeqCst), 1);

    // The mint landed although the minter never saw the answer.
    let reader = direct.minter(contract, 1);
    assert_eq!(reader.total_supply().await.unwrap(), 1);

    // The retry (a redelivered message) reads the chain first and sends nothing.
    let retry = flaky.mint(job, to, &cid).await.unwrap();
    assert_eq!((retry.token_id, retry.tx_hash), (latentmint_chain::single_token_id(job), None));
    assert_eq!(reader.total_supply().await.unwrap(), 1, "still one token");
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "no second transaction was sent");
}

/// Starts a proxy that answers the first `limited` requests with HTTP 429, as a provider over
/// its rate limit does, then forwards everything.
async fn rate_limited_proxy(upstream: String, limited: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let refused = Arc::new(AtomicUsize::new(0));
    let r = refused.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let r = r.clone();
            tokio::spawn(async move {
                while let Some(req) = read_http(&mut client).await {
                    if r.fetch_add(1, Ordering::SeqCst) < limited {
                        let body =
                            r#"{"code":429,"message":"Your app has exceeded its compute units per second capacity"}"#;
                        let resp = format!(
                            "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
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
                    if client.write_all(&resp).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, refused)
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_answers_are_retried_with_backoff() {
    let node = LocalNode::spawn(&anvil(), CHAIN_ID, None).await.unwrap();
    let key = node.dev_key(0).unwrap().to_string();
    let (proxy, refused) = rate_limited_proxy(node.rpc_url.trim_start_matches("http://").to_string(), 3).await;
    // The first requests (chain id, deploy) meet 429s and go through on retry.
    let chain = Chain::connect(&proxy, &key, CHAIN_ID).await.expect("connects through the rate limit");
    let contract = chain.deploy("Limits", "LIM").await.unwrap();
    let job = JobId::from_bytes([0xCD; 32]);
    let to = EvmAddress::parse_checksummed("0x70997970C51812dc3A010C7d01b50e0d17dc79C8").unwrap();
    let r = chain.minter(contract, 1).mint(job, to, &cid_of_bytes(b"limited")).await.unwrap();
    assert_eq!(r.token_id, latentmint_chain::single_token_id(job));
    assert!(refused.load(Ordering::SeqCst) > 3, "the proxy refused 3 requests and served the rest");
}
