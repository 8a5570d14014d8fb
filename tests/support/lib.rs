//! Helpers shared by the end-to-end tests: where the repository, the tools and the demo model
//! are. Missing tools fail the test with the command that installs them; nothing is skipped.

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The committed demo model.
pub fn tiny_model() -> PathBuf {
    repo_root().join("models/tiny-sd")
}

fn tool(env: &str, default: &str) -> PathBuf {
    let p = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| repo_root().join(default));
    assert!(p.exists(), "{} not found at {}: run scripts/bootstrap.sh --tests (or set {env})", env, p.display());
    p
}

/// ONNX Runtime shared library.
pub fn ort_library() -> PathBuf {
    tool("ORT_DYLIB_PATH", ".tools/onnxruntime/libonnxruntime.so.1.32.0")
}

/// The anvil binary.
pub fn anvil() -> PathBuf {
    tool("LATENTMINT_ANVIL", "infra/contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
}
