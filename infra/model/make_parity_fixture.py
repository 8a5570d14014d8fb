#!/usr/bin/env python3
"""Reference runs for the Rust engine's parity tests, one per scheduler.

For each scheduler this runs the text-to-image loop of diffusers' OnnxStableDiffusionPipeline
(onnxruntime for the three models, diffusers' own scheduler classes built with
`<Scheduler>.from_config(model's scheduler config)`, exactly as a user swaps schedulers), and
saves the token ids, the initial latents, the noise every stochastic step drew, the latents
after every step and the decoded image. Not run in CI: the fixtures are committed.

Usage: python infra/model/make_parity_fixture.py models/tiny-sd tests/fixtures/parity
"""
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, LCMScheduler)
from transformers import CLIPTokenizer

model, out = Path(sys.argv[1]), Path(sys.argv[2])
PROMPT, NEGATIVE = "a red circle on a blue background, flat colours", "blurry"
CASES = {
    # name: (class, module holding randn_tensor, steps, guidance)
    "ddim": (DDIMScheduler, None, 4, 7.5),
    "euler": (EulerDiscreteScheduler, None, 6, 7.5),
    "euler_a": (EulerAncestralDiscreteScheduler, "diffusers.schedulers.scheduling_euler_ancestral_discrete", 6, 7.5),
    "dpmpp_2m": (DPMSolverMultistepScheduler, None, 6, 7.5),
    "lcm": (LCMScheduler, "diffusers.schedulers.scheduling_lcm", 4, 1.0),
}

opts = ort.SessionOptions()
sess = {c: ort.InferenceSession(str(model / c / "model.onnx"), opts, providers=["CPUExecutionProvider"])
        for c in ["text_encoder", "unet", "vae_decoder"]}
ts_type = {"tensor(int64)": np.int64, "tensor(float)": np.float32}[
    next(i.type for i in sess["unet"].get_inputs() if i.name == "timestep")]
tok = CLIPTokenizer.from_pretrained(str(model / "tokenizer"))
base_config = DDIMScheduler.from_pretrained(str(model), subfolder="scheduler").config
vae_cfg = json.loads((model / "vae_decoder" / "config.json").read_text())
scaling = vae_cfg.get("scaling_factor", 0.18215)
factor = 2 ** (len(vae_cfg["block_out_channels"]) - 1)
latent_hw = 32


def ids(text):
    return tok(text, padding="max_length", max_length=77, truncation=True, return_tensors="np").input_ids


def encode(text):
    return sess["text_encoder"].run(None, {"input_ids": ids(text).astype(np.int32)})[0]


IMG2IMG = {"img2img_ddim": (DDIMScheduler, 5, 0.6), "img2img_euler": (EulerDiscreteScheduler, 5, 0.6)}


def img2img(name, cls, steps, strength, init_rgb):
    """diffusers' img2img recipe: encode, noise to the start step, denoise the rest."""
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    sched = cls.from_config(base_config)
    sched.set_timesteps(steps)
    run = min(int(steps * strength), steps)
    start = steps - run
    if hasattr(sched, "set_begin_index"):
        sched.set_begin_index(start)
    enc = ort.InferenceSession(str(model / "vae_encoder" / "model.onnx"), providers=["CPUExecutionProvider"])
    img = (init_rgb.astype(np.float32) / 255.0 * 2.0 - 1.0).transpose(2, 0, 1)[None]
    x0 = enc.run(None, {"sample": img})[0] * np.float32(scaling)
    noise = np.random.RandomState(1234).randn(*x0.shape).astype(np.float32)
    latents = sched.add_noise(torch.from_numpy(x0), torch.from_numpy(noise), sched.timesteps[start:start + 1]).numpy()
    emb = np.concatenate([encode(NEGATIVE), encode(PROMPT)])
    trace = []
    for t in sched.timesteps[start:]:
        inp = sched.scale_model_input(torch.from_numpy(np.concatenate([latents] * 2)), t).numpy()
        pred = sess["unet"].run(None, {"sample": inp, "timestep": np.array([float(t)], dtype=ts_type),
                                       "encoder_hidden_states": emb})[0]
        u, c = np.split(pred, 2)
        pred = u + 7.5 * (c - u)
        latents = sched.step(torch.from_numpy(pred), t, torch.from_numpy(latents)).prev_sample.numpy()
        trace.append(latents.copy())
    image = sess["vae_decoder"].run(None, {"latent_sample": latents / np.float32(scaling)})[0]
    image = np.clip(image / 2 + 0.5, 0, 1).transpose(0, 2, 3, 1)[0]
    np.save(d / "init_rgb.npy", init_rgb)
    np.save(d / "latents_init.npy", noise)
    np.save(d / "latents_trace.npy", np.concatenate(trace))
    np.save(d / "image.npy", image.astype(np.float32))
    (d / "case.json").write_text(json.dumps({
        "scheduler": name.split("_", 1)[1], "prompt": PROMPT, "negative_prompt": NEGATIVE, "steps": steps,
        "guidance": 7.5, "strength": strength, "width": init_rgb.shape[1], "height": init_rgb.shape[0],
        "timesteps": [float(t) for t in sched.timesteps[start:]],
        "reference": f"diffusers img2img recipe with {cls.__name__}, onnxruntime {ort.__version__}",
    }, indent=1) + "\n")
    print(f"{name}: timesteps {[round(float(t), 2) for t in sched.timesteps[start:]]}")


