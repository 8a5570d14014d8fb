//! The QA image-text model against transformers: a tiny CLIP with seeded random weights,
//! exported by `infra/model/train_clip_scorer.py --random`, whose `parity.json` holds the token
//! ids and the embeddings transformers computed for three texts (one in another script, with
//! emoji) and two images. latentmint-qa must read the export and agree.

use latentmint_e2e::{ort_library, repo_root};
use latentmint_qa::clip::ClipScorer;

fn unit(v: &[f64]) -> Vec<f64> {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn close(ours: &[f32], theirs: &[f64], what: &str) {
    let theirs = unit(theirs);
    assert_eq!(ours.len(), theirs.len(), "{what}: dimension");
    let worst = ours.iter().zip(&theirs).map(|(a, b)| (f64::from(*a) - b).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-4, "{what}: differs from transformers by up to {worst}");
}

#[test]
fn the_clip_export_matches_transformers() {
    let dir = repo_root().join("tests/fixtures/tiny-clip");
    let parity: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("parity.json")).unwrap()).unwrap();
    let scorer = ClipScorer::load_with(&dir, Some(&ort_library())).expect("the tiny CLIP export loads");
    let texts: Vec<String> =
        parity["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    for (i, text) in texts.iter().enumerate() {
        let (ids, _) = scorer.tokens(text).unwrap();
        let want: Vec<i64> = parity["input_ids"][i].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        assert_eq!(ids, want, "token ids of {text:?}");
    }
    let ours = scorer.text_embeddings(&texts).unwrap();
    for (i, e) in ours.iter().enumerate() {
        let theirs: Vec<f64> =
            parity["text_embeds"][i].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        close(e, &theirs, &format!("text {i}"));
    }
    for (i, img) in parity["images_rgb8"].as_array().unwrap().iter().enumerate() {
        let bytes: Vec<u8> = img.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u8).collect();
        let rgb = image::RgbImage::from_raw(32, 32, bytes).unwrap();
        let e = scorer.image_embedding(&image::DynamicImage::ImageRgb8(rgb)).unwrap();
        let theirs: Vec<f64> =
            parity["image_embeds"][i].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        close(&e, &theirs, &format!("image {i}"));
    }
}
