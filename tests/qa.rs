//! The review policy end to end, through `latentmint run` and `latentmint review --list`:
//! `mode = "all"` holds every image for a human, and a picture made twice is caught as a
//! duplicate, with the reason shown to the operator.

use std::path::Path;
use std::process::Output;

use latentmint_e2e::{anvil, latentmint_bin, latentmint_run, tiny_collection};

fn run(file: &Path, data: &Path) -> Output {
    latentmint_run(file, data).env("LATENTMINT_ANVIL", anvil()).output().unwrap()
}

/// Writes `text` as `name` in `dir`, runs it with its data folder `dir/data`, and checks that
/// the run succeeded: (the collection file, the data folder, the run's output).
fn run_collection(dir: &Path, name: &str, text: &str) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    let data = dir.join("data");
    let out = run(&file, &data);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}\n{text}", String::from_utf8_lossy(&out.stderr));
    (file, data, stdout)
}

fn listed(file: &Path, data: &Path) -> String {
    let (out, ok) = review(file, data, &["--list"]);
    assert!(ok, "{out}");
    out
}

#[test]
fn mode_all_holds_every_image_for_a_human_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    // Thresholds that would approve everything: the mode still sends every image to a human.
    let text = tiny_collection("Every One", "ALL")
        .section("[review]\nmode = \"all\"\nauto_approve_at = 0.0\nauto_reject_below = 0.0")
        .prompt("a red circle")
        .prompt("a blue square")
        .prompt("a green ring")
        .text();
    let (file, data, stdout) = run_collection(tmp.path(), "all.toml", &text);
    assert!(stdout.contains("3 awaiting_review") && stdout.contains("this run: 0 minted"), "{stdout}");
    // The run's last line gives the commands that continue it, with the data folder it used.
    let resume = format!("`latentmint run {} --data-dir {}` resumes", file.display(), data.display());
    assert!(stdout.contains(&resume), "{stdout}");
    let list = listed(&file, &data);
    assert!(list.starts_with("3 jobs awaiting review"), "{list}");
    assert_eq!(list.matches("mode = \"all\"").count(), 3, "{list}");
    assert!(list.contains("--data-dir"), "the hint keeps the data folder: {list}");

    // For scripts: the same list as JSON, each job with its report.
    let json: serde_json::Value = serde_json::from_str(&review(&file, &data, &["--list", "--json"]).0).unwrap();
    let first = json[0]["job"].as_str().unwrap().to_string();
    assert_eq!(json.as_array().unwrap().len(), 3);
    assert!(json[0]["qa"]["checks"].as_array().is_some_and(|c| !c.is_empty()), "{json}");

    // Approving twice is done once; taking an approval back is refused with why.
    let (out, ok) = review(&file, &data, &[&first[..8]]);
    assert!(ok && out.contains("is now approved"), "{out}");
    let (out, ok) = review(&file, &data, &[&first[..8]]);
    assert!(ok && out.contains("is already approved"), "{out}");
    let (out, ok) = review(&file, &data, &[&first[..8], "--reject"]);
    assert!(!ok && out.contains("was approved") && out.contains("not taken back"), "{out}");
    let json: serde_json::Value = serde_json::from_str(&review(&file, &data, &["--list", "--json"]).0).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
}

/// `latentmint review FILE ARGS --data-dir DATA`: its output (stdout, then stderr) and whether
/// it succeeded.
fn review(file: &Path, data: &Path, args: &[&str]) -> (String, bool) {
    let out = std::process::Command::new(latentmint_bin())
        .arg("review")
        .arg(file)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (text, out.status.success())
}

#[test]
fn a_picture_made_twice_is_caught_and_the_operator_is_told_which_job_it_repeats() {
    let tmp = tempfile::tempdir().unwrap();
    // Two prompts, same text, same seed: the same picture (a third prompt is a control).
    let text = tiny_collection("Twice", "TWC")
        .section("[review]\nauto_approve_at = 0.0\nauto_reject_below = 0.0")
        .section("[[prompts]]\ntext = \"a red circle\"\nseed = 7\n[[prompts]]\ntext = \"a red circle\"\nseed = 7")
        .prompt("a blue square")
        .text();
    let (file, data, stdout) = run_collection(tmp.path(), "twice.toml", &text);
    assert!(stdout.contains("2 minted") && stdout.contains("1 awaiting_review"), "{stdout}");
    let list = listed(&file, &data);
    assert!(list.starts_with("1 job awaiting review"), "{list}");
    assert!(list.contains("duplicate: the same picture as job"), "{list}");

    // Run again: the waiting copy is still a copy (the first is a token now), and no third
    // token appears.
    let again = run(&file, &data);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success() && stdout.contains("this run: 0 minted"), "{stdout}");
}

