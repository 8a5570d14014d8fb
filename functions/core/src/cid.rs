//! Content identifiers computed exactly as `ipfs add --cid-version=1` (kubo) does: UnixFS,
//! raw leaves, 256 KiB fixed-size chunks, balanced DAG with at most 174 links per node.
//!
//! We compute CIDs ourselves, from our own bytes, before anything is uploaded: a pinning
//! service's answer is then checked, never trusted.

use std::io::{self, Read};

use cid::Cid;
use cid::multihash::Multihash;
use sha2::{Digest, Sha256};

/// Kubo's default chunk size.
pub const CHUNK_SIZE: usize = 256 * 1024;
/// Kubo's default maximum links per internal node (balanced layout).
pub const MAX_LINKS: usize = 174;

const RAW: u64 = 0x55;
const DAG_PB: u64 = 0x70;
const SHA2_256: u64 = 0x12;

/// A node of the DAG as its parent sees it.
#[derive(Clone)]
struct Link {
    cid: Cid,
    /// Bytes of file content below this node (UnixFS blocksizes / filesize).
    content_size: u64,
    /// Bytes of all blocks below and including this node (dag-pb Tsize).
    tsize: u64,
}

fn sha256_cid(codec: u64, bytes: &[u8]) -> Cid {
    let digest = Sha256::digest(bytes);
    // A 32-byte digest always fits the 64-byte multihash buffer.
    let mh = Multihash::<64>::wrap(SHA2_256, &digest).expect("sha2-256 digest fits in a multihash");
    Cid::new_v1(codec, mh)
}

/// CIDv1 of a byte string (see the module docs for the layout).
pub fn cid_of_bytes(bytes: &[u8]) -> String {
    // Reading from a slice cannot fail.
    cid_of_reader(bytes).unwrap_or_default()
}

/// CIDv1 of everything `reader` yields, reading 256 KiB at a time.
pub fn cid_of_reader<R: Read>(reader: R) -> io::Result<String> {
    Ok(file_root(reader)?.cid.to_string())
}

/// A directory that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// A name is empty, has a `/`, or is `.` or `..`.
    #[error("directory entry `{0}`: not a file name; use a non-empty name without `/`")]
    BadName(String),
    /// Two entries share a name.
    #[error("directory entry `{0}` appears twice; names must be unique")]
    Duplicate(String),
}

/// CIDv1 (dag-pb) of a flat UnixFS directory holding `files` (name, content), as
/// `ipfs add -r --cid-version=1` builds it: every file as [`cid_of_bytes`] does, links sorted
/// by name bytewise, and a UnixFS `Directory` node (no sharding: fine up to thousands of
/// entries). A batch's metadata lives here: token *i* is `<dir>/<i>`.
pub fn directory_cid<N: AsRef<str>, B: AsRef<[u8]>>(files: &[(N, B)]) -> Result<String, DirectoryError> {
    Ok(directory_block(files)?.0)
}

/// Like [`directory_cid`], with the directory node's block: what a store keeps under the CID,
/// and what a reader parses with [`directory_links`] to find a file's CID.
pub fn directory_block<N: AsRef<str>, B: AsRef<[u8]>>(files: &[(N, B)]) -> Result<(String, Vec<u8>), DirectoryError> {
    let mut entries: Vec<(&str, Link)> = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        let name = name.as_ref();
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(DirectoryError::BadName(name.to_string()));
        }
        // Reading from a slice cannot fail.
        let link = file_root(bytes.as_ref()).map_err(|_| DirectoryError::BadName(name.to_string()))?;
        entries.push((name, link));
    }
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    if let Some(w) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(DirectoryError::Duplicate(w[0].0.to_string()));
    }
    let mut node = Vec::new();
    for (name, link) in &entries {
        let mut l = Vec::new();
        put_bytes_field(&mut l, 1, &link.cid.to_bytes());
        put_bytes_field(&mut l, 2, name.as_bytes());
        put_varint_field(&mut l, 3, link.tsize);
        put_bytes_field(&mut node, 2, &l);
    }
    // UnixFS Data message: Type = Directory (1).
    let mut data = Vec::new();
    put_varint_field(&mut data, 1, 1);
    put_bytes_field(&mut node, 1, &data);
    Ok((sha256_cid(DAG_PB, &node).to_string(), node))
}

