#!/usr/bin/env python3
"""Reference outputs of diffusers' OnnxStableDiffusionPipeline on a model folder, for the Rust
engine's parity test (tests/fixtures/parity-ddim.json). Not run in CI: the fixture is committed.

Usage: python infra/model/make_parity_fixture.py models/tiny-sd tests/fixtures/parity-ddim.json
"""
import json
import sys

import numpy as np
from diffusers import DDIMScheduler, OnnxStableDiffusionPipeline

model, out = sys.argv[1], sys.argv[2]
pipe = OnnxStableDiffusionPipeline.from_pretrained(model, provider="CPUExecutionProvider", safety_checker=None,
                                                    feature_extractor=None, requires_safety_checker=False)
pipe.scheduler = DDIMScheduler.from_pretrained(model, subfolder="scheduler")
prompt, negative = "a red circle on a blue background, flat colours", "blurry"
steps, guidance = 4, 7.5
latent_hw = 32
rng = np.random.RandomState(1234)
latents = rng.randn(1, 4, latent_hw, latent_hw).astype(np.float32)
# The pipeline sizes latents as height // 8; the tiny VAE upsamples x2, so ask for 8 x 32.
image = pipe(prompt, negative_prompt=negative, num_inference_steps=steps, guidance_scale=guidance,
             height=8 * latent_hw, width=8 * latent_hw, latents=latents.copy(), output_type="np").images[0]
ids = pipe.tokenizer(prompt, padding="max_length", max_length=77, truncation=True).input_ids
neg_ids = pipe.tokenizer(negative, padding="max_length", max_length=77, truncation=True).input_ids
json.dump({
    "prompt": prompt, "negative_prompt": negative, "steps": steps, "guidance": guidance,
    "token_ids": ids, "negative_token_ids": neg_ids,
    "latents_shape": list(latents.shape), "latents": latents.ravel().tolist(),
    "image_shape": list(image.shape), "image": [round(float(x), 7) for x in image.ravel()],
}, open(out, "w"))
print(f"wrote {out}: image {image.shape}, mean {image.mean():.4f}, std {image.std():.4f}")
