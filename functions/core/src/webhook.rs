//! The shops' order webhooks: how a request is signed, so that a captured order can be neither
//! replayed later nor sent to another collection.
//!
//! - **One key per collection.** A collection's key is derived from the stack's webhook secret
//!   and the collection's name in the URL ([`collection_key`]); a shop is given only its own
//!   collection's key (`latentmint webhook-key`), so it can sign for no other. Rotating the
//!   stack's secret rotates every key, and the previous version stays valid until the next
//!   rotation (two live keys).
//! - **What is signed.** `x-latentmint-signature: t=<unix seconds>,v1=<hex>`, where `v1` is the
//!   HMAC-SHA256, under the collection's key (its 64 hex characters as bytes), of
//!   [`signed_payload`]: the timestamp, the method, the path (which names the collection) and
//!   the raw body, so the signature holds for this request only.
//! - **When.** A timestamp more than [`TOLERANCE_SECS`] from the stack's clock is refused: a
//!   captured request is dead five minutes later.
//! - **Once.** Each delivery carries `x-latentmint-delivery: <id>`; the first answer is kept
//!   under the collection and the id, so a replay within the window gets that answer back and
//!   is never processed again.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-latentmint-signature";
/// The delivery id header.
pub const DELIVERY_HEADER: &str = "x-latentmint-delivery";
/// How far a signature's timestamp may be from the stack's clock, in seconds.
pub const TOLERANCE_SECS: u64 = 300;

/// The key of collection `slug` (the name in `/webhooks/<slug>`) under the stack's secret
/// `master`: 64 hex characters, given to that collection's shop.
pub fn collection_key(master: &[u8], slug: &str) -> String {
    hex::encode(hmac(master, &[b"latentmint/webhook-key/v1\0", slug.as_bytes()]))
}

/// What a request's `v1` signature covers: `<t>\n<METHOD>\n<path>\n<body>`.
pub fn signed_payload(timestamp: u64, method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut p = format!("{timestamp}\n{}\n{path}\n", method.to_ascii_uppercase()).into_bytes();
    p.extend_from_slice(body);
    p
}

/// The header value a shop sends for `body` at `timestamp`, signed with `key`
/// ([`collection_key`]).
pub fn signature_header(key: &str, timestamp: u64, method: &str, path: &str, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", hex::encode(hmac(key.as_bytes(), &[&signed_payload(timestamp, method, path, body)])))
}

/// A parsed signature header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// `t`: when the shop signed, in Unix seconds.
    pub timestamp: u64,
    /// Every `v1` given (a shop may send one per key while it switches keys).
    pub v1: Vec<Vec<u8>>,
}

/// Why a signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No header, or not `t=…,v1=…`.
    #[error("{SIGNATURE_HEADER} is missing or not t=<unix seconds>,v1=<hex>")]
    Malformed,
    /// The timestamp is outside the window.
    #[error(
        "the signature was made {0} s from the stack's clock, more than the {TOLERANCE_SECS} s allowed (a replayed request, or a clock that is off)"
    )]
    Stale(i64),
    /// No key signed it.
    #[error("{SIGNATURE_HEADER} does not match this request under the collection's key")]
    Mismatch,
}

impl Signature {
    /// Parses `t=<secs>,v1=<hex>[,v1=<hex>…]`.
    pub fn parse(header: Option<&str>) -> Result<Self, SignatureError> {
        let mut timestamp = None;
        let mut v1 = Vec::new();
        for part in header.ok_or(SignatureError::Malformed)?.split(',') {
            match part.trim().split_once('=') {
                Some(("t", t)) => timestamp = Some(t.parse().map_err(|_| SignatureError::Malformed)?),
                Some(("v1", h)) => v1.push(hex::decode(h).map_err(|_| SignatureError::Malformed)?),
                _ => {}
            }
        }
        match (timestamp, v1.is_empty()) {
            (Some(timestamp), false) => Ok(Self { timestamp, v1 }),
            _ => Err(SignatureError::Malformed),
        }
    }

