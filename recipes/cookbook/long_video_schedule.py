"""A long video (256 frames by default) from one image and a prompt schedule.

    python -m recipes.cookbook.long_video_schedule IMAGE OUT.mp4 [--frames 256] [--model shapes] [--queue latent]

The schedule below switches the prompt every 64 frames; edit SCHEDULE or pass --prompt-at-style
entries with --at 64="a red circle moving left". Memory stays flat (one window of frames), frames
stream to OUT.partial/ as they are made, and an interrupted run continues with --resume.
"""

from __future__ import annotations

import argparse

import vidzero

SCHEDULE = {
    0: "a red circle moving right",
    64: "a red circle moving down",
    128: "a red circle moving left",
    192: "a red circle moving up",
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image")
    p.add_argument("out")
    p.add_argument("--frames", type=int, default=256)
    p.add_argument("--at", action="append", default=[], help="N=PROMPT, replaces the built-in schedule")
    p.add_argument("--model", default="shapes")
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--resample", type=int, default=4)
    p.add_argument("--queue", default="pixel", choices=["pixel", "latent"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--deflicker", action="store_true")
    p.add_argument("--resume", action="store_true")
    a = p.parse_args(argv)
    schedule = {int(k): v for k, v in (item.split("=", 1) for item in a.at)} if a.at else SCHEDULE
    schedule = {k: v for k, v in schedule.items() if k < a.frames}
    run = vidzero.extend(
        a.image,
        schedule,
        frames=a.frames,
        model=a.model,
        device=a.device,
        steps=a.steps,
        resample=a.resample,
        queue=a.queue,
        seed=a.seed,
        deflicker=a.deflicker,
    )
    path = run.save(a.out, resume=a.resume)
    print(
        f"wrote {path}: {run.length} frames, {run.engine.stats.cfg_evaluations} CFG evaluations, "
        f"{run.engine.stats.seconds:.0f} s"
    )


if __name__ == "__main__":
    main()
