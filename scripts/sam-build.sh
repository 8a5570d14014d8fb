#!/usr/bin/env bash
# Builds the SAM stack exactly as `sam deploy` uploads it, offline and without AWS credentials:
# installs the pinned SAM CLI and cargo-lambda (first time only), lints the template, runs
# `sam build` (samconfig.toml: in source, cached), then checks what came out: every function a
# Linux x86_64 `bootstrap`, the generation layer with ONNX Runtime and a model, each function
# with its layers under Lambda's 250 MB unzipped. Then `sam deploy --guided` ships it.
#
# Usage: scripts/sam-build.sh [extra sam build arguments]
#   LATENTMINT_LAYER_MODEL=/path/to/export scripts/sam-build.sh   (another CPU-fallback model)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/bootstrap.sh --deploy
# shellcheck source=/dev/null
source .tools/env.sh
export PATH="$ROOT/.tools/deployenv/bin:$PATH" SAM_CLI_TELEMETRY=0

fail() { printf '\033[1;31msam-build failed:\033[0m %s\n' "$*" >&2; exit 1; }

echo "== sam validate --lint"
sam validate --lint --region us-east-1

echo "== sam build"
sam build "$@"

echo "== artifacts (.aws-sam/build)"
BUILD="$ROOT/.aws-sam/build"
LAYER="$BUILD/GenerationLayer"
# The layer must hold what template.yaml points the functions at (Lambda unpacks it under /opt).
template_path() { sed -n "s#^ *$1: /opt/##p" "$ROOT/template.yaml" | sort -u; }
ort_path=$(template_path ORT_DYLIB_PATH)
model_path=$(template_path LATENTMINT_MODEL_DIR)
[[ -n "$ort_path" && -n "$model_path" ]] || fail "template.yaml sets no ORT_DYLIB_PATH / LATENTMINT_MODEL_DIR under /opt"
[[ -f "$LAYER/$ort_path" ]] || fail "GenerationLayer has no $ort_path (template.yaml: ORT_DYLIB_PATH=/opt/$ort_path)"
[[ -f "$LAYER/$model_path/model_index.json" ]] || fail "GenerationLayer has no $model_path/model_index.json (template.yaml: LATENTMINT_MODEL_DIR=/opt/$model_path)"
qa_path=$(template_path LATENTMINT_QA_CLIP_DIR)
[[ -z "$qa_path" || -f "$LAYER/$qa_path/vision_model.onnx" ]] || fail "GenerationLayer has no $qa_path/vision_model.onnx (template.yaml: LATENTMINT_QA_CLIP_DIR=/opt/$qa_path)"
layer_mb=$(du -sm "$LAYER" | cut -f1)
# The functions of template.yaml and whether each carries the generation layer.
functions=$(python3 - "$ROOT/template.yaml" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
# Top-level resources: two-space indent, then their Type line.
for m in re.finditer(r"^  (\w+):\n    Type: AWS::Serverless::Function\n(.*?)(?=^  \w+:\n|^\S)", text, re.S | re.M):
    print(m.group(1), "layer" if "!Ref GenerationLayer" in m.group(2) else "-")
PY
)
[[ -n "$functions" ]] || fail "found no AWS::Serverless::Function in template.yaml"
printf '%-20s %10s %10s\n' function bootstrap "with layers"
while read -r name layer; do
  exe="$BUILD/$name/bootstrap"
  [[ -f "$exe" ]] || fail "$name: no bootstrap in $BUILD/$name (the provided.al2023 runtime runs that file)"
  [[ "$(head -c 4 "$exe" | od -An -c | tr -d ' ')" == "177ELF" ]] || fail "$name: bootstrap is not an ELF executable"
  [[ "$(od -An -t x1 -j 18 -N 2 "$exe" | tr -d ' ')" == "3e00" ]] || fail "$name: bootstrap is not x86_64 (template.yaml says x86_64)"
  fn_mb=$(du -sm "$BUILD/$name" | cut -f1)
  total=$fn_mb
  [[ "$layer" == "layer" ]] && total=$((fn_mb + layer_mb))
  (( total < 250 )) || fail "$name: $total MB with its layers, over Lambda's 250 MB unzipped"
  printf '%-20s %8s MB %8s MB\n' "$name" "$fn_mb" "$total"
done <<< "$functions"
echo "GenerationLayer: $layer_mb MB (ONNX Runtime + $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("_class_name","model"))' "$LAYER/$model_path/model_index.json"))"
printf '\n\033[1;32msam build ok\033[0m: deploy with `sam deploy --guided` (AWS credentials needed)\n'
