"""Small synthetic clips for the product's tests, drawn here (no training-world code)."""

from __future__ import annotations

import cv2
import numpy as np

RED = (230, 40, 40)
BACKGROUND = (26, 30, 78)


def moving_square(
    frames: int = 32,
    size: int = 64,
    start: tuple[float, float] = (14.0, 30.0),
    speed: float = 1.5,
    half: int = 9,
    colour: tuple[int, int, int] = RED,
) -> np.ndarray:
    """(frames, size, size, 3) uint8: a square moving right at `speed` px per frame over a soft
    vertical gradient (so that colour statistics have something to hold on to)."""
    ramp = np.linspace(0.8, 1.2, size)[:, None, None]
    background = np.clip(np.array(BACKGROUND, dtype=np.float64) * ramp * np.ones((size, size, 3)), 0, 255)
    clip = np.empty((frames, size, size, 3), dtype=np.uint8)
    for i in range(frames):
        frame = background.copy()
        x, y = start[0] + speed * i, start[1]
        cv2.rectangle(frame, (round(x - half), round(y - half)), (round(x + half), round(y + half)), colour, -1)
        clip[i] = np.rint(frame).astype(np.uint8)
    return clip


def centroid(frame: np.ndarray, colour: tuple[int, int, int] = RED) -> np.ndarray:
    mask = np.abs(frame.astype(int) - np.array(colour)).sum(-1) < 90
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def patch_noise(monkeypatch, draw) -> None:
    """Every noise draw of a window's sampling run (the loop's and its holds') through `draw`."""
    from vidzero.core import sampler, steering

    for module in (sampler, steering):
        monkeypatch.setattr(module, "noise_like", draw)
