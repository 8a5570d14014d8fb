//! `latentmint`: run a collection end to end on one machine, and the tools around it.
// The argument structs' doc comments are clap's help text, written as a user reads it in a
// terminal (`[chain]`, bare URLs), not as rustdoc links.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::bare_urls)]

mod args;
mod chain_setup;
mod credentials;
mod deploy;
mod generate;
mod live;
mod report;
mod reproduce;
mod review;
mod run;
mod verify;
mod wiring;
mod worker;
mod workspace;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Prompts in, verifiable NFTs out.
#[derive(Parser)]
#[command(name = "latentmint", version, about)]
struct Cli {
    /// More log output (-v: info, -vv: debug). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate, check, pin and mint every prompt of a collection file, locally.
    Run(args::RunArgs),
    /// Print a file's CIDv1, as `ipfs add --cid-version=1` computes it.
    Cid {
        /// The file.
        file: PathBuf,
    },
    /// Approve or reject a job waiting in the QA staging queue.
    Review(review::ReviewArgs),
    /// Deploy the collection's contract to its configured chain.
    Deploy(deploy::DeployArgs),
    /// Print the order-webhook key of one collection, for its shop: derived from the stack's
    /// webhook secret, read from LATENTMINT_WEBHOOK_SECRET (never an argument, which shells
    /// keep in their history). With --sign, print the headers a shop sends for a body instead.
    WebhookKey {
        /// The collection's name in the webhook URL (`/webhooks/<collection>`).
        collection: String,
        /// An order body (JSON file) to sign now, as its shop would.
        #[arg(long, value_name = "FILE")]
        sign: Option<PathBuf>,
    },
    /// Generate one image from a prompt (no queues, no chain).
    Generate(generate::GenerateArgs),
    /// Living NFTs: evolve each token of the collection that changes hands.
    Live(live::LiveArgs),
    /// Check a minted token (or, with --all, every one) from the chain inwards: its metadata
    /// and image against their CIDs, the provenance signature, the signer's role on the
    /// contract, the token's job; with --reproduce-with, the image made again from the record.
    /// Exit status 1 when a check fails.
    Verify(verify::VerifyArgs),
    /// Check a token's metadata JSON: who signed its provenance record (EIP-712), and whether
    /// the record is as signed. Exit status 1 when it is not.
    Provenance {
        /// The metadata file (what the token's `ipfs://` URI holds).
        file: PathBuf,
        /// The image file: its SHA-256 must be the one the signed record names, and its
        /// Content Credentials (if it has them) must hold and agree with the record.
        #[arg(long)]
        image: Option<PathBuf>,
        /// The CA certificate (PEM) that vouches for the image's Content Credentials signer.
        #[arg(long, value_name = "PEM", requires = "image")]
        credentials_ca: Option<PathBuf>,
        /// Print the signed record as EIP-712 typed data (what `eth_signTypedData_v4` takes)
        /// instead of checking it, to check the signature (`provenance.signature.signature`)
        /// with any EIP-712 tool.
        #[arg(long, conflicts_with_all = ["image", "credentials_ca"])]
        typed_data: bool,
    },
}

fn init_logs(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Every line passes through the URL redaction: an RPC provider's key in its URL never
    // reaches the terminal, whatever error printed it.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| latentmint_core::redact::Redacting::new(std::io::stderr()))
        .with_target(false)
        .init();
}

