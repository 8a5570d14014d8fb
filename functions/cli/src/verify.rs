//! `latentmint verify`: a collector's check of a token, from the chain inwards, with no key and
//! no trust in where the content comes from (see `latentmint_chain::TokenReader`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{ArgGroup, Args};
use latentmint_chain::{TokenReader, TokenReport};
use latentmint_core::EvmAddress;
use latentmint_core::ports::ContentSource;
use serde::Serialize;

/// Arguments of `latentmint verify`.
#[derive(Args)]
#[command(group(ArgGroup::new("which").required(true).args(["token", "all"])))]
pub struct VerifyArgs {
    /// The chain's JSON-RPC URL (repeat for fallbacks).
    #[arg(long = "rpc-url", required_unless_present = "local_run")]
    rpc_urls: Vec<String>,
    /// The collection contract (EIP-55 or lower case).
    #[arg(long, required_unless_present = "local_run")]
    contract: Option<String>,
    /// A local run's folder (`.latentmint/<collection>`) instead of a chain and a content
    /// source: its saved chain is started with anvil on 127.0.0.1 (read only), its contract and
    /// deployment block come from its deployment.json, its content from its content store.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["rpc_urls", "contract", "ipfs_api", "ipfs_dir", "gateway", "from_block"])]
    local_run: Option<PathBuf>,
    /// anvil binary for --local-run.
    #[arg(long, env = "LATENTMINT_ANVIL", requires = "local_run")]
    anvil: Option<PathBuf>,
    /// The token id (decimal, as marketplaces and explorers show it).
    #[arg(long)]
    token: Option<String>,
    /// Every token the contract minted, one line each, instead of one token in full.
    #[arg(long)]
    all: bool,
    /// Fetch content from an IPFS node's RPC API (kubo's, e.g. http://127.0.0.1:5001).
    #[arg(long, conflicts_with_all = ["ipfs_dir", "gateway"])]
    ipfs_api: Option<String>,
    /// Fetch content from a local content store (a run's `.latentmint/<collection>/ipfs`).
    #[arg(long, conflicts_with = "gateway")]
    ipfs_dir: Option<PathBuf>,
    /// Fetch content from an IPFS HTTP gateway (e.g. https://ipfs.io): no IPFS node needed.
    /// What it sends is checked against each CID, so it need not be trusted.
    #[arg(long, value_name = "URL")]
    gateway: Option<String>,
    /// Read the contract's events (role grants, mints, metadata updates) from this block on:
    /// the block it was deployed at, for RPCs that limit the range of a log query.
    #[arg(long, default_value_t = 0)]
    from_block: u64,
    /// Make the image again with this model folder from the signed record (prompt, seed,
    /// parameters; the parent image for an evolution) and compare the pixels.
    #[arg(long, value_name = "MODEL_DIR")]
    reproduce_with: Option<PathBuf>,
    /// Print the report as JSON (for marketplaces and scripts) instead of lines; the exit
    /// status is the same.
    #[arg(long)]
    json: bool,
    /// A LoRA adapter the record names (safetensors); repeat for each. Its strength is the
    /// record's.
    #[arg(long, requires = "reproduce_with")]
    lora: Vec<PathBuf>,
    /// The CA certificate (PEM) that vouches for the images' Content Credentials signer; with
    /// --local-run, the run's own development CA is used.
    #[arg(long, value_name = "PEM", conflicts_with = "local_run")]
    credentials_ca: Option<PathBuf>,
}

/// Prints every check (or, with `--all`, a line per token); exit status 0 when all hold, 1
/// when one does not.
pub async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    if let Some(token) = &args.token {
        anyhow::ensure!(
            !token.is_empty() && token.chars().all(|c| c.is_ascii_digit()),
            "--token: `{token}` is not a token id; give it in decimal, as explorers and marketplaces show it",
        );
    }
    if let Some(dir) = &args.reproduce_with {
        anyhow::ensure!(
            dir.join("model_index.json").is_file(),
            "--reproduce-with: {} is not a model folder (no model_index.json); give the model the record names",
            dir.display()
        );
    }
    let source = Source::of(&args).await?;
    let reader =
        latentmint_chain::TokenReader::connect(&source.rpc_urls, source.contract).await.map_err(|e| match e {
            latentmint_chain::ChainError::Rpc(m) => anyhow::anyhow!("--rpc-url: the chain could not be read ({m})"),
            other => anyhow::anyhow!("--contract: {other}"),
        })?;
    let reader = reader.from_block(source.from_block);
    let (contract, content) = (source.contract, source.content);
    let mut checker = Checker { args: &args, content: content.as_ref(), generator: None, anchors: source.anchors };
    match &args.token {
        Some(token) => one(&reader, &mut checker, contract, token).await,
        None => all(&reader, &mut checker, contract).await,
    }
}

