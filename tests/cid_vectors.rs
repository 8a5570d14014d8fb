//! Our CIDs against an independent UnixFS implementation (npm ipfs-unixfs-importer, the one
//! js-ipfs and Helia use) with kubo's `ipfs add --cid-version=1` settings. The reference runs
//! live (tests/cid-vectors/vectors.mjs) and must also equal the committed vectors.

use std::process::Command;

use latentmint_core::cid::cid_of_bytes;
use latentmint_e2e::{latentmint_bin, repo_root};
use serde_json::Value;

/// 0 B, 1 B, one full chunk, one chunk + 1 byte, 5 MiB, and 174 chunks + 1 byte (the first
/// size that needs a second tree level).
const SIZES: [usize; 6] = [0, 1, 262_144, 262_145, 5 * 1024 * 1024, 174 * 262_144 + 1];

/// Same xorshift32 stream as vectors.mjs.
fn content(size: usize) -> Vec<u8> {
    let mut s: u32 = 0x9e37_79b9 ^ size as u32;
    if s == 0 {
        s = 1;
    }
    (0..size)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s & 0xff) as u8
        })
        .collect()
}

fn committed() -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(repo_root().join("tests/fixtures/cid-vectors.json")).expect("committed vectors");
    let v: Value = serde_json::from_str(&text).expect("JSON");
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| (e["size"].as_u64().unwrap() as usize, e["cid"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn committed_vectors_match_our_cids() {
    let vectors = committed();
    assert_eq!(vectors.iter().map(|(s, _)| *s).collect::<Vec<_>>(), SIZES);
    for (size, want) in vectors {
        assert_eq!(cid_of_bytes(&content(size)), want, "size {size}");
    }
}

#[test]
fn live_js_importer_agrees() {
    let dir = repo_root().join("tests/cid-vectors");
    assert!(
        dir.join("node_modules/ipfs-unixfs-importer").is_dir(),
        "ipfs-unixfs-importer missing: run scripts/bootstrap.sh --tests"
    );
    let out = Command::new("node")
        .arg("vectors.mjs")
        .args(SIZES.map(|s| s.to_string()))
        .current_dir(&dir)
        .output()
        .expect("node runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for e in v.as_array().unwrap() {
        let size = e["size"].as_u64().unwrap() as usize;
        assert_eq!(cid_of_bytes(&content(size)), e["cid"].as_str().unwrap(), "size {size}");
    }
}

#[test]
fn cid_subcommand_prints_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    for (size, want) in committed().into_iter().take(5) {
        let f = tmp.path().join(format!("f{size}"));
        std::fs::write(&f, content(size)).unwrap();
        let out = Command::new(latentmint_bin()).arg("cid").arg(&f).output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want, "size {size}");
    }
    let out = Command::new(latentmint_bin()).arg("cid").arg(tmp.path().join("missing")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open"));
}

/// A directory of 12 files (names "0".."11", so "10" sorts before "2"; sizes from empty to
/// two chunks): the JS importer's `wrapWithDirectory` CID, committed and live.
const DIR_SIZES: [usize; 12] = [100, 7, 262_145, 0, 300, 1, 2, 3, 4, 5, 6, 262_144];

fn our_directory() -> String {
    let files: Vec<(String, Vec<u8>)> =
        DIR_SIZES.iter().enumerate().map(|(i, &s)| (i.to_string(), content(s))).collect();
    latentmint_core::cid::directory_cid(&files).unwrap()
}

#[test]
fn directory_cid_matches_the_js_importer() {
    let text = std::fs::read_to_string(repo_root().join("tests/fixtures/cid-vectors-dir.json")).unwrap();
    let committed: Value = serde_json::from_str(&text).unwrap();
    let sizes: Vec<usize> = committed["dir"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    assert_eq!(sizes, DIR_SIZES);
    assert_eq!(our_directory(), committed["cid"].as_str().unwrap(), "committed vector");
    let out = Command::new("node")
        .arg("vectors.mjs")
        .arg("--dir")
        .args(DIR_SIZES.map(|s| s.to_string()))
        .current_dir(repo_root().join("tests/cid-vectors"))
        .output()
        .expect("node runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let live: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(our_directory(), live["cid"].as_str().unwrap(), "live JS importer");
}
