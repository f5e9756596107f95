"""Pictures for people: PNG files, contact sheets of frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vidzero.errors import BadInput
from vidzero.media.outputs import atomic_write_bytes, write_errors


def contact_sheet(frames: list[tuple[int, np.ndarray]], columns: int = 8, scale: int = 0) -> np.ndarray:
    """A grid of frames labelled with their index; small frames are enlarged for viewing."""
    if not frames:
        raise ValueError("no frames")
    h, w = frames[0][1].shape[:2]
    scale = scale or max(1, 128 // max(h, w))
    tiles = []
    for index, frame in frames:
        tile = cv2.resize(frame, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST) if scale > 1 else frame.copy()
        tile = cv2.copyMakeBorder(tile, 14, 2, 2, 2, cv2.BORDER_CONSTANT, value=(255, 255, 255))
        cv2.putText(tile, str(index), (3, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(tile)
    columns = min(columns, len(tiles))
    while len(tiles) % columns:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.concatenate(tiles[i : i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=0)


def read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise BadInput(f"cannot read frame {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def png_bytes(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def write_png(path: Path, image: np.ndarray, atomic: bool = True) -> None:
    if atomic:
        atomic_write_bytes(path, png_bytes(image))
    else:
        with write_errors(path):
            path.write_bytes(png_bytes(image))


def sample_indices(length: int, count: int = 16) -> list[int]:
    """Evenly spread frame indices (always the first and the last) for a contact sheet."""
    if length <= count:
        return list(range(length))
    return sorted({round(i * (length - 1) / (count - 1)) for i in range(count)})


def index_sheet(sheets: list[tuple[str, np.ndarray]], width: int = 480, columns: int = 4) -> np.ndarray:
    """Contact sheets side by side, each scaled to `width` with its label above (a batch's index)."""
    tiles = []
    for label, image in sheets:
        scaled = cv2.resize(
            image, (width, max(1, round(image.shape[0] * width / image.shape[1]))), interpolation=cv2.INTER_AREA
        )
        strip = np.full((18, width, 3), 255, np.uint8)
        cv2.putText(strip, label[:60], (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(np.concatenate([strip, scaled]))
    height = max(t.shape[0] for t in tiles)
    tiles = [np.pad(t, ((0, height - t.shape[0]), (0, 4), (0, 0)), constant_values=255) for t in tiles]
    columns = min(columns, len(tiles))
    while len(tiles) % columns:
        tiles.append(np.full_like(tiles[0], 255))
    return np.concatenate([np.concatenate(tiles[i : i + columns], axis=1) for i in range(0, len(tiles), columns)])
