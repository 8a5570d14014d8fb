#!/usr/bin/env bash
# A long run of the property tests over everything that reads outside input (tests/fuzz.rs):
# the collection parser and validator, the intake body, the webhook handler, the stage
# messages and the .npy latents reader, each from the committed corpus (tests/fuzz-corpus/).
# CI runs the same properties with proptest's default 256 cases each.
#
#   scripts/fuzz.sh [CASES]      (default 20000 cases per property)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CASES="${1:-20000}"
scripts/bootstrap.sh --tests >/dev/null
# shellcheck source=/dev/null
source .tools/env.sh
started=$(date +%s)
PROPTEST_CASES="$CASES" cargo test --locked -p latentmint-e2e --test e2e fuzz:: 2>&1 | tee .tools/fuzz.log | grep -E "^test fuzz::|test result"
echo "each of the $(grep -c '^test fuzz::.* ok$' .tools/fuzz.log) properties passed $CASES cases in $(( $(date +%s) - started )) s"
