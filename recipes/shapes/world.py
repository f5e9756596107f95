"""The procedural "shapes" world the embedded backbone is trained on.

Every clip is a deterministic function of one integer seed: one or two coloured shapes moving
at constant velocity (bouncing off the walls) or standing still, over a background that the
caption does not fully describe (plain muted colours, smooth gradients, soft blobs). Each clip
carries its ground truth (per-frame centres, colours, shapes, sizes) so that generated videos
can be scored against it on pixels alone (see :mod:`recipes.shapes.judge`).

Object colours are bright and saturated; background colours are dark and muted, so colour
segmentation can tell the two apart even on blurry generated frames.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

SIZE = 64
FRAMES = 16

OBJECT_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 240),
    "yellow": (240, 220, 40),
    "magenta": (230, 60, 220),
    "cyan": (40, 220, 230),
    "orange": (250, 140, 30),
    "white": (245, 245, 245),
}
BACKGROUND_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (18, 18, 22),
    "gray": (96, 96, 100),
    "brown": (88, 58, 38),
    "navy": (26, 30, 78),
    "olive": (78, 80, 30),
    "maroon": (80, 24, 36),
}
SHAPES = ("circle", "square", "triangle")
SIZES: dict[str, float] = {"small": 5.0, "large": 9.0}  # radius (half extent) in pixels at 64 px
# Pixels per frame of a moving object (the shipped model's world). Training can draw another range
# (the recipe's --world-speed): at 1.5-2.5, the feasibility run's pace, the direction word was not
# learned any faster (docs/model-card.md).
SPEED_RANGE = (1.0, 2.0)
DIRECTIONS: dict[str, tuple[float, float]] = {
    "right": (1.0, 0.0),
    "left": (-1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
}
APPEARANCE_RADIUS = (3.5, 11.5)  # px; "small" below SIZE_WORD_LIMIT, "large" above
SIZE_WORD_LIMIT = 7.0
# The drawn forms behind each shape word: (sides, aspect range, may rotate). The first is the
# classic world's own form.
FORMS: dict[str, tuple[tuple[int, tuple[float, float], bool], ...]] = {
    "circle": ((0, (1.0, 1.0), False), (0, (0.6, 0.9), True), (6, (1.0, 1.0), True), (8, (1.0, 1.0), True)),
    "square": ((4, (1.0, 1.0), False), (4, (1.0, 1.0), True), (4, (0.6, 0.9), True)),
    "triangle": ((3, (1.0, 1.0), False), (3, (1.0, 1.0), True), (3, (0.7, 0.95), True)),
}

# How a direction is said when the object bounces back within the clip.
BOUNCE_PHRASES = {"right": "left and right", "left": "left and right", "up": "up and down", "down": "up and down"}


@dataclass(frozen=True)
class ObjectSpec:
    """One object's identity and motion; positions are in pixels of a SIZE x SIZE frame."""

    shape: str
    colour: str
    size: str
    x: float
    y: float
    direction: str | None  # None: standing still
    speed: float
    # The appearance world (make_clip(appearance=True)) varies the look within each caption word;
    # the defaults draw the classic world's objects.
    form: Form | None = None

    @property
    def radius(self) -> float:
        return self.form.radius if self.form is not None else SIZES[self.size]

    @property
    def rgb(self) -> tuple[int, int, int]:
        return self.form.rgb if self.form is not None else OBJECT_COLOURS[self.colour]


@dataclass(frozen=True)
class Form:
    """How an object of the appearance world is drawn: its caption names only the nearest shape
    word, size word and colour word, so a model of this world can only get the exact look of an
    object from the other frames of the clip (what zero-shot image conditioning relies on)."""

    radius: float  # half extent in pixels, continuous
    sides: int  # 0: an ellipse; otherwise a regular polygon with this many corners
    aspect: float  # minor/major axis ratio (1: regular)
    angle: float  # rotation in radians
    rgb: tuple[int, int, int]
    inner: float = 0.0  # > 0: a darker concentric copy of this relative size (two-tone object)
    # A free outline: per-corner radius factors of a star-shaped polygon (empty: the shape word's
    # form). Such an object's caption names no shape word, so only the other frames tell its outline.
    corners: tuple[float, ...] = ()


