"""Packed windows against one run at a time: windows per second, side by side in one process.

    python -m recipes.bench.packing                       # embedded model, 4 runs packed
    python -m recipes.bench.packing --model DIR --device cuda --pack 8

K image-to-video runs (the fast preset, one window per new frame) are sampled twice from the same
seeds: one after another, each model call holding one window; then all K at once in threads, their
model calls packed into one batch (vidzero.core.packing, what `vidzero batch --pack K` does). The
two orders alternate over `--repeats` rounds and the table gives the medians, the ratio of windows
per second, the packed calls' mean size, and the largest difference between the two videos in
8-bit levels (packed frames equal unpacked ones up to the rounding of a larger batch).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

import vidzero
from recipes.bench.speed import image_for
from vidzero.core.packing import Packer


def make_runs(bb, count: int, frames: int, steps: int) -> list:
    image = image_for(bb)
    return [
        vidzero.extend(
            image,
            "a red circle moving right",
            frames=frames,
            backbone=bb,
            preset="fast",
            steps=steps,
            seed=seed,
            progress=False,
        )
        for seed in range(count)
    ]


def sample(runs: list, packer: Packer | None) -> tuple[float, list[np.ndarray]]:
    def frames(run) -> np.ndarray:
        run.engine.packer = packer
        return np.stack(run.frames())

    start = time.perf_counter()
    if packer is None:
        videos = [frames(run) for run in runs]
    else:
        with ThreadPoolExecutor(len(runs)) as pool:
            videos = list(pool.map(frames, runs))
    if runs[0].backbone.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, videos


def measure(bb, count: int, frames: int, steps: int, repeats: int) -> dict:
    windows = count * (frames - 1)
    sample(make_runs(bb, 1, 2, steps), None)  # warm-up: kernels, the text encoder
    alone, packed, levels, sizes = [], [], 0, []
    for round_ in range(repeats):
        order = ("alone", "packed") if round_ % 2 == 0 else ("packed", "alone")
        videos = {}
        for mode in order:
            packer = Packer(bb.predict_many) if mode == "packed" else None
            seconds, videos[mode] = sample(make_runs(bb, count, frames, steps), packer)
            (packed if packer else alone).append(seconds)
            if packer is not None:
                sizes.append(packer.packed / packer.calls)
        for a, p in zip(videos["alone"], videos["packed"]):
            levels = max(levels, int(np.abs(a.astype(int) - p.astype(int)).max()))
    return {
        "windows": windows,
        "alone": windows / statistics.median(alone),
        "packed": windows / statistics.median(packed),
        "mean_pack": statistics.mean(sizes),
        "levels": levels,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="shapes")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default=None)
    p.add_argument("--pack", default="2,4", help="comma-separated numbers of runs packed")
    p.add_argument("--frames", type=int, default=5, help="frames per run (frames - 1 windows)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tiny:
        model = a.model
        if model == "tiny":
            from vidzero.models.tiny import build_tiny_checkpoint

            build_tiny_checkpoint(tiny)
            model = tiny
        bb = vidzero.load_backbone(model, device=a.device, dtype=a.dtype)
        print(f"model {a.model} on {bb.device}, {a.frames}-frame runs, {a.steps} steps, median of {a.repeats}")
        print("| runs packed | windows | windows/s alone | windows/s packed | speed-up | mean call size | max diff |")
        print("|---|---|---|---|---|---|---|")
        for count in (int(c) for c in a.pack.split(",")):
            r = measure(bb, count, a.frames, a.steps, a.repeats)
            print(
                f"| {count} | {r['windows']} | {r['alone']:.2f} | {r['packed']:.2f} | "
                f"{r['packed'] / r['alone']:.2f}x | {r['mean_pack']:.2f} | {r['levels']} levels |",
                flush=True,
            )


if __name__ == "__main__":
    main()
