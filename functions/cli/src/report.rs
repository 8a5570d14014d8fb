//! What a finished run shows: a table of jobs, a contact sheet of their images, and the same
//! results whole for tools and collectors (`tokens.json`).

use std::path::Path;

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use image::{Rgb, RgbImage, imageops};
use latentmint_core::{EvmAddress, Job, JobState};

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { format!("{}…", s.chars().take(n - 1).collect::<String>()) }
}

/// The results table; `token` heads the token id column (`edition` for ERC-1155 editions).
pub fn table(jobs: &[Job], token: &str) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
    t.set_header(["job", "prompt", "state", token, "tx", "image CID", "metadata CID"]);
    for j in jobs {
        let state = match (&j.state, &j.error) {
            (JobState::Failed | JobState::Rejected, Some(e)) => format!("{} ({})", j.state, short(e, 40)),
            _ => j.state.to_string(),
        };
        t.add_row([
            j.spec.id.short(),
            short(&j.spec.prompt, 32),
            state,
            j.token_id.as_deref().map(|t| short(t, 14)).unwrap_or_else(|| "-".into()),
            j.tx_hash.as_deref().map(|h| short(h, 12)).unwrap_or_else(|| "-".into()),
            j.image_cid.clone().unwrap_or_else(|| "-".into()),
            j.metadata_cid.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    t.to_string()
}

/// `tokens.json`: the run's results with whole ids, in this order.
#[derive(serde::Serialize)]
struct Manifest<'a> {
    chain_id: u64,
    contract: String,
    /// `erc721`, or `erc1155` for editions (then `token_id` is the edition's id).
    standard: &'static str,
    /// Copies of each edition minted to its recipient (editions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    copies: Option<u64>,
    /// The contract's deployment block, when known: `latentmint verify --from-block`.
    #[serde(skip_serializing_if = "Option::is_none")]
    deployed_block: Option<u64>,
    jobs: Vec<ManifestJob<'a>>,
}

#[derive(serde::Serialize)]
struct ManifestJob<'a> {
    job_id: String,
    prompt: &'a str,
    state: String,
    recipient: String,
    token_id: Option<&'a str>,
    /// The batch it was minted in and its place there (`tokenURI` is `<directory>/<index>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    batch: Option<latentmint_core::batch::BatchSlot>,
    tx_hash: Option<&'a str>,
    image: Option<String>,
    metadata: Option<String>,
    error: Option<&'a str>,
}

/// Writes `out`: every job with its whole ids (the table shortens them), for spreadsheets,
/// marketplaces' imports and `latentmint verify --token`.
pub fn manifest(
    jobs: &[Job],
    chain_id: u64,
    (contract, deployed_block): (EvmAddress, Option<u64>),
    copies: Option<u64>,
    out: &Path,
) -> anyhow::Result<()> {
    let ipfs = |cid: &Option<String>| cid.as_ref().map(|c| format!("ipfs://{c}"));
    let doc = Manifest {
        chain_id,
        contract: contract.to_string(),
        standard: if copies.is_some() { "erc1155" } else { "erc721" },
        copies,
        deployed_block,
        jobs: jobs
            .iter()
            .map(|j| ManifestJob {
                job_id: j.id().to_string(),
                prompt: &j.spec.prompt,
                state: j.state.to_string(),
                recipient: j.spec.recipient.to_string(),
                token_id: j.token_id.as_deref(),
                batch: j.batch,
                tx_hash: j.tx_hash.as_deref(),
                image: ipfs(&j.image_cid),
                metadata: ipfs(&j.metadata_cid),
                error: j.error.as_deref(),
            })
            .collect(),
    };
    // Whole or not at all: a reader never sees half a file.
    latentmint_embedded::write_atomic(out, &serde_json::to_vec_pretty(&doc)?)?;
    Ok(())
}

const TILE: u32 = 160;
const PAD: u32 = 8;
const BAR: u32 = 6;

fn state_colour(s: JobState) -> Rgb<u8> {
    match s {
        JobState::Minted => Rgb([46, 160, 67]),
        JobState::Rejected | JobState::Failed => Rgb([207, 34, 46]),
        JobState::AwaitingReview => Rgb([191, 135, 0]),
        _ => Rgb([110, 118, 129]),
    }
}

/// A grid of the batch's images, each over a bar coloured by its state (green minted, amber
/// waiting for review, red rejected or failed).
pub fn contact_sheet(jobs: &[(Job, Option<Vec<u8>>)], out: &Path) -> anyhow::Result<()> {
    let n = jobs.len().max(1) as u32;
    let cols = (n as f64).sqrt().ceil() as u32;
    let rows = n.div_ceil(cols);
    let (w, h) = (cols * (TILE + PAD) + PAD, rows * (TILE + BAR + PAD) + PAD);
    let mut sheet = RgbImage::from_pixel(w, h, Rgb([22, 27, 34]));
    for (i, (job, png)) in jobs.iter().enumerate() {
        let (c, r) = (i as u32 % cols, i as u32 / cols);
        let (x, y) = (PAD + c * (TILE + PAD), PAD + r * (TILE + BAR + PAD));
        if let Some(bytes) = png
            && let Ok(img) = image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        {
            // Nearest neighbour keeps tiny model outputs crisp rather than blurred.
            let tile = imageops::resize(&img.to_rgb8(), TILE, TILE, imageops::FilterType::Nearest);
            imageops::replace(&mut sheet, &tile, i64::from(x), i64::from(y));
        }
        let colour = state_colour(job.state);
        for dy in 0..BAR {
            for dx in 0..TILE {
                sheet.put_pixel(x + dx, y + TILE + dy, colour);
            }
        }
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    sheet.save(out)?;
    Ok(())
}
