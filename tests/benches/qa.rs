//! QA benchmark: how the review stage's checks sort a labelled set of the demo model's images,
//! and what they cost beside generating them.
//!
//! `cargo bench -p latentmint-e2e --bench qa --profile dev [-- --seeds 2]` (after
//! `scripts/bootstrap.sh --tests`) generates, with the demo model (models/shapes-sd) and the
//! same engine `latentmint run` uses:
//! - **good**: "a {colour} {shape}" for every colour and shape, `--seeds` seeds each, at the
//!   demo's settings (20 DDIM steps, guidance 4), kept as good when an independent pixel
//!   classifier (`latentmint_e2e::shapes::classify`) sees what was asked;
//! - **drawn wrong**: those the classifier sees otherwise (the demo model confuses neighbouring
//!   hues);
//! - **asked otherwise**: good images presented as the answer to another colour or shape;
//! - **blob**: one-step LCM images (shapeless);
//! - **out of world**: prompts the demo model cannot draw ("a purple dragon");
//! - **duplicate**: an exact copy, and a near copy (re-encoded brighter and softer), of good
//!   images already in the collection.
//!
//! Each image goes through latentmint-qa's inspector with the demo's scorer (models/shapes-clip)
//! and the duplicate check against the images before it, then the default `[review]` policy.
//! Prints the confusion table and the goals (>= 95% of bad images kept from auto-approval, <= 10%
//! of good images sent to a human, every duplicate caught, QA <= 15% of the generation time), and
//! appends one JSON record to infra/bench/records/qa.jsonl; `python3 infra/bench/report.py`
//! turns the records into infra/bench/QA.md.

use std::collections::BTreeMap;
use std::time::Instant;

use latentmint_core::JobSpec;
use latentmint_core::qa::{QaReport, ReviewSection};
use latentmint_core::testing::CollectionToml;
use latentmint_core::{JobId, JobState};
use latentmint_diffusion::ImageRequest;
use latentmint_e2e::bench::{arg, machine};
use latentmint_e2e::shapes::{self, COLOURS, SHAPES, classify};
use latentmint_e2e::{ort_library, repo_root};
use latentmint_qa::ImageInspector;
use latentmint_qa::clip::ClipScorer;

const CLASSES: [&str; 6] = ["good", "drawn wrong", "asked otherwise", "blob", "out of world", "duplicate"];
const OUT_OF_WORLD: [&str; 8] = [
    "a purple dragon",
    "a photo of a cat",
    "a bowl of soup at noon",
    "a portrait of an old sailor",
    "a city skyline at night",
    "a bicycle leaning on a wall",
    "a field of sunflowers",
    "an astronaut riding a horse",
];

fn png(rgb: &image::RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    rgb.write_to(&mut out, image::ImageFormat::Png).expect("encoding a PNG in memory");
    out.into_inner()
}

/// The job a prompt makes in a one-prompt collection (its id differs per `n`).
fn spec(prompt: &str, n: usize) -> JobSpec {
    let mut s = CollectionToml::new("QA Bench", "QAB").prompt(prompt).jobs().remove(0);
    let mut id = *s.id.as_bytes();
    id[..8].copy_from_slice(&(n as u64).to_be_bytes());
    s.id = JobId::from_bytes(id);
    s
}

struct Sample {
    class: &'static str,
    spec: JobSpec,
    png: Vec<u8>,
}

