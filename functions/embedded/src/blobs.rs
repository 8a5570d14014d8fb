//! Blobs and content-addressed objects on the local filesystem.

use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use latentmint_core::cid::{check_block, cid_of_bytes, directory_block};
use latentmint_core::ports::{BlobStore, ContentSource, Pinner, PortError, PortResult};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PortError + '_ {
    move |e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            PortError::NotFound(path.display().to_string())
        } else {
            PortError::Transient(format!("{}: {e}", path.display()))
        }
    }
}

/// Writes through a temporary file and a rename, so a crash never leaves half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> PortResult<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Blob store in a folder; keys are relative paths.
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// A store rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Where `key` lives on disk (after checking it cannot escape the root).
    pub fn path_of(&self, key: &str) -> PortResult<PathBuf> {
        let rel = Path::new(key);
        if key.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(PortError::Permanent(format!("blob key `{key}` must be a relative path without `..`")));
        }
        Ok(self.root.join(rel))
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> PortResult<()> {
        write_atomic(&self.path_of(key)?, &bytes)
    }

    async fn get(&self, key: &str) -> PortResult<Vec<u8>> {
        let p = self.path_of(key)?;
        std::fs::read(&p).map_err(io(&p))
    }
}

/// A local IPFS-style content store: objects are stored under their CID (computed here, the
/// way kubo would) and checked against it on every read.
pub struct LocalContentStore {
    root: PathBuf,
}

impl LocalContentStore {
    /// A store in `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Where an object lives.
    pub fn path_of(&self, cid: &str) -> PortResult<PathBuf> {
        if !latentmint_core::cid::is_cid(cid) {
            return Err(PortError::Permanent(format!("`{cid}` is not a CID")));
        }
        Ok(self.root.join(cid))
    }
}

#[async_trait]
impl Pinner for LocalContentStore {
    async fn pin(&self, _name: &str, bytes: Vec<u8>) -> PortResult<String> {
        let cid = cid_of_bytes(&bytes);
        let p = self.path_of(&cid)?;
        if !p.exists() {
            write_atomic(&p, &bytes)?;
        }
        Ok(cid)
    }

    async fn pin_directory(&self, _name: &str, files: Vec<(String, Vec<u8>)>) -> PortResult<String> {
        let (cid, block) = directory_block(&files).map_err(|e| PortError::Permanent(e.to_string()))?;
        for (_, bytes) in files {
            self.pin("", bytes).await?;
        }
        // Kept as a block beside the objects: `fetch` serves files, `fetch_block` nodes.
        let p = self.root.join("blocks").join(&cid);
        if !p.exists() {
            write_atomic(&p, &block)?;
        }
        Ok(cid)
    }
}

#[async_trait]
impl ContentSource for LocalContentStore {
    async fn fetch(&self, cid: &str) -> PortResult<Vec<u8>> {
        let p = self.path_of(cid)?;
        let bytes = std::fs::read(&p).map_err(io(&p))?;
        let actual = cid_of_bytes(&bytes);
        if actual != cid {
            return Err(PortError::Permanent(format!(
                "content store object {cid} is corrupt: its bytes hash to {actual}"
            )));
        }
        Ok(bytes)
    }

    async fn fetch_block(&self, cid: &str) -> PortResult<Vec<u8>> {
        let node = self.path_of(cid)?.with_file_name("blocks").join(cid);
        // A single-chunk file's object is its one raw block.
        let bytes = match std::fs::read(&node) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.fetch(cid).await?,
            Err(e) => return Err(io(&node)(e)),
        };
        check_block(cid, &bytes)
            .map_err(|e| PortError::Permanent(format!("content store block {cid} is corrupt or not one block: {e}")))?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blobs_round_trip_and_refuse_escapes() {
        let d = tempfile::tempdir().unwrap();
        let s = FsBlobStore::new(d.path());
        s.put("images/a.png", vec![1, 2, 3]).await.unwrap();
        assert_eq!(s.get("images/a.png").await.unwrap(), [1, 2, 3]);
        assert!(matches!(s.get("images/none.png").await, Err(PortError::NotFound(_))));
        assert!(s.put("../x", vec![]).await.is_err());
        assert!(s.put("/etc/x", vec![]).await.is_err());
    }

    #[tokio::test]
    async fn content_store_checks_cids() {
        let d = tempfile::tempdir().unwrap();
        let s = LocalContentStore::new(d.path());
        let cid = s.pin("x", b"hello".to_vec()).await.unwrap();
        assert_eq!(s.fetch(&cid).await.unwrap(), b"hello");
        std::fs::write(d.path().join(&cid), b"tampered").unwrap();
        let e = s.fetch(&cid).await.unwrap_err().to_string();
        assert!(e.contains("corrupt"), "{e}");
    }

    #[tokio::test]
    async fn directories_are_kept_as_a_node_block_and_their_files() {
        let d = tempfile::tempdir().unwrap();
        let s = LocalContentStore::new(d.path());
        let files = vec![("0".to_string(), b"a".to_vec()), ("1".to_string(), b"b".to_vec())];
        let cid = s.pin_directory("batch", files.clone()).await.unwrap();
        assert_eq!(cid, latentmint_core::cid::directory_cid(&files).unwrap());
        let links = latentmint_core::cid::directory_links(&cid, &s.fetch_block(&cid).await.unwrap()).unwrap();
        assert_eq!(s.fetch(&links[1].1).await.unwrap(), b"b");
        assert_eq!(s.fetch_block(&links[0].1).await.unwrap(), b"a", "a one-chunk file is its own block");
    }
}
