//! # latentmint-ipfs
//!
//! The `Pinner` port on an IPFS node through the Kubo RPC API (`/api/v0/add`, `/api/v0/cat`):
//! a self-hosted kubo, js-ipfs, an IPFS Cluster proxy, or a pinning service that offers the
//! same API. Files are added with kubo's CIDv1 settings (raw leaves, 256 KiB chunks, base32),
//! so the node's CID can be compared with the one computed locally (the publish stage refuses
//! a pinner that disagrees), and fetched bytes are checked against the CID they were asked by.
//! Read only, the `ContentSource` port on an HTTP gateway ([`Gateway`]), checked the same way.

mod gateway;

use std::time::Duration;

use async_trait::async_trait;
use latentmint_core::cid::cid_of_bytes;
use latentmint_core::ports::{ContentSource, Pinner, PortError, PortResult};
use serde::Deserialize;

pub use gateway::{Gateway, MAX_GATEWAY_BYTES};

/// A Kubo RPC API endpoint.
#[derive(Clone, Debug)]
pub struct KuboPinner {
    http: reqwest::Client,
    api: String,
    auth: Option<String>,
}

#[derive(Deserialize)]
struct Added {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Hash")]
    hash: String,
}

/// kubo's `add` settings for CIDv1 as computed locally (see `latentmint_core::cid`).
const ADD_OPTIONS: [(&str, &str); 6] = [
    ("cid-version", "1"),
    ("raw-leaves", "true"),
    ("chunker", "size-262144"),
    ("cid-base", "base32"),
    ("hash", "sha2-256"),
    ("pin", "true"),
];

