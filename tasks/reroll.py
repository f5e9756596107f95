"""`vidzero reroll`: regenerate frames A..B of a finished run, keeping every other frame.

The run's manifest says how it was made (task, prompt, sampler, model, window, seed); the frames
outside A..B are read from the output and become the known frames of an infill that generates
A..B between them, with the original settings and a new seed (the original's + 1 unless given)
or a new prompt. Frames outside A..B are written exactly as read: byte-identical in a PNG-folder
output (video codecs re-encode them, within the codec's loss). The new manifest records what was
rerolled from what.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from vidzero.backbone import Backbone
from vidzero.engine import prompt_at
from vidzero.errors import BadInput
from vidzero.io import read_video
from vidzero.options import RunOptions, integer, text
from vidzero.outputs import clean_path, written_by_vidzero
from vidzero.run import PlannedRun
from vidzero.timeline import plan_timeline

from .common import planned, setup


def parse_range(frames: str | tuple[int, int]) -> tuple[int, int]:
    if isinstance(frames, tuple):
        return frames
    m = re.fullmatch(r"\s*([0-9]+)\s*(?:-\s*([0-9]+)\s*)?", str(frames))
    if not m:
        raise BadInput(f"{{option}} {frames!r} should look like A-B (frame numbers) or A", "frames")
    first = int(m.group(1))
    return first, int(m.group(2)) if m.group(2) else first


def reroll(
    output: str | Path,
    frames: str | tuple[int, int],
    *,
    seed: int | None = None,
    prompt: str | None = None,
    backbone: Backbone | None = None,
    progress: object = True,
    **loading: object,
) -> PlannedRun:
    """Plan the regeneration of frames A..B (inclusive, output frame numbers) of a finished run.
    `loading` may change how the model loads (device, dtype, offload, ...), not which model."""
    out = clean_path(output)
    if not out.exists():
        raise BadInput(f"run output not found: {out}")
    manifest = written_by_vidzero(out)
    if manifest is None or "options" not in manifest:
        raise BadInput(
            f"{out} has no vidzero manifest that matches it ({out.name}.manifest.json): only a finished "
            "vidzero run can be rerolled"
        )
    first, last = parse_range(frames)
    count = manifest["written_frames"]
    if not 0 <= first <= last < count:
        raise BadInput(f"{{option}} {first}-{last} is outside the run's {count} frames (0..{count - 1})", "frames")
    offset = manifest["frames"] - count  # frames before the output (predict --new-only, extend --from)
    given = {i - offset for i in manifest.get("given_frames", manifest["known_frames"]) if i >= offset}
    if given & set(range(first, last + 1)):
        raise BadInput(
            f"{{option}} {first}-{last} includes the run's given frame(s) "
            f"{sorted(given & set(range(first, last + 1)))}: reroll regenerates generated frames only",
            "frames",
        )
    if last - first + 1 >= count:
        raise BadInput("{option} covers the whole run: nothing is left to keep (run it again instead)", "frames")
    names = {f.name for f in dataclasses.fields(RunOptions)}
    options = RunOptions(**{k: v for k, v in manifest["options"].items() if k in names})
    for key, value in loading.items():
        if key not in names or key in ("model", "window", "height", "width"):
            raise BadInput(f"unknown argument {key!r} for reroll() (the model is the run's)")
        setattr(options, key, value)
    options.seed = integer(seed, "seed", 0, 2**63 - 1) if seed is not None else (manifest["seed"] + 1) % 2**63
    options.progress = progress
    o, bb = setup(options, backbone)
    model = manifest["model"]
    if (bb.frames, bb.height, bb.width) != (model["window"], model["height"], model["width"]):
        raise BadInput(
            f"{out} was made with a window of {model['window']} frames at {model['width']}x{model['height']}; "
            f"this model has {bb.frames} at {bb.width}x{bb.height}"
        )
    if backbone is None and bb.revision != model.get("revision"):
        raise BadInput(
            f"{out} was made with revision {model.get('revision')} of {model['id']}; the cache holds {bb.revision}"
        )
    video = list(read_video(out))
    if len(video) != count or video[0].shape[:2] != (bb.height, bb.width):
        raise BadInput(
            f"{out} holds {len(video)} frames of {video[0].shape[1]}x{video[0].shape[0]}; its manifest "
            f"says {count} of {bb.width}x{bb.height}"
        )
    known = {i: frame for i, frame in enumerate(video) if not first <= i <= last}
    loop = bool(manifest.get("inputs", {}).get("loop"))
    jobs = plan_timeline(count, set(known), bb.frames, "inward", o.new_per_window, loop=loop)
    schedule = (
        manifest["prompt"]
        if isinstance(manifest["prompt"], str)
        else {int(k): v for k, v in manifest["prompt"].items()}
    )
    new_prompt = text(prompt, "prompt") if prompt is not None else prompt_at(schedule, first + offset)
    inputs = {
        "reroll": {
            "from": str(out),
            "frames": [first, last],
            "original_task": manifest["task"],
            "original_fingerprint": manifest.get("fingerprint"),
            "original_seed": manifest["seed"],
        },
        "loop": loop,
    }
    o.fps = manifest["fps"]
    return planned("reroll", o, bb, jobs, count, known, new_prompt, inputs, input_paths=[out], report_known=given)