fn main() -> anyhow::Result<()> {
    let seeds = arg("--seeds", 2);
    let root = repo_root();
    let mut engine = shapes::engine(2);
    let scorer = ClipScorer::load_with(&root.join("models/shapes-clip"), Some(&ort_library()))?;
    let model = scorer.model();
    let inspector = ImageInspector::new().with_clip(Some(scorer));
    // The demo's settings, or a one-step LCM image (a blob).
    let request = |prompt: &str, seed: u64, steps: u32, scheduler: &str, guidance: f32| ImageRequest {
        steps,
        scheduler: scheduler.into(),
        guidance,
        ..shapes::request(prompt, seed)
    };

    let mut samples: Vec<Sample> = Vec::new();
    let mut generation_s = Vec::new();
    let mut n = 0usize;
    let mut next = || {
        n += 1;
        n
    };
    for seed in 0..seeds as u64 {
        for (ci, (colour, _)) in COLOURS.iter().enumerate() {
            for (si, shape) in SHAPES.iter().enumerate() {
                let prompt = format!("a {colour} {shape}");
                let t = Instant::now();
                let out = engine.generate(&request(&prompt, 1000 * seed + (ci * 4 + si) as u64, 20, "ddim", 4.0))?;
                generation_s.push(t.elapsed().as_secs_f64());
                let (c, s) = classify(&out.rgb, 32, 32);
                let rgb = image::RgbImage::from_raw(32, 32, out.rgb.clone()).expect("32x32 RGB");
                let bytes = png(&rgb);
                if (c, s) == (*colour, *shape) {
                    samples.push(Sample { class: "good", spec: spec(&prompt, next()), png: bytes.clone() });
                    // The same picture presented as the answer to another colour, or shape.
                    let other = if seed % 2 == 0 {
                        format!("a {} {shape}", COLOURS[(ci + 2) % COLOURS.len()].0)
                    } else {
                        format!("a {colour} {}", SHAPES[(si + 1) % SHAPES.len()])
                    };
                    samples.push(Sample { class: "asked otherwise", spec: spec(&other, next()), png: bytes });
                } else {
                    samples.push(Sample { class: "drawn wrong", spec: spec(&prompt, next()), png: bytes });
                }
            }
        }
        for (ci, (colour, _)) in COLOURS.iter().enumerate() {
            let shape = SHAPES[ci % SHAPES.len()];
            let prompt = format!("a {colour} {shape}");
            let out = engine.generate(&request(&prompt, 7000 + 100 * seed + ci as u64, 1, "lcm", 1.0))?;
            let rgb = image::RgbImage::from_raw(32, 32, out.rgb).expect("32x32 RGB");
            samples.push(Sample { class: "blob", spec: spec(&prompt, next()), png: png(&rgb) });
        }
        for (i, prompt) in OUT_OF_WORLD.iter().enumerate() {
            let out = engine.generate(&request(prompt, 9000 + 100 * seed + i as u64, 20, "ddim", 4.0))?;
            let rgb = image::RgbImage::from_raw(32, 32, out.rgb).expect("32x32 RGB");
            samples.push(Sample { class: "out of world", spec: spec(prompt, next()), png: png(&rgb) });
        }
    }
    // Copies of the first good images, exact and near, reviewed after their originals.
    let originals: Vec<(JobSpec, Vec<u8>)> =
        samples.iter().filter(|s| s.class == "good").take(8 * seeds).map(|s| (s.spec.clone(), s.png.clone())).collect();
    for (i, (spec_of, bytes)) in originals.iter().enumerate() {
        let copy = if i % 2 == 0 {
            bytes.clone()
        } else {
            // A near copy: the picture re-encoded a little brighter and softer, as a re-upload
            // or an edit of it would be (no shift: at 32x32 a shifted crop is another picture).
            let img = image::load_from_memory(bytes)?.to_rgb8();
            let soft = image::imageops::blur(&img, 0.6);
            let near = image::RgbImage::from_fn(32, 32, |x, y| {
                let p = soft.get_pixel(x, y);
                image::Rgb([p[0].saturating_add(4), p[1].saturating_add(4), p[2].saturating_add(4)])
            });
            png(&near)
        };
        samples.push(Sample { class: "duplicate", spec: spec(&spec_of.prompt, next()), png: copy });
    }

    // Review in order, as a collection's jobs are: each image against the ones before it.
    // The default policy: the jobs' own (each spec carries it), and the duplicate check's.
    let policy = ReviewSection::default();
    let mut seen: Vec<(JobId, String)> = Vec::new();
    let mut table: BTreeMap<&str, [usize; 3]> = CLASSES.iter().map(|c| (*c, [0; 3])).collect();
    let mut qa_s = Vec::new();
    let mut misses = Vec::new();
    for s in &samples {
        let t = Instant::now();
        let mut report: QaReport = inspector.inspect_png(&s.spec, &s.png)?;
        // An "asked otherwise" sample reuses a good image's bytes to stand for another job's
        // picture: compared with the collection, it would only be a copy of itself.
        let others = seen.iter().map(|(j, h)| (*j, h.as_str()));
        if let Some(dup) =
            policy.duplicate_check(report.phash.as_deref(), others).filter(|_| s.class != "asked otherwise")
        {
            report.checks.push(dup);
        }
        let (state, why) = policy.decide(s.spec.id, &report.checks);
        qa_s.push(t.elapsed().as_secs_f64());
        let col = match state {
            JobState::Approved => 0,
            JobState::AwaitingReview => 1,
            _ => 2,
        };
        if let Some(row) = table.get_mut(s.class) {
            row[col] += 1;
        }
        if (s.class == "good") != (col == 0) {
            misses.push(format!("{:16} {:30} -> {state}: {why}", s.class, s.spec.prompt));
        }
        if let Some(h) = report.phash.filter(|_| s.class != "asked otherwise") {
            seen.push((s.spec.id, h));
        }
    }

    // How far apart pictures are: each copy from its original, each distinct picture from its
    // nearest other (what `duplicate_distance` must fall between).
    let hash = |png: &[u8]| -> anyhow::Result<u64> {
        let h = inspector.phash(&image::load_from_memory(png)?);
        Ok(u64::from_str_radix(&h, 16)?)
    };
    let distinct: Vec<u64> = samples
        .iter()
        .filter(|s| s.class != "duplicate" && s.class != "asked otherwise")
        .map(|s| hash(&s.png))
        .collect::<anyhow::Result<_>>()?;
    let mut nearest: Vec<u32> = distinct
        .iter()
        .enumerate()
        .map(|(i, a)| {
            distinct.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, b)| (a ^ b).count_ones()).min().unwrap_or(64)
        })
        .collect();
    nearest.sort_unstable();
    let copies: Vec<u32> = originals
        .iter()
        .zip(samples.iter().filter(|s| s.class == "duplicate"))
        .map(|((_, o), c)| Ok((hash(o)? ^ hash(&c.png)?).count_ones()))
        .collect::<anyhow::Result<_>>()?;
    println!(
        "copies: {copies:?} bits from their originals; distinct pictures: nearest other {:?}",
        &nearest[..nearest.len().min(12)]
    );

    let count = |c: &str| table[c].iter().sum::<usize>();
    let bad: Vec<&str> = CLASSES.iter().copied().filter(|c| *c != "good" && *c != "duplicate").collect();
    let bad_total: usize = bad.iter().map(|c| count(c)).sum();
    let bad_kept: usize = bad.iter().map(|c| table[c][1] + table[c][2]).sum();
    let good_total = count("good");
    let good_to_human = table["good"][1] + table["good"][2];
    let dup_total = count("duplicate");
    let dup_caught = table["duplicate"][1] + table["duplicate"][2];
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (gen_mean, qa_mean) = (mean(&generation_s), mean(&qa_s));

    println!("{:18} {:>9} {:>9} {:>9}", "class", "approved", "human", "rejected");
    for c in CLASSES {
        let r = table[c];
        println!("{c:18} {:>9} {:>9} {:>9}", r[0], r[1], r[2]);
    }
    println!(
        "bad kept from auto-approval: {bad_kept}/{bad_total}; good sent to a human: {good_to_human}/{good_total}; duplicates caught: {dup_caught}/{dup_total}"
    );
    println!(
        "QA {:.1} ms per image, generation {:.1} ms (20 steps): {:.1}%",
        qa_mean * 1e3,
        gen_mean * 1e3,
        100.0 * qa_mean / gen_mean
    );
    for m in misses.iter().take(20) {
        println!("  {m}");
    }

    let record = serde_json::json!({
        "date": chrono::Utc::now().format("%Y-%m-%d").to_string(),
        "machine": machine(),
        "build": if cfg!(debug_assertions) { "dev" } else { "release" },
        "model": "models/shapes-sd",
        "scorer": model,
        "seeds": seeds,
        "policy": serde_json::to_value(policy)?,
        "table": table.iter().map(|(c, r)| (c.to_string(), serde_json::json!({"approved": r[0], "human": r[1], "rejected": r[2]}))).collect::<serde_json::Map<_, _>>(),
        "copy_distances": copies,
        "nearest_distinct_distances": nearest,
        "generation_s": generation_s,
        "qa_s": qa_s,
    });
    let path = root.join("infra/bench/records/qa.jsonl");
    let mut line = serde_json::to_string(&record)?;
    line.push('\n');
    std::fs::OpenOptions::new().create(true).append(true).open(&path).and_then(|mut f| {
        use std::io::Write;
        f.write_all(line.as_bytes())
    })?;
    println!("record appended to {}", path.display());
    Ok(())
}
