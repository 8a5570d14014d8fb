#!/usr/bin/env python3
"""Train the demo model that really draws what it is asked: "a <colour> <shape>".

A tiny Stable-Diffusion-architecture model (CLIP text encoder, cross-attention UNet, KL VAE,
the same layout and sizes as build_tiny_sd.py) trained on CPU on procedural 32x32 images of one
coloured shape on a dark background. Training: the VAE first (reconstruction + small KL), then
the UNet on VAE latents with the epsilon objective and 10% prompt dropout (so classifier-free
guidance works), with the text encoder frozen at its seeded random weights.

It is a demonstration of the pipeline (prompt -> latents -> image), not an image model: it
knows 8 colours and 4 shapes and nothing else. Not run in CI; the result is committed.

Usage: python infra/model/train_shapes.py models/shapes-sd [--minutes 20]
"""
import argparse
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

sys.path.insert(0, str(Path(__file__).parent))
import build_tiny_sd as base  # noqa: E402

COLOURS = {
    "red": (230, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 240), "yellow": (240, 220, 40),
    "cyan": (40, 220, 230), "magenta": (220, 50, 220), "white": (240, 240, 240), "orange": (250, 140, 30),
}
SHAPES = ["circle", "square", "triangle", "ring"]
SIZE = 32


def draw(colour, shape, rng):
    """One 32x32 RGB image in [-1, 1]: a shape with jittered size and position."""
    img = np.zeros((SIZE, SIZE, 3), np.float32)
    img[:] = np.array([18, 20, 28], np.float32)
    r = rng.uniform(7.0, 11.0)
    cx, cy = rng.uniform(r + 1, SIZE - r - 1), rng.uniform(r + 1, SIZE - r - 1)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5
    dx, dy = xx - cx, yy - cy
    if shape == "circle":
        m = dx * dx + dy * dy <= r * r
    elif shape == "ring":
        d = np.sqrt(dx * dx + dy * dy)
        m = (d <= r) & (d >= r * 0.55)
    elif shape == "square":
        s = r * 0.85
        m = (np.abs(dx) <= s) & (np.abs(dy) <= s)
    else:  # triangle, point up
        h = r * 1.7
        top, bottom = cy - h / 2, cy + h / 2
        t = (yy - top) / h
        m = (yy >= top) & (yy <= bottom) & (np.abs(dx) <= t * r)
    img[m] = np.array(COLOURS[colour], np.float32)
    return img / 127.5 - 1.0


def batch(n, rng):
    items = [(rng.choice(list(COLOURS)), rng.choice(SHAPES)) for _ in range(n)]
    x = np.stack([draw(c, s, rng) for c, s in items]).transpose(0, 3, 1, 2)
    return torch.from_numpy(x), [f"a {c} {s}" for c, s in items]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--vae-share", type=float, default=0.1, help="share of the time spent on the VAE")
    ap.add_argument("--pool", type=int, default=8192, help="VAE latents encoded once for UNet training")
    args = ap.parse_args()
    out = Path(args.out)
    torch.manual_seed(0)
    rng = random.Random(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    tok = base.write_tokenizer(out / "tokenizer")
    text = CLIPTextModel(CLIPTextConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        hidden_size=32, intermediate_size=37, layer_norm_eps=1e-5, num_attention_heads=4,
        num_hidden_layers=5, vocab_size=base.VOCAB_SIZE, max_position_embeddings=77)).eval()
    for p in text.parameters():
        p.requires_grad_(False)
    vae = AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        latent_channels=4, norm_num_groups=32)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=SIZE // 2, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=32)
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1)

    @torch.no_grad()
    def embed(prompts):
        ids = tok(prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        return text(ids.to(torch.int32))[0]

    budget = args.minutes * 60
    # 1. VAE: a fifth of the time.
    opt = torch.optim.AdamW(vae.parameters(), lr=2e-3)
    t0, step = time.time(), 0
    while time.time() - t0 < budget * args.vae_share:
        x, _ = batch(32, rng)
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.sample()).sample
        loss = F.mse_loss(rec, x) + 1e-6 * post.kl().mean()
        opt.zero_grad(); loss.backward(); opt.step(); step += 1
        if step % 100 == 0:
            print(f"vae step {step} loss {loss.item():.4f}", flush=True)
    vae.eval()
    # Scale latents to unit variance, as SD's 0.18215 does for its VAE.
    with torch.no_grad():
        x, _ = batch(256, rng)
        scaling = float(1.0 / vae.encode(x).latent_dist.mode().std())
    vae.register_to_config(scaling_factor=scaling)
    print(f"vae done: {step} steps, scaling_factor {scaling:.4f}", flush=True)
    t_vae_end = time.time()

    # 2. UNet on latents with prompt dropout. The text encoder is frozen and there are only
    # 32 prompts, so their embeddings are computed once; a pool of VAE latents is encoded once
    # (and refreshed in slices), so each step is almost all UNet.
    prompts_all = [f"a {c} {s}" for c in COLOURS for s in SHAPES]
    table = dict(zip(prompts_all, embed(prompts_all)))
    null = embed([""])[0]
    pool_x, pool_p = [], []
    with torch.no_grad():
        for _ in range(args.pool // 64):
            x, p = batch(64, rng)
            pool_x.append(vae.encode(x).latent_dist.sample() * scaling)
            pool_p += p
    pool_z = torch.cat(pool_x)
    print(f"latent pool: {len(pool_p)} images", flush=True)
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-3, weight_decay=1e-4)
    ac = sched.alphas_cumprod
    t0, step = time.time(), 0
    left = budget * (1 - args.vae_share) - (time.time() - t_vae_end)
    while time.time() - t0 < left:
        idx = torch.randint(0, len(pool_p), (32,))
        z = pool_z[idx]
        cond = torch.stack([table[pool_p[i]] for i in idx.tolist()])
        drop = torch.rand(len(idx)) < 0.1
        cond[drop] = null
        t = torch.randint(0, 1000, (len(idx),))
        noise = torch.randn_like(z)
        a = ac[t].view(-1, 1, 1, 1)
        zt = a.sqrt() * z + (1 - a).sqrt() * noise
        pred = unet(zt, t, cond).sample
        loss = F.mse_loss(pred, noise)
        frac = (time.time() - t0) / left
        for g in opt.param_groups:
            g["lr"] = 1e-3 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        opt.zero_grad(); loss.backward(); opt.step(); step += 1
        if step % 200 == 0:
            print(f"unet step {step} loss {loss.item():.4f} ({frac:.0%})", flush=True)
    unet.eval()
    print(f"unet done: {step} steps", flush=True)
    base.export(out, tok, text, unet, vae, sched, name="latentmint/shapes-sd", latent_hw=SIZE // 2)
    (out / "README.md").write_text(
        "# shapes-sd\n\nlatentmint's demo model: the Stable Diffusion 1.x architecture at a tiny size, trained "
        f"for {args.minutes:g} CPU minutes by infra/model/train_shapes.py on procedural 32x32 images of one "
        f"shape on a dark background. It knows the colours {', '.join(COLOURS)} and the shapes "
        f"{', '.join(SHAPES)}; prompts like \"a red circle\". Images are 32x32.\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