@dataclass
class ObjectTrack:
    """Ground truth of one object over a clip."""

    spec: ObjectSpec
    centres: np.ndarray  # (T, 2) x, y in pixels
    velocities: np.ndarray  # (T, 2) velocity used to move from frame t to t + 1

    @property
    def bounced(self) -> bool:
        v = self.velocities
        return bool(np.any(np.sign(v[1:]) * np.sign(v[:-1]) < 0))


@dataclass
class ShapesClip:
    frames: np.ndarray  # (T, H, W, 3) uint8
    caption: str
    tracks: list[ObjectTrack]
    background: np.ndarray  # (H, W, 3) uint8, the frame without objects
    background_name: str | None  # the named colour when the background is plain
    seed: int
    meta: dict = field(default_factory=dict)

    def ground_truth(self) -> dict:
        """JSON-ready ground truth."""
        return {
            "seed": self.seed,
            "caption": self.caption,
            "background": self.background_name,
            "objects": [
                {**asdict(t.spec), "centres": t.centres.round(3).tolist(), "bounced": t.bounced} for t in self.tracks
            ],
        }


def simulate(spec: ObjectSpec, frames: int, size: int = SIZE) -> ObjectTrack:
    """Constant-velocity motion with elastic bounces off the frame walls."""
    pos = np.array([spec.x, spec.y], dtype=np.float64)
    if spec.direction is None:
        vel = np.zeros(2)
    else:
        vel = np.array(DIRECTIONS[spec.direction], dtype=np.float64) * spec.speed
    lo, hi = spec.radius, size - 1 - spec.radius
    centres, velocities = [], []
    for _ in range(frames):
        centres.append(pos.copy())
        velocities.append(vel.copy())
        pos = pos + vel
        for axis in range(2):
            if pos[axis] < lo:
                pos[axis] = 2 * lo - pos[axis]
                vel[axis] = -vel[axis]
            elif pos[axis] > hi:
                pos[axis] = 2 * hi - pos[axis]
                vel[axis] = -vel[axis]
    return ObjectTrack(spec, np.array(centres), np.array(velocities))


_SUBPIXEL_BITS = 4
_SCALE = 1 << _SUBPIXEL_BITS


def shape_coverage(shape: str, centre: tuple[float, float], radius: float, size: int = SIZE) -> np.ndarray:
    """Anti-aliased coverage mask in [0, 1] (OpenCV drawing with sub-pixel precision)."""
    mask = np.zeros((size, size), dtype=np.uint8)
    cx, cy = centre
    if shape == "circle":
        c = (int(round(cx * _SCALE)), int(round(cy * _SCALE)))
        cv2.circle(mask, c, int(round(radius * _SCALE)), 255, -1, cv2.LINE_AA, _SUBPIXEL_BITS)
        return mask.astype(np.float32) / 255.0
    if shape == "square":
        pts = [
            (cx - radius, cy - radius),
            (cx + radius, cy - radius),
            (cx + radius, cy + radius),
            (cx - radius, cy + radius),
        ]
    elif shape == "triangle":
        # Equilateral, pointing up, centroid at the centre; circumradius scaled so its area is
        # close to the circle's of the same size.
        r = radius * 1.25
        pts = [
            (cx + r * np.cos(a), cy - r * np.sin(a))
            for a in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3)
        ]
    else:
        raise ValueError(f"unknown shape {shape!r}")
    poly = np.array([[int(round(x * _SCALE)), int(round(y * _SCALE))] for x, y in pts], dtype=np.int32)
    cv2.fillPoly(mask, [poly], 255, cv2.LINE_AA, _SUBPIXEL_BITS)
    return mask.astype(np.float32) / 255.0


