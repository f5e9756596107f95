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
    if known_prefix == 0:
        # Slots past the end of the video are generated and discarded (targets >= length).
        first = WindowJob(0, tuple(range(window)), tuple(range(window)), (None,) * window)
        if length <= window:
            return [first]
        rest = plan_timeline(length, set(range(window)), window)
        return [first] + [WindowJob(j.index + 1, j.slots, j.generate, j.init_source) for j in rest]
    return plan_timeline(length, set(range(known_prefix)), window)


FILL_ORDERS = ("forward", "inward")


def window_for(target: int, available: list[int], window: int) -> tuple[tuple[int, ...], int, int]:
    """Slots for generating `target` from the `available` frames (sorted timeline indices).

    Takes the window - 1 available frames nearest in time, keeps temporal order (the UNet sees
    time only through slot order), and when fewer exist repeats the outermost frames, the way
    the paper's "repeat" fills its first queue. Returns (slots, target slot, inversion source
    slot: the slot holding the frame nearest in time to the target).
    """
    context = window - 1
    nearest = sorted(sorted(available, key=lambda f: (abs(f - target), f))[:context])
    before = [f for f in nearest if f < target]
    after = [f for f in nearest if f > target]
    missing = context - len(nearest)
    if before and after:
        pad_before, pad_after = (missing + 1) // 2, missing // 2
    elif before:
        pad_before, pad_after = missing, 0
    else:
        pad_before, pad_after = 0, missing
    before = [before[0]] * pad_before + before if before else before
    after = after + [after[-1]] * pad_after if after else after
    slots = (*before, target, *after)
    target_slot = len(before)
    # nearest in time; among repeats of that frame, the slot next to the target
    distances = [(abs(f - target), abs(i - target_slot), i) for i, f in enumerate(slots) if i != target_slot]
    source = min(distances)[2]
    return slots, target_slot, source


def fill_order(length: int, known: set[int], order: str) -> list[int]:
    """The order in which unknown frames are generated.

    forward: left to right (a gap before the first known frame is filled right to left, from it).
    inward: each gap from both ends toward its middle, alternating, so both keys condition early.
    """
    if order not in FILL_ORDERS:
        raise BadInput(f"unknown fill order {order!r} (use {' or '.join(FILL_ORDERS)})")
    first = min(known)
    result = list(range(first - 1, -1, -1))  # before the first key: backwards from it
    gaps: list[list[int]] = []
    current: list[int] = []
    for f in range(first + 1, length):
        if f in known:
            if current:
                gaps.append(current)
            current = []
        else:
            current.append(f)
    if current:
        gaps.append(current + [-1])  # open-ended gap at the end: marker for "forward only"
    for gap in gaps:
        open_end = gap[-1] == -1
        gap = [f for f in gap if f != -1]
        if order == "forward" or open_end:
            result += gap
        else:
            lo, hi = 0, len(gap) - 1
            while lo <= hi:
                result.append(gap[lo])
                if hi != lo:
                    result.append(gap[hi])
                lo, hi = lo + 1, hi - 1
    return result


def plan_timeline(length: int, known: set[int], window: int, order: str = "forward") -> list[WindowJob]:
    """Known frames anywhere on a timeline; every other frame generated one window each."""
    check_length(length, window)
    bad = sorted(k for k in known if not 0 <= k < length)
    if bad:
        raise BadInput(f"known frame(s) {bad} outside a timeline of {length} frames (0..{length - 1})")
    if not known:
        raise BadInput("a timeline needs at least one known frame (use generate for plain text-to-video)")
    if len(known) == length:
        raise BadInput("every frame is known: nothing to generate")
    available = sorted(known)
    jobs: list[WindowJob] = []
    for target in fill_order(length, known, order):
        slots, target_slot, source = window_for(target, available, window)
        init = tuple(source if i == target_slot else None for i in range(window))
        jobs.append(WindowJob(len(jobs), slots, (target_slot,), init))
        bisect.insort(available, target)
    return jobs


def plan_single_window(known_prefix: int, window: int) -> list[WindowJob]:
    """The "replacing" baseline: one window, the known prefix in its first slots, every other slot
    generated in the same run (one sampling run for the whole video, no sliding)."""
    if not 1 <= known_prefix < window:
        raise BadInput(f"a single window of {window} frames needs 1 to {window - 1} known frames, got {known_prefix}")
    generated = tuple(range(known_prefix, window))
    init = tuple(known_prefix - 1 if i in generated else None for i in range(window))
    return [WindowJob(0, tuple(range(window)), generated, init)]


def last_reads(jobs: list[WindowJob]) -> dict[int, int]:
    """For each timeline frame, the index of the last job that reads it (for freeing memory)."""
    last: dict[int, int] = {}
    for job in jobs:
        for frame in job.reads:
            last[frame] = job.index
    return last
