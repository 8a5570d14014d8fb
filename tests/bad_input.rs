//! Bad input through the real binary: each gets exit code 2, a message naming the field (or
//! file) and the fix, and leaves nothing behind (no job, no queue, no token).

use latentmint_core::testing::CollectionToml;
use std::path::{Path, PathBuf};
use std::process::Command;

use latentmint_e2e::{latentmint_bin, ort_library, tiny_model};

const GOOD_RECIPIENT: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

fn collection(recipient: &str, prompt: &str, model: &str) -> String {
    format!(
        "[collection]\nname = \"Bad Input\"\nsymbol = \"BAD\"\nrecipient = \"{recipient}\"\n\n[generation]\nmodel = \"{model}\"\nsteps = 2\n\n[[prompts]]\ntext = \"{prompt}\"\n\n[[prompts]]\ntext = \"a fine prompt\"\n"
    )
}

/// Runs `latentmint run` on `text`; returns stderr after checking the refusal.
fn refused(text: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("c.toml");
    std::fs::write(&file, text).unwrap();
    let data = tmp.path().join("data");
    let out = Command::new(latentmint_bin())
        .arg("run")
        .arg(&file)
        .arg("--data-dir")
        .arg(&data)
        .arg("--no-progress")
        .env("ORT_DYLIB_PATH", ort_library())
        // An unreachable RPC: nothing may get as far as the chain.
        .env("LATENTMINT_SIGNER_KEY", "0x01")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "expected a refusal, got {:?}\n{stderr}", out.status);
    assert!(!data.exists() || is_empty_dir(&data), "a refused collection left state behind in {}", data.display());
    stderr
}

fn is_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p).map(|mut d| d.next().is_none()).unwrap_or(true)
}

fn model() -> String {
    tiny_model().display().to_string()
}

#[test]
fn empty_prompt() {
    let e = refused(&collection(GOOD_RECIPIENT, "   ", &model()));
    assert!(e.contains("prompts[0].text: is empty; write a prompt"), "{e}");
}

#[test]
fn hundred_kilobyte_prompt() {
    let e = refused(&collection(GOOD_RECIPIENT, &"x".repeat(100 * 1024), &model()));
    assert!(e.contains("prompts[0].text: is 102400 characters long; the limit is 1000"), "{e}");
}

#[test]
fn control_characters() {
    let e = refused(&collection(GOOD_RECIPIENT, "a red\\u0007 circle", &model()));
    assert!(e.contains("prompts[0].text: contains a control character, U+0007, at byte 5"), "{e}");
}

#[test]
fn invalid_address() {
    let e = refused(&collection("0x1234", "a circle", &model()));
    assert!(e.contains("collection.recipient") && e.contains("40 hex digits"), "{e}");
}

#[test]
fn non_checksummed_address() {
    let e = refused(&collection(&GOOD_RECIPIENT.to_lowercase(), "a circle", &model()));
    assert!(e.contains("collection.recipient") && e.contains(GOOD_RECIPIENT), "names the checksummed form: {e}");
    let wrong_case = GOOD_RECIPIENT.replace('C', "c").replacen('c', "C", 1);
    let e = refused(&collection(&wrong_case, "a circle", &model()));
    assert!(e.contains("EIP-55"), "{e}");
}

#[test]
fn malformed_toml() {
    let e = refused("[collection\nname = ");
    assert!(e.contains("c.toml") && e.contains("line 1"), "{e}");
}

#[test]
fn incomplete_collection() {
    let text = collection(GOOD_RECIPIENT, "a circle", &model()).replace("recipient = ", "# recipient = ");
    let e = refused(&text);
    assert!(e.contains("recipient"), "{e}");
    let e = refused(&CollectionToml::new("x", "X").text());
    assert!(e.contains("prompts: no [[prompts]] given"), "{e}");
}

#[test]
fn missing_model_folder() {
    let e = refused(&collection(GOOD_RECIPIENT, "a circle", "/nonexistent/model"));
    assert!(e.contains("generation.model") && e.contains("/nonexistent/model") && e.contains("does not exist"), "{e}");
}

