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

# No incremental caches: this script mostly builds from clean (CI), where they only add
# gigabytes of disk and time; an edit-test loop gets them back with plain `cargo test`.
export CARGO_INCREMENTAL=0

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --locked --workspace --all-targets --quiet -- -D warnings

step "cargo clippy: the SageMaker container's CUDA build (infra/sagemaker/Dockerfile)"
# Only the container builds with this feature, and no test machine has a GPU: lint it here so
# the GPU path cannot stop compiling unnoticed.
cargo clippy --locked -p latentmint-serve -p latentmint-diffusion --features latentmint-diffusion/cuda \
  --all-targets --quiet -- -D warnings

step "cargo doc (broken links and bare URLs are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps --workspace --quiet

step "dependency policy: licenses, bans, sources (cargo deny, deny.toml)"
.tools/cargo-bin/bin/cargo-deny deny --log-level error check licenses bans sources

step "no import circles in the core, stages, chain and CLI crates (scripts/module-graph.py)"
python3 scripts/module-graph.py --check

LOG="$ROOT/.tools/test-logs"
mkdir -p "$LOG"

step "cargo test"
cargo test --locked --workspace 2>&1 | tee "$LOG/cargo-test.log"

step "forge test (unit, fuzz, invariants)"
# The platform binary, not npm's forge launcher: that one exits 0 even when tests fail.
(cd infra/contracts && "$LATENTMINT_FORGE" test) 2>&1 | tee "$LOG/forge-test.log"

step "contract coverage: COVERAGE.md is what the suite gives (infra/contracts/coverage.sh)"
infra/contracts/coverage.sh >/dev/null
if ! git diff --exit-code -- infra/contracts/COVERAGE.md; then
  echo "infra/contracts/COVERAGE.md is stale: run infra/contracts/coverage.sh and commit it" >&2
  exit 1
fi
sed -n '/% Lines/,/Total/p' infra/contracts/COVERAGE.md | grep -E "File|src/|Total"

step "gas snapshot (execution gas, baseline vs LatentCollection) unchanged"
(cd infra/contracts && "$LATENTMINT_FORGE" snapshot --check --match-contract GasBenchmark)

step "mint gas on receipts: GAS.md is what anvil's receipts give, every goal met (infra/contracts/gas-bench.sh)"
infra/contracts/gas-bench.sh --check | tail -1

step "benchmark records: documents generated from them, goals met (infra/bench/report.py)"
python3 infra/bench/report.py --check

step "contract artifacts match their sources"
infra/contracts/build.sh --check

step "template.yaml (cfn-lint, then SAM's translator and cfn-lint on what it makes)"
.tools/pyenv/bin/cfn-lint template.yaml
.tools/pyenv/bin/python infra/sam/translate.py template.yaml "$LOG/template.cfn.json"
# Both ignored warnings come from SAM's own output: its SQSPollerPolicy lists the batch SQS
# actions (which IAM authorizes through the single ones), and it resolves parameter defaults
# into a Fn::Sub without variables.
.tools/pyenv/bin/cfn-lint --ignore-checks W3037 W1020 -- "$LOG/template.cfn.json"

printf '\n\033[1;32mall checks passed\033[0m\n'
# One closing line over both suites: cargo's per-binary lines, plus forge's total.
read -r cargo_passed cargo_failed < <(awk '/^test result:/ { p += $4; f += $6 } END { print p+0, f+0 }' "$LOG/cargo-test.log")
read -r forge_passed forge_failed < <(sed 's/\x1b\[[0-9;]*m//g' "$LOG/forge-test.log" | awk '/tests passed, .* failed/ { for (i = 1; i <= NF; i++) { if ($(i+1) == "tests" && $(i+2) == "passed,") p = $i; if ($(i+1) == "failed,") f = $i } } END { print p+0, f+0 }')
echo "tests: $((cargo_passed + forge_passed)) passed, $((cargo_failed + forge_failed)) failed"
