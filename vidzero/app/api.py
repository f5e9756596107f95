"""The Python API: one function per task, with every input and option as a keyword parameter.

    import vidzero
    run = vidzero.extend("cat.png", "a cat turning its head", frames=32, steps=10, seed=1)
    for frame in run:            # frames stream out as they are made
        ...                      # frame.image is (H, W, 3) uint8
    run.save("cat.mp4")          # writes the frames made above: nothing is generated twice

Each function builds the task's inputs and the run options it was given, and starts the run
the same way the CLI and a batch job line do (vidzero.tasks.build_spec, vidzero.tasks.start).
The option parameters are the option table's fields (vidzero.runs.options.RunOptions, where
their defaults and help live); None leaves an option at its default. `generator=` takes a
torch.Generator whose initial_seed() becomes the run seed, as diffusers' pipelines do.

The module runs past 400 lines because every function spells out every option: a reader and an
IDE see the real keyword parameters, and tests/test_tables.py holds each list to the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from vidzero.core.backbone import Backbone
from vidzero.core.timeline import Prompt
from vidzero.errors import BadInput
from vidzero.runs.options import RunOptions, frame_count
from vidzero.runs.run import PlannedRun
from vidzero.tasks import build_spec, start
from vidzero.tasks.common import ImageSource
from vidzero.tasks.extend import ExtendInputs
from vidzero.tasks.generate import GenerateInputs
from vidzero.tasks.infill import InfillInputs
from vidzero.tasks.predict import PredictInputs
from vidzero.tasks.reroll import RerollInputs

OPTION_NAMES = tuple(f.name for f in fields(RunOptions))


def given_options(arguments: dict[str, Any], generator: torch.Generator | None) -> tuple[RunOptions, set[str]]:
    """The run options among a task function's arguments (those not None), and their names."""
    values = {name: arguments[name] for name in OPTION_NAMES if arguments.get(name) is not None}
    if isinstance(values.get("dtype"), torch.dtype):
        values["dtype"] = str(values["dtype"]).removeprefix("torch.")
    if generator is not None:
        if "seed" in values:
            raise BadInput("give seed or generator, not both")
        if not isinstance(generator, torch.Generator):
            raise BadInput("generator must be a torch.Generator")
        values["seed"] = int(generator.initial_seed())
    return RunOptions.given(values), set(values)


def planned(inputs: Any, arguments: dict[str, Any]) -> PlannedRun:
    options, given = given_options(arguments, arguments.get("generator"))
    return start(build_spec(inputs, options, given), arguments.get("backbone"))


def generate(
    prompt: Prompt,
    frames: int | None = None,
    *,
    backbone: Backbone | None = None,
    generator: torch.Generator | None = None,
    # run options (the model and how it loads): None leaves the option table's default (vidzero.runs.options)
    model: str | None = None,
    device: str | None = None,
    dtype: str | torch.dtype | None = None,
    variant: str | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    download: bool | None = None,
    offload: str | None = None,
    vae_tiling: bool | None = None,
    attention_slicing: bool | None = None,
    forward_chunking: int | None = None,
    compile: bool | None = None,
    vae_slice: int | None = None,
    window: int | None = None,
    height: int | None = None,
    width: int | None = None,
    # run options (the sampler): None leaves the option table's default (vidzero.runs.options)
    preset: str | None = None,
    steps: int | None = None,
    resample: int | None = None,
    resample_steps: int | None = None,
    guidance: float | None = None,
    guidance_steps: str | None = None,
    eta: float | None = None,
    init: str | None = None,
    replace_steps: int | None = None,
    rectify: float | None = None,
    given_start: int | None = None,
    new_per_window: int | None = None,
    queue: str | None = None,
    seed: int | None = None,
    negative_prompt: str | None = None,
    # run options (the output): None leaves the option table's default (vidzero.runs.options)
    fps: float | None = None,
    deflicker: bool | None = None,
    codec: str | None = None,
    crf: int | None = None,
    # run options (Python only): None leaves the option table's default (vidzero.runs.options)
    callback: Callable[..., object] | None = None,
    output_type: str | None = None,
    progress: Any = None,
) -> PlannedRun:
    """Plan a text-to-video run (no known frames); iterate it for frames or call `.save(path)`."""
    return planned(GenerateInputs(prompt, frames), locals())