/// A block that is not what its CID names, or not a UnixFS directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The CID does not parse, or is not CIDv1 with sha2-256.
    #[error("`{0}` is not a CIDv1 with a sha2-256 hash")]
    NotACid(String),
    /// The bytes hash to something else.
    #[error("the block fetched for {0} does not hash to it: not the content asked for")]
    Mismatch(String),
    /// Not a dag-pb UnixFS directory node.
    #[error("block {cid} is not a UnixFS directory: {why}")]
    NotADirectory {
        /// The block's CID.
        cid: String,
        /// What is wrong with it.
        why: String,
    },
}

/// Checks that `block` is the block `cid` names: its sha2-256 digest is the CID's.
pub fn check_block(cid: &str, block: &[u8]) -> Result<(), BlockError> {
    let c = Cid::try_from(cid).map_err(|_| BlockError::NotACid(cid.to_string()))?;
    if c.version() != cid::Version::V1 || c.hash().code() != SHA2_256 {
        return Err(BlockError::NotACid(cid.to_string()));
    }
    if c.hash().digest() != Sha256::digest(block).as_ref() as &[u8] {
        return Err(BlockError::Mismatch(cid.to_string()));
    }
    Ok(())
}

/// The entries (name, CID) of the flat UnixFS directory whose block is `block`, after checking
/// the block against `cid`: a reader trusts a directory listing only through its CID.
pub fn directory_links(cid: &str, block: &[u8]) -> Result<Vec<(String, String)>, BlockError> {
    check_block(cid, block)?;
    let bad = |why: &str| BlockError::NotADirectory { cid: cid.to_string(), why: why.to_string() };
    let c = Cid::try_from(cid).map_err(|_| BlockError::NotACid(cid.to_string()))?;
    if c.codec() != DAG_PB {
        return Err(bad("not a dag-pb block"));
    }
    let mut links = Vec::new();
    let mut is_directory = false;
    let mut r = block;
    while !r.is_empty() {
        let (field, value) = read_bytes_field(&mut r).ok_or_else(|| bad("malformed protobuf"))?;
        match field {
            2 => {
                let (mut hash, mut name) = (None, None);
                let mut l = value;
                while !l.is_empty() {
                    let (f, v) = read_field(&mut l).ok_or_else(|| bad("malformed link"))?;
                    match (f, v) {
                        (1, Field::Bytes(b)) => {
                            hash = Some(Cid::try_from(b).map_err(|_| bad("a link's hash is not a CID"))?)
                        }
                        (2, Field::Bytes(b)) => {
                            name = Some(String::from_utf8(b.to_vec()).map_err(|_| bad("a link's name is not UTF-8"))?)
                        }
                        _ => {}
                    }
                }
                let hash = hash.ok_or_else(|| bad("a link has no hash"))?;
                links.push((name.unwrap_or_default(), hash.to_string()));
            }
            1 => {
                // UnixFS Data: field 1 is the node type, 1 = Directory.
                let mut d = value;
                while !d.is_empty() {
                    if let (1, Field::Varint(t)) = read_field(&mut d).ok_or_else(|| bad("malformed UnixFS data"))? {
                        is_directory = t == 1;
                    }
                }
            }
            _ => {}
        }
    }
    if !is_directory {
        return Err(bad("its UnixFS type is not Directory"));
    }
    Ok(links)
}

/// A protobuf field's value (only the wire types dag-pb and UnixFS use).
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn read_varint(r: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = r.split_first()?;
        *r = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn read_field<'a>(r: &mut &'a [u8]) -> Option<(u64, Field<'a>)> {
    let key = read_varint(r)?;
    match key & 7 {
        0 => Some((key >> 3, Field::Varint(read_varint(r)?))),
        2 => {
            let len = usize::try_from(read_varint(r)?).ok()?;
            if len > r.len() {
                return None;
            }
            let (v, rest) = r.split_at(len);
            *r = rest;
            Some((key >> 3, Field::Bytes(v)))
        }
        _ => None,
    }
}

