//! The demo model draws what it is asked: fixed prompts of every colour and shape, generated
//! with fixed seeds, judged by a simple classifier (dominant colour of the foreground, and the
//! foreground's fill of its bounding box plus a hole test for the shape).

use latentmint_diffusion::{Engine, EngineOptions, ImageRequest};
use latentmint_e2e::{ort_library, repo_root};

const COLOURS: [(&str, [f32; 3]); 8] = [
    ("red", [230.0, 40.0, 40.0]),
    ("green", [40.0, 200.0, 60.0]),
    ("blue", [50.0, 80.0, 240.0]),
    ("yellow", [240.0, 220.0, 40.0]),
    ("cyan", [40.0, 220.0, 230.0]),
    ("magenta", [220.0, 50.0, 220.0]),
    ("white", [240.0, 240.0, 240.0]),
    ("orange", [250.0, 140.0, 30.0]),
];
const SHAPES: [&str; 4] = ["circle", "square", "triangle", "ring"];

/// (colour, shape) of a 32x32 RGB image of one shape on a dark background.
pub fn classify(rgb: &[u8], w: usize, h: usize) -> (&'static str, &'static str) {
    let px = |x: usize, y: usize| {
        let i = (y * w + x) * 3;
        [f32::from(rgb[i]), f32::from(rgb[i + 1]), f32::from(rgb[i + 2])]
    };
    let bg = [18.0f32, 20.0, 28.0];
    let dist =
        |p: [f32; 3], q: [f32; 3]| ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2)).sqrt();
    let mask: Vec<bool> =
        (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).map(|(x, y)| dist(px(x, y), bg) > 90.0).collect();
    let (mut sum, mut n) = ([0f32; 3], 0f32);
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for y in 0..h {
        for x in 0..w {
            if mask[y * w + x] {
                let p = px(x, y);
                (0..3).for_each(|c| sum[c] += p[c]);
                n += 1.0;
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            }
        }
    }
    if n < 4.0 {
        return ("none", "none");
    }
    let mean = [sum[0] / n, sum[1] / n, sum[2] / n];
    let colour =
        COLOURS.iter().min_by(|a, b| dist(a.1, mean).total_cmp(&dist(b.1, mean))).map(|c| c.0).unwrap_or("none");
    let box_area = ((x1 - x0 + 1) * (y1 - y0 + 1)) as f32;
    let fill = n / box_area;
    let (cx, cy) = ((x0 + x1) / 2, (y0 + y1) / 2);
    let hole = (cy.saturating_sub(1)..=(cy + 1).min(h - 1))
        .all(|y| (cx.saturating_sub(1)..=(cx + 1).min(w - 1)).all(|x| !mask[y * w + x]));
    let shape = if hole {
        "ring"
    } else if fill > 0.88 {
        "square"
    } else if fill > 0.66 {
        "circle"
    } else {
        "triangle"
    };
    (colour, shape)
}

#[test]
fn the_demo_model_draws_the_colour_and_shape_asked_for() {
    let model = repo_root().join("models/shapes-sd");
    let opts = EngineOptions {
        ort_library: Some(ort_library()),
        intra_threads: 2,
        cuda: false,
        parallel_cfg: None,
        loras: vec![],
    };
    let mut e = Engine::load(&model, &opts).expect("shapes model loads");
    let (mut colour_ok, mut shape_ok, mut total) = (0, 0, 0);
    let mut report = String::new();
    for (ci, (colour, _)) in COLOURS.iter().enumerate() {
        for (si, shape) in SHAPES.iter().enumerate() {
            let req = ImageRequest {
                prompt: format!("a {colour} {shape}"),
                negative_prompt: String::new(),
                seed: (ci * 4 + si) as u64,
                steps: 20,
                guidance: 4.0,
                width: 32,
                height: 32,
                scheduler: "ddim".into(),
                initial_latents: None,
                step_noise: None,
                init_image: None,
            };
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
