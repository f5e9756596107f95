"""`vidzero predict`: continue a real clip.

The part of the clip to continue from (`from_frame` .. `to_frame`, default: the whole clip) is
read with PyAV and fitted to the backbone's size. Its last window-1 frames become the known
prefix of the timeline, and repeat-and-slide generates `frames` new ones. The output holds the
context frames followed by the new ones (`new_only` drops the context). The clip's frame rate
is kept.
"""

from __future__ import annotations

import itertools
from collections import deque
from pathlib import Path

from vidzero.backbone import Backbone
from vidzero.errors import BadInput
from vidzero.io import read_video, video_info
from vidzero.options import RunOptions, frame_count, integer, takes_run_options
from vidzero.run import PlannedRun
from vidzero.timeline import plan_prefix

from .common import Prompt, paths_of, planned, schedule, setup


@takes_run_options
def predict(
    clip: str | Path,
    prompt: Prompt,
    frames: int = 15,
    *,
    from_frame: int = 0,
    to_frame: int | None = None,
    new_only: bool = False,
    backbone: Backbone | None = None,
    options: RunOptions,
) -> PlannedRun:
    """Plan the continuation of `clip` by `frames` new frames."""
    frame_count(frames, "frames", 1)
    integer(from_frame, "from_frame", 0, 10**9)
    if to_frame is not None and integer(to_frame, "to_frame", 1, 10**9) <= from_frame:
        raise BadInput(f"{{option}} ({to_frame}) must be after from_frame ({from_frame})", "to_frame")
    info = video_info(clip)
    if options.fps == RunOptions.fps:
        options.fps = info.get("fps") or RunOptions.fps
    o, bb = setup(options, backbone)
    stream = itertools.islice(read_video(clip, bb.width, bb.height), from_frame, to_frame)
    context = list(deque(stream, maxlen=bb.frames - 1))  # only the last window-1 frames are kept
    if not context:
        raise BadInput(f"{clip} has no frames in the range [{from_frame}, {to_frame or 'end'})")
    length = len(context) + frames
    jobs = plan_prefix(length, len(context), bb.frames, o.new_per_window)
    inputs = {
        "clip": str(clip),
        "from_frame": from_frame,
        "to_frame": to_frame,
        "context_frames": len(context),
        "new_only": new_only,
    }
    return planned(
        "predict",
        o,
        bb,
        jobs,
        length,
        dict(enumerate(context)),
        schedule(prompt, length),
        inputs,
        input_paths=paths_of(clip),
        first_output=len(context) if new_only else 0,
    )
