"""Where a training step of the embedded model goes: the share outside the UNet's forward and
backward, at the shipped batch size.

    python -m recipes.bench.training_step [--steps 50] [--batch 16] [--threads 1]

Continues the shipped weights for a few steps in a temporary folder with the fidelity training's
flags (recipes/gpu/train_shapes.py) and prints the training log's own measure: wall seconds per
step and the share of them outside the UNet's forward and backward (drawing the batch from the
latent pool on the device, noise, the optimizer step, the EMA, rendering and encoding new clips).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import tempfile

import torch

from recipes.gpu.train_shapes import FLAGS
from recipes.shapes import train


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=50, help="a multiple of 25 (the log's interval)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--pool-refresh", type=int, default=1)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--cpu", action="store_true")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    log = io.StringIO()
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(log):
        args = ["--out", out, "--from-model", "vidzero/shapes/model", *FLAGS, "--batch", str(a.batch)]
        args += ["--pool-start", str(4 * a.batch), "--pool-refresh", str(a.pool_refresh)]
        args += ["--unet-steps", str(a.steps), "--every", str(10 * a.steps)] + (["--cpu"] if a.cpu else [])
        train.main(args)
    found = re.findall(r"\(([\d.]+) s/step, (\d+)% of it outside", log.getvalue())
    if not found:
        raise SystemExit("the training log measured nothing: give --steps of at least 25")
    seconds, outside = found[-1]
    device = "cuda" if torch.cuda.is_available() and not a.cpu else "cpu"
    print(
        f"batch {a.batch} on {device}: {float(seconds):.2f} s per step, "
        f"{outside}% of it outside the UNet's forward and backward"
    )


if __name__ == "__main__":
    main()
