"""The Python API: one function per task, its inputs as parameters and every run option as a keyword.

    import vidzero
    run = vidzero.extend("cat.png", "a cat turning its head", frames=32, steps=10, seed=1)
    for frame in run:            # frames stream out as they are made
        ...                      # frame.image is (H, W, 3) uint8
    run.save("cat.mp4")          # writes the frames made above: nothing is generated twice

Each function builds the task's inputs and the run options it was given, and starts the run
the same way the CLI and a batch job line do (vidzero.tasks.build_spec, vidzero.tasks.start).
The run options are declared once, as `RunOptionsDict` (one key per field of the option table,
vidzero.runs.options.RunOptions, where their defaults and help live; tests/test_tables.py holds
the two together): every function takes them as `**options: Unpack[RunOptionsDict]`, so IDEs and
mypy see every keyword, and a misspelt one is a TypeError as in any Python call. None leaves an
option at its default. `generator=` takes a torch.Generator whose initial_seed() becomes the run
seed, as diffusers' pipelines do, and diffusers' own names are taken for vidzero's (`ALIASES`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from typing_extensions import TypedDict, Unpack

from vidzero.core.backbone import Backbone
from vidzero.core.timeline import Prompt
from vidzero.errors import BadInput
from vidzero.runs.options import RunOptions, frame_count
from vidzero.runs.run import PlannedRun
from vidzero.tasks import build_spec, start
from vidzero.tasks.common import ImageSource, mask_inputs, path_inputs
from vidzero.tasks.extend import ExtendInputs
from vidzero.tasks.generate import GenerateInputs
from vidzero.tasks.infill import InfillInputs
from vidzero.tasks.predict import PredictInputs
from vidzero.tasks.reroll import RerollInputs


class RunOptionsDict(TypedDict, total=False):
    """The run options as keywords: the option table's fields (vidzero.runs.options.RunOptions,
    with their help and defaults), and the names diffusers' pipelines use for some of them."""

    # the model and how it loads
    model: str | None
    device: str | None
    dtype: str | torch.dtype | None
    variant: str | None
    revision: str | None
    cache_dir: str | Path | None
    download: bool | None
    offload: str | None
    vae_tiling: bool | None
    attention_slicing: bool | None
    forward_chunking: int | None
    compile: bool | None
    vae_slice: int | None
    window: int | None
    height: int | None
    width: int | None
    lora: str | Path | tuple[str | Path, float] | list[str] | Sequence[Any] | None
    lora_2: str | Path | tuple[str | Path, float] | list[str] | Sequence[Any] | None
    cache: str | None
    # the sampler
    preset: str | None
    steps: int | None
    resample: int | None
    resample_steps: int | None
    guidance: float | None
    guidance_2: float | None
    guidance_steps: str | None
    eta: float | None
    init: str | None
    replace_steps: int | None
    rectify: float | None
    given_start: int | None
    reconstruction: float | None
    dps: float | None
    posterior_steps: str | None
    generated_weight: float | None
    known_noise: str | None
    patch_swap: float | None
    target: str | None
    target_steps: str | None
    target_frames: str | None
    new_per_window: int | None
    queue: str | None
    seed: int | None
    negative_prompt: str | None
    # the output
    fps: float | None
    deflicker: bool | None
    codec: str | None
    crf: int | None
    # Python only
    callback: Callable[..., object] | None
    output_type: str | None
    progress: Any
    # diffusers' names (ALIASES)
    num_inference_steps: int | None
    guidance_scale: float | None
    guidance_scale_2: float | None
    torch_dtype: str | torch.dtype | None
    callback_on_step_end: Callable[..., object] | None


class CountedOptionsDict(RunOptionsDict, total=False):
    """The run options of a task with a frame count, which diffusers calls `num_frames`."""

    num_frames: int | None


# diffusers' keyword -> vidzero's (a run option, or a task's `frames`)
ALIASES = {
    "num_inference_steps": "steps",
    "guidance_scale": "guidance",
    "guidance_scale_2": "guidance_2",
    "torch_dtype": "dtype",
    "callback_on_step_end": "callback",
    "num_frames": "frames",
}
OPTION_NAMES = tuple(f.name for f in fields(RunOptions))
# a motion path: text "X,Y X,Y@F ...", or (x, y[, frame]) points; or a list of paths, one per object
PathsGiven = str | Sequence[Any] | None
MasksGiven = str | Path | np.ndarray | Sequence[str | Path | np.ndarray] | None


