"""What the studio's fields hold, read and drawn (no Gradio here): prompt lines, numbers typed in
text fields, a motion path clicked on the image and drawn over it."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from vidzero.errors import BadInput

SCHEDULE_LINE = re.compile(r"^\s*(\d+)\s*:\s*(.+?)\s*$")


def prompt_value(text: str) -> Any:
    """A prompt field: plain text, or lines `FRAME: text` (a prompt per stretch)."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    matched = [SCHEDULE_LINE.match(line) for line in lines]
    if lines and all(matched):
        return {m.group(1): m.group(2) for m in matched if m}
    return (text or "").strip() or None


def whole(value: Any) -> int | None:
    """A number field: empty is the default (None), anything else a whole number."""
    return None if value in (None, "") else int(value)


def number_text(text: str | None) -> Any:
    """A number typed in a text field: empty is the default, digits a number, anything else is
    passed on for the option table to refuse with its own message."""
    text = (text or "").strip()
    return int(text) if text.isdigit() else text or None


def add_point(path: str, x: float, y: float) -> str:
    """The path's text with a point clicked at (x, y) added (frames stay editable in the text)."""
    return f"{(path or '').strip()} {round(x)},{round(y)}".strip()


def path_preview(image: str | None, path: str) -> np.ndarray | None:
    """The image with the path drawn over it: a line through the points, a dot at each (the first
    ringed: the object under it moves), each pinned frame written beside its point."""
    import cv2

    from vidzero.core.paths import parse_path
    from vidzero.media.images import open_image

    if not image:
        return None
    picture = open_image(image).copy()
    try:
        points = parse_path(path) if (path or "").strip() else []
    except BadInput:
        return picture
    scale = max(1, round(max(picture.shape[:2]) / 256))
    xy = [(round(x), round(y)) for x, y, _ in points]
    for a, b in zip(xy, xy[1:]):
        cv2.line(picture, a, b, (255, 255, 255), scale, cv2.LINE_AA)
    for i, ((x, y), (_, _, frame)) in enumerate(zip(xy, points)):
        cv2.circle(picture, (x, y), 2 * scale, (255, 220, 0), -1, cv2.LINE_AA)
        if i == 0:
            cv2.circle(picture, (x, y), 4 * scale, (255, 255, 255), scale, cv2.LINE_AA)
        if frame is not None:
            cv2.putText(
                picture,
                str(frame),
                (x + 3 * scale, y - 3 * scale),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.3 * scale,
                (255, 255, 255),
                1,
                cv2.LINE_AA,
            )
    return picture
