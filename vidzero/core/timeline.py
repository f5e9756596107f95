"""Known frames on a timeline, and the plan of windows that generates the rest.

A timeline has `length` frames; some are known (the user's image, real clip frames). The planner
turns it into a list of `WindowJob`s: each one a window of the backbone's native length whose
slots show, in temporal order, frames that exist by the time the job runs (known, or generated
by an earlier job), plus the slots it generates. Every task is such a plan on the one sampler.

Repeat-and-slide (the paper's long-video loop) is the prefix plan: the window holding frames
k-K .. k-1 generates frame k; indices before 0 repeat the first frame, which is exactly the
paper's initial queue [image] * K.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

from vidzero.core.windows import window_for as window_for
from vidzero.core.windows import window_for_run
from vidzero.errors import BadInput

if TYPE_CHECKING:
    import numpy as np
    import torch

    from vidzero.core.targets import ObjectPath

MAX_FRAMES = 100_000
Prompt = str | dict[int, str]  # one prompt, or a schedule: {first frame: prompt from there on}


def prompt_at(prompt: Prompt, frame: int) -> str:
    """The prompt in force at `frame` (the schedule entry with the largest start <= frame)."""
    if isinstance(prompt, str):
        return prompt
    starts = [s for s in prompt if s <= frame]
    return prompt[max(starts)] if starts else prompt[min(prompt)]


@dataclass(frozen=True)
class WindowJob:
    index: int
    slots: tuple[int, ...]  # timeline frame shown in each slot (for generated slots: the target)
    generate: tuple[int, ...]  # slot positions this job generates
    init_source: tuple[int | None, ...]  # per slot: the slot DDPM inversion starts from

    @property
    def targets(self) -> tuple[int, ...]:
        return tuple(self.slots[i] for i in self.generate)

    @property
    def reads(self) -> tuple[int, ...]:
        """Timeline frames this job needs as known content."""
        gen = set(self.generate)
        return tuple(f for i, f in enumerate(self.slots) if i not in gen)


@dataclass
class VideoPlacement:
    """How a timeline of latent frames maps to video frames when each latent frame after the first
    holds `stride` video frames (Wan's causal VAE: latent 0 is video frame 0 alone, latent k holds
    video frames stride*(k-1)+1 .. stride*k), and the user's frames at their video indices."""

    stride: int
    length: int  # video frames
    given: dict[int, np.ndarray]  # video index -> the user's pixels, written exactly

    def slot_of(self, video_frame: int) -> int:
        """The latent frame that holds a video frame."""
        return latent_slot(video_frame, self.stride)

    def frames_of(self, slot: int) -> range:
        return range(0, 1) if slot == 0 else range(self.stride * (slot - 1) + 1, self.stride * slot + 1)


def latent_slot(video_frame: int, stride: int) -> int:
    """The latent frame that holds video frame `video_frame`: 0 for frame 0, else ceil(v / stride)."""
    return 0 if video_frame <= 0 else (video_frame - 1) // stride + 1


def latent_length(video_frames: int, stride: int) -> int:
    """Latent frames of a video of `video_frames` frames (its last latent frame may hold fewer)."""
    return latent_slot(video_frames - 1, stride) + 1


@dataclass
class Layout:
    """A task's timeline: its length, the known frames (pixels, and latents where given as such),
    the prompt, and the plan of window jobs that generates every other frame. With `video`, the
    timeline counts latent frames and `video` places them in the output's video frames."""

    length: int
    known: dict[int, np.ndarray]
    jobs: Sequence[WindowJob]
    prompt: Prompt
    known_latents: dict[int, torch.Tensor] | None = None  # used as they are, no VAE round trip
    given: set[int] | None = None  # the user's frames among the known ones (default: all of them)
    video: VideoPlacement | None = None
    paths: tuple[ObjectPath, ...] = ()  # objects the user moves along paths (vidzero.core.targets)
    # the user's frames before the timeline that moving targets take their look from (a
    # continuation's original image), by their (negative) index
    references: dict[int, np.ndarray] | None = None

    def given_frames(self) -> set[int]:
        return set(self.known) if self.given is None else self.given

    def given_video(self) -> dict[int, np.ndarray]:
        """The user's frames by their index in the video written."""
        if self.video is not None:
            return self.video.given
        return {i: self.known[i] for i in sorted(self.given_frames()) if i in self.known}

    @property
    def output_length(self) -> int:
        """Frames of the video: the timeline's, or the video placement's."""
        return self.length if self.video is None else self.video.length

    def prompt_for(self, job: WindowJob) -> str:
        """The prompt at the job's first new frame (a video frame, when latent frames hold several)."""
        first = min(job.targets)
        return prompt_at(self.prompt, first if self.video is None else self.video.frames_of(first)[0])

    def record(self) -> dict[str, Any]:
        """The plan, as the manifest keeps it."""
        return {"plan": [{"slots": list(j.slots), "generate": list(j.generate)} for j in self.jobs]}