def diffusers_step_callback(callback: Callable[..., object]) -> Callable[..., object]:
    """A diffusers `callback_on_step_end(pipe, step_index, timestep, callback_kwargs)` called the
    way a pipeline calls it, with the window's latents in callback_kwargs; what it returns is
    not used (vidzero's own `callback` returns False to stop a run)."""

    def on_step(info: Any) -> None:
        callback(None, info.step - 1, info.timestep, {"latents": info.latents})

    return on_step


def resolve_keywords(function: str, options: Mapping[str, Any], frames: Any = None) -> tuple[dict[str, Any], Any]:
    """The options under vidzero's names, and the frame count (`frames` or `num_frames`). A
    keyword that is neither an option nor an alias is a TypeError, as Python raises for any
    function; a name given twice (under both names) is a BadInput."""
    allowed = set(OPTION_NAMES) | set(ALIASES)
    for name in options:
        if name not in allowed or (name == "num_frames" and function == "reroll"):
            raise TypeError(f"{function}() got an unexpected keyword argument {name!r}")
    values = {k: v for k, v in options.items() if k not in ALIASES}
    for alias, name in ALIASES.items():
        if options.get(alias) is None:
            continue
        given = frames if name == "frames" else values.get(name)
        if given is not None:
            raise BadInput(f"give {name} or {alias}, not both")
        value = options[alias]
        if alias == "callback_on_step_end":
            if not callable(value):
                raise BadInput("{option} must be callable: (pipe, step_index, timestep, callback_kwargs)", alias)
            value = diffusers_step_callback(value)
        if name == "frames":
            frames = value
        else:
            values[name] = value
    return values, frames


def given_options(values: dict[str, Any], generator: torch.Generator | None) -> tuple[RunOptions, set[str]]:
    """The run options given (those not None), and their names."""
    values = {name: value for name, value in values.items() if value is not None}
    if isinstance(values.get("dtype"), torch.dtype):
        values["dtype"] = str(values["dtype"]).removeprefix("torch.")
    if generator is not None:
        if "seed" in values:
            raise BadInput("give seed or generator, not both")
        if not isinstance(generator, torch.Generator):
            raise BadInput("generator must be a torch.Generator")
        values["seed"] = int(generator.initial_seed())
    return RunOptions.given(values), set(values)


def input_default(inputs: type, name: str) -> Any:
    """The default of a task input, from its dataclass (where it is written once)."""
    return next(f.default for f in fields(inputs) if f.name == name)


def planned(
    inputs: Any, options: dict[str, Any], backbone: Backbone | None, generator: torch.Generator | None
) -> PlannedRun:
    run_options, given = given_options(options, generator)
    return start(build_spec(inputs, run_options, given), backbone)


def generate(
    prompt: Prompt,
    frames: int | None = None,
    *,
    backbone: Backbone | None = None,
    generator: torch.Generator | None = None,
    **options: Unpack[CountedOptionsDict],
) -> PlannedRun:
    """Plan a text-to-video run (no known frames); iterate it for frames or call `.save(path)`."""
    values, frames = resolve_keywords("generate", options, frames)
    return planned(GenerateInputs(prompt, frames), values, backbone, generator)


def extend(
    image: ImageSource,
    prompt: Prompt,
    frames: int | None = None,
    *,
    loop: bool = False,
    path: PathsGiven = None,
    mask: MasksGiven = None,
    backbone: Backbone | None = None,
    generator: torch.Generator | None = None,
    **options: Unpack[CountedOptionsDict],
) -> PlannedRun:
    """Plan an image-to-video run; iterate it for frames or call `.save(path)`.

    `frames` is the total length including the image (default: the backbone's window, 1 + 15
    frames on ModelScope T2V). `loop=True` makes a seamless loop: the windows near the end see
    the first frames as the ones that follow, so the last frame leads into the first. `path`
    moves the object under its first point along it: `[(x, y), (x, y, frame), ...]` in the
    image's pixels, or a list of such paths (one per object), or text `"X,Y X,Y@F ..."`;
    `mask` gives each path's object as a mask of the image's size (default: found).
    """
    values, frames = resolve_keywords("extend", options, frames)
    inputs = ExtendInputs(image, prompt, frames, loop, path=path_inputs(path), mask=mask_inputs(mask))
    return planned(inputs, values, backbone, generator)


