"""The task table: every task vidzero runs, its inputs, and how they become a timeline.

Each task is a layout of known frames on the one sampler. A task module holds its inputs (a
frozen dataclass whose fields carry their help text and command-line form) and its `layout`:
the timeline and window plan it makes of those inputs on a backbone. From this table the CLI
makes its commands (vidzero.app.cli), the batch reads its job lines (vidzero.app.batch) and the
studio its forms (`spec_from_fields`). Installed as `vidzero.tasks`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vidzero.errors import BadInput
from vidzero.runs.options import LOAD_OPTIONS, RunOptions
from vidzero.runs.spec import RunSpec, TaskPlan

from . import deflicker, extend, generate, infill, predict, reroll
from .common import FrameFormat

if TYPE_CHECKING:
    from vidzero.core.backbone import Backbone
    from vidzero.runs.run import PlannedRun


def keep(inputs: Any, options: RunOptions, given: set[str]) -> RunOptions:
    return options


@dataclass(frozen=True)
class Task:
    name: str
    inputs: type
    summary: str  # the command's help
    examples: tuple[str, ...]
    layout: Callable[[Any, FrameFormat, RunOptions], TaskPlan] | None  # None: no model runs (deflicker)
    inherit: Callable[[Any, RunOptions, set[str]], RunOptions] = keep  # options the inputs decide

    @property
    def generates(self) -> bool:
        return self.layout is not None


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            "generate",
            generate.GenerateInputs,
            "Plain text-to-video (no known frames): the reference the other tasks are measured against.",
            ("vidzero generate 'a red circle moving right' -o circle.mp4 --frames 32",),
            generate.layout,
            generate.inherit,
        ),
        Task(
            "extend",
            extend.ExtendInputs,
            "Image-to-video, and long video by repeat-and-slide (frames stream to the output as they are made).",
            (
                "vidzero extend cat.png 'a cat turning its head' -o cat.mp4",
                "vidzero extend start.png 'a red circle moving right' -o long.mp4 --frames 128",
                "vidzero extend --from long.mp4.state.safetensors -o more.mp4 --frames 32",
            ),
            extend.layout,
            extend.inherit,
        ),
        Task(
            "predict",
            predict.PredictInputs,
            "Continue a real clip: its last window-1 frames are the known prefix, then repeat-and-slide.",
            ("vidzero predict clip.mp4 'the ball keeps rolling' -o more.mp4 --frames 32",),
            predict.layout,
            predict.inherit,
        ),
        Task(
            "infill",
            infill.InfillInputs,
            "Fill the frames between known frames (two ends, keyframes, placed clips) zero-shot.",
            (
                "vidzero infill start.png end.png 'a red circle moving right' -o mid.mp4 --frames 16",
                "vidzero infill 'a red circle moving right' -o t.mp4 --frames 41 --key 0=a.png --key 20=b.png",
            ),
            infill.layout,
        ),
        Task(
            "reroll",
            reroll.RerollInputs,
            "Regenerate frames A..B of a finished run between the frames kept on both sides, with the run's own "
            "settings (its manifest); every other frame is kept.",
            ("vidzero reroll out.mp4 --frames 40-47 -o out-fixed.mp4 --seed 3",),
            reroll.layout,
            reroll.inherit,
        ),
        Task(
            "deflicker",
            deflicker.DeflickerInputs,
            "Remove brightness/colour flicker and jitter from a clip; write a flicker report (JSON + plot).",
            ("vidzero deflicker in.mp4 -o out.mp4 --anchor 0", "vidzero deflicker in.mp4 --report-only"),
            None,
        ),
    )
}


def task_of(name: Any) -> Task:
    if name not in TASKS:
        raise BadInput(f"unknown task {name!r} (use {', '.join(TASKS)})")
    return TASKS[name]


def build_spec(inputs: Any, options: RunOptions, given: set[str]) -> RunSpec:
    """The checked spec of a run: the task's own say on options it decides (`given`: the options
    the caller set), then every input and option checked."""
    task = task_of(inputs.task)
    return RunSpec.checked(inputs, task.inherit(inputs, options, given))


def read_inputs(task: str, record: Mapping[str, Any]) -> Any:
    """A task's inputs from a record (a manifest's, a state file's, a batch job line)."""
    return task_of(task).inputs.from_record(dict(record))  # type: ignore[attr-defined]


def spec_from_fields(task: str, inputs: Mapping[str, Any], options: Mapping[str, Any]) -> RunSpec:
    """The checked spec of a task from its inputs' record and the options a caller set (a batch
    job line, a studio form): the options not given keep the table's defaults."""
    return build_spec(read_inputs(task, inputs), RunOptions.given(dict(options)), set(options))


def load_for(options: RunOptions) -> Backbone:
    """The backbone the options name, loaded as they say."""
    from vidzero.models.families import load_backbone  # torch and diffusers: not on `vidzero --help`

    return load_backbone(options.load_options())


def load_key(options: RunOptions) -> tuple[str, ...]:
    """What names the model options load: options with one key share one model in memory."""
    return tuple(str(getattr(options, name)) for name in LOAD_OPTIONS)


class OneModel:
    """One loaded backbone at a time: the one the last options named, kept while the next
    options name the same model (a batch's jobs, a studio's runs)."""

    def __init__(self) -> None:
        self._held: tuple[tuple[str, ...], Backbone] | None = None

    def __call__(self, options: RunOptions) -> Backbone:
        key = load_key(options)
        if self._held is None or self._held[0] != key:
            self._held = None  # free the previous model first
            self._held = (key, load_for(options))
        return self._held[1]


def start(spec: RunSpec, backbone: Backbone | None = None) -> PlannedRun:
    """The planned run of a spec on a backbone (loaded from the options when not given)."""
    from vidzero.runs.run import PlannedRun  # torch: not on `vidzero --help`

    task = task_of(spec.task)
    if task.layout is None:
        raise BadInput(f"{spec.task} runs no model: it has no planned run")
    bb = backbone if backbone is not None else load_for(spec.options)
    if bb.temporal_stride > 1 and spec.options.queue != "latent":
        # a decode and re-encode through a causal VAE is no round trip of one frame: latent frames
        # that hold several video frames condition later windows as latents
        spec = spec.with_options(queue="latent")
    if spec.options.new_per_window is not None and spec.options.new_per_window > bb.frames - 1:
        raise BadInput(
            f"{{option}} must be between 1 and {bb.frames - 1} (the window minus one known slot), "
            f"got {spec.options.new_per_window}",
            "new_per_window",
        )
    plan = task.layout(spec.inputs, bb, spec.options)
    return PlannedRun(spec, plan, bb)


__all__ = [
    "TASKS",
    "OneModel",
    "Task",
    "TaskPlan",
    "build_spec",
    "load_key",
    "read_inputs",
    "spec_from_fields",
    "start",
    "task_of",
]
