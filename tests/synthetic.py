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


def textured_background(size: int = 64, seed: int = 0) -> np.ndarray:
    """(size, size, 3) uint8: two colours in a diagonal ramp with a fine grain."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    ramp = np.clip(0.7 * (xx - 0.5) + 0.7 * (yy - 0.5) + 0.5, 0, 1)[..., None]
    grain = cv2.GaussianBlur(rng.normal(0, 8, (size, size)).astype(np.float32), (0, 0), 3.0)[..., None]
    base = np.array((30, 34, 80), np.float32) * (1 - ramp) + np.array((76, 80, 34), np.float32) * ramp
    return np.clip(np.rint(base + grain), 0, 255).astype(np.uint8)


def disc_frame(
    background: np.ndarray,
    centre: tuple[float, float],
    radius: float,
    colour: tuple[int, int, int] = RED,
    blur: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(frame, coverage): an anti-aliased disc at a sub-pixel centre over `background`, its edge
    softened by a Gaussian of `blur` px (a model's soft drawing), and its coverage in [0, 1]."""
    scale = 16
    h, w = background.shape[:2]
    big = np.zeros((h * scale, w * scale), np.uint8)
    cv2.circle(
        big,
        (round(centre[0] * scale + scale / 2 - 0.5), round(centre[1] * scale + scale / 2 - 0.5)),
        round(radius * scale),
        255,
        -1,
        cv2.LINE_AA,
    )
    cover = cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    if blur > 0:
        cover = cv2.GaussianBlur(cover, (0, 0), blur)
    frame = background.astype(np.float32) * (1 - cover[..., None]) + np.array(colour, np.float32) * cover[..., None]
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8), cover


def centroid(frame: np.ndarray, colour: tuple[int, int, int] = RED) -> np.ndarray:
    mask = np.abs(frame.astype(int) - np.array(colour)).sum(-1) < 90
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def patch_noise(monkeypatch, draw) -> None:
    """Every noise draw of a window's sampling run (the loop's and its holds') through `draw`."""
    from vidzero.core import sampler, steering

    for module in (sampler, steering):
        monkeypatch.setattr(module, "noise_like", draw)
