#!/usr/bin/env bash
# The main job on embedded defaults: installs the pinned tools (first time only), builds the
# `latentmint` binary, and runs a collection (default: examples/neon-shapes.toml) end to end:
# generate with ONNX Runtime, QA, pin to the local content store, mint on a local anvil.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/bootstrap.sh
# shellcheck source=/dev/null
source .tools/env.sh
echo "building latentmint (the first build takes a few minutes)..." >&2
cargo build --quiet --locked -p latentmint
exec "$CARGO_TARGET_DIR/debug/latentmint" run "${1:-examples/neon-shapes.toml}" "${@:2}"
