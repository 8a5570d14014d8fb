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

/// The `latentmint` binary of this build.
pub fn latentmint_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| workspace_bin("latentmint", "latentmint")).clone()
}

/// The SageMaker container's `serve` binary of this build.
pub fn serve_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| workspace_bin("latentmint-serve", "serve")).clone()
}

/// Builds `bin` of `package` into this test's target folder (`cargo test` builds only the test
/// harnesses, not other packages' binaries) and returns its path.
fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>/<bin>
    let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target layout");
    let target_dir = profile_dir.parent().expect("target dir");
    let mut cmd = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "--quiet", "-p", package, "--bin", bin])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(repo_root());
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "building {bin} failed");
    let path = profile_dir.join(bin);
    assert!(path.is_file(), "{} was not built", path.display());
    path
}
