//! The safety checker against diffusers: a tiny `StableDiffusionSafetyChecker` with seeded
//! random weights, exported in diffusers' ONNX layout by
//! `infra/model/export_safety_checker.py --random`, whose `parity.json` holds eight images and
//! the verdicts diffusers' own checker gives them (some flagged, some not, one only through the
//! special-care adjustment). latentmint-qa must read the export and agree on every image, and a
//! flagged image must never pass on its own.

use latentmint_core::pipeline::JobState;
use latentmint_core::qa::CheckVerdict;
use latentmint_core::testing::CollectionToml;
use latentmint_e2e::{ort_library, repo_root};
use latentmint_qa::ImageInspector;
use latentmint_qa::safety::SafetyChecker;

struct Parity {
    images: Vec<image::DynamicImage>,
    flags: Vec<bool>,
    special: usize,
}

fn parity() -> Parity {
    let dir = repo_root().join("tests/fixtures/tiny-safety");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("parity.json")).unwrap()).unwrap();
    let size = json["size"].as_u64().unwrap() as u32;
    let images = json["images_rgb8"]
        .as_array()
        .unwrap()
        .iter()
        .map(|img| {
            let bytes: Vec<u8> = img.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u8).collect();
            image::DynamicImage::ImageRgb8(image::RgbImage::from_raw(size, size, bytes).unwrap())
        })
        .collect();
    let flags = json["has_nsfw_concepts"].as_array().unwrap().iter().map(|v| v.as_bool().unwrap()).collect();
    let special = json["flagged_only_by_special_care"].as_u64().unwrap() as usize;
    Parity { images, flags, special }
}

fn checker() -> SafetyChecker {
    SafetyChecker::load_with(&repo_root().join("tests/fixtures/tiny-safety"), Some(&ort_library()))
        .expect("the tiny safety checker export loads")
}

#[test]
fn the_safety_checker_export_agrees_with_diffusers_on_every_image() {
    let p = parity();
    assert!(p.flags.iter().any(|f| *f) && p.flags.iter().any(|f| !*f), "the fixture must hold both verdicts");
    assert!(p.flags[p.special], "the special-care image is flagged");
    let checker = checker();
    for (i, (img, want)) in p.images.iter().zip(&p.flags).enumerate() {
        assert_eq!(checker.flags(img).unwrap(), *want, "image {i}: diffusers says flagged = {want}");
    }
    let record = checker.record();
    assert_eq!((record.role.as_str(), record.name.as_str()), ("safety", "tiny-safety"));
    assert_eq!(record.sha256.len(), 64);
}

fn png(img: &image::DynamicImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Under a policy that approves everything else (`auto_approve_at = 0`), a flagged image waits
/// for a human, with the checker named in its report and its digest in the report's models.
#[test]
fn a_flagged_image_never_passes_on_its_own() {
    let p = parity();
    let inspector = ImageInspector::new().with_safety(Some(checker()));
    let jobs = CollectionToml::new("S", "S")
        .prompt("a red circle")
        .section("[review]\nauto_approve_at = 0.0\nauto_reject_below = 0.0")
        .jobs();
    let job = &jobs[0];
    for (i, (img, flagged)) in p.images.iter().zip(&p.flags).enumerate() {
        let report = inspector.inspect_png(job, &png(img)).unwrap();
        let safety = report.checks.iter().find(|c| c.check == "safety").expect("a safety check");
        assert!(safety.model.as_deref().is_some_and(|m| m.starts_with("tiny-safety sha256:")), "{safety:?}");
        assert_eq!(report.models.len(), 1);
        let (state, why) = job.review.decide(job.id, &report.checks);
        if *flagged {
            assert_eq!(safety.verdict, CheckVerdict::Human, "image {i}");
            assert_eq!(state, JobState::AwaitingReview, "image {i}: {why}");
            assert!(why.contains("safety checker flags it"), "{why}");
        } else {
            assert_eq!(safety.verdict, CheckVerdict::Pass, "image {i}");
            assert_eq!(state, JobState::Approved, "image {i}: {why}");
        }
    }
}

/// A folder that is not a safety checker is refused with the files it should hold.
#[test]
fn a_folder_without_a_checker_is_refused_by_name() {
    let e = SafetyChecker::load_with(&repo_root().join("tests/fixtures/tiny-clip"), Some(&ort_library()))
        .err()
        .expect("tiny-clip is no safety checker")
        .to_string();
    assert!(e.contains("safety_checker/model.onnx") && e.contains("feature_extractor"), "{e}");
}