impl KuboPinner {
    /// The node at `api` (e.g. `http://127.0.0.1:5001`); `authorization` is sent as the
    /// `Authorization` header when the endpoint needs it (a pinning service's token).
    pub fn new(api: &str, authorization: Option<String>) -> PortResult<Self> {
        let api = api.trim_end_matches('/').to_string();
        if !(api.starts_with("http://") || api.starts_with("https://")) {
            return Err(PortError::Permanent(format!(
                "ipfs.api_url `{api}` is not an HTTP(S) URL; use e.g. http://127.0.0.1:5001"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| PortError::Permanent(format!("HTTP client: {e}")))?;
        Ok(Self { http, api, auth: authorization })
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.post(format!("{}/api/v0/{path}", self.api));
        match &self.auth {
            Some(a) => r.header(reqwest::header::AUTHORIZATION, a),
            None => r,
        }
    }

    fn classify(&self, what: &str, e: reqwest::Error) -> PortError {
        by_status(e.status(), format!("IPFS {what} at {}: {e}", self.api))
    }

    async fn send(&self, what: &str, req: reqwest::RequestBuilder) -> PortResult<reqwest::Response> {
        let resp = req.send().await.map_err(|e| self.classify(what, e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        // An error page is read only as far as the message needs.
        let body = read_capped(resp, 4096).await.unwrap_or_default();
        let body: String = String::from_utf8_lossy(&body).chars().take(300).collect();
        Err(by_status(Some(status), format!("IPFS {what} at {}: HTTP {status}: {body}", self.api)))
    }
}

/// Transport trouble, throttling (429) and 5xx pass; any other refusal (4xx) is the request's
/// or the configuration's, and retrying will not help.
fn by_status(status: Option<reqwest::StatusCode>, msg: String) -> PortError {
    match status {
        Some(s) if s.is_client_error() && s.as_u16() != 429 => PortError::Permanent(msg),
        _ => PortError::Transient(msg),
    }
}

#[async_trait]
impl Pinner for KuboPinner {
    async fn pin(&self, name: &str, bytes: Vec<u8>) -> PortResult<String> {
        let form = reqwest::multipart::Form::new().part("file", part(name.to_string(), bytes, FILE)?);
        let added = self.add(form).await?;
        // One JSON object per added entry; the file is the last (and only) one.
        added.into_iter().last().map(|a| a.hash).ok_or_else(|| self.no_answer(""))
    }

    async fn pin_directory(&self, name: &str, files: Vec<(String, Vec<u8>)>) -> PortResult<String> {
        if name.is_empty() || name.contains('/') {
            return Err(PortError::Permanent(format!("directory name `{name}`: use a non-empty name without `/`")));
        }
        // The directory as its own part, then each file under it: the layout kubo's and
        // js-ipfs's clients send for `ipfs add -r`.
        let mut form = reqwest::multipart::Form::new().part("file", part(name.to_string(), Vec::new(), DIRECTORY)?);
        for (file, bytes) in files {
            form = form.part("file", part(format!("{name}/{file}"), bytes, FILE)?);
        }
        let added = self.add(form).await?;
        added.into_iter().find(|a| a.name == name).map(|a| a.hash).ok_or_else(|| self.no_answer(name))
    }
}

/// The most an `add` answer may hold: a line of about 150 bytes per entry, for at most a
/// batch's hundred files.
const MAX_ADD_ANSWER_BYTES: usize = 1 << 20;
/// The most a block may hold (IPFS's own limit is 1 MiB; UnixFS leaves are 256 KiB here).
const MAX_BLOCK_BYTES: usize = 2 << 20;

/// Why an answer was not read whole.
#[derive(Debug)]
pub(crate) enum Capped {
    /// The transport failed.
    Read(reqwest::Error),
    /// It passed the cap (bytes).
    TooBig(usize),
}

/// An answer's body, read chunk by chunk and refused once it passes `cap` bytes: what a node
/// or a gateway sends is never taken whole before it is checked.
pub(crate) async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, Capped> {
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(Capped::TooBig(cap));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(Capped::Read)? {
        if bytes.len() + chunk.len() > cap {
            return Err(Capped::TooBig(cap));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Content types of `add`'s multipart entries (kubo and js-ipfs want one on every part).
const FILE: &str = "application/octet-stream";
const DIRECTORY: &str = "application/x-directory";

/// One entry of an `add` request: a file, or a directory (`DIRECTORY`, no bytes).
fn part(name: String, bytes: Vec<u8>, content_type: &str) -> PortResult<reqwest::multipart::Part> {
    reqwest::multipart::Part::bytes(bytes)
        .file_name(name)
        .mime_str(content_type)
        .map_err(|e| PortError::Permanent(format!("multipart: {e}")))
}

impl KuboPinner {
    /// `add` with kubo's CIDv1 settings; the node's answer line per entry.
    async fn add(&self, form: reqwest::multipart::Form) -> PortResult<Vec<Added>> {
        let req = self.post("add").query(&ADD_OPTIONS).multipart(form);
        let resp = self.send("add", req).await?;
        // One short JSON line per entry: an answer far longer is not the node's.
        let text = read_capped(resp, MAX_ADD_ANSWER_BYTES).await.map_err(|e| self.capped("add", e))?;
        let text = String::from_utf8_lossy(&text);
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).map_err(|e| {
                    PortError::Transient(format!("IPFS add at {}: not a Kubo RPC answer ({e}): {l:.120}", self.api))
                })
            })
            .collect()
    }

    fn capped(&self, what: &str, e: Capped) -> PortError {
        match e {
            Capped::Read(e) => self.classify(what, e),
            Capped::TooBig(cap) => PortError::Permanent(format!(
                "IPFS {what} at {}: the answer is more than {cap} bytes, more than the request can need; refusing it",
                self.api
            )),
        }
    }

    fn no_answer(&self, name: &str) -> PortError {
        PortError::Transient(format!("IPFS add at {}: the node named no CID for `{name}`", self.api))
    }
}

#[async_trait]
impl ContentSource for KuboPinner {
    async fn fetch(&self, cid: &str) -> PortResult<Vec<u8>> {
        let resp = self.send("cat", self.post("cat").query(&[("arg", cid)])).await?;
        let bytes = read_capped(resp, MAX_GATEWAY_BYTES).await.map_err(|e| self.capped("cat", e))?;
        checked(cid, bytes, &format!("the IPFS node at {}", self.api))
    }

    async fn fetch_block(&self, cid: &str) -> PortResult<Vec<u8>> {
        let resp = self.send("block/get", self.post("block/get").query(&[("arg", cid)])).await?;
        let bytes = read_capped(resp, MAX_BLOCK_BYTES).await.map_err(|e| self.capped("block/get", e))?;
        checked_block(cid, bytes, &format!("the IPFS node at {}", self.api))
    }
}

/// `block` if it is the block `cid` names; else a permanent error naming `source`.
fn checked_block(cid: &str, block: Vec<u8>, source: &str) -> PortResult<Vec<u8>> {
    latentmint_core::cid::check_block(cid, &block).map_err(|e| PortError::Permanent(format!("{source}: {e}")))?;
    Ok(block)
}

/// `bytes` if they are the content `cid` names; else a permanent error naming `source`.
fn checked(cid: &str, bytes: Vec<u8>, source: &str) -> PortResult<Vec<u8>> {
    let got = cid_of_bytes(&bytes);
    if got != cid {
        return Err(PortError::Permanent(format!(
            "{source} returned bytes for {cid} whose CID is {got}: not the content asked for"
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_url_is_checked() {
        let e = KuboPinner::new("127.0.0.1:5001", None).unwrap_err().to_string();
        assert!(e.contains("ipfs.api_url") && e.contains("http://127.0.0.1:5001"), "{e}");
        assert!(KuboPinner::new("http://127.0.0.1:5001/", None).is_ok());
    }

    /// A node whose every answer is `body` (chunked, no length announced).
    fn node_answering(body: Vec<u8>) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut buf = [0u8; 65536];
                let _ = stream.read(&mut buf);
                let _ = write!(stream, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
                for chunk in body.chunks(64 * 1024) {
                    let _ = write!(stream, "{:x}\r\n", chunk.len());
                    let _ = stream.write_all(chunk);
                    let _ = write!(stream, "\r\n");
                }
                let _ = write!(stream, "0\r\n\r\n");
            }
        });
        url
    }

    /// A node that answers more than any request can need is refused before it is read whole.
    #[tokio::test]
    async fn an_oversized_answer_is_refused_while_it_is_read() {
        let p = KuboPinner::new(&node_answering(vec![b'{'; MAX_ADD_ANSWER_BYTES + 1]), None).unwrap();
        let e = p.pin("x", b"x".to_vec()).await.unwrap_err();
        assert!(matches!(&e, PortError::Permanent(m) if m.contains("more than 1048576 bytes")), "{e}");
        let p = KuboPinner::new(&node_answering(vec![0; MAX_BLOCK_BYTES + 1]), None).unwrap();
        let e = p.fetch_block(&latentmint_core::cid::cid_of_bytes(b"x")).await.unwrap_err();
        assert!(matches!(&e, PortError::Permanent(m) if m.contains("more than 2097152 bytes")), "{e}");
    }

    #[tokio::test]
    async fn an_unreachable_node_is_transient() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let p = KuboPinner::new(&format!("http://127.0.0.1:{port}"), None).unwrap();
        assert!(matches!(p.pin("x", b"x".to_vec()).await, Err(PortError::Transient(_))));
    }
}
