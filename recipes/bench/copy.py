"""The copy bench: can the model copy an object it is shown, apart from the sampler's choices?

    python -m recipes.bench.copy [--model DIR] [--seeds 6] [--out docs/bench]
    python -m recipes.bench.copy --quick                  # a smoke run

Two measurements, on objects drawn here (fidelity_cases.Case: discs, squares, ellipses,
hexagons, diamonds and triangles, the last four outlines the training world never drew exactly)
of radius 4 to 11 px, each on its own position, colour and background per seed:

- one step: a window whose 15 known slots all hold the object's frame and whose last slot is
  generated (the first window of `extend`), under a prompt naming the object with a motion word
  ("a red circle moving right") and without one ("a red circle"); the generated frame's outline
  IoU (centroids aligned) and area ratio against the known frame.
- the chain: 16 frames extended from it under the prompt without a motion word: IoU and area of
  frame k against frame 0 for every k (how fast drift accumulates).

Both use the run options given (default: the default preset), so the same bench judges a model
under any sampler. The targets: the one-step frame keeps IoU >= 0.9 and its area within 10 % in
>= 90 % of seeds for radius >= 4 px; the static chain's frame 15 keeps IoU >= 0.85. Noise bars
are half a 90 % bootstrap interval over the seeds. Writes OUT/copy.json and OUT/copy.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import vidzero
from recipes.bench.fidelity_cases import (
    BACKGROUNDS,
    COLOURS,
    DIRECTIONS,
    SHAPE_WORDS,
    Case,
    centroid,
    largest_part,
    object_map,
    shifted,
)
from vidzero.media.outputs import write_json

RADII = (4.0, 6.0, 8.0, 11.0)
SHAPES = tuple(SHAPE_WORDS)


def case_for(shape: str, radius: float, seed: int) -> Case:
    """An object of this shape and radius, its colour, background and position drawn from seed."""
    rng = np.random.default_rng([seed, int(radius * 10), SHAPES.index(shape)])
    colour = list(COLOURS)[rng.integers(len(COLOURS))]
    background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    direction = list(DIRECTIONS)[rng.integers(len(DIRECTIONS))]
    margin = radius * 1.3 + 2
    x, y = (float(v) for v in rng.uniform(margin + 12, 63 - margin - 12, 2))
    texture = "texture" if rng.random() < 0.5 else "plain"
    return Case(f"{shape}-{radius:g}-{seed}", shape, radius, colour, COLOURS[colour], texture,
                BACKGROUNDS[background], x, y, direction, 5000 + seed)  # fmt: skip


def static_prompt(case: Case) -> str:
    article = "an" if case.colour[0] in "aeiou" else "a"
    return f"{article} {case.colour} {SHAPE_WORDS[case.shape]}"


def outline(frame: np.ndarray, first: np.ndarray, case: Case) -> tuple[float, float]:
    """(IoU with frame 0's object after aligning centroids, area ratio) of `frame`."""
    background = case.background_image()
    soft0, soft = object_map(first, background, case.rgb), object_map(frame, background, case.rgb)
    m0, mk = largest_part(soft0 > 0.5), largest_part(soft > 0.5)
    c0, ck = centroid(m0), centroid(mk)
    if c0 is None or ck is None:
        return 0.0, 0.0
    aligned = largest_part(shifted(np.minimum(soft, 1.0), c0 - ck) > 0.5)
    union = (aligned | m0).sum()
    return float((aligned & m0).sum() / union) if union else 0.0, float(mk.sum() / max(1, m0.sum()))


def video(bb, case: Case, prompt: str, frames: int, seed: int, options: dict) -> np.ndarray:
    run = vidzero.extend(case.first_frame(), prompt, frames, backbone=bb, seed=seed, progress=False, **options)
    return np.stack([f.image for f in run])


def halfwidth(values: list[float], rounds: int = 400) -> float:
    rng = np.random.default_rng(0)
    draws = [np.mean(rng.choice(values, len(values))) for _ in range(rounds)]
    lo, hi = np.percentile(draws, [5, 95])
    return float((hi - lo) / 2)


def summarise(rows: list[dict]) -> dict:
    ious, areas = [r["iou"] for r in rows], [r["area"] for r in rows]
    passed = [passes(r) for r in rows]
    return {
        "iou": float(np.mean(ious)),
        "iou_noise": halfwidth(ious),
        "area": float(np.mean(areas)),
        "area_noise": halfwidth(areas),
        "pass": float(np.mean(passed)),
        "pass_noise": halfwidth([float(p) for p in passed]),
        "count": len(rows),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="shapes")
    p.add_argument("--seeds", type=int, default=6, help="seeds per shape and radius (one step)")
    p.add_argument("--chain-seeds", type=int, default=1, help="seeds per shape and radius (the chain)")
    p.add_argument("--frames", type=int, default=16, help="length of the chain")
    p.add_argument("--options", default="{}", help="run options as JSON (default: the default preset)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("docs/bench"))
    p.add_argument("--name", default="copy", help="the output files' stem")
    p.add_argument("--quick", action="store_true", help="2 shapes, 2 radii, 1 seed, 4-frame chain (a smoke run)")
    p.add_argument("--reference", type=Path, help="a copy.json to pair with (the same objects and seeds)")
    a = p.parse_args(argv)
    options = json.loads(a.options)
    shapes, radii = (SHAPES[:2], RADII[:2]) if a.quick else (SHAPES, RADII)
    if a.quick:
        a.seeds, a.chain_seeds, a.frames = 1, 1, 4
    if a.threads:
        torch.set_num_threads(a.threads)
    bb = vidzero.load_backbone(a.model, device="cpu")
    started = time.perf_counter()
    one_step, chains = [], []
    for shape in shapes:
        for radius in radii:
            for seed in range(a.seeds):
                case = case_for(shape, radius, seed)
                first = case.first_frame()
                for motion in (True, False):
                    prompt = f"{static_prompt(case)} moving {case.direction}" if motion else static_prompt(case)
                    frames = video(bb, case, prompt, 2, seed, options)
                    iou, area = outline(frames[1], first, case)
                    one_step.append({"shape": shape, "radius": radius, "seed": seed, "motion": motion,
                                     "iou": iou, "area": area})  # fmt: skip
            for seed in range(a.chain_seeds):
                case = case_for(shape, radius, 100 + seed)
                frames = video(bb, case, static_prompt(case), a.frames, seed, options)
                per_frame = [outline(f, frames[0], case) for f in frames[1:]]
                chains.append({"shape": shape, "radius": radius, "seed": seed,
                               "iou": [r[0] for r in per_frame], "area": [r[1] for r in per_frame]})  # fmt: skip
            print(f"{shape} r={radius:g}: {time.perf_counter() - started:.0f} s", flush=True)
    report = {
        "model": a.model,
        "options": options,
        "one_step": one_step,
        "chains": chains,
        "seconds": time.perf_counter() - started,
    }
    text = tables(report, radii, shapes)
    if a.reference is not None:
        text += "\n\n" + paired(report, json.loads(a.reference.read_text()), str(a.reference))
    print(text)
    a.out.mkdir(parents=True, exist_ok=True)
    write_json(a.out / f"{a.name}.json", report)
    (a.out / f"{a.name}.md").write_text(text + "\n")


def paired(report: dict, reference: dict, name: str, draws: int = 2000) -> str:
    """This model against a reference run of the bench, object by object (the same shape,
    radius, seed and prompt): mean differences with 90 % bootstrap intervals."""
    key = lambda r: (r["shape"], r["radius"], r["seed"], r["motion"])  # noqa: E731
    theirs = {key(r): r for r in reference["one_step"]}
    pairs = [(r, theirs[key(r)]) for r in report["one_step"] if key(r) in theirs]
    if not pairs:
        return f"No object in common with {name}."
    rng = np.random.default_rng(0)

    def interval(values: list[float]) -> str:
        means = [np.mean(rng.choice(values, len(values))) for _ in range(draws)]
        lo, hi = np.percentile(means, [5, 95])
        return f"{np.mean(values):+.3f} [{lo:+.3f}, {hi:+.3f}]"

    iou = [a["iou"] - b["iou"] for a, b in pairs]
    area = [abs(a["area"] - 1) - abs(b["area"] - 1) for a, b in pairs]
    passed = [float(passes(a)) - float(passes(b)) for a, b in pairs]
    lines = [f"Paired with {name} over {len(pairs)} one-step objects (this model minus the reference, 90 % "
             "bootstrap intervals):", "", f"- IoU {interval(iou)}", f"- |area ratio - 1| {interval(area)}",
             f"- pass {interval(passed)}"]  # fmt: skip
    chain_key = lambda c: (c["shape"], c["radius"], c["seed"])  # noqa: E731
    their_chains = {chain_key(c): c for c in reference.get("chains", [])}
    last = [
        (c["iou"][-1], their_chains[chain_key(c)]["iou"][-1]) for c in report["chains"] if chain_key(c) in their_chains
    ]
    if last:
        lines.append(f"- the chain's last frame IoU {interval([a - b for a, b in last])} over {len(last)} chains")
    return "\n".join(lines)


def passes(row: dict) -> bool:
    return row["iou"] >= 0.9 and abs(row["area"] - 1) <= 0.1


def tables(report: dict, radii, shapes) -> str:
    rows, chains = report["one_step"], report["chains"]
    lines = [f"One step ({report['model']}, options {json.dumps(report['options'])}): IoU / area ratio / share of "
             "seeds with IoU >= 0.9 and area within 10 % (± half a 90 % bootstrap interval)", "",
             "| radius px | prompt | IoU | area ratio | pass |", "|---|---|---|---|---|"]  # fmt: skip
    for radius in radii:
        for motion in (True, False):
            s = summarise([r for r in rows if r["radius"] == radius and r["motion"] == motion])
            lines.append(
                f"| {radius:g} | {'with motion' if motion else 'static'} | {s['iou']:.2f} ±{s['iou_noise']:.2f} | "
                f"{s['area']:.2f} ±{s['area_noise']:.2f} | {s['pass']:.0%} ±{s['pass_noise']:.0%} |"
            )
    lines += ["", "| shape | IoU | area ratio | pass |", "|---|---|---|---|"]
    for shape in shapes:
        s = summarise([r for r in rows if r["shape"] == shape])
        lines.append(f"| {shape} | {s['iou']:.2f} | {s['area']:.2f} | {s['pass']:.0%} |")
    s = summarise(rows)
    lines.append(
        f"| all | {s['iou']:.2f} ±{s['iou_noise']:.2f} | {s['area']:.2f} | {s['pass']:.0%} ±{s['pass_noise']:.0%} |"
    )
    if chains:
        length = len(chains[0]["iou"])
        marks = [k for k in (1, 2, 3, 5, 8, 11, 15) if k <= length]
        head = "| radius px | " + " | ".join(f"frame {k}" for k in marks) + " |"
        lines += ["", "The static chain: mean IoU / area ratio of frame k against frame 0", "", head]
        lines.append("|---|" + "---|" * len(marks))
        for radius in radii:
            picked = [c for c in chains if c["radius"] == radius]
            cells = [
                f"{np.mean([c['iou'][k - 1] for c in picked]):.2f} / {np.mean([c['area'][k - 1] for c in picked]):.2f}"
                for k in marks
            ]
            lines.append(f"| {radius:g} | " + " | ".join(cells) + " |")
        last = [c["iou"][-1] >= 0.85 for c in chains]
        lines.append(f"\nLast frame IoU >= 0.85: {np.mean(last):.0%} of {len(chains)} chains")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
