//! `latentmint`: run a collection end to end on one machine, and the tools around it.

mod generate;
mod live;
mod report;
mod run;

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
    Run(run::RunArgs),
    /// Print a file's CIDv1, as `ipfs add --cid-version=1` computes it.
    Cid {
        /// The file.
        file: PathBuf,
    },
    /// Approve or reject a job waiting in the QA staging queue.
    Review(run::ReviewArgs),
    /// Deploy the collection's contract to its configured chain.
    Deploy(run::DeployArgs),
    /// Generate one image from a prompt (no queues, no chain).
    Generate(generate::GenerateArgs),
    /// Living NFTs: evolve each token of the collection that changes hands.
    Live(live::LiveArgs),
}

fn init_logs(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.verbose);
    let result = match cli.command {
        Command::Cid { file } => cid(&file),
        Command::Run(args) => tokio_main(run::run(args)),
        Command::Review(args) => tokio_main(run::review(args)),
        Command::Generate(args) => generate::generate(args),
        Command::Deploy(args) => tokio_main(run::deploy(args)),
        Command::Live(args) => tokio_main(live::live(args)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
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
