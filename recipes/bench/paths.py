"""The motion-path bench: does the object follow the path the user drew, and keep its look?

    python -m recipes.bench.paths [--variants "no path,path"] [--cases 10] [--out docs/bench]

Cases: the fidelity bench's first frames (recipes/bench/fidelity_cases.py: discs, squares,
triangles, ... of every size, plain and textured backgrounds), each with one path of a kind
(straight, diagonal, curved, L-shaped, stop-and-go) and a speed (1, 2 or 4 px per frame at
64 px); the prompt names the colour, the shape and the path's main direction. Per frame, from
pixels alone: the object's centre against the path (its centroid as the fidelity bench finds it,
median and 90th percentile error in px, the share of frames within 3 px), its outline and area
against frame 0 (IoU >= 0.8, area within 15 %), the background; per variant the cost (seconds
and guided evaluations per generated frame). "no path" is the same prompt and seed without a
path: the reference the path's cost and look are paired against.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import vidzero
from recipes.bench.fidelity_cases import SIZE, Case, make_cases, measure, summary
from vidzero.core.paths import parse_path, positions
from vidzero.media.outputs import write_json
from vidzero.media.pictures import contact_sheet, write_png
from vidzero.models.families import load_backbone

KINDS = ("straight", "diagonal", "curved", "L-shaped", "stop-and-go")
SPEEDS = (1.0, 2.0, 4.0)
VARIANTS: dict[str, dict] = {
    "no path": {},
    "path": {"path": True},
    "path 0:8": {"path": True, "target_steps": "0:8"},
    "path 0:9": {"path": True, "target_steps": "0:9"},
    "path 0:10": {"path": True, "target_steps": "0:10"},
    "path 0:4": {"path": True, "target_steps": "0:4"},
    "path written": {"path": True, "target_frames": "target"},
}


def path_for(kind: str, start: tuple[float, float], speed: float, frames: int) -> str:
    """A path of `kind` from `start` covering about speed x (frames - 1) px, kept inside the frame."""
    length = speed * (frames - 1)
    margin = 10.0
    x0, y0 = start
    room_x = (SIZE - 1 - margin) - x0 if x0 < SIZE / 2 else margin - x0
    room_y = (SIZE - 1 - margin) - y0 if y0 < SIZE / 2 else margin - y0
    sx, sy = np.sign(room_x) or 1.0, np.sign(room_y) or 1.0
    if kind == "straight":
        points = [(x0, y0), (x0 + sx * length, y0)]
    elif kind == "diagonal":
        d = length / np.sqrt(2)
        points = [(x0, y0), (x0 + sx * d, y0 + sy * d)]
    elif kind == "L-shaped":
        points = [(x0, y0), (x0 + sx * length / 2, y0), (x0 + sx * length / 2, y0 + sy * length / 2)]
    elif kind == "curved":  # a quarter circle, as a polyline
        r = length / (np.pi / 2)
        angles = np.linspace(0, np.pi / 2, 9)
        points = [(x0 + sx * r * np.sin(a), y0 + sy * r * (1 - np.cos(a))) for a in angles]
    else:  # stop-and-go: half the way, a stop of a third of the frames, the rest
        third = (frames - 1) // 3
        half = length * 0.75 / 2
        mid = (x0 + sx * half, y0)
        text = f"{x0:.2f},{y0:.2f} {mid[0]:.2f},{mid[1]:.2f}@{third} {mid[0]:.2f},{mid[1]:.2f}@{2 * third} "
        return text + f"{x0 + sx * 2 * half:.2f},{y0:.2f}"
    # the path's points clipped into the frame (a long, fast path at the edge stops at the margin)
    clipped = [
        (float(np.clip(x, margin, SIZE - 1 - margin)), float(np.clip(y, margin, SIZE - 1 - margin))) for x, y in points
    ]
    return " ".join(f"{x:.2f},{y:.2f}" for x, y in clipped)


def direction_word(text: str) -> str:
    points = parse_path(text)
    dx, dy = points[-1][0] - points[0][0], points[-1][1] - points[0][1]
    return ("right" if dx > 0 else "left") if abs(dx) >= abs(dy) else ("down" if dy > 0 else "up")


def cases(count: int, frames: int) -> list[tuple[Case, str, str, float]]:
    """(case, path, kind, speed): the test split's first frames, each with a path kind and a speed."""
    out = []
    for i, case in enumerate(make_cases("test", count)):
        kind, speed = KINDS[i % len(KINDS)], SPEEDS[i % len(SPEEDS)]
        out.append((case, path_for(kind, (case.x, case.y), speed, frames), kind, speed))
    return out


