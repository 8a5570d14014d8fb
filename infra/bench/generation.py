#!/usr/bin/env python3
"""Generation benchmark: latentmint's Rust engine vs diffusers' OnnxStableDiffusionPipeline,
same model, same steps, same thread count, each in its own process (so peak RSS is the whole
process's, read from wait4).

Both processes load once, then generate one image at a time on request, alternating
(Rust, Python, Python, Rust, ...), so that both sides meet the same machine conditions: on a
shared virtual machine the speed drifts by tens of percent over seconds, far more than the
differences measured here.

Goals (issue 3): Rust wall time per image <= 0.7x Python's; peak RSS <= 0.5x Python's;
engine overhead outside unet.run < 2% of the denoising step time.

Needs the model-building environment (infra/model/requirements.txt) and ORT_DYLIB_PATH
(source .tools/env.sh). Appends every sample of the run, with the machine and the versions, to
infra/bench/records/generation.jsonl, then `report.py` writes infra/bench/RESULTS.md and the
README's figures from the records.

Usage: python infra/bench/generation.py [--model models/tiny-sd] [--steps 20] [--images 40] [--threads 2]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def python_worker(a):
    t0 = time.perf_counter()
    import io
    import onnxruntime as ort
    from diffusers import DDIMScheduler, OnnxStableDiffusionPipeline
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    pipe = OnnxStableDiffusionPipeline.from_pretrained(a.model, provider="CPUExecutionProvider", sess_options=so,
                                                       safety_checker=None, feature_extractor=None,
                                                       requires_safety_checker=False)
    pipe.scheduler = DDIMScheduler.from_pretrained(a.model, subfolder="scheduler")
    pipe.set_progress_bar_config(disable=True)
    import numpy as np
    startup = time.perf_counter() - t0
    # The pipeline sizes latents as height // 8; ask for 8x the latent size, as the Rust side does.
    hw = a.size // 2 * 8

    def one(seed):
        img = pipe("a red circle on a dark background", negative_prompt="blurry", num_inference_steps=a.steps,
                   guidance_scale=7.5, height=hw, width=hw, generator=np.random.RandomState(seed)).images[0]
        img.save(io.BytesIO(), format="png")

    one(0)  # warm-up, as the Rust side
    print(json.dumps({"startup_s": startup}), flush=True)
    for line in sys.stdin:
        seed = int(line.split()[1])
        t = time.perf_counter()
        one(seed)
        print(json.dumps({"image_s": time.perf_counter() - t}), flush=True)


class Side:
    """One benchmark process, loaded and waiting for `gen <seed>` lines."""

    def __init__(self, name, cmd):
        self.name = name
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  cwd=ROOT, text=True)
        self.startup_s = self.read()["startup_s"]
        self.images = []

    def read(self):
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise SystemExit(f"the {self.name} benchmark process stopped (status {self.p.wait()})")
            if line.startswith("{"):
                return json.loads(line)

    def cpu_ns(self):
        """CPU time used so far by all of the process's threads, in ns (from the scheduler's stats)."""
        total = 0
        for task in Path(f"/proc/{self.p.pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                pass  # a thread that ended between the listing and the read
        return total

    def gen(self, seed):
        self.p.stdin.write(f"gen {seed}\n")
        self.p.stdin.flush()
        self.images.append(self.read())

    def close(self):
        """Ends the process; returns its peak RSS in MiB."""
        self.p.stdin.close()
        _, status, usage = os.wait4(self.p.pid, 0)
        if status != 0:
            raise SystemExit(f"the {self.name} benchmark process failed with status {status}")
        return usage.ru_maxrss / 1024


def wait_idle(sides, window_s=0.02, busy_ns=1_000_000, timeout_s=5.0):
    """Waits until no side has used more than `busy_ns` of CPU over `window_s`.

    ONNX Runtime's pool threads spin for tens of milliseconds after a run (Python's sessions keep
    the default, spinning on); an image started at once would share its cores with the other
    process's spinning threads. Returns the seconds waited."""
    t0 = time.perf_counter()
    before = [s.cpu_ns() for s in sides]
    while time.perf_counter() - t0 < timeout_s:
        time.sleep(window_s)
        now = [s.cpu_ns() for s in sides]
        if all(n - b <= busy_ns for n, b in zip(now, before)):
            break
        before = now
    return time.perf_counter() - t0


def cpu_name():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/tiny-sd")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=64, help="image size in pixels (the tiny VAE upsamples x2)")
    ap.add_argument("--python-worker", action="store_true")
    a = ap.parse_args()
    if a.python_worker:
        return python_worker(a)

    if not os.environ.get("ORT_DYLIB_PATH"):
        raise SystemExit("set ORT_DYLIB_PATH (source .tools/env.sh)")
    subprocess.run(["cargo", "build", "--quiet", "--release", "-p", "latentmint-diffusion", "--bin", "sd-bench"], cwd=ROOT, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    common = ["--model", a.model, "--steps", str(a.steps), "--threads", str(a.threads), "--size", str(a.size)]
    # Loaded one after the other, so that start-up times are not disturbed by the other side.
    rust = Side("Rust", [str(target / "release/sd-bench"), *common])
    py = Side("Python", [sys.executable, __file__, "--python-worker", *common])
    settle = []
    for i in range(a.images):
        for side in ((rust, py) if i % 2 == 0 else (py, rust)):
            settle.append(wait_idle((rust, py)))
            side.gen(i + 1)
    r_rss, p_rss = rust.close(), py.close()

    import onnxruntime, diffusers
    record = {
        "bench": "generation",
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, Linux {platform.release()}",
        "versions": {"diffusers": diffusers.__version__, "onnxruntime": onnxruntime.__version__,
                     "python": platform.python_version()},
        "args": {"model": a.model, "steps": a.steps, "images": a.images, "threads": a.threads, "size": a.size},
        "rust": {"startup_s": rust.startup_s, "peak_rss_mib": r_rss, "images": rust.images},
        "python": {"startup_s": py.startup_s, "peak_rss_mib": p_rss, "images": py.images},
        "idle_wait_s": settle,
    }
    records = ROOT / "infra/bench/records/generation.jsonl"
    records.parent.mkdir(parents=True, exist_ok=True)
    with records.open("a") as f:
        f.write(json.dumps(record) + "\n")
    subprocess.run([sys.executable, str(ROOT / "infra/bench/report.py")], check=True)
    print((ROOT / "infra/bench/RESULTS.md").read_text())


if __name__ == "__main__":
    main()
