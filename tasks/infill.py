"""`vidzero infill` and keyframe timelines: known frames anywhere, the gaps generated zero-shot.

Still images (`keys`) and real clips (`clips`, their frames from a start position on) sit on a
timeline of `frames` frames. The planner (`vidzero.core.timeline.plan_timeline`) generates every
other frame with one window each: the window - 1 available frames nearest in time, in temporal
order, around the target. Gaps are filled `inward` (from both ends toward the middle, the
default) or `forward` (left to right). `loop` treats the timeline as a circle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from vidzero.core.timeline import FILL_ORDERS, Layout, Prompt, latent_length, plan_timeline
from vidzero.errors import BadInput
from vidzero.runs.options import RunOptions, choice, frame_count
from vidzero.runs.spec import PROMPT_AT, CliParam, TaskPlan, inp, parse_position, read_fields, with_schedule

from .common import (
    MASK_HELP,
    PATH_HELP,
    FrameFormat,
    ImageSource,
    check_image_source,
    check_paths,
    check_schedule,
    load_frame,
    mask_inputs,
    object_paths,
    path_inputs,
    paths_of,
    place_video,
    read_schedule,
)

if TYPE_CHECKING:
    from vidzero.core.targets import ObjectPath


def position(value: object, option: str, length: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise BadInput(f"{{option}} positions must be whole frame numbers, got {value!r}", option)
    if not 0 <= int(value) < length:
        raise BadInput(f"{{option}} at frame {value} is outside the timeline (0..{length - 1})", option)
    return int(value)


@dataclass(frozen=True)
class InfillInputs:
    task: ClassVar[str] = "infill"

    prompt: Prompt = inp("What happens in between.", cli=None)
    frames: int = inp("Total length of the timeline.", 16, metavar="N")
    keys: dict[int, ImageSource] = inp("Known still frames: {position: image}.", {}, cli=None)
    clips: dict[int, Path] = inp("Real clips placed on the timeline: {first position: video}.", {}, cli=None)
    order: str = inp("Fill gaps 'inward' (from both ends) or 'forward' (left to right).", "inward")
    loop: bool = inp("Treat the timeline as a circle: the last frame leads into the first.", False)
    path: tuple[str, ...] = inp(
        PATH_HELP + " A path starts on a keyframe: frame 0, or the frame its first point pins (X,Y@F).",
        (),
        metavar="PATH",
    )
    mask: tuple[Any, ...] = inp(MASK_HELP, (), metavar="FILE")

    cli_params: ClassVar[tuple[CliParam, ...]] = (
        CliParam(
            "args",
            list[str],
            "[START END] PROMPT: two images for the ends, or only the prompt with --key/--clip.",
            "argument",
        ),
        CliParam("key", list[str] | None, "N=IMAGE: a known frame at position N. Repeatable.", metavar="N=IMAGE"),
        CliParam(
            "clip", list[str] | None, "N:VIDEO: a real clip placed from position N. Repeatable.", metavar="N:VIDEO"
        ),
        PROMPT_AT,
    )

    @classmethod
    def from_cli(cls, values: dict[str, Any]) -> InfillInputs:
        args, frames = values["args"], values["frames"]
        if len(args) not in (1, 3):
            raise BadInput("give start and end images and a prompt, or a prompt with keyframes or clips")
        *ends, prompt = args
        frame_count(frames, "frames", 2)
        keys: dict[int, ImageSource] = {}
        for item in values["key"] or []:
            pos, image = parse_position(item, "=", "keys")
            if pos in keys:
                raise BadInput(f"{{option}}: two keys at frame {pos}", "keys")
            keys[pos] = image
        for pos, image in zip((0, frames - 1), ends):
            if pos in keys:
                which = "START" if pos == 0 else "END"
                raise BadInput(f"{{option}} at frame {pos} and the {which} image: two keys at one frame", "keys")
            keys[pos] = image
        clips: dict[int, Path] = {}
        for item in values["clip"] or []:
            pos, clip = parse_position(item, ":", "clips", "VIDEO")
            if pos in clips:
                raise BadInput(f"{{option}}: two clips at frame {pos}", "clips")
            clips[pos] = Path(clip)
        prompt_value = with_schedule(prompt, values["prompt_at"])
        return cls(
            prompt_value,
            frames,
            keys,
            clips,
            values["order"],
            values["loop"],
            path_inputs(values["path"]),
            mask_inputs(values["mask"]),
        )

    def check(self) -> None:
        """Positions and files, before any model loads."""
        from vidzero.media.video import video_info  # PyAV: not on `vidzero --help`

        frame_count(self.frames, "frames", 2)
        choice(self.order, "order", FILL_ORDERS)
        check_schedule(self.prompt, self.frames)
        check_paths(self.path, self.mask)
        if not self.keys and not self.clips:
            raise BadInput("no known frames: give keyframes (keys) or clips")
        sizes: dict[tuple[int, int], int] = {}
        for pos, image in self.keys.items():
            position(pos, "keys", self.frames)
            sizes.setdefault(check_image_source(image, "keyframe"), pos)
        if len(sizes) > 1:
            (a, pa), (b, pb) = list(sizes.items())[:2]
            raise BadInput(f"keyframes differ in size: frame {pa} is {a[0]}x{a[1]}, frame {pb} is {b[0]}x{b[1]}")
        for pos, clip in self.clips.items():
            position(pos, "clips", self.frames)
            video_info(clip)

    def paths(self) -> list[Path]:
        return paths_of(*self.keys.values(), *self.clips.values(), *self.mask)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> InfillInputs:
        """A record (a manifest's, or a batch job line, where `start` and `end` name the first and
        the last frame's image)."""
        values = dict(record)
        start, end = values.pop("start", None), values.pop("end", None)
        values = read_fields(cls, values, "infill")
        values["prompt"] = read_schedule(values["prompt"])
        try:
            keys = {int(k): v for k, v in values.get("keys", {}).items()}
            clips = {int(k): Path(v) for k, v in values.get("clips", {}).items()}
        except (ValueError, AttributeError):
            raise BadInput("keys and clips must be objects {frame: path} with whole frame numbers") from None
        if (start is None) != (end is None):
            raise BadInput("infill takes start and end together")
        if start is not None:
            frames = values.get("frames", 16)
            keys.setdefault(0, start)
            keys.setdefault(frames - 1, end)
        values["path"], values["mask"] = path_inputs(values.get("path")), mask_inputs(values.get("mask"))
        return cls(**{**values, "keys": keys, "clips": clips})


def load_known(inputs: InfillInputs, fmt: FrameFormat) -> dict[int, np.ndarray]:
    """All known frames fitted to the frame size; a clear error for any inconsistency."""
    from vidzero.media.video import read_video  # PyAV: not on `vidzero --help`

    known = {int(pos): load_frame(image, fmt, "keyframe") for pos, image in sorted(inputs.keys.items())}
    for start, clip in sorted(inputs.clips.items()):
        count = 0
        for offset, frame in enumerate(read_video(clip, fmt.width, fmt.height)):
            pos = int(start) + offset
            if pos >= inputs.frames:
                raise BadInput(f"clip {clip} at {start} runs past the end of the timeline ({inputs.frames} frames)")
            if pos in known:
                raise BadInput(f"clip {clip} at {start} overlaps a known frame at {pos}")
            known[pos] = frame
            count += 1
        if count == 0:
            raise BadInput(f"clip {clip} has no frames")
    return known


def layout(inputs: InfillInputs, fmt: FrameFormat, options: RunOptions) -> TaskPlan:
    assert options.new_per_window is not None
    known = load_known(inputs, fmt)
    if fmt.temporal_stride > 1:  # known video frames placed in latent frames (Wan); see place_video
        object_paths(inputs.path, inputs.mask, known[min(known)], (fmt.width, fmt.height), fmt, 0, 0)  # refused
        pixels, latents, video = place_video(fmt, inputs.frames, known)
        length = latent_length(inputs.frames, fmt.temporal_stride)
        if len(latents) == length:
            raise BadInput("every latent frame holds a known frame: nothing to generate (space the keys wider)")
        jobs = plan_timeline(length, set(latents), fmt.frames, inputs.order, options.new_per_window, inputs.loop)
        prompt = check_schedule(inputs.prompt, inputs.frames)
        return TaskPlan(Layout(length, pixels, jobs, prompt, known_latents=latents, video=video))
    jobs = plan_timeline(inputs.frames, set(known), fmt.frames, inputs.order, options.new_per_window, inputs.loop)
    paths = keyframe_paths(inputs, known, fmt)
    return TaskPlan(Layout(inputs.frames, known, jobs, check_schedule(inputs.prompt, inputs.frames), paths=paths))


def keyframe_paths(inputs: InfillInputs, known: dict[int, np.ndarray], fmt: FrameFormat) -> tuple[ObjectPath, ...]:
    """Each path from the keyframe it starts on (frame 0, or the one its first point pins)."""
    from vidzero.core.paths import parse_path
    from vidzero.media.video import read_video

    objects: list[ObjectPath] = []
    for i, written in enumerate(inputs.path):
        start = parse_path(written)[0][2] or 0
        if start not in known:
            raise BadInput(f"{{option}} starts on frame {start}, which holds no keyframe or clip frame", "path")
        if start in inputs.keys:
            source = check_image_source(inputs.keys[start], "keyframe")
        else:
            clip = next(c for s, c in sorted(inputs.clips.items(), reverse=True) if s <= start)
            h, w = next(iter(read_video(clip))).shape[:2]
            source = (w, h)
        mask = inputs.mask[i : i + 1]
        objects += object_paths((written,), mask, known[start], source, fmt, start, inputs.frames - 1)
    return tuple(objects)
