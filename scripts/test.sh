#!/usr/bin/env bash
# Every check CI runs, in order: formatting, lints, Rust unit + end-to-end tests (real ONNX
# model, real anvil, the binary killed and restarted), the Foundry suite (unit, fuzz,
# invariants), contract artifacts against their sources, and the SAM template.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/bootstrap.sh --tests
# shellcheck source=/dev/null
source .tools/env.sh

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --locked --workspace --all-targets --quiet -- -D warnings

step "cargo test"
cargo test --locked --workspace

step "forge test (unit, fuzz, invariants)"
# The platform binary, not node_modules/.bin/forge: that launcher exits 0 even when tests fail.
(cd infra/contracts && "$LATENTMINT_FORGE" test)

step "contract artifacts match their sources"
infra/contracts/build.sh --check

step "template.yaml (cfn-lint with the SAM transform)"
.tools/pyenv/bin/cfn-lint template.yaml

printf '\n\033[1;32mall checks passed\033[0m\n'
