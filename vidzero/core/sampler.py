"""The TI2V-Zero sampling run for one window: the paper's loop, as small pure functions
(k-diffusion style).

A window z of shape (B, C, F, h, w) has *known* slots (clean latents s, given) and generated
ones. With the levels of a `NoiseGrid` (DDIM for ModelScope, the rectified flow for Wan), one run
is Algorithm 1 of the paper with RePaint-style resampling, and `sample_window` is this loop line
for line:

    z <- init: every new slot from q(s[nearest known slot], level 0) (DDPM inversion), or noise
    for each step j (level j -> level after j):
        z[known] <- q(s, level j)                     fresh noise every step
        repeat U times:
            z <- step(z, guided(z, j));  z[known] <- q(s, level after j);  z <- renoise(z, after j -> j)
        z <- step(z, guided(z, j))
    z[known] <- s

guided(z, j) = uncond + w (cond - uncond), classifier-free guidance. What the loop calls `guided`
and the replacement of the known slots (the "holds") are vidzero.core.steering's, and so is
everything beyond the paper, each off by default (`SamplerSettings`): resampling in the first
steps only; guidance inside a range of steps only; known slots replaced in the first steps only (a
dual clock); noise rectification; posterior guidance through the model (reconstruction guidance,
the DPS step, model-consistent known slots, DING, latent patch swapping; the math in
vidzero.core.guidance); a moving target for the new slots. A start at a later step for windows
that generate next to a user's frame (SDEdit-like) and a low-pass init of the new slot are
`initial_window`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import torch

from vidzero.core.choices import RELEASE_GUIDANCE, RELEASE_INIT, RELEASE_RESAMPLE, RELEASE_STEPS
from vidzero.core.schedule import NoiseGrid
from vidzero.core.steering import GuidedOutput, Hold, differentiating, noise_like, window_holds

__all__ = ["Denoiser", "Prediction", "SamplerSettings", "StepInfo", "Window", "differentiating", "noise_like"]


class Prediction(NamedTuple):
    cond: torch.Tensor
    uncond: torch.Tensor | None  # None when only the conditional branch ran


class Denoiser(Protocol):
    """The backbone's prediction for a whole window at the model timestep t: both guidance
    branches when `guided`, the conditional one alone otherwise. A denoiser may also have a
    `differentiating()` context, entered around an evaluation and its backward pass when
    posterior guidance takes a gradient through it (the backbones freeze their weights there)."""

    def __call__(self, z: torch.Tensor, t: torch.Tensor, guided: bool) -> Prediction: ...


@dataclass(frozen=True)
class StepInfo:
    """What a step callback sees after each reverse step of a window."""

    window: int  # index of the window job in the run's plan
    windows: int
    step: int  # 1-based within the window
    steps: int
    timestep: int
    latents: torch.Tensor  # the window after the step, (B, C, F, h, w)
    x0: torch.Tensor  # the step's estimate of the clean window


StepCallback = Callable[[StepInfo], object]  # returning False stops the run


@dataclass(frozen=True)
class SamplerSettings:
    """How one window is sampled; every option beyond the paper's is off by default."""

    steps: int = RELEASE_STEPS
    resample: int = RELEASE_RESAMPLE  # U, the RePaint-style resampling iterations per step
    guidance: float = RELEASE_GUIDANCE
    guidance_2: float | None = None  # Wan 2.2: the low-noise expert's scale (None: guidance)
    expert_boundary: float | None = None  # the timestep under which the second expert works (from the backbone)
    eta: float = 0.0  # DDIM's eta (0: deterministic); the flow family has no eta
    init: str = RELEASE_INIT  # "random": the ablation without DDPM inversion; "lowpass": FrameInit
    resample_steps: int | None = None  # resample in the first N steps only (None: all)
    guidance_steps: tuple[int, int] | None = None  # guided in steps [a, b) only (None: all)
    replace_steps: int | None = None  # known slots replaced in the first N steps only (None: all)
    rectify: float = 0.0  # weight of noise rectification (0: off)
    given_start: int = 0  # windows whose new slots start from a user's frame begin at this step
    # posterior guidance (vidzero.core.guidance), all off by default
    reconstruction: float = 0.0  # Ho et al.'s w_r (0: off)
    dps: float = 0.0  # the DPS step's zeta (0: off)
    posterior_steps: tuple[int, int] | None = None  # gradient guidance in steps [a, b) only (None: all)
    generated_weight: float = 1.0  # weight of generated known slots in the guidance's error (the user's: 1)
    known_noise: str = "fresh"  # known slots' noise: fresh (the paper), model (x0 replacement), ding
    patch_swap: float = 0.0  # FlexTI2V's share of new-slot patches taken from the known frame (0: off)
    # moving targets (vidzero.core.targets), off by default
    target: str = "off"  # where the user's image moved along the video's motion is used: window, queue, both, auto
    target_steps: tuple[int, int] | None = None  # the window holds it in steps [a, b) (None: the default)
    target_frames: str = "model"  # the frames written: the model's (harmonised) or the targets

    def posterior_at(self, step: int) -> bool:
        """Whether step `step` (0-based) takes a gradient through the model."""
        if self.reconstruction <= 0 and self.dps <= 0:
            return False
        return self.posterior_steps is None or self.posterior_steps[0] <= step < self.posterior_steps[1]

    def backward_passes(self, start: int = 0) -> int:
        """Gradients through the model in one window from step `start` (one per evaluation of a
        guided step)."""
        return sum(1 + self.resamples_at(j) for j in range(start, self.steps) if self.posterior_at(j))

    def resamples_at(self, step: int) -> int:
        """U at step `step` (0-based)."""
        return self.resample if self.resample_steps is None or step < self.resample_steps else 0

    def guided_at(self, step: int, timestep: float | None = None) -> bool:
        """Whether step `step` (0-based, at `timestep`) runs both guidance branches."""
        if self.scale_at(timestep) <= 1.0:
            return False
        return self.guidance_steps is None or self.guidance_steps[0] <= step < self.guidance_steps[1]

    def scale_at(self, timestep: float | None) -> float:
        """The guidance scale at `timestep`: `guidance_2` where a second expert works (Wan 2.2's
        low-noise steps, as WanPipeline's guidance_scale_2), `guidance` elsewhere."""
        low = self.expert_boundary is not None and timestep is not None and timestep < self.expert_boundary
        return self.guidance_2 if low and self.guidance_2 is not None else self.guidance

    def replaces_at(self, step: int) -> bool:
        return self.replace_steps is None or step < self.replace_steps

    def evaluations(self, start: int = 0) -> int:
        """Model evaluations of one window from step `start`: S + U x (steps that resample)."""
        return sum(1 + self.resamples_at(j) for j in range(start, self.steps))

    def unet_samples(self, start: int = 0) -> int:
        """Window-sized model inputs of one window (2 per guided evaluation, 1 otherwise)."""
        return sum((1 + self.resamples_at(j)) * (2 if self.guided_at(j) else 1) for j in range(start, self.steps))


