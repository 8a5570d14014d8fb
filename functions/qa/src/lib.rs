//! # latentmint-qa
//!
//! The review stage's [`Inspector`]: what can be told of one image without a human.
//!
//! - the technical check: contrast and exposure from the image's statistics
//!   ([`QaReport::measure`]), which catches what a broken generation looks like (flat, black,
//!   blown out);
//! - a 64-bit perceptual hash (DCT hash, [`image_hasher`]), which the review stage compares
//!   with the collection's other images (the job store keeps them, so it works across Lambda
//!   invocations);
//! - with a CLIP-style image-text model ([`clip::ClipScorer`], `[qa] clip`): for each group of
//!   the model's vocabulary (colour, shape), the value it sees best becomes an automatic
//!   attribute, and the value the prompt or the traits ask for is held to `min_adherence`
//!   (asked "red", sees "blue": a human looks).
//!
//! What the checks mean for a job (approve, a human, reject) is the collection's `[review]`
//! policy ([`latentmint_core::qa::ReviewSection::decide`]).

pub mod clip;
pub mod processor;
pub mod safety;

use async_trait::async_trait;
use image_hasher::{HashAlg, Hasher, HasherConfig};
use latentmint_core::JobSpec;
use latentmint_core::ports::{Inspector, PortError, PortResult};
use latentmint_core::qa::{QaReport, QaTag};

use crate::clip::ClipScorer;
use crate::safety::SafetyChecker;

/// Why an image could not be inspected.
#[derive(Debug, thiserror::Error)]
pub enum QaError {
    /// The bytes are not a PNG this crate can read.
    #[error("the image is not a readable PNG: {0}")]
    Decode(String),
    /// The image has no pixels.
    #[error("the image is empty")]
    Empty,
    /// A QA model could not be loaded or run.
    #[error("QA model: {0}")]
    Model(String),
}

/// The checks every deployment runs: statistics and the perceptual hash.
pub struct ImageInspector {
    hasher: Hasher,
    clip: Option<ClipScorer>,
    safety: Option<SafetyChecker>,
    /// The brand's reference images as the model sees them (unit-length embeddings).
    references: Vec<Vec<f32>>,
}

impl Default for ImageInspector {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageInspector {
    /// The inspector with a 64-bit DCT perceptual hash (pHash: each of the 8x8 lowest
    /// frequencies of a 16x16 grey image against their median): robust to resizing, blur and
    /// recompression, so a near-duplicate lands within a few bits. The median, not the mean:
    /// the DC term outweighs the rest, so against the mean every busy image hashes alike.
    pub fn new() -> Self {
        let hasher = HasherConfig::new().hash_size(8, 8).hash_alg(HashAlg::Median).preproc_dct().to_hasher();
        Self { hasher, clip: None, safety: None, references: vec![] }
    }

    /// Adds the brand's reference images (PNG bytes): an image far from all of them goes to a
    /// human. Needs the image-text model ([`ImageInspector::with_clip`] first).
    pub fn with_references(mut self, pngs: &[Vec<u8>]) -> Result<Self, QaError> {
        let clip =
            self.clip.as_ref().ok_or_else(|| QaError::Model("reference images need an image-text model".into()))?;
        let mut embeds = Vec::with_capacity(pngs.len());
        for png in pngs {
            let img = image::load_from_memory_with_format(png, image::ImageFormat::Png)
                .map_err(|e| QaError::Decode(e.to_string()))?;
            embeds.push(clip.image_embedding(&img)?);
        }
        self.references = embeds;
        Ok(self)
    }

    /// Adds an image-text model: adherence checks and automatic attributes.
    pub fn with_clip(mut self, clip: Option<ClipScorer>) -> Self {
        self.clip = clip;
        self
    }

    /// Adds a safety checker: a flagged image never passes on its own.
    pub fn with_safety(mut self, safety: Option<SafetyChecker>) -> Self {
        self.safety = safety;
        self
    }

