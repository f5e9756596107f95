"""`vidzero generate`: plain text-to-video on the engine, no known frames (the reference).

The first window is generated whole, exactly as the backbone's own diffusers pipeline would
(the parity test checks this); longer videos slide on from it like `extend`.
"""

from __future__ import annotations

from vidzero.backbone import Backbone
from vidzero.options import RunOptions, frame_count, takes_run_options
from vidzero.run import PlannedRun
from vidzero.timeline import plan_prefix

from .common import Prompt, planned, schedule, setup


@takes_run_options
def generate(
    prompt: Prompt, frames: int | None = None, *, backbone: Backbone | None = None, options: RunOptions
) -> PlannedRun:
    """Plan a text-to-video run; iterate the result for frames or call `.save(path)`.

    `frames` defaults to the backbone's window. With nothing known there is nothing to harmonise
    with, so `resample` defaults to 0 here.
    """
    if options.resample is None:
        options.resample = 0
    if frames is not None:
        frame_count(frames, "frames", 2)
    o, bb = setup(options, backbone)
    length = frames or bb.frames
    jobs = plan_prefix(length, 0, bb.frames, o.new_per_window)
    return planned("generate", o, bb, jobs, length, {}, schedule(prompt, length), {})
