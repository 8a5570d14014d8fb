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
    #[serde(rename = "Hash")]
    hash: String,
}

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
        let body: String = resp.text().await.unwrap_or_default().chars().take(300).collect();
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
        // kubo and js-ipfs want a content type on the part.
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(name.to_string())
            .mime_str("application/octet-stream")
            .map_err(|e| PortError::Permanent(format!("multipart: {e}")))?;
        let form = reqwest::multipart::Form::new().part("file", part);
        let req = self
            .post("add")
            .query(&[
                ("cid-version", "1"),
                ("raw-leaves", "true"),
                ("chunker", "size-262144"),
                ("cid-base", "base32"),
                ("hash", "sha2-256"),
                ("pin", "true"),
            ])
            .multipart(form);
        let resp = self.send("add", req).await?;
        let text = resp.text().await.map_err(|e| self.classify("add", e))?;
        // One JSON object per added entry; the file is the last (and only) one.
        let last = text.lines().rfind(|l| !l.trim().is_empty()).unwrap_or_default();
        let added: Added = serde_json::from_str(last).map_err(|e| {
            PortError::Transient(format!("IPFS add at {}: not a Kubo RPC answer ({e}): {last:.120}", self.api))
        })?;
        Ok(added.hash)
    }
}

#[async_trait]
impl ContentSource for KuboPinner {
    async fn fetch(&self, cid: &str) -> PortResult<Vec<u8>> {
        let resp = self.send("cat", self.post("cat").query(&[("arg", cid)])).await?;
        let bytes = resp.bytes().await.map_err(|e| self.classify("cat", e))?.to_vec();
        checked(cid, bytes, &format!("the IPFS node at {}", self.api))
    }
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

    #[tokio::test]
    async fn an_unreachable_node_is_transient() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let p = KuboPinner::new(&format!("http://127.0.0.1:{port}"), None).unwrap();
        assert!(matches!(p.pin("x", b"x".to_vec()).await, Err(PortError::Transient(_))));
    }
}
