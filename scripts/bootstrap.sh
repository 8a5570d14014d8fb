#!/usr/bin/env bash
# Installs the pinned tools latentmint needs into project-local folders. Idempotent: a second
# run checks and returns in a second. Every download names its registry when it fails.
#
#   .tools/onnxruntime/   ONNX Runtime shared library (from the PyPI wheel onnxruntime==$ORT_VERSION)
#   infra/contracts/node_modules/   anvil, forge, cast (npm @foundry-rs/*), solc (solcjs), OpenZeppelin
#   .tools/env.sh         the environment the other scripts source
#
# Usage: scripts/bootstrap.sh [--tests] [--deploy]
#   --tests   also installs what only the tests need
#   --deploy  also installs the SAM CLI and cargo-lambda (.tools/deployenv) for `sam build`
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
ORT_VERSION="1.32.0"
FOUNDRY_VERSION="1.7.1"
CFN_LINT_VERSION="1.58.0"
MOTO_VERSION="5.2.5"
SAM_VERSION="1.170.0"
# The translator SAM CLI $SAM_VERSION runs on a template: the tests check template.yaml with it.
SAM_TRANSLATOR_VERSION="1.115.0"
CARGO_LAMBDA_VERSION="1.9.2"
CARGO_DENY_VERSION="0.20.2"
WITH_TESTS=0
WITH_DEPLOY=0
for arg in "$@"; do
  case "$arg" in
    --tests) WITH_TESTS=1 ;;
    --deploy) WITH_DEPLOY=1 ;;
    *) echo "usage: scripts/bootstrap.sh [--tests] [--deploy]" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1mbootstrap:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31mbootstrap failed:\033[0m %s\n' "$*" >&2; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed; latentmint needs $2"
}
need cargo "a Rust toolchain (https://rustup.rs)"
need python3 "Python 3.11+ with pip"
need node "Node.js 20+"
need npm "npm (comes with Node.js)"
[[ "$(uname -s)-$(uname -m)" == "Linux-x86_64" ]] || die "this bootstrap fetches Linux x86_64 binaries; on $(uname -s)-$(uname -m) install ONNX Runtime $ORT_VERSION and Foundry $FOUNDRY_VERSION yourself and set ORT_DYLIB_PATH, LATENTMINT_ANVIL and LATENTMINT_FORGE"

mkdir -p "$TOOLS/cache"

# --- ONNX Runtime (CPU), from the PyPI wheel: crates cannot download it offline ------------
ORT_DIR="$TOOLS/onnxruntime"
ORT_LIB="$ORT_DIR/libonnxruntime.so.$ORT_VERSION"
if [[ ! -f "$ORT_LIB" ]]; then
  say "fetching onnxruntime==$ORT_VERSION from PyPI (ONNX Runtime shared library)"
  rm -rf "$TOOLS/cache/ort" && mkdir -p "$TOOLS/cache/ort"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --python-version 3.11 \
      "onnxruntime==$ORT_VERSION" -d "$TOOLS/cache/ort" \
    || die "could not download onnxruntime==$ORT_VERSION from PyPI (pypi.org unreachable, or a proxy blocks it); set ORT_DYLIB_PATH to an existing libonnxruntime.so >= 1.31 to skip this step"
  mkdir -p "$ORT_DIR"
  python3 - "$TOOLS/cache/ort" "$ORT_DIR" "$ORT_VERSION" <<'PY' || die "the onnxruntime wheel did not contain libonnxruntime.so.$ORT_VERSION"
import sys, zipfile, pathlib
src, dst, ver = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
wheel = next(src.glob("onnxruntime-*.whl"))
with zipfile.ZipFile(wheel) as z:
    data = z.read(f"onnxruntime/capi/libonnxruntime.so.{ver}")
(dst / f"libonnxruntime.so.{ver}").write_bytes(data)
PY
  rm -rf "$TOOLS/cache/ort"
fi

# --- Foundry (anvil, forge, cast), solcjs and OpenZeppelin from npm ------------------------
CONTRACTS="$ROOT/infra/contracts"
ANVIL="$CONTRACTS/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
FORGE="$CONTRACTS/node_modules/@foundry-rs/forge-linux-amd64/bin/forge"
if [[ ! -x "$ANVIL" || ! -x "$FORGE" || ! -d "$CONTRACTS/node_modules/@openzeppelin/contracts" || ! -d "$CONTRACTS/node_modules/erc721a" || ! -d "$CONTRACTS/node_modules/solc" ]]; then
  say "installing Foundry $FOUNDRY_VERSION, solc 0.8.37, OpenZeppelin 5.7.0 and ERC721A 4.3.0 from npm (infra/contracts)"
  (cd "$CONTRACTS" && npm ci --no-audit --no-fund --loglevel=error) \
    || die "npm ci in infra/contracts failed (registry.npmjs.org unreachable?)"
  [[ -x "$ANVIL" && -x "$FORGE" ]] || die "npm installed @foundry-rs but no linux-amd64 binaries appeared under infra/contracts/node_modules/@foundry-rs"