def extend(
    image: ImageSource,
    prompt: Prompt,
    frames: int | None = None,
    *,
    loop: bool = False,
    backbone: Backbone | None = None,
    generator: torch.Generator | None = None,
    # run options (the model and how it loads): None leaves the option table's default (vidzero.runs.options)
    model: str | None = None,
    device: str | None = None,
    dtype: str | torch.dtype | None = None,
    variant: str | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    download: bool | None = None,
    offload: str | None = None,
    vae_tiling: bool | None = None,
    attention_slicing: bool | None = None,
    forward_chunking: int | None = None,
    compile: bool | None = None,
    vae_slice: int | None = None,
    window: int | None = None,
    height: int | None = None,
    width: int | None = None,
    # run options (the sampler): None leaves the option table's default (vidzero.runs.options)
    preset: str | None = None,
    steps: int | None = None,
    resample: int | None = None,
    resample_steps: int | None = None,
    guidance: float | None = None,
    guidance_steps: str | None = None,
    eta: float | None = None,
    init: str | None = None,
    replace_steps: int | None = None,
    rectify: float | None = None,
    given_start: int | None = None,
    new_per_window: int | None = None,
    queue: str | None = None,
    seed: int | None = None,
    negative_prompt: str | None = None,
    # run options (the output): None leaves the option table's default (vidzero.runs.options)
    fps: float | None = None,
    deflicker: bool | None = None,
    codec: str | None = None,
    crf: int | None = None,
    # run options (Python only): None leaves the option table's default (vidzero.runs.options)
    callback: Callable[..., object] | None = None,
    output_type: str | None = None,
    progress: Any = None,
) -> PlannedRun:
    """Plan an image-to-video run; iterate it for frames or call `.save(path)`.

    `frames` is the total length including the image (default: the backbone's window, 1 + 15
    frames on ModelScope T2V). `loop=True` makes a seamless loop: the windows near the end see
    the first frames as the ones that follow, so the last frame leads into the first.
    """
    return planned(ExtendInputs(image, prompt, frames, loop), locals())


def extend_from(
    state: str | Path,
    frames: int | None = None,
    prompt: Prompt | None = None,
    *,
    backbone: Backbone | None = None,
    generator: torch.Generator | None = None,
    # run options (the model and how it loads): None leaves the option table's default (vidzero.runs.options)
    model: str | None = None,
    device: str | None = None,
    dtype: str | torch.dtype | None = None,
    variant: str | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    download: bool | None = None,
    offload: str | None = None,
    vae_tiling: bool | None = None,
    attention_slicing: bool | None = None,
    forward_chunking: int | None = None,
    compile: bool | None = None,
    vae_slice: int | None = None,
    window: int | None = None,
    height: int | None = None,
    width: int | None = None,
    # run options (the sampler): None leaves the option table's default (vidzero.runs.options)
    preset: str | None = None,
    steps: int | None = None,
    resample: int | None = None,
    resample_steps: int | None = None,
    guidance: float | None = None,
    guidance_steps: str | None = None,
    eta: float | None = None,
    init: str | None = None,
    replace_steps: int | None = None,
    rectify: float | None = None,
    given_start: int | None = None,
    new_per_window: int | None = None,
    queue: str | None = None,
    seed: int | None = None,
    negative_prompt: str | None = None,
    # run options (the output): None leaves the option table's default (vidzero.runs.options)
    fps: float | None = None,
    deflicker: bool | None = None,
    codec: str | None = None,
    crf: int | None = None,
    # run options (Python only): None leaves the option table's default (vidzero.runs.options)
    callback: Callable[..., object] | None = None,
    output_type: str | None = None,
    progress: Any = None,
) -> PlannedRun:
    """Continue a finished run from its final state (`OUT.state.safetensors`) by `frames` new
    frames, as one longer run would have gone on; options not given are the finished run's."""
    return planned(ExtendInputs(None, prompt, frames, from_state=Path(state)), locals())


