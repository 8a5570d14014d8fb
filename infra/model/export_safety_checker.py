#!/usr/bin/env python3
"""Export a Stable Diffusion safety checker in the layout diffusers writes for ONNX pipelines.

The layout (diffusers' scripts/convert_stable_diffusion_checkpoint_to_onnx.py, the one
OnnxStableDiffusionPipeline reads), which latentmint-qa reads:

    safety_checker/model.onnx                    clip_input (N,3,S,S), images (N,H,W,3)
                                                 -> out_images, has_nsfw_concepts (bool, N)
    feature_extractor/preprocessor_config.json   the CLIPImageProcessor that makes clip_input

`--random` builds diffusers' StableDiffusionSafetyChecker at a tiny size with seeded random
weights, its concept thresholds placed so that some of eight test images are flagged, some are
not, and one is flagged only through the "special care" adjustment (a special-care concept
lowers every threshold by 0.01), each score at least 0.002 from its threshold. It writes
parity.json: the images and the verdicts of diffusers' own checker (`forward`, the PyTorch
path), which agree with its ONNX path (`forward_onnx`) and with onnxruntime on the export,
all checked here before anything is written.

`--from DIR` exports the checker of a diffusers pipeline folder (DIR/safety_checker with its
weights, DIR/feature_extractor), e.g. a real Stable Diffusion checkout.

Not run in CI; the tiny export is committed (tests/fixtures/tiny-safety).

Usage: python infra/model/export_safety_checker.py tests/fixtures/tiny-safety --random
       python infra/model/export_safety_checker.py OUT --from path/to/stable-diffusion
"""
import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker, cosine_distance
from PIL import Image
from transformers import CLIPConfig, CLIPImageProcessor

SIZE = 32
MARGIN = 0.002


def tiny_checker():
    config = CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "vocab_size": 1000},
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                       "num_attention_heads": 4, "image_size": SIZE, "patch_size": 4},
        projection_dim=16,
    )
    torch.manual_seed(0)
    checker = StableDiffusionSafetyChecker(config).eval()
    with torch.no_grad():
        checker.concept_embeds.copy_(torch.randn_like(checker.concept_embeds))
        checker.special_care_embeds.copy_(torch.randn_like(checker.special_care_embeds))
    processor = CLIPImageProcessor(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE})
    return checker, processor