fn main() -> ExitCode {
    // Output into a closed pipe (`latentmint verify --all | head`) ends the program quietly, as
    // it does for other command-line tools; Rust's runtime ignores SIGPIPE, so every print
    // would panic instead.
    // SAFETY: restores the default action of one signal, before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    init_logs(cli.verbose);
    let result = match cli.command {
        Command::Cid { file } => cid(&file),
        Command::Run(args) => tokio_main(run::run(args)),
        Command::Review(args) => tokio_main(review::review(args)),
        Command::Generate(args) => generate::generate(args),
        Command::Deploy(args) => tokio_main(deploy::deploy(args)),
        Command::WebhookKey { collection, sign } => webhook_key(&collection, sign.as_deref()),
        Command::Live(args) => tokio_main(live::live(args)),
        Command::Verify(args) => tokio_main(verify::verify(args)),
        Command::Provenance { file, typed_data: true, .. } => print_typed_data(&file),
        Command::Provenance { file, image, credentials_ca, .. } => {
            provenance(&file, image.as_deref(), credentials_ca.as_deref())
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", latentmint_core::redact::redact_urls(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}

fn webhook_key(slug: &str, sign: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    if slug.is_empty() || !slug.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        anyhow::bail!(
            "collection: `{slug}` is not a webhook's collection name (a-z, 0-9, -, as in /webhooks/<collection>)"
        );
    }
    let secret = std::env::var("LATENTMINT_WEBHOOK_SECRET").context(
        "export LATENTMINT_WEBHOOK_SECRET with the stack's webhook secret (aws secretsmanager get-secret-value --secret-id <WebhookSecretArn> --query SecretString --output text)",
    )?;
    let key = latentmint_core::webhook::collection_key(secret.as_bytes(), slug);
    let Some(file) = sign else {
        println!("{key}");
        return Ok(ExitCode::SUCCESS);
    };
    let body = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let path = format!("/webhooks/{slug}");
    println!(
        "{}: {}",
        latentmint_core::webhook::SIGNATURE_HEADER,
        latentmint_core::webhook::signature_header(&key, now, "POST", &path, &body)
    );
    println!("{}: <the shop's id of this delivery>", latentmint_core::webhook::DELIVERY_HEADER);
    Ok(ExitCode::SUCCESS)
}

fn tokio_main<F: std::future::Future<Output = anyhow::Result<ExitCode>>>(f: F) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(f)
}

fn cid(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let cid = latentmint_core::cid::cid_of_reader(std::io::BufReader::new(f))
        .with_context(|| format!("cannot read {}", file.display()))?;
    println!("{cid}");
    Ok(ExitCode::SUCCESS)
}

fn read_metadata(file: &std::path::Path) -> anyhow::Result<latentmint_core::metadata::TokenMetadata> {
    use anyhow::Context;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not latentmint token metadata", file.display()))
}

fn print_typed_data(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let m = read_metadata(file)?;
    let typed = latentmint_chain::provenance::typed_data(&m.provenance)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    println!("{}", serde_json::to_string_pretty(&typed)?);
    Ok(ExitCode::SUCCESS)
}

fn provenance(
    file: &std::path::Path,
    image: Option<&std::path::Path>,
    credentials_ca: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let anchors = credentials_ca.map(credentials::read_anchors).transpose()?;
    let m = read_metadata(file)?;
    let p = &m.provenance;
    match latentmint_chain::provenance::verify(p) {
        Ok(signer) => {
            let s = p.signature.as_ref().map(|s| (s.chain_id, s.verifying_contract.clone())).unwrap_or_default();
            println!("signed by {signer} (EIP-712, chain {}, contract {})", s.0, s.1);
            println!(
                "job {} · model {} ({}) · seed {} · image sha256 {}",
                p.job_id, p.model.id, p.model.sha256, p.seed, p.image_sha256
            );
            for a in &p.adapters {
                println!("LoRA {} (sha256 {}) at scale {}", a.name, a.sha256, a.scale);
            }
            for q in &p.qa {
                println!("QA {} model {} (sha256 {})", q.role, q.name, q.sha256);
            }
            if let Some(e) = &p.evolution {
                println!(
                    "evolution {} of {} (transfer {} log {})",
                    e.generation, e.parent_metadata, e.trigger.tx_hash, e.trigger.log_index
                );
            }
            if let Some(path) = image {
                use sha2::{Digest, Sha256};
                let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
                let got = hex::encode(Sha256::digest(&bytes));
                if got != p.image_sha256 {
                    eprintln!(
                        "{}: sha256 {got} is not the signed record's image_sha256 {}: not the image this record describes",
                        path.display(),
                        p.image_sha256
                    );
                    return Ok(ExitCode::from(1));
                }
                println!("image {} matches the signed record", path.display());
                let (ok, detail) = credentials::assess(&bytes, p, anchors.as_deref());
                if !ok {
                    eprintln!("{}: content credentials: {detail}", path.display());
                    return Ok(ExitCode::from(1));
                }
                println!("content credentials: {detail}");
            }
            println!(
                "check on chain that {signer} holds the contract's MINTER_ROLE (or METADATA_ROLE for an evolution)"
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            Ok(ExitCode::from(1))
        }
    }
}