    /// Checks the signature at `now` (Unix seconds) against each of `masters` (the stack's
    /// secret, current version first), for this request.
    pub fn check<'a>(
        &self,
        now: u64,
        masters: impl IntoIterator<Item = &'a [u8]>,
        slug: &str,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        let skew = now as i64 - self.timestamp as i64;
        if skew.unsigned_abs() > TOLERANCE_SECS {
            return Err(SignatureError::Stale(skew));
        }
        let payload = signed_payload(self.timestamp, method, path, body);
        for master in masters {
            let key = collection_key(master, slug);
            for given in &self.v1 {
                // verify_slice compares in constant time.
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
                mac.update(&payload);
                if mac.verify_slice(given).is_ok() {
                    return Ok(());
                }
            }
        }
        Err(SignatureError::Mismatch)
    }
}

/// Whether `id` is a usable delivery id: 1 to 128 letters, digits or `-_.:`.
pub fn valid_delivery_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn check(header: &str, slug: &str, path: &str, body: &[u8], now: u64) -> Result<(), SignatureError> {
        Signature::parse(Some(header))?.check(now, [b"master".as_slice()], slug, "POST", path, body)
    }

    #[test]
    fn a_signature_holds_for_its_collection_path_time_and_body_only() {
        let key = collection_key(b"master", "neon");
        assert_eq!(key.len(), 64);
        assert_ne!(key, collection_key(b"master", "other"), "one key per collection");
        let h = signature_header(&key, NOW, "POST", "/webhooks/neon", b"{}");
        assert_eq!(check(&h, "neon", "/webhooks/neon", b"{}", NOW), Ok(()));
        assert_eq!(check(&h, "neon", "/webhooks/neon", b"{}", NOW + TOLERANCE_SECS), Ok(()), "inside the window");
        // Another collection (its key and its path), another body, another time.
        assert_eq!(check(&h, "other", "/webhooks/other", b"{}", NOW), Err(SignatureError::Mismatch));
        assert_eq!(check(&h, "neon", "/webhooks/neon", b"{ }", NOW), Err(SignatureError::Mismatch));
        assert_eq!(check(&h, "neon", "/webhooks/neon", b"{}", NOW + 301), Err(SignatureError::Stale(301)));
        assert_eq!(check(&h, "neon", "/webhooks/neon", b"{}", NOW - 301), Err(SignatureError::Stale(-301)));
        // The other collection's key cannot sign for this one.
        let theirs = signature_header(&collection_key(b"master", "other"), NOW, "POST", "/webhooks/neon", b"{}");
        assert_eq!(check(&theirs, "neon", "/webhooks/neon", b"{}", NOW), Err(SignatureError::Mismatch));
    }

    #[test]
    fn the_previous_secret_still_signs_during_a_rotation() {
        let old = collection_key(b"old", "neon");
        let h = signature_header(&old, NOW, "POST", "/webhooks/neon", b"x");
        let s = Signature::parse(Some(&h)).unwrap();
        assert_eq!(
            s.check(NOW, [b"new".as_slice(), b"old".as_slice()], "neon", "POST", "/webhooks/neon", b"x"),
            Ok(())
        );
        assert_eq!(
            s.check(NOW, [b"new".as_slice()], "neon", "POST", "/webhooks/neon", b"x"),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn malformed_headers_and_delivery_ids() {
        for h in ["", "sha256=abcd", "t=1", "v1=abcd", "t=x,v1=ab", "t=1,v1=zz"] {
            assert_eq!(Signature::parse(Some(h)), Err(SignatureError::Malformed), "{h}");
        }
        assert_eq!(Signature::parse(None), Err(SignatureError::Malformed));
        assert!(valid_delivery_id("evt_123:A-1"));
        for bad in ["", "a/b", "a b", &"x".repeat(129)] {
            assert!(!valid_delivery_id(bad), "{bad}");
        }
    }
}
