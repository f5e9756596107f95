"""The TI2V-Zero sampling run for one window, as small pure functions (k-diffusion style).

Notation (see docs/how-it-works.md): a window z of shape (B, C, F, h, w) whose slots are either
*known* (clean latents s, given) or *generated*. abar_t is the scheduler's cumulative alpha.

    q(s, t)      = sqrt(abar_t) s + sqrt(1 - abar_t) eps                  (forward noising)
    renoise(z)   = sqrt(abar_t / abar_t') z + sqrt(1 - abar_t / abar_t') eps   (t' -> t)
    DDIM(z, t)   = diffusers' DDIMScheduler.step, used exactly as diffusers defines it

One run (Algorithm 1 of the paper, with RePaint-style resampling):

    z <- init (DDPM inversion of the nearest known latent, or pure noise)
    for t, t' in consecutive timesteps:
        c_t, c_t' <- q(s, t), q(s, t')            fresh, independent noise every step
        z[known] <- c_t
        repeat U times:
            z <- DDIM(z, t -> t');  z[known] <- c_t';  z <- renoise(z, t' -> t)
        z <- DDIM(z, t -> t')
    z[known] <- s
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler
from diffusers.utils.torch_utils import randn_tensor

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class StepInfo:
    """What a step callback sees after each DDIM step of a window."""

    window: int  # index of the window job in the run's plan
    windows: int
    step: int  # 1-based within the window
    steps: int
    timestep: int
    latents: torch.Tensor  # the window after the step, (B, C, F, h, w)
    x0: torch.Tensor  # the step's estimate of the clean window


StepCallback = Callable[[StepInfo], object]  # returning False stops the run


def q_sample(clean: torch.Tensor, abar: torch.Tensor | float, noise: torch.Tensor) -> torch.Tensor:
    """Forward diffusion to the level abar: sqrt(abar) x0 + sqrt(1 - abar) eps."""
    abar = torch.as_tensor(abar, dtype=clean.dtype, device=clean.device)
    return abar.sqrt() * clean + (1 - abar).sqrt() * noise


def predict_clean(z: torch.Tensor, abar: torch.Tensor | float, eps: torch.Tensor) -> torch.Tensor:
    """The x0 estimate that q_sample inverts to: (z - sqrt(1 - abar) eps) / sqrt(abar)."""
    abar = torch.as_tensor(abar, dtype=z.dtype, device=z.device)
    return (z - (1 - abar).sqrt() * eps) / abar.sqrt()


def renoise(
    z: torch.Tensor, abar_from: torch.Tensor | float, abar_to: torch.Tensor | float, noise: torch.Tensor
) -> torch.Tensor:
    """Take z from noise level abar_from (t') back up to abar_to (t < t' in time, abar_to < abar_from)."""
    ratio = torch.as_tensor(abar_to, dtype=z.dtype, device=z.device) / torch.as_tensor(
        abar_from, dtype=z.dtype, device=z.device
    )
    return ratio.sqrt() * z + (1 - ratio).sqrt() * noise


def previous_alpha_cumprod(scheduler: DDIMScheduler, t: int) -> torch.Tensor:
    """abar at the timestep DDIM steps to from t (the scheduler's own rule, incl. the final alpha)."""
    prev = t - scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    return scheduler.alphas_cumprod[prev] if prev >= 0 else scheduler.final_alpha_cumprod


def ddim_step(
    scheduler: DDIMScheduler,
    eps: torch.Tensor,
    t: torch.Tensor,
    z: torch.Tensor,
    eta: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """One DDIM step t -> t' on a (B, C, F, h, w) window.

    The scheduler runs on frames flattened to (B*F, C, h, w), exactly as diffusers'
    TextToVideoSDPipeline does, so eta > 0 draws its variance noise in the same order.
    """
    b, c, f, h, w = z.shape
    flat = lambda x: x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)  # noqa: E731
    out = scheduler.step(flat(eps), t, flat(z), eta=eta, generator=generator).prev_sample
    return out.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)


