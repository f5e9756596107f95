"""Where the time of a run goes, and what the speed options save, measured side by side in one run.

    python -m recipes.bench.speed                                 # tiny checkpoint and the embedded model
    python -m recipes.bench.speed --modelscope build/ms-random   # + the real ModelScope architecture
                                                                  #   (recipes.gpu.modelscope_random builds it)

For each model and queue mode it times one guided UNet evaluation of a window (the median of a
few, after a warm-up), then a saved image-to-video run, and splits the run's wall time into the
UNet's share (the time inside the guided evaluations, which the engine records in every run's
stats) and everything else (VAE encode and decode, queue
bookkeeping, PNG flushing, encoding the video, the manifest, the contact sheet and the quality
report). Then the speed options on the same run: the UNet work they do per generated frame (in
window samples: a full guided evaluation is 2) and the wall time, as ratios to the paper's
settings. Their effect on fidelity is the fidelity bench's to measure (recipes.bench.fidelity).
Last, one guided evaluation in fp32 against bf16 (on CPUs with bf16 instructions, AVX512-BF16 or
AMX, bf16 is the one saving that needs no GPU).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import vidzero
from vidzero.models.loading import pick_device

OPTIONS = {  # name -> run options, against the paper's settings
    "paper": {"preset": "paper"},
    "resample 3 steps": {"preset": "paper", "resample_steps": 3},
    "resample 2 steps": {"preset": "paper", "resample_steps": 2},
    "guidance 2:10 + 3 steps": {"preset": "paper", "guidance_steps": "2:10", "resample_steps": 3},
    "fast": {"preset": "fast"},
}


@torch.no_grad()
def time_one_evaluation(bb, repeats: int = 3) -> float:
    """Median seconds of one guided evaluation of a window (both branches in one batch)."""
    c, h, w = bb.latent_shape
    z = torch.randn(1, c, bb.frames, h, w, device=bb.device)
    t = torch.tensor(500)
    denoiser = bb.denoiser("a red circle moving right", "")  # encodes the text, once
    denoiser(z, t, guided=True)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        denoiser(z, t, guided=True)
        if bb.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timed_run(bb, image: np.ndarray, frames: int, out: Path, **options) -> tuple[float, object]:
    run = vidzero.extend(image, "a red circle moving right", frames=frames, backbone=bb, progress=False, **options)
    start = time.perf_counter()
    run.save(out)
    return time.perf_counter() - start, run


def image_for(bb) -> np.ndarray:
    img = np.zeros((bb.height, bb.width, 3), np.uint8)
    img[...] = (26, 30, 78)
    r = max(2, bb.height // 8)
    yy, xx = np.mgrid[0 : bb.height, 0 : bb.width]
    img[(yy - bb.height // 2) ** 2 + (xx - bb.width // 3) ** 2 <= r * r] = (230, 40, 40)
    return img


def breakdown(name: str, bb, frames: int, steps: int, resample: int) -> list[dict]:
    per_eval = time_one_evaluation(bb)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for queue in ("pixel", "latent"):
            wall, run = timed_run(
                bb, image_for(bb), frames, Path(tmp) / f"{queue}.mp4", steps=steps, resample=resample, queue=queue
            )
            unet = run.engine.stats.unet_seconds  # timed inside the run: immune to load changing
            rows.append(
                {
                    "model": name,
                    "queue": queue,
                    "evaluations": run.engine.stats.cfg_evaluations,
                    "seconds_per_evaluation": per_eval,
                    "wall": wall,
                    "unet": unet,
                    "outside_unet": max(0.0, wall - unet) / wall,
                }
            )
    return rows


def precision_table(models: list[tuple[str, str]], device: str) -> list[dict]:
    """Seconds of one guided evaluation in fp32 and in bf16, each model loaded both ways."""
    rows = []
    for name, source in models:
        seconds = {}
        for dtype in ("fp32", "bf16"):
            bb = vidzero.load_backbone(source, device=device, dtype=dtype)
            seconds[dtype] = time_one_evaluation(bb, repeats=1 if "modelscope" in name else 3)
            del bb
        rows.append({"model": name, **seconds, "speedup": seconds["fp32"] / seconds["bf16"]})
    return rows


def options_table(bb, frames: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, options in OPTIONS.items():
            wall, run = timed_run(bb, image_for(bb), frames, Path(tmp) / f"{len(rows)}.mp4", **options)
            generated = frames - 1
            rows.append(
                {
                    "option": name,
                    "evaluations_per_frame": run.engine.stats.cfg_evaluations / generated,
                    "unet_samples_per_frame": run.engine.stats.unet_samples / generated,
                    "seconds_per_frame": wall / generated,
                }
            )
    paper = rows[0]
    for row in rows:
        row["unet_work_ratio"] = paper["unet_samples_per_frame"] / row["unet_samples_per_frame"]
        row["time_ratio"] = paper["seconds_per_frame"] / row["seconds_per_frame"]
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modelscope", type=Path, help="a folder from recipes.gpu.modelscope_random (or a real checkpoint)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--parts", default="breakdown,options,precision", help="which tables, comma-separated")
    a = p.parse_args(argv)
    parts = set(a.parts.split(","))
    if a.threads:
        torch.set_num_threads(a.threads)
    from vidzero.models.tiny import build_tiny_checkpoint

    models, sources = [], []
    with tempfile.TemporaryDirectory() as tiny:
        build_tiny_checkpoint(tiny)
        models.append(("tiny", vidzero.load_backbone(tiny, device="cpu"), a.frames, 10, 4))
        models.append(("shapes", vidzero.load_backbone("shapes", device=a.device), a.frames, 10, 4))
        if a.modelscope:
            cpu = pick_device(a.device).type == "cpu"
            bb = vidzero.load_backbone(str(a.modelscope), device=a.device, dtype="bf16" if cpu else None)
            models.append(("modelscope (random weights)", bb, 3, 2, 0))
            sources.append(("modelscope (random weights)", str(a.modelscope)))
        if "breakdown" in parts:
            print("| model | queue | guided evaluations | s per evaluation | wall s | UNet s | outside the UNet |")
            print("|---|---|---|---|---|---|---|")
        for name, bb, frames, steps, resample in models if "breakdown" in parts else []:
            for r in breakdown(name, bb, frames, steps, resample):
                print(
                    f"| {r['model']} | {r['queue']} | {r['evaluations']} | {r['seconds_per_evaluation']:.4f} | "
                    f"{r['wall']:.2f} | {r['unet']:.2f} | {r['outside_unet']:.1%} |",
                    flush=True,
                )
        if "options" in parts:
            print(
                f"\n| option (shapes, {a.frames} frames) | evaluations/frame | UNet samples/frame | s/frame | "
                "UNet work, x less | time, x less |"
            )
            print("|---|---|---|---|---|---|")
        for r in options_table(models[1][1], a.frames) if "options" in parts else []:
            print(
                f"| {r['option']} | {r['evaluations_per_frame']:.1f} | {r['unet_samples_per_frame']:.1f} | "
                f"{r['seconds_per_frame']:.3f} | {r['unet_work_ratio']:.2f} | {r['time_ratio']:.2f} |",
                flush=True,
            )
        models = [m for m in models if not m[0].startswith("modelscope")]  # free its memory for fp32
        if "precision" in parts:
            print("\n| model | fp32 s per evaluation | bf16 s per evaluation | bf16 speedup |")
            print("|---|---|---|---|")
        for r in (
            precision_table([("tiny", tiny), ("shapes", "shapes"), *sources], a.device) if "precision" in parts else []
        ):
            print(f"| {r['model']} | {r['fp32']:.4f} | {r['bf16']:.4f} | {r['speedup']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
