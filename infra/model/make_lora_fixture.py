#!/usr/bin/env python3
"""LoRA fixtures for the Rust engine: adapters for the tiny model and diffusers' output with them.

1. Rebuilds the tiny model's torch modules (build_tiny_sd.build_modules, same seed) and checks
   they export byte-identical to the committed ONNX files.
2. Adds random LoRA adapters with peft (rank 4, alpha = rank) to the UNet attention projections
   and the text encoder's attention projections, and saves them in diffusers' format
   (`lora.safetensors`), in kohya's format (`lora-kohya.safetensors`, same weights) and with
   zeroed up-projections (`lora-zero.safetensors`).
3. Loads `lora.safetensors` into a diffusers StableDiffusionPipeline built from fresh modules,
   fuses it at scale 0.8, exports the fused UNet and text encoder to ONNX, and runs the DDIM
   loop of tests/fixtures/parity/ddim on it: the latents and image the Rust engine must match.

Usage: python infra/model/make_lora_fixture.py models/tiny-sd tests/fixtures/lora
"""
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from diffusers import StableDiffusionPipeline
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file
from transformers import CLIPTokenizer

sys.path.insert(0, str(Path(__file__).parent))
import build_tiny_sd as base  # noqa: E402

model, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
SCALE = 0.8
PROMPT, NEGATIVE, STEPS, GUIDANCE = "a red circle on a blue background, flat colours", "blurry", 4, 7.5


def fresh():
    torch.manual_seed(0)
    tok = CLIPTokenizer.from_pretrained(str(model / "tokenizer"))
    text, unet, vae, sched = base.build_modules(tok)
    return tok, text, unet, vae, sched


# 1. The rebuilt modules are the committed model.
tok, text, unet, vae, sched = fresh()
with tempfile.TemporaryDirectory() as tmp:
    base.export(Path(tmp), tok, text, unet, vae, sched, name="check", latent_hw=32)
    for c in ["text_encoder", "unet"]:
        same = (Path(tmp) / c / "model.onnx").read_bytes() == (model / c / "model.onnx").read_bytes()
        assert same, f"rebuilt {c} differs from {model}: rebuild the model with build_tiny_sd.py"

# 2. Adapters.
torch.manual_seed(7)
unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False))
text.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "k_proj", "v_proj", "out_proj"], init_lora_weights=False))
unet_sd = {f"unet.{k}": v.contiguous() for k, v in get_peft_model_state_dict(unet).items()}
text_sd = {f"text_encoder.{k}": v.contiguous() for k, v in get_peft_model_state_dict(text).items()}
lora = {**unet_sd, **text_sd}
save_file(lora, str(out / "lora.safetensors"))
save_file({k: (torch.zeros_like(v) if ".lora_B." in k else v) for k, v in lora.items()}, str(out / "lora-zero.safetensors"))
kohya = {}
for k, v in lora.items():
    comp, rest = k.split(".", 1)
    module, role = rest.rsplit(".lora_", 1)
    prefix = ("lora_unet_" if comp == "unet" else "lora_te_") + module.replace(".", "_")
    kohya[f"{prefix}.{'lora_down' if role.startswith('A') else 'lora_up'}.weight"] = v
    kohya[f"{prefix}.alpha"] = torch.tensor(4.0)
save_file(kohya, str(out / "lora-kohya.safetensors"))

# 3. diffusers with the adapter, fused, exported, run.
tok, text, unet, vae, sched = fresh()
pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=sched, safety_checker=None,
                               feature_extractor=None, requires_safety_checker=False)
pipe.load_lora_weights(str(out), weight_name="lora.safetensors")
pipe.fuse_lora(lora_scale=SCALE)
pipe.unload_lora_weights()
with tempfile.TemporaryDirectory() as tmp:
    fused = Path(tmp) / "fused"
    shutil.copytree(model, fused)
    base.export(fused, tok, pipe.text_encoder, pipe.unet, vae, sched, name="fused", latent_hw=32)
    sess = {c: ort.InferenceSession(str(fused / c / "model.onnx"), providers=["CPUExecutionProvider"])
            for c in ["text_encoder", "unet", "vae_decoder"]}

    def encode(t):
        ids = tok(t, padding="max_length", max_length=77, truncation=True, return_tensors="np").input_ids
        return sess["text_encoder"].run(None, {"input_ids": ids.astype(np.int32)})[0]

    pipe.scheduler.set_timesteps(STEPS)
    init = np.random.RandomState(1234).randn(1, 4, 32, 32).astype(np.float32)
    latents, emb, trace = init.copy(), np.concatenate([encode(NEGATIVE), encode(PROMPT)]), []
    for t in pipe.scheduler.timesteps:
        pred = sess["unet"].run(None, {"sample": np.concatenate([latents] * 2), "timestep": np.array([int(t)], dtype=np.int64),
                                       "encoder_hidden_states": emb})[0]
        u, c = np.split(pred, 2)
        pred = u + GUIDANCE * (c - u)
        latents = pipe.scheduler.step(torch.from_numpy(pred), t, torch.from_numpy(latents)).prev_sample.numpy()
        trace.append(latents.copy())
    scaling = json.loads((model / "vae_decoder" / "config.json").read_text())["scaling_factor"]
    image = sess["vae_decoder"].run(None, {"latent_sample": latents / np.float32(scaling)})[0]
    image = np.clip(image / 2 + 0.5, 0, 1).transpose(0, 2, 3, 1)[0]
np.save(out / "latents_init.npy", init)
np.save(out / "latents_trace.npy", np.concatenate(trace))
np.save(out / "image.npy", image.astype(np.float32))
(out / "case.json").write_text(json.dumps({
    "scheduler": "ddim", "prompt": PROMPT, "negative_prompt": NEGATIVE, "steps": STEPS, "guidance": GUIDANCE,
    "width": 64, "height": 64, "scale": SCALE, "adapters": len(lora) // 2,
    "reference": "diffusers StableDiffusionPipeline.load_lora_weights + fuse_lora, exported to ONNX, onnxruntime",
}, indent=1) + "\n")
print(f"wrote {out}: {len(lora) // 2} adapted layers")
