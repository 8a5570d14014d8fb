#!/usr/bin/env python3
"""Train and export the demo's QA scorer: a tiny CLIP that knows the demo model's world.

A `transformers` CLIPModel (text and vision towers, contrastive logits) at a tiny size, trained
on CPU on the same procedural 32x32 images as the demo model (train_shapes.py: 8 colours, 4
shapes on a dark background), blurred and noised like the demo model's output, plus shapeless
blobs (what a one-step generation looks like). Each image is scored against three caption sets
at once, so each group of the vocabulary can be read on its own: "a {colour} {shape}", "a
{colour} shape" and "a {shape}" (the shape "blob" included).

The export is the layout latentmint-qa reads for any CLIP (a real one exports the same way):

    text_model.onnx        input_ids, attention_mask (int64) -> text_embeds   (with projection)
    vision_model.onnx      pixel_values (float32, NCHW)      -> image_embeds  (with projection)
    config.json            the CLIPConfig
    preprocessor_config.json   CLIPImageProcessor (size, mean, std)
    tokenizer.json         the fast tokenizer (Hugging Face tokenizers format)
    latentmint_qa.json     logit_scale, and the vocabulary groups with their caption templates

`--random` writes a tiny CLIP with seeded random weights and `parity.json` (inputs, and the
embeddings transformers computes for them): the Rust side's parity test.

Not run in CI; the results are committed (models/shapes-clip, tests/fixtures/tiny-clip).

Usage: python infra/model/train_clip_scorer.py models/shapes-clip [--minutes 6]
       python infra/model/train_clip_scorer.py tests/fixtures/tiny-clip --random
"""
import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import (CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTextModelWithProjection,
                          CLIPTokenizer, CLIPTokenizerFast, CLIPVisionModelWithProjection)

sys.path.insert(0, str(Path(__file__).parent))
import train_shapes as shapes  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
TOKENIZER = ROOT / "models/shapes-sd/tokenizer"
SIZE = shapes.SIZE
COLOURS = list(shapes.COLOURS)
SHAPE_VALUES = shapes.SHAPES + ["blob"]
GROUPS = {
    "colour": {"template": "a {} shape", "values": COLOURS},
    # "blob" is no shape at all (a one-step image): it sends an image to a human when it wins.
    "shape": {"template": "a {}", "values": SHAPE_VALUES, "flag_values": ["blob"]},
}


def blob(colour, rng):
    """A shapeless smear of `colour`: smoothed noise, soft edges, no outline (a one-step image)."""
    g = np.random.default_rng(rng.randrange(1 << 30))
    field = g.standard_normal((SIZE // 4, SIZE // 4)).astype(np.float32)
    field = np.kron(field, np.ones((4, 4), np.float32))
    t = torch.from_numpy(field)[None, None]
    t = F.avg_pool2d(F.pad(t, (3, 3, 3, 3), mode="replicate"), 7, stride=1)
    m = torch.sigmoid(t[0, 0] * rng.uniform(1.5, 4.0) + rng.uniform(-0.5, 0.5)).numpy()[..., None]
    bg = np.array([18, 20, 28], np.float32)
    img = bg * (1 - m) + np.array(shapes.COLOURS[colour], np.float32) * m * rng.uniform(0.5, 0.9)
    return img / 127.5 - 1.0


def soften(x, rng):
    """Blur, noise and a brightness shift, as the demo model's images have. (A gain per colour
    channel, to imitate the demo model's hue drift, was tried: the scorer then sent twice as many
    good images to a human, confusing yellow with white and green with cyan.)"""
    t = torch.from_numpy(x).permute(2, 0, 1)[None]
    sigma = rng.uniform(0.0, 1.2)
    if sigma > 0.2:
        k = torch.arange(-2, 3, dtype=torch.float32)
        k = torch.exp(-(k * k) / (2 * sigma * sigma))
        k = k / k.sum()
        t = F.conv2d(F.pad(t, (2, 2, 0, 0), mode="replicate"), k.view(1, 1, 1, 5).repeat(3, 1, 1, 1), groups=3)
        t = F.conv2d(F.pad(t, (0, 0, 2, 2), mode="replicate"), k.view(1, 1, 5, 1).repeat(3, 1, 1, 1), groups=3)
    t = t + torch.randn_like(t) * rng.uniform(0.0, 0.08) + rng.uniform(-0.1, 0.1)
    return t[0].clamp(-1, 1)


def batch(n, rng, blob_share=0.2):
    xs, labels = [], []
    for _ in range(n):
        c = rng.choice(COLOURS)
        if rng.random() < blob_share:
            s, img = "blob", blob(c, rng)
        else:
            s = rng.choice(shapes.SHAPES)
            img = shapes.draw(c, s, rng)
        xs.append(soften(img.astype(np.float32), rng))
        labels.append((COLOURS.index(c), SHAPE_VALUES.index(s)))
    # To CLIP's input: [-1, 1] is (x/255 - 0.5) / 0.5, the processor's mean and std below.
    return torch.stack(xs), labels


def captions():
    full = [f"a {c} {s}" for c in COLOURS for s in SHAPE_VALUES]
    colour = [GROUPS["colour"]["template"].format(c) for c in COLOURS]
    shape = [GROUPS["shape"]["template"].format(s) for s in SHAPE_VALUES]
    return full, colour, shape


def config(tok):
    return CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, projection_dim=32),
        vision_config=dict(image_size=SIZE, patch_size=4, hidden_size=64, intermediate_size=128,
                           num_hidden_layers=3, num_attention_heads=4, num_channels=3, projection_dim=32),
        projection_dim=32,
    )