@dataclass(frozen=True)
class Window:
    """The layout of one window: known slots, their clean latents, where each new slot starts."""

    clean: torch.Tensor  # (B, C, F, h, w); values at generated slots are ignored
    known: torch.Tensor  # (F,) bool
    init_source: tuple[int | None, ...]  # per slot: the known slot its inversion starts from
    given: torch.Tensor | None = None  # (F,) bool: known slots that hold a user's frame (None: all)
    repeats: torch.Tensor | None = None  # (F,) bool: known slots repeating a frame a nearer slot holds

    def error_weights(self, generated_weight: float) -> torch.Tensor:
        """(F,) weights of the known slots in the posterior guidance's error: 1 for the user's
        frames, `generated_weight` for generated frames in the queue, 0 for new slots. A frame
        counts once: the copies that pad a short queue (the paper's repeat) are not observations
        of a still scene, and counting them would pull the new frames toward standing still."""
        given = self.known if self.given is None else self.given
        weights = torch.where(given, 1.0, generated_weight)
        counted = self.known if self.repeats is None else self.known & ~self.repeats
        return torch.where(counted, weights, 0.0).to(torch.float64)


def lowpass(x: torch.Tensor, cutoff: float = 0.25) -> torch.Tensor:
    """The spatial low frequencies of x (..., h, w): a Gaussian filter in the frequency domain with
    its standard deviation at `cutoff` of the Nyquist frequency (FrameInit's filter, in space)."""
    h, w = x.shape[-2:]
    fy = torch.fft.fftfreq(h, device=x.device, dtype=torch.float64)[:, None] * 2
    fx = torch.fft.fftfreq(w, device=x.device, dtype=torch.float64)[None, :] * 2
    gain = torch.exp(-(fx**2 + fy**2) / (2 * cutoff**2))
    return torch.fft.ifft2(torch.fft.fft2(x.to(torch.float64)) * gain).real.to(x.dtype)


