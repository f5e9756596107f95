"""The frame-queue conditioning engine: runs a plan of windows on the one sampler.

    pixels -> (frames) known latents -> (timeline) windows -> (sampler) new latents
           -> (backbone) pixels -> frames out, streamed in timeline order

Each window job draws its noise from its own generator, seeded from the run seed and the job
index, so a resumed or continued run draws what an uninterrupted one would; the seed of every
generated frame is reported with it. What the engine keeps between windows, and when it hands a
frame out, is `FrameStore`'s business.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from vidzero.core.backbone import Backbone
from vidzero.core.choices import RELEASE_QUEUE
from vidzero.core.frames import EngineState, Frame, FrameStore, VideoFrameStore
from vidzero.core.packing import PackedDenoiser, Packer
from vidzero.core.sampler import Denoiser, Prediction, SamplerSettings, StepCallback, StepInfo, differentiating
from vidzero.core.sampler import initial_window as initial_window
from vidzero.core.sampler import sample_window as sample_window
from vidzero.core.schedule import NoiseGrid
from vidzero.core.targets import MovingTargets
from vidzero.core.timeline import Layout
from vidzero.errors import BadInput, StopRun


class Progress(Protocol):
    def job(self, done: int, total: int) -> None: ...
    def step(self, done: int, total: int) -> None: ...


class NoProgress:
    """Progress that shows nothing (`progress=False`, and a run that is given none)."""

    def job(self, done: int, total: int) -> None:
        pass

    def step(self, done: int, total: int) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class RunStats:
    frame_seeds: dict[int, int] = field(default_factory=dict)
    jobs: int = 0
    cfg_evaluations: int = 0  # model evaluations of a window (the paper's unit of cost)
    unet_samples: int = 0  # window-sized model inputs actually run (2 per guided evaluation)
    seconds: float = 0.0
    unet_seconds: float = 0.0  # of `seconds`, inside the model's evaluations
    backward_passes: int = 0  # evaluations differentiated for posterior guidance


def job_seed(seed: int, job_index: int) -> int:
    """A well-mixed 63-bit seed per window job, a pure function of (run seed, job index)."""
    return int(np.random.SeedSequence([seed, job_index]).generate_state(1, np.uint64)[0] >> np.uint64(1))


class CountingDenoiser:
    """A backbone's denoiser that counts and times the model work it does."""

    def __init__(self, inner: Denoiser, stats: RunStats) -> None:
        self.inner, self.stats = inner, stats

    def differentiating(self) -> contextlib.AbstractContextManager[object]:
        return differentiating(self.inner)

    def __call__(self, z: torch.Tensor, t: torch.Tensor, guided: bool) -> Prediction:
        started = time.perf_counter()
        out = self.inner(z, t, guided)
        if out.cond.device.type == "cuda":  # kernels run asynchronously: time them, not their launch
            torch.cuda.synchronize(out.cond.device)
        self.stats.unet_seconds += time.perf_counter() - started
        self.stats.cfg_evaluations += 1
        self.stats.unet_samples += 2 if guided else 1
        self.stats.backward_passes += torch.is_grad_enabled()
        return out