def form_coverage(form: Form, centre: tuple[float, float], size: int = SIZE) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of an appearance-world object (two-tone objects: the
    inner part is returned in a second channel)."""

    def outline(scale: float) -> np.ndarray:
        mask = np.zeros((size, size), dtype=np.uint8)
        cx, cy = centre
        r = form.radius * scale
        if form.corners:
            n = len(form.corners)
            angles = form.angle + 2 * np.pi * np.arange(n) / n
            radii = r * np.asarray(form.corners)
            pts = np.stack([cx + radii * np.cos(angles), cy - radii * np.sin(angles) * form.aspect], axis=1)
            cv2.fillPoly(mask, [np.round(pts * _SCALE).astype(np.int32)], 255, cv2.LINE_AA, _SUBPIXEL_BITS)
        elif form.sides == 0:
            axes = (int(round(r * _SCALE)), int(round(r * form.aspect * _SCALE)))
            cv2.ellipse(
                mask,
                (int(round(cx * _SCALE)), int(round(cy * _SCALE))),
                axes,
                np.degrees(form.angle),
                0,
                360,
                255,
                -1,
                cv2.LINE_AA,
                _SUBPIXEL_BITS,
            )
        else:
            # circumradius chosen so that the polygon's area is close to the circle's of radius r
            n = form.sides
            circum = r * np.sqrt(2 * np.pi / (n * np.sin(2 * np.pi / n)))
            start = np.pi / 2 if n == 3 else np.pi / 4 if n == 4 else 0.0
            angles = start + 2 * np.pi * np.arange(n) / n
            local = np.stack([circum * np.cos(angles), -circum * np.sin(angles) * form.aspect], axis=1)
            rot = np.array([[np.cos(form.angle), -np.sin(form.angle)], [np.sin(form.angle), np.cos(form.angle)]])
            pts = local @ rot.T + np.array([cx, cy])
            poly = np.round(pts * _SCALE).astype(np.int32)
            cv2.fillPoly(mask, [poly], 255, cv2.LINE_AA, _SUBPIXEL_BITS)
        return mask.astype(np.float32) / 255.0

    outer = outline(1.0)
    inner = outline(form.inner) if form.inner > 0 else np.zeros_like(outer)
    return np.stack([outer, inner], axis=-1)


def random_form(
    rng: np.random.Generator, shape: str, colour: str, small_share: float = 0.0, free_outline: float = 0.0
) -> Form:
    """An appearance-world look for a (shape word, colour word): continuous size, one of the
    shape word's forms, a colour near the named one, sometimes two-tone. `small_share` of the
    objects take their radius from the small range (below SIZE_WORD_LIMIT) only, the rest from the
    whole range; `free_outline` of them take a random star-shaped outline of 5-9 corners whose
    caption names no shape. With both 0 the draws are exactly those of the world without the options."""
    sides, (lo, hi), rotates = FORMS[shape][rng.integers(len(FORMS[shape]))]
    small = small_share > 0 and bool(rng.random() < small_share)
    radius = float(rng.uniform(APPEARANCE_RADIUS[0], SIZE_WORD_LIMIT if small else APPEARANCE_RADIUS[1]))
    aspect = float(rng.uniform(lo, hi))
    angle = float(rng.uniform(0, np.pi)) if rotates else 0.0
    rgb = tuple(int(np.clip(c + rng.integers(-20, 21), 0, 255)) for c in OBJECT_COLOURS[colour])
    inner = float(rng.uniform(0.35, 0.6)) if rng.random() < 0.25 else 0.0
    corners: tuple[float, ...] = ()
    if free_outline > 0 and rng.random() < free_outline:
        # radius factors around 1 keep the area near the size word's; the angle turns the polygon
        corners = tuple(float(c) for c in rng.uniform(0.6, 1.25, size=int(rng.integers(5, 10))))
        angle = float(rng.uniform(0, 2 * np.pi))
    return Form(radius, sides, aspect, angle, rgb, inner, corners)


def render_background(rng: np.random.Generator, size: int = SIZE, free: bool = False) -> tuple[np.ndarray, str | None]:
    """A plain named colour (described by some captions) or a smooth random texture (never described).
    `free`: the colours are any dark colour, not the named ones (never described): a model can
    only get such a background right from the other frames of the clip."""
    names = list(BACKGROUND_COLOURS)
    base_name = names[rng.integers(len(names))]
    base = np.array(BACKGROUND_COLOURS[base_name], dtype=np.float32)
    if free:
        base = rng.uniform(0, 150, size=3).astype(np.float32)
    if rng.random() < 0.4:
        plain = np.broadcast_to(base, (size, size, 3)).astype(np.uint8).copy()
        return plain, None if free else base_name
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    other = np.array(BACKGROUND_COLOURS[names[rng.integers(len(names))]], dtype=np.float32)
    if free:
        other = rng.uniform(0, 150, size=3).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)) + 0.5
    ramp = np.clip(ramp, 0, 1)[..., None]
    img = base * (1 - ramp) + other * ramp
    for _ in range(rng.integers(1, 4)):  # soft blobs
        bx, by = rng.uniform(0, 1, size=2)
        sigma = rng.uniform(0.1, 0.3)
        amp = rng.uniform(-35, 35, size=3).astype(np.float32)
        blob = np.exp(-((xx - bx) ** 2 + (yy - by) ** 2) / (2 * sigma**2))[..., None]
        img = img + amp * blob
    return np.clip(img, 0, 140).astype(np.uint8), None


def composite(background: np.ndarray, objects: list[tuple[ObjectSpec, tuple[float, float]]]) -> np.ndarray:
    img = background.astype(np.float32)
    for spec, centre in objects:
        colour = np.array(spec.rgb, dtype=np.float32)
        if spec.form is None:
            cov = shape_coverage(spec.shape, centre, spec.radius, background.shape[0])[..., None]
            img = img * (1 - cov) + colour * cov
            continue
        cov = form_coverage(spec.form, centre, background.shape[0])
        outer, inner = cov[..., :1], cov[..., 1:]
        img = img * (1 - outer) + colour * outer
        img = img * (1 - inner) + 0.6 * colour * inner
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def describe_object(track: ObjectTrack, with_size: bool) -> str:
    s = track.spec
    shape = "" if s.form is not None and s.form.corners else f" {s.shape}"  # a free outline has no word
    noun = f"{s.size} {s.colour}{shape}" if with_size else f"{s.colour}{shape}"
    if s.direction is None:
        return f"{article(noun)} {noun} standing still"
    if track.bounced:
        return f"{article(noun)} {noun} bouncing {BOUNCE_PHRASES[s.direction]}"
    return f"{article(noun)} {noun} moving {s.direction}"


def article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


OPPOSITE_DIRECTIONS = {"right": "left", "left": "right", "up": "down", "down": "up"}


def reversed_caption(caption: str) -> str:
    """The caption of the same clip played backwards: constant motions flip ("moving left" <->
    "moving right"); bouncing and standing still read the same both ways."""
    return re.sub(r"moving (right|left|up|down)", lambda m: f"moving {OPPOSITE_DIRECTIONS[m.group(1)]}", caption)


def caption_for(tracks: list[ObjectTrack], background_name: str | None, rng: np.random.Generator) -> str:
    with_size = bool(rng.random() < 0.5)
    text = " and ".join(describe_object(t, with_size) for t in tracks)
    if background_name is not None and rng.random() < 0.5:
        text += f" on {article(background_name)} {background_name} background"
    return text


def random_object(
    rng: np.random.Generator,
    size: int = SIZE,
    frames: int = FRAMES,
    exclude_colour: str | None = None,
    bounce_probability: float = 0.2,
    speed_range: tuple[float, float] = SPEED_RANGE,
    colours: tuple[str, ...] | None = None,
    appearance: bool = False,
    small_share: float = 0.0,
    free_outline: float = 0.0,
) -> ObjectSpec:
    """A random object; unless it is drawn to bounce, it starts where it cannot reach a wall
    within `frames`, so that "moving right" captions describe the whole clip. `colours` narrows
    the object colours drawn from (default: all of OBJECT_COLOURS)."""
    colours = [c for c in (colours or OBJECT_COLOURS) if c != exclude_colour]
    if not colours:
        raise ValueError("no object colour left to draw from")
    size_name = list(SIZES)[rng.integers(len(SIZES))]
    r = SIZES[size_name]
    form = None
    if appearance:  # drawn after the classic draws, so that those stay as they were
        shape = SHAPES[rng.integers(len(SHAPES))]
        colour = colours[rng.integers(len(colours))]
        form = random_form(rng, shape, colour, small_share, free_outline)
        r = form.radius
        size_name = "small" if r < SIZE_WORD_LIMIT else "large"
    direction = None if rng.random() < 0.12 else list(DIRECTIONS)[rng.integers(len(DIRECTIONS))]
    speed = float(rng.uniform(*speed_range)) if direction else 0.0
    lo, hi = r, size - 1 - r
    x, y = (float(v) for v in rng.uniform(lo, hi, size=2))
    travel = speed * (frames - 1)
    if direction is not None and rng.random() >= bounce_probability and travel < hi - lo:
        dx, dy = DIRECTIONS[direction]
        start = rng.uniform(lo, hi - travel)
        if dx:
            x = float(start if dx > 0 else lo + hi - start)
        else:
            y = float(start if dy > 0 else lo + hi - start)
    if form is not None:
        return ObjectSpec(shape, colour, size_name, x, y, direction, speed, form)
    return ObjectSpec(
        shape=SHAPES[rng.integers(len(SHAPES))],
        colour=colours[rng.integers(len(colours))],
        size=size_name,
        x=x,
        y=y,
        direction=direction,
        speed=speed,
    )


def make_clip(
    seed: int,
    frames: int = FRAMES,
    size: int = SIZE,
    objects: list[ObjectSpec] | None = None,
    two_object_probability: float = 0.25,
    speed_range: tuple[float, float] = SPEED_RANGE,
    object_colours: tuple[str, ...] | None = None,
    appearance: bool = False,
    small_share: float = 0.0,
    free_background: float = 0.0,
    free_outline: float = 0.0,
) -> ShapesClip:
    """One clip, a pure function of its arguments. `objects` overrides the random draw;
    `object_colours` narrows the colours it draws from (one colour: one object per clip);
    `appearance` draws the appearance world (see `Form`); `free_background` is the share of
    clips whose background takes any dark colour and `free_outline` the share of objects with a
    random outline the caption does not name (with 0 the draws are the world's without them)."""
    rng = np.random.default_rng(seed)
    free = free_background > 0 and bool(rng.random() < free_background)
    background, background_name = render_background(rng, size, free)
    if objects is None:
        first = random_object(
            rng,
            size,
            frames,
            speed_range=speed_range,
            colours=object_colours,
            appearance=appearance,
            small_share=small_share,
            free_outline=free_outline,
        )
        objects = [first]
        # two objects always differ in colour, so one allowed colour means one object
        if rng.random() < two_object_probability and (object_colours is None or len(object_colours) > 1):
            objects.append(
                random_object(
                    rng,
                    size,
                    frames,
                    exclude_colour=first.colour,
                    speed_range=speed_range,
                    colours=object_colours,
                    appearance=appearance,
                    small_share=small_share,
                    free_outline=free_outline,
                )
            )
    tracks = [simulate(spec, frames, size) for spec in objects]
    video = np.stack([composite(background, [(t.spec, tuple(t.centres[i])) for t in tracks]) for i in range(frames)])
    return ShapesClip(video, caption_for(tracks, background_name, rng), tracks, background, background_name, seed)


def moving_object_clips(
    count: int, seed_base: int, frames: int = FRAMES, object_colours: tuple[str, ...] | None = None
) -> list[ShapesClip]:
    """The first `count` one-object clips from `seed_base` on whose object moves without bouncing
    (cases with an unambiguous motion, for benches that score direction and trajectories),
    drawn from `object_colours` if given."""
    out, seed = [], seed_base
    while len(out) < count:
        clip = make_clip(seed, frames=frames, two_object_probability=0.0, object_colours=object_colours)
        seed += 1
        if clip.tracks[0].spec.direction is not None and not clip.tracks[0].bounced:
            out.append(clip)
    return out


def vocabulary() -> list[str]:
    """Every word a caption can contain (the embedded tokenizer's word list)."""
    words = {"a", "an", "and", "on", "background", "moving", "bouncing", "standing", "still"}
    words |= set(OBJECT_COLOURS) | set(BACKGROUND_COLOURS) | set(SHAPES) | set(SIZES) | set(DIRECTIONS)
    return sorted(words)