/// The demo model and the demo's QA scorer (an image-text model trained on the demo model's
/// colours and shapes), with the technical check out of the way; `qa` adds lines to `[qa]`.
fn shapes_collection(name: &str, generation: &str, qa: &str) -> latentmint_core::testing::CollectionToml {
    let root = latentmint_e2e::repo_root();
    latentmint_core::testing::CollectionToml::new(name, "QA")
        .model(&root.join("models/shapes-sd").display().to_string())
        .generation(generation)
        .section("[review]\nauto_approve_at = 0.0\nauto_reject_below = 0.0")
        .section(&format!("[qa]\nclip = \"{}\"\n{qa}", root.join("models/shapes-clip").display()))
}

/// The demo model draws "a red circle" (seed 3) in another colour: the scorer sees it, the job waits for
/// a human and the operator reads why; an independent pixel judge agrees the picture is not red.
/// "a blue circle" beside it (another seed: the same layout recoloured would be a
/// near-duplicate, the perceptual hash being of the grey picture) is drawn blue and minted, with what the model saw as automatic
/// attributes.
#[test]
fn a_wrong_colour_is_flagged_with_the_reason_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let text = shapes_collection(
        "Wrong Colour",
        "steps = 20\nwidth = 32\nheight = 32\nguidance = 4.0\nscheduler = \"ddim\"",
        "",
    )
    .section("[[prompts]]\ntext = \"a red circle\"\nseed = 3\n[[prompts]]\ntext = \"a blue circle\"\nseed = 5")
    .text();
    let (file, data, stdout) = run_collection(tmp.path(), "colour.toml", &text);
    assert!(stdout.contains("1 awaiting_review") && stdout.contains("1 minted"), "{stdout}");
    let list = listed(&file, &data);
    assert!(list.contains("\"a red circle\"") && list.contains("colour: asked red, sees "), "{list}");
    assert!(!list.contains("\"a blue circle\""), "{list}");

    // The independent judge: the same picture made again, read pixel by pixel.
    let again =
        latentmint_e2e::shapes::engine(1).generate(&latentmint_e2e::shapes::request("a red circle", 3)).unwrap();
    let (colour, _) = latentmint_e2e::shapes::classify(&again.rgb, 32, 32);
    assert_ne!(colour, "red", "the pixel judge sees the held image as red");

    // The minted token's metadata carries the model's word beside the collection's.
    let tokens: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("wrong-colour/tokens.json")).unwrap()).unwrap();
    let minted = tokens["jobs"].as_array().unwrap().iter().find(|j| j["state"] == "minted").unwrap();
    let cid = minted["metadata"].as_str().unwrap().trim_start_matches("ipfs://").to_string();
    let meta = std::fs::read_to_string(data.join("wrong-colour/ipfs").join(&cid)).unwrap();
    let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
    let auto: Vec<&serde_json::Value> =
        meta["attributes"].as_array().unwrap().iter().filter(|a| a.get("source").is_some()).collect();
    assert!(
        auto.iter().any(|a| a["trait_type"] == "colour" && a["value"] == "blue")
            && auto.iter().any(|a| a["trait_type"] == "shape" && a["value"] == "circle"),
        "automatic attributes: {auto:?}"
    );
    assert!(auto.iter().all(|a| a["source"].as_str().unwrap().starts_with("qa shapes-clip sha256:")), "{auto:?}");
}

/// One-step images of the demo model are shapeless blobs: none is minted, each waits for a
/// human with what the scorer saw instead of what was asked.
#[test]
fn one_step_blobs_wait_for_a_human() {
    let tmp = tempfile::tempdir().unwrap();
    let text =
        shapes_collection("Blobs", "steps = 1\nwidth = 32\nheight = 32\nscheduler = \"lcm\"\nguidance = 1.0", "")
            .prompt("a red circle")
            .prompt("a green square")
            .prompt("a yellow triangle")
            .text();
    let (file, data, stdout) = run_collection(tmp.path(), "blobs.toml", &text);
    assert!(stdout.contains("this run: 0 minted"), "{stdout}");
    let list = listed(&file, &data);
    assert!(list.starts_with("3 jobs awaiting review"), "{list}");
    // Each job's line is followed by its reason, naming what the scorer saw.
    let lines: Vec<&str> = list.lines().collect();
    for (i, line) in lines.iter().enumerate().filter(|(_, l)| l.starts_with("  ") && !l.starts_with("   ")) {
        assert!(lines.get(i + 1).is_some_and(|r| r.contains("adherence:")), "{line}: {list}");
    }
}