for name, (cls, noise_module, steps, guidance) in CASES.items():
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    sched = cls.from_config(base_config)
    sched.set_timesteps(steps)
    cfg = guidance > 1.0
    emb = np.concatenate([encode(NEGATIVE), encode(PROMPT)]) if cfg else encode(PROMPT)
    init = np.random.RandomState(1234).randn(1, 4, latent_hw, latent_hw).astype(np.float32)
    latents = init * np.float32(float(sched.init_noise_sigma))

    noise_rng, noises = np.random.RandomState(99), []
    if noise_module:
        mod = importlib.import_module(noise_module)

        def fake_randn(shape, generator=None, device=None, dtype=None, layout=None):
            z = noise_rng.randn(*shape).astype(np.float32)
            noises.append(z)
            return torch.from_numpy(z)

        mod.randn_tensor = fake_randn

    trace = []
    for t in sched.timesteps:
        inp = np.concatenate([latents] * 2) if cfg else latents
        inp = sched.scale_model_input(torch.from_numpy(inp), t).numpy()
        pred = sess["unet"].run(None, {"sample": inp, "timestep": np.array([float(t)], dtype=ts_type),
                                       "encoder_hidden_states": emb})[0]
        if cfg:
            u, c = np.split(pred, 2)
            pred = u + guidance * (c - u)
        latents = sched.step(torch.from_numpy(pred), t, torch.from_numpy(latents)).prev_sample.numpy()
        trace.append(latents.copy())
    image = sess["vae_decoder"].run(None, {"latent_sample": latents / np.float32(scaling)})[0]
    image = np.clip(image / 2 + 0.5, 0, 1).transpose(0, 2, 3, 1)[0]

    np.save(d / "latents_init.npy", init)
    np.save(d / "latents_trace.npy", np.concatenate(trace))
    if noises:
        np.save(d / "step_noise.npy", np.concatenate(noises))
    np.save(d / "image.npy", image.astype(np.float32))
    (d / "case.json").write_text(json.dumps({
        "scheduler": name, "prompt": PROMPT, "negative_prompt": NEGATIVE if cfg else "", "steps": steps,
        "guidance": guidance, "width": latent_hw * factor, "height": latent_hw * factor,
        "timesteps": [float(t) for t in sched.timesteps], "token_ids": ids(PROMPT)[0].tolist(),
        "negative_token_ids": ids(NEGATIVE)[0].tolist(), "noise_draws": len(noises),
        "reference": f"diffusers {importlib.import_module('diffusers').__version__} {cls.__name__}, onnxruntime {ort.__version__}",
    }, indent=1) + "\n")
    print(f"{name}: timesteps {[round(float(t), 2) for t in sched.timesteps]}, image mean {image.mean():.4f}")

# img2img starts from the DDIM case's image, as 8-bit RGB.
init_rgb = np.round(np.load(out / "ddim" / "image.npy") * 255).astype(np.uint8)
for name, (cls, steps, strength) in IMG2IMG.items():
    img2img(name, cls, steps, strength, init_rgb)
