//! `latentmint deploy`: the collection's contract at its own address, without running anything.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use latentmint_core::EvmAddress;

use crate::chain_setup::{Deployment, Standard, refuse_legacy_record};
use crate::wiring::{connect, local_signer_key};
use crate::workspace::{load_collection, run_dir};

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