/// The QA model's folder missing, or reference images with no model to read them: refused
/// before anything is generated, naming the key.
#[test]
fn missing_qa_model_and_references_without_one() {
    let text = collection(GOOD_RECIPIENT, "a circle", &model());
    let e = refused(&format!("{text}\n[qa]\nclip = \"/nonexistent/clip\"\n"));
    assert!(e.contains("qa.clip") && e.contains("/nonexistent/clip"), "{e}");
    let e = refused(&format!("{text}\n[qa]\nreferences = [\"brand.png\"]\n"));
    assert!(e.contains("qa.references") && e.contains("add qa.clip"), "{e}");
}

/// A safety checker that is not there, is no checker, or is named by an empty key: refused
/// before anything is generated, naming the key and the files it needs.
#[test]
fn a_safety_checker_that_cannot_be_loaded() {
    let text = collection(GOOD_RECIPIENT, "a circle", &model());
    let e = refused(&format!("{text}\n[qa]\nsafety_checker = \"/nonexistent/checker\"\n"));
    assert!(
        e.contains("qa.safety_checker")
            && e.contains("/nonexistent/checker")
            && e.contains("safety_checker/model.onnx"),
        "{e}"
    );
    let clip = latentmint_e2e::repo_root().join("tests/fixtures/tiny-clip");
    let e = refused(&format!("{text}\n[qa]\nsafety_checker = \"{}\"\n", clip.display()));
    assert!(e.contains("qa.safety_checker") && e.contains("feature_extractor"), "{e}");
    let e = refused(&format!("{text}\n[qa]\nsafety_checker = \" \"\n"));
    assert!(e.contains("qa.safety_checker: is empty"), "{e}");
}

#[test]
fn missing_model_file() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("broken-model");
    std::fs::create_dir_all(m.join("unet")).unwrap();
    std::fs::write(m.join("model_index.json"), "{}").unwrap();
    let e = refused(&collection(GOOD_RECIPIENT, "a circle", &m.display().to_string()));
    assert!(e.contains("text_encoder/model.onnx") && e.contains("missing"), "{e}");
}

/// A state folder `bad-input` holding `files`, and a collection file that uses it, on a chain
/// nothing can reach: (temporary root, data dir, state folder, collection file).
fn state_folder_with(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let folder = data.join("bad-input");
    std::fs::create_dir_all(&folder).unwrap();
    for (name, text) in files {
        std::fs::write(folder.join(name), text).unwrap();
    }
    let file = tmp.path().join("c.toml");
    let text = collection(GOOD_RECIPIENT, "a circle", &model());
    std::fs::write(&file, format!("{text}\n[chain]\nchain_id = 31337\nrpc_url = \"http://127.0.0.1:9\"\n")).unwrap();
    (tmp, data, folder, file)
}

/// `latentmint ARGS FILE EXTRA --data-dir DATA`, checked to be refused (exit 2): its stderr.
fn refused_in(data: &Path, file: &Path, args: &[&str], extra: &[&str]) -> String {
    let out = Command::new(latentmint_bin())
        .args(args)
        .arg(file)
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .env("ORT_DYLIB_PATH", ort_library())
        .env("LATENTMINT_SIGNER_KEY", "0x01")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    stderr
}

/// "Bad Input" and "bad input" share the state folder `bad-input`: the second collection is
/// refused by every command that would use the folder, before it touches it (or a chain).
#[test]
fn a_collection_whose_name_shares_another_ones_state_folder() {
    let (_tmp, data, folder, file) = state_folder_with(&[("collection-name", "bad input")]);
    for args in [&["run"][..], &["deploy"], &["review"]] {
        let extra: &[&str] = if args == ["review"] {
            std::fs::write(folder.join("pipeline.db"), "").unwrap();
            &["0123abcd"]
        } else {
            &[]
        };
        let stderr = refused_in(&data, &file, args, extra);
        assert!(
            stderr.contains("collection.name: `Bad Input` would share the state folder")
                && stderr.contains("with the collection `bad input`")
                && stderr.contains("another --data-dir"),
            "{args:?}: {stderr}"
        );
    }
    let mut left: Vec<_> = std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().file_name()).collect();
    left.sort();
    assert_eq!(left, ["collection-name", "pipeline.db"], "nothing written into the other collection's folder");
}

