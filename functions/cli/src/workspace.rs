//! A run's folder: where its state lives (`run_dir`), the embedded adapters over it
//! (`Workspace`), and the checks that stop a run cleanly when its disk fills or turns read-only.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use latentmint_core::collection::Collection;
use latentmint_core::ports::Pinner;
use latentmint_embedded::{FsBlobStore, LocalContentStore, SqliteJobStore, SqliteQueue};
use latentmint_ipfs::KuboPinner;

/// The anvil binary: `--anvil` / `LATENTMINT_ANVIL`, else where bootstrap.sh puts it.
pub(crate) fn anvil_path(configured: Option<&Path>) -> PathBuf {
    configured
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("infra/contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"))
}

pub(crate) fn slug(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let s = s.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-");
    if s.is_empty() { "collection".into() } else { s }
}

/// The folder of a collection's run state: `<data-dir>/<slug of its name>`, created if need be.
/// Names that differ only in case or punctuation share a slug, so the folder records whose it
/// is (`collection-name`) and refuses any other collection, instead of mixing the two runs'
/// jobs and minting one's tokens on the other's contract. A folder without the record (made
/// by an older version) is taken by the first collection that opens it.
pub(crate) fn run_dir(data_dir: &Path, collection: &Collection) -> anyhow::Result<PathBuf> {
    let name = &collection.file.collection.name;
    let dir = data_dir.join(slug(name));
    let record = dir.join("collection-name");
    match std::fs::read_to_string(&record) {
        Ok(owner) if owner == *name => {}
        Ok(owner) => bail!(
            "collection.name: `{name}` would share the state folder {} with the collection `{owner}` (names that differ only in case or punctuation share a folder); rename the collection, or give it another --data-dir",
            dir.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            latentmint_embedded::write_atomic(&record, name.as_bytes())
                .with_context(|| format!("cannot write {}", record.display()))?;
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", record.display())),
    }
    Ok(dir)
}

pub(crate) fn load_collection(path: &Path) -> anyhow::Result<Collection> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read collection file {}", path.display()))?;
    Ok(Collection::from_toml(&path.display().to_string(), &text)?)
}

/// Fails with the folder and the fix when `dir` cannot be written (a read-only mount, a full
/// disk): found before anything starts, not as a stage retrying forever.
pub(crate) fn writable(dir: &Path) -> anyhow::Result<()> {
    let probe = dir.join(".write-test");
    let wrote = std::fs::write(&probe, b"latentmint").and_then(|()| std::fs::remove_file(&probe));
    if let Err(e) = wrote {
        bail!(
            "{}: this run's data folder cannot be written ({e}); make it writable (a read-only mount? a full disk?), or give another --data-dir; nothing was started",
            dir.display()
        );
    }
    Ok(())
}

/// Storage faults no retry mends: the data folder's disk is full, or it turned read-only.
/// A stage meeting one stops the run (see [`Fault`]) instead of retrying forever.
pub(crate) fn storage_fault(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    [
        "database or disk is full",
        "no space left on device",
        "disk quota exceeded",
        "read-only file system",
        "readonly database",
        "disk i/o error",
    ]
    .iter()
    .any(|k| m.contains(k))
}

/// The first storage fault a worker met, which ends the run.
pub(crate) type Fault = Arc<std::sync::Mutex<Option<String>>>;

pub(crate) fn note_fault(fault: &Fault, msg: &str) {
    if storage_fault(msg)
        && let Ok(mut f) = fault.lock()
        && f.is_none()
    {
        *f = Some(msg.to_string());
    }
}

/// Bytes free for this process on the file system holding `dir` (`None` if it cannot tell).
pub(crate) fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Below this, a run stops before SQLite or an image write fails half-way.
pub(crate) const MIN_FREE_BYTES: u64 = 4 * 1024 * 1024;

/// The embedded adapters of one collection's data folder.
pub(crate) struct Workspace {
    pub(crate) dir: PathBuf,
    pub(crate) queue: Arc<SqliteQueue>,
    pub(crate) jobs: Arc<SqliteJobStore>,
    pub(crate) blobs: Arc<FsBlobStore>,
    /// Where metadata and images are pinned: a real IPFS node, or the data folder.
    pub(crate) content: Arc<dyn Pinner>,
    pub(crate) _lock: File,
}

impl Workspace {
    pub(crate) fn open(data_dir: &Path, collection: &Collection, max_receives: u32) -> anyhow::Result<Self> {
        let dir = run_dir(data_dir, collection)?;
        writable(&dir)?;
        let lock =
            File::create(dir.join("run.lock")).with_context(|| format!("cannot create {}/run.lock", dir.display()))?;
        if lock.try_lock().is_err() {
            bail!("another latentmint process is using {}; wait for it to finish or stop it", dir.display());
        }
        let db = dir.join("pipeline.db");
        Ok(Self {
            queue: Arc::new(SqliteQueue::open(&db, max_receives)?),
            jobs: Arc::new(SqliteJobStore::open(&db)?),
            blobs: Arc::new(FsBlobStore::new(dir.join("blobs"))),
            content: match &collection.file.ipfs.api_url {
                Some(url) => Arc::new(KuboPinner::new(url, std::env::var("LATENTMINT_IPFS_AUTH").ok())?),
                None => Arc::new(LocalContentStore::new(dir.join("ipfs"))),
            },
            dir,
            _lock: lock,
        })
    }
}