fi

if [[ $WITH_TESTS == 1 ]]; then
  VEC="$ROOT/tests/cid-vectors"
  if [[ ! -d "$VEC/node_modules/ipfs-unixfs-importer" ]]; then
    say "installing ipfs-unixfs-importer 17.1.1 from npm (independent CID reference for the tests)"
    (cd "$VEC" && npm ci --no-audit --no-fund --loglevel=error) \
      || die "npm ci in tests/cid-vectors failed (registry.npmjs.org unreachable?)"
  fi
  REF="$ROOT/tests/eip712-reference"
  if [[ ! -d "$REF/node_modules/ethers" ]]; then
    say "installing ethers 6.17.0 from npm (independent EIP-712 reference for the provenance tests)"
    (cd "$REF" && npm ci --no-audit --no-fund --loglevel=error) \
      || die "npm ci in tests/eip712-reference failed (registry.npmjs.org unreachable?)"
  fi
  NODE_DIR="$ROOT/tests/ipfs-node"
  if [[ ! -x "$NODE_DIR/node_modules/.bin/jsipfs" ]]; then
    say "installing ipfs 0.66.1 (js-ipfs) from npm (a real IPFS node for the pinning tests)"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error) \
      || die "npm ci in tests/ipfs-node failed (registry.npmjs.org unreachable?)"
  fi
  DENY="$TOOLS/cargo-bin/bin/cargo-deny"
  if [[ ! -x "$DENY" ]] || [[ "$("$DENY" --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]]; then
    say "building cargo-deny $CARGO_DENY_VERSION from crates.io (the dependency policy, deny.toml; a few minutes, once)"
    CARGO_TARGET_DIR="$TOOLS/cargo-bin/target" cargo install --quiet --locked --root "$TOOLS/cargo-bin" \
      cargo-deny --version "$CARGO_DENY_VERSION" \
      || die "could not build cargo-deny $CARGO_DENY_VERSION from crates.io (crates.io unreachable?)"
    rm -rf "$TOOLS/cargo-bin/target"
  fi
  if [[ ! -x "$TOOLS/pyenv/bin/cfn-lint" || ! -x "$TOOLS/pyenv/bin/moto_server" ]] \
    || ! "$TOOLS/pyenv/bin/python" -c "import samtranslator" 2>/dev/null; then
    say "installing cfn-lint $CFN_LINT_VERSION and aws-sam-translator $SAM_TRANSLATOR_VERSION (template.yaml checks) and moto $MOTO_VERSION (local AWS for the tests) from PyPI"
    [[ -x "$TOOLS/pyenv/bin/pip" ]] || python3 -m venv "$TOOLS/pyenv" || die "python3 -m venv failed (Debian needs python3-venv)"
    "$TOOLS/pyenv/bin/pip" install --quiet --disable-pip-version-check "cfn-lint==$CFN_LINT_VERSION" \
      "aws-sam-translator==$SAM_TRANSLATOR_VERSION" "moto[server]==$MOTO_VERSION" \
      || die "could not install cfn-lint==$CFN_LINT_VERSION, aws-sam-translator==$SAM_TRANSLATOR_VERSION and moto[server]==$MOTO_VERSION from PyPI (pypi.org unreachable?)"
  fi
fi

if [[ $WITH_DEPLOY == 1 ]]; then
  DEPLOY="$TOOLS/deployenv"
  if [[ ! -x "$DEPLOY/bin/sam" || ! -x "$DEPLOY/bin/cargo-lambda" ]]; then
    say "installing aws-sam-cli $SAM_VERSION and cargo-lambda $CARGO_LAMBDA_VERSION from PyPI (sam build)"
    [[ -x "$DEPLOY/bin/pip" ]] || python3 -m venv "$DEPLOY" || die "python3 -m venv failed (Debian needs python3-venv)"
    "$DEPLOY/bin/pip" install --quiet --disable-pip-version-check "aws-sam-cli==$SAM_VERSION" "cargo-lambda==$CARGO_LAMBDA_VERSION" \
      || die "could not install aws-sam-cli==$SAM_VERSION and cargo-lambda==$CARGO_LAMBDA_VERSION from PyPI (pypi.org unreachable?)"
  fi
fi

cat > "$TOOLS/env.sh" <<ENV
# Written by scripts/bootstrap.sh; sourced by the run and test scripts.
export ORT_DYLIB_PATH="\${ORT_DYLIB_PATH:-$ORT_LIB}"
export LATENTMINT_ANVIL="\${LATENTMINT_ANVIL:-$ANVIL}"
export LATENTMINT_FORGE="\${LATENTMINT_FORGE:-$FORGE}"
export CARGO_TARGET_DIR="\${CARGO_TARGET_DIR:-$ROOT/target}"
ENV
say "tools ready (.tools/env.sh)"
