"""Motion in pixels, as small pure functions: dense optical flow and warping, the user's object
and where it went, and the moved target (the user's image moved along the motion a video makes).

A **moved target** for a generated frame is what that frame would show if it kept the user's
appearance while making the model's motion:

- the user's object (the connected region of the known frame that differs from its surroundings,
  `find_object`, or a mask the user gives) moved as a whole by the shift that best lays it on the
  generated frame (`object_shift`: masked template matching near where it should be, refined to
  a fraction of a pixel) or by a shift the user gives (a motion path);
- everywhere else the known frame's background moved by the dense flow between it and the
  generated frame, kept only where the flow is consistent forwards and backwards; what the known
  frame never saw (uncovered where the object was, occluded) is the generated frame's, and the
  model's own drawing of the object beyond the moved object is background (the known frame's,
  the object painted out).

`moved_target` returns the target and where it can be trusted (the moved object, and the
consistent background). The rigid move is what keeps an outline: a dense flow alone follows the
generated blob's own outline. The engine (vidzero.core.targets) uses targets in the window (held
on a second clock) and in the queue (what later windows read of a generated frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

MIN_FLOW_SIDE = 16  # DIS needs frames of 12 px and more; smaller ones are enlarged for the flow
FB_TOLERANCE = 1.0  # px: a flow is consistent where forward then backward returns within this (+5 % of its length)
OBJECT_CONTRAST = 10.0  # CIE76 delta E: the least difference from every border colour that makes an object
MAX_OBJECT_SHARE = 0.6  # a region over this share of the frame is the scene, not an object
MIN_OBJECT_PIXELS = 4
MEAN_SHIFT_ROUNDS = 8


def optical_flow(reference: np.ndarray, moving: np.ndarray, method: str = "dis") -> np.ndarray:
    """Dense flow such that reference(x) ~ moving(x + flow(x)), on grey levels. Frames smaller
    than MIN_FLOW_SIDE are enlarged for the flow, which is then brought back to their size."""
    a = cv2.cvtColor(reference, cv2.COLOR_RGB2GRAY)
    b = cv2.cvtColor(moving, cv2.COLOR_RGB2GRAY)
    h, w = a.shape
    scale = -(-MIN_FLOW_SIDE // min(h, w))  # ceil
    if scale > 1:
        a, b = (cv2.resize(x, (w * scale, h * scale), interpolation=cv2.INTER_LINEAR) for x in (a, b))
    if method == "farneback":
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    else:
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined]
        flow = dis.calc(a, b, None)
    if scale > 1:
        flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_AREA) / scale
    return flow


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """image sampled at x + flow(x) (a backward warp)."""
    h, w = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(
        image, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def consistent(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """(H, W) bool: where following `forward` then `backward` returns to the start (the forward-
    backward check: occluded and uncovered pixels fail it)."""
    back_there = warp(backward, forward)
    error = np.linalg.norm(forward + back_there, axis=-1)
    return error <= FB_TOLERANCE + 0.05 * np.linalg.norm(forward, axis=-1)


def lab(image: np.ndarray) -> np.ndarray:
    """CIELAB (L in 0-100) of an RGB uint8 image, float32."""
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


# ---------------------------------------------------------------------- the user's object
def border_distance(image: np.ndarray) -> np.ndarray:
    """(H, W): each pixel's CIE76 distance to the nearest colour on the image's border. A
    background of any colours that reach the border (flat, a ramp, a fine texture) is near 0; an
    object inside the frame stands out."""
    colours = lab(image)
    h, w = colours.shape[:2]
    band = max(1, round(0.03 * min(h, w)))
    edge = np.concatenate(
        [colours[:band].reshape(-1, 3), colours[-band:].reshape(-1, 3)]
        + [colours[:, :band].reshape(-1, 3), colours[:, -band:].reshape(-1, 3)]
    )
    edge = edge[np.linspace(0, len(edge) - 1, min(len(edge), 256)).round().astype(int)]
    flat = colours.reshape(-1, 1, 3)
    best = np.full(h * w, np.inf, np.float32)
    for chunk in np.array_split(edge, max(1, len(edge) // 64)):  # bounded memory on large frames
        best = np.minimum(best, np.sqrt(((flat - chunk[None]) ** 2).sum(-1)).min(1))
    return best.reshape(h, w)


def filled(mask: np.ndarray) -> np.ndarray:
    """The mask with its holes filled (what the border cannot reach through the background)."""
    padded = np.pad(~mask, 1, constant_values=True).astype(np.uint8)
    flood = np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), np.uint8)
    cv2.floodFill(padded, flood, (0, 0), 2)
    return mask | (padded[1:-1, 1:-1] == 1)


def find_object(image: np.ndarray, point: tuple[float, float] | None = None) -> np.ndarray | None:
    """The user's object in `image` (H, W, 3 uint8): the connected region that differs from the
    background (every border colour) by more than OBJECT_CONTRAST, the largest one or the one
    under `point` (x, y); None when there is none, or when it is most of the frame (a scene)."""
    distance = border_distance(image)
    otsu, _ = cv2.threshold(np.clip(distance, 0, 255).astype(np.uint8), 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    differs = distance > max(OBJECT_CONTRAST, float(otsu))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(differs.astype(np.uint8), connectivity=8)
    if count <= 1:
        return None
    if point is not None:
        x, y = (int(round(v)) for v in point)
        if not (0 <= y < image.shape[0] and 0 <= x < image.shape[1]) or labels[y, x] == 0:
            return None
        chosen = int(labels[y, x])
    else:
        chosen = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    mask = filled(labels == chosen)
    if mask.sum() < MIN_OBJECT_PIXELS or mask.mean() > MAX_OBJECT_SHARE:
        return None
    return mask


def mask_centre(mask: np.ndarray) -> np.ndarray:
    """(x, y) of a mask's centroid."""
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


