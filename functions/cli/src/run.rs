//! The local runner: every stage in one process over embedded adapters (SQLite queues and
//! jobs, files, a local content store) and a real EVM node.
//!
//! A run can be killed at any moment and started again: jobs and messages are in SQLite, the
//! runner takes the data directory's lock and releases the dead run's message leases, the
//! chain is reconciled with the job store, and the contract refuses any second mint of a job.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use latentmint_aws::{
    AsyncInvocation, CircuitBreaker, FallbackGenerator, KmsSigner, RetryPolicy, S3Location, SageMakerGenerator,
};
use latentmint_chain::{Chain, EvmMinter, EvmProvenanceSigner, LocalNode, TokenReader, WalletLease};
use latentmint_core::collection::{ChainSection, Collection};
use latentmint_core::network::L1Fees;
use latentmint_core::ports::{BlobStore, Generator, JobStore, Minter, Pinner, Queue};
use latentmint_core::{EvmAddress, Job, JobId, JobState, Stage};
use latentmint_credentials::{Credentialed, LocalIdentity, Stamper};
use latentmint_diffusion::{EngineOptions, LoraSpec, OnnxGenerator};
use latentmint_embedded::{FsBlobStore, LocalContentStore, SqliteJobStore, SqliteQueue};
use latentmint_ipfs::KuboPinner;
use latentmint_stages::{Disposition, Ports, intake, process_all};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::report;

/// `latentmint run`
#[derive(clap::Args)]
pub struct RunArgs {
    /// Collection file (TOML); see examples/.
    pub collection: PathBuf,
    /// Folder for run state; each collection gets a sub-folder named after it.
    #[arg(long, default_value = ".latentmint")]
    pub data_dir: PathBuf,
    /// ONNX Runtime shared library (libonnxruntime.so, 1.31 or newer).
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_library: Option<PathBuf>,
    /// anvil binary, used when the collection names no RPC URL.
    #[arg(long, env = "LATENTMINT_ANVIL")]
    pub anvil: Option<PathBuf>,
    /// ONNX Runtime threads per operator (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Receives before a message goes to its dead-letter queue.
    #[arg(long, default_value_t = 5)]
    pub max_receives: u32,
    /// No progress bars (logs only).
    #[arg(long)]
    pub no_progress: bool,
}

/// `latentmint review`
#[derive(clap::Args)]
pub struct ReviewArgs {
    /// Collection file the job belongs to.
    pub collection: PathBuf,
    /// Job id (full, or the 8-digit prefix shown in tables).
    pub job: String,
    /// Approve (default) or reject.
    #[arg(long)]
    pub reject: bool,
    /// Instead of deciding a job awaiting review, send a failed job back to the stage that
    /// failed it, once its cause is fixed (the job is matched among the failed ones).
    #[arg(long, conflicts_with = "reject")]
    pub retry: bool,
    /// Who decides (recorded on the job).
    #[arg(long, env = "USER", default_value = "operator")]
    pub operator: String,
    /// Folder for run state.
    #[arg(long, default_value = ".latentmint")]
    pub data_dir: PathBuf,
}

/// `latentmint deploy`
#[derive(clap::Args)]
pub struct DeployArgs {
    /// Collection file: name, symbol and [chain] (rpc_url; LATENTMINT_SIGNER_KEY signs).
    pub collection: PathBuf,
    /// ERC-2981 royalty receiver (EIP-55 address).
    #[arg(long)]
    pub royalty_receiver: Option<String>,
    /// Royalty in basis points (500 = 5%).
    #[arg(long, default_value_t = 0)]
    pub royalty_bps: u16,
    /// ERC-7572 collection metadata URI.
    #[arg(long, default_value = "")]
    pub contract_uri: String,
    /// Folder for run state (the address is recorded there for `run`).
    #[arg(long, default_value = ".latentmint")]
    pub data_dir: PathBuf,
    /// Also deploy the ERC-1155 edition contract (LatentEditions) for many copies of one image
    /// (a collection with `[editions]` deploys only that one).
    #[arg(long)]
    pub editions: bool,
}

/// Where a collection's contracts live, remembered between runs.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Deployment {
    pub(crate) chain_id: u64,
    /// The LatentCollection (ERC-721) contract; absent in the folder of a collection of editions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    contract: Option<EvmAddress>,
    /// The ERC-1155 edition contract, when deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    editions: Option<EvmAddress>,
    /// The block the collection contract was deployed in (recorded since the collector's
    /// check reads the contract's events; absent in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    block: Option<u64>,
    /// The block the edition contract was deployed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    editions_block: Option<u64>,
    /// What the folder's collection mints; a collection may not switch, since its jobs already
    /// minted as one kind would be minted again as the other.
    #[serde(default)]
    pub(crate) standard: Standard,
}

/// The token standard a collection mints.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Standard {
    /// One ERC-721 token per job, on LatentCollection.
    #[default]
    Erc721,
    /// One ERC-1155 edition per job, on LatentEditions (`[editions]`).
    Erc1155,
}

impl Standard {
    pub(crate) fn of(c: &Collection) -> Self {
        if c.file.editions.is_some() { Self::Erc1155 } else { Self::Erc721 }
    }

    fn contract_name(self) -> &'static str {
        self.kind().contract_name()
    }

    /// The contract this standard mints on.
    pub(crate) fn kind(self) -> latentmint_chain::ContractKind {
        match self {
            Self::Erc721 => latentmint_chain::ContractKind::Collection,
            Self::Erc1155 => latentmint_chain::ContractKind::Editions,
        }
    }
}

