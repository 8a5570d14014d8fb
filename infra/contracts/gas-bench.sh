#!/usr/bin/env bash
# Gas benchmark on a real node: deploys the OpenZeppelin ERC721URIStorage baseline and
# LatentCollection to a fresh anvil (127.0.0.1), sends each scenario as real transactions and
# reads the receipts' gasUsed (what the minter pays: the 21,000 base and calldata included).
# Every receipt goes into records/gas.json with the tools' versions; gas_report.py renders
# GAS.md from it and checks the goals.
#
#   infra/contracts/gas-bench.sh           measure, write records/gas.json and GAS.md
#   infra/contracts/gas-bench.sh --check   measure again (receipts on anvil are deterministic) and
#                                          fail if GAS.md is not what they give, or a goal is missed
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
CHECK=0
[[ "${1:-}" == "--check" ]] && CHECK=1
BIN=node_modules/@foundry-rs
ANVIL=$BIN/anvil-linux-amd64/bin/anvil
FORGE=$BIN/forge-linux-amd64/bin/forge
CAST=$BIN/cast-linux-amd64/bin/cast
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
LOG=$(mktemp)
"$ANVIL" --host 127.0.0.1 --port "$PORT" --chain-id 412346 --accounts 2 >"$LOG" 2>&1 &
ANVIL_PID=$!
trap 'kill $ANVIL_PID 2>/dev/null; rm -f "$LOG"' EXIT
for _ in $(seq 50); do grep -q "Listening on" "$LOG" && break; sleep 0.1; done
RPC="http://127.0.0.1:$PORT"
# Anvil's first dev key, read from its own output (local node only).
KEY=$(grep -A3 "Private Keys" "$LOG" | grep -o '0x[0-9a-f]\{64\}' | head -1)
ME=$("$CAST" wallet address --private-key "$KEY")
"$FORGE" build --skip test >/dev/null

deploy() { "$FORGE" create --broadcast --rpc-url "$RPC" --private-key "$KEY" "$@" | awk '/Deployed to:/ {print $3}'; }
BASE=$(deploy src/baseline/BaselineURIStorage.sol:BaselineURIStorage --constructor-args "$ME")
COLL=$(deploy src/LatentCollection.sol:LatentCollection --constructor-args "Neon" "NEON" "$ME" "$ME" "$ME" 500 "ipfs://contract")
gas() { "$CAST" send --json --rpc-url "$RPC" --private-key "$KEY" "$@" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["gasUsed"], 0))'; }
# Each scenario's receipts, one gasUsed per line, for the record.
SAMPLES=$(mktemp -d)
trap 'kill $ANVIL_PID 2>/dev/null; rm -rf "$LOG" "$SAMPLES"' EXIT
record() { local name=$1; shift; local g; g=$(gas "$@"); echo "$g" >> "$SAMPLES/$name"; echo "$g"; }
addr() { printf '0x%040x' "$((0x100000 + $1))"; }
# A job id as the pipeline makes it: a hash whose low 64 bits are the job's collection position.
job() { local h; h=$("$CAST" keccak "job-$1"); printf '%s%016x' "${h:0:50}" "$1"; }
jobs() { local out=""; for i in $(seq "$1" $(($1 + $2 - 1))); do out+="$(job "$i"),"; done; printf '[%s]' "${out%,}"; }
URI="ipfs://bafkreiekdcmnu7rxajwv5pzhvhunmdtxcnahqvhbakdlvz7dhpnhiuuclu"
DIGEST=0x8a1898da7e37026d5ebf27a9e8d60e77134078548e10286bafe337b4e8a282a3
DIR=0x2b64c6d9afd8a34ed0dbf35f7de171a8825a50d9f42f05e98fe2b1addf00ab44

# Warm both contracts' token counters the same way (one mint each), so no scenario pays the
# first-ever write of the counter; ours also opens the position word of jobs 0..255.
gas "$BASE" "safeMint(address,string)" "$(addr 999)" "$URI" >/dev/null
gas "$COLL" "mint(address,bytes32,bytes32)" "$(addr 998)" "$(job 0)" "$("$CAST" keccak warm)" >/dev/null

record baseline_single "$BASE" "safeMint(address,string)" "$(addr 1)" "$URI" >/dev/null
record ours_single "$COLL" "mint(address,bytes32,bytes32)" "$(addr 2)" "$(job 1)" "$DIGEST" >/dev/null
# A job alone in its word of positions: the first of a new 256, or a shop order (whose
# position is a hash).
record ours_single_lone "$COLL" "mint(address,bytes32,bytes32)" "$(addr 5)" "$(job $((1 << 40)))" "$("$CAST" keccak lone)" >/dev/null

for i in $(seq 100); do record baseline_100_to_one "$BASE" "safeMint(address,string)" "$(addr 3)" "$URI" >/dev/null; done
record ours_100_to_one "$COLL" "mintBatch(bytes32,address,bytes32[],bytes32,bytes32)" "$("$CAST" keccak batch-one)" "$(addr 4)" "$(jobs 1000 100)" "$DIR" "$("$CAST" keccak root)" >/dev/null

for i in $(seq 100); do record baseline_100_to_100 "$BASE" "safeMint(address,string)" "$(addr $((1000 + i)))" "$URI" >/dev/null; done
LIST=$(for i in $(seq 100); do printf '%s,' "$(addr $((2000 + i)))"; done)
record ours_100_to_100 "$COLL" "mintBatchTo(bytes32,address[],bytes32[],bytes32,bytes32)" "$("$CAST" keccak batch-many)" "[${LIST%,}]" "$(jobs 2000 100)" "$DIR" "$("$CAST" keccak root)" >/dev/null

OUT=records/gas.json
DOC=GAS.md
if [[ $CHECK == 1 ]]; then OUT="$SAMPLES/gas.json"; DOC="$SAMPLES/GAS.md"; fi
mkdir -p records
python3 - "$SAMPLES" "$OUT" "$("$ANVIL" --version | head -1)" "$("$FORGE" --version | head -1)" "$(tools/solc --version | tail -1)" <<'PY'
import json, os, platform, sys, datetime
samples, out, anvil, forge, solc = sys.argv[1:]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
record = {
    "date": datetime.date.today().isoformat(),
    "machine": f"{cpu}, {os.cpu_count()} cores",
    "tools": {"anvil": anvil, "forge": forge, "solc": solc},
    "chain_id": 412346,
    "receipts": {name: [int(x) for x in open(os.path.join(samples, name)).read().split()] for name in sorted(os.listdir(samples)) if not name.endswith((".json", ".md"))},
}
json.dump(record, open(out, "w"), indent=1)
open(out, "a").write("\n")
PY
python3 gas_report.py "$OUT" "$DOC"
if [[ $CHECK == 1 ]]; then
  if ! cmp -s "$DOC" GAS.md; then
    echo "infra/contracts/GAS.md is stale: the receipts give" >&2
    diff GAS.md "$DOC" >&2 || true
    echo "run infra/contracts/gas-bench.sh and commit GAS.md and records/gas.json" >&2
    exit 1
  fi
  echo "GAS.md matches the receipts of this run, and every goal is met"
fi
