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
from vidzero.engine import Progress
from vidzero.errors import BadInput
from vidzero.io import read_video, video_info
from vidzero.run import PlannedRun
from vidzero.timeline import plan_prefix

from .common import Prompt, RunOptions, schedule


def predict(
    clip: str | Path,
    prompt: Prompt,
    frames: int = 15,
    *,
    from_frame: int = 0,
    to_frame: int | None = None,
    new_only: bool = False,
    backbone: Backbone | None = None,
    progress: Progress | None = None,
    **options,
) -> PlannedRun:
    """Plan the continuation of `clip` by `frames` new frames."""
    if frames < 1:
        raise BadInput(f"--frames (new frames) must be at least 1, got {frames}")
    if from_frame < 0 or (to_frame is not None and to_frame <= from_frame):
        raise BadInput(f"bad frame range --from-frame {from_frame} --to-frame {to_frame}")
    info = video_info(clip)
    opts = RunOptions(**{"fps": info.get("fps") or 8.0, **options})
    opts.check()
    bb = opts.backbone(backbone)
    stream = itertools.islice(read_video(clip, bb.width, bb.height), from_frame, to_frame)
    context = list(deque(stream, maxlen=bb.frames - 1))  # only the last window-1 frames are kept
    if not context:
        raise BadInput(f"{clip} has no frames in the range [{from_frame}, {to_frame or 'end'})")
    length = len(context) + frames
    jobs = plan_prefix(length, len(context), bb.frames, opts.new_per_window)
    prompt = schedule(prompt, length)
    return PlannedRun(
        "predict", opts.engine(bb), jobs, length, dict(enumerate(context)), prompt, opts.negative_prompt, opts.fps,
        {"clip": str(clip), "from_frame": from_frame, "to_frame": to_frame, "context_frames": len(context), "new_only": new_only},
        progress, opts.deflicker_settings(), first_output=len(context) if new_only else 0,
    )