/// Refuses a folder whose `deployment.json` names a contract with code other than the
/// collection's own address: one an older latentmint deployed at no fixed address.
async fn refuse_legacy_record(
    chain: &Chain,
    known: Option<&Deployment>,
    expected: EvmAddress,
    dir: &Path,
) -> anyhow::Result<()> {
    if let Some((recorded, _)) = known.and_then(Deployment::minting)
        && recorded != expected
        && chain.has_code(recorded).await?
    {
        bail!(
            "{}: names the contract {recorded}, but this collection's contract is at {expected} (its address follows from the collection and the wallet {}); an older latentmint deployed {recorded} at no fixed address, and this version cannot mint there; its jobs have other ids, so moving deployment.json away would mint the whole collection again on {expected}: give the collection a new name to start a new one, or keep the older latentmint for it",
            dir.join("deployment.json").display(),
            chain.sender()
        );
    }
    Ok(())
}

/// Refuses a collection whose jobs were minted as the other standard: its `[editions]` section
/// was added or removed after minting. Both standards' contracts have addresses of their own,
/// so without this check its jobs would be minted a second time, on the other contract.
async fn refuse_other_standard(chain: &Chain, c: &Collection, standard: Standard) -> anyhow::Result<()> {
    let (other, other_kind) = match standard {
        Standard::Erc721 => (Standard::Erc1155, latentmint_chain::ContractKind::Editions),
        Standard::Erc1155 => (Standard::Erc721, latentmint_chain::ContractKind::Collection),
    };
    let (name, symbol) = (&c.file.collection.name, &c.file.collection.symbol);
    let at = latentmint_chain::collection_address(chain.sender(), name, symbol, other_kind);
    if !chain.has_code(at).await? {
        return Ok(());
    }
    let minter = chain.minter(at, 1).with_editions(match other {
        Standard::Erc1155 => Some(latentmint_chain::EditionTerms { copies: 1, max_supply: 0 }),
        Standard::Erc721 => None,
    });
    let ids: Vec<JobId> = c.jobs()?.iter().map(|s| s.id).collect();
    let fates = minter.fates(&ids).await.map_err(|e| anyhow::anyhow!("reading {at}: {e}"))?;
    let minted = fates.iter().filter(|f| matches!(f, latentmint_core::ledger::Fate::Minted(_))).count();
    if minted > 0 {
        bail!(
            "editions: {minted} of this collection's jobs were minted as {} at {at}, and the collection file now asks for {}: they would be minted a second time; put [editions] back as it was, or give the collection a new name",
            other.contract_name(),
            standard.contract_name()
        );
    }
    Ok(())
}

