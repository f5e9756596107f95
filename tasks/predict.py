"""`vidzero predict`: continue a real clip.

The part of the clip to continue from (`from_frame` .. `to_frame`, default: the whole clip) is
read with PyAV and fitted to the backbone's size. Its last window-1 frames become the known
prefix of the timeline, and repeat-and-slide generates `frames` new ones. The output holds the
context frames followed by the new ones (`new_only` drops the context). The clip's frame rate is
kept unless `fps` is given.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from vidzero.core.timeline import Layout, Prompt, latent_length, plan_prefix
from vidzero.errors import BadInput
from vidzero.runs.options import RunOptions, frame_count, integer
from vidzero.runs.spec import PROMPT_AT, CliParam, TaskPlan, inp, read_fields, with_schedule

from .common import (
    MASK_HELP,
    PATH_HELP,
    FrameFormat,
    check_paths,
    check_schedule,
    mask_inputs,
    object_paths,
    path_inputs,
    paths_of,
    place_video,
    read_schedule,
)

if TYPE_CHECKING:
    from vidzero.core.targets import ObjectPath


@dataclass(frozen=True)
class PredictInputs:
    task: ClassVar[str] = "predict"

    clip: Path = inp("The real clip to continue (video file or folder of frames).", cli="argument")
    prompt: Prompt = inp("What happens next (text, or a schedule {first frame: text}).", cli=None)
    frames: int = inp("Number of new frames.", 15, metavar="N")
    from_frame: int = inp("First frame of the part of the clip to continue from.", 0)
    to_frame: int | None = inp("End (exclusive) of that part (default: the clip's end).", None)
    new_only: bool = inp("Write only the new frames, not the context.", False)
    path: tuple[str, ...] = inp(PATH_HELP + " Paths start on the last frame of the context.", (), metavar="PATH")
    mask: tuple[Any, ...] = inp(MASK_HELP, (), metavar="FILE")

    cli_params: ClassVar[tuple[CliParam, ...]] = (CliParam("prompt", str, "What happens next.", "argument"), PROMPT_AT)

    @classmethod
    def from_cli(cls, values: dict) -> PredictInputs:
        prompt = with_schedule(values["prompt"], values["prompt_at"])
        return cls(
            values["clip"],
            prompt,
            values["frames"],
            values["from_frame"],
            values["to_frame"],
            values["new_only"],
            path_inputs(values["path"]),
            mask_inputs(values["mask"]),
        )

    def check(self) -> None:
        from vidzero.media.video import video_info  # PyAV: not on `vidzero --help`

        frame_count(self.frames, "frames", 1)
        integer(self.from_frame, "from_frame", 0, 10**9)
        if self.to_frame is not None and integer(self.to_frame, "to_frame", 1, 10**9) <= self.from_frame:
            raise BadInput(f"{{option}} ({self.to_frame}) must be after from_frame ({self.from_frame})", "to_frame")
        check_schedule(self.prompt)
        check_paths(self.path, self.mask)
        video_info(self.clip)

    def paths(self) -> list[Path]:
        return paths_of(self.clip, *self.mask)

    @classmethod
    def from_record(cls, record: dict) -> PredictInputs:
        values = read_fields(cls, record, "predict")
        values["clip"] = Path(values["clip"])
        values["prompt"] = read_schedule(values["prompt"])
        values["path"], values["mask"] = path_inputs(values.get("path")), mask_inputs(values.get("mask"))
        return cls(**values)


def inherit(inputs: PredictInputs, options: RunOptions, given: set[str]) -> RunOptions:
    """The clip's own frame rate, unless fps is given."""
    from vidzero.media.video import video_info

    if "fps" in given:
        return options
    return replace(options, fps=video_info(inputs.clip).get("fps") or options.fps)


def layout(inputs: PredictInputs, fmt: FrameFormat, options: RunOptions) -> TaskPlan:
    from vidzero.media.video import read_video

    assert options.new_per_window is not None
    stride = fmt.temporal_stride
    keep = 1 + stride * (fmt.frames - 2)  # the video frames of window-1 latent frames
    stream = itertools.islice(read_video(inputs.clip, fmt.width, fmt.height), inputs.from_frame, inputs.to_frame)
    context = list(deque(stream, maxlen=keep))  # only the last window-1 (latent) frames are kept
    if not context:
        raise BadInput(f"{inputs.clip} has no frames in the range [{inputs.from_frame}, {inputs.to_frame or 'end'})")
    if stride > 1:  # whole latent frames of context (1 + 4k video frames), encoded as one clip
        object_paths(inputs.path, inputs.mask, context[-1], (fmt.width, fmt.height), fmt, 0, 0)  # refused
        context = context[(len(context) - 1) % stride :]
        video_length = len(context) + inputs.frames
        pixels, latents, video = place_video(fmt, video_length, dict(enumerate(context)))
        length = latent_length(video_length, stride)
        jobs = plan_prefix(length, len(latents), fmt.frames, options.new_per_window)
        prompt = check_schedule(inputs.prompt, video_length)
        layout = Layout(length, pixels, jobs, prompt, known_latents=latents, video=video)
        return TaskPlan(
            layout, first_output=len(context) if inputs.new_only else 0, details={"context_frames": len(context)}
        )
    length = len(context) + inputs.frames
    jobs = plan_prefix(length, len(context), fmt.frames, options.new_per_window)
    paths: tuple[ObjectPath, ...] = ()
    if inputs.path:  # the points are in the clip's own pixels, as a player shows its frames
        h, w = next(iter(read_video(inputs.clip))).shape[:2]
        paths = object_paths(inputs.path, inputs.mask, context[-1], (w, h), fmt, len(context) - 1, length - 1)
    layout = Layout(length, dict(enumerate(context)), jobs, check_schedule(inputs.prompt, length), paths=paths)
    return TaskPlan(
        layout, first_output=len(context) if inputs.new_only else 0, details={"context_frames": len(context)}
    )
