//! Reading content through an IPFS HTTP gateway (`GET <gateway>/ipfs/<cid>`): a public one
//! (`https://ipfs.io`, `https://dweb.link`), a pinning service's, or a node's own. What a
//! collector without an IPFS node has. Read only; every answer is checked against the CID it
//! was asked by, so the gateway need not be trusted.

use std::time::Duration;

use async_trait::async_trait;
use latentmint_core::cid::is_cid;
use latentmint_core::ports::{ContentSource, PortError, PortResult};

/// Most bytes taken from a gateway for one CID: a token's metadata or image is far smaller
/// (images are at most 2048x2048), so a gateway sending more is cut off.
pub const MAX_GATEWAY_BYTES: usize = 64 << 20;

/// An IPFS HTTP gateway.
#[derive(Clone, Debug)]
pub struct Gateway {
    http: reqwest::Client,
    base: String,
}

impl Gateway {
    /// The gateway at `url` (e.g. `https://ipfs.io`; a trailing `/ipfs` is taken off).
    pub fn new(url: &str) -> PortResult<Self> {
        let base = url.trim_end_matches('/');
        let base = base.strip_suffix("/ipfs").unwrap_or(base).to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(PortError::Permanent(format!(
                "gateway `{url}` is not an HTTP(S) URL; use e.g. https://ipfs.io or http://127.0.0.1:8080"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // A public gateway may first have to find the content on the network.
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| PortError::Permanent(format!("HTTP client: {e}")))?;
        Ok(Self { http, base })
    }

    fn failed(&self, cid: &str, e: reqwest::Error) -> PortError {
        PortError::Transient(format!("gateway {} for {cid}: {e}", self.base))
    }
}

#[async_trait]
impl ContentSource for Gateway {
    async fn fetch(&self, cid: &str) -> PortResult<Vec<u8>> {
        let bytes = self.get(cid, false).await?;
        crate::checked(cid, bytes, &format!("gateway {}", self.base))
    }

    async fn fetch_block(&self, cid: &str) -> PortResult<Vec<u8>> {
        let bytes = self.get(cid, true).await?;
        crate::checked_block(cid, bytes, &format!("gateway {}", self.base))
    }
}

/// The Trustless Gateway's media type for one raw block.
const RAW_BLOCK: &str = "application/vnd.ipld.raw";

impl Gateway {
    /// The content at `/ipfs/<cid>`, or with `block` the one block itself (the trustless
    /// gateway's raw block response).
    async fn get(&self, cid: &str, block: bool) -> PortResult<Vec<u8>> {
        // Only a CID goes into the path: nothing else can be asked of the gateway.
        if !is_cid(cid) {
            return Err(PortError::Permanent(format!("`{cid}` is not a CID")));
        }
        let url = format!("{}/ipfs/{cid}", self.base);
        let mut req = self.http.get(&url);
        if block {
            req = req.query(&[("format", "raw")]).header(reqwest::header::ACCEPT, RAW_BLOCK);
        }
        let resp = req.send().await.map_err(|e| self.failed(cid, e))?;
        let status = resp.status();
        if status.as_u16() == 404 || status.as_u16() == 410 {
            return Err(PortError::NotFound(format!(
                "gateway {} has no {cid} (HTTP {status}): is it pinned, and is the pinning node reachable from the gateway?",
                self.base
            )));
        }
        if !status.is_success() {
            return Err(crate::by_status(Some(status), format!("gateway {} for {cid}: HTTP {status}", self.base)));
        }
        let media = resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        if block && !media.starts_with(RAW_BLOCK) {
            // An older gateway answers a directory with an HTML listing instead.
            return Err(PortError::Permanent(format!(
                "gateway {} answered {cid} with `{media}`, not a raw block: it does not implement the Trustless \
                 Gateway's raw block responses (?format=raw), which a batch token's directory needs; use a gateway \
                 that does (Kubo 0.19 or later, ipfs.io, dweb.link) or --ipfs-api",
                self.base
            )));
        }
        let too_big = || {
            PortError::Permanent(format!(
                "gateway {} for {cid}: more than {MAX_GATEWAY_BYTES} bytes, far more than a token's metadata or image",
                self.base
            ))
        };
        crate::read_capped(resp, MAX_GATEWAY_BYTES).await.map_err(|e| match e {
            crate::Capped::Read(e) => self.failed(cid, e),
            crate::Capped::TooBig(_) => too_big(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};

    use latentmint_core::cid::cid_of_bytes;

    use super::*;

    /// A gateway on 127.0.0.1 that answers every request with `status` and `body`, and keeps
    /// the paths it was asked for.
    fn gateway(status: &'static str, body: Vec<u8>) -> (String, Arc<Mutex<Vec<String>>>) {
        typed_gateway(status, "application/octet-stream", body)
    }

    /// Like [`gateway`], answering with `media` as the content type; keeps each request's path
    /// and Accept header.
    fn typed_gateway(status: &'static str, media: &'static str, body: Vec<u8>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let paths = Arc::new(Mutex::new(Vec::new()));
        let seen = paths.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut buf = [0u8; 8192];
                let n = stream.read(&mut buf).unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                if let Some(path) = head.split_whitespace().nth(1) {
                    seen.lock().unwrap().push(path.to_string());
                }
                if let Some(accept) = head.lines().find(|l| l.to_ascii_lowercase().starts_with("accept:")) {
                    seen.lock().unwrap().push(accept.to_ascii_lowercase());
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: {media}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            }
        });
        (url, paths)
    }

    #[tokio::test]
    async fn content_comes_from_ipfs_cid_and_is_checked_against_it() {
        let body = br#"{"name":"Neon Shapes #1"}"#.to_vec();
        let cid = cid_of_bytes(&body);
        let (url, paths) = gateway("200 OK", body.clone());
        // A trailing /ipfs/ is the same gateway.
        let g = Gateway::new(&format!("{url}/ipfs/")).unwrap();
        assert_eq!(g.fetch(&cid).await.unwrap(), body);
        assert_eq!(paths.lock().unwrap()[0], format!("/ipfs/{cid}"));
    }

    #[tokio::test]
    async fn blocks_are_asked_for_as_raw_blocks_and_checked_against_their_cid() {
        let files = [("0", b"a".as_slice()), ("1", b"b".as_slice())];
        let (dir, block) = latentmint_core::cid::directory_block(&files).unwrap();
        let (url, seen) = typed_gateway("200 OK", "application/vnd.ipld.raw", block.clone());
        assert_eq!(Gateway::new(&url).unwrap().fetch_block(&dir).await.unwrap(), block);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen, [format!("/ipfs/{dir}?format=raw"), "accept: application/vnd.ipld.raw".to_string()]);
        // Another block under the right media type is caught by its hash.
        let (url, _) = typed_gateway("200 OK", "application/vnd.ipld.raw", b"not it".to_vec());
        let e = Gateway::new(&url).unwrap().fetch_block(&dir).await.unwrap_err().to_string();
        assert!(e.contains("does not hash to it"), "{e}");
        // A gateway that answers with a listing page is named as one without raw blocks.
        let (url, _) = typed_gateway("200 OK", "text/html; charset=utf-8", b"<html>".to_vec());
        let e = Gateway::new(&url).unwrap().fetch_block(&dir).await.unwrap_err().to_string();
        assert!(e.contains("Trustless") && e.contains("--ipfs-api"), "{e}");
    }

    #[tokio::test]
    async fn a_gateway_that_sends_other_bytes_is_caught() {
        let (url, _) = gateway("200 OK", b"something else".to_vec());
        let cid = cid_of_bytes(b"what was minted");
        let e = Gateway::new(&url).unwrap().fetch(&cid).await.unwrap_err();
        assert!(matches!(&e, PortError::Permanent(m) if m.contains("whose CID is") && m.contains(&url)), "{e}");
    }

    #[tokio::test]
    async fn missing_content_oversize_answers_and_non_cids_are_named() {
        let cid = cid_of_bytes(b"x");
        let (url, _) = gateway("404 Not Found", Vec::new());
        let e = Gateway::new(&url).unwrap().fetch(&cid).await.unwrap_err();
        assert!(matches!(&e, PortError::NotFound(m) if m.contains("is it pinned")), "{e}");

        let (url, _) = gateway("200 OK", vec![0; MAX_GATEWAY_BYTES + 1]);
        let e = Gateway::new(&url).unwrap().fetch(&cid).await.unwrap_err();
        assert!(e.to_string().contains("more than 67108864 bytes"), "{e}");

        let (url, paths) = gateway("200 OK", Vec::new());
        let e = Gateway::new(&url).unwrap().fetch("../../etc/passwd").await.unwrap_err();
        assert!(e.to_string().contains("is not a CID"), "{e}");
        assert!(paths.lock().unwrap().is_empty(), "nothing was asked of the gateway");

        let (url, _) = gateway("503 Service Unavailable", Vec::new());
        assert!(matches!(Gateway::new(&url).unwrap().fetch(&cid).await, Err(PortError::Transient(_))));
        assert!(Gateway::new("ipfs.io").unwrap_err().to_string().contains("https://ipfs.io"));
    }
}
