"""Image fidelity on pixels alone: does a video keep the user's object while it moves?

The cases are first frames drawn here, independently of the training world (recipes/shapes):
discs, squares, triangles, ellipses, hexagons and diamonds of sizes between and beyond the two
the model was trained on, at other positions, on plain and textured backgrounds, each with a
prompt that names the nearest colour, shape and a direction. Two splits: `dev` (for choosing
settings) and `test` (held out: only ever measured).

Per frame, from pixels alone, against frame 0 (the user's image):

- the object is every pixel more than half way from the background's colour to the object's
  (the half-maximum contour, where a blurred edge keeps its place), largest connected part;
- shape IoU with frame 0's object after aligning their centroids; area ratio; colour difference
  (CIE76 delta E of the mean colours); background PSNR outside both objects;
- per video: the first-step jump (the step 0 -> 1 of the centroid minus the median step) and
  whether the fitted motion goes the way the prompt says (>= 2 px along that axis, more than across).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

SIZE = 64
COLOURS = {  # the colour words the model knows, with colours of this bench's own
    "red": (222, 52, 44),
    "green": (52, 190, 70),
    "blue": (60, 96, 232),
    "yellow": (236, 212, 52),
    "magenta": (220, 70, 214),
    "cyan": (52, 212, 222),
    "orange": (244, 146, 40),
    "white": (236, 236, 240),
}
BACKGROUNDS = {
    "black": (20, 20, 26),
    "gray": (92, 94, 98),
    "brown": (84, 60, 40),
    "navy": (30, 34, 80),
    "olive": (76, 80, 34),
    "maroon": (78, 28, 38),
    "teal": (24, 64, 66),
    "plum": (64, 36, 70),
}
# drawn shape -> the shape word the prompt uses
SHAPE_WORDS = {
    "disc": "circle",
    "ellipse": "circle",
    "hexagon": "circle",
    "square": "square",
    "diamond": "square",
    "triangle": "triangle",
}
RADII = (4.0, 6.5, 7.5, 11.0, 12.0)
DIRECTIONS = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1)}
SPLIT_SEEDS = {"dev": 1000, "test": 2000}


@dataclass(frozen=True)
class Case:
    name: str
    shape: str
    radius: float
    colour: str
    rgb: tuple[int, int, int]
    background: str  # "plain" or "texture"
    bg_rgb: tuple[int, int, int]
    x: float
    y: float
    direction: str
    seed: int

    @property
    def prompt(self) -> str:
        article = "an" if self.colour[0] in "aeiou" else "a"
        return f"{article} {self.colour} {SHAPE_WORDS[self.shape]} moving {self.direction}"

    def background_image(self) -> np.ndarray:
        base = np.broadcast_to(np.array(self.bg_rgb, np.float32), (SIZE, SIZE, 3)).copy()
        if self.background == "plain":
            return base.astype(np.uint8)
        rng = np.random.default_rng(self.seed + 7)
        yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / (SIZE - 1)
        angle = rng.uniform(0, 2 * np.pi)
        ramp = np.clip(np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5) + 0.5, 0, 1)[..., None]
        other = np.array(BACKGROUNDS[list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]], np.float32)
        grain = cv2.GaussianBlur(rng.normal(0, 8, (SIZE, SIZE)).astype(np.float32), (0, 0), 3.0)[..., None]
        return np.clip(base * (1 - ramp) + other * ramp + grain, 0, 150).astype(np.uint8)

    def coverage(self) -> np.ndarray:
        """Anti-aliased coverage in [0, 1] of the object in frame 0."""
        scale = 16
        mask = np.zeros((SIZE, SIZE), np.uint8)
        cx, cy, r = self.x * scale, self.y * scale, self.radius * scale
        if self.shape == "disc":
            cv2.circle(mask, (round(cx), round(cy)), round(r), 255, -1, cv2.LINE_AA, 4)
        elif self.shape == "ellipse":
            cv2.ellipse(
                mask, (round(cx), round(cy)), (round(r * 1.2), round(r * 0.75)), 30, 0, 360, 255, -1, cv2.LINE_AA, 4
            )
        else:
            sides, start = {
                "square": (4, np.pi / 4),
                "diamond": (4, 0.0),
                "hexagon": (6, 0.0),
                "triangle": (3, np.pi / 2),
            }[self.shape]
            circum = r * np.sqrt(2 * np.pi / (sides * np.sin(2 * np.pi / sides)))
            angles = start + 2 * np.pi * np.arange(sides) / sides
            pts = np.stack([cx + circum * np.cos(angles), cy - circum * np.sin(angles)], axis=1)
            cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255, cv2.LINE_AA, 4)
        return mask.astype(np.float32) / 255

    def first_frame(self) -> np.ndarray:
        cov = self.coverage()[..., None]
        frame = self.background_image().astype(np.float32) * (1 - cov) + np.array(self.rgb, np.float32) * cov
        return np.clip(np.rint(frame), 0, 255).astype(np.uint8)


def make_cases(split: str, count: int) -> list[Case]:
    """`count` cases of a split, a pure function of (split, count)."""
    rng = np.random.default_rng(SPLIT_SEEDS[split])
    shapes, colours, directions = list(SHAPE_WORDS), list(COLOURS), list(DIRECTIONS)
    cases = []
    for i in range(count):
        shape = shapes[(i + SPLIT_SEEDS[split] // 1000) % len(shapes)]
        radius = float(RADII[rng.integers(len(RADII))])
        colour = colours[rng.integers(len(colours))]
        bg_name = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
        direction = directions[i % len(directions)]
        dx, dy = DIRECTIONS[direction]
        margin, travel = radius * 1.3 + 2, 24.0  # room for about 1.5 px per frame over 16 frames
        lo, hi = margin, SIZE - 1 - margin
        x, y = (float(v) for v in rng.uniform(lo, hi, 2))
        if dx:
            x = float(rng.uniform(lo, hi - travel)) if dx > 0 else float(rng.uniform(lo + travel, hi))
        else:
            y = float(rng.uniform(lo, hi - travel)) if dy > 0 else float(rng.uniform(lo + travel, hi))
        cases.append(
            Case(
                f"{split}-{i:02d}-{shape}",
                shape,
                radius,
                colour,
                COLOURS[colour],
                "texture" if i % 2 else "plain",
                BACKGROUNDS[bg_name],
                x,
                y,
                direction,
                SPLIT_SEEDS[split] + i,
            )
        )
    return cases


# ---------------------------------------------------------------------- measuring
def object_map(frame: np.ndarray, background: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    """How far each pixel is from the background's colour to the object's (0 background, 1 object)."""
    direction = np.array(rgb, np.float32) - background.astype(np.float32)
    norm = np.maximum((direction**2).sum(-1), 1.0)
    return np.clip(((frame.astype(np.float32) - background.astype(np.float32)) * direction).sum(-1) / norm, 0, 1.5)


def largest_part(mask: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros_like(mask, bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def centroid(mask: np.ndarray) -> np.ndarray | None:
    ys, xs = np.nonzero(mask)
    return None if len(xs) == 0 else np.array([xs.mean(), ys.mean()])


def shifted(soft: np.ndarray, offset: np.ndarray) -> np.ndarray:
    matrix = np.float32([[1, 0, offset[0]], [0, 1, offset[1]]])
    return cv2.warpAffine(soft.astype(np.float32), matrix, (soft.shape[1], soft.shape[0]), flags=cv2.INTER_LINEAR)


def lab_mean(frame: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    inner = inner if inner.sum() >= 3 else mask
    if inner.sum() == 0:
        return None
    lab = cv2.cvtColor(frame.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    return lab[inner].mean(0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """scikit-image's PSNR over the pixels given, at most 99 dB (equal pixels, or none)."""
    from skimage.metrics import peak_signal_noise_ratio

    if a.size == 0 or np.array_equal(a, b):
        return 99.0
    return min(99.0, float(peak_signal_noise_ratio(a, b, data_range=255)))


