"""The README's circle frame by frame: the default, the default without its moving target, and
the paper's sampler (docs/fidelity.md's picture).

    python -m recipes.figures.readme_circle --out docs/images/readme-circle.png

Each row is `vidzero extend examples/red_circle.png "a red circle moving right"` with the row's
options (none; `--target off`; `--preset paper`), frames 0, 1, 2, 4, 8 and 15 enlarged 2x.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

import vidzero
from vidzero.media.pictures import write_png

ROOT = Path(__file__).resolve().parents[2]
ROWS = (("default", {}), ("--target off", {"target": "off"}), ("--preset paper", {"preset": "paper"}))
FRAMES = (0, 1, 2, 4, 8, 15)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("docs/images/readme-circle.png"))
    a = p.parse_args()
    rows = []
    for label, options in ROWS:
        run = vidzero.extend(
            ROOT / "examples" / "red_circle.png", "a red circle moving right", progress=False, **options
        )
        frames = run.frames()
        tiles = [cv2.resize(frames[i], (128, 128), interpolation=cv2.INTER_NEAREST) for i in FRAMES]
        row = np.concatenate([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255) for t in tiles], axis=1)
        band = np.full((18, row.shape[1], 3), 255, np.uint8)
        cv2.putText(band, label, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        rows += [band, row]
        print(label, "done", flush=True)
    write_png(a.out, np.concatenate(rows, axis=0))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
