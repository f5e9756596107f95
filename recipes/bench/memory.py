"""Peak memory of `vidzero extend` at two lengths, measured side by side in one run.

    python -m recipes.bench.memory [--model DIR] [--short 16] [--long 128]

Each length runs in a fresh subprocess (peak RSS is per process); the ratio long/short should be
close to 1: the engine keeps one window of frames and streams the rest to the output file.
Without --model it builds the tiny random-weight checkpoint in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from vidzero.app.cli import app
args = json.loads(sys.argv[1])
t = time.perf_counter()
try:
    app(args, standalone_mode=False)
finally:
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "seconds": time.perf_counter() - t}))
"""


def measure(model: str, image: str, frames: int, out: Path, steps: int, resample: int) -> dict:
    args = [
        "extend",
        image,
        "a red circle moving right",
        "-o",
        str(out),
        "--model",
        model,
        "--frames",
        str(frames),
        "--steps",
        str(steps),
        "--resample",
        str(resample),
        "--quiet",
        "--device",
        "cpu",
    ]
    res = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model")
    p.add_argument("--image", default=str(Path(__file__).resolve().parents[2] / "examples" / "red_circle.png"))
    p.add_argument("--short", type=int, default=16)
    p.add_argument("--long", type=int, default=128)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--resample", type=int, default=1)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        model = a.model
        if model is None:
            from vidzero.models.tiny import build_tiny_checkpoint

            model = str(Path(tmp) / "tiny")
            build_tiny_checkpoint(model)
        rows = {
            n: measure(model, a.image, n, Path(tmp) / f"out{n}.mp4", a.steps, a.resample) for n in (a.short, a.long)
        }
    print("| frames | peak RSS (MB) | seconds |")
    print("|---|---|---|")
    for n, r in rows.items():
        print(f"| {n} | {r['peak_rss_mb']:.0f} | {r['seconds']:.1f} |")
    ratio = rows[a.long]["peak_rss_mb"] / rows[a.short]["peak_rss_mb"]
    print(f"\npeak memory ratio {a.long}/{a.short} frames: {ratio:.3f}")


if __name__ == "__main__":
    main()