def predict(
    clip: str | Path,
    prompt: Prompt,
    frames: int = 15,
    *,
    from_frame: int = 0,
    to_frame: int | None = None,
    new_only: bool = False,
    backbone: Backbone | None = None,
    generator: torch.Generator | None = None,
    # run options (the model and how it loads): None leaves the option table's default (vidzero.runs.options)
    model: str | None = None,
    device: str | None = None,
    dtype: str | torch.dtype | None = None,
    variant: str | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    download: bool | None = None,
    offload: str | None = None,
    vae_tiling: bool | None = None,
    attention_slicing: bool | None = None,
    forward_chunking: int | None = None,
    compile: bool | None = None,
    vae_slice: int | None = None,
    window: int | None = None,
    height: int | None = None,
    width: int | None = None,
    # run options (the sampler): None leaves the option table's default (vidzero.runs.options)
    preset: str | None = None,
    steps: int | None = None,
    resample: int | None = None,
    resample_steps: int | None = None,
    guidance: float | None = None,
    guidance_steps: str | None = None,
    eta: float | None = None,
    init: str | None = None,
    replace_steps: int | None = None,
    rectify: float | None = None,
    given_start: int | None = None,
    new_per_window: int | None = None,
    queue: str | None = None,
    seed: int | None = None,
    negative_prompt: str | None = None,
    # run options (the output): None leaves the option table's default (vidzero.runs.options)
    fps: float | None = None,
    deflicker: bool | None = None,
    codec: str | None = None,
    crf: int | None = None,
    # run options (Python only): None leaves the option table's default (vidzero.runs.options)
    callback: Callable[..., object] | None = None,
    output_type: str | None = None,
    progress: Any = None,
) -> PlannedRun:
    """Plan the continuation of a real clip by `frames` new frames (from its frames
    `from_frame`..`to_frame`); the clip's frame rate is kept unless `fps` is given."""
    return planned(PredictInputs(Path(clip), prompt, frames, from_frame, to_frame, new_only), locals())


def infill(
    prompt: Prompt,
    frames: int = 16,
    *,
    keys: dict[int, ImageSource] | None = None,
    clips: dict[int, str | Path] | None = None,
    order: str = "inward",
    loop: bool = False,
    backbone: Backbone | None = None,
    generator: torch.Generator | None = None,
    # run options (the model and how it loads): None leaves the option table's default (vidzero.runs.options)
    model: str | None = None,
    device: str | None = None,
    dtype: str | torch.dtype | None = None,
    variant: str | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    download: bool | None = None,
    offload: str | None = None,
    vae_tiling: bool | None = None,
    attention_slicing: bool | None = None,
    forward_chunking: int | None = None,
    compile: bool | None = None,
    vae_slice: int | None = None,
    window: int | None = None,
    height: int | None = None,
    width: int | None = None,
    # run options (the sampler): None leaves the option table's default (vidzero.runs.options)
    preset: str | None = None,
    steps: int | None = None,
    resample: int | None = None,
    resample_steps: int | None = None,
    guidance: float | None = None,
    guidance_steps: str | None = None,
    eta: float | None = None,
    init: str | None = None,
    replace_steps: int | None = None,
    rectify: float | None = None,
    given_start: int | None = None,
    new_per_window: int | None = None,
    queue: str | None = None,
    seed: int | None = None,
    negative_prompt: str | None = None,
    # run options (the output): None leaves the option table's default (vidzero.runs.options)
    fps: float | None = None,
    deflicker: bool | None = None,
    codec: str | None = None,
    crf: int | None = None,
    # run options (Python only): None leaves the option table's default (vidzero.runs.options)
    callback: Callable[..., object] | None = None,
    output_type: str | None = None,
    progress: Any = None,
) -> PlannedRun:
    """Plan the generation of every frame of a timeline of `frames` frames that is not known:
    `keys` are still images at their positions, `clips` real clips placed from theirs. Gaps fill
    `inward` (from both ends) or `forward`; `loop=True` treats the timeline as a circle."""
    return planned(
        InfillInputs(prompt, frames, dict(keys or {}), {k: Path(v) for k, v in (clips or {}).items()}, order, loop),
        locals(),
    )


