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

from vidzero.backbone import Backbone
from vidzero.errors import BadInput
from vidzero.io import read_video, video_info
from vidzero.options import RunOptions, choice, frame_count, takes_run_options
from vidzero.run import PlannedRun
from vidzero.timeline import FILL_ORDERS, plan_timeline

from .common import ImageLike, Prompt, check_image_source, load_frame, paths_of, planned, schedule, setup, source_name


def position(value: object, option: str, length: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise BadInput(f"{{option}} positions must be whole frame numbers, got {value!r}", option)
    if not 0 <= int(value) < length:
        raise BadInput(f"{{option}} at frame {value} is outside the timeline (0..{length - 1})", option)
    return int(value)


@dataclass
class Keyframes:
    """Known frames on a timeline of `length` frames."""

    length: int
    keys: dict[int, ImageLike] = field(default_factory=dict)
    clips: dict[int, str | Path] = field(default_factory=dict)  # start position -> video

    def check(self) -> None:
        """Positions and files, before any model loads."""
        frame_count(self.length, "frames", 2)
        if not self.keys and not self.clips:
            raise BadInput("no known frames: give keyframes (keys) or clips")
        for pos, image in self.keys.items():
            position(pos, "keys", self.length)
            check_image_source(image, "keyframe")
        for pos, clip in self.clips.items():
            position(pos, "clips", self.length)
            video_info(clip)

    def load(self, backbone: Backbone) -> dict[int, np.ndarray]:
        """All known frames fitted to the backbone; a clear error for any inconsistency."""
        known: dict[int, np.ndarray] = {}
        sizes: dict[tuple[int, int], int] = {}
        for pos, image in sorted(self.keys.items()):
            sizes.setdefault(check_image_source(image, "keyframe"), pos)
            known[int(pos)] = load_frame(image, backbone, "keyframe")
        if len(sizes) > 1:
            (a, pa), (b, pb) = list(sizes.items())[:2]
            raise BadInput(f"keyframes differ in size: frame {pa} is {a[0]}x{a[1]}, frame {pb} is {b[0]}x{b[1]}")
        for start, clip in sorted(self.clips.items()):
            count = 0
            for offset, frame in enumerate(read_video(clip, backbone.width, backbone.height)):
                pos = int(start) + offset
                if pos >= self.length:
                    raise BadInput(f"clip {clip} at {start} runs past the end of the timeline ({self.length} frames)")
                if pos in known:
                    raise BadInput(f"clip {clip} at {start} overlaps a known frame at {pos}")
                known[pos] = frame
                count += 1
            if count == 0:
                raise BadInput(f"clip {clip} has no frames")
        return known

    def paths(self) -> list[Path]:
        return paths_of(*self.keys.values(), *self.clips.values())


@takes_run_options
def infill(
    timeline: Keyframes,
    prompt: Prompt,
    *,
    order: str = "inward",
    loop: bool = False,
    backbone: Backbone | None = None,
    options: RunOptions,
) -> PlannedRun:
    """Plan the generation of every frame of `timeline` that is not known. `loop=True` treats the
    timeline as a circle: the frames after the last key lead into the first key."""
    if not isinstance(timeline, Keyframes):
        raise BadInput(f"timeline must be a vidzero.Keyframes, got {type(timeline).__name__}")
    choice(order, "order", FILL_ORDERS)
    timeline.check()
    o, bb = setup(options, backbone)
    known = timeline.load(bb)
    jobs = plan_timeline(timeline.length, set(known), bb.frames, order, o.new_per_window, loop=bool(loop))
    inputs = {
        "keys": {k: source_name(v) for k, v in timeline.keys.items()},
        "clips": {k: str(v) for k, v in timeline.clips.items()},
        "order": order,
        "loop": bool(loop),
    }
    return planned(
        "infill",
        o,
        bb,
        jobs,
        timeline.length,
        known,
        schedule(prompt, timeline.length),
        inputs,
        input_paths=timeline.paths(),
    )


def infill_between(start: ImageLike, end: ImageLike, prompt: str, frames: int = 16, **kwargs) -> PlannedRun:
    """Both ends known: `frames` in total, the first and last given (other keywords: see infill)."""
    frame_count(frames, "frames", 3)
    return infill(Keyframes(frames, {0: start, frames - 1: end}), prompt, **kwargs)
