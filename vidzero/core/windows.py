"""Which frames one window holds: the available frames nearest in time to the frames it
generates, in temporal order, padded by repeats when there are too few (the paper's "repeat"),
each new slot's inversion source, and the same on a circular timeline. Pure functions of frame
indices; vidzero.core.timeline plans whole timelines with them.
"""

from __future__ import annotations

import bisect


def window_for(target: int, available: list[int], window: int) -> tuple[tuple[int, ...], int, int]:
    """Slots for generating one `target` frame; see `window_for_run`. Returns (slots, target
    slot, inversion source slot)."""
    slots, target_slots, sources = window_for_run((target,), available, window)
    return slots, target_slots[0], sources[0]


def unwrap(frame: int, first: int, last: int, loop: int | None) -> int:
    """The position of `frame` nearest to the run [first, last]: on a circular timeline of
    `loop` frames the frames after the end are the frames at the start (and the reverse)."""
    if not loop:
        return frame

    def distance(p: int) -> int:
        return first - p if p < first else max(0, p - last)

    return min((frame - loop, frame, frame + loop), key=lambda p: (distance(p), abs(p - first)))


def contains(ordered: list[int], value: int) -> bool:
    i = bisect.bisect_left(ordered, value)
    return i < len(ordered) and ordered[i] == value


def nearby(available: list[int], first: int, last: int, count: int, loop: int | None) -> list[int]:
    """The frames of `available` (sorted) that can be among the `count` nearest to [first, last]:
    the `count` nearest on each side, and on a circular timeline the `count` at each end (which
    come next across the seam). Looking only at these keeps planning linear in the length."""
    lo, hi = bisect.bisect_left(available, first), bisect.bisect_right(available, last)
    picked = available[max(0, lo - count) : lo] + available[hi : hi + count]
    if loop:
        picked += available[:count] + available[-count:]
    return sorted(set(picked))


def window_for_run(
    targets: tuple[int, ...],
    available: list[int],
    window: int,
    loop: int | None = None,
    anchors: tuple[int, ...] = (),
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Slots for generating the contiguous frames `targets` from the `available` frames (sorted
    timeline indices) in one window.

    Takes the window - len(targets) available frames nearest in time, keeps temporal order (the
    UNet sees time only through slot order), and when fewer exist repeats the outermost frames,
    the way the paper's "repeat" fills its first queue. Returns (slots, target slots, and for
    each target slot its inversion source: the slot holding the known frame nearest in time).
    With `loop` (the timeline's length) the timeline is a circle: near the end, the frames at
    the start count as the frames that come next. `anchors` (available frames) are in every
    window, in place of the farthest of the nearest frames.
    """
    targets = tuple(sorted(targets))
    first, last = targets[0], targets[-1]
    context = window - len(targets)

    def distance(p: int) -> int:
        return first - p if p < first else p - last

    unwrapped = [unwrap(f, first, last, loop) for f in nearby(available, first, last, context, loop)]
    pinned = [unwrap(a, first, last, loop) for a in anchors if contains(available, a)][:context]
    nearest = sorted(sorted(unwrapped, key=lambda p: (distance(p), p))[:context])
    if pinned and not set(pinned) <= set(nearest):
        rest = [p for p in sorted(unwrapped, key=lambda p: (distance(p), p)) if p not in pinned]
        nearest = sorted(pinned + rest[: context - len(pinned)])
    before = [p for p in nearest if p < first]
    after = [p for p in nearest if p > last]
    missing = context - len(nearest)
    if before and after:
        pad_before, pad_after = (missing + 1) // 2, missing // 2
    elif before:
        pad_before, pad_after = missing, 0
    else:
        pad_before, pad_after = 0, missing
    before = [before[0]] * pad_before + before if before else before
    after = after + [after[-1]] * pad_after if after else after
    positions: tuple[int, ...] = (*before, *targets, *after)
    target_slots = tuple(range(len(before), len(before) + len(targets)))
    known_slots = [i for i in range(window) if i not in target_slots]

    def nearest_slot(t: int) -> int:
        """The known slot nearest in time; among repeats of that frame, the one next to the target."""
        return min(known_slots, key=lambda i: (abs(positions[i] - positions[t]), abs(i - t), i))

    sources = tuple(nearest_slot(t) for t in target_slots)
    slots: tuple[int, ...] = tuple(p % loop for p in positions) if loop else positions
    return slots, target_slots, sources