def measure(frames: np.ndarray, case: Case) -> dict:
    """Per-frame and per-video fidelity of `frames` (T, 64, 64, 3), frame 0 the case's image."""
    background = case.background_image()
    soft = [object_map(f, background, case.rgb) for f in frames]
    masks = [largest_part(s > 0.5) for s in soft]
    c0, m0 = centroid(masks[0]), masks[0]
    lab0 = lab_mean(frames[0], m0)
    bg0 = frames[0]
    per_frame = []
    for k in range(1, len(frames)):
        ck = centroid(masks[k])
        if ck is None or c0 is None:
            per_frame.append({"present": False, "iou": 0.0, "area": 0.0, "delta_e": None, "background_psnr": None})
            continue
        aligned = largest_part(shifted(np.minimum(soft[k], 1.0), c0 - ck) > 0.5)
        union = (aligned | m0).sum()
        labk = lab_mean(frames[k], masks[k])
        keep_out = cv2.dilate((masks[k] | m0).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        bg_k, bg_0 = lab_mean(frames[k], ~keep_out), lab_mean(bg0, ~keep_out)
        per_frame.append(
            {
                "present": True,
                "iou": float((aligned & m0).sum() / union) if union else 0.0,
                "area": float(masks[k].sum() / max(1, m0.sum())),
                "delta_e": float(np.linalg.norm(labk - lab0)) if labk is not None and lab0 is not None else None,
                "background_psnr": psnr(frames[k][~keep_out], background[~keep_out]),
                # the background's mean colour against frame 0's (CIE76): the drift of long videos
                "background_delta_e": float(np.linalg.norm(bg_k - bg_0))
                if bg_k is not None and bg_0 is not None
                else None,
            }
        )
    track = [centroid(m) for m in masks]
    steps = [float(np.linalg.norm(b - a)) for a, b in zip(track, track[1:]) if a is not None and b is not None]
    jump = (
        steps[0] - float(np.median(steps[1:]))
        if len(steps) >= 3 and track[0] is not None and track[1] is not None
        else None
    )
    along, across = motion(track, case)
    return {
        "per_frame": per_frame,
        "first_step_jump": jump,
        "direction_correct": bool(along >= 2.0 and along > abs(across)),
        "speed": along / (len(track) - 1),
        "median_step": float(np.median(steps)) if steps else None,
    }


def motion(track: list[np.ndarray | None], case: Case) -> tuple[float, float]:
    """The fitted displacement over the clip along the prompt's direction and across it, in px
    (0, 0 when the object is missing from more than half of the frames)."""
    points = [(t, c) for t, c in enumerate(track) if c is not None]
    if len(points) < len(track) // 2 or len(points) < 2:
        return 0.0, 0.0
    t = np.array([p[0] for p in points], float)
    xy = np.stack([p[1] for p in points])
    slopes = np.polyfit(t, xy, 1)[0] * (len(track) - 1)  # displacement over the clip, x and y
    dx, dy = DIRECTIONS[case.direction]
    along, across = (slopes[0] * dx, slopes[1]) if dx else (slopes[1] * dy, slopes[0])
    return float(along), float(across)


def summary(measured: list[dict]) -> dict:
    """Aggregates over videos: shares of frames, means of per-video numbers."""
    frames = [f for m in measured for f in m["per_frame"]]
    areas = np.array([f["area"] for f in frames])
    backgrounds = [f["background_psnr"] for f in frames if f["background_psnr"] is not None]
    deltas = [f["delta_e"] for f in frames if f["delta_e"] is not None]
    drift = [f["background_delta_e"] for f in frames if f.get("background_delta_e") is not None]
    jumps = [m["first_step_jump"] for m in measured if m["first_step_jump"] is not None]
    return {
        "iou_0.8": float(np.mean([f["iou"] >= 0.8 for f in frames])),
        "iou": float(np.mean([f["iou"] for f in frames])),
        "area_15": float(np.mean(np.abs(areas - 1) <= 0.15)),
        "area": float(np.median(areas)),
        "delta_e": float(np.mean(deltas)) if deltas else float("nan"),
        "background_psnr": float(np.median(backgrounds)) if backgrounds else float("nan"),
        "background_delta_e": float(np.mean(drift)) if drift else float("nan"),
        "background_within_3": float(np.mean(np.array(drift) <= 3.0)) if drift else float("nan"),
        "first_step_jump": float(np.mean(jumps)) if jumps else float("nan"),
        "direction": float(np.mean([m["direction_correct"] for m in measured])),
        # the motion guard: the object's mean speed along the prompt's direction (a setting that
        # keeps the outline by freezing the object shows here)
        "speed": float(np.mean([m.get("speed", np.nan) for m in measured])),
        "present": float(np.mean([f["present"] for f in frames])),
    }


def bootstrap_halfwidth(measured: list[dict], key: str, rounds: int = 400, seed: int = 0) -> float:
    """Half the width of a 90 % bootstrap interval of a summary metric over videos: the bench's
    noise for that metric."""
    rng = np.random.default_rng(seed)
    values = [
        summary([measured[i] for i in rng.integers(len(measured), size=len(measured))])[key] for _ in range(rounds)
    ]
    lo, hi = np.nanpercentile(values, [5, 95])
    return float((hi - lo) / 2)


# Which way is better, per metric (+1: higher), and the distance from its goal where it has one
BETTER = {
    "iou_0.8": 1,
    "area_15": 1,
    "delta_e": -1,
    "background_psnr": 1,
    "direction": 1,
    "speed": 1,
}
JUMP_GOAL = 1.5  # px: the first step is judged by whether it stays within this, not by its sign


def paired_difference(
    variant: list[dict], reference: list[dict], key: str, rounds: int = 400, seed: int = 0
) -> tuple[float, float, float]:
    """(difference, low, high): a summary metric of `variant` minus `reference` on the same cases,
    with a 90 % paired bootstrap interval (cases resampled together, so case difficulty cancels).
    For the first-step jump the difference is of |jump|, the distance from no jump."""
    assert len(variant) == len(reference)

    def value(measured: list[dict]) -> float:
        v = summary(measured)[key]
        return abs(v) if key == "first_step_jump" else v

    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(rounds):
        pick = rng.integers(len(variant), size=len(variant))
        diffs.append(value([variant[i] for i in pick]) - value([reference[i] for i in pick]))
    lo, hi = np.nanpercentile(diffs, [5, 95])
    return value(variant) - value(reference), float(lo), float(hi)


def worse_beyond_noise(variant: list[dict], reference: list[dict]) -> list[str]:
    """The metrics on which `variant` is worse than `reference` beyond the paired noise (the whole
    90 % interval on the worse side); the first-step jump only when it also leaves its goal."""
    worse = []
    for key, sign in BETTER.items():
        _, lo, hi = paired_difference(variant, reference, key)
        if (sign > 0 and hi < 0) or (sign < 0 and lo > 0):
            worse.append(key)
    _, lo, _ = paired_difference(variant, reference, "first_step_jump")
    if lo > 0 and abs(summary(variant)["first_step_jump"]) > JUMP_GOAL:
        worse.append("first_step_jump")
    return worse


def case_record(case: Case) -> dict:
    return asdict(case) | {"prompt": case.prompt}
