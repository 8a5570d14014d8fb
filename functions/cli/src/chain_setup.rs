//! The chain side of a run: the node (a local anvil or the configured RPC URLs), the wallet's
//! lease, and the collection's contract at its own address, found or deployed there and checked
//! against `deployment.json`, which only caches it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use latentmint_chain::{AnyMinter, Chain, EditionTerms, EvmProvenanceSigner, LocalNode, SendPolicy, WalletLease};
use latentmint_core::collection::Collection;
use latentmint_core::{EvmAddress, JobId};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::args::RunArgs;
use crate::wiring::{connect, local_signer_key};
use crate::workspace::{Workspace, anvil_path};

/// Where a collection's contracts live, remembered between runs.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Deployment {
    pub(crate) chain_id: u64,
    /// The LatentCollection (ERC-721) contract; absent in the folder of a collection of editions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) contract: Option<EvmAddress>,
    /// The ERC-1155 edition contract, when deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) editions: Option<EvmAddress>,
    /// The block the collection contract was deployed in (recorded since the collector's
    /// check reads the contract's events; absent in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) block: Option<u64>,
    /// The block the edition contract was deployed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) editions_block: Option<u64>,
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

    pub(crate) fn contract_name(self) -> &'static str {
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
pub(crate) async fn refuse_legacy_record(
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
pub(crate) async fn refuse_other_standard(chain: &Chain, c: &Collection, standard: Standard) -> anyhow::Result<()> {
    let (other, other_kind) = match standard {
        Standard::Erc721 => (Standard::Erc1155, latentmint_chain::ContractKind::Editions),
        Standard::Erc1155 => (Standard::Erc721, latentmint_chain::ContractKind::Collection),
    };
    let (name, symbol) = (&c.file.collection.name, &c.file.collection.symbol);
    let at = latentmint_chain::collection_address(chain.sender(), name, symbol, other_kind);
    if !chain.has_code(at).await? {
        return Ok(());
    }
    let minter = chain.minter_for(
        at,
        match other {
            Standard::Erc1155 => Some(EditionTerms { copies: 1, max_supply: 0 }),
            Standard::Erc721 => None,
        },
        SendPolicy::confirmations(1),
    );
    let ids: Vec<JobId> = c.jobs()?.iter().map(|s| s.id).collect();
    let fates = minter.port().fates(&ids).await.map_err(|e| anyhow::anyhow!("reading {at}: {e}"))?;
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
    pub(crate) fn recorded(run_dir: &Path, chain_id: u64, standard: Standard) -> anyhow::Result<Option<Self>> {
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
    pub(crate) fn write(path: &Path, d: &Self) -> anyhow::Result<()> {
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

/// The chain side of a run: a node we started (if any), the connection and the minter.
pub(crate) struct ChainSetup {
    pub(crate) node: Option<LocalNode>,
    pub(crate) chain: Chain,
    /// The minter the collection's standard asks for.
    pub(crate) minter: AnyMinter,
    /// Signs provenance records with the minting wallet's key.
    pub(crate) signer: Arc<EvmProvenanceSigner>,
    pub(crate) rpc_url: String,
    /// The contract's deployment block, where its events start (unknown for a contract named
    /// in the collection file, or recorded before the block was).
    pub(crate) deployed_block: Option<u64>,
    /// This process is the wallet's only sender while the run lasts (none on a node of our
    /// own: nobody else sends there).
    pub(crate) _lease: Option<WalletLease>,
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
            let minter = chain.minter_for(own, c.file.editions.map(Into::into), SendPolicy::confirmations(1));
            let ids: Vec<JobId> = c.jobs()?.iter().map(|s| s.id).collect();
            let minted = minter
                .port()
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
    let minter = chain.minter_for(contract, c.file.editions.map(Into::into), SendPolicy::for_chain(chain_cfg));
    let signer = Arc::new(chain.provenance_signer(contract));
    Ok(ChainSetup { node, chain, minter, signer, rpc_url, deployed_block, _lease: lease })
}
