"""Small line charts drawn with OpenCV, for reports written as images next to their JSON.

One function, `line_chart`: stacked panels sharing the x axis, each with named series, axis
ticks and a legend. Enough for per-frame report curves; no plotting library needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass
class Panel:
    title: str
    series: dict[str, Sequence[float]]
    marks: list[int] = field(default_factory=list)  # x positions to flag with a red band


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    if not np.isfinite(lo) or not np.isfinite(hi):
        return []
    if hi - lo < 1e-12:
        return [lo]
    raw = (hi - lo) / count
    magnitude = 10 ** np.floor(np.log10(raw))
    step = min((m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw), default=raw)
    start = np.ceil(lo / step) * step
    return [float(v) for v in np.arange(start, hi + step * 0.001, step)]


def label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.3g}"


def line_chart(panels: list[Panel], title: str = "", width: int = 900, panel_height: int = 170) -> np.ndarray:
    """An RGB uint8 image of the panels stacked vertically, x = frame index."""
    top, left, right, bottom, gap = 30, 70, 20, 34, 26
    height = top + len(panels) * (panel_height + gap) + bottom - gap
    img = np.full((height, width, 3), 255, np.uint8)
    if title:
        cv2.putText(img, title, (left, 20), FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    n = max((len(v) for p in panels for v in p.series.values()), default=1)
    x_of = lambda i: left + (width - left - right) * (i / max(1, n - 1))  # noqa: E731
    for k, panel in enumerate(panels):
        y0 = top + k * (panel_height + gap)
        y1 = y0 + panel_height
        values = np.array([v for s in panel.series.values() for v in s if v is not None and np.isfinite(v)], float)
        lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        pad = (hi - lo) * 0.08
        lo, hi = lo - pad, hi + pad
        y_of = lambda v, lo=lo, hi=hi, y0=y0, y1=y1: y1 - (y1 - y0) * (v - lo) / (hi - lo)  # noqa: E731
        for mark in panel.marks:
            xa, xb = int(x_of(mark - 0.5)), int(x_of(mark + 0.5))
            cv2.rectangle(img, (max(left, xa), y0), (min(width - right, max(xb, xa + 2)), y1), (255, 205, 205), -1)
        cv2.rectangle(img, (left, y0), (width - right, y1), (120, 120, 120), 1)
        for tick in nice_ticks(lo, hi):
            y = int(y_of(tick))
            cv2.line(img, (left - 4, y), (left, y), (120, 120, 120), 1)
            cv2.putText(img, label(tick), (4, y + 4), FONT, 0.35, (60, 60, 60), 1, cv2.LINE_AA)
        cv2.putText(img, panel.title, (left + 4, y0 + 13), FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        for j, (name, series) in enumerate(panel.series.items()):
            colour = COLOURS[j % len(COLOURS)]
            points = [(x_of(i), y_of(v)) for i, v in enumerate(series) if v is not None and np.isfinite(v)]
            if len(points) > 1:
                cv2.polylines(img, [np.round(np.array(points)).astype(np.int32)], False, colour, 1, cv2.LINE_AA)
            elif points:
                cv2.circle(img, tuple(int(c) for c in points[0]), 2, colour, -1)
            lx = width - right - 150
            ly = y0 + 14 + 14 * j
            cv2.line(img, (lx, ly - 4), (lx + 18, ly - 4), colour, 2)
            cv2.putText(img, name, (lx + 24, ly), FONT, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    y_axis = height - bottom + 14
    for tick in nice_ticks(0, n - 1, count=min(10, max(1, n - 1))):
        x = int(x_of(tick))
        cv2.putText(img, label(tick), (x - 6, y_axis), FONT, 0.35, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.putText(img, "frame", (width // 2 - 15, height - 4), FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return img
