//! What a finished run shows: a table of jobs, a contact sheet of their images, and the same
//! results whole for tools and collectors (`tokens.json`).

use std::path::Path;

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use image::{Rgb, RgbImage, imageops};
use latentmint_core::{EvmAddress, Job, JobState};

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { format!("{}…", s.chars().take(n - 1).collect::<String>()) }
}

/// Most rows the results table prints; a longer run is summarised (every job is in
/// `tokens.json`).
pub const MAX_ROWS: usize = 20;

/// Width the table is laid out for when the output is no terminal (a log, a pipe).
const PIPED_WIDTH: u16 = 120;

/// The results table, `width` columns wide (the terminal's, else [`PIPED_WIDTH`]); `token`
/// heads the token id column (`edition` for ERC-1155 editions). CIDs and hashes are shortened
/// (whole in `tokens.json`); below 100 columns the CIDs are left out. Past [`MAX_ROWS`] jobs,
/// those that need a look (failed, rejected, waiting) come first and the rest are counted.
pub fn table(jobs: &[Job], token: &str, width: Option<u16>) -> String {
    let width = width.filter(|w| *w >= 40).unwrap_or(PIPED_WIDTH);
    let wide = width >= 100;
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic).set_width(width);
    let mut header = vec!["job", "prompt", "state", token];
    if wide {
        header.extend(["tx", "image CID", "metadata CID"]);
    }
    t.set_header(header);
    // What needs a look first, then the rest in job order.
    let attention = |j: &&Job| matches!(j.state, JobState::Failed | JobState::Rejected | JobState::AwaitingReview);
    let mut ordered: Vec<&Job> = jobs.iter().filter(attention).collect();
    ordered.extend(jobs.iter().filter(|j| !attention(j)));
    let prompt_width = if wide { 32 } else { 20 };
    for j in ordered.iter().take(MAX_ROWS) {
        let state = match (&j.state, &j.error) {
            (JobState::Failed | JobState::Rejected, Some(e)) => {
                format!("{} ({})", j.state, short(e, if wide { 32 } else { 16 }))
            }
            _ => j.state.to_string(),
        };
        let mut row = vec![
            j.spec.id.short(),
            short(&j.spec.prompt, prompt_width),
            state,
            j.token_id.as_deref().map(|t| short(t, 14)).unwrap_or_else(|| "-".into()),
        ];
        if wide {
            let cid = |c: &Option<String>| c.as_deref().map(|c| short(c, 20)).unwrap_or_else(|| "-".into());
            row.extend([
                j.tx_hash.as_deref().map(|h| short(h, 12)).unwrap_or_else(|| "-".into()),
                cid(&j.image_cid),
                cid(&j.metadata_cid),
            ]);
        }
        t.add_row(row);
    }
    let mut out = t.to_string();
    if ordered.len() > MAX_ROWS {
        let rest = &ordered[MAX_ROWS..];
        let mut by_state = std::collections::BTreeMap::new();
        for j in rest {
            *by_state.entry(j.state).or_insert(0usize) += 1;
        }
        let counted: Vec<String> = by_state.iter().map(|(s, n)| format!("{n} {s}")).collect();
        out.push_str(&format!(
            "\n… and {} more jobs ({}); every job, with whole ids, is in tokens.json",
            rest.len(),
            counted.join(", ")
        ));
    }
    out
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
/// The strip under each tile: its state's colour, with the job's id and state written on it.
const LABEL: u32 = 12;
/// Most tiles on one sheet; more images go on further sheets (`contact-sheet-2.png`, ...).
pub const SHEET_TILES: usize = 64;

fn state_colour(s: JobState) -> Rgb<u8> {
    match s {
        JobState::Minted => Rgb([46, 160, 67]),
        JobState::Rejected | JobState::Failed => Rgb([207, 34, 46]),
        JobState::AwaitingReview => Rgb([191, 135, 0]),
        _ => Rgb([110, 118, 129]),
    }
}

/// Writes `text` in the 8x8 bitmap font at (x, y), clipped to `max_w` pixels.
fn write(sheet: &mut RgbImage, x: u32, y: u32, max_w: u32, text: &str, colour: Rgb<u8>) {
    for (i, c) in text.chars().enumerate() {
        let gx = x + 8 * i as u32;
        if gx + 8 > x + max_w {
            break;
        }
        let glyph = font8x8::legacy::BASIC_LEGACY.get(c as usize).copied().unwrap_or([0; 8]);
        for (dy, row) in glyph.iter().enumerate() {
            for dx in 0..8 {
                // Bit 0 is the glyph's leftmost pixel.
                if row >> dx & 1 == 1 {
                    sheet.put_pixel(gx + dx, y + dy as u32, colour);
                }
            }
        }
    }
}

/// A job and its image's PNG bytes (none when it has no image).
pub type Tile = (Job, Option<Vec<u8>>);

/// The sheets for `n` images: `out` for the first [`SHEET_TILES`], then `out` with `-2`,
/// `-3`, ... before its extension.
pub fn sheet_paths(out: &Path, n: usize) -> Vec<std::path::PathBuf> {
    let pages = n.div_ceil(SHEET_TILES).max(1);
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "contact-sheet".into());
    (1..=pages)
        .map(|p| if p == 1 { out.to_path_buf() } else { out.with_file_name(format!("{stem}-{p}.png")) })
        .collect()
}