/// A run folder whose deployment record is damaged (a disk error, a hand edit): the record
/// names the contract the folder's jobs were minted on, so neither run nor deploy may treat it
/// as missing and deploy a contract that would mint every job again.
#[test]
fn an_unreadable_deployment_record() {
    let (_tmp, data, _, file) =
        state_folder_with(&[("collection-name", "Bad Input"), ("deployment.json", "{\"chain_id\": 31337, \"contr")]);
    for command in ["run", "deploy"] {
        let stderr = refused_in(&data, &file, &[command], &[]);
        assert!(stderr.contains("deployment.json: unreadable") && stderr.contains("restore it"), "{command}: {stderr}");
    }
}

#[test]
fn missing_collection_file() {
    let out = Command::new(latentmint_bin()).args(["run", "/nonexistent/c.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read collection file /nonexistent/c.toml"));
}

/// `latentmint verify` with arguments it cannot use: exit 2 and the flag named, before anything
/// is fetched.
#[test]
fn verify_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    let verify = |args: &[&str]| {
        let out = Command::new(latentmint_bin()).arg("verify").args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        stderr
    };
    let dir = tmp.path().to_str().unwrap();
    let rpc = ["--rpc-url", "http://127.0.0.1:9"];
    let e = verify(&[&rpc[..], &["--contract", "0x1234", "--token", "1", "--ipfs-dir", dir]].concat());
    assert!(e.contains("--contract"), "{e}");
    let contract = ["--contract", GOOD_RECIPIENT];
    let e = verify(&[&rpc[..], &contract[..], &["--token", "0x1f", "--ipfs-dir", dir]].concat());
    assert!(e.contains("--token") && e.contains("decimal"), "{e}");
    let e = verify(&[&rpc[..], &contract[..], &["--token", "1"]].concat());
    assert!(e.contains("--gateway") && e.contains("--ipfs-api") && e.contains("--ipfs-dir"), "{e}");
    let e = verify(&[&rpc[..], &contract[..], &["--token", "1", "--gateway", "ipfs.io"]].concat());
    assert!(e.contains("--gateway") && e.contains("https://ipfs.io"), "{e}");
    let e = verify(&[&rpc[..], &contract[..], &["--token", "1", "--ipfs-dir", "/no/such/folder"]].concat());
    assert!(e.contains("--ipfs-dir") && e.contains("/no/such/folder"), "{e}");
    let e = verify(&[&rpc[..], &contract[..], &["--token", "1", "--ipfs-dir", dir, "--from-block", "latest"]].concat());
    assert!(e.contains("--from-block"), "{e}");
    let e = verify(&[&rpc[..], &contract[..], &["--token", "1", "--ipfs-dir", dir, "--reproduce-with", dir]].concat());
    assert!(e.contains("--reproduce-with") && e.contains("not a model folder"), "{e}");
    let e =
        verify(&[&rpc[..], &contract[..], &["--token", "1", "--ipfs-dir", dir, "--lora", "x.safetensors"]].concat());
    assert!(e.contains("--reproduce-with"), "{e}");
    let e = verify(
        &[&rpc[..], &contract[..], &["--token", "1", "--ipfs-dir", dir, "--credentials-ca", "/no/ca.pem"]].concat(),
    );
    assert!(e.contains("--credentials-ca") && e.contains("/no/ca.pem"), "{e}");
    let not_pem = tmp.path().join("ca.txt");
    std::fs::write(&not_pem, "a CA, honestly").unwrap();
    let e = verify(
        &[&rpc[..], &contract[..], &["--token", "1", "--ipfs-dir", dir, "--credentials-ca", not_pem.to_str().unwrap()]]
            .concat(),
    );
    assert!(e.contains("--credentials-ca") && e.contains("no certificate in it"), "{e}");
    let e = verify(&[&rpc[..], &contract[..], &["--ipfs-dir", dir]].concat());
    assert!(e.contains("--token") && e.contains("--all"), "{e}");
    let e = verify(&[&rpc[..], &contract[..], &["--token", "1", "--all", "--ipfs-dir", dir]].concat());
    assert!(e.contains("--all") && e.contains("cannot be used with"), "{e}");
    let e = verify(&["--all", "--local-run", dir]);
    assert!(e.contains("--local-run") && e.contains("no deployment record"), "{e}");
    let e = verify(&[&rpc[..], &["--all", "--local-run", dir]].concat());
    assert!(e.contains("--local-run") && e.contains("cannot be used with"), "{e}");
    // Nothing listens there: the RPC is named.
    let e = verify(&[&rpc[..], &contract[..], &["--token", "1", "--ipfs-dir", dir]].concat());
    assert!(e.contains("127.0.0.1:9"), "{e}");
}