    /// The checks of `png` under `job`'s policy: the report with its technical check and the
    /// image's perceptual hash.
    pub fn inspect_png(&self, job: &JobSpec, png: &[u8]) -> Result<QaReport, QaError> {
        let img = image::load_from_memory_with_format(png, image::ImageFormat::Png)
            .map_err(|e| QaError::Decode(e.to_string()))?;
        let rgb = img.to_rgb8();
        let mut report = QaReport::measure(rgb.as_raw(), rgb.width(), rgb.height()).ok_or(QaError::Empty)?;
        report.phash = Some(self.phash(&img));
        report.checks.push(job.review.technical_check(&report));
        if let Some(safety) = &self.safety {
            report.checks.push(job.review.safety_check(safety.flags(&img)?, &safety.model()));
            report.models.push(safety.record());
        }
        if let Some(clip) = &self.clip {
            let model = clip.model();
            report.models.push(clip.record());
            let embedding = clip.image_embedding(&img)?;
            // Brand drift: the nearest reference image, by cosine similarity.
            let nearest = self
                .references
                .iter()
                .enumerate()
                .map(|(i, r)| (i, r.iter().zip(&embedding).map(|(a, b)| a * b).sum::<f32>()))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((i, similarity)) = nearest {
                report.checks.push(job.review.drift_check(similarity, i, &model));
            }
            let seen = clip.score_groups(&embedding);
            let mut asked_any = false;
            for scores in &seen {
                let Some((group, vocabulary)) = clip.groups().find(|(g, _)| *g == scores.group) else { continue };
                let asked = asked_value(job, group, &vocabulary.values);
                asked_any |= asked.is_some();
                let flag = &vocabulary.flag_values;
                if let Some(check) = job.review.adherence_check(group, asked, &scores.values, flag, &model) {
                    report.checks.push(check);
                }
                if let Some((value, score)) = scores.values.first() {
                    report.tags.push(QaTag {
                        trait_type: group.to_string(),
                        value: value.clone(),
                        score: *score,
                        model: model.clone(),
                    });
                }
            }
            // Nothing the model knows was asked: it cannot say whether the image is right.
            if !asked_any && !seen.is_empty() {
                let groups: Vec<&str> = seen.iter().map(|s| s.group.as_str()).collect();
                report.checks.push(latentmint_core::qa::QaCheck {
                    check: "adherence".into(),
                    value: 0.0,
                    threshold: "the prompt names a value the model knows".into(),
                    verdict: latentmint_core::qa::CheckVerdict::Human,
                    detail: format!("the prompt names no {} the model knows", groups.join(" or ")),
                    model: Some(model.clone()),
                });
            }
        }
        Ok(report)
    }