/// A disc of `rgb` on the demo world's dark background, as a PNG file at `path`.
fn reference_disc(path: &Path, rgb: [u8; 3], cx: f32, cy: f32) {
    let img = image::RgbImage::from_fn(32, 32, |x, y| {
        let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
        image::Rgb(if dx * dx + dy * dy <= 81.0 { rgb } else { [18, 20, 28] })
    });
    img.save(path).unwrap();
}

/// A collection whose reference images are red circles: the blue square drifts from the brand
/// and waits for a human, the report naming the nearest reference; the red circle stays near.
#[test]
fn an_image_far_from_the_brands_references_waits_for_a_human() {
    let tmp = tempfile::tempdir().unwrap();
    reference_disc(&tmp.path().join("ref-0.png"), [230, 40, 40], 14.0, 15.0);
    reference_disc(&tmp.path().join("ref-1.png"), [220, 50, 45], 18.0, 17.0);
    let text = shapes_collection(
        "Brand",
        "steps = 20\nwidth = 32\nheight = 32\nguidance = 4.0\nscheduler = \"ddim\"",
        "references = [\"ref-0.png\", \"ref-1.png\"]",
    )
    .section("[[prompts]]\ntext = \"a red circle\"\nseed = 1\n[[prompts]]\ntext = \"a blue square\"\nseed = 2")
    .text();
    let (file, data, _) = run_collection(tmp.path(), "brand.toml", &text);
    let list = listed(&file, &data);
    let lines: Vec<&str> = list.lines().collect();
    let reason_of = |prompt: &str| {
        lines.iter().position(|l| l.contains(prompt)).and_then(|i| lines.get(i + 1)).copied().unwrap_or_default()
    };
    let blue = reason_of("\"a blue square\"");
    assert!(blue.contains("drift: far from the brand's reference images (nearest: reference"), "{list}");
    assert!(!reason_of("\"a red circle\"").contains("drift: far"), "{list}");
}

/// A collection that names a safety checker (the tiny random export of diffusers' checker,
/// which flags some of the demo's pictures): every image it flags waits for a human even
/// though the policy would approve everything, with the reason shown; every token minted
/// names the checker and the image-text model by digest in its signed provenance, which
/// `latentmint provenance` verifies and prints.
#[test]
fn a_safety_flag_waits_for_a_human_and_the_qa_models_are_signed_into_provenance() {
    let tmp = tempfile::tempdir().unwrap();
    let root = latentmint_e2e::repo_root();
    let safety = root.join("tests/fixtures/tiny-safety");
    let text = shapes_collection(
        "Safety",
        "steps = 20\nwidth = 32\nheight = 32\nguidance = 4.0\nscheduler = \"ddim\"",
        &format!("safety_checker = \"{}\"", safety.display()),
    )
    .prompt("a red circle")
    .prompt("a blue square")
    .prompt("a green triangle")
    .prompt("a yellow ring")
    .prompt("a purple circle")
    .prompt("an orange square")
    .text();
    let (file, data, stdout) = run_collection(tmp.path(), "safety.toml", &text);
    let list = listed(&file, &data);
    // Each waiting job's line is followed by its reason; some wait for the checker alone.
    let reasons: Vec<&str> = list.lines().filter(|l| l.starts_with("      ")).collect();
    let flagged_alone = reasons.iter().filter(|r| r.trim() == "safety: the safety checker flags it: a human decides");
    assert!(flagged_alone.count() >= 1, "the random checker flags some of these pictures: {list}\n{stdout}");
    let waiting = reasons.len();

    let tokens: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("safety/tokens.json")).unwrap()).unwrap();
    let minted: Vec<&serde_json::Value> =
        tokens["jobs"].as_array().unwrap().iter().filter(|j| j["state"] == "minted").collect();
    assert!(!minted.is_empty(), "{list}");
    assert_eq!(minted.len(), 6 - waiting, "what does not wait is minted: {stdout}");
    let want = latentmint_qa::safety::SafetyChecker::load_with(&safety, Some(&latentmint_e2e::ort_library()))
        .unwrap()
        .record();
    for job in minted {
        let cid = job["metadata"].as_str().unwrap().trim_start_matches("ipfs://").to_string();
        let path = data.join("safety/ipfs").join(&cid);
        let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let qa = meta["provenance"]["qa"].as_array().unwrap();
        let roles: Vec<&str> = qa.iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["safety", "image-text"], "{qa:?}");
        assert_eq!(qa[0]["sha256"], want.sha256, "the checker's digest over its files");
        let out = std::process::Command::new(latentmint_bin()).arg("provenance").arg(&path).output().unwrap();
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{printed}{}", String::from_utf8_lossy(&out.stderr));
        assert!(printed.contains(&format!("QA safety model tiny-safety (sha256 {})", want.sha256)), "{printed}");
        assert!(printed.contains("QA image-text model shapes-clip"), "{printed}");
    }
}
