#!/usr/bin/env bash
# Mutation check of the domain and stage code: cargo-mutants changes one thing at a time (a
# condition, a return value, an operator) and runs the core and stages unit tests; a mutant
# they do not catch is a behaviour no test pins down. Run on demand, not in CI (it builds once
# per mutant). Installs its pinned cargo-mutants into .tools/cargo-bin.
#
#   scripts/mutants.sh [FILE...]     (default: the files that carry exactly-once and input rules)
#
# Writes .tools/mutants/mutants.out (outcomes.json, caught.txt, missed.txt) and prints the score.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VERSION=25.3.1
BIN=.tools/cargo-bin/bin/cargo-mutants
if [[ ! -x "$BIN" ]]; then
  echo "installing cargo-mutants $VERSION from crates.io into .tools/cargo-bin" >&2
  cargo install --quiet --locked --root .tools/cargo-bin cargo-mutants --version "$VERSION" \
    || { echo "could not install cargo-mutants $VERSION (crates.io unreachable?)" >&2; exit 1; }
fi
files=("$@")
if [[ ${#files[@]} -eq 0 ]]; then
  files=(
    functions/core/src/ledger.rs functions/core/src/job.rs functions/core/src/sanitize.rs
    functions/core/src/webhook.rs functions/core/src/batch.rs functions/core/src/redact.rs
    functions/stages/src/reconcile.rs functions/stages/src/mint.rs
  )
fi
args=()
for f in "${files[@]}"; do args+=(--file "$f"); done
mkdir -p .tools/mutants
"$BIN" mutants --no-shuffle -j 1 --timeout 120 --output .tools/mutants \
  -p latentmint-core -p latentmint-stages "${args[@]}" -- --lib || true
out=.tools/mutants/mutants.out
caught=$(wc -l < "$out/caught.txt"); missed=$(wc -l < "$out/missed.txt")
timeout=$(wc -l < "$out/timeout.txt" 2>/dev/null || echo 0); unviable=$(wc -l < "$out/unviable.txt" 2>/dev/null || echo 0)
echo "mutants: $caught caught, $missed missed, $timeout timed out, $unviable unviable; score $(( 100 * (caught + timeout) / (caught + timeout + missed) ))%"
echo "missed (no test fails when this changes): $out/missed.txt"