def check_length(length: int, window: int) -> None:
    if length < 2:
        raise BadInput(f"{{option}} must be at least 2, got {length}", "frames")
    if length > MAX_FRAMES:
        raise BadInput(f"{{option}} {length} is absurdly large (at most {MAX_FRAMES})", "frames")
    if window < 2:
        raise BadInput(f"the window must hold at least 2 frames, got {window}", "window")


def check_per_window(per_window: int, window: int) -> None:
    if not 1 <= per_window <= window - 1:
        raise BadInput(
            f"{{option}} must be between 1 and {window - 1} (the window minus one known slot), got {per_window}",
            "new_per_window",
        )


def plan_prefix(
    length: int, known_prefix: int, window: int, per_window: int = 1, loop: bool = False, anchor: bool = False
) -> Sequence[WindowJob]:
    """Frames [0, known_prefix) known, the rest generated by repeat-and-slide, `per_window` new
    frames per window (1: the paper's). With `loop`, the windows near the end also see the first
    frames, as the frames that come after the last one. With `anchor`, every window also holds
    frame 0, the first known frame, however far back it is.

    With no known frame (plain text-to-video) the first job generates a whole window at once,
    exactly as the backbone's own pipeline would; sliding continues from there.
    """
    check_length(length, window)
    check_per_window(per_window, window)
    if not 0 <= known_prefix < length:
        raise BadInput(f"{known_prefix} known frames leave nothing to generate in a video of {length} frames")
    if known_prefix == 0:
        # Slots past the end of the video are generated and discarded (targets >= length).
        first = WindowJob(0, tuple(range(window)), tuple(range(window)), (None,) * window)
        if length <= window:
            return [first]
        rest = plan_timeline(length, set(range(window)), window, per_window=per_window)
        return [first] + [WindowJob(j.index + 1, j.slots, j.generate, j.init_source) for j in rest]
    anchors = (0,) if anchor else ()
    return plan_timeline(length, set(range(known_prefix)), window, per_window=per_window, loop=loop, anchors=anchors)


FILL_ORDERS = ("forward", "inward")


def fill_order(length: int, known: set[int], order: str, chunk: int = 1, loop: bool = False) -> list[int]:
    """The order in which unknown frames are generated.

    forward: left to right (a gap before the first known frame is filled right to left, from it).
    inward: each gap from both ends toward its middle, alternating `chunk` frames from each end,
    so both keys condition early. With `loop` every gap lies between two keys (the gap after the
    last key wraps around to the first), and forward fills it from the key before it.
    """
    if order not in FILL_ORDERS:
        raise BadInput(f"unknown {{option}} {order!r} (use {' or '.join(FILL_ORDERS)})", "order")
    first = min(known)
    result: list[int] = []
    gaps: list[list[int]] = []
    current: list[int] = []
    if loop:
        span = range(first + 1, first + length)  # once around, from the first key
    else:
        result = list(range(first - 1, -1, -1))  # before the first key: backwards from it
        span = range(first + 1, length)
    for position in span:
        f = position % length
        if f in known:
            if current:
                gaps.append(current)
            current = []
        else:
            current.append(f)
    if current:
        gaps.append(current + ([] if loop else [-1]))  # -1 marks an open end: forward only
    for gap in gaps:
        open_end = gap[-1] == -1
        gap = [f for f in gap if f != -1]
        if order == "forward" or open_end:
            result += gap
        else:
            lo, hi, from_start = 0, len(gap) - 1, True
            while lo <= hi:
                if from_start:
                    part = gap[lo : min(lo + chunk, hi + 1)]
                    lo += len(part)
                else:
                    part = gap[max(hi - chunk + 1, lo) : hi + 1][::-1]
                    hi -= len(part)
                result += part
                from_start = not from_start
    return result


