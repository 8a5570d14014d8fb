//! The demo model draws what it is asked: fixed prompts of every colour and shape, generated
//! with fixed seeds, judged by a simple classifier (dominant colour of the foreground, and the
//! foreground's fill of its bounding box plus a hole test for the shape).

use latentmint_e2e::repo_root;
use latentmint_e2e::shapes::{self, COLOURS, SHAPES, classify};

#[test]
fn the_demo_model_draws_the_colour_and_shape_asked_for() {
    let mut e = shapes::engine(2);
    let (mut colour_ok, mut shape_ok, mut total) = (0, 0, 0);
    let mut report = String::new();
    for (ci, (colour, _)) in COLOURS.iter().enumerate() {
        for (si, shape) in SHAPES.iter().enumerate() {
            let req = shapes::request(&format!("a {colour} {shape}"), (ci * 4 + si) as u64);
            let out = e.generate(&req).unwrap();
            let (c, s) = classify(&out.rgb, 32, 32);
            colour_ok += usize::from(c == *colour);
            shape_ok += usize::from(s == *shape);
            total += 1;
            report.push_str(&format!("{colour} {shape} -> {c} {s}\n"));
        }
    }
    println!("{report}colour {colour_ok}/{total}, shape {shape_ok}/{total}");
    // Chance is 4/32 for colour and 8/32 for shape (the random-weight model scores about that).
    // The committed model, trained for 33 CPU minutes, scores 22/32 and 31/32: it confuses
    // neighbouring hues (red/magenta, orange/yellow, green/cyan), which longer training fixes.
    assert!(colour_ok >= 20, "colour right for only {colour_ok}/{total}:\n{report}");
    assert!(shape_ok >= 28, "shape right for only {shape_ok}/{total}:\n{report}");
}

/// The classifier itself is right on the images the model was trained on
/// (tests/fixtures/shapes-procedural.npy, drawn by infra/model/train_shapes.py).
#[test]
fn the_classifier_knows_the_training_images() {
    let imgs: ndarray::Array4<u8> =
        ndarray_npy::read_npy(repo_root().join("tests/fixtures/shapes-procedural.npy")).unwrap();
    let labels = std::fs::read_to_string(repo_root().join("tests/fixtures/shapes-procedural.txt")).unwrap();
    let mut wrong = Vec::new();
    for (img, label) in imgs.outer_iter().zip(labels.lines()) {
        let rgb: Vec<u8> = img.iter().copied().collect();
        let (c, s) = classify(&rgb, 32, 32);
        if format!("{c} {s}") != label {
            wrong.push(format!("{label} -> {c} {s}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:?}");
}