# ---------------------------------------------------------------------- where it went
def subpixel(values: np.ndarray, y: int, x: int) -> tuple[float, float]:
    """The minimum of a sampled surface near (y, x), refined by a parabola through its neighbours
    on each axis."""

    def offset(left: float, centre: float, right: float) -> float:
        curve = left - 2 * centre + right
        return 0.0 if curve <= 1e-12 else float(np.clip(0.5 * (left - right) / curve, -0.5, 0.5))

    h, w = values.shape
    dx = offset(values[y, x - 1], values[y, x], values[y, x + 1]) if 0 < x < w - 1 else 0.0
    dy = offset(values[y - 1, x], values[y, x], values[y + 1, x]) if 0 < y < h - 1 else 0.0
    return dx, dy


@dataclass(frozen=True)
class Match:
    shift: np.ndarray  # (dx, dy) px
    rms: float  # root mean square difference per channel over the object's pixels (0-255)


def object_shift(
    known: np.ndarray,
    mask: np.ndarray,
    generated: np.ndarray,
    guess: tuple[float, float] = (0.0, 0.0),
    radius: float | None = None,
) -> Match:
    """The shift (dx, dy) that lays the user's object (`mask` in `known`) best on `generated`,
    searched within `radius` px of `guess` (default a quarter of the frame), to a fraction of a
    pixel: masked template matching (sum of squared differences over the object's pixels), the
    minimum refined by a parabola; with how well it fits. Inside a drawing larger than the object
    every placement fits about as well (a plateau): `centred_shift` then lays it on the
    drawing's centre."""
    h, w = mask.shape
    radius = max(2.0, 0.25 * min(h, w)) if radius is None else radius
    ys, xs = np.nonzero(mask)
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    template = known[top:bottom, left:right].astype(np.float32)
    weights = np.repeat(mask[top:bottom, left:right, None].astype(np.float32), 3, axis=2)
    pad = int(np.ceil(radius + max(abs(guess[0]), abs(guess[1])))) + 1
    padded = cv2.copyMakeBorder(generated.astype(np.float32), pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    gx, gy = round(guess[0]), round(guess[1])
    reach = int(np.ceil(radius))
    y0, x0 = top + pad + gy - reach, left + pad + gx - reach
    region = padded[y0 : y0 + (bottom - top) + 2 * reach, x0 : x0 + (right - left) + 2 * reach]
    cost = cv2.matchTemplate(region, template, cv2.TM_SQDIFF, mask=weights)
    iy, ix = np.unravel_index(int(np.argmin(cost)), cost.shape)
    fx, fy = subpixel(cost, int(iy), int(ix))
    rms = float(np.sqrt(max(float(cost[iy, ix]), 0.0) / max(1.0, float(weights.sum()))))
    return Match(np.array([gx - reach + ix + fx, gy - reach + iy + fy], np.float64), rms)


def object_cover(image: np.ndarray, background: np.ndarray, colour: np.ndarray, region: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] inside `region`: how far each pixel is from the background's colour
    toward the object's (the projection on that line, as the fidelity bench measures objects)."""
    direction = colour[None, None, :] - background.astype(np.float32)
    norm = np.maximum((direction**2).sum(-1), 1.0)
    share = ((image.astype(np.float32) - background.astype(np.float32)) * direction).sum(-1) / norm
    return np.where(region, np.clip(share, 0, 1), 0).astype(np.float32)


def weighted_centre(weights: np.ndarray) -> np.ndarray | None:
    total = float(weights.sum())
    if total <= 0:
        return None
    ys, xs = np.mgrid[0 : weights.shape[0], 0 : weights.shape[1]]
    return np.array([(weights * xs).sum() / total, (weights * ys).sum() / total])


def centred_shift(
    known: np.ndarray, mask: np.ndarray, generated: np.ndarray, background: np.ndarray, match: Match
) -> Match:
    """The match laid on the centre of the model's drawing of the object: the centroid of how much
    each pixel near the matched place shows the object's colour rather than the background's,
    against the same centroid of the object in the known frame. Inside a drawing larger than the
    object, template matching finds a plateau; this finds its middle. Kept only when it stays
    within half the object's radius of the match (else the match stands)."""
    radius = float(np.sqrt(mask.sum() / np.pi))
    reach = max(2, round(0.5 * radius + 2))
    grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    colour = known[mask].astype(np.float32).mean(0)
    there = weighted_centre(object_cover(known, background, colour, cv2.dilate(mask.astype(np.uint8), grow) > 0))
    if there is None:
        return match
    # mean shift: the region around the current estimate, its centroid, again, until it settles
    # (a region around a lagging first estimate would cut the drawing's leading edge off)
    centred = match.shift
    for _ in range(MEAN_SHIFT_ROUNDS):
        placed = shifted(mask.astype(np.float32), centred) > 0.5
        region = cv2.dilate(placed.astype(np.uint8), grow) > 0
        here = weighted_centre(object_cover(generated, background, colour, region))
        if here is None:
            return match
        moved, centred = np.linalg.norm(here - there - centred), here - there
        if moved < 0.05:
            break
    return Match(centred, match.rms) if np.linalg.norm(centred - match.shift) <= max(1.0, 0.5 * radius) else match


# ---------------------------------------------------------------------- the target
@dataclass(frozen=True)
class MovedTarget:
    image: np.ndarray  # (H, W, 3) uint8
    trust: np.ndarray  # (H, W) float32 in [0, 1]: where the target can be trusted
    object_mask: np.ndarray  # (H, W) float32: the moved object's coverage


def painted_out(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The image with the object painted out from its surroundings (OpenCV's Telea inpainting)."""
    if mask is None or not mask.any():
        return image
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8))
    return cv2.inpaint(image, grown, 3, cv2.INPAINT_TELEA)


def shifted(image: np.ndarray, shift: np.ndarray) -> np.ndarray:
    matrix = np.array([[1, 0, shift[0]], [0, 1, shift[1]]], np.float32)
    h, w = image.shape[:2]
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def object_matte(mask: np.ndarray) -> np.ndarray:
    """A soft coverage of the object: its mask with a one-pixel blurred edge, so that a moved
    object is laid down with the anti-aliased edge it came with."""
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 0.6)


