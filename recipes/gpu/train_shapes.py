"""Continue training the embedded model on a lent GPU for a fixed time, then export it.

    python -m recipes.gpu.train_shapes --out build/gpu-train --export OUT/shapes-model --minutes 9
    python -m recipes.gpu.train_shapes --out build/gpu-depth --export OUT/depth-model --layers-per-block 2

One command for a machine that is lent for minutes: it continues `--from-model` (default: the
shipped weights) with the flags of the current fidelity training at a GPU's batch size, stops
cleanly when `--minutes` are spent (checkpointing, so the same command resumes it), and exports
the diffusers folder. On the H200 the step was host-bound at 0.20 s (927 steps in 3.3 minutes at
batch 128); `--workers` render clips ahead in other processes, so the GPU does not wait for them.
The exported folder is a candidate: it ships only if it beats the shipped weights on the fidelity
bench (docs/fidelity.md) and the text-to-video evaluation (recipes.shapes.evaluate_model).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from recipes.shapes import train

# The continuation's recipe: the phase-3 world, object-weighted loss, small objects and the
# high-noise steps (where an object's size is decided) drawn more often.
FLAGS = [
    "--appearance", "0.7",
    "--world-speed", "1.5:2.5",
    "--mover-fraction", "0.5",
    "--high-noise-weight", "20",
    "--unet-lr", "2e-4",
    "--warmup", "100",
    "--object-weight", "4",
    "--small-share", "0.5",
    "--focus-fraction", "0.25",
    "--focus-timesteps", "500:1000",
]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from-model", default="vidzero/shapes/model")
    p.add_argument("--out", default="build/gpu-train")
    p.add_argument("--export", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=9.0)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--pool-start", type=int, default=2048)
    p.add_argument("--pool-refresh", type=int, default=4)
    p.add_argument("--seed", type=int, default=4)
    p.add_argument("--cpu", action="store_true", help="run on the CPU (a try of the command, tiny settings)")
    p.add_argument("--layers-per-block", type=int, default=1, help="2: the depth arm (the UNet grown deeper)")
    a = p.parse_args(argv)
    common = ["--out", a.out, "--from-model", a.from_model, "--seed", str(a.seed), *FLAGS]
    common += ["--layers-per-block", str(a.layers_per_block)]
    common += ["--cpu"] if a.cpu else []
    train.main(
        [
            *common,
            "--batch", str(a.batch),
            "--workers", str(a.workers),
            "--pool-start", str(a.pool_start),
            "--pool-refresh", str(a.pool_refresh),
            "--unet-steps", "1000000",
            "--minutes", str(a.minutes),
            "--every", "100",
        ]
    )  # fmt: skip
    train.main([*common, "--export", str(a.export)])


if __name__ == "__main__":
    main()