def infill_between(
    start: ImageSource,
    end: ImageSource,
    prompt: Prompt,
    frames: int = 16,
    *,
    order: str = "inward",
    loop: bool = False,
    backbone: Backbone | None = None,
    generator: torch.Generator | None = None,
    # run options (the model and how it loads): None leaves the option table's default (vidzero.runs.options)
    model: str | None = None,
    device: str | None = None,
    dtype: str | torch.dtype | None = None,
    variant: str | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    download: bool | None = None,
    offload: str | None = None,
    vae_tiling: bool | None = None,
    attention_slicing: bool | None = None,
    forward_chunking: int | None = None,
    compile: bool | None = None,
    vae_slice: int | None = None,
    window: int | None = None,
    height: int | None = None,
    width: int | None = None,
    # run options (the sampler): None leaves the option table's default (vidzero.runs.options)
    preset: str | None = None,
    steps: int | None = None,
    resample: int | None = None,
    resample_steps: int | None = None,
    guidance: float | None = None,
    guidance_steps: str | None = None,
    eta: float | None = None,
    init: str | None = None,
    replace_steps: int | None = None,
    rectify: float | None = None,
    given_start: int | None = None,
    new_per_window: int | None = None,
    queue: str | None = None,
    seed: int | None = None,
    negative_prompt: str | None = None,
    # run options (the output): None leaves the option table's default (vidzero.runs.options)
    fps: float | None = None,
    deflicker: bool | None = None,
    codec: str | None = None,
    crf: int | None = None,
    # run options (Python only): None leaves the option table's default (vidzero.runs.options)
    callback: Callable[..., object] | None = None,
    output_type: str | None = None,
    progress: Any = None,
) -> PlannedRun:
    """Both ends known: `frames` in total, the first and the last given."""
    last = frame_count(frames, "frames", 3) - 1
    return planned(InfillInputs(prompt, frames, {0: start, last: end}, {}, order, loop), locals())


def reroll(
    run: str | Path,
    frames: str,
    *,
    prompt: str | None = None,
    backbone: Backbone | None = None,
    generator: torch.Generator | None = None,
    # run options (the model and how it loads): None leaves the option table's default (vidzero.runs.options)
    model: str | None = None,
    device: str | None = None,
    dtype: str | torch.dtype | None = None,
    variant: str | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    download: bool | None = None,
    offload: str | None = None,
    vae_tiling: bool | None = None,
    attention_slicing: bool | None = None,
    forward_chunking: int | None = None,
    compile: bool | None = None,
    vae_slice: int | None = None,
    window: int | None = None,
    height: int | None = None,
    width: int | None = None,
    # run options (the sampler): None leaves the option table's default (vidzero.runs.options)
    preset: str | None = None,
    steps: int | None = None,
    resample: int | None = None,
    resample_steps: int | None = None,
    guidance: float | None = None,
    guidance_steps: str | None = None,
    eta: float | None = None,
    init: str | None = None,
    replace_steps: int | None = None,
    rectify: float | None = None,
    given_start: int | None = None,
    new_per_window: int | None = None,
    queue: str | None = None,
    seed: int | None = None,
    negative_prompt: str | None = None,
    # run options (the output): None leaves the option table's default (vidzero.runs.options)
    fps: float | None = None,
    deflicker: bool | None = None,
    codec: str | None = None,
    crf: int | None = None,
    # run options (Python only): None leaves the option table's default (vidzero.runs.options)
    callback: Callable[..., object] | None = None,
    output_type: str | None = None,
    progress: Any = None,
) -> PlannedRun:
    """Plan the regeneration of frames A..B (`frames="A-B"`, output frame numbers) of a finished
    run, with its own options and seed + 1 (or `seed`); only how the model loads may change."""
    return planned(RerollInputs(Path(run), frames, prompt), locals())
