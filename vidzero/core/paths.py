"""Motion paths as pure functions: the points a user draws, where they put an object in each frame.

A path is a list of points `(x, y)` or `(x, y, frame)` in the pixel coordinates of the image the
user gave (before it is fitted to the model's frame). Written as text: `"X,Y X,Y@F ..."`. The
first point is where the object starts, on the path's first frame (a frame the user gave); the
last point is the last frame unless pinned. Between pinned points the object moves at constant
speed by length along the path, so a point without a frame is passed when its share of the length
is covered; two pins at one place make a stop.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from vidzero.errors import BadInput

Point = tuple[float, float, int | None]
POINT = re.compile(r"^\s*(-?[0-9]+(?:\.[0-9]*)?)\s*,\s*(-?[0-9]+(?:\.[0-9]*)?)\s*(?:@\s*([0-9]+))?\s*$")


def parse_path(text: str, option: str = "path") -> list[Point]:
    """`"X,Y X,Y@F ..."` as points."""
    words = text.split() if isinstance(text, str) else []
    if not words:
        raise BadInput(f"{{option}} {text!r} is empty: give points such as '12,30 40,30@15'", option)
    points: list[Point] = []
    for word in words:
        m = POINT.match(word)
        if m is None:
            raise BadInput(f"{{option}} point {word!r} should look like X,Y or X,Y@FRAME", option)
        points.append((float(m.group(1)), float(m.group(2)), int(m.group(3)) if m.group(3) else None))
    return points


def read_path(value: Any, option: str = "path") -> list[Point]:
    """A path as the API, a job line or a record gives it: text, or a list of (x, y) and
    (x, y, frame) items."""
    if isinstance(value, str):
        return parse_path(value, option)
    if not isinstance(value, (list, tuple)) or not value:
        raise BadInput(
            f"{{option}} must be text 'X,Y X,Y@F ...' or a list of (x, y[, frame]) points, got {value!r}", option
        )
    points: list[Point] = []
    for item in value:
        if not isinstance(item, (list, tuple)) or len(item) not in (2, 3):
            raise BadInput(f"{{option}} point {item!r} must be (x, y) or (x, y, frame)", option)
        x, y, *frame = item
        for v in (x, y):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise BadInput(f"{{option}} point {item!r}: x and y must be finite numbers", option)
        pin = frame[0] if frame else None
        if pin is not None and (isinstance(pin, bool) or not isinstance(pin, int)):
            raise BadInput(f"{{option}} point {item!r}: the frame must be a whole number", option)
        points.append((float(x), float(y), pin))
    return points


def read_paths(value: Any, option: str = "path") -> list[list[Point]]:
    """One path or several: text, a list of points, or a list of those."""
    if value is None:
        return []
    if isinstance(value, str):
        return [parse_path(value, option)]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return [parse_path(v, option) for v in value]
    several = (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(v, (list, tuple)) and v and isinstance(v[0], (list, tuple)) for v in value)
    )
    return [read_path(v, option) for v in value] if several else [read_path(value, option)]


def path_record(points: Sequence[Point]) -> str:
    """A path as text, the form records keep."""
    return " ".join(f"{x:g},{y:g}" + (f"@{f}" if f is not None else "") for x, y, f in points)


def check_path(points: Sequence[Point], size: tuple[int, int], first: int, last: int, option: str = "path") -> None:
    """Points on the image (`size` = (width, height)), pins in order within [first, last], the
    first point on the path's first frame."""
    width, height = size
    for x, y, _ in points:
        if not (0 <= x <= width - 1 and 0 <= y <= height - 1):
            raise BadInput(f"{{option}} point {x:g},{y:g} is off the {width}x{height} image", option)
    if len(points) < 2:
        raise BadInput("{option} needs at least two points: where the object starts and where it goes", option)
    if points[0][2] is not None and points[0][2] != first:
        raise BadInput(
            f"{{option}} starts on frame {first} (the frame its object is taken from), not {points[0][2]}", option
        )
    pins = [f for _, _, f in points if f is not None]
    for a, b in zip(pins, pins[1:]):
        if b < a:
            raise BadInput(f"{{option}} pins frames out of order ({a} before {b})", option)
    for f in pins:
        if not first <= f <= last:
            raise BadInput(f"{{option}} pins frame {f}, outside the path's frames {first}..{last}", option)


def positions(points: Sequence[Point], first: int, last: int) -> dict[int, np.ndarray]:
    """(x, y) of the object's centre in each frame `first`..`last`: pinned points at their
    frames, the first point at `first`, the last at `last` unless pinned (then it stays there);
    constant speed by length between pins."""
    xy = np.array([(x, y) for x, y, _ in points], np.float64)
    pins = [f for _, _, f in points]
    pins[0] = first
    if pins[-1] is None:
        pins[-1] = last
    lengths = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xy, axis=0), axis=1))])
    pinned = [i for i, f in enumerate(pins) if f is not None]
    out: dict[int, np.ndarray] = {}
    for a, b in zip(pinned, pinned[1:]):
        fa, fb = pins[a], pins[b]
        assert fa is not None and fb is not None
        span = lengths[b] - lengths[a]
        for frame in range(fa, fb + 1):
            share = 1.0 if fb == fa else (frame - fa) / (fb - fa)
            out[frame] = along(xy[a : b + 1], lengths[a : b + 1] - lengths[a], share * span)
    end = pins[pinned[-1]]
    assert end is not None
    for frame in range(end + 1, last + 1):  # pinned before the last frame: it stays
        out[frame] = xy[pinned[-1]].copy()
    return out


def along(xy: np.ndarray, lengths: np.ndarray, distance: float) -> np.ndarray:
    """The point `distance` along the polyline `xy` (cumulative `lengths` from its start)."""
    if lengths[-1] <= 0:
        return xy[0].copy()
    i = int(np.clip(np.searchsorted(lengths, distance, side="right") - 1, 0, len(xy) - 2))
    seg = lengths[i + 1] - lengths[i]
    t = 0.0 if seg <= 0 else (distance - lengths[i]) / seg
    return xy[i] + t * (xy[i + 1] - xy[i])


def fitted(points: Sequence[Point], source: tuple[int, int], frame: tuple[int, int]) -> list[Point]:
    """Points on the user's image (`source` = (width, height)) moved onto the model's frame (`frame`
    = (width, height)) as vidzero.media.images.fit_frame fits the image: centre-cropped to the
    frame's aspect, then resized (pixel centres map to pixel centres)."""
    (src_w, src_h), (w, h) = source, frame
    scale = max(w / src_w, h / src_h)
    crop_w, crop_h = round(w / scale), round(h / scale)
    left, top = (src_w - crop_w) // 2, (src_h - crop_h) // 2
    sx, sy = w / crop_w, h / crop_h
    return [((x - left + 0.5) * sx - 0.5, (y - top + 0.5) * sy - 0.5, f) for x, y, f in points]
