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

from dataclasses import dataclass

from vidzero.errors import BadInput

MAX_FRAMES = 100_000


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


def check_length(length: int, window: int) -> None:
    if length < 2:
        raise BadInput(f"--frames must be at least 2, got {length}")
    if length > MAX_FRAMES:
        raise BadInput(f"--frames {length} is absurdly large (at most {MAX_FRAMES})")
    if window < 2:
        raise BadInput(f"the window must hold at least 2 frames, got {window}")


def plan_prefix(length: int, known_prefix: int, window: int) -> list[WindowJob]:
    """Frames [0, known_prefix) known, the rest generated one per window by repeat-and-slide.

    With no known frame (plain text-to-video) the first job generates a whole window at once,
    exactly as the backbone's own pipeline would; sliding continues from there.
    """
    check_length(length, window)
    if not 0 <= known_prefix < length:
        raise BadInput(f"{known_prefix} known frames leave nothing to generate in a video of {length} frames")
    jobs: list[WindowJob] = []
    start = known_prefix
    if known_prefix == 0:
        # Slots past the end of the video are generated and discarded (targets >= length).
        jobs.append(WindowJob(0, tuple(range(window)), tuple(range(window)), (None,) * window))
        start = window
    context = window - 1
    for k in range(start, length):
        slots = tuple(max(0, k - context + i) for i in range(context)) + (k,)
        init_source: tuple[int | None, ...] = (None,) * context + (context - 1,)
        jobs.append(WindowJob(len(jobs), slots, (context,), init_source))
    return jobs


def last_reads(jobs: list[WindowJob]) -> dict[int, int]:
    """For each timeline frame, the index of the last job that reads it (for freeing memory)."""
    last: dict[int, int] = {}
    for job in jobs:
        for frame in job.reads:
            last[frame] = job.index
    return last
