"""The UNet's training data: clips rendered ahead by worker processes, encoded once, and kept on
the training device with their object masks and caption tokens.

A training step then does no work outside the UNet but indexing: no rendering, no tokenising, no
host-to-device copies. Clip k of a run is a pure function of (recipe, k), so clips can be
rendered in any order and ahead of need, and a resumed run rebuilds exactly the pool an
uninterrupted run holds.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from recipes.shapes import world

TRAIN_SEED_BASE = 10**7  # world seeds below 10**7 * (seed + 1) are training clips; evaluation uses others


@dataclass(frozen=True)
class ClipRecipe:
    """How a run draws its training clips."""

    seed: int
    speed_range: tuple[float, float]
    appearance: float = 0.0  # share of clips from the appearance world
    small_share: float = 0.0  # share of appearance-world objects drawn small (world.random_form)
    one_colour: str | None = None  # every object in this colour (a curriculum)
    free_background: float = 0.0  # share of appearance-world clips on any dark background colour
    free_outline: float = 0.0  # share of appearance-world objects with an unnamed random outline


@dataclass
class RenderedClip:
    frames: np.ndarray  # (F, H, W, 3) uint8
    coverage: np.ndarray  # (F, h, w) float32: the share of each latent pixel's area objects cover
    caption: str


def training_clip(recipe: ClipRecipe, k: int) -> world.ShapesClip:
    """Training clip k of a run: with `one_colour`, every object is drawn in that colour (one
    object per clip); `appearance` is the share of clips from the appearance world (world.Form),
    spread evenly over k by the golden-ratio sequence.

    Why a one-colour phase: the direction toy (recipes/direction_toy.py) learns the direction from
    one blob colour in 800 steps but not from eight colours named by the caption in 1,200; trained
    on one colour first, it keeps the direction once the eight colours come in."""
    colours = None if recipe.one_colour is None else (recipe.one_colour,)
    from_appearance = (k * 0.6180339887498949) % 1.0 < recipe.appearance
    return world.make_clip(
        recipe.seed * TRAIN_SEED_BASE + k,
        speed_range=recipe.speed_range,
        object_colours=colours,
        appearance=from_appearance,
        small_share=recipe.small_share if from_appearance else 0.0,
        free_background=recipe.free_background if from_appearance else 0.0,
        free_outline=recipe.free_outline if from_appearance else 0.0,
    )


def latent_coverage(clip: world.ShapesClip, factor: int = 8) -> np.ndarray:
    """(F, h, w): the share of each latent pixel's area that objects cover (pixels that differ
    from the clip's background), averaged over the factor x factor pixels it stands for."""
    diff = np.abs(clip.frames.astype(np.int16) - clip.background.astype(np.int16)).max(-1) > 8
    size = clip.frames.shape[1] // factor
    return np.stack([cv2.resize(d.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA) for d in diff])


def render(recipe: ClipRecipe, k: int) -> RenderedClip:
    clip = training_clip(recipe, k)
    return RenderedClip(clip.frames, latent_coverage(clip), clip.caption)


class ClipSource:
    """Clips of a recipe rendered ahead by `workers` processes (0: in this process, as they are
    asked for). `take(first, count)` returns clips first..first+count-1 in order and keeps
    the next `ahead` clips in the making."""

    def __init__(self, recipe: ClipRecipe, workers: int = 0, ahead: int = 64) -> None:
        self.recipe, self.ahead = recipe, ahead
        self.pending: dict[int, Future[RenderedClip]] = {}
        self.executor = (
            ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) if workers > 0 else None
        )

    def take(self, first: int, count: int) -> list[RenderedClip]:
        if self.executor is None:
            return [render(self.recipe, k) for k in range(first, first + count)]
        for k in range(first, first + count + self.ahead):
            if k not in self.pending:
                self.pending[k] = self.executor.submit(render, self.recipe, k)
        out = [self.pending.pop(k).result() for k in range(first, first + count)]
        for stale in [k for k in self.pending if k < first]:
            self.pending.pop(stale).cancel()
        return out

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(cancel_futures=True)


class LatentPool:
    """A ring buffer of encoded training clips on the training device: (N, C, F, h, w) scaled
    latents, their object coverage, and the token ids of each caption and of the caption of the
    clip played backwards. Clip k sits in slot k % capacity."""

    def __init__(self, capacity: int, device: torch.device, one_colour: str | None = None) -> None:
        self.capacity, self.device, self.one_colour = capacity, device, one_colour
        self.latents: torch.Tensor | None = None
        self.coverage: torch.Tensor | None = None
        self.ids: torch.Tensor | None = None
        self.reversed_ids: torch.Tensor | None = None
        self.captions: list[str] = [""] * capacity
        self.count = 0  # clips added so far

    def __len__(self) -> int:
        return min(self.count, self.capacity)

    def add(self, latents: torch.Tensor, coverage: torch.Tensor, captions: list[str], tokenize) -> None:
        """Add encoded clips; `tokenize(captions)` gives (B, L) token ids."""
        ids, reversed_ids = tokenize(captions), tokenize([world.reversed_caption(c) for c in captions])
        if self.latents is None:
            self.latents = torch.empty(self.capacity, *latents.shape[1:], dtype=latents.dtype, device=self.device)
            self.coverage = torch.zeros(self.capacity, *coverage.shape[1:], dtype=torch.float16, device=self.device)
            self.ids = torch.zeros(self.capacity, ids.shape[1], dtype=torch.long, device=self.device)
            self.reversed_ids = torch.zeros_like(self.ids)
        assert self.coverage is not None and self.ids is not None and self.reversed_ids is not None
        for i, caption in enumerate(captions):
            slot = self.count % self.capacity
            self.latents[slot] = latents[i]
            self.coverage[slot] = coverage[i]
            self.ids[slot], self.reversed_ids[slot] = ids[i], reversed_ids[i]
            self.captions[slot] = caption
            self.count += 1

    def state_dict(self) -> dict:
        return {
            "format": 2,
            "latents": None if self.latents is None else self.latents.cpu(),
            "coverage": None if self.coverage is None else self.coverage.cpu(),
            "captions": self.captions,
            "count": self.count,
            "capacity": self.capacity,
            "one_colour": self.one_colour,
        }

    def load_state_dict(self, state: dict, tokenize) -> bool:
        """Take a saved pool; False if it is of an older format (rebuild it instead)."""
        if state.get("format") != 2 or state.get("latents") is None:
            return False
        self.capacity, self.count, self.one_colour = state["capacity"], state["count"], state.get("one_colour")
        self.captions = list(state["captions"])
        self.latents = state["latents"].to(self.device)
        self.coverage = state["coverage"].to(self.device)
        self.ids = tokenize(self.captions).to(self.device)
        self.reversed_ids = tokenize([world.reversed_caption(c) for c in self.captions]).to(self.device)
        return True


def object_weights(coverage: torch.Tensor, weight: float) -> torch.Tensor:
    """(B, 1, F, h, w) loss weights: 1, plus `weight` on latent pixels an object touches and on
    the ring of latent pixels around it (where an object's size is decided)."""
    touched = (coverage.float() > 0.02).float()
    b, _, f, h, w = touched.shape
    frames = touched.permute(0, 2, 1, 3, 4).reshape(b * f, 1, h, w)
    ring = F.max_pool2d(frames, 3, stride=1, padding=1).reshape(b, f, 1, h, w).permute(0, 2, 1, 3, 4)
    return 1 + weight * ring
