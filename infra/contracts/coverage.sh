#!/usr/bin/env bash
# Line, statement, branch and function coverage of the contracts by the Foundry suite (unit,
# fuzz and invariant tests), written to COVERAGE.md; `--lcov` also keeps lcov.info for editors.
# Test helpers, the gas baseline and test stand-ins are left out of the report.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
FORGE="${LATENTMINT_FORGE:-node_modules/@foundry-rs/forge-linux-amd64/bin/forge}"
[[ -x "$FORGE" ]] || { echo "forge not found at $FORGE: run scripts/bootstrap.sh" >&2; exit 1; }
reports=(--report summary)
[[ "${1:-}" == "--lcov" ]] && reports+=(--report lcov)
out="$("$FORGE" coverage "${reports[@]}" --no-match-coverage 'test|baseline|testing' 2>&1)" || { echo "$out" >&2; exit 1; }
# The coverage table is the one whose header names "% Lines".
table="$(sed 's/\x1b\[[0-9;]*m//g' <<<"$out" | awk '/% Lines/ { on = 1; print prev } on { print } on && /^╰/ { exit } { prev = $0 }')"
{
  echo "# Contract coverage"
  echo
  echo "Command: \`infra/contracts/coverage.sh\` (forge coverage over the unit, fuzz and invariant tests;"
  echo "test helpers, the gas baseline and test stand-ins excluded)."
  echo
  echo '```'
  echo "$table"
  echo '```'
} > COVERAGE.md
echo "$table"