def extend_from(
    state: str | Path,
    frames: int | None = None,
    prompt: Prompt | None = None,
    *,
    backbone: Backbone | None = None,
    generator: torch.Generator | None = None,
    **options: Unpack[CountedOptionsDict],
) -> PlannedRun:
    """Continue a finished run from its final state (`OUT.state.safetensors`) by `frames` new
    frames, as one longer run would have gone on; options not given are the finished run's."""
    values, frames = resolve_keywords("extend_from", options, frames)
    return planned(ExtendInputs(None, prompt, frames, from_state=Path(state)), values, backbone, generator)


def predict(
    clip: str | Path,
    prompt: Prompt,
    frames: int | None = None,
    *,
    from_frame: int = 0,
    to_frame: int | None = None,
    new_only: bool = False,
    path: PathsGiven = None,
    mask: MasksGiven = None,
    backbone: Backbone | None = None,
    generator: torch.Generator | None = None,
    **options: Unpack[CountedOptionsDict],
) -> PlannedRun:
    """Plan the continuation of a real clip by `frames` new frames (from its frames
    `from_frame`..`to_frame`); the clip's frame rate is kept unless `fps` is given. `path` and
    `mask` as for `extend`, in the clip's pixels, starting on the last frame of the context."""
    values, frames = resolve_keywords("predict", options, frames)
    frames = input_default(PredictInputs, "frames") if frames is None else frames
    inputs = PredictInputs(
        Path(clip), prompt, frames, from_frame, to_frame, new_only, path_inputs(path), mask_inputs(mask)
    )
    return planned(inputs, values, backbone, generator)


def infill(
    prompt: Prompt,
    frames: int | None = None,
    *,
    keys: dict[int, ImageSource] | None = None,
    clips: dict[int, str | Path] | None = None,
    order: str = "inward",
    loop: bool = False,
    path: PathsGiven = None,
    mask: MasksGiven = None,
    backbone: Backbone | None = None,
    generator: torch.Generator | None = None,
    **options: Unpack[CountedOptionsDict],
) -> PlannedRun:
    """Plan the generation of every frame of a timeline of `frames` frames that is not known:
    `keys` are still images at their positions, `clips` real clips placed from theirs. Gaps fill
    `inward` (from both ends) or `forward`; `loop=True` treats the timeline as a circle. `path`
    and `mask` as for `extend`; a path starts on frame 0 or on the keyframe its first point pins."""
    values, frames = resolve_keywords("infill", options, frames)
    frames = input_default(InfillInputs, "frames") if frames is None else frames
    placed = {k: Path(v) for k, v in (clips or {}).items()}
    inputs = InfillInputs(prompt, frames, dict(keys or {}), placed, order, loop, path_inputs(path), mask_inputs(mask))
    return planned(inputs, values, backbone, generator)


def infill_between(
    start: ImageSource,
    end: ImageSource,
    prompt: Prompt,
    frames: int | None = None,
    *,
    order: str = "inward",
    loop: bool = False,
    path: PathsGiven = None,
    mask: MasksGiven = None,
    backbone: Backbone | None = None,
    generator: torch.Generator | None = None,
    **options: Unpack[CountedOptionsDict],
) -> PlannedRun:
    """Both ends known: `frames` in total, the first and the last given (`path` and `mask` as
    for `infill`)."""
    values, frames = resolve_keywords("infill_between", options, frames)
    frames = input_default(InfillInputs, "frames") if frames is None else frames
    last = frame_count(frames, "frames", 3) - 1
    inputs = InfillInputs(prompt, frames, {0: start, last: end}, {}, order, loop, path_inputs(path), mask_inputs(mask))
    return planned(inputs, values, backbone, generator)


def reroll(
    run: str | Path,
    frames: str,
    *,
    prompt: str | None = None,
    backbone: Backbone | None = None,
    generator: torch.Generator | None = None,
    **options: Unpack[RunOptionsDict],
) -> PlannedRun:
    """Plan the regeneration of frames A..B (`frames="A-B"`, output frame numbers) of a finished
    run, with its own options and seed + 1 (or `seed`); only how the model loads may change."""
    values, _ = resolve_keywords("reroll", options)
    return planned(RerollInputs(Path(run), frames, prompt), values, backbone, generator)