def test_images(seed):
    """Eight 32x32 RGB images: discs and squares of several colours, a gradient, noise."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    out = []
    for k in range(8):
        bg = g.integers(0, 60, 3)
        img = np.broadcast_to(bg, (SIZE, SIZE, 3)).copy()
        colour = g.integers(0, 256, 3)
        cx, cy, r = g.uniform(8, 24), g.uniform(8, 24), g.uniform(4, 10)
        if k % 4 == 0:
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        elif k % 4 == 1:
            mask = (abs(xx - cx) <= r) & (abs(yy - cy) <= r)
        elif k % 4 == 2:
            img = (np.stack([xx, yy, xx + yy], -1) * g.uniform(2, 8)).astype(np.int64) % 256
            mask = np.zeros((SIZE, SIZE), bool)
        else:
            img = g.integers(0, 256, (SIZE, SIZE, 3))
            mask = np.zeros((SIZE, SIZE), bool)
        img[mask] = colour
        out.append(img.astype(np.uint8))
    return out


def distances(checker, clip_input):
    with torch.no_grad():
        pooled = checker.vision_model(clip_input)[1]
        embeds = checker.visual_projection(pooled)
        return (cosine_distance(embeds, checker.special_care_embeds).numpy(),
                cosine_distance(embeds, checker.concept_embeds).numpy())


def place_thresholds(checker, special, concept):
    """Thresholds that split the images, or None when these images cannot be split with margin."""
    n = concept.shape[0]
    s0 = special[:, 0]
    order = np.argsort(-s0)
    adjusted = int(order[0])
    if s0[order[0]] - s0[order[1]] < 4 * MARGIN:
        return None
    special_w = np.full(3, float(special.max()) + 0.1)
    special_w[0] = float(s0[order[0]] + s0[order[1]]) / 2
    best = concept.max(axis=1)
    # The adjusted image sits 0.005 under the threshold: flagged only with the 0.01 adjustment.
    t = float(best[adjusted]) + 0.005
    scores = best - t + np.where(np.arange(n) == adjusted, 0.01, 0.0)
    flagged = scores > 0
    if np.min(np.abs(scores)) < MARGIN or not (2 <= flagged.sum() <= n - 2):
        return None
    with torch.no_grad():
        checker.special_care_embeds_weights.copy_(torch.tensor(special_w, dtype=torch.float32))
        checker.concept_embeds_weights.copy_(torch.full((concept.shape[1],), t, dtype=torch.float32))
    return adjusted, flagged.tolist()


def export(checker, processor, out):
    (out / "safety_checker").mkdir(parents=True, exist_ok=True)
    processor.save_pretrained(out / "feature_extractor")
    checker.forward = checker.forward_onnx
    size = checker.config.vision_config.image_size
    torch.onnx.export(
        checker,
        (torch.randn(1, 3, size, size), torch.rand(1, 64, 64, 3)),
        str(out / "safety_checker" / "model.onnx"),
        input_names=["clip_input", "images"],
        output_names=["out_images", "has_nsfw_concepts"],
        dynamic_axes={"clip_input": {0: "batch", 1: "channels", 2: "height", 3: "width"},
                      "images": {0: "batch", 1: "height", 2: "width", 3: "channels"}},
        opset_version=17,
        dynamo=False,
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--random", action="store_true", help="a tiny checker with seeded random weights, and parity.json")
    group.add_argument("--from", dest="source", help="a diffusers pipeline folder with safety_checker/ and feature_extractor/")
    args = ap.parse_args()
    out = Path(args.out)
    if args.source:
        checker = StableDiffusionSafetyChecker.from_pretrained(Path(args.source) / "safety_checker").eval()
        processor = CLIPImageProcessor.from_pretrained(Path(args.source) / "feature_extractor")
        export(checker, processor, out)
        print(f"wrote {out}")
        return
    checker, processor = tiny_checker()
    for seed in range(200):
        images = test_images(seed)
        clip_input = processor([Image.fromarray(i) for i in images], return_tensors="pt").pixel_values
        special, concept = distances(checker, clip_input)
        placed = place_thresholds(checker, special, concept)
        if placed:
            break
    else:
        raise SystemExit("no seed gave images the thresholds split with margin")
    adjusted, expected = placed
    as_floats = np.stack(images).astype(np.float32) / 255.0
    with torch.no_grad():
        _, theirs = checker(clip_input, as_floats.copy())
        _, onnx_path = checker.forward_onnx(clip_input, torch.from_numpy(as_floats.copy()))
    theirs = [bool(x) for x in theirs]
    assert theirs == expected, (theirs, expected)
    assert onnx_path.tolist() == theirs, (onnx_path.tolist(), theirs)
    export(checker, processor, out)
    session = ort.InferenceSession(str(out / "safety_checker" / "model.onnx"))
    # One image at a time, as OnnxStableDiffusionPipeline runs it: the export traces the
    # boolean mask at batch 1.
    ours = [bool(session.run(None, {"clip_input": clip_input[i:i + 1].numpy(), "images": as_floats[i:i + 1]})[1][0])
            for i in range(len(images))]
    assert ours == theirs, (ours, theirs)
    (out / "parity.json").write_text(json.dumps({
        "size": SIZE,
        "images_rgb8": [i.reshape(-1).tolist() for i in images],
        "has_nsfw_concepts": theirs,
        "flagged_only_by_special_care": adjusted,
        "seed": seed,
    }) + "\n")
    print(f"wrote {out}: flags {theirs}, image {adjusted} flagged through special care")


if __name__ == "__main__":
    main()