impl Deployment {
    /// The record of a run's folder (`<data-dir>/<collection>/deployment.json`).
    pub(crate) fn read(run_dir: &Path) -> anyhow::Result<Self> {
        let path = run_dir.join("deployment.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{}: no deployment record; is this a run's folder?", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a deployment record", path.display()))
    }

    /// The folder's record for `chain_id`, if any, refusing one made for a collection that
    /// minted the other `standard`.
    /// A record that cannot be read is an error, never "none": it names the contract this
    /// folder's jobs were minted on, and deploying another would mint them all again there.
    fn recorded(run_dir: &Path, chain_id: u64, standard: Standard) -> anyhow::Result<Option<Self>> {
        let path = run_dir.join("deployment.json");
        let known = match std::fs::read_to_string(&path) {
            Ok(text) => Some(serde_json::from_str::<Self>(&text).map_err(|e| {
                anyhow::anyhow!(
                    "{}: unreadable ({e}); it names the contract this collection mints on: restore it (or set chain.contract to that address), or remove it only if nothing was minted, since a new contract would mint every job again",
                    path.display()
                )
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
        .filter(|d| d.chain_id == chain_id);
        if let Some(d) = &known
            && d.standard != standard
        {
            bail!(
                "editions: this run's folder {} belongs to a collection that mints on {}, and the collection file now asks for {}; jobs already minted would be minted again as the other kind, so give the collection a new name (a new folder) or put [editions] back as it was",
                run_dir.display(),
                d.standard.contract_name(),
                standard.contract_name()
            );
        }
        Ok(known)
    }

    /// Writes the record whole or not at all: a run killed mid-write must not leave half a file.
    fn write(path: &Path, d: &Self) -> anyhow::Result<()> {
        latentmint_embedded::write_atomic(path, &serde_json::to_vec_pretty(d)?)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The contract the folder's collection mints on, and its deployment block.
    pub(crate) fn minting(&self) -> Option<(EvmAddress, Option<u64>)> {
        match self.standard {
            Standard::Erc721 => self.contract.map(|c| (c, self.block)),
            Standard::Erc1155 => self.editions.map(|c| (c, self.editions_block)),
        }
    }
}

/// The anvil binary: `--anvil` / `LATENTMINT_ANVIL`, else where bootstrap.sh puts it.
pub(crate) fn anvil_path(configured: Option<&Path>) -> PathBuf {
    configured
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("infra/contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"))
}

fn slug(name: &str) -> String {
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
fn writable(dir: &Path) -> anyhow::Result<()> {
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
fn storage_fault(msg: &str) -> bool {
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
type Fault = Arc<std::sync::Mutex<Option<String>>>;

fn note_fault(fault: &Fault, msg: &str) {
    if storage_fault(msg)
        && let Ok(mut f) = fault.lock()
        && f.is_none()
    {
        *f = Some(msg.to_string());
    }
}

/// Bytes free for this process on the file system holding `dir` (`None` if it cannot tell).
fn free_bytes(dir: &Path) -> Option<u64> {
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
const MIN_FREE_BYTES: u64 = 4 * 1024 * 1024;

/// The embedded adapters of one collection's data folder.
pub(crate) struct Workspace {
    pub(crate) dir: PathBuf,
    queue: Arc<SqliteQueue>,
    jobs: Arc<SqliteJobStore>,
    blobs: Arc<FsBlobStore>,
    /// Where metadata and images are pinned: a real IPFS node, or the data folder.
    pub(crate) content: Arc<dyn Pinner>,
    _lock: File,
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

/// The chain side of a run: a node we started (if any), the connection and the minter.
pub(crate) struct ChainSetup {
    pub(crate) node: Option<LocalNode>,
    pub(crate) minter: Arc<EvmMinter>,
    /// Signs provenance records with the minting wallet's key.
    pub(crate) signer: Arc<EvmProvenanceSigner>,
    pub(crate) rpc_url: String,
    /// The contract's deployment block, where its events start (unknown for a contract named
    /// in the collection file, or recorded before the block was).
    pub(crate) deployed_block: Option<u64>,
    /// This process is the wallet's only sender while the run lasts (none on a node of our
    /// own: nobody else sends there).
    _lease: Option<WalletLease>,
}

pub(crate) async fn setup_chain(args: &RunArgs, c: &Collection, ws: &Workspace) -> anyhow::Result<ChainSetup> {
    let chain_cfg = &c.file.chain;
    // The folder's record first: a bad one stops the run before any chain is touched.
    let standard = Standard::of(c);
    let known = Deployment::recorded(&ws.dir, chain_cfg.id(), standard)?;
    let urls = chain_cfg.rpc_urls();
    let (node, urls, key) = match urls.first() {
        Some(_) if chain_cfg.kms_key_id.is_some() => (None, urls, String::new()),
        Some(_) => (None, urls, local_signer_key(chain_cfg)?),
        None => {
            let anvil = anvil_path(args.anvil.as_deref());
            std::fs::create_dir_all(ws.dir.join("chain"))?;
            let node = LocalNode::spawn(&anvil, chain_cfg.id(), Some(&ws.dir.join("chain/anvil-state.json"))).await?;
            let key = node.dev_key(0).context("anvil gave no dev key")?.to_string();
            let url = node.rpc_url.clone();
            info!(rpc = %url, chain_id = chain_cfg.id(), "started local anvil");
            (Some(node), vec![url], key)
        }
    };
    let rpc_url = urls.join(", ");
    let chain = connect(chain_cfg, &urls, &key).await?;
    let lease = match node {
        Some(_) => None,
        None => Some(WalletLease::acquire(
            &std::env::temp_dir().join("latentmint"),
            chain_cfg.id(),
            chain.sender(),
            Duration::from_secs(10),
        )?),
    };
    let (name, symbol) = (&c.file.collection.name, &c.file.collection.symbol);
    let kind = standard.kind();
    let (contract, deployed_block) = if let Some(addr) = c.contract {
        // Named in the file: it must be this very collection's contract, or its jobs would be
        // minted under another collection's positions.
        let block = chain.check_collection(addr, name, symbol, kind).await.map_err(|e| {
            anyhow::anyhow!("chain.contract: {e}; give this collection's contract, or remove chain.contract to use the one at its own address")
        })?;
        // The collection's own contract holding its jobs already: minting them here would
        // mint them a second time, on another contract.
        let own = latentmint_chain::collection_address(chain.sender(), name, symbol, kind);
        if own != addr && chain.has_code(own).await? {
            let minter = chain.minter(own, 1).with_editions(c.file.editions.map(Into::into));
            let ids: Vec<JobId> = c.jobs()?.iter().map(|s| s.id).collect();
            let minted = minter
                .fates(&ids)
                .await
                .map_err(|e| anyhow::anyhow!("reading {own}: {e}"))?
                .iter()
                .filter(|f| matches!(f, latentmint_core::ledger::Fate::Minted(_)))
                .count();
            if minted > 0 {
                bail!(
                    "chain.contract: {addr} is not where this collection's jobs were minted: {minted} of them are tokens of {own}, the collection's own contract; remove chain.contract (or set it to {own}) so they are not minted a second time"
                );
            }
        }
        (addr, Some(block))
    } else {
        // The collection's address follows from its name, symbol, standard and the wallet:
        // deployment.json only caches it, and is checked against the chain.
        let expected = latentmint_chain::collection_address(chain.sender(), name, symbol, kind);
        refuse_legacy_record(&chain, known.as_ref(), expected, &ws.dir).await?;
        refuse_other_standard(&chain, c, standard).await?;
        let located = chain.find_or_deploy(name, symbol, kind, &latentmint_chain::DeployOptions::default()).await?;
        let at = located.deployed;
        if located.deployed_now {
            info!(contract = %at.address, block = at.block, "deployed this collection's contract at its address");
        } else if known.as_ref().and_then(Deployment::minting).is_none_or(|(a, _)| a != at.address) {
            info!(contract = %at.address, block = at.block, "found this collection's contract at its address (no local record of it)");
        }
        let mut d = Deployment { chain_id: chain_cfg.id(), standard, ..Deployment::default() };
        match standard {
            Standard::Erc721 => (d.contract, d.block) = (Some(at.address), Some(at.block)),
            Standard::Erc1155 => (d.editions, d.editions_block) = (Some(at.address), Some(at.block)),
        }
        if known.as_ref().and_then(Deployment::minting) != Some((at.address, Some(at.block))) {
            Deployment::write(&ws.dir.join("deployment.json"), &d)?;
        }
        (at.address, Some(at.block))
    };
    let cap = chain_cfg.max_fee_gwei.map(|g| (g * 1e9) as u128);
    let minter = chain
        .minter(contract, chain_cfg.confirmations())
        .with_max_fee_per_gas(cap)
        .with_stuck_after(Duration::from_secs(chain_cfg.stuck_after_secs), 5)
        .with_l1_fees(chain_cfg.preset().map(|p| p.l1_fees).unwrap_or(L1Fees::None))
        .with_editions(c.file.editions.map(Into::into));
    let signer = Arc::new(chain.provenance_signer(contract));
    Ok(ChainSetup { node, minter: Arc::new(minter), signer, rpc_url, deployed_block, _lease: lease })
}

/// The chain is the truth about mints: before anything is generated or minted, the job store
/// is made to agree with it (`latentmint_stages::reconcile`). A job the chain holds a token for
/// takes the chain's word (and its content, where this folder's content store has it); a job
/// whose position holds another job's token stops the run here, before anything is done.
/// Returns the jobs of `specs` already on chain.
async fn reconcile(
    ports: &Ports,
    specs: &[latentmint_core::JobSpec],
) -> anyhow::Result<std::collections::BTreeSet<JobId>> {
    let started = Instant::now();
    let found = latentmint_stages::reconcile::reconcile(ports, specs)
        .await
        .map_err(|e| anyhow::anyhow!("reading what the chain holds of this collection: {e}"))?;
    if !found.conflicts.is_empty() {
        let lines: Vec<String> = found
            .conflicts
            .iter()
            .take(5)
            .map(|(id, holder)| {
                let spec = specs.iter().find(|s| s.id == *id);
                let place = spec.map_or_else(String::new, |s| format!("prompts[{}] copy {}: ", s.index, s.copy));
                format!("  {place}{}", latentmint_core::ledger::position_taken(*id, holder))
            })
            .collect();
        let more = found.conflicts.len().saturating_sub(5);
        bail!(
            "this collection file does not match what its contract holds: {} of its jobs sit at positions minted for other jobs\n{}{}\nnothing was generated or minted",
            found.conflicts.len(),
            lines.join("\n"),
            if more > 0 { format!("\n  … and {more} more") } else { String::new() }
        );
    }
    let ours: std::collections::BTreeSet<JobId> = specs.iter().map(|s| s.id).collect();
    let on_chain: std::collections::BTreeSet<JobId> =
        found.on_chain.iter().copied().filter(|id| ours.contains(id)).collect();
    if !found.adopted.is_empty() {
        eprintln!(
            "latentmint: found {} job{} of this collection already minted on chain that this folder did not know (in {:.1}s); their records now say what the chain says",
            found.adopted.len(),
            if found.adopted.len() == 1 { "" } else { "s" },
            started.elapsed().as_secs_f64()
        );
    }
    if !found.unrecovered.is_empty() {
        eprintln!(
            "latentmint: {} of them cannot be shown or checked from this folder (their tokens exist; their content is not in its content store):",
            found.unrecovered.len()
        );
        for (id, why) in found.unrecovered.iter().take(5) {
            eprintln!("  job {}: {why}", id.short());
        }
        if found.unrecovered.len() > 5 {
            eprintln!("  … and {} more", found.unrecovered.len() - 5);
        }
    }
    if !found.lost.is_empty() {
        warn!(jobs = found.lost.len(), "tokens missing from this chain (a reset local chain): minting them again");
    }
    Ok(on_chain)
}

fn visibility(stage: Stage) -> Duration {
    match stage {
        // A real SD model on CPU can take minutes per image.
        Stage::Generate => Duration::from_secs(900),
        _ => Duration::from_secs(120),
    }
}

/// What the mint worker receives at most at once, and so mints together (`chain.batch_size`);
/// every other stage takes one message at a time.
fn receive_max(stage: Stage, batch: usize) -> usize {
    if stage == Stage::Mint { batch.max(1) } else { 1 }
}

/// The mint messages of one batch: after the first, more are gathered while jobs are still on
/// their way (some stage before the mint has work) until the batch is full, so a collection
/// run locally is minted in as few transactions as its batch size allows. A short pause with
/// nothing upstream ends the gathering, and it never lasts more than a minute.
async fn gather(
    ports: &Ports,
    mut got: Vec<latentmint_core::ports::Delivery>,
    batch: usize,
) -> Vec<latentmint_core::ports::Delivery> {
    let started = Instant::now();
    let mut quiet = 0;
    while got.len() < batch && quiet < 5 && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let more = ports.queue.receive(Stage::Mint.queue(), batch - got.len(), visibility(Stage::Mint)).await;
        let more = more.unwrap_or_default();
        let mut upstream = false;
        for s in [Stage::Generate, Stage::Review, Stage::Publish] {
            upstream |= ports.queue.stats(s.queue()).await.is_ok_and(|st| st.visible + st.in_flight > 0);
        }
        quiet = if more.is_empty() && !upstream { quiet + 1 } else { 0 };
        got.extend(more);
    }
    got
}

/// One consumer of one stage queue, until `stop` turns true. A storage fault it meets is noted
/// in `fault`, which stops the run.
async fn worker(ports: Ports, stage: Stage, batch: usize, mut stop: watch::Receiver<bool>, fault: Fault) {
    let queue = ports.queue.clone();
    loop {
        if *stop.borrow() {
            return;
        }
        let deliveries = match queue.receive(stage.queue(), receive_max(stage, batch), visibility(stage)).await {
            Ok(d) => d,
            Err(e) => {
                note_fault(&fault, &e.to_string());
                warn!(queue = stage.queue(), "receive failed: {e}");
                Vec::new()
            }
        };
        if deliveries.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let deliveries =
            if receive_max(stage, batch) > 1 { gather(&ports, deliveries, batch).await } else { deliveries };
        let dispositions = process_all(&ports, stage, &deliveries, receive_max(stage, batch)).await;
        for (d, disposition) in deliveries.into_iter().zip(dispositions) {
            let result = match disposition {
                Disposition::Ack(_) => queue.ack(stage.queue(), &d.receipt).await,
                Disposition::Retry(delay, why) => {
                    note_fault(&fault, &why);
                    warn!(queue = stage.queue(), attempt = d.receive_count, "retrying in {delay:?}: {why}");
                    queue.nack(stage.queue(), &d.receipt, delay).await
                }
            };
            if let Err(e) = result {
                note_fault(&fault, &e.to_string());
                warn!(queue = stage.queue(), "could not settle a message (it will be redelivered): {e}");
            }
        }
    }
}

fn bar(mp: &MultiProgress, len: u64, label: &str) -> ProgressBar {
    let pb = mp.add(ProgressBar::new(len));
    pb.set_style(
        ProgressStyle::with_template("{prefix:>9} [{bar:32.cyan/blue}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_prefix(label.to_string());
    pb
}

/// `latentmint run`: the whole pipeline for one collection file.
/// The collection's generator: the SageMaker endpoint first when one is configured, the local
/// ONNX engine (the fallback) always.
pub(crate) async fn build_generator(args: &RunArgs, collection: &Collection) -> anyhow::Result<Arc<dyn Generator>> {
    let base = args.collection.parent().unwrap_or(Path::new("."));
    let model_dir = base.join(&collection.file.generation.model);

    let opts = EngineOptions {
        ort_library: args.ort_library.clone(),
        intra_threads: args.threads,
        cuda: false,
        parallel_cfg: None,
        loras: collection
            .file
            .generation
            .lora
            .iter()
            .map(|l| LoraSpec { path: base.join(&l.path), scale: l.scale })
            .collect(),
    };
    // Each adapter file first, under its own field: a missing one is not a model problem.
    for (i, l) in collection.file.generation.lora.iter().enumerate() {
        let path = base.join(&l.path);
        if !path.is_file() {
            bail!(
                "generation.lora[{i}].path: {} does not exist; give the adapter's .safetensors file, relative to the collection file",
                path.display()
            );
        }
    }
    let model_for_load = model_dir.clone();
    let onnx = tokio::task::spawn_blocking(move || OnnxGenerator::load(&model_for_load, &opts))
        .await?
        .with_context(|| format!("generation.model ({})", model_dir.display()))?;
    let g = &collection.file.generation;
    onnx.check_size(g.width, g.height).map_err(|e| anyhow::anyhow!("generation.{e}"))?;
    Ok(match &collection.file.generation.endpoint {
        // Endpoint first; the local engine is the fallback and provenance says which ran.
        Some(ep) => Arc::new(FallbackGenerator::new(
            Some((ep.clone(), Arc::new(sagemaker(ep, &collection.file.generation).await?))),
            Arc::new(onnx),
            RetryPolicy::default(),
            CircuitBreaker::new(3, Duration::from_secs(60)),
        )),
        None => Arc::new(onnx),
    })
}

/// Where a run keeps its Content Credentials identity (development CA and signing certificate).
pub(crate) fn credentials_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("c2pa")
}

/// `generator` with Content Credentials: each image leaves generation with a C2PA manifest
/// signed by the run's own development identity (made on the first run, reused on resume).
pub(crate) fn with_credentials(
    generator: Arc<dyn Generator>,
    ws: &Workspace,
    collection: &Collection,
) -> anyhow::Result<Arc<dyn Generator>> {
    let identity = LocalIdentity::load_or_create(&credentials_dir(&ws.dir), &collection.file.collection.name)?;
    let stamper = Stamper::local(Arc::new(identity), "latentmint")?;
    Ok(Arc::new(Credentialed::new(generator, Arc::new(stamper))))
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let collection = load_collection(&args.collection)?;
    let specs = collection.jobs()?;
    // The model first: a bad model folder fails the run before anything is written.
    let generator = build_generator(&args, &collection).await?;
    let ws = Workspace::open(&args.data_dir, &collection, args.max_receives)?;
    let generator = with_credentials(generator, &ws, &collection)?;
    let released = ws.queue.release_in_flight()?;
    if released > 0 {
        info!(released, "resuming: messages of the previous run are visible again");
    }
    let chain = setup_chain(&args, &collection, &ws).await?;

    let ports = Ports {
        queue: ws.queue.clone(),
        jobs: ws.jobs.clone(),
        blobs: ws.blobs.clone(),
        generator,
        pinner: ws.content.clone(),
        minter: chain.minter.clone(),
        signer: chain.signer.clone(),
    };
    let minted_before = reconcile(&ports, &specs).await?;
    // Submitting again sends each unsettled job on to the stage it waits for: a job whose
    // message was dead-lettered in an earlier run (a paused contract, an RPC down) resumes.
    let (mut fresh, mut resumed) = (0, 0);
    for spec in specs.iter().cloned() {
        match intake::submit(&ports, spec).await? {
            intake::Intake::Queued => fresh += 1,
            intake::Intake::Requeued(_) => resumed += 1,
            intake::Intake::Known(_) => {}
        }
    }
    let ids: Vec<JobId> = specs.iter().map(|s| s.id).collect();
    let resumed = if resumed > 0 { format!(", {resumed} resumed") } else { String::new() };
    eprintln!(
        "latentmint: {} jobs ({} new{resumed}) from {} · contract {} on chain {} ({})",
        ids.len(),
        fresh,
        args.collection.display(),
        chain.minter.address(),
        collection.file.chain.id(),
        latentmint_core::redact::redact_urls(&chain.rpc_url)
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let batch = collection.file.chain.batch_size as usize;
    let fault: Fault = Arc::default();
    let workers: Vec<_> = Stage::ALL
        .into_iter()
        .map(|s| tokio::spawn(worker(ports.clone(), s, batch, stop_rx.clone(), fault.clone())))
        .collect();

    let mp = MultiProgress::with_draw_target(if args.no_progress {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let gen_bar = bar(&mp, ids.len() as u64, "generated");
    let done_bar = bar(&mp, ids.len() as u64, "settled");
    let mut idle_since: Option<Instant> = None;
    let mut stopped_by: Option<String> = None;
    let interrupted = loop {
        // A full disk or a read-only folder: no retry helps, so the run stops and says why.
        if let Some(free) = free_bytes(&ws.dir).filter(|f| *f < MIN_FREE_BYTES) {
            stopped_by = Some(format!("the disk holding it has {} KiB free", free / 1024));
        } else if let Some(f) = fault.lock().ok().and_then(|f| f.clone()) {
            stopped_by = Some(f);
        }
        if stopped_by.is_some() {
            break false;
        }
        let states = match job_states(ws.jobs.as_ref(), &ids).await {
            Ok(s) => s,
            Err(e) if storage_fault(&e.to_string()) => {
                stopped_by = Some(e.to_string());
                break false;
            }
            Err(e) => return Err(e),
        };
        let generated = states.values().filter(|s| !matches!(s, JobState::Queued | JobState::Generating)).count();
        let settled = states.values().filter(|s| s.is_final() || **s == JobState::AwaitingReview).count();
        gen_bar.set_position(generated as u64);
        done_bar.set_position(settled as u64);
        let minted = states.values().filter(|s| **s == JobState::Minted).count();
        done_bar.set_message(format!("{minted} minted"));
        if settled == ids.len() {
            break false;
        }
        // Nothing queued or in flight yet jobs unsettled: their messages are dead-lettered.
        let mut busy = false;
        for s in Stage::ALL {
            let st = ws.queue.stats(s.queue()).await?;
            busy |= st.visible + st.in_flight > 0;
        }
        if busy {
            idle_since = None;
        } else if idle_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(3) {
            warn!(
                "no work left in any queue but some jobs are unsettled: their messages ran out of retries \
                 (see the dead-letter queues); run again to resume them"
            );
            break false;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = tokio::signal::ctrl_c() => break true,
        }
    };
    gen_bar.finish();
    done_bar.finish();
    let _ = stop_tx.send(true);
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
    }
    if let Some(why) = stopped_by {
        if let Some(node) = chain.node {
            node.stop().await;
        }
        eprintln!(
            "latentmint: stopped: the data folder {} cannot be written ({why}).\nFree space on its disk (or make it writable), then run the same command again: nothing is lost, every job waits where it stopped, and nothing is minted twice.",
            ws.dir.display()
        );
        return Ok(ExitCode::from(3));
    }

    let jobs = load_jobs(ws.jobs.as_ref(), &ids).await?;
    let editions = collection.file.editions.is_some();
    println!("{}", report::table(&jobs, if editions { "edition" } else { "token" }));
    let mut sheet = Vec::new();
    for j in &jobs {
        let png = match &j.image_key {
            Some(k) => ws.blobs.get(k).await.ok(),
            None => None,
        };
        sheet.push((j.clone(), png));
    }
    let sheet_path = ws.dir.join("contact-sheet.png");
    report::contact_sheet(&sheet, &sheet_path)?;
    let manifest_path = ws.dir.join("tokens.json");
    let contract = (chain.minter.address(), chain.deployed_block);
    let copies = collection.file.editions.map(|e| e.copies);
    report::manifest(&jobs, collection.file.chain.id(), contract, copies, &manifest_path)?;

    let verified = verify(&jobs, &chain, ws.content.as_ref()).await;
    let counts = jobs.iter().fold(BTreeMap::new(), |mut m, j| {
        *m.entry(j.state).or_insert(0usize) += 1;
        m
    });
    let summary = counts.iter().map(|(s, n)| format!("{n} {s}")).collect::<Vec<_>>().join(", ");
    println!("{summary} in {:.1}s (in total)", started.elapsed().as_secs_f64());
    // This run's mints apart from what the chain held when it started (earlier runs, other
    // folders): the cost line counts only what this run paid.
    let this_run: Vec<Job> =
        jobs.iter().filter(|j| j.state == JobState::Minted && !minted_before.contains(&j.id())).cloned().collect();
    let earlier = jobs.iter().filter(|j| j.state == JobState::Minted && minted_before.contains(&j.id())).count();
    println!(
        "this run: {} minted{}",
        this_run.len(),
        if earlier > 0 {
            format!("; {earlier} were on chain already, minted by an earlier run")
        } else {
            String::new()
        }
    );
    if let Some(line) = mint_cost(&this_run, &chain.minter).await {
        println!("{line}");
    }
    match &verified {
        Ok(Verified { tokens: n, held, .. }) if editions => println!(
            "verified on chain: {n} editions ({held} with every copy still held by its recipient), uri -> metadata CID -> image CID all match the bytes, every provenance record signed for this contract by a wallet that held its role when the edition was created"
        ),
        Ok(Verified { tokens: n, held, .. }) => println!(
            "verified on chain: {n} tokens ({held} held by their recipients), tokenURI -> metadata CID -> image CID all match the bytes, every provenance record signed for this contract by a wallet that held its role when the record was set"
        ),
        Err(e) => println!("VERIFICATION FAILED: {}", latentmint_core::redact::redact_urls(&format!("{e:#}"))),
    }
    if let Ok(v) = &verified
        && !v.unchecked.is_empty()
    {
        println!(
            "not checked here: {} token{} found on chain whose content this folder does not have (an earlier data folder held it; check them with `latentmint verify` against the IPFS node that has it): {}",
            v.unchecked.len(),
            if v.unchecked.len() == 1 { "" } else { "s" },
            v.unchecked.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
                + if v.unchecked.len() > 3 { ", …" } else { "" }
        );
    }
    println!("contact sheet: {}", sheet_path.display());
    println!(
        "content credentials: every image carries a C2PA manifest signed under {} (this run's development CA)",
        credentials_dir(&ws.dir).join("ca.pem").display()
    );
    let from = chain.deployed_block.map(|b| format!(" --from-block {b}")).unwrap_or_default();
    println!("tokens: {} (whole ids, for `latentmint verify --token <id>{from}`)", manifest_path.display());
    println!("state: {} (run again to resume; `latentmint review` decides jobs awaiting review)", ws.dir.display());
    if let Some(node) = chain.node {
        node.stop().await;
    }
    if interrupted {
        eprintln!("interrupted: run the same command again to finish the batch");
        return Ok(ExitCode::from(130));
    }
    let failed = counts.get(&JobState::Failed).copied().unwrap_or(0);
    let unsettled = jobs.iter().filter(|j| !(j.state.is_final() || j.state == JobState::AwaitingReview)).count();
    Ok(if failed > 0 || unsettled > 0 || verified.is_err() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// What minting the run's tokens cost: their transactions and the gas the receipts show
/// (`chain.batch_size` above 1 puts many tokens in one transaction). `None` when nothing was
/// minted or a receipt cannot be read.
async fn mint_cost(jobs: &[Job], minter: &EvmMinter) -> Option<String> {
    let minted: Vec<&Job> = jobs.iter().filter(|j| j.state == JobState::Minted).collect();
    let txs: std::collections::BTreeSet<&str> = minted.iter().filter_map(|j| j.tx_hash.as_deref()).collect();
    if txs.is_empty() {
        return None;
    }
    let mut gas = 0u64;
    for tx in &txs {
        gas += minter.gas_used(tx).await.ok()??;
    }
    let tokens = minted.iter().filter(|j| j.tx_hash.is_some()).count();
    Some(format!(
        "minting (this run): {tokens} tokens in {} transaction{}, {gas} gas ({} per token)",
        txs.len(),
        if txs.len() == 1 { "" } else { "s" },
        gas / tokens as u64
    ))
}

async fn job_states(store: &dyn JobStore, ids: &[JobId]) -> anyhow::Result<BTreeMap<JobId, JobState>> {
    let wanted: std::collections::BTreeSet<_> = ids.iter().collect();
    Ok(store.list(None).await?.into_iter().filter(|j| wanted.contains(&j.id())).map(|j| (j.id(), j.state)).collect())
}

async fn load_jobs(store: &dyn JobStore, ids: &[JobId]) -> anyhow::Result<Vec<Job>> {
    let mut out = Vec::new();
    for id in ids {
        if let Some(j) = store.get(*id).await? {
            out.push(j);
        }
    }
    Ok(out)
}

/// Re-checks every minted token from the chain inwards, as a collector would
/// ([`TokenReader::verify`]: content against CIDs, the signed record, the signer's role, the
/// token's job), and that it points at what the job published (or at an evolution of it, after
/// `latentmint live`). Returns the tokens checked and how many of them their recipients still
/// hold (a collector may have sold one since).
async fn verify(jobs: &[Job], chain: &ChainSetup, content: &dyn Pinner) -> anyhow::Result<Verified> {
    let minter = &chain.minter;
    let reader = TokenReader::on(minter.contract().provider().clone(), minter.address())
        .await?
        .from_block(chain.deployed_block.unwrap_or(0));
    // Every job that owns more than one token on the contract, whichever paths minted it.
    let duplicates = reader.duplicates().await?;
    if let Some(d) = duplicates.first() {
        bail!(
            "{d}{}",
            if duplicates.len() > 1 { format!(" (and {} more)", duplicates.len() - 1) } else { String::new() }
        );
    }
    let (mut n, mut held) = (0, 0);
    let mut unchecked = Vec::new();
    for j in jobs.iter().filter(|j| j.state == JobState::Minted) {
        let token = j.token_id.as_deref().context("minted job without token id")?;
        // Found on chain by a run that lost its data folder, and its content with it: the
        // token is real, but nothing here can show its bytes (said above, and counted).
        if j.content_missing.is_some() {
            unchecked.push(token.to_string());
            continue;
        }
        let report = reader.verify(token, content).await?;
        if let Some(c) = report.checks.iter().find(|c| !c.ok) {
            bail!("token {token}: {}: {}", c.what, c.detail);
        }
        held += usize::from(match report.owner {
            Some(owner) => owner == j.spec.recipient,
            // An edition counts as held while the recipient keeps every copy it was minted.
            None => {
                let copies = chain.minter.editions().map_or(1, |t| t.copies);
                reader.edition_balance(j.spec.recipient, token).await? >= copies
            }
        });
        // A batch token's metadata is an entry of its batch's directory, found by the reader.
        let evolved = report.metadata.as_ref().is_some_and(|m| m.provenance.evolution.is_some());
        if report.metadata_cid != j.metadata_cid && !evolved {
            bail!(
                "token {token}: tokenURI {} leads to metadata {:?}, the job published {:?}",
                report.token_uri,
                report.metadata_cid,
                j.metadata_cid
            );
        }
        n += 1;
    }
    Ok(Verified { tokens: n, held, unchecked })
}

/// What the run's own check of its tokens found.
struct Verified {
    /// Tokens checked from the chain inwards.
    tokens: usize,
    /// Of those, held by their recipients.
    held: usize,
    /// Tokens found on chain whose content this folder does not have.
    unchecked: Vec<String>,
}

/// `latentmint review`: an operator's decision from the command line.
pub async fn review(args: ReviewArgs) -> anyhow::Result<ExitCode> {
    let collection = load_collection(&args.collection)?;
    let dir = args.data_dir.join(slug(&collection.file.collection.name));
    let db = dir.join("pipeline.db");
    if !db.exists() {
        bail!("no run state at {}: run `latentmint run {}` first", dir.display(), args.collection.display());
    }
    run_dir(&args.data_dir, &collection)?;
    let queue = SqliteQueue::open(&db, 5)?;
    let jobs = SqliteJobStore::open(&db)?;
    let (among, what) =
        if args.retry { (JobState::Failed, "failed") } else { (JobState::AwaitingReview, "awaiting review") };
    // A prefix of the job id, as tables show it: never empty (it would match every job).
    let prefix = args.job.trim().trim_start_matches("0x").to_lowercase();
    if prefix.len() < 4 || prefix.len() > 64 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!(
            "job: `{}` is not a job id; give the job's id or at least its first 4 hex digits, as tables show it (`latentmint-tui` or tokens.json list them)",
            args.job
        );
    }
    let operator = latentmint_core::sanitize::clean_operator("--operator", &args.operator)?;
    let candidates = jobs.list(Some(among)).await?;
    let matches: Vec<&Job> = candidates.iter().filter(|j| j.id().to_string().starts_with(&prefix)).collect();
    let job = match matches.as_slice() {
        [one] => *one,
        [] => bail!("no job {what} matches `{}` ({} {what})", args.job, candidates.len()),
        _ => bail!("`{}` matches {} jobs {what}; give more digits", args.job, matches.len()),
    };
    if args.retry {
        let why = job.error.clone().unwrap_or_default();
        let stage = latentmint_stages::intake::retry(&jobs, &queue, job.id()).await?;
        println!(
            "job {} (failed: {why}) goes back to the {} stage; run `latentmint run {}` to continue",
            job.id().short(),
            stage.queue(),
            args.collection.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let state = latentmint_stages::review::decide(&jobs, &queue, job.id(), !args.reject, &operator).await?;
    println!("job {} is now {state}; run `latentmint run {}` to continue", job.id().short(), args.collection.display());
    Ok(ExitCode::SUCCESS)
}

/// `latentmint deploy`: deploys the collection's contract to its configured chain and records
/// the address where `latentmint run` finds it.
pub async fn deploy(args: DeployArgs) -> anyhow::Result<ExitCode> {
    let collection = load_collection(&args.collection)?;
    let chain_cfg = &collection.file.chain;
    let urls = chain_cfg.rpc_urls();
    if urls.is_empty() {
        bail!("chain.rpc_url: deploy needs the chain's RPC URL in the collection file");
    }
    let key = if chain_cfg.kms_key_id.is_some() { String::new() } else { local_signer_key(chain_cfg)? };
    let receiver = match &args.royalty_receiver {
        Some(a) => Some(EvmAddress::parse_checksummed(a).map_err(|e| anyhow::anyhow!("--royalty-receiver: {e}"))?),
        None => None,
    };
    // Before anything is paid: the folder the address is recorded in must be this collection's,
    // and of the standard it mints.
    let dir = run_dir(&args.data_dir, &collection)?;
    let known = Deployment::recorded(&dir, chain_cfg.id(), Standard::of(&collection))?;
    let chain = connect(chain_cfg, &urls, &key).await?;
    let (name, symbol) = (&collection.file.collection.name, &collection.file.collection.symbol);
    let expected = latentmint_chain::collection_address(chain.sender(), name, symbol, Standard::of(&collection).kind());
    refuse_legacy_record(&chain, known.as_ref(), expected, &dir).await?;
    let opts = latentmint_chain::DeployOptions {
        royalty_receiver: receiver,
        royalty_bps: args.royalty_bps,
        contract_uri: args.contract_uri.clone(),
    };
    let standard = Standard::of(&collection);
    let record = dir.join("deployment.json");
    let mut d = Deployment { chain_id: chain_cfg.id(), standard, ..Deployment::default() };
    let say = |kind: latentmint_chain::ContractKind, l: &latentmint_chain::Located| {
        let how = if l.deployed_now { "deployed" } else { "already deployed" };
        println!(
            "{} {how} at {} on chain {} (block {}); the address follows from the collection and the wallet {}",
            kind.contract_name(),
            l.deployed.address,
            chain_cfg.id(),
            l.deployed.block,
            chain.sender()
        );
    };
    // A collection of editions mints on LatentEditions only; `--editions` adds one beside an
    // ERC-721 collection's LatentCollection. Each lives at its collection's own address.
    if standard == Standard::Erc721 {
        let kind = latentmint_chain::ContractKind::Collection;
        let l = chain.find_or_deploy(name, symbol, kind, &opts).await?;
        say(kind, &l);
        (d.contract, d.block) = (Some(l.deployed.address), Some(l.deployed.block));
    }
    if args.editions || standard == Standard::Erc1155 {
        let kind = latentmint_chain::ContractKind::Editions;
        let l = chain.find_or_deploy(name, symbol, kind, &opts).await?;
        say(kind, &l);
        (d.editions, d.editions_block) = (Some(l.deployed.address), Some(l.deployed.block));
    }
    Deployment::write(&record, &d)?;
    println!(
        "recorded in {} (a cache: `latentmint run` finds the contract at its address without it)",
        record.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The SageMaker generator for `endpoint`: real-time, or asynchronous through S3 when the
/// collection names a staging location.
async fn sagemaker(
    endpoint: &str,
    g: &latentmint_core::collection::GenerationSection,
) -> anyhow::Result<SageMakerGenerator> {
    let sm = SageMakerGenerator::from_env(endpoint).await;
    let Some(url) = &g.endpoint_async_input else { return Ok(sm) };
    let input = S3Location::parse("generation.endpoint_async_input", url)?;
    let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let s3 = aws_sdk_s3::Client::new(&cfg);
    Ok(sm.with_async(AsyncInvocation::new(s3, input, Duration::from_secs(g.endpoint_async_timeout_secs))))
}

/// The raw key for a local dev chain, from the environment (never from a file, never logged).
fn local_signer_key(chain_cfg: &ChainSection) -> anyhow::Result<String> {
    if !chain_cfg.is_local() {
        bail!(
            "chain.kms_key_id: chain {} is not a local dev chain, so transactions are signed through AWS KMS; set chain.kms_key_id to an ECC_SECG_P256K1 key (raw private keys are for local chains only)",
            chain_cfg.id()
        );
    }
    std::env::var("LATENTMINT_SIGNER_KEY")
        .context("chain.rpc_url is set, so a signer is needed: export LATENTMINT_SIGNER_KEY (a local dev key, e.g. one anvil prints)")
}

/// Connects with the KMS key when one is configured, else with the local key.
async fn connect(chain_cfg: &ChainSection, urls: &[String], key: &str) -> anyhow::Result<Chain> {
    Ok(match &chain_cfg.kms_key_id {
        Some(id) => {
            let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
            let signer = KmsSigner::new(aws_sdk_kms::Client::new(&cfg), id.clone(), Some(chain_cfg.id())).await?;
            info!(address = %signer.address(), "signing through KMS");
            Chain::connect_signer(urls, signer, chain_cfg.id()).await?
        }
        None => Chain::connect_any(urls, key, chain_cfg.id()).await?,
    })
}
