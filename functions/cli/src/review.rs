//! `latentmint review`: an operator's decision on one job waiting in the staging queue.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use latentmint_core::ports::JobStore;
use latentmint_core::{Job, JobState};
use latentmint_embedded::{SqliteJobStore, SqliteQueue};

use crate::workspace::{load_collection, run_dir, slug};

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
        let stage = latentmint_stages::operator::retry(&jobs, &queue, job.id()).await?;
        println!(
            "job {} (failed: {why}) goes back to the {} stage; run `latentmint run {}` to continue",
            job.id().short(),
            stage.queue(),
            args.collection.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let state = latentmint_stages::operator::decide(&jobs, &queue, job.id(), !args.reject, &operator).await?;
    println!("job {} is now {state}; run `latentmint run {}` to continue", job.id().short(), args.collection.display());
    Ok(ExitCode::SUCCESS)
}