/// Where the chain and the content are read: the flags, or a local run's folder.
struct Source {
    rpc_urls: Vec<String>,
    contract: EvmAddress,
    from_block: u64,
    content: Box<dyn ContentSource>,
    /// CAs trusted to vouch for Content Credentials signers (PEM).
    anchors: Option<String>,
    /// The run's saved chain, served while the checks last.
    _node: Option<latentmint_chain::LocalNode>,
}

impl Source {
    async fn of(args: &VerifyArgs) -> anyhow::Result<Self> {
        if let Some(dir) = &args.local_run {
            let deployment = crate::chain_setup::Deployment::read(dir).context("--local-run")?;
            let (contract, from_block) = deployment.minting().with_context(|| {
                format!("--local-run: {}/deployment.json names no contract for the collection's tokens", dir.display())
            })?;
            let state = dir.join("chain/anvil-state.json");
            anyhow::ensure!(
                state.is_file(),
                "--local-run: {} is missing: the run used an external chain; give --rpc-url",
                state.display()
            );
            let state_arg = state.to_string_lossy().into_owned();
            let anvil = crate::workspace::anvil_path(args.anvil.as_deref());
            // Loaded, not saved back: the check leaves the run's chain as it was.
            let node = latentmint_chain::LocalNode::spawn_with(
                &anvil,
                deployment.chain_id,
                None,
                &["--load-state", &state_arg],
            )
            .await
            .context("--local-run: starting the run's chain")?;
            return Ok(Self {
                rpc_urls: vec![node.rpc_url.clone()],
                contract,
                from_block: from_block.unwrap_or(0),
                content: Box::new(latentmint_embedded::LocalContentStore::new(dir.join("ipfs"))),
                // A run made before images carried credentials has no CA: nothing to trust then.
                anchors: std::fs::read_to_string(crate::wiring::credentials_dir(dir).join("ca.pem")).ok(),
                _node: Some(node),
            });
        }
        let contract = args.contract.as_deref().context("--contract: give the collection contract")?;
        let contract = EvmAddress::parse_any_case(contract).map_err(|e| anyhow::anyhow!("--contract: {e}"))?;
        let content: Box<dyn ContentSource> = match (&args.ipfs_api, &args.ipfs_dir, &args.gateway) {
            (Some(api), _, _) => Box::new(latentmint_ipfs::KuboPinner::new(api, None).context("--ipfs-api")?),
            (None, Some(dir), _) => {
                anyhow::ensure!(dir.is_dir(), "--ipfs-dir: {} is not a folder", dir.display());
                Box::new(latentmint_embedded::LocalContentStore::new(dir))
            }
            (None, None, Some(url)) => Box::new(latentmint_ipfs::Gateway::new(url).context("--gateway")?),
            (None, None, None) => anyhow::bail!(
                "give --gateway (e.g. https://ipfs.io), --ipfs-api or --ipfs-dir: where the token's content can be fetched"
            ),
        };
        let anchors = args.credentials_ca.as_deref().map(crate::credentials::read_anchors).transpose()?;
        Ok(Self {
            rpc_urls: args.rpc_urls.clone(),
            contract,
            from_block: args.from_block,
            content,
            anchors,
            _node: None,
        })
    }
}

/// Runs the checks on tokens, making images again when asked, with the model loaded once.
struct Checker<'a> {
    args: &'a VerifyArgs,
    content: &'a dyn ContentSource,
    generator: Option<latentmint_diffusion::OnnxGenerator>,
    anchors: Option<String>,
}

impl Checker<'_> {
    /// The token's report, and whether its image was made again.
    async fn check(&mut self, reader: &TokenReader, token: &str) -> anyhow::Result<(TokenReport, bool)> {
        let mut report = reader.verify(token, self.content).await?;
        let record_holds = report.passed();
        // The image file's own account of itself, independent of the record's checks.
        crate::credentials::check(&mut report, self.anchors.as_deref());
        // Made again only from a record that checked out: a failed check above already says
        // why the token is not verified.
        let (Some(dir), Some(meta)) = (&self.args.reproduce_with, &report.metadata) else { return Ok((report, false)) };
        if !record_holds {
            return Ok((report, false));
        }
        if self.generator.is_none() {
            self.generator = Some(crate::reproduce::load_generator(dir, &self.args.lora, meta)?);
        }
        if let Some(generator) = &self.generator {
            crate::reproduce::reproduce(&mut report, generator, self.content).await?;
        }
        Ok((report, true))
    }
}

