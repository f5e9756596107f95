"""Fill the frames between consecutive pairs of photos in a folder (sorted by name).

    python -m recipes.infill_pairs PHOTOS_DIR OUT_DIR "PROMPT" [--frames 16] [--order inward|forward]

Photos 1-2, 3-4, ... each become OUT_DIR/NAME1_NAME2.mp4: the first and last frames are the
photos (centre-cropped to the model's size), the frames between are generated.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

import vidzero

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photos", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("prompt")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--order", default="inward", choices=["inward", "forward"])
    p.add_argument("--model", default="shapes")
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--resample", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    console = Console()
    a.out.mkdir(parents=True, exist_ok=True)
    backbone = vidzero.load_backbone(a.model, device=a.device)
    photos = sorted(f for f in a.photos.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    for start, end in zip(photos[0::2], photos[1::2]):
        target = a.out / f"{start.stem}_{end.stem}.mp4"
        if target.exists():
            continue
        try:
            run = vidzero.infill_between(start, end, a.prompt, frames=a.frames, order=a.order, backbone=backbone,
                                         steps=a.steps, resample=a.resample, seed=a.seed)
            run.save(target)
            console.print(f"{start.name} .. {end.name} -> {target.name}")
        except vidzero.BadInput as exc:
            console.print(f"{start.name} .. {end.name}: skipped: {exc}")


if __name__ == "__main__":
    main()