/// `latentmint review FILE JOB --retry` sends a failed job back to the stage that failed it;
/// a prefix that names no failed job, and a retry that would also reject, are refused.
#[tokio::test]
async fn a_failed_job_is_retried_by_its_prefix_and_nothing_else_is() {
    use latentmint_core::ports::JobStore;
    let (_tmp, data, folder, file) = state_folder_with(&[("collection-name", "Bad Input")]);
    let text = std::fs::read_to_string(&file).unwrap();
    let spec = latentmint_core::collection::Collection::from_toml("c.toml", &text).unwrap().jobs().unwrap().remove(0);
    let mut job = latentmint_core::Job::new(spec);
    job.state = latentmint_core::JobState::Failed;
    job.metadata_cid = Some(latentmint_core::cid::cid_of_bytes(b"metadata"));
    job.error = Some("the contract refused the mint".into());
    let jobs = latentmint_embedded::SqliteJobStore::open(&folder.join("pipeline.db")).unwrap();
    jobs.insert_if_absent(&job).await.unwrap();
    let prefix = job.id().short();

    let stderr = refused_in(&data, &file, &["review"], &["ffffffff", "--retry"]);
    assert!(stderr.contains("no job failed matches `ffffffff` (1 failed)"), "{stderr}");
    let stderr = refused_in(&data, &file, &["review"], &[&prefix, "--retry", "--reject"]);
    assert!(stderr.contains("--retry") && stderr.contains("--reject"), "{stderr}");

    let out = Command::new(latentmint_bin())
        .args(["review"])
        .arg(&file)
        .args([&prefix, "--retry", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("(failed: the contract refused the mint) goes back to the mint stage"), "{stdout}");
    assert_eq!(jobs.get(job.id()).await.unwrap().unwrap().state, latentmint_core::JobState::Published);
}

/// Every text field meets the same rule: a description hiding text behind a bidi override, a
/// trait value that would read as a placeholder, a weight that makes the sum infinite.
#[test]
fn every_text_field_is_checked_like_a_prompt() {
    let base = collection(GOOD_RECIPIENT, "a {colour} square", &model());
    let with_traits = |values: &str| {
        base.replacen("[[prompts]]", &format!("[[traits]]\nname = \"colour\"\nvalues = [{values}]\n\n[[prompts]]"), 1)
    };
    let e = refused(&base.replace("symbol = \"BAD\"", "symbol = \"BAD\"\ndescription = \"good \\u202Eevil\""));
    assert!(e.contains("collection.description: contains a bidirectional control, U+202E"), "{e}");
    let e = refused(&with_traits("{ value = \"{other}\" }"));
    assert!(e.contains("traits[0].values[0].value") && e.contains("brace"), "{e}");
    let e = refused(&with_traits("{ value = \"red\", weight = 1e308 }, { value = \"blue\", weight = 1e308 }"));
    assert!(e.contains("traits[0].values[0].weight"), "{e}");
    let huge = format!("description = \"{}\"", "d".repeat(50 * 1024));
    let e = refused(&base.replace("symbol = \"BAD\"", &format!("symbol = \"BAD\"\n{huge}")));
    assert!(e.contains("collection.description: is 51200 characters long; the limit is 5000"), "{e}");
}

/// `latentmint review` never decides a job it was not pointed at, and records a clean name.
#[tokio::test]
async fn review_needs_a_job_id_and_a_clean_operator_name() {
    use latentmint_core::ports::JobStore;
    let (_tmp, data, folder, file) = state_folder_with(&[("collection-name", "Bad Input")]);
    let text = std::fs::read_to_string(&file).unwrap();
    let spec = latentmint_core::collection::Collection::from_toml("c.toml", &text).unwrap().jobs().unwrap().remove(0);
    let mut job = latentmint_core::Job::new(spec);
    job.state = latentmint_core::JobState::AwaitingReview;
    let jobs = latentmint_embedded::SqliteJobStore::open(&folder.join("pipeline.db")).unwrap();
    jobs.insert_if_absent(&job).await.unwrap();
    for prefix in ["", " ", "0x", "abc", "not-hex!"] {
        let e = refused_in(&data, &file, &["review"], &[prefix]);
        assert!(e.contains("is not a job id") && e.contains("first 4 hex digits"), "{prefix:?}: {e}");
    }
    let e = refused_in(&data, &file, &["review"], &[&job.id().short(), "--operator", "\u{1b}[31mmallory"]);
    assert!(e.contains("--operator: contains a control character, U+001B"), "{e}");
    assert_eq!(
        jobs.get(job.id()).await.unwrap().unwrap().state,
        latentmint_core::JobState::AwaitingReview,
        "undecided"
    );
}

/// A LoRA adapter that is not there is named as such, not as a model problem.
#[test]
fn a_missing_lora_file_is_named_under_its_own_field() {
    let text = collection(GOOD_RECIPIENT, "a red circle", &model()).replace(
        "steps = 2\n",
        "steps = 2\n\n[[generation.lora]]\npath = \"no/such/adapter.safetensors\"\nscale = 0.5\n",
    );
    let e = refused(&text);
    assert!(e.contains("generation.lora[0].path") && e.contains("adapter.safetensors does not exist"), "{e}");
    assert!(!e.contains("generation.model"), "{e}");
}

/// Initial latents of the right size but another shape would make another image: refused.
#[test]
fn latents_of_another_shape_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // The tiny model at 64x64: 4 channels of 32x32 (its VAE upsamples x2).
    for (shape, what) in [([1usize, 8, 32, 16], "8 channels"), ([1, 32, 32, 4], "channels last")] {
        let path = tmp.path().join("latents.npy");
        ndarray_npy::write_npy(&path, &ndarray::Array4::<f32>::zeros(shape)).unwrap();
        let out = Command::new(latentmint_bin())
            .args([
                "generate",
                "--prompt",
                "a red circle",
                "--steps",
                "2",
                "--width",
                "64",
                "--height",
                "64",
                "--model",
            ])
            .arg(tiny_model())
            .arg("--latents")
            .arg(&path)
            .arg("--out")
            .arg(tmp.path().join("out.png"))
            .env("ORT_DYLIB_PATH", ort_library())
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {e}");
        assert!(e.contains("--latents") && e.contains("takes [1, 4, 32, 32]"), "{what}: {e}");
        assert!(!tmp.path().join("out.png").exists(), "{what}: no image made");
    }
}

/// An RPC URL carrying an API key (in its path, as providers give them) never appears in what
/// the run prints, whatever failed.
#[test]
fn an_rpc_key_in_the_url_is_never_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("c.toml");
    let secret = "SECRETKEY0123456789";
    std::fs::write(
        &file,
        collection(GOOD_RECIPIENT, "a red circle", &model())
            + &format!("\n[chain]\nchain_id = 412346\nrpc_url = \"http://127.0.0.1:1/v2/{secret}\"\n"),
    )
    .unwrap();
    let out = Command::new(latentmint_bin())
        .args(["-vv", "run"])
        .arg(&file)
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .arg("--no-progress")
        .env("ORT_DYLIB_PATH", ort_library())
        .env("LATENTMINT_SIGNER_KEY", "0x0000000000000000000000000000000000000000000000000000000000000001")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success());
    assert!(stderr.contains("http://127.0.0.1:1/…"), "the endpoint is still named: {stderr}");
    assert!(!stdout.contains(secret) && !stderr.contains(secret), "{stdout}\n{stderr}");
}