/// One token as `--json` prints it: its whole report, or why it could not be read.
#[derive(Serialize)]
#[serde(untagged)]
enum TokenJson {
    Checked {
        verified: bool,
        /// Whether the image was made again from its record (`--reproduce-with`).
        reproduced: bool,
        #[serde(flatten)]
        report: Box<TokenReport>,
    },
    Unreadable {
        token_id: String,
        verified: bool,
        error: String,
    },
}

/// `--all --json`.
#[derive(Serialize)]
struct AllJson {
    contract: EvmAddress,
    chain_id: u64,
    verified: usize,
    failed: usize,
    /// Jobs owning more than one token (and positions minted for more than one job).
    duplicates: Vec<String>,
    tokens: Vec<TokenJson>,
}

async fn one(
    reader: &TokenReader,
    checker: &mut Checker<'_>,
    contract: EvmAddress,
    token: &str,
) -> anyhow::Result<ExitCode> {
    let (report, reproduced) = checker.check(reader, token).await?;
    let code = if report.passed() { ExitCode::SUCCESS } else { ExitCode::from(1) };
    if checker.args.json {
        let doc = TokenJson::Checked { verified: report.passed(), reproduced, report: Box::new(report) };
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(code);
    }
    let held = match (report.owner, report.edition) {
        (Some(owner), _) => format!("owned by {owner}"),
        (None, Some(e)) if e.max_supply == 0 => format!("an open ERC-1155 edition, {} copies minted", e.minted),
        (None, Some(e)) => format!("an ERC-1155 edition, {} of at most {} copies minted", e.minted, e.max_supply),
        (None, None) => "no owner".to_string(),
    };
    println!("token {} on {contract} (chain {}), {held}", report.token_id, reader.chain_id());
    println!("{} {}", if report.edition.is_some() { "uri" } else { "tokenURI" }, report.token_uri);
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
    if checker.args.reproduce_with.is_some() && !reproduced {
        println!("not made again: the checks above must hold first");
    }
    if report.passed() {
        println!("verified: every check holds");
    } else {
        println!(
            "NOT verified: {} of {} checks failed",
            report.checks.iter().filter(|c| !c.ok).count(),
            report.checks.len()
        );
    }
    Ok(code)
}

/// A line per token: `ok` with how many checks held, or the first check that failed (with
/// `--json`, every token's whole report).
async fn all(reader: &TokenReader, checker: &mut Checker<'_>, contract: EvmAddress) -> anyhow::Result<ExitCode> {
    let tokens = reader.minted_tokens().await?;
    let json = checker.args.json;
    if !json {
        println!("{} tokens minted by {contract} (chain {})", tokens.len(), reader.chain_id());
    }
    let mut failed = 0;
    let mut docs = Vec::new();
    // Every job owning more than one token, whichever paths minted them: each of its tokens
    // also fails "the job owns no other token" below.
    let duplicates = reader.duplicates().await?;
    for d in &duplicates {
        if !json {
            println!("FAIL {d}");
        }
    }
    for token in &tokens {
        // A token that cannot be read (burned, or the RPC failed on it) is a failed entry, not
        // the end of the list.
        let first_failure = match checker.check(reader, token).await {
            Ok((report, reproduced)) => {
                let failure = report.checks.iter().find(|c| !c.ok).map(|c| format!("{}: {}", c.what, c.detail));
                if json {
                    docs.push(TokenJson::Checked { verified: report.passed(), reproduced, report: Box::new(report) });
                } else if failure.is_none() {
                    let again = match report.checks.last() {
                        Some(c) if reproduced => format!(" (image {})", c.detail),
                        _ => String::new(),
                    };
                    println!("ok   {token}: {} checks hold{again}", report.checks.len());
                }
                match failure {
                    None => continue,
                    Some(f) => f,
                }
            }
            Err(e) => {
                let error = format!("{e:#}");
                if json {
                    docs.push(TokenJson::Unreadable { token_id: token.clone(), verified: false, error: error.clone() });
                }
                error
            }
        };
        failed += 1;
        if !json {
            println!("FAIL {token}: {first_failure}");
        }
    }
    let code = if failed == 0 && duplicates.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) };
    if json {
        let doc = AllJson {
            contract,
            chain_id: reader.chain_id(),
            verified: tokens.len() - failed,
            failed,
            duplicates: duplicates.iter().map(ToString::to_string).collect(),
            tokens: docs,
        };
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if failed == 0 && duplicates.is_empty() {
        println!("verified: {} of {} tokens, every check holds", tokens.len(), tokens.len());
    } else {
        println!(
            "NOT verified: {failed} of {} tokens failed a check (`--token <id>` shows each in full)",
            tokens.len()
        );
    }
    Ok(code)
}