def noise_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return randn_tensor(x.shape, generator=generator, device=x.device, dtype=x.dtype)


@dataclass(frozen=True)
class SamplerSettings:
    steps: int = 10
    resample: int = 4  # U, the RePaint-style resampling iterations per step
    guidance: float = 9.0
    eta: float = 0.0
    init: str = "inversion"  # or "random": the ablation without DDPM inversion
    resample_steps: int | None = None  # resample only in the first N DDIM steps (None: all of them)

    def resamples_at(self, step: int) -> int:
        """U at DDIM step `step` (0-based)."""
        return self.resample if self.resample_steps is None or step < self.resample_steps else 0

    def evaluations(self) -> int:
        """Guided UNet evaluations of one window: S + U x (steps that resample)."""
        return sum(1 + self.resamples_at(j) for j in range(self.steps))


def initial_window(
    known: torch.Tensor,
    known_mask: torch.Tensor,
    init_source: list[int | None],
    abar_start: torch.Tensor,
    init: str,
    generator: torch.Generator | None,
    init_noise_sigma: float = 1.0,
) -> torch.Tensor:
    """The window at the first timestep.

    Every unknown slot i with init_source[i] = j starts as q(known[:, :, j], t_1) (DDPM
    inversion); with init="random" (or no known slot to invert from) it starts as pure noise.
    Known slots are overwritten at the first step anyway. With no known slot at all this is one
    randn draw of the window's shape, the same draw diffusers' pipeline makes.
    """
    if init == "random" or not bool(known_mask.any()):
        return noise_like(known, generator) * init_noise_sigma
    if init != "inversion":
        raise ValueError(f"unknown init {init!r}")
    z = known.clone()
    noise = noise_like(known, generator)
    for slot, source in enumerate(init_source):
        if known_mask[slot]:
            continue
        if source is None:
            z[:, :, slot] = noise[:, :, slot] * init_noise_sigma
        else:
            z[:, :, slot] = q_sample(known[:, :, source], abar_start, noise[:, :, slot])
    return z


def sample_window(
    eps_fn: EpsFn,
    scheduler: DDIMScheduler,
    known: torch.Tensor,
    known_mask: torch.Tensor,
    z: torch.Tensor,
    settings: SamplerSettings,
    generator: torch.Generator | None = None,
    callback: Callable[[int, int, torch.Tensor, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """One sampling run over a window; returns the window with generated slots filled in.

    known: (B, C, F, h, w) clean latents (values at unknown slots are ignored);
    known_mask: (F,) bool; z: the initial window (see `initial_window`);
    eps_fn(z, t): guided noise prediction for the whole window;
    callback(step, timestep, z, x0) after each DDIM step (1-based step).
    `scheduler.set_timesteps(settings.steps)` must have been called.
    """
    mask = known_mask.view(1, 1, -1, 1, 1).to(z.device)
    any_known = bool(known_mask.any())
    timesteps = scheduler.timesteps
    for j, t in enumerate(timesteps):
        abar_t = scheduler.alphas_cumprod[int(t)]
        abar_prev = previous_alpha_cumprod(scheduler, int(t))
        if any_known:
            c_t = q_sample(known, abar_t, noise_like(known, generator))
            c_prev = q_sample(known, abar_prev, noise_like(known, generator))
            z = torch.where(mask, c_t, z)
        for _ in range(settings.resamples_at(j)):
            z = ddim_step(scheduler, eps_fn(z, t), t, z, settings.eta, generator)
            if any_known:
                z = torch.where(mask, c_prev, z)
            z = renoise(z, abar_prev, abar_t, noise_like(z, generator))
        eps = eps_fn(z, t)
        if callback is not None:
            x0 = predict_clean(z, abar_t, eps)
        z = ddim_step(scheduler, eps, t, z, settings.eta, generator)
        if callback is not None:
            callback(j + 1, int(t), z, x0)
    return torch.where(mask, known, z) if any_known else z
