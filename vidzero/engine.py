"""The frame-queue conditioning engine: runs a plan of windows on the one sampler.

    pixels -> (io) frames -> (backbone) latents -> (timeline) windows -> (sampler) new latents
           -> (backbone) pixels -> frames out, streamed in timeline order

The engine keeps only the frames that a later window still reads, so memory does not grow with
video length. Each window job draws its noise from its own generator, seeded from the run seed
and the job index; the seed of every generated frame is reported with it.

Queue modes (how a generated frame conditions later windows):
- "pixel" (the release's behaviour): the frame is decoded, quantised to 8-bit as written to the
  output, and encoded again; later windows see exactly the frame the user sees.
- "latent": the generated latent itself is the known latent of later windows (no round trip).
Known input frames are encoded once either way (the VAE encoder is deterministic: posterior mean).

Guidance reuse (`guidance_passes="first"`): the U + 1 passes of one DDIM step all run at the same
timestep on windows that differ by their resampling noise. Guided eps = cond + (w - 1)(cond -
uncond); the guidance direction (cond - uncond) of the first pass is reused by the others, which
run the conditional branch alone (half a guided evaluation each). The direction, not the
unconditional prediction: each branch predicts mostly the window's own noise, which a re-noised
pass draws afresh, and that part cancels in the difference only when both branches saw the same
window.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from vidzero.backbone import Backbone
from vidzero.errors import StopRun
from vidzero.sampler import SamplerSettings, StepCallback, StepInfo, initial_window, sample_window
from vidzero.timeline import WindowJob, last_reads


class Progress(Protocol):
    def job(self, done: int, total: int) -> None: ...
    def step(self, done: int, total: int) -> None: ...


class NoProgress:
    def job(self, done: int, total: int) -> None:
        pass

    def step(self, done: int, total: int) -> None:
        pass


@dataclass
class Frame:
    """One output frame: its pixels, its place on the timeline, where it came from."""

    index: int
    image: object  # (H, W, 3) uint8 by default; see PlannedRun.output_type
    known: bool
    seed: int | None = None  # the seed of the window that generated it
    latent: torch.Tensor | None = None  # the sampled latent (generated frames) or the encoded one


@dataclass
class EngineState:
    """Everything a run needs to go on after job `next_job` (see vidzero.runstate)."""

    next_job: int
    next_out: int
    pixels: dict[int, np.ndarray]  # frames later jobs read, and frames not yet yielded
    latents: dict[int, torch.Tensor]  # queue latents later jobs read (latent queue, or given)
    seeds: dict[int, int]
    tail_latents: dict[int, torch.Tensor] = field(default_factory=dict)  # generated frames among the last window-1


@dataclass
class RunStats:
    frame_seeds: dict[int, int] = field(default_factory=dict)
    jobs: int = 0
    cfg_evaluations: int = 0  # guided evaluations of a window (the paper's unit of cost)
    unet_samples: int = 0  # window-sized UNet inputs actually run (2 per full guided evaluation)
    seconds: float = 0.0
    unet_seconds: float = 0.0  # of `seconds`, inside the guided UNet evaluations


Prompt = str | dict[int, str]  # one prompt, or a schedule: {first frame: prompt from there on}


def prompt_at(prompt: Prompt, frame: int) -> str:
    """The prompt in force at `frame` (the schedule entry with the largest start <= frame)."""
    if isinstance(prompt, str):
        return prompt
    starts = [s for s in prompt if s <= frame]
    return prompt[max(starts)] if starts else prompt[min(prompt)]


def job_seed(seed: int, job_index: int) -> int:
    """A well-mixed 63-bit seed per window job, a pure function of (run seed, job index)."""
    return int(np.random.SeedSequence([seed, job_index]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def to_pixels(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8, rounding to nearest."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def from_pixels(frames: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1


class GuidedDenoiser:
    """eps(z, t) for one window with classifier-free guidance, counting the UNet work it does.

    With `reuse_uncond`, the guidance direction (cond - uncond) of the first call at a timestep
    is reused by later calls at the same timestep (the resampling passes of one DDIM step), which
    then evaluate the conditional branch only."""

    def __init__(
        self,
        backbone: Backbone,
        prompt: str,
        negative_prompt: str,
        guidance: float,
        stats: RunStats,
        reuse_uncond: bool = False,
    ) -> None:
        self.bb, self.prompt, self.negative, self.guidance = backbone, prompt, negative_prompt, guidance
        self.stats, self.reuse = stats, reuse_uncond
        self._cached: tuple[int, torch.Tensor] | None = None

    def __call__(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        started = time.perf_counter()
        eps = self._guided(z, t)
        if eps.device.type == "cuda":  # kernels run asynchronously: time them, not their launch
            torch.cuda.synchronize(eps.device)
        self.stats.unet_seconds += time.perf_counter() - started
        return eps

    def _guided(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.stats.cfg_evaluations += 1
        if self.guidance <= 1.0:
            self.stats.unet_samples += 1
            return self.bb.guided_eps(z, t, self.prompt, self.guidance, self.negative)
        if self.reuse and self._cached is not None and self._cached[0] == int(t):
            self.stats.unet_samples += 1
            cond = self.bb.guided_eps(z, t, self.prompt, 1.0)
            return cond + (self.guidance - 1.0) * self._cached[1]
        self.stats.unet_samples += 2
        eps, uncond = self.bb.guided_eps(z, t, self.prompt, self.guidance, self.negative, return_uncond=True)
        self._cached = (int(t), (eps - uncond) / self.guidance)  # cond - uncond
        return eps


class Engine:
    def __init__(
        self,
        backbone: Backbone,
        settings: SamplerSettings,
        seed: int = 0,
        queue: str = "pixel",
        job_offset: int = 0,
        guidance_passes: str = "all",
        callback: StepCallback | None = None,
    ) -> None:
        self.backbone = backbone
        self.settings = settings
        self.seed = seed
        self.queue = queue
        # Window seeds derive from (seed, job_offset + job index): a run continued from a
        # finished one's state draws the windows an uninterrupted longer run would.
        self.job_offset = job_offset
        self.guidance_passes = guidance_passes
        self.callback = callback
        self.stats = RunStats()

    def run(
        self,
        jobs: list[WindowJob],
        length: int,
        known: dict[int, np.ndarray],
        prompt: Prompt,
        negative_prompt: str = "",
        progress: Progress | None = None,
        resume: EngineState | None = None,
        on_job_done: Callable[[EngineState], None] | None = None,
        known_latents: dict[int, torch.Tensor] | None = None,
    ) -> Iterator[Frame]:
        """Run the plan; yield every frame of the timeline in order, as soon as it exists.

        `resume` restarts after the jobs it records; `on_job_done` receives the state after each
        job, once its frames have been yielded; `known_latents` gives latents for known frames
        (used as they are, with no VAE round trip). Statistics (`self.stats`) belong to this run.
        """
        self.stats = stats = RunStats()
        bb, progress = self.backbone, progress or NoProgress()
        pixels: dict[int, np.ndarray] = dict(known)
        latents: dict[int, torch.Tensor] = dict(known_latents or {})
        seeds: dict[int, int] = {}
        tail: dict[int, torch.Tensor] = {}
        fresh: dict[int, torch.Tensor] = {}  # sampled latents not yet yielded
        last = last_reads(jobs)
        tail_from = length - (bb.frames - 1)
        next_out = first_job = 0
        if resume is not None:
            pixels.update(resume.pixels)
            latents.update(resume.latents)
            seeds.update(resume.seeds)
            tail.update(resume.tail_latents)
            next_out, first_job = resume.next_out, resume.next_job
            for frame in [f for f in pixels if f < next_out and last.get(f, -1) < first_job]:
                pixels.pop(frame)
        t_start = time.perf_counter()
        sched = bb.scheduler
        sched.set_timesteps(self.settings.steps, device=bb.device)

        def latent_of(frame: int) -> torch.Tensor:
            if frame not in latents:
                latents[frame] = bb.encode_frames(from_pixels(pixels[frame][None]))[0]
            return latents[frame]

        progress.job(first_job, len(jobs))
        for job in jobs[first_job:]:
            window = len(job.slots)
            c, h, w = bb.latent_shape
            known_mask = torch.ones(window, dtype=torch.bool)
            known_mask[list(job.generate)] = False
            clean = torch.zeros(1, c, window, h, w, device=bb.device)
            for slot, frame in enumerate(job.slots):
                if known_mask[slot]:
                    clean[0, :, slot] = latent_of(frame)
            denoiser = GuidedDenoiser(
                bb,
                prompt_at(prompt, min(job.targets)),
                negative_prompt,
                self.settings.guidance,
                stats,
                reuse_uncond=self.guidance_passes == "first",
            )
            seed = job_seed(self.seed, self.job_offset + job.index)
            generator = torch.Generator("cpu").manual_seed(seed)
            z0 = initial_window(
                clean,
                known_mask,
                list(job.init_source),
                sched.alphas_cumprod[int(sched.timesteps[0])],
                self.settings.init,
                generator,
                sched.init_noise_sigma,
            )
            out = sample_window(
                denoiser,
                sched,
                clean,
                known_mask,
                z0,
                self.settings,
                generator,
                self._step_callback(job.index, len(jobs), progress),
            )
            kept = [(slot, frame) for slot, frame in zip(job.generate, job.targets) if frame < length]
            new_latents = torch.stack([out[0, :, slot] for slot, _ in kept])
            images = to_pixels(bb.decode(new_latents))
            for (_, frame), latent, image in zip(kept, new_latents, images):
                pixels[frame] = image
                seeds[frame] = seed
                fresh[frame] = latent
                if self.queue == "latent":
                    latents[frame] = latent
                if frame >= tail_from:
                    tail[frame] = latent
            stats.jobs += 1
            progress.job(job.index + 1, len(jobs))
            while next_out < length and next_out in pixels:
                yield self._frame(next_out, pixels, known, seeds, fresh.pop(next_out, None), latents)
                next_out += 1
            # Forget frames no later job reads and that have been yielded.
            for frame in [f for f in pixels if f < next_out and last.get(f, -1) <= job.index]:
                pixels.pop(frame)
                latents.pop(frame, None)
            if on_job_done is not None:
                keep = latents if self.queue == "latent" or known_latents else {}
                on_job_done(
                    EngineState(
                        job.index + 1,
                        next_out,
                        dict(pixels),
                        {f: keep[f] for f in pixels if f in keep},
                        dict(seeds),
                        dict(tail),
                    )
                )
        while next_out < length:  # known frames after the last generated one
            if next_out not in pixels:
                raise RuntimeError(f"the plan never produced frame {next_out}")
            yield self._frame(next_out, pixels, known, seeds, None, latents)
            next_out += 1
        stats.frame_seeds.update(seeds)
        stats.seconds = time.perf_counter() - t_start
        self.tail_latents = tail

    def _step_callback(self, window: int, windows: int, progress: Progress):
        steps = self.settings.steps

        def on_step(step: int, timestep: int, z: torch.Tensor, x0: torch.Tensor) -> None:
            progress.step(step, steps)
            if (
                self.callback is not None
                and self.callback(StepInfo(window, windows, step, steps, timestep, z, x0)) is False
            ):
                raise StopRun(f"stopped by the step callback at window {window + 1}, step {step}")

        return on_step

    @staticmethod
    def _frame(index, pixels, known, seeds, fresh_latent, latents) -> Frame:
        latent = fresh_latent if fresh_latent is not None else latents.get(index)
        return Frame(index, pixels[index], index in known, seeds.get(index), latent)