class Engine:
    def __init__(
        self,
        backbone: Backbone,
        settings: SamplerSettings,
        seed: int = 0,
        queue: str = RELEASE_QUEUE,
        negative_prompt: str = "",
        job_offset: int = 0,
        callback: StepCallback | None = None,
        packer: Packer | None = None,
    ) -> None:
        self.backbone = backbone
        # a backbone of two experts (Wan 2.2) says where the second takes over: its guidance scale's
        boundary = getattr(backbone, "boundary_timestep", None)
        self.settings = settings if boundary is None else dataclasses.replace(settings, expert_boundary=boundary)
        self.seed = seed
        self.queue = queue
        self.negative_prompt = negative_prompt
        # Window seeds derive from (seed, job_offset + job index): a run continued from a
        # finished one's state draws the windows an uninterrupted longer run would.
        self.job_offset = job_offset
        self.callback = callback
        self.packer = packer  # set: the model's evaluations go into its batches (vidzero.core.packing)
        self.stats = RunStats()
        self.tail_latents: dict[int, torch.Tensor] = {}

    def run(
        self,
        layout: Layout,
        progress: Progress | None = None,
        resume: EngineState | None = None,
        on_job_done: Callable[[EngineState], None] | None = None,
    ) -> Generator[Frame, None, None]:
        """Run the plan; yield every frame of the timeline in order, as soon as it exists.

        `resume` restarts after the jobs it records; `on_job_done` receives the state after each
        job, once its frames have been yielded. Statistics (`self.stats`) belong to this run.
        """
        self.stats = stats = RunStats()
        self.on_job_done = on_job_done
        progress = progress or NoProgress()
        targets = self.moving_targets(layout)
        if self.backbone.temporal_stride > 1:
            frames: FrameStore = VideoFrameStore(layout, self.backbone, self.queue, resume)
        else:
            frames = FrameStore(layout, self.backbone, self.queue, resume, targets)
        grid = self.backbone.noise_grid(self.settings)
        started = time.perf_counter()
        progress.job(frames.next_job, len(layout.jobs))
        member = self.packer.join() if self.packer is not None else None
        try:
            yield from self._windows(layout, frames, grid, progress, member)
        finally:
            if self.packer is not None and member is not None:
                self.packer.leave(member)
        yield from frames.rest()
        stats.frame_seeds.update(frames.seeds)
        stats.seconds = time.perf_counter() - started
        self.tail_latents = frames.tail

    def _windows(
        self, layout: Layout, frames: FrameStore, grid: NoiseGrid, progress: Progress, member: int | None
    ) -> Iterator[Frame]:
        """Algorithm 1 window by window: known latents in, the sampling run, new latents out."""
        stats = self.stats
        for job in layout.jobs[frames.next_job :]:
            window = frames.window(job)
            denoiser = self.backbone.denoiser(layout.prompt_for(job), self.negative_prompt)
            if self.packer is not None and member is not None:
                denoiser = PackedDenoiser(self.packer, member, denoiser.cond, denoiser.uncond, denoiser)
            model = CountingDenoiser(denoiser, stats)
            seed = job_seed(self.seed, self.job_offset + job.index)
            generator = torch.Generator("cpu").manual_seed(seed)
            start = self.settings.given_start if frames.starts_from_given(job) else 0
            z = initial_window(window, grid, self.settings, generator, start, self.backbone.init_noise_sigma)
            on_step = self._on_step(job.index, len(layout.jobs), grid.timestep, progress)
            hold = frames.targets.hold(job, grid, generator, frames.before) if frames.targets is not None else None
            z = sample_window(model, grid, window, z, self.settings, generator, start, on_step, [hold] if hold else [])
            frames.add(job, z, seed)
            stats.jobs += 1
            progress.job(job.index + 1, len(layout.jobs))
            yield from frames.ready(job.index)
            if self.on_job_done is not None:
                self.on_job_done(frames.state())

    def moving_targets(self, layout: Layout) -> MovingTargets | None:
        """The run's moving targets, when its settings ask for them (vidzero.core.targets)."""
        s = self.settings
        if s.target == "off" and s.target_frames == "model" and not layout.paths:
            return None
        if not layout.paths and not layout.given_frames() and not layout.references:  # no user's frame (text to video)
            return None
        if s.target == "auto" and self.backbone.temporal_stride > 1 and not layout.paths:
            return None  # the preset's target, where the backbone's latent frames hold several video frames
        if self.backbone.temporal_stride > 1:
            raise BadInput(
                "moving targets and motion paths need a backbone with one latent frame per video frame "
                f"(the UNet3D family); {self.backbone.model_id}'s latent frames hold {self.backbone.temporal_stride}"
            )
        return MovingTargets(layout, self.backbone, s, layout.paths)

    def _on_step(
        self, window: int, windows: int, timestep: Callable[[int], torch.Tensor], progress: Progress
    ) -> Callable[[int, torch.Tensor, torch.Tensor], None]:
        """Progress and the user's step callback after each step of a window."""
        steps = self.settings.steps

        def on_step(j: int, z: torch.Tensor, x0: torch.Tensor) -> None:
            progress.step(j + 1, steps)
            if self.callback is None:
                return
            info = StepInfo(window, windows, j + 1, steps, int(timestep(j)), z, x0)
            if self.callback(info) is False:
                raise StopRun(f"stopped by the step callback at window {window + 1}, step {j + 1}")

        return on_step
