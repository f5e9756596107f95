"""Score plain text-to-video from a shapes checkpoint on held-out prompts.

    python -m recipes.shapes.evaluate_model [--model shapes] [--prompts 64] [--out docs/model-card]

Prompts are the captions of shapes-world clips whose seeds lie far outside the training range
(training draws seeds below 10**8), so no (prompt, seed) pair was seen in training. Each prompt
is sampled with `vidzero.generate` and scored on pixels by `recipes.shapes.judge`. Printed
and written to OUT/evaluation.json: motion direction accuracy, colour accuracy, the mean fraction
of frames with the object present, and shape accuracy. Also OUT/samples.png, a grid of sample
frames.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from rich.progress import track

import vidzero
from recipes.shapes import world
from recipes.shapes.judge import score_clip
from vidzero.media.pictures import contact_sheet, write_png

HELD_OUT_SEED_BASE = 3_000_000_000


def held_out_prompts(count: int, seed_base: int = HELD_OUT_SEED_BASE) -> list[str]:
    """Distinct single-object captions with a clear motion (no bounce), from held-out seeds."""
    prompts: list[str] = []
    seed = seed_base
    while len(prompts) < count:
        clip = world.make_clip(seed, frames=1, two_object_probability=0.0)
        seed += 1
        caption = clip.caption
        if "bouncing" not in caption and caption not in prompts:
            prompts.append(caption)
    return prompts


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="shapes")
    p.add_argument("--device", default="auto")
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--guidance", type=float, default=9.0)
    p.add_argument("--out", type=Path, default=Path("docs/model-card"))
    p.add_argument(
        "--prompt-seed-base",
        type=int,
        default=HELD_OUT_SEED_BASE,
        help="draw the prompts from other held-out seeds (to tune sampling settings without touching the test prompts)",
    )
    p.add_argument("--quick", action="store_true", help="4 prompts, 5 steps")
    a = p.parse_args(argv)
    if a.quick:
        a.prompts, a.steps = 4, 5
    a.out.mkdir(parents=True, exist_ok=True)
    backbone = vidzero.load_backbone(a.model, device=a.device)
    rows, grid = [], []
    for i, prompt in enumerate(track(held_out_prompts(a.prompts, a.prompt_seed_base), description="sampling")):
        frames = np.stack(
            vidzero.generate(prompt, backbone=backbone, steps=a.steps, guidance=a.guidance, seed=i).frames()
        )
        score = score_clip(frames, prompt)
        rows.append(
            {
                "prompt": prompt,
                "seed": i,
                **{k: score[k] for k in ("present", "colour_correct", "direction_correct", "shape_correct")},
                "found_direction": score["objects"][0]["direction"],
            }
        )
        if i < 8:
            grid += [(f, frames[f]) for f in range(0, len(frames), max(1, len(frames) // 4))][:4]
    summary = {
        "model": a.model,
        "prompts": len(rows),
        "prompt_seed_base": a.prompt_seed_base,
        "steps": a.steps,
        "guidance": a.guidance,
        "direction_accuracy": float(np.mean([r["direction_correct"] for r in rows])),
        "colour_accuracy": float(np.mean([r["colour_correct"] for r in rows])),
        "shape_accuracy": float(np.mean([r["shape_correct"] for r in rows])),
        "present": float(np.mean([r["present"] for r in rows])),
    }
    found = [r["found_direction"] for r in rows]
    summary["found_directions"] = {str(d): found.count(d) for d in sorted(set(found), key=str)}
    (a.out / "evaluation.json").write_text(json.dumps({"summary": summary, "per_prompt": rows}, indent=1))
    write_png(a.out / "samples.png", contact_sheet(grid, columns=8))
    print("| metric | value |\n|---|---|")
    for key in ("direction_accuracy", "colour_accuracy", "present", "shape_accuracy"):
        print(f"| {key} | {summary[key]:.1%} |")
    print(f"\n{len(rows)} prompts, {a.steps} steps, guidance {a.guidance}")
    print(f"motion found (all prompts ask for one): {summary['found_directions']}")


if __name__ == "__main__":
    main()
