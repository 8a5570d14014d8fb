#!/usr/bin/env bash
# Compiles the contracts with forge (through solcjs, see tools/solc) and writes the ABI and
# bytecode the Rust side embeds (alloy `sol!`) to artifacts/. With --check, fails if the
# committed artifacts differ from what the sources compile to (CI runs this).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
FORGE="${LATENTMINT_FORGE:-node_modules/@foundry-rs/forge-linux-amd64/bin/forge}"
[[ -x "$FORGE" ]] || { echo "forge not found at $FORGE: run scripts/bootstrap.sh" >&2; exit 1; }
"$FORGE" build --force --skip test >/dev/null
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for c in LatentCollection LatentEditions LatentFactory NodeInterfaceStub PriceFeedStub UnguardedCollection; do
  node -e '
    const a = require(process.argv[1]);
    const out = { abi: a.abi, bytecode: { object: a.bytecode.object }, deployedBytecode: { object: a.deployedBytecode.object } };
    process.stdout.write(JSON.stringify(out, null, 1) + "\n");
  ' "$PWD/out/$c.sol/$c.json" > "$tmp/$c.json"
  if [[ "${1:-}" == "--check" ]]; then
    if ! cmp -s "$tmp/$c.json" "artifacts/$c.json"; then
      echo "artifacts/$c.json is stale: run infra/contracts/build.sh and commit the result" >&2
      exit 1
    fi
  else
    cp "$tmp/$c.json" "artifacts/$c.json"
  fi
done
if [[ "${1:-}" == "--check" ]]; then echo "contract artifacts match the sources"; else echo "contract artifacts written to infra/contracts/artifacts/"; fi
