"""Continue every clip in a folder (video prediction), one backbone loaded once.

    python -m recipes.continue_clips CLIPS_DIR OUT_DIR "PROMPT" [--frames 15] [--model shapes] [--resume]

Each CLIP becomes OUT_DIR/CLIP.mp4 (context + new frames) with its manifest and contact sheet.
Clips already done are skipped; with --resume an interrupted clip continues where it stopped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

import vidzero

VIDEO_SUFFIXES = {".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif"}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("clips", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("prompt")
    p.add_argument("--frames", type=int, default=15)
    p.add_argument("--model", default="shapes")
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--resample", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    a = p.parse_args(argv)
    console = Console()
    a.out.mkdir(parents=True, exist_ok=True)
    backbone = vidzero.load_backbone(a.model, device=a.device)
    clips = sorted(c for c in a.clips.iterdir() if c.suffix.lower() in VIDEO_SUFFIXES)
    for i, clip in enumerate(clips):
        target = a.out / (clip.stem + ".mp4")
        if target.exists():
            console.print(f"[{i + 1}/{len(clips)}] {clip.name}: done already")
            continue
        state_exists = (a.out / (clip.stem + ".state.pt")).exists()
        try:
            run = vidzero.predict(clip, a.prompt, frames=a.frames, backbone=backbone, steps=a.steps, resample=a.resample, seed=a.seed)
            run.save(target, resume=a.resume and state_exists)
            console.print(f"[{i + 1}/{len(clips)}] {clip.name} -> {target.name} ({run.engine.stats.seconds:.1f} s)")
        except vidzero.BadInput as exc:
            console.print(f"[{i + 1}/{len(clips)}] {clip.name}: skipped: {exc}")


if __name__ == "__main__":
    main()