def initial_window(
    window: Window,
    grid: NoiseGrid,
    settings: SamplerSettings,
    generator: torch.Generator | None,
    start: int = 0,
    init_noise_sigma: float = 1.0,
) -> torch.Tensor:
    """The window at step `start`.

    Every new slot i with a source slot j starts as q(clean[j], level of step `start`) (DDPM
    inversion); "random" (or no known slot to invert from) starts it as pure noise, "lowpass"
    keeps only the low spatial frequencies of the inverted latent and takes the high ones from
    fresh noise. With no known slot this is one randn draw of the window's shape, the draw
    diffusers' pipelines make. Known slots are replaced at the first step anyway.
    """
    clean, known = window.clean, window.known
    if settings.init == "random" or not bool(known.any()):
        return noise_like(clean, generator) * init_noise_sigma
    z = clean.clone()
    noise = noise_like(clean, generator)
    extra = noise_like(clean, generator) if settings.init == "lowpass" else None
    for slot, source in enumerate(window.init_source):
        if known[slot]:
            continue
        if source is None:
            z[:, :, slot] = noise[:, :, slot] * init_noise_sigma
            continue
        z[:, :, slot] = grid.noised(clean[:, :, source], start, noise[:, :, slot])
        if extra is not None:
            z[:, :, slot] = lowpass(z[:, :, slot]) + extra[:, :, slot] - lowpass(extra[:, :, slot])
    return z


def sample_window(
    model: Denoiser,
    grid: NoiseGrid,
    window: Window,
    z: torch.Tensor,
    settings: SamplerSettings,
    generator: torch.Generator | None = None,
    start: int = 0,
    on_step: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
    holds: Sequence[Hold] = (),
) -> torch.Tensor:
    """One sampling run over a window from step `start`; returns the window with its generated
    slots filled in (and its known slots exactly `window.clean`).

    z: the window at step `start` (see `initial_window`); on_step(j, z, x0) after each step;
    holds: what else keeps parts of the window to given content (a moving target), after the
    known slots and the holds `settings` ask for.
    """
    guided = GuidedOutput(model, grid, window, settings)
    held = window_holds(window, grid, settings, generator, start, holds)
    with torch.no_grad():  # posterior guidance enables a gradient where it needs one
        for j in range(start, grid.steps):
            z = held.enter(z, j)  # z[known] <- q(s, level j)
            for _ in range(settings.resamples_at(j)):
                out = guided(z, j)
                z = held.after(grid.step(z, out, j, generator), z, out, j)  # z[known] <- q(s, level after j)
                z = grid.renoise(z, j, noise_like(z, generator))
            out = guided(z, j)
            z_before, z = z, held.after(grid.step(z, out, j, generator), z, out, j, last=True)
            if on_step is not None:
                on_step(j, z, grid.clean_estimate(z_before, out, j))
    return held.finish(z)  # z[known] <- s
