//! `latentmint review`: the jobs waiting in the staging queue and why (`--list`), and an
//! operator's decision on one of them.

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
    #[arg(required_unless_present = "list")]
    pub job: Option<String>,
    /// List the jobs waiting for a human, with what each check said, instead of deciding one.
    #[arg(long, conflicts_with_all = ["job", "reject", "retry"])]
    pub list: bool,
    /// With `--list`: the waiting jobs as JSON (each with its QA report), for scripts.
    #[arg(long, requires = "list")]
    pub json: bool,
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
    let again = continue_with(&args);
    let Some(wanted) = args.job.as_deref() else {
        return list(&jobs, &args, &again).await;
    };
    let (among, what) =
        if args.retry { (JobState::Failed, "failed") } else { (JobState::AwaitingReview, "awaiting review") };
    // A prefix of the job id, as tables show it: never empty (it would match every job).
    let prefix = wanted.trim().trim_start_matches("0x").to_lowercase();
    if prefix.len() < 4 || prefix.len() > 64 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!(
            "job: `{wanted}` is not a job id; give the job's id or at least its first 4 hex digits, as `latentmint review {} --list` shows them",
            args.collection.display()
        );
    }
    let operator = latentmint_core::sanitize::clean_operator("--operator", &args.operator)?;
    let candidates = jobs.list(Some(among)).await?;
    let matches: Vec<&Job> = candidates.iter().filter(|j| j.id().to_string().starts_with(&prefix)).collect();
    let job = match matches.as_slice() {
        [one] => *one,
        [] => {
            // Decided already, or in another state: say which, rather than "no match".
            let all = jobs.list(None).await?;
            let elsewhere: Vec<&Job> = all.iter().filter(|j| j.id().to_string().starts_with(&prefix)).collect();
            match elsewhere.as_slice() {
                [j] => return already(j, &args, &again),
                [] if args.retry => bail!("no job {what} matches `{wanted}` ({} {what})", candidates.len()),
                [] => bail!(
                    "no job {what} matches `{wanted}` ({} {what}; `latentmint review {} --list{}` shows them)",
                    candidates.len(),
                    args.collection.display(),
                    data_dir_flag(&args)
                ),
                _ => bail!("`{wanted}` matches {} jobs; give more digits", elsewhere.len()),
            }
        }
        _ => bail!("`{wanted}` matches {} jobs {what}; give more digits", matches.len()),
    };
    if args.retry {
        let why = job.error.clone().unwrap_or_default();
        let stage = latentmint_stages::operator::retry(&jobs, &queue, job.id()).await?;
        println!("job {} (failed: {why}) goes back to the {} stage; {again}", job.id().short(), stage.queue());
        return Ok(ExitCode::SUCCESS);
    }
    let state = latentmint_stages::operator::decide(&jobs, &queue, job.id(), !args.reject, &operator).await?;
    println!("job {} is now {state}; {again}", job.id().short());
    Ok(ExitCode::SUCCESS)
}

/// What a decision on job `j`, which is not where the decision applies, means: the same
/// decision again is done already (exit 0), another one is refused with why.
fn already(j: &Job, args: &ReviewArgs, again: &str) -> anyhow::Result<ExitCode> {
    let id = j.id().short();
    let by = j.reviewed_by.as_deref().map(|b| format!(" by {b}")).unwrap_or_default();
    let asked_approve = !args.reject && !args.retry;
    match j.state {
        JobState::Rejected if args.reject => {
            println!("job {id} is already rejected{by}; nothing to do");
            Ok(ExitCode::SUCCESS)
        }
        JobState::Rejected => {
            bail!("job {id} was rejected{by}: a rejection is final (no token is minted for it)")
        }
        s if args.retry => bail!("job {id} is {s}, not failed: only a failed job is retried"),
        JobState::Approved | JobState::Published | JobState::Minting | JobState::Minted if asked_approve => {
            println!("job {id} is already approved{by} (now {}); nothing to do; {again}", j.state);
            Ok(ExitCode::SUCCESS)
        }
        JobState::Approved | JobState::Published | JobState::Minting | JobState::Minted => {
            bail!("job {id} was approved{by} and is now {}: an approval is not taken back here", j.state)
        }
        s => bail!("job {id} is {s}: it has not reached review yet; {again}"),
    }
}

/// ` --data-dir DIR` when the run's data folder is not the default, so a hint leads back to it.
fn data_dir_flag(args: &ReviewArgs) -> String {
    if args.data_dir == std::path::Path::new(".latentmint") {
        String::new()
    } else {
        format!(" --data-dir {}", args.data_dir.display())
    }
}

/// The command that continues this run.
fn continue_with(args: &ReviewArgs) -> String {
    format!("run `latentmint run {}{}` to continue", args.collection.display(), data_dir_flag(args))
}

/// `--list`: every job awaiting review, what its checks said and why it waits.
async fn list(jobs: &SqliteJobStore, args: &ReviewArgs, again: &str) -> anyhow::Result<ExitCode> {
    let waiting = jobs.list(Some(JobState::AwaitingReview)).await?;
    if args.json {
        let rows: Vec<serde_json::Value> = waiting
            .iter()
            .map(|j| {
                serde_json::json!({
                    "job": j.id().to_string(),
                    "prompt": j.spec.prompt,
                    "image": j.image_key,
                    "why": j.qa.as_ref().map(|q| q.why()).unwrap_or_default(),
                    "qa": j.qa,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if waiting.is_empty() {
        println!("no job awaits review");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} job{} awaiting review:", waiting.len(), if waiting.len() == 1 { "" } else { "s" });
    for j in &waiting {
        let prompt: String = j.spec.prompt.chars().take(60).collect();
        let ellipsis = if j.spec.prompt.chars().count() > 60 { "…" } else { "" };
        println!("  {}  {prompt:?}{ellipsis}", j.id().short());
        for line in j.qa.as_ref().map(|q| q.why()).unwrap_or_else(|| vec!["no QA report".into()]) {
            println!("      {line}");
        }
    }
    let (file, dir) = (args.collection.display(), data_dir_flag(args));
    println!("decide: `latentmint review {file} JOB{dir}` approves, add `--reject` to reject; then {again}");
    Ok(ExitCode::SUCCESS)
}
