"""Continue every clip in a folder (video prediction): a job file for `vidzero batch`, then the batch.

    python -m recipes.cookbook.continue_clips CLIPS_DIR OUT_DIR "PROMPT" [--frames 15] [--model shapes]

Each CLIP becomes OUT_DIR/CLIP-predict.mp4 (context + new frames) with its manifest, contact
sheet and report. Rerunning skips what is done and resumes what was interrupted (see vidzero.app.batch).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vidzero.app.batch import run_batch

VIDEO_SUFFIXES = {".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif"}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("clips", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("prompt")
    p.add_argument("--frames", type=int, default=15)
    p.add_argument("--model", default="shapes")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--resample", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    clips = sorted(c for c in a.clips.iterdir() if c.suffix.lower() in VIDEO_SUFFIXES)
    a.out.mkdir(parents=True, exist_ok=True)
    jobs = a.out / "jobs.jsonl"
    jobs.write_text(
        "".join(
            json.dumps({"task": "predict", "clip": str(c.resolve()), "prompt": a.prompt, "frames": a.frames}) + "\n"
            for c in clips
        )
    )
    options = {
        k: v
        for k, v in {"model": a.model, "steps": a.steps, "resample": a.resample, "seed": a.seed}.items()
        if v is not None
    }
    run_batch(jobs, a.out, defaults=options, log=print)


if __name__ == "__main__":
    main()
