"""Moving targets in a run: the user's image moved along the motion each new frame makes, used
where the paper's sampler lets the model's drawing drift (vidzero.core.motion builds each one).

For a generated frame n, the reference is the user's frame nearest to it in time; its object
(found once per reference, or the mask the user gave) is laid on frame n at the shift that fits
best near where it was in frame n-1, or at the shift a motion path gives; the moved target is
that object over the reference's background moved by the consistent flow. Three uses, each
switchable (`SamplerSettings.target`, `target_steps`, `target_frames`):

- **window**: inside the window that makes frame n, the new slot's region is held to the target
  on a second clock (vidzero.core.steering.TargetHold) in steps [A, B): the target is built from
  the step A-1 estimate of the clean frame (the motion the model has settled on by then; a path's
  from the start), and the steps from B on are free, harmonising it with the model's drawing;
- **queue**: what later windows read of frame n is the target where it is trusted, the model's
  frame elsewhere, so a drifted drawing is not copied forward;
- **frames written**: the model's frames (harmonised), or the targets.

Everything is recomputed from frames the run keeps (the previous frame is in the queue), so a
resumed run builds the same targets as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from vidzero.core.backbone import Backbone
from vidzero.core.frames import from_pixels, to_pixels
from vidzero.core.motion import (
    MovedTarget,
    Placed,
    centred_shift,
    find_object,
    moved_target,
    object_shift,
    painted_out,
)
from vidzero.core.sampler import SamplerSettings
from vidzero.core.schedule import NoiseGrid
from vidzero.core.steering import Target, TargetHold
from vidzero.core.timeline import Layout, WindowJob

# Beyond this root mean square difference per channel (0-255) the object is not where the search
# looked (it left the frame, or the model drew something else): no target for that frame.
LOST_RMS = 60.0
# A frame's object is searched this far (a share of the frame's smaller side) from its place in
# the frame before; that place is searched over the whole frame.
STEP_RADIUS = 0.2


@dataclass(frozen=True)
class Reference:
    """A frame the user gave, ready to be moved: its pixels, its object (found, where no path
    names the objects), its background with the objects painted out."""

    frame: int
    pixels: np.ndarray
    mask: np.ndarray | None
    background: np.ndarray


@dataclass(frozen=True)
class ObjectPath:
    """An object the user moves along a path: the frame it is taken from, its mask there, and
    where its centre is in each frame the path covers (vidzero.core.paths.positions)."""

    reference: int
    mask: np.ndarray
    centres: dict[int, np.ndarray]

    def shift(self, frame: int) -> np.ndarray | None:
        centre = self.centres.get(frame)
        return None if centre is None else centre - self.centres[self.reference]


class MovingTargets:
    """A run's moving targets (see the module's text)."""

    def __init__(
        self, layout: Layout, backbone: Backbone, settings: SamplerSettings, paths: Sequence[ObjectPath] = ()
    ) -> None:
        self.layout, self.bb, self.settings, self.paths = layout, backbone, settings, tuple(paths)
        self.frames = {f: layout.known[f] for f in layout.given_frames() if f in layout.known}
        self.frames |= dict(layout.references or {})  # a continuation's original image, before the timeline
        self.given = sorted(self.frames)
        self._references: dict[int, Reference] = {}

    @property
    def in_window(self) -> bool:
        return bool(self.paths) or self.settings.target in ("window", "both", "auto")

    @property
    def in_queue(self) -> bool:
        return bool(self.paths) or self.settings.target in ("queue", "both")

    @property
    def written(self) -> bool:
        return self.settings.target_frames == "target"

    # ------------------------------------------------------------------ references and shifts
    def reference(self, frame: int) -> Reference | None:
        """The user's frame nearest to `frame` (the earlier of two as near), ready to move."""
        if not self.given:
            return None
        nearest = min(self.given, key=lambda g: (abs(g - frame), g))
        if nearest not in self._references:
            pixels = self.frames[nearest]
            if self.paths:  # the objects are the paths'; the rest of the frame is the model's
                masks = [p.mask for p in self.paths if p.reference == nearest]
                mask = np.logical_or.reduce(masks) if masks else None
                found = None
            else:
                mask = found = find_object(pixels)
            self._references[nearest] = Reference(nearest, pixels, found, painted_out(pixels, mask))
        return self._references[nearest]

    def objects(self, ref: Reference, frame: int, image: np.ndarray, before: np.ndarray | None) -> list[Placed] | None:
        """The objects to lay on frame `frame` (drawn as `image`): the paths' where they are, or
        the reference's object where it fits best; None when the object is lost."""
        if self.paths:
            placed = []
            for path in self.paths:
                shift = path.shift(frame)
                if shift is not None:
                    placed.append(Placed(self.layout.known[path.reference], path.mask, shift))
            return placed
        if ref.mask is None:
            return []  # a scene: the whole frame moves by the flow
        shift = self.model_shift(ref, frame, image, before)
        return None if shift is None else [Placed(ref.pixels, ref.mask, shift)]

    def model_shift(
        self, ref: Reference, frame: int, image: np.ndarray, before: np.ndarray | None
    ) -> np.ndarray | None:
        """Where the model put `ref`'s object in `image` (frame `frame`): the best fit near its
        place in the frame before (`before`, searched over the whole frame), laid on the centre
        of the model's drawing; None where it is lost."""
        assert ref.mask is not None
        h, w = ref.mask.shape
        guess = np.zeros(2)
        if before is not None and frame - 1 != ref.frame:
            found = object_shift(ref.pixels, ref.mask, before, radius=float(max(h, w)))
            guess = found.shift if found.rms <= LOST_RMS else guess
        near = object_shift(ref.pixels, ref.mask, image, (float(guess[0]), float(guess[1])), STEP_RADIUS * min(h, w))
        if near.rms > LOST_RMS:
            return None
        return centred_shift(ref.pixels, ref.mask, image, ref.background, near).shift

    def target(self, frame: int, image: np.ndarray, before: np.ndarray | None) -> MovedTarget | None:
        """The moved target for frame `frame`, drawn as `image`."""
        ref = self.reference(frame)
        if ref is None:
            return None
        objects = self.objects(ref, frame, image, before)
        if objects is None:
            return None  # the object is lost: nothing to hold the frame to
        return moved_target(ref.pixels, image, objects, ref.background, self.margin)

    @property
    def margin(self) -> int:
        """Pixels of the user's background held around a moved object: one latent pixel."""
        return max(1, self.bb.height // self.bb.latent_shape[1]) if self.bb is not None else 0

    # ------------------------------------------------------------------ in the window
    def hold(
        self,
        job: WindowJob,
        grid: NoiseGrid,
        generator: torch.Generator,
        before: Callable[[int], np.ndarray | None],
    ) -> TargetHold | None:
        """The dual clock for the job's new slots, or None (not asked, or nothing to hold)."""
        if not self.in_window or not job.generate:
            return None
        first, until = self.steps()
        new = [(slot, frame) for slot, frame in zip(job.generate, job.targets) if frame < self.layout.length]

        def make(x0: torch.Tensor | None) -> Target | None:
            drawn: list[np.ndarray | None]
            if x0 is None:  # a path: the frame before, moved along it
                drawn = [before(frame) for _, frame in new]
            else:
                latents = torch.stack([x0[0, :, slot] for slot, _ in new])
                drawn = list(to_pixels(self.bb.decode(latents.to(self.bb.device))))
            return self.window_target(new, drawn, before, len(job.slots))

        return TargetHold(grid, first, until, make, generator)

    def steps(self) -> tuple[int, int]:
        """[first, until): the steps the window holds the target, as `target_steps` says or, by
        default, as shares of the run's steps (a path's from the first step: it is known before
        sampling; the model's motion is read at step first - 1, so first is at least 1)."""
        steps = self.settings.steps
        shares = PATH_SHARES if self.paths else TARGET_SHARES
        first, until = self.settings.target_steps or (round(shares[0] * steps), round(shares[1] * steps))
        if self.paths:
            first = 0
        else:
            first = min(max(first, 1), steps)
        return first, min(max(until, first), steps)

    def window_target(
        self,
        new: list[tuple[int, int]],
        drawn: list[np.ndarray | None],
        before: Callable[[int], np.ndarray | None],
        frames: int,
    ) -> Target | None:
        """(latent window of `frames` slots, mask) for the new slots, from their drawings (or the
        frame before)."""
        c, h, w = self.bb.latent_shape
        latent = torch.zeros(1, c, frames, h, w, device=self.bb.device)
        mask = torch.zeros(1, 1, frames, h, w, device=self.bb.device)
        images, places = [], []
        for (slot, frame), image in zip(new, drawn):
            if image is None:
                continue
            target = self.target(frame, image, before(frame))
            if target is not None:
                images.append(target.image)
                places.append((slot, target.trust))
        if not images:
            return None
        encoded = self.bb.encode_frames(from_pixels(np.stack(images)).to(self.bb.device))
        for (slot, trust), code in zip(places, encoded):
            latent[0, :, slot] = code
            mask[0, 0, slot] = torch.from_numpy(cv2.resize(trust, (w, h), interpolation=cv2.INTER_AREA))
        return latent, mask

    # ------------------------------------------------------------------ in the queue
    def queued(self, frame: int, image: np.ndarray, before: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(what later windows read, what is written) of generated frame `frame` drawn as `image`."""
        if not (self.in_queue or self.written):
            return image, image
        target = self.target(frame, image, before)
        if target is None:
            return image, image
        trust = target.trust[..., None]
        blended = np.clip(np.rint(trust * target.image + (1 - trust) * image), 0, 255).astype(np.uint8)
        return (blended if self.in_queue else image), (target.image if self.written else image)


# The window's hold by default, as shares of the steps: the model's motion read from the estimate at
# 60 % and the target held to the end (6:10 of 10 steps; chosen on the fidelity bench's dev split,
# docs/fidelity.md); a path held from the first step to the end (0:10; the path bench, docs/paths.md).
TARGET_SHARES = (0.6, 1.0)
PATH_SHARES = (0.0, 1.0)