def centre_errors(frames: np.ndarray, case: Case, text: str) -> list[float]:
    """Per frame after the first, the distance of the object's centroid from the path's point."""
    from recipes.bench.fidelity_cases import centroid, largest_part, object_map

    background = case.background_image()
    wanted = positions(parse_path(text), 0, len(frames) - 1)
    start = centroid(largest_part(object_map(frames[0], background, case.rgb) > 0.5))
    errors = []
    for k in range(1, len(frames)):
        c = centroid(largest_part(object_map(frames[k], background, case.rgb) > 0.5))
        if c is None or start is None:
            errors.append(float("inf"))
            continue
        target = start + (wanted[k] - wanted[0])  # the object's centre moves as the path's point does
        errors.append(float(np.linalg.norm(c - target)))
    return errors


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="shapes")
    p.add_argument("--variants", default="no path,path")
    p.add_argument("--cases", type=int, default=10)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("docs/bench"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    bb = load_backbone(args.model, device="cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    chosen = cases(args.cases, args.frames)
    results: dict[str, dict] = {}
    for name in [v.strip() for v in args.variants.split(",") if v.strip()]:
        spec = dict(VARIANTS[name])
        with_path = spec.pop("path", False)
        errors: list[float] = []
        measured, sheet, seconds, evaluations, by_kind = [], [], 0.0, 0, {}
        for case, text, kind, _ in chosen:
            prompt = case.prompt.rsplit(" moving ", 1)[0] + f" moving {direction_word(text)}"
            started = time.perf_counter()
            run = vidzero.extend(
                case.first_frame(),
                prompt,
                frames=args.frames,
                backbone=bb,
                seed=args.seed,
                progress=False,
                path=text if with_path else None,
                **spec,
            )
            video = np.stack(run.frames())
            seconds += time.perf_counter() - started
            evaluations += run.engine.stats.cfg_evaluations
            e = centre_errors(video, case, text)
            errors += e
            by_kind.setdefault(kind, []).extend(e)
            measured.append(measure(video, case))
            sheet += [(i, f) for i, f in enumerate(video[::3])]
        generated = len(chosen) * (args.frames - 1)
        finite = np.array([x if np.isfinite(x) else 99.0 for x in errors])
        row = summary(measured)
        results[name] = {
            "centre_median_px": float(np.median(finite)),
            "centre_p90_px": float(np.percentile(finite, 90)),
            "within_3px": float(np.mean(finite <= 3.0)),
            "iou_0.8": row["iou_0.8"],
            "area_15": row["area_15"],
            "background_psnr": row["background_psnr"],
            "seconds_per_frame": seconds / generated,
            "evals_per_frame": evaluations / generated,
            "within_3px_by_kind": {
                k: float(np.mean(np.array([x if np.isfinite(x) else 99 for x in v]) <= 3)) for k, v in by_kind.items()
            },
        }
        print(
            name,
            json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in results[name].items()}),
            flush=True,
        )
        write_png(
            args.out / f"paths-{name.replace(' ', '_').replace(':', '-')}.png", contact_sheet(sheet, columns=6, scale=2)
        )
    write_json(
        args.out / "paths.json",
        {
            "cases": [{"case": c.name, "path": t, "kind": k, "speed": s} for c, t, k, s in chosen],
            "frames": args.frames,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