/// Grids of the run's images, each over a strip coloured by its state (green minted, amber
/// waiting for review, red rejected or failed) that names the job (its short id) and the
/// state, so a tile can be traced to its job; [`SHEET_TILES`] per sheet. Returns the sheets
/// written.
pub fn contact_sheet(jobs: &[Tile], out: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let paths = sheet_paths(out, jobs.len());
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let pages: Vec<&[Tile]> = if jobs.is_empty() { vec![&[]] } else { jobs.chunks(SHEET_TILES).collect() };
    for (page, path) in pages.into_iter().zip(&paths) {
        let n = page.len().max(1) as u32;
        let cols = (n as f64).sqrt().ceil() as u32;
        let rows = n.div_ceil(cols);
        let (w, h) = (cols * (TILE + PAD) + PAD, rows * (TILE + LABEL + PAD) + PAD);
        let mut sheet = RgbImage::from_pixel(w, h, Rgb([22, 27, 34]));
        for (i, (job, png)) in page.iter().enumerate() {
            let (c, r) = (i as u32 % cols, i as u32 / cols);
            let (x, y) = (PAD + c * (TILE + PAD), PAD + r * (TILE + LABEL + PAD));
            if let Some(bytes) = png
                && let Ok(img) = image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
            {
                // Nearest neighbour keeps tiny model outputs crisp rather than blurred.
                let tile = imageops::resize(&img.to_rgb8(), TILE, TILE, imageops::FilterType::Nearest);
                imageops::replace(&mut sheet, &tile, i64::from(x), i64::from(y));
            }
            let colour = state_colour(job.state);
            for dy in 0..LABEL {
                for dx in 0..TILE {
                    sheet.put_pixel(x + dx, y + TILE + dy, colour);
                }
            }
            let label = format!("{} {}", job.spec.id.short(), job.state);
            write(&mut sheet, x + 2, y + TILE + 2, TILE - 4, &label, Rgb([255, 255, 255]));
        }
        sheet.save(path)?;
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use latentmint_core::testing::CollectionToml;

    /// `n` minted jobs with whole-length ids and CIDs, and one failed.
    fn jobs(n: u32) -> Vec<Job> {
        let specs = CollectionToml::new("T", "T").prompt_times("a red circle on a dark field, glowing", n + 1).jobs();
        specs
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                let mut j = Job::new(spec);
                if i == 3 {
                    (j.state, j.error) = (JobState::Failed, Some("mint: the contract is paused".into()));
                } else {
                    j.state = JobState::Minted;
                    j.token_id =
                        Some("35757797357540215626957372777579305885696970093713174647261071648141464334997".into());
                    j.tx_hash = Some(format!("0x{}", "3f".repeat(32)));
                    j.image_cid = Some("bafkreidkj36ubzztbv2dvevt4cdx2keikd3dp3rxzr6ydlrvgdoqlruq4u".into());
                    j.metadata_cid = Some("bafkreicpbyzdf35mqbowpdocjr3hmd26r7vkfgqh7t3avevo2t6quidssu".into());
                }
                j
            })
            .collect()
    }

    #[test]
    fn each_tile_is_labelled_and_a_large_run_pages() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("contact-sheet.png");
        let few: Vec<Tile> = jobs(3).into_iter().map(|j| (j, None)).collect();
        let written = contact_sheet(&few, &out).unwrap();
        assert_eq!(written, vec![out.clone()]);
        // The label strip under the first tile holds white text on the state's colour.
        let sheet = image::open(&out).unwrap().to_rgb8();
        let strip = (PAD..PAD + TILE).flat_map(|x| (PAD + TILE..PAD + TILE + LABEL).map(move |y| (x, y)));
        let white = strip.filter(|(x, y)| sheet.get_pixel(*x, *y).0 == [255, 255, 255]).count();
        assert!(white > 40, "{white} white pixels of text");
        // 130 images: three sheets of at most 64.
        let many: Vec<Tile> = jobs(129).into_iter().map(|j| (j, None)).collect();
        let written = contact_sheet(&many, &out).unwrap();
        let names: Vec<String> =
            written.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["contact-sheet.png", "contact-sheet-2.png", "contact-sheet-3.png"]);
        assert!(written.iter().all(|p| p.is_file()));
    }

    fn widest(table: &str) -> usize {
        table.lines().map(|l| l.chars().count()).max().unwrap_or(0)
    }

    #[test]
    fn the_table_fits_the_terminal_and_a_pipe_gets_a_readable_width() {
        let few = jobs(5);
        let narrow = table(&few, "token", Some(80));
        assert!(widest(&narrow) <= 80, "{narrow}");
        assert!(!narrow.contains("metadata CID"), "no CIDs below 100 columns: {narrow}");
        // One line per job (and the borders), not a row wrapped over many lines.
        assert!(narrow.lines().count() <= few.len() + 4, "{narrow}");
        let piped = table(&few, "token", None);
        assert!(widest(&piped) <= 120 && piped.contains("metadata CID"), "{piped}");
        // A terminal that reports a silly width is laid out like a pipe, not 1 column wide.
        assert_eq!(table(&few, "token", Some(0)), piped);
    }

    #[test]
    fn a_long_run_is_summarised_with_what_needs_a_look_first() {
        let many = jobs(200);
        let t = table(&many, "token", Some(200));
        let rows = t.lines().filter(|l| l.contains("a red circle")).count();
        assert_eq!(rows, MAX_ROWS, "{t}");
        // The failed job is in the table though it is the fourth of 201.
        assert!(t.contains("failed (mint: the contract is paused)"), "{t}");
        assert!(t.ends_with("… and 181 more jobs (181 minted); every job, with whole ids, is in tokens.json"), "{t}");
    }
}
