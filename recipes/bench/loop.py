"""Seamless loops: is the step from the last frame back to the first like any other step?

    python -m recipes.bench.loop --split dev --cases 8 [--frames 16] [--preset default]

For each held-out case of the fidelity bench (recipes/bench/fidelity_cases.py) it makes an N-frame
`extend --loop` and, as the naive baseline, an N-frame `extend` whose last 4 frames are
cross-faded into frame 0. Each video is measured played as a loop (frames 0..N-1, 0, 1) with the
quality report: the wrap step (N-1 -> 0) against the median of the other steps, for motion (flow,
px), unexplained change (8-bit levels) and flicker (L*), and the share of wraps flagged as seams.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import vidzero
from recipes.bench.fidelity_cases import make_cases
from vidzero.media.outputs import write_json
from vidzero.quality.report import quality_report


def cross_faded(frames: list[np.ndarray], k: int = 4) -> list[np.ndarray]:
    """The naive loop: the last k frames fade into frame 0."""
    out = [f.copy() for f in frames]
    n = len(frames)
    for i in range(k):
        a = (i + 1) / (k + 1)
        out[n - k + i] = np.clip(np.rint((1 - a) * frames[n - k + i] + a * frames[0]), 0, 255).astype(np.uint8)
    return out


def wrap_measures(frames: list[np.ndarray]) -> dict:
    n = len(frames)
    report = quality_report(iter([*frames, frames[0], frames[1]]))
    pf = report["per_frame"]
    out = {}
    for name in ("step", "change", "flicker"):
        values = pf[name]
        wrap = values[n] if name != "flicker" else values[n - 1]  # the step N-1 -> 0 (flicker: centred at N-1)
        others = [v for i, v in enumerate(values[1:n], start=1) if i != n]
        out[f"wrap_{name}"] = float(wrap)
        out[f"median_{name}"] = float(np.median(others))
        out[f"max_{name}"] = float(np.max(others))
    out["wrap_flagged"] = any(s["frame"] == n for s in report["seams"])
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="shapes")
    p.add_argument("--split", default="dev")
    p.add_argument("--cases", type=int, default=8)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--preset", default=None)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("docs/bench"))
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    bb = vidzero.load_backbone(a.model, device="cpu")
    rows = {"loop": [], "cross-fade": []}
    for case in make_cases(a.split, a.cases):
        options = {"preset": a.preset} if a.preset else {}
        loop = vidzero.extend(
            case.first_frame(), case.prompt, frames=a.frames, loop=True, backbone=bb, progress=False, **options
        ).frames()
        plain = vidzero.extend(
            case.first_frame(), case.prompt, frames=a.frames, backbone=bb, progress=False, **options
        ).frames()
        rows["loop"].append(wrap_measures(loop))
        rows["cross-fade"].append(wrap_measures(cross_faded(plain)))
        print(
            case.name,
            {k: {m: round(v, 2) for m, v in r[-1].items() if m.startswith("wrap")} for k, r in rows.items()},
            flush=True,
        )
    summary = {}
    for name, measured in rows.items():
        summary[name] = {k: float(np.mean([m[k] for m in measured])) for k in measured[0]}
    write_json(
        a.out / f"loop-{a.split}.json", {"frames": a.frames, "preset": a.preset, "summary": summary, "cases": rows}
    )
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
