"""`vidzero generate`: plain text-to-video on the engine, no known frames (the reference).

The first window is generated whole, exactly as the backbone's own diffusers pipeline would
(the parity test checks this); longer videos slide on from it like `extend`. With nothing known
there is nothing to harmonise with, so `resample` defaults to 0 here, and the guidance scale to
the release's 9.0 whatever the preset.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from vidzero.core.timeline import Layout, Prompt, VideoPlacement, latent_length, plan_prefix
from vidzero.runs.options import RELEASE_GUIDANCE, RunOptions, frame_count
from vidzero.runs.spec import PROMPT, PROMPT_AT, CliParam, TaskPlan, inp, read_fields, with_schedule

from .common import FrameFormat, check_schedule, read_schedule, window_video_frames


@dataclass(frozen=True)
class GenerateInputs:
    task: ClassVar[str] = "generate"

    prompt: Prompt = inp("What the video shows (text, or a schedule {first frame: text}).", cli=None)
    frames: int | None = inp("Length (default: the model's window).", None, metavar="N")

    cli_params: ClassVar[tuple[CliParam, ...]] = (PROMPT, PROMPT_AT)

    @classmethod
    def from_cli(cls, values: dict) -> GenerateInputs:
        return cls(with_schedule(values["prompt"], values["prompt_at"]), values["frames"])

    def check(self) -> None:
        if self.frames is not None:
            frame_count(self.frames, "frames", 2)
        check_schedule(self.prompt, self.frames)

    def paths(self) -> list[Path]:
        return []

    @classmethod
    def from_record(cls, record: dict) -> GenerateInputs:
        values = read_fields(cls, record, "generate")
        values["prompt"] = read_schedule(values["prompt"])
        return cls(**values)


def inherit(inputs: GenerateInputs, options: RunOptions, given: set[str]) -> RunOptions:
    # Nothing known to keep: no resampling, and the text guided as strongly as the backbone's own
    # pipeline guides it (the low scale of the default preset is for keeping known frames).
    if "resample" not in given:
        options = replace(options, resample=0)
    return options if "guidance" in given else replace(options, guidance=RELEASE_GUIDANCE)


def layout(inputs: GenerateInputs, fmt: FrameFormat, options: RunOptions) -> TaskPlan:
    assert options.new_per_window is not None
    if fmt.temporal_stride > 1:  # latent frames of several video frames (Wan)
        video_length = inputs.frames or window_video_frames(fmt)
        length = latent_length(video_length, fmt.temporal_stride)
        jobs = plan_prefix(length, 0, fmt.frames, options.new_per_window)
        video = VideoPlacement(fmt.temporal_stride, video_length, {})
        return TaskPlan(Layout(length, {}, jobs, check_schedule(inputs.prompt, video_length), video=video))
    length = inputs.frames or fmt.frames
    jobs = plan_prefix(length, 0, fmt.frames, options.new_per_window)
    return TaskPlan(Layout(length, {}, jobs, check_schedule(inputs.prompt, length)))
