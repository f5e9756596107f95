"""Scoring a clip against what the shapes world says it should show, on pixels only.

For each expected object (from a caption, or from a clip's ground truth) the evaluator finds it in
every frame by colour segmentation (nearest bright palette colour, largest connected component),
tracks its centroid, and checks:

- presence: the fraction of frames where the object is found;
- colour kept: it is found in at least half of the frames (by its named colour);
- shape: the majority vote of a per-frame shape classifier (how much of its bounding box the
  region fills: square ~1, circle ~0.79, triangle ~0.5);
- motion direction: the sign and axis of a least-squares fit of the centroid track over time
  ("still" below 3 px of total travel), compared with the caption's direction;
- track error: mean distance to the true centres, when the truth is known;
- background kept: PSNR of the non-object pixels against a reference background.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from recipes.shapes import world

PALETTE = np.array(list(world.OBJECT_COLOURS.values()), dtype=np.float32)
PALETTE_NAMES = list(world.OBJECT_COLOURS)
MAX_COLOUR_DISTANCE = 110.0  # RGB distance to a palette colour to count as an object pixel
MIN_BRIGHTNESS = 150  # object colours have a channel >= 200; backgrounds stay <= 140
MIN_PIXELS = 6
STILL_TRAVEL = 3.0  # pixels over the clip
AXES = {"right": (0, 1), "left": (0, -1), "down": (1, 1), "up": (1, -1)}


@dataclass(frozen=True)
class Expected:
    colour: str
    shape: str | None = None
    direction: str | None = None  # right/left/up/down; "still"; None: not checked
    axis_only: bool = False  # "bouncing left and right": only the axis of motion is checked


@dataclass
class ObjectResult:
    expected: Expected
    present: float
    colour_kept: bool
    shape: str | None
    shape_correct: bool | None
    direction: str | None
    direction_correct: bool | None
    track: list[list[float] | None] = field(default_factory=list)
    track_error: float | None = None


CAPTION_OBJECT = re.compile(
    r"an? (?:(?:small|large) )?(?P<colour>\w+) (?P<shape>circle|square|triangle) "
    r"(?:moving (?P<dir>right|left|up|down)|bouncing (?P<bounce>left and right|up and down)|(?P<still>standing still))"
)


def parse_caption(caption: str) -> list[Expected]:
    """The objects a shapes-world caption asks for."""
    found = []
    for m in CAPTION_OBJECT.finditer(caption):
        if m["colour"] not in world.OBJECT_COLOURS:
            continue
        if m["dir"]:
            direction, axis_only = m["dir"], False
        elif m["bounce"]:
            direction, axis_only = ("right" if m["bounce"].startswith("left") else "down"), True
        else:
            direction, axis_only = "still", False
        found.append(Expected(m["colour"], m["shape"], direction, axis_only))
    return found


def single_mover(caption: str) -> Expected | None:
    """The caption's object if it names exactly one, moving at a constant velocity in one of the
    four directions (not bouncing, not still); None otherwise. Direction probes keep only these."""
    objects = parse_caption(caption)
    if len(objects) != 1 or objects[0].direction not in world.DIRECTIONS or objects[0].axis_only:
        return None
    return objects[0]


def colour_labels(frame: np.ndarray) -> np.ndarray:
    """Per pixel: index of the nearest palette colour, or -1 if none is close enough."""
    pixels = frame.reshape(-1, 1, 3).astype(np.float32)
    dist = np.linalg.norm(pixels - PALETTE[None], axis=-1)
    labels = dist.argmin(1)
    labels[(dist.min(1) > MAX_COLOUR_DISTANCE) | (pixels[:, 0].max(-1) < MIN_BRIGHTNESS)] = -1
    return labels.reshape(frame.shape[:2])


def find_object(labels: np.ndarray, colour: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(centroid x, y) and mask of the largest region of `colour`, or (None, None)."""
    mask = (labels == PALETTE_NAMES.index(colour)).astype(np.uint8)
    count, comp, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return None, None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[best, cv2.CC_STAT_AREA] < MIN_PIXELS:
        return None, None
    return centroids[best], comp == best


def classify_shape(mask: np.ndarray) -> str:
    ys, xs = np.nonzero(mask)
    box = (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)
    fill = len(xs) / box
    if fill > 0.88:
        return "square"
    if fill > 0.64:
        return "circle"
    return "triangle"