@dataclass(frozen=True)
class Placed:
    """An object to lay on a target: the frame it is taken from, its mask there, its shift."""

    pixels: np.ndarray  # (H, W, 3) uint8
    mask: np.ndarray  # (H, W) bool
    shift: np.ndarray  # (dx, dy) px


def moved_target(
    known: np.ndarray,
    generated: np.ndarray,
    objects: Sequence[Placed],
    background: np.ndarray | None = None,
    margin: int = 0,
) -> MovedTarget:
    """The moved target for `generated` from the user's `known` frame: each object moved by its
    shift, over `background` (the known frame with its objects painted out, computed when not
    given) moved by the consistent dense flow; the generated frame elsewhere. With no object (a
    scene), the whole known frame moves by the flow. `margin` px around the moved objects are the
    known background and trusted too: a latent pixel covers several image pixels, and the ones
    around an object decide how its outline decodes."""
    if background is None:
        background = painted_out(known, union([o.mask for o in objects if o.pixels is known]))
    flow = optical_flow(generated, background)  # generated(x) ~ background(x + flow(x))
    back = optical_flow(background, generated)
    kept = consistent(flow, back).astype(np.float32)[..., None]
    base = kept * warp(background.astype(np.float32), flow) + (1 - kept) * background.astype(np.float32)
    out = kept * base + (1 - kept) * generated.astype(np.float32)
    trust = kept[..., 0]
    cover = np.zeros(known.shape[:2], np.float32)
    if objects:
        covers = [np.clip(shifted(object_matte(o.mask), o.shift), 0, 1) for o in objects]
        cover = np.max(covers, axis=0)
        # the model's drawing of each object (what differs from the background and touches where
        # it is now) is background wherever the moved objects do not cover it
        drawn = drawn_object(generated, background, cover > 0.5)
        # where an object was and is no more, the known frame never saw the background: the
        # generated frame's, and no trust (but for the model's drawing of an object, painted out)
        was = union([o.mask for o in objects if o.pixels is known])
        was = np.zeros(known.shape[:2], bool) if was is None else was
        uncovered = (cv2.dilate(was.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0) & ~drawn
        out = np.where(drawn[..., None], base, np.where(uncovered[..., None], generated.astype(np.float32), out))
        trust = np.where(uncovered, 0.0, np.maximum(trust, drawn)).astype(np.float32)
        if margin > 0:
            ring = cv2.dilate(cover, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1,) * 2)) > 0
            out = np.where(ring[..., None], base, out)
            trust = np.maximum(trust, ring.astype(np.float32))
        for o, c in zip(objects, covers):
            out = c[..., None] * shifted(o.pixels.astype(np.float32), o.shift) + (1 - c[..., None]) * out
        trust = np.maximum(trust, cv2.dilate(cover, np.ones((3, 3), np.uint8)))
    return MovedTarget(np.clip(np.rint(out), 0, 255).astype(np.uint8), trust.astype(np.float32), cover)


def union(masks: Sequence[np.ndarray]) -> np.ndarray | None:
    return np.logical_or.reduce(list(masks)) if masks else None


def drawn_object(generated: np.ndarray, background: np.ndarray, near: np.ndarray) -> np.ndarray:
    """(H, W) bool: the parts of `generated` that differ from `background` by more than
    OBJECT_CONTRAST and touch `near` (where the object is now): the model's own drawing of it."""
    differs = np.sqrt(((lab(generated) - lab(background)) ** 2).sum(-1)) > OBJECT_CONTRAST
    count, labels = cv2.connectedComponents(differs.astype(np.uint8), connectivity=8)
    touching = np.unique(labels[near & differs])
    return np.isin(labels, touching[touching > 0]) if count > 1 else np.zeros_like(differs)
