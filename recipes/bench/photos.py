"""Photographs no one here drew (scikit-image's `data` images) through image-to-video: how much of
each photo's appearance a video keeps, per variant.

    python -m recipes.bench.photos [--variants default,"target both"] [--frames 16] [--out docs/bench]

Each photo is centre-cropped to the model's square, prompted with the nearest words the model
knows for it, and made into a video per variant (the fidelity bench's variants,
recipes/bench/fidelity.py). Appearance kept: each frame is warped back onto frame 0 along the
dense flow between them (so the motion does not count) and compared with frame 0 by SSIM
(scikit-image's structural_similarity, on the three channels) where the flow is consistent;
the mean over frames 1.. is the score (1: frame 0 itself everywhere). Writes a sheet per photo
(rows: variants) and OUT/photos.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from recipes.bench.fidelity import VARIANTS, make_video
from vidzero.core.motion import consistent, optical_flow, warp
from vidzero.media.outputs import write_json
from vidzero.media.pictures import contact_sheet, write_png
from vidzero.models.families import load_backbone

# name -> (the scikit-image function, a prompt in the embedded model's words, the crop's left edge
# as a share of the spare width)
PHOTOS = {
    "chelsea": ("an orange circle moving right", 0.35),
    "astronaut": ("a white circle moving left", 0.5),
    "coffee": ("an orange circle moving up", 0.5),
    "rocket": ("a white square moving up", 0.5),
}


def photo(name: str, size: int) -> np.ndarray:
    import skimage.data

    image = getattr(skimage.data, name)()
    h, w = image.shape[:2]
    side = min(h, w)
    left = round((w - side) * PHOTOS[name][1])
    top = (h - side) // 2
    return cv2.resize(image[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_AREA)


def appearance_kept(video: np.ndarray) -> float:
    """Mean SSIM of frames 1.. warped back onto frame 0, where the flow is consistent."""
    from skimage.metrics import structural_similarity

    first, scores = video[0], []
    for frame in video[1:]:
        forward, backward = optical_flow(first, frame), optical_flow(frame, first)
        back = warp(frame, forward)  # frame sampled where frame 0's pixels went
        _, ssim = structural_similarity(first, back, channel_axis=2, data_range=255, full=True)
        kept = consistent(forward, backward)
        scores.append(float(ssim.mean(-1)[kept].mean()) if kept.any() else 0.0)
    return float(np.mean(scores))


class Case:
    """What make_video needs of a case: a first frame and a prompt."""

    def __init__(self, name: str, image: np.ndarray) -> None:
        self.name, self.image, self.prompt = name, image, PHOTOS[name][0]

    def first_frame(self) -> np.ndarray:
        return self.image


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="shapes")
    p.add_argument("--variants", default="default,target both")
    p.add_argument("--photos", default=",".join(PHOTOS))
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("docs/bench"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    bb = load_backbone(args.model, device="cpu")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, float]] = {}
    for name in [n.strip() for n in args.photos.split(",") if n.strip()]:
        case = Case(name, photo(name, bb.width))
        rows = []
        results[name] = {}
        for variant in variants:
            started = time.perf_counter()
            video = make_video(bb, case, VARIANTS[variant], args.frames, args.seed)[0]
            results[name][variant] = round(appearance_kept(video), 4)
            print(
                f"{name} {variant}: appearance kept {results[name][variant]:.3f} "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
            step = max(1, args.frames // 8)
            rows.extend((i * step, f) for i, f in enumerate(video[::step][:8]))  # labelled by frame
        write_png(args.out / f"photos-{name}.png", contact_sheet(rows, columns=8, scale=1))
    write_json(args.out / "photos.json", {"variants": variants, "frames": args.frames, "appearance_kept": results})
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