    /// The image's perceptual hash as 16 hex digits.
    pub fn phash(&self, img: &image::DynamicImage) -> String {
        self.hasher.hash_image(img).as_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The name a model goes by in reports: its folder's name.
fn folder_name(dir: &std::path::Path, fallback: &str) -> String {
    // `models/shapes-sd/.` names the folder too.
    let dir = dir.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect::<std::path::PathBuf>();
    dir.file_name().map_or_else(|| fallback.into(), |n| n.to_string_lossy().into_owned())
}

/// The value of `group` that `job` asks for: its trait of that name, else the one value of the
/// group its prompt names as a word (none when it names several or none).
fn asked_value<'a>(job: &JobSpec, group: &str, values: &'a [String]) -> Option<&'a str> {
    if let Some((_, v)) = job.traits.iter().find(|(name, _)| name.eq_ignore_ascii_case(group)) {
        return values.iter().find(|x| x.eq_ignore_ascii_case(v)).map(String::as_str);
    }
    let prompt = job.prompt.to_lowercase();
    let words: Vec<&str> = prompt.split(|c: char| !c.is_alphanumeric()).collect();
    let mut named = values.iter().filter(|v| words.contains(&v.to_lowercase().as_str()));
    match (named.next(), named.next()) {
        (Some(one), None) => Some(one.as_str()),
        _ => None,
    }
}

#[async_trait]
impl Inspector for ImageInspector {
    async fn inspect(&self, job: &JobSpec, png: &[u8]) -> PortResult<QaReport> {
        // A PNG that does not decode will not decode on a retry either; a model that fails
        // to run may run on the next delivery.
        self.inspect_png(job, png).map_err(|e| match e {
            QaError::Model(_) => PortError::Transient(e.to_string()),
            _ => PortError::Permanent(e.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use latentmint_core::qa::CheckVerdict;
    use latentmint_core::testing::CollectionToml;

    fn png(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    /// A disc of `colour` centred at (cx, cy) with radius r on a dark background.
    fn disc(size: u32, cx: f32, cy: f32, r: f32, colour: [u8; 3]) -> Vec<u8> {
        png(size, size, |x, y| {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            if dx * dx + dy * dy <= r * r { colour } else { [18, 20, 28] }
        })
    }

    fn distance(a: &str, b: &str) -> u32 {
        (u64::from_str_radix(a, 16).unwrap() ^ u64::from_str_radix(b, 16).unwrap()).count_ones()
    }

    #[test]
    fn the_same_picture_hashes_alike_and_another_picture_does_not() {
        let inspector = ImageInspector::new();
        let job = &CollectionToml::new("T", "T").prompt("a red circle").jobs()[0];
        let a = inspector.inspect_png(job, &disc(64, 20.0, 20.0, 10.0, [230, 40, 40])).unwrap();
        let again = inspector.inspect_png(job, &disc(64, 20.0, 20.0, 10.0, [230, 40, 40])).unwrap();
        let nudged = inspector.inspect_png(job, &disc(64, 20.5, 20.0, 10.0, [230, 40, 40])).unwrap();
        let elsewhere = inspector.inspect_png(job, &disc(64, 44.0, 44.0, 10.0, [230, 40, 40])).unwrap();
        let (a, again, nudged, elsewhere) =
            (a.phash.unwrap(), again.phash.unwrap(), nudged.phash.unwrap(), elsewhere.phash.unwrap());
        assert_eq!(a.len(), 16);
        assert_eq!(a, again);
        assert!(distance(&a, &nudged) <= 4, "{a} {nudged}");
        assert!(distance(&a, &elsewhere) > 8, "{a} {elsewhere}");
    }

    /// Three different noise images (what a random-weight model draws) are three pictures.
    #[test]
    fn different_busy_images_do_not_hash_alike() {
        let inspector = ImageInspector::new();
        let job = &CollectionToml::new("T", "T").prompt("x").jobs()[0];
        let noise = |k: u32| {
            png(32, 32, move |x, y| {
                let v = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503) ^ k.wrapping_mul(97))
                    .wrapping_mul(2_246_822_519);
                [(v >> 8) as u8, (v >> 16) as u8, (v >> 24) as u8]
            })
        };
        let hashes: Vec<String> =
            (0..3).map(|k| inspector.inspect_png(job, &noise(k)).unwrap().phash.unwrap()).collect();
        for (i, a) in hashes.iter().enumerate() {
            for b in &hashes[i + 1..] {
                assert!(distance(a, b) > 12, "{a} {b}");
            }
        }
    }

    #[test]
    fn a_flat_image_is_rejected_by_the_technical_check_and_a_shape_passes() {
        let inspector = ImageInspector::new();
        let job = &CollectionToml::new("T", "T").prompt("a red circle").jobs()[0];
        let flat = inspector.inspect_png(job, &png(32, 32, |_, _| [128, 128, 128])).unwrap();
        assert_eq!(flat.checks[0].verdict, CheckVerdict::Reject, "{:?}", flat.checks);
        let shape = inspector.inspect_png(job, &disc(32, 16.0, 16.0, 9.0, [230, 40, 40])).unwrap();
        assert_eq!(shape.checks[0].verdict, CheckVerdict::Pass, "{:?}", shape.checks);
    }

    #[test]
    fn bytes_that_are_not_a_png_are_refused_for_good() {
        let inspector = ImageInspector::new();
        let job = &CollectionToml::new("T", "T").prompt("x").jobs()[0];
        let e = tokio_test_block(inspector.inspect(job, b"GIF89a..."));
        assert!(matches!(e, Err(PortError::Permanent(m)) if m.contains("not a readable PNG")));
    }

    fn tokio_test_block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }
}
