"""Prediction and infilling on the shapes world, scored against the ground truth.

    python -m recipes.bench.tasks --model shapes [--cases 16] [--out docs/bench]
    python -m recipes.bench.tasks --model DIR --quick

Cases are held-out 32-frame shapes-world clips with one object moving without a bounce.

- predict: the first 15 frames are given (the real clip), 8 more are generated; scored on the
  generated frames.
- infill: frames 0 and 15 are given, 1..14 generated; planner fill orders `inward` and `forward`.
- both with one new frame per sampling run (the paper's) and with four (`new_per_window=4`).

Baselines: repeat the last known frame (predict and infill), and cross-fade linearly between the
two keys (infill). Printed: mean trajectory error (px) between the found object centroid and the
true centre, the fraction of frames where the object is found, and direction accuracy.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import vidzero
import vidzero.media.video
from recipes.shapes import world
from recipes.shapes.judge import Expected, score_clip

HELD_OUT_SEED_BASE = 5_000_000_000
CONTEXT, PREDICT, GAP_END = 15, 8, 15
PER_WINDOW = (1, 4)  # prediction: the paper's one frame per run, and four
INFILL_PLANS = (("inward", 1), ("forward", 1), ("inward", 4))


def per_window_label(per_window: int) -> str:
    return f", {per_window} per window" if per_window > 1 else ""


def cases(count: int) -> list[world.ShapesClip]:
    return world.moving_object_clips(count, HELD_OUT_SEED_BASE, frames=32)


def resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.Resampling.BICUBIC)) for f in frames])


def score(frames: np.ndarray, clip: world.ShapesClip, indices: range, scale: float) -> dict:
    """Trajectory error on the frames at `indices` (their true centres scaled to the frame size)."""
    spec = clip.tracks[0].spec
    truth = clip.tracks[0].centres[list(indices)] * scale
    r = score_clip(frames, [Expected(spec.colour, spec.shape, spec.direction)], truth=[truth])
    return {"track_error": r["track_error"], "present": r["present"], "direction": float(r["direction_correct"])}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="shapes")
    p.add_argument("--device", default="auto")
    p.add_argument("--cases", type=int, default=16)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--resample", type=int, default=4)
    p.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the default preset's)")
    p.add_argument("--out", type=Path, default=Path("docs/bench"))
    p.add_argument("--quick", action="store_true", help="2 cases, 1 step, U=0")
    a = p.parse_args(argv)
    if a.quick:
        a.cases, a.steps, a.resample = 2, 1, 0
    a.out.mkdir(parents=True, exist_ok=True)
    bb = vidzero.load_backbone(a.model, device=a.device)
    size, scale = (bb.width, bb.height), bb.width / world.SIZE
    kw = dict(backbone=bb, steps=a.steps, resample=a.resample, guidance=a.guidance)
    rows: dict[str, list[dict]] = {}
    cost: dict[str, list[tuple[int, float, int]]] = {}  # CFG evaluations, seconds, generated frames

    def record(name: str, run, generated: int) -> None:
        stats = run.engine.stats
        cost.setdefault(name, []).append((stats.cfg_evaluations, stats.seconds, generated))

    for i, clip in enumerate(cases(a.cases)):
        frames = resize(clip.frames, size)
        # prediction: frames CONTEXT .. CONTEXT + PREDICT - 1
        target = range(CONTEXT, CONTEXT + PREDICT)
        for per_window in PER_WINDOW:
            name = "predict: vidzero" + per_window_label(per_window)
            with tempfile.TemporaryDirectory() as tmp:  # the real clip, as a lossless PNG folder
                context_dir = vidzero.media.video.write_video(frames[:CONTEXT], Path(tmp) / "context")
                run = vidzero.predict(
                    context_dir, clip.caption, frames=PREDICT, seed=i, new_per_window=per_window, **kw
                )
                made = np.stack(run.frames())
            rows.setdefault(name, []).append(score(made[-PREDICT:], clip, target, scale))
            record(name, run, PREDICT)
        repeat = np.repeat(frames[CONTEXT - 1 : CONTEXT], PREDICT, axis=0)
        rows.setdefault("predict: repeat last frame", []).append(score(repeat, clip, target, scale))
        # infilling: keys 0 and GAP_END
        gap = range(1, GAP_END)
        for order, per_window in INFILL_PLANS:
            name = f"infill: vidzero {order}" + per_window_label(per_window)
            keys = {0: frames[0], GAP_END: frames[GAP_END]}
            run = vidzero.infill(
                clip.caption, GAP_END + 1, keys=keys, order=order, seed=i, new_per_window=per_window, **kw
            )
            made = np.stack(run.frames())
            rows.setdefault(name, []).append(score(made[1:GAP_END], clip, gap, scale))
            record(name, run, GAP_END - 1)
        hold = np.repeat(frames[:1], GAP_END - 1, axis=0)
        rows.setdefault("infill: repeat first key", []).append(score(hold, clip, gap, scale))
        w = (np.arange(1, GAP_END) / GAP_END)[:, None, None, None]
        fade = np.rint((1 - w) * frames[0] + w * frames[GAP_END]).astype(np.uint8)
        rows.setdefault("infill: cross-fade", []).append(score(fade, clip, gap, scale))
    summary = {}
    for name, rs in rows.items():
        errors = [r["track_error"] for r in rs if r["track_error"] is not None]
        runs = cost.get(name, [])
        made = sum(r[2] for r in runs)
        summary[name] = {
            "track_error_px": float(np.mean(errors)) if errors else float("nan"),
            "present": float(np.mean([r["present"] for r in rs])),
            "direction": float(np.mean([r["direction"] for r in rs])),
            "cfg_per_frame": sum(r[0] for r in runs) / made if made else 0.0,
            "seconds_per_frame": sum(r[1] for r in runs) / made if made else 0.0,
        }
    guidance = a.guidance or "the preset's"
    frame = f"{size[0]}x{size[1]}"
    setup = f"{a.cases} held-out cases, {a.steps} steps, U={a.resample}, w={guidance}, model {a.model}, frame {frame}"
    lines = [
        setup,
        "",
        "| task: method | trajectory error (px) | object found | direction acc. | CFG evals/frame | s/frame |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {n} | {s['track_error_px']:.2f} | {s['present']:.2f} | {s['direction']:.2f} | {s['cfg_per_frame']:.0f} | "
        f"{s['seconds_per_frame']:.2f} |"
        for n, s in summary.items()
    ]
    (a.out / "tasks.md").write_text("\n".join(lines) + "\n")
    (a.out / "tasks.json").write_text(json.dumps({"setup": setup, "summary": summary}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
