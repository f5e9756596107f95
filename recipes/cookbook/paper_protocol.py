"""The paper's evaluation protocol over a folder of clips, on `vidzero batch`, ready for FVD.

    python -m recipes.cookbook.paper_protocol CLIPS_DIR OUT_DIR --mode i2v --frames 16 --prompt-from ucf101
    python -m recipes.cookbook.paper_protocol CLIPS_DIR OUT_DIR --mode predict --context 8 --frames 16 --prompt "..."
    torchrun --nproc_per_node 8 -m recipes.cookbook.paper_protocol ...       # one process per GPU

For every clip: image-to-video from its first frame (`i2v`, the paper's UCF101/MUG protocol), or
prediction from its first K frames (`predict`), `--frames` long in all. Writes

    OUT_DIR/jobs.jsonl     the batch (one job per clip; rerun to resume)
    OUT_DIR/fake/NAME.mp4  the generated videos
    OUT_DIR/real/NAME.mp4  the same clips' first --frames frames, fitted to the model's size and rate
    OUT_DIR/fvd.json       the pairs and the settings

so that an FVD tool compares OUT_DIR/real with OUT_DIR/fake (same count, length, size, rate).
Prompts: one for all (--prompt), a CSV of `clip,prompt` (--prompts), or the UCF101 action in
the file name (--prompt-from ucf101: v_ApplyEyeMakeup_g01_c01.avi -> "a person apply eye makeup").
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import re
from pathlib import Path

from vidzero.app.batch import run_batch
from vidzero.media.outputs import write_json
from vidzero.media.video import read_video, video_info, write_video
from vidzero.models.checkpoint import inspect_checkpoint

VIDEO_SUFFIXES = {".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif"}


def ucf101_prompt(name: str) -> str:
    m = re.match(r"v_([A-Za-z]+)_g\d+_c\d+", name)
    action = m.group(1) if m else name
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", action).lower()
    return f"a person {words}"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("clips", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--mode", choices=("i2v", "predict"), default="i2v")
    p.add_argument("--frames", type=int, default=16, help="length of every video, given frames included")
    p.add_argument("--context", type=int, default=1, help="predict: the first K frames are given")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--prompt")
    group.add_argument("--prompts", type=Path, help="CSV with columns clip,prompt")
    group.add_argument("--prompt-from", choices=("ucf101",))
    p.add_argument("--model", default="shapes")
    p.add_argument("--steps", type=int)
    p.add_argument("--resample", type=int)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.mode == "predict" and not 1 <= a.context < a.frames:
        p.error("--context must be at least 1 and less than --frames")
    clips = sorted(c for c in a.clips.iterdir() if c.suffix.lower() in VIDEO_SUFFIXES)
    if not clips:
        p.error(f"no video clips in {a.clips}")
    table = {}
    if a.prompts:
        with open(a.prompts, newline="") as f:
            table = {row["clip"]: row["prompt"] for row in csv.DictReader(f)}
    fake, real = a.out / "fake", a.out / "real"
    for folder in (fake, real):
        folder.mkdir(parents=True, exist_ok=True)
    info = inspect_checkpoint(a.model)
    size = info.summary()
    jobs = []
    for clip in clips:
        prompt = a.prompt or table.get(clip.name) or table.get(clip.stem) or ucf101_prompt(clip.stem)
        job = {"id": clip.stem, "prompt": prompt, "output": f"fake/{clip.stem}.mp4"}
        if a.mode == "i2v":
            first = real / f"{clip.stem}.first.png"
            if not first.exists():
                from PIL import Image

                Image.fromarray(next(read_video(clip))).save(first)
            job |= {"task": "extend", "image": str(first.resolve()), "frames": a.frames}
        else:
            job |= {
                "task": "predict",
                "clip": str(clip.resolve()),
                "to_frame": a.context,
                "frames": a.frames - a.context,
            }
        jobs.append(job)
        target = real / f"{clip.stem}.mp4"
        if not target.exists():
            frames = list(itertools.islice(read_video(clip, size["width"], size["height"]), a.frames))
            write_video(frames, target, fps=video_info(clip).get("fps") or 8.0)
    job_file = a.out / "jobs.jsonl"
    job_file.write_text("".join(json.dumps(j) + "\n" for j in jobs))
    options = {
        k: v
        for k, v in {"model": a.model, "steps": a.steps, "resample": a.resample, "seed": a.seed}.items()
        if v is not None
    }
    records = run_batch(job_file, a.out, defaults=options, log=print)
    write_json(
        a.out / "fvd.json",
        {
            "mode": a.mode,
            "frames": a.frames,
            "context": a.context,
            "model": a.model,
            "real": str(real),
            "fake": str(fake),
            "pairs": [{"real": str(real / f"{c.stem}.mp4"), "fake": str(fake / f"{c.stem}.mp4")} for c in clips],
            "failed": [r.id for r in records if r.status == "failed"],
        },
    )
    print(f"{len(clips)} clips: compare {real} with {fake} (fvd.json lists the pairs)")


if __name__ == "__main__":
    main()