def motion_direction(track: list[np.ndarray | None]) -> str | None:
    """Direction of a least-squares line through the found centres; None if too few."""
    t = np.array([i for i, c in enumerate(track) if c is not None], dtype=np.float64)
    if len(t) < 3:
        return None
    xy = np.stack([c for c in track if c is not None])
    slopes = [np.polyfit(t, xy[:, axis], 1)[0] for axis in (0, 1)]
    travel = np.abs(slopes) * (t[-1] - t[0])
    if travel.max() < STILL_TRAVEL:
        return "still"
    axis = int(np.argmax(travel))
    if axis == 0:
        return "right" if slopes[0] > 0 else "left"
    return "down" if slopes[1] > 0 else "up"


def motion_axis(track: list[np.ndarray | None]) -> str | None:
    """ "horizontal"/"vertical" by the extent of the track (for bouncing objects, whose
    back-and-forth a straight-line fit averages away), "still", or None if too few points."""
    found = [c for c in track if c is not None]
    if len(found) < 3:
        return None
    extent = np.ptp(np.stack(found), axis=0)
    if extent.max() < STILL_TRAVEL:
        return "still"
    return "horizontal" if extent[0] >= extent[1] else "vertical"


def direction_matches(track: list[np.ndarray | None], found: str | None, expected: Expected) -> bool | None:
    if expected.direction is None:
        return None
    if expected.axis_only:
        axis = "horizontal" if expected.direction in ("right", "left") else "vertical"
        return motion_axis(track) == axis
    if found is None:
        return False
    return found == expected.direction


def score_object(labels: list[np.ndarray], expected: Expected, truth: np.ndarray | None = None) -> ObjectResult:
    track: list[np.ndarray | None] = []
    shapes: list[str] = []
    for lab in labels:
        centre, mask = find_object(lab, expected.colour)
        track.append(centre)
        if mask is not None:
            shapes.append(classify_shape(mask))
    present = sum(c is not None for c in track) / len(track)
    shape = max(set(shapes), key=shapes.count) if shapes else None
    direction = motion_direction(track)
    error = None
    if truth is not None:
        d = [np.linalg.norm(c - truth[i]) for i, c in enumerate(track) if c is not None]
        error = float(np.mean(d)) if d else None
    return ObjectResult(
        expected=expected,
        present=present,
        colour_kept=present >= 0.5,
        shape=shape,
        shape_correct=None if expected.shape is None else shape == expected.shape,
        direction=direction,
        direction_correct=direction_matches(track, direction, expected),
        track=[None if c is None else [round(float(c[0]), 2), round(float(c[1]), 2)] for c in track],
        track_error=error,
    )


def background_psnr(frames: np.ndarray, background: np.ndarray, labels: list[np.ndarray]) -> float:
    """PSNR of the pixels no object covers (dilated by 2 px) against the reference background."""
    errs, count = 0.0, 0
    kernel = np.ones((5, 5), np.uint8)
    for frame, lab in zip(frames, labels):
        keep = cv2.dilate((lab >= 0).astype(np.uint8), kernel) == 0
        diff = frame[keep].astype(np.float64) - background[keep].astype(np.float64)
        errs += float((diff**2).sum())
        count += diff.size
    if count == 0:
        return float("nan")  # objects (or what looks like them) cover everything: nothing to compare
    mse = errs / count
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def score_clip(
    frames: np.ndarray,
    expected: list[Expected] | str,
    background: np.ndarray | None = None,
    truth: list[np.ndarray] | None = None,
) -> dict:
    """Score a (T, H, W, 3) uint8 clip; `expected` is a caption or a list of objects."""
    if isinstance(expected, str):
        expected = parse_caption(expected)
    labels = [colour_labels(f) for f in frames]
    objects = [score_object(labels, e, None if truth is None else truth[i]) for i, e in enumerate(expected)]
    result = {
        "objects": [asdict(o) | {"expected": asdict(o.expected)} for o in objects],
        "present": float(np.mean([o.present for o in objects])) if objects else 0.0,
        "colour_correct": all(o.colour_kept for o in objects),
        "direction_correct": all(o.direction_correct is not False for o in objects),
        "shape_correct": all(o.shape_correct is not False for o in objects),
    }
    errors = [o.track_error for o in objects if o.track_error is not None]
    if truth is not None:
        result["track_error"] = float(np.mean(errors)) if errors else None
    if background is not None:
        result["background_psnr"] = background_psnr(frames, background, labels)
    return result


def expected_from_clip(clip: world.ShapesClip) -> list[Expected]:
    out = []
    for track in clip.tracks:
        s = track.spec
        direction = "still" if s.direction is None else s.direction
        out.append(Expected(s.colour, s.shape, direction, axis_only=track.bounced))
    return out


def score_against_truth(frames: np.ndarray, clip: world.ShapesClip) -> dict:
    """Score frames that should reproduce `clip` (same objects, motion, background)."""
    return score_clip(frames, expected_from_clip(clip), clip.background, [t.centres for t in clip.tracks])
