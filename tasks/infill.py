"""`vidzero infill` and keyframe timelines: known frames anywhere, the gaps generated zero-shot.

A `Keyframes` timeline places still images (`keys`) and real clips (`clips`, their frames from a
start position on) on a timeline of `length` frames. The planner (`vidzero.timeline.plan_timeline`)
generates every other frame with one window each: the window - 1 available frames nearest in
time, in temporal order, around the target. Gaps are filled `inward` (from both ends toward the
middle, the default) or `forward` (left to right).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from vidzero.backbone import Backbone
from vidzero.engine import Progress
from vidzero.errors import BadInput
from vidzero.io import read_video, video_info
from vidzero.run import PlannedRun
from vidzero.timeline import plan_timeline

from .common import ImageLike, Prompt, RunOptions, load_frame, schedule


@dataclass
class Keyframes:
    """Known frames on a timeline of `length` frames."""

    length: int
    keys: dict[int, ImageLike] = field(default_factory=dict)
    clips: dict[int, str | Path] = field(default_factory=dict)  # start position -> video

    def load(self, backbone: Backbone) -> dict[int, np.ndarray]:
        """All known frames fitted to the backbone; a clear error for any inconsistency."""
        known: dict[int, np.ndarray] = {}
        sizes: dict[tuple[int, int], int] = {}
        for position, image in sorted(self.keys.items()):
            if not 0 <= position < self.length:
                raise BadInput(f"key at frame {position} is outside the timeline (0..{self.length - 1})")
            sizes.setdefault(source_size(image), position)
            known[position] = load_frame(image, backbone)
        if len(sizes) > 1:
            (a, pa), (b, pb) = list(sizes.items())[:2]
            raise BadInput(f"keyframes differ in size: frame {pa} is {a[0]}x{a[1]}, frame {pb} is {b[0]}x{b[1]}")
        for start, clip in sorted(self.clips.items()):
            if not 0 <= start < self.length:
                raise BadInput(f"clip {clip} starts at frame {start}, outside the timeline (0..{self.length - 1})")
            video_info(clip)
            count = 0
            for offset, frame in enumerate(read_video(clip, backbone.width, backbone.height)):
                position = start + offset
                if position >= self.length:
                    raise BadInput(f"clip {clip} at {start} runs past the end of the timeline ({self.length} frames)")
                if position in known:
                    raise BadInput(f"clip {clip} at {start} overlaps a known frame at {position}")
                known[position] = frame
                count += 1
            if count == 0:
                raise BadInput(f"clip {clip} has no frames")
        return known


def source_size(image: ImageLike) -> tuple[int, int]:
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise BadInput(f"image not found: {path}")
        try:
            with Image.open(path) as img:
                return img.size
        except OSError as exc:
            raise BadInput(f"cannot read image {path}: not an image or corrupt") from exc
    if isinstance(image, Image.Image):
        return image.size
    return (int(image.shape[1]), int(image.shape[0]))


def infill(
    timeline: Keyframes,
    prompt: Prompt,
    *,
    order: str = "inward",
    backbone: Backbone | None = None,
    progress: Progress | None = None,
    **options,
) -> PlannedRun:
    """Plan the generation of every frame of `timeline` that is not known."""
    opts = RunOptions(**options)
    opts.check()
    if timeline.length < 2:
        raise BadInput(f"--frames must be at least 2, got {timeline.length}")
    for image in timeline.keys.values():
        source_size(image)  # missing files fail before a model loads
    bb = opts.backbone(backbone)
    known = timeline.load(bb)
    jobs = plan_timeline(timeline.length, set(known), bb.frames, order, opts.new_per_window)
    prompt = schedule(prompt, timeline.length)
    inputs = {"keys": {k: str(v) if isinstance(v, (str, Path)) else type(v).__name__ for k, v in timeline.keys.items()},
              "clips": {k: str(v) for k, v in timeline.clips.items()}, "order": order}
    return PlannedRun("infill", opts.engine(bb), jobs, timeline.length, known, prompt, opts.negative_prompt, opts.fps,
                      inputs, progress, opts.deflicker_settings())


def infill_between(start: ImageLike, end: ImageLike, prompt: str, frames: int = 16, **kwargs) -> PlannedRun:
    """Both ends known: `frames` in total, the first and last given."""
    return infill(Keyframes(frames, {0: start, frames - 1: end}), prompt, **kwargs)
