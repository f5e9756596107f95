"""docs/paths.md's picture: one case of each path kind, without a path and with it.

    python -m recipes.figures.paths --out docs/images/paths.png

For the first case of each kind in the path bench (recipes/bench/paths.py), two rows of frames 0,
3, 6, 9, 12 and 15: the prompt alone (its main direction in words), then the same prompt with the
path (the default: held through every step), the path drawn over the first frame.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

import vidzero
from recipes.bench.paths import KINDS, cases, direction_word
from vidzero.app.studio_fields import path_preview
from vidzero.media.pictures import write_png

FRAMES = (0, 3, 6, 9, 12, 15)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("docs/images/paths.png"))
    a = p.parse_args()
    picked = {}
    for case, text, kind, _ in cases(10, 16):
        picked.setdefault(kind, (case, text))
    rows = []
    for kind in KINDS:
        case, text = picked[kind]
        prompt = case.prompt.rsplit(" moving ", 1)[0] + f" moving {direction_word(text)}"
        for path in (None, text):
            frames = vidzero.extend(case.first_frame(), prompt, frames=16, seed=0, progress=False, path=path).frames()
            tiles = [np.asarray(frames[i]) for i in FRAMES]
            if path is not None:  # the path over the first frame, as the studio draws it
                import tempfile

                with tempfile.TemporaryDirectory() as folder:
                    first = Path(folder) / "first.png"
                    write_png(first, tiles[0])
                    drawn = path_preview(str(first), path)
                    assert drawn is not None
                    tiles[0] = drawn
            row = np.concatenate([cv2.resize(t, (96, 96), interpolation=cv2.INTER_NEAREST) for t in tiles], axis=1)
            band = np.full((16, row.shape[1], 3), 255, np.uint8)
            label = f"{kind}: " + ("the prompt alone" if path is None else "with the path")
            cv2.putText(band, label, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
            rows += [band, row]
        print(kind, "done", flush=True)
    write_png(a.out, np.concatenate(rows, axis=0))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
