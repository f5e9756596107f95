"""Fill the frames between consecutive pairs of photos in a folder (sorted by name): a job file
for `vidzero batch`, then the batch.

    python -m recipes.cookbook.infill_pairs PHOTOS_DIR OUT_DIR "PROMPT" [--frames 16] [--order inward|forward]

Photos 1-2, 3-4, ... each become OUT_DIR/NAME1_NAME2.mp4: the first and last frames are the
photos (centre-cropped to the model's size), the frames between are generated.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vidzero.app.batch import run_batch

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photos", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("prompt")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--order", default="inward", choices=["inward", "forward"])
    p.add_argument("--model", default="shapes")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--resample", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    photos = sorted(f for f in a.photos.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    a.out.mkdir(parents=True, exist_ok=True)
    jobs = a.out / "jobs.jsonl"
    jobs.write_text(
        "".join(
            json.dumps(
                {
                    "task": "infill",
                    "id": f"{s.stem}_{e.stem}",
                    "start": str(s.resolve()),
                    "end": str(e.resolve()),
                    "prompt": a.prompt,
                    "frames": a.frames,
                    "order": a.order,
                }
            )
            + "\n"
            for s, e in zip(photos[0::2], photos[1::2])
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
