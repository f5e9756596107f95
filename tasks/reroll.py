"""`vidzero reroll`: regenerate frames A..B of a finished run, keeping every other frame.

The run's manifest holds its record (task, inputs, options); the frames outside A..B are read
from the output and become the known frames of an infill that generates A..B between them,
with the original options and a new seed (the original's + 1 unless given) or a new prompt.
How the model loads (device, dtype, ...) may change, not which model. Frames outside A..B are
written exactly as read: byte-identical in a PNG-folder output (video codecs re-encode them,
within the codec's loss). The new manifest records what was rerolled from what.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from vidzero.core.timeline import Layout, latent_length, latent_slot, plan_timeline, prompt_at
from vidzero.errors import BadInput
from vidzero.media.outputs import MANIFEST, clean_path, read_once, sidecar, written_by_vidzero
from vidzero.runs.options import LOAD_OPTIONS, MAX_SEED, RunOptions, integer, text
from vidzero.runs.spec import TaskPlan, inp, read_fields

from .common import FrameFormat, place_video, read_schedule

# what may differ from the original run: how the model loads, and the seed
CHANGEABLE = frozenset(LOAD_OPTIONS) - {"model", "window", "height", "width", "revision", "variant"} | {"seed"}


def parse_range(frames: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*([0-9]+)\s*(?:-\s*([0-9]+)\s*)?", str(frames))
    if not m:
        raise BadInput(f"{{option}} {frames!r} should look like A-B (frame numbers) or A", "frames")
    first = int(m.group(1))
    return first, int(m.group(2)) if m.group(2) else first


@dataclass(frozen=True)
class RerollInputs:
    task: ClassVar[str] = "reroll"

    run: Path = inp("A finished vidzero output (its manifest says how it was made).", cli="argument")
    frames: str = inp("A-B: the frames to regenerate (output frame numbers, inclusive).", metavar="A-B")
    prompt: str | None = inp("A new prompt for the new frames (default: the run's at frame A).", None)

    def check(self) -> None:
        manifest = original(self.run)
        first, last = parse_range(self.frames)
        count = manifest["written_frames"]
        if not 0 <= first <= last < count:
            raise BadInput(f"{{option}} {first}-{last} is outside the run's {count} frames (0..{count - 1})", "frames")
        given = given_frames(manifest) & set(range(first, last + 1))
        if given:
            raise BadInput(
                f"{{option}} {first}-{last} includes the run's given frame(s) {sorted(given)}: reroll regenerates "
                "generated frames only",
                "frames",
            )
        if last - first + 1 >= count:
            raise BadInput("{option} covers the whole run: nothing is left to keep (run it again instead)", "frames")
        if self.prompt is not None:
            text(self.prompt, "prompt")

    def paths(self) -> list[Path]:
        return [Path(self.run)]

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> RerollInputs:
        values = read_fields(cls, record, "reroll")
        values["run"] = Path(values["run"])
        return cls(**values)


def run_files(run: Path) -> list[Path]:
    """What a reroll's record depends on: the output (each frame of a folder) and its manifest."""
    out = clean_path(run)
    return [out, sidecar(out, MANIFEST), *(sorted(out.iterdir()) if out.is_dir() else [])]


@functools.partial(read_once, files=run_files)
def original(run: Path) -> dict[str, Any]:
    """The manifest that proves vidzero made `run`, with the record of how."""
    out = clean_path(run)
    if not out.exists():
        raise BadInput(f"run output not found: {out}")
    manifest = written_by_vidzero(out)
    if manifest is None or "spec" not in manifest:
        raise BadInput(
            f"{out} has no vidzero manifest that matches it ({out.name}.manifest.json): only a finished "
            "vidzero run can be rerolled"
        )
    return checked_manifest(manifest, f"{out.name}.manifest.json")


def checked_manifest(m: dict[str, Any], name: str) -> dict[str, Any]:
    """The run record a reroll reads, each field of the type and range a run writes (the manifest
    proves the video is vidzero's, not that nobody edited the manifest since)."""

    def whole(value: Any, low: int, high: float) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise BadInput(f"{name} was edited or is damaged: {what}")

    need(whole(m.get("frames"), 1, 10**7), "'frames' must be a whole number of frames")
    need(whole(m.get("written_frames"), 1, m["frames"]), f"'written_frames' must be 1..{m['frames']}")
    given = m.get("given_frames")
    need(isinstance(given, list) and all(whole(i, 0, m["frames"] - 1) for i in given), "'given_frames' lists frames")
    fps = m.get("fps")
    need(isinstance(fps, (int, float)) and not isinstance(fps, bool) and 0 < fps <= 1000, "'fps' must be a rate")
    model = m.get("model")
    need(
        isinstance(model, dict) and all(whole(model.get(k), 1, 10**6) for k in ("window", "height", "width")),
        "'model' must record the window and frame size",
    )
    spec = m.get("spec")
    need(
        isinstance(spec, dict)
        and isinstance(spec.get("task"), str)
        and all(isinstance(spec.get(k), dict) for k in ("options", "inputs")),
        "'spec' must record the task, its inputs and options",
    )
    options = spec["options"] if isinstance(spec, dict) else {}
    need(whole(options.get("seed"), 0, MAX_SEED), "the options' 'seed' must be a whole number")
    need("prompt" in m, "'prompt' is missing")
    return m