def contiguous_runs(order: list[int], size: int) -> list[tuple[int, ...]]:
    """Split a fill order into runs of at most `size` frames that are adjacent on the timeline
    (one window generates each run), keeping the order of generation."""
    runs: list[list[int]] = []
    for f in order:
        run = runs[-1] if runs else None
        step = run[-1] - run[-2] if run and len(run) > 1 else None
        if run and len(run) < size and abs(f - run[-1]) == 1 and step in (None, f - run[-1]):
            run.append(f)
        else:
            runs.append([f])
    return [tuple(r) for r in runs]


def plan_timeline(
    length: int,
    known: set[int],
    window: int,
    order: str = "forward",
    per_window: int = 1,
    loop: bool = False,
    anchors: tuple[int, ...] = (),
) -> PlannedJobs:
    """Known frames anywhere on a timeline; every other frame generated, `per_window` adjacent
    frames per window (1: the paper's one frame per sampling run). With `loop` the timeline is a
    circle, so that the last frame leads into the first as any frame leads into the next.
    `anchors` (known frames) are in every window, however far."""
    check_length(length, window)
    check_per_window(per_window, window)
    bad = sorted(k for k in known if not 0 <= k < length)
    if bad:
        raise BadInput(f"known frame(s) {bad} outside a timeline of {length} frames (0..{length - 1})")
    if not known:
        raise BadInput("a timeline needs at least one known frame (use generate for plain text-to-video)")
    if len(known) == length:
        raise BadInput("every frame is known: nothing to generate")
    runs = contiguous_runs(fill_order(length, known, order, per_window, loop), per_window)
    return PlannedJobs(runs, known, window, length if loop else None, anchors)


class PlannedJobs(Sequence[WindowJob]):
    """The window jobs of a timeline plan, each worked out when it is first read. How many windows
    there are and which frames each generates is known at once, so a plan of any length is priced
    instantly (`--dry-run`); where each window's known frames come from depends on the windows
    before it, and is worked out in order, in time linear in the plan's length."""

    def __init__(
        self, runs: list[tuple[int, ...]], known: set[int], window: int, loop: int | None, anchors: tuple[int, ...]
    ) -> None:
        self.runs = runs
        self.window, self.loop, self.anchors = window, loop, anchors
        self._available = sorted(known)
        self._jobs: list[WindowJob] = []

    def __len__(self) -> int:
        return len(self.runs)

    @overload
    def __getitem__(self, index: int) -> WindowJob: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[WindowJob]: ...
    def __getitem__(self, index: int | slice) -> WindowJob | Sequence[WindowJob]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        while len(self._jobs) <= index:
            self._plan_next()
        return self._jobs[index]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def _plan_next(self) -> None:
        run = self.runs[len(self._jobs)]
        slots, target_slots, sources = window_for_run(run, self._available, self.window, self.loop, self.anchors)
        source_of = dict(zip(target_slots, sources))
        init = tuple(source_of.get(i) for i in range(self.window))
        self._jobs.append(WindowJob(len(self._jobs), slots, target_slots, init))
        for target in run:
            bisect.insort(self._available, target)


def plan_single_window(known_prefix: int, window: int) -> Sequence[WindowJob]:
    """The "replacing" baseline: one window, the known prefix in its first slots, every other slot
    generated in the same run (one sampling run for the whole video, no sliding). It is the
    general plan with as many new frames per window as the window has unknown slots."""
    if not 1 <= known_prefix < window:
        raise BadInput(f"a single window of {window} frames needs 1 to {window - 1} known frames, got {known_prefix}")
    return plan_timeline(window, set(range(known_prefix)), window, per_window=window - known_prefix)


def last_reads(jobs: Sequence[WindowJob]) -> dict[int, int]:
    """For each timeline frame, the index of the last job that reads it (for freeing memory)."""
    last: dict[int, int] = {}
    for job in jobs:
        for frame in job.reads:
            last[frame] = job.index
    return last
