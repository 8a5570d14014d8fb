//! `latentmint verify`: a collector's check of a token, from the chain inwards, with no key and
//! no trust in where the content comes from (see `latentmint_chain::TokenReader`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use latentmint_core::EvmAddress;
use latentmint_core::ports::Pinner;

/// Arguments of `latentmint verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The chain's JSON-RPC URL (repeat for fallbacks).
    #[arg(long = "rpc-url", required = true)]
    rpc_urls: Vec<String>,
    /// The collection contract (EIP-55 or lower case).
    #[arg(long)]
    contract: String,
    /// The token id (decimal, as marketplaces and explorers show it).
    #[arg(long)]
    token: String,
    /// Fetch content from an IPFS node's RPC API (kubo's, e.g. http://127.0.0.1:5001).
    #[arg(long, conflicts_with = "ipfs_dir", required_unless_present = "ipfs_dir")]
    ipfs_api: Option<String>,
    /// Fetch content from a local content store (a run's `.latentmint/<collection>/ipfs`).
    #[arg(long)]
    ipfs_dir: Option<PathBuf>,
    /// Read the contract's events (role grants, mints, metadata updates) from this block on:
    /// the block it was deployed at, for RPCs that limit the range of a log query.
    #[arg(long, default_value_t = 0)]
    from_block: u64,
    /// Make the image again with this model folder from the signed record (prompt, seed,
    /// parameters; the parent image for an evolution) and compare the pixels.
    #[arg(long, value_name = "MODEL_DIR")]
    reproduce_with: Option<PathBuf>,
    /// A LoRA adapter the record names (safetensors); repeat for each. Its strength is the
    /// record's.
    #[arg(long, requires = "reproduce_with")]
    lora: Vec<PathBuf>,
}

/// Prints every check; exit status 0 when all hold, 1 when one does not.
pub async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let contract = EvmAddress::parse_any_case(&args.contract).map_err(|e| anyhow::anyhow!("--contract: {e}"))?;
    anyhow::ensure!(
        !args.token.is_empty() && args.token.chars().all(|c| c.is_ascii_digit()),
        "--token: `{}` is not a token id; give it in decimal, as explorers and marketplaces show it",
        args.token
    );
    if let Some(dir) = &args.reproduce_with {
        anyhow::ensure!(
            dir.join("model_index.json").is_file(),
            "--reproduce-with: {} is not a model folder (no model_index.json); give the model the record names",
            dir.display()
        );
    }
    let content: Box<dyn Pinner> = match (&args.ipfs_api, &args.ipfs_dir) {
        (Some(api), _) => Box::new(latentmint_ipfs::KuboPinner::new(api, None).context("--ipfs-api")?),
        (None, Some(dir)) => {
            anyhow::ensure!(dir.is_dir(), "--ipfs-dir: {} is not a folder", dir.display());
            Box::new(latentmint_embedded::LocalContentStore::new(dir))
        }
        (None, None) => anyhow::bail!("give --ipfs-api or --ipfs-dir: where the token's content can be fetched"),
    };
    let reader = latentmint_chain::TokenReader::connect(&args.rpc_urls, contract).await.map_err(|e| match e {
        latentmint_chain::ChainError::Rpc(m) => anyhow::anyhow!("--rpc-url: the chain could not be read ({m})"),
        other => anyhow::anyhow!("--contract: {other}"),
    })?;
    let reader = reader.from_block(args.from_block);
    let mut report = reader.verify(&args.token, content.as_ref()).await?;
    // Made again only from a record that checked out: a failed check above already says why
    // the token is not verified.
    let reproduced = match (&args.reproduce_with, &report.metadata) {
        (Some(dir), Some(meta)) if report.passed() => {
            let generator = crate::reproduce::load_generator(dir, &args.lora, meta)?;
            crate::reproduce::reproduce(&mut report, &generator, content.as_ref()).await?;
            true
        }
        _ => false,
    };
    println!("token {} on {contract} (chain {}), owned by {}", report.token_id, reader.chain_id(), report.owner);
    println!("tokenURI {}", report.token_uri);
    for c in &report.checks {
        println!("{} {}: {}", if c.ok { "ok  " } else { "FAIL" }, c.what, c.detail);
    }
    if let Some(m) = &report.metadata {
        let p = &m.provenance;
        println!(
            "record: model {} (sha256 {}) · seed {} · {} steps · {} · prompt \"{}\"",
            p.model.id, p.model.sha256, p.seed, p.steps, p.scheduler, p.prompt
        );
        if let Some(e) = &p.evolution {
            println!("evolution {} of {}, grown on transfer {}", e.generation, e.parent_metadata, e.trigger.tx_hash);
        }
    }
    if args.reproduce_with.is_some() && !reproduced {
        println!("not made again: the checks above must hold first");
    }
    if report.passed() {
        println!("verified: every check holds");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "NOT verified: {} of {} checks failed",
            report.checks.iter().filter(|c| !c.ok).count(),
            report.checks.len()
        );
        Ok(ExitCode::from(1))
    }
}
