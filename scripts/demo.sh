#!/usr/bin/env bash
# The main job on embedded defaults: installs the pinned tools (first time only), builds the
# `latentmint` binary, and runs a collection (default: examples/neon-shapes.toml) end to end:
# generate with ONNX Runtime, QA, pin to the local content store, mint on a local anvil; for the
# default collection, then checks every token as a collector would.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/bootstrap.sh
# shellcheck source=/dev/null
source .tools/env.sh
echo "building latentmint and its dashboard (the first build takes a few minutes)..." >&2
cargo build --quiet --locked -p latentmint -p latentmint-tui
"$CARGO_TARGET_DIR/debug/latentmint" run "${1:-examples/neon-shapes.toml}" "${@:2}"
if [[ $# -eq 0 ]]; then
  # Then check every token as a collector would, from the chain inwards, and make each image
  # again from its signed record with the model it names.
  echo
  echo "checking the minted tokens as a collector (latentmint verify --all --reproduce-with):"
  "$CARGO_TARGET_DIR/debug/latentmint" verify --local-run .latentmint/neon-shapes --all \
    --reproduce-with models/shapes-sd
  echo
  echo "the operator's dashboard on this run (? lists its keys, q quits):"
  echo "  $CARGO_TARGET_DIR/debug/latentmint-tui .latentmint/neon-shapes"
fi
