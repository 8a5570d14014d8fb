//! Any prompt a person can type, in any script, survives the whole path byte for byte: the
//! collection file, the job id, generation (the PNG's `parameters` text as iTXt), the signed
//! provenance record, the Content Credentials manifest, the metadata on IPFS, and the
//! collector's check, which compares the record with the manifest and the chain.

use std::process::Command;

use latentmint_core::metadata::TokenMetadata;
use latentmint_e2e::{anvil, latentmint_bin, latentmint_run, tiny_model};

/// Six scripts and emoji (with a zero-width joiner sequence and a flag's tag characters); the
/// Persian word keeps its zero-width non-joiner.
const PROMPTS: [&str; 7] = [
    "赤い円、夜の街",
    "красный круг на закате",
    "دائرة حمراء في الليل",
    "עיגול אדום בלילה",
    "लाल वृत्त रात में",
    "Ένας κόκκινος κύκλος · می‌خواهم",
    "🔴 a red circle 👨‍👩‍👧 🏳️‍🌈 🏴󠁧󠁢󠁳󠁣󠁴󠁿",
];

#[test]
fn prompts_in_every_script_are_minted_and_verified_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("unicode.toml");
    let mut text = format!(
        "[collection]\nname = \"Scripts\"\nsymbol = \"SCR\"\nrecipient = \"0x70997970C51812dc3A010C7d01b50e0d17dc79C8\"\n\
         description = \"Écrit à la main — 手書き\\nline two\"\n\
         [generation]\nmodel = \"{}\"\nsteps = 2\nwidth = 32\nheight = 32\n\
         [review]\nauto_approve_at = 0.0\nauto_reject_below = 0.0\n",
        tiny_model().display()
    );
    for p in PROMPTS {
        text.push_str(&format!("[[prompts]]\ntext = \"{p}\"\n"));
    }
    std::fs::write(&file, &text).unwrap();
    let data = tmp.path().join("data");
    let out = latentmint_run(&file, &data).env("LATENTMINT_ANVIL", anvil()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("verified on chain: {} tokens", PROMPTS.len())), "{stdout}");

    // The records: each prompt as written (NFC), in the metadata, the signed record, the PNG.
    let dir = data.join("scripts");
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("tokens.json")).unwrap()).unwrap();
    let jobs = manifest["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), PROMPTS.len());
    for (job, prompt) in jobs.iter().zip(PROMPTS) {
        assert_eq!(job["prompt"].as_str(), Some(prompt));
        let cid = job["metadata"].as_str().unwrap().trim_start_matches("ipfs://");
        let meta: TokenMetadata = serde_json::from_slice(&std::fs::read(dir.join("ipfs").join(cid)).unwrap()).unwrap();
        assert_eq!(meta.provenance.prompt, prompt, "the signed record");
        assert_eq!(meta.description, "Écrit à la main — 手書き\nline two");
        let png = std::fs::read(dir.join("ipfs").join(meta.image_cid().unwrap())).unwrap();
        let reader = png::Decoder::new(std::io::Cursor::new(&png)).read_info().unwrap();
        let info = reader.info();
        let parameters = info
            .utf8_text
            .iter()
            .find(|t| t.keyword == "parameters")
            .map(|t| t.get_text().unwrap())
            .or_else(|| {
                info.uncompressed_latin1_text.iter().find(|t| t.keyword == "parameters").map(|t| t.text.clone())
            })
            .expect("the PNG's parameters");
        assert!(parameters.starts_with(prompt), "{parameters}");
    }

    // The collector's check from the run's folder: chain, CIDs, signed record, and the
    // Content Credentials manifest, whose prompt must equal the record's.
    let out = Command::new(latentmint_bin())
        .args(["verify", "--all", "--local-run"])
        .arg(&dir)
        .env("LATENTMINT_ANVIL", anvil())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("verified: {n} of {n} tokens", n = PROMPTS.len())), "{stdout}");
}
