"""`vidzero generate`: plain text-to-video on the engine, no known frames (the reference).

The first window is generated whole, exactly as the backbone's own diffusers pipeline would
(the parity test checks this); longer videos slide on from it like `extend`.
"""

from __future__ import annotations

from vidzero.backbone import Backbone
from vidzero.engine import Progress
from vidzero.run import PlannedRun
from vidzero.timeline import plan_prefix

from .common import Prompt, RunOptions, schedule


def generate(
    prompt: Prompt,
    frames: int | None = None,
    *,
    backbone: Backbone | None = None,
    progress: Progress | None = None,
    **options,
) -> PlannedRun:
    """Plan a text-to-video run; iterate the result for frames or call `.save(path)`.

    `frames` defaults to the backbone's window; options are those of `RunOptions`
    (resample defaults to 0 here: with nothing known there is nothing to harmonise with).
    """
    opts = RunOptions(**{"resample": 0, **options})
    opts.check()
    bb = opts.backbone(backbone)
    length = frames or bb.frames
    jobs = plan_prefix(length, 0, bb.frames, opts.new_per_window)
    prompt = schedule(prompt, length)
    return PlannedRun("generate", opts.engine(bb), jobs, length, {}, prompt, opts.negative_prompt, opts.fps, {}, progress,
        opts.deflicker_settings(),
    )
