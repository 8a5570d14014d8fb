#!/usr/bin/env python3
"""Reference run for the fp16 parity test: diffusers' own OnnxStableDiffusionPipeline on the fp16
export (models/tiny-sd-fp16), DDIM, fixed initial latents. diffusers keeps the latents and the
scheduler maths in fp16 for such a model; the Rust engine computes them in f32 and only the
model calls in fp16, so the test allows fp16 rounding, not more. Not run in CI: committed.

Usage: python infra/model/make_fp16_fixture.py models/tiny-sd-fp16 tests/fixtures/parity/fp16_ddim
"""
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from diffusers import OnnxStableDiffusionPipeline

model, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
PROMPT, NEGATIVE, STEPS, GUIDANCE, SIZE = "a red circle on a blue background, flat colours", "blurry", 4, 7.5, 64
pipe = OnnxStableDiffusionPipeline.from_pretrained(str(model), provider="CPUExecutionProvider")
# Values exactly representable in fp16, so both sides start from the same numbers.
latents = np.random.RandomState(1234).randn(1, 4, SIZE // 2, SIZE // 2).astype(np.float16).astype(np.float32)
# The pipeline sizes latents as height // 8 (SD's VAE factor); the tiny VAE's factor is 2, so
# ask for 4x the size to get these latents. The decoded image is SIZE x SIZE.
image = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=STEPS, guidance_scale=GUIDANCE, height=SIZE * 4,
             width=SIZE * 4, latents=latents.astype(np.float16), output_type="np").images[0]
np.save(out / "latents_init.npy", latents)
np.save(out / "image.npy", image.astype(np.float32))
(out / "case.json").write_text(json.dumps({
    "scheduler": "ddim", "prompt": PROMPT, "negative_prompt": NEGATIVE, "steps": STEPS, "guidance": GUIDANCE,
    "width": SIZE, "height": SIZE,
    "reference": f"diffusers OnnxStableDiffusionPipeline on {model.name}, onnxruntime {ort.__version__}",
}, indent=1) + "\n")
print(f"wrote {out}: image {image.shape}, range {image.min():.3f}..{image.max():.3f}")