def export(model: CLIPModel, tok, out: Path, extra: dict):
    out.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    text = CLIPTextModelWithProjection(cfg.text_config).eval()
    text.load_state_dict({k: v for k, v in model.state_dict().items()
                          if k.startswith(("text_model.", "text_projection."))})
    vision = CLIPVisionModelWithProjection(cfg.vision_config).eval()
    vision.load_state_dict({k: v for k, v in model.state_dict().items()
                            if k.startswith(("vision_model.", "visual_projection."))})

    class Text(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            return self.m(input_ids=input_ids, attention_mask=attention_mask).text_embeds

    class Vision(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, pixel_values):
            return self.m(pixel_values=pixel_values).image_embeds

    enc = tok(["a red circle", "a blue"], padding="max_length", max_length=77, return_tensors="pt")
    with torch.no_grad():
        torch.onnx.export(Text(text), (enc.input_ids, enc.attention_mask), str(out / "text_model.onnx"),
                          input_names=["input_ids", "attention_mask"], output_names=["text_embeds"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                        "attention_mask": {0: "batch", 1: "sequence"},
                                        "text_embeds": {0: "batch"}},
                          opset_version=17, dynamo=False)
        torch.onnx.export(Vision(vision), (torch.zeros(1, 3, SIZE, SIZE),), str(out / "vision_model.onnx"),
                          input_names=["pixel_values"], output_names=["image_embeds"],
                          dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
                          opset_version=17, dynamo=False)
    cfg.save_pretrained(str(out))
    CLIPImageProcessor(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE},
                       image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5]).save_pretrained(str(out))
    fast = CLIPTokenizerFast.from_pretrained(str(TOKENIZER))
    fast.model_max_length = 77
    fast.save_pretrained(str(out))
    for leftover in ("vocab.json", "merges.txt"):
        (out / leftover).unlink(missing_ok=True)
    meta = {"logit_scale": float(model.logit_scale.exp()), **extra}
    (out / "latentmint_qa.json").write_text(json.dumps(meta, indent=2) + "\n")
    return text, vision


def train(minutes: float):
    torch.manual_seed(0)
    rng = random.Random(0)
    tok = CLIPTokenizer.from_pretrained(str(TOKENIZER))
    model = CLIPModel(config(tok))
    full, colour, shape = captions()
    ids = {k: tok(v, padding="max_length", max_length=77, return_tensors="pt")
           for k, v in {"full": full, "colour": colour, "shape": shape}.items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    t0, step = time.time(), 0
    while time.time() - t0 < minutes * 60:
        x, labels = batch(128, rng)
        img = F.normalize(model.get_image_features(pixel_values=x), dim=-1)
        scale = model.logit_scale.exp().clamp(max=100)
        loss = 0
        for name, target in (("full", [c * len(SHAPE_VALUES) + s for c, s in labels]),
                             ("colour", [c for c, _ in labels]), ("shape", [s for _, s in labels])):
            t = F.normalize(model.get_text_features(**ids[name]), dim=-1)
            loss = loss + F.cross_entropy(scale * img @ t.T, torch.tensor(target))
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.4f} scale {scale.item():.1f}", flush=True)
    model.eval()
    # Held-out accuracy per group, on fresh images.
    with torch.no_grad():
        x, labels = batch(1024, random.Random(1))
        img = F.normalize(model.get_image_features(pixel_values=x), dim=-1)
        acc = {}
        for name, idx in (("colour", 0), ("shape", 1)):
            t = F.normalize(model.get_text_features(**ids[name]), dim=-1)
            pred = (img @ t.T).argmax(-1)
            acc[name] = float((pred == torch.tensor([l[idx] for l in labels])).float().mean())
    print(f"trained {step} steps in {time.time() - t0:.0f}s; held-out accuracy {acc}", flush=True)
    return model, tok, {"steps": step, "held_out_accuracy": acc}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--random", action="store_true", help="seeded random weights and parity.json")
    args = ap.parse_args()
    out = Path(args.out)
    if args.random:
        torch.manual_seed(0)
        tok = CLIPTokenizer.from_pretrained(str(TOKENIZER))
        model = CLIPModel(config(tok)).eval()
        text, vision = export(model, tok, out, {"groups": GROUPS})
        texts = ["a red circle", "A Blue  Square!", "🔴 un cercle rouge"]
        enc = tok(texts, padding="max_length", max_length=77, return_tensors="pt")
        g = torch.Generator().manual_seed(1)
        pixels = torch.randint(0, 256, (2, SIZE, SIZE, 3), generator=g, dtype=torch.uint8)
        x = (pixels.float() / 255 - 0.5) / 0.5
        with torch.no_grad():
            te = text(input_ids=enc.input_ids, attention_mask=enc.attention_mask).text_embeds
            ie = vision(pixel_values=x.permute(0, 3, 1, 2)).image_embeds
        (out / "parity.json").write_text(json.dumps({
            "texts": texts,
            "input_ids": enc.input_ids.tolist(),
            "images_rgb8": pixels.reshape(2, -1).tolist(),
            "text_embeds": te.tolist(),
            "image_embeds": ie.tolist(),
        }) + "\n")
        print(f"wrote {out}")
        return
    model, tok, stats = train(args.minutes)
    export(model, tok, out, {"groups": GROUPS, "training": stats})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