fn read_bytes_field<'a>(r: &mut &'a [u8]) -> Option<(u64, &'a [u8])> {
    match read_field(r)? {
        (f, Field::Bytes(b)) => Some((f, b)),
        _ => None,
    }
}

/// The sha2-256 digest of a CIDv1 dag-pb CID (what a directory or a multi-chunk file gets).
pub fn dag_pb_sha256_digest(s: &str) -> Option<[u8; 32]> {
    let c = Cid::try_from(s).ok()?;
    if c.version() != cid::Version::V1 || c.codec() != DAG_PB || c.hash().code() != SHA2_256 {
        return None;
    }
    c.hash().digest().try_into().ok()
}

/// The root link of a file's DAG.
fn file_root<R: Read>(mut reader: R) -> io::Result<Link> {
    let mut leaves = Vec::new();
    let mut buf = vec![0u8; CHUNK_SIZE];
    loop {
        let n = read_full(&mut reader, &mut buf)?;
        if n == 0 && !leaves.is_empty() {
            break;
        }
        leaves.push(Link { cid: sha256_cid(RAW, &buf[..n]), content_size: n as u64, tsize: n as u64 });
        if n < CHUNK_SIZE {
            break;
        }
    }
    // One chunk (including the empty file): the raw block is the file.
    let mut layer = leaves;
    while layer.len() > 1 {
        layer = layer.chunks(MAX_LINKS).map(file_node).collect();
    }
    Ok(layer.swap_remove(0))
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A dag-pb node holding a UnixFS `File` over `children`.
fn file_node(children: &[Link]) -> Link {
    let filesize: u64 = children.iter().map(|c| c.content_size).sum();
    // UnixFS Data message: Type = File (2), filesize, blocksizes.
    let mut data = Vec::new();
    put_varint_field(&mut data, 1, 2);
    put_varint_field(&mut data, 3, filesize);
    for c in children {
        put_varint_field(&mut data, 4, c.content_size);
    }
    // dag-pb canonical form: all Links (field 2) first, then Data (field 1).
    let mut node = Vec::new();
    for c in children {
        let mut link = Vec::new();
        put_bytes_field(&mut link, 1, &c.cid.to_bytes());
        put_bytes_field(&mut link, 2, b"");
        put_varint_field(&mut link, 3, c.tsize);
        put_bytes_field(&mut node, 2, &link);
    }
    put_bytes_field(&mut node, 1, &data);
    let tsize = node.len() as u64 + children.iter().map(|c| c.tsize).sum::<u64>();
    Link { cid: sha256_cid(DAG_PB, &node), content_size: filesize, tsize }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint_field(out: &mut Vec<u8>, field: u64, v: u64) {
    put_varint(out, field << 3);
    put_varint(out, v);
}

fn put_bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The sha2-256 digest of a CIDv1 raw-block CID (what a single-chunk file gets), if `s` is one.
pub fn raw_sha256_digest(s: &str) -> Option<[u8; 32]> {
    let c = Cid::try_from(s).ok()?;
    if c.version() != cid::Version::V1 || c.codec() != RAW || c.hash().code() != SHA2_256 {
        return None;
    }
    c.hash().digest().try_into().ok()
}

/// The CIDv1 (raw, sha2-256, base32) whose digest is `digest`: how a single mint's token id,
/// which is that digest, names its metadata.
pub fn raw_cid_of_digest(digest: &[u8; 32]) -> String {
    digest_cid(RAW, digest)
}

/// The CIDv1 (dag-pb, sha2-256, base32) whose digest is `digest`: a batch's directory.
pub fn dag_pb_cid_of_digest(digest: &[u8; 32]) -> String {
    digest_cid(DAG_PB, digest)
}

fn digest_cid(codec: u64, digest: &[u8; 32]) -> String {
    // A 32-byte sha2-256 digest always wraps.
    let mh = Multihash::<64>::wrap(SHA2_256, digest).expect("a 32-byte digest fits a 64-byte multihash");
    Cid::new_v1(codec, mh).to_string()
}

/// True when `s` parses as a CID (any version, any base).
pub fn is_cid(s: &str) -> bool {
    Cid::try_from(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_empty_raw_block() {
        // The well-known CID of zero bytes as a raw block.
        assert_eq!(cid_of_bytes(b""), "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku");
    }

    #[test]
    fn small_file_is_one_raw_leaf() {
        let c = cid_of_bytes(b"hello world");
        assert!(c.starts_with("bafkrei"), "{c}");
        assert!(is_cid(&c));
    }

    #[test]
    fn multi_chunk_file_is_a_dag_pb_root_and_reader_agrees() {
        let data: Vec<u8> = (0..CHUNK_SIZE * 2 + 5).map(|i| (i % 251) as u8).collect();
        let c = cid_of_bytes(&data);
        assert!(c.starts_with("bafybei"), "{c}");
        // A reader that returns tiny pieces must give the same answer.
        struct Dribble<'a>(&'a [u8]);
        impl Read for Dribble<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(1000);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        assert_eq!(cid_of_reader(Dribble(&data)).unwrap(), c);
    }

    #[test]
    fn raw_digest_round_trips() {
        let c = cid_of_bytes(b"hello world");
        assert_eq!(raw_sha256_digest(&c).unwrap().to_vec(), Sha256::digest(b"hello world").to_vec());
        let big: Vec<u8> = vec![7; CHUNK_SIZE + 1];
        assert!(raw_sha256_digest(&cid_of_bytes(&big)).is_none(), "dag-pb roots are not raw blocks");
        assert!(raw_sha256_digest("nonsense").is_none());
    }

    #[test]
    fn directories_sort_their_entries_and_refuse_bad_names() {
        let a = directory_cid(&[("0", b"a".as_slice()), ("1", b"b".as_slice()), ("10", b"c".as_slice())]).unwrap();
        let b = directory_cid(&[("10", b"c".as_slice()), ("0", b"a".as_slice()), ("1", b"b".as_slice())]).unwrap();
        assert_eq!(a, b, "order of the input does not matter");
        assert!(a.starts_with("bafybei"), "{a}");
        assert!(dag_pb_sha256_digest(&a).is_some() && raw_sha256_digest(&a).is_none());
        // The empty directory is kubo's well-known empty-dir CID.
        let empty: [(&str, &[u8]); 0] = [];
        assert_eq!(directory_cid(&empty).unwrap(), "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354");
        assert_eq!(directory_cid(&[("a/b", b"x")]), Err(DirectoryError::BadName("a/b".into())));
        assert_eq!(directory_cid(&[("x", b"1"), ("x", b"2")]), Err(DirectoryError::Duplicate("x".into())));
    }

    #[test]
    fn directory_blocks_list_their_files_and_are_checked_against_their_cid() {
        let files = [("0", b"first".as_slice()), ("1", b"second".as_slice())];
        let (cid, block) = directory_block(&files).unwrap();
        assert_eq!(cid, directory_cid(&files).unwrap());
        let links = directory_links(&cid, &block).unwrap();
        assert_eq!(links, vec![("0".to_string(), cid_of_bytes(b"first")), ("1".to_string(), cid_of_bytes(b"second"))]);
        let mut tampered = block.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(directory_links(&cid, &tampered), Err(BlockError::Mismatch(cid.clone())));
        // A file's block is not a directory, even when it is the block its CID names.
        let file = cid_of_bytes(b"first");
        assert!(check_block(&file, b"first").is_ok());
        assert!(matches!(directory_links(&file, b"first"), Err(BlockError::NotADirectory { .. })));
        assert_eq!(check_block("nonsense", b""), Err(BlockError::NotACid("nonsense".into())));
    }

    #[test]
    fn varint_encoding() {
        let mut v = Vec::new();
        put_varint(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
    }
}