def given_frames(manifest: dict[str, Any]) -> set[int]:
    """The original run's given frames, in output frame numbers."""
    offset = manifest["frames"] - manifest["written_frames"]  # frames before the output (predict --new-only, ...)
    return {i - offset for i in manifest["given_frames"] if i >= offset}


def inherit(inputs: RerollInputs, options: RunOptions, given: set[str]) -> RunOptions:
    """The original run's options; of the given ones only how the model loads, and the seed."""
    manifest = original(inputs.run)
    refused = sorted(given - CHANGEABLE)
    if refused:
        raise BadInput(f"reroll keeps the run's {refused[0]} (only how the model loads and the seed may change)")
    kept = RunOptions.from_record(manifest["spec"]["options"])
    seed = options.seed if "seed" in given else (manifest["spec"]["options"]["seed"] + 1) % (MAX_SEED + 1)
    integer(seed, "seed", 0, MAX_SEED)
    changes = {name: getattr(options, name) for name in given if name != "seed"}
    return replace(
        kept, **changes, seed=seed, fps=manifest["fps"], callback=options.callback, progress=options.progress
    )


def layout(inputs: RerollInputs, fmt: FrameFormat, options: RunOptions) -> TaskPlan:
    from vidzero.media.video import read_video  # PyAV: not on `vidzero --help`

    assert options.new_per_window is not None
    manifest = original(inputs.run)
    model = manifest["model"]
    if (fmt.frames, fmt.height, fmt.width) != (model["window"], model["height"], model["width"]):
        raise BadInput(
            f"{inputs.run} was made with a window of {model['window']} frames at {model['width']}x{model['height']}; "
            f"this model has {fmt.frames} at {fmt.width}x{fmt.height}"
        )
    first, last = parse_range(inputs.frames)
    count = manifest["written_frames"]
    video = list(read_video(inputs.run))
    if len(video) != count or video[0].shape[:2] != (fmt.height, fmt.width):
        raise BadInput(
            f"{inputs.run} holds {len(video)} frames of {video[0].shape[1]}x{video[0].shape[0]}; its manifest "
            f"says {count} of {fmt.width}x{fmt.height}"
        )
    known = {i: frame for i, frame in enumerate(video) if not first <= i <= last}
    loop = bool(manifest["spec"]["inputs"].get("loop"))
    offset = manifest["frames"] - count
    schedule = read_schedule(manifest["prompt"])
    prompt = inputs.prompt if inputs.prompt is not None else prompt_at(schedule, first + offset)
    if fmt.temporal_stride > 1:  # whole latent frames are regenerated; kept frames are written as read
        stride = fmt.temporal_stride
        redone = {latent_slot(v, stride) for v in range(first, last + 1)}
        outside = {v: f for v, f in known.items() if latent_slot(v, stride) not in redone}
        pixels, latents, placement = place_video(fmt, count, outside)
        placement.given = known
        length = latent_length(count, stride)
        jobs = plan_timeline(length, set(latents), fmt.frames, "inward", options.new_per_window, loop=loop)
        layout = Layout(length, pixels, jobs, prompt, known_latents=latents, video=placement)
        return TaskPlan(layout, details=details_of(inputs, manifest, loop))
    jobs = plan_timeline(count, set(known), fmt.frames, "inward", options.new_per_window, loop=loop)
    layout = Layout(count, known, jobs, prompt, given=given_frames(manifest))
    return TaskPlan(layout, details=details_of(inputs, manifest, loop))


def details_of(inputs: RerollInputs, manifest: dict[str, Any], loop: bool) -> dict[str, Any]:
    return {
        "from": str(inputs.run),
        "original_task": manifest["spec"]["task"],
        "original_fingerprint": manifest.get("fingerprint"),
        "original_seed": manifest["spec"]["options"]["seed"],
        "loop": loop,
        "revision": manifest["model"].get("revision"),
    }
