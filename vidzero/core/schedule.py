"""Noise levels and the reverse step of one sampling run, as each backbone family defines them.

The sampler (vidzero.core.sampler) is written once, against `NoiseGrid`: the levels of a run's
steps, the forward process to a level, the way back up from one level to the one before it
(resampling), and the reverse step. Two families implement it:

- `DDIMGrid`, the variance-preserving process of ModelScope T2V and zeroscope (epsilon
  prediction), with diffusers' own `DDIMScheduler.step` as the reverse step:

      q(s, t)          = sqrt(abar_t) s + sqrt(1 - abar_t) eps
      renoise(z, t'->t) = sqrt(abar_t / abar_t') z + sqrt(1 - abar_t / abar_t') eps

- `FlowGrid`, the rectified flow of Wan (velocity prediction v = eps - s), with the Euler step:

      q(s, sigma)      = (1 - sigma) s + sigma eps
      renoise(z, sigma'->sigma) = a z + sqrt(sigma^2 - a^2 sigma'^2) eps,  a = (1 - sigma) / (1 - sigma')
      step(z, v)       = z + (sigma_next - sigma) v

The math is in small pure functions; the grids only hold a run's levels. Nothing here keeps state
between calls, so a step can be taken several times at one level (RePaint-style resampling).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from diffusers import DDIMScheduler


# ---------------------------------------------------------------------- the variance-preserving process
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


def implied_noise(z: torch.Tensor, abar: torch.Tensor | float, clean: torch.Tensor) -> torch.Tensor:
    """The eps that q_sample(clean, abar, eps) turns into z: what a perfect model predicts."""
    abar = torch.as_tensor(abar, dtype=z.dtype, device=z.device)
    return (z - abar.sqrt() * clean) / (1 - abar).sqrt()


# ---------------------------------------------------------------------- the rectified flow
def flow_sample(clean: torch.Tensor, sigma: float, noise: torch.Tensor) -> torch.Tensor:
    """Forward process of a rectified flow to the level sigma: (1 - sigma) x0 + sigma eps."""
    return (1 - sigma) * clean + sigma * noise


def flow_renoise(z: torch.Tensor, sigma_from: float, sigma_to: float, noise: torch.Tensor) -> torch.Tensor:
    """Take z from level sigma_from back up to sigma_to > sigma_from, keeping it on the forward
    process: the clean part scales by (1 - sigma_to) / (1 - sigma_from), fresh noise tops the
    noise part up to sigma_to."""
    scale = (1 - sigma_to) / (1 - sigma_from)
    extra = math.sqrt(max(sigma_to**2 - (scale * sigma_from) ** 2, 0.0))
    return scale * z + extra * noise


def flow_step(
    z: torch.Tensor, velocity: torch.Tensor, sigma: torch.Tensor | float, sigma_next: torch.Tensor | float
) -> torch.Tensor:
    """One Euler step of the flow ODE, in the order and precision diffusers' flow-matching
    scheduler computes it: z (in float32 or wider) + (sigma_next - sigma) v."""
    wide = z.dtype if z.dtype == torch.float64 else torch.float32
    return (z.to(wide) + (sigma_next - sigma) * velocity).to(velocity.dtype)


def flow_clean(z: torch.Tensor, velocity: torch.Tensor, sigma: float) -> torch.Tensor:
    """The x0 estimate of a velocity prediction: z - sigma v."""
    return z - sigma * velocity


def flow_velocity(z: torch.Tensor, sigma: float, clean: torch.Tensor) -> torch.Tensor:
    """The velocity a perfect model predicts at z for this clean sample: (z - x0) / sigma."""
    return (z - clean) / sigma


# ---------------------------------------------------------------------- guidance
def guide(uncond: torch.Tensor, cond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: uncond + w (cond - uncond)."""
    return uncond + scale * (cond - uncond)


# ---------------------------------------------------------------------- one run's levels
class NoiseGrid(Protocol):
    """The levels of one sampling run of `steps` reverse steps; step j goes from level j to j + 1."""

    steps: int

    def timestep(self, j: int) -> torch.Tensor:
        """What the denoiser is told at step j."""

    def noised(self, clean: torch.Tensor, j: int, noise: torch.Tensor) -> torch.Tensor:
        """`clean` taken to the level of step j."""

    def noised_after(self, clean: torch.Tensor, j: int, noise: torch.Tensor) -> torch.Tensor:
        """`clean` taken to the level step j ends at."""

    def renoise(self, z: torch.Tensor, j: int, noise: torch.Tensor) -> torch.Tensor:
        """z, at the level after step j, taken back up to the level of step j."""

    def step(self, z: torch.Tensor, out: torch.Tensor, j: int, generator: torch.Generator | None) -> torch.Tensor:
        """The reverse step j on a (B, C, F, h, w) window given the model's output."""

    def clean_estimate(self, z: torch.Tensor, out: torch.Tensor, j: int) -> torch.Tensor:
        """The step's estimate of the clean window."""

    def ideal_output(self, z: torch.Tensor, j: int, clean: torch.Tensor) -> torch.Tensor:
        """What a perfect model outputs at step j for a window whose clean value is `clean`."""

    def scales(self, j: int) -> tuple[float, float]:
        """(signal, noise): the level of step j is signal x0 + noise eps."""

    def scales_after(self, j: int) -> tuple[float, float]:
        """(signal, noise) of the level step j ends at."""


def frames_flat(x: torch.Tensor) -> torch.Tensor:
    """(B, C, F, h, w) -> (B*F, C, h, w), the layout diffusers' video pipelines step in."""
    b, c, f, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)


def frames_unflat(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    b, c, f, h, w = like.shape
    return x.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)


@dataclass
class DDIMGrid:
    """DDIM's timesteps for `steps` steps, on a copy of the backbone's scheduler (the backbone's
    own is never changed). The reverse step is `DDIMScheduler.step` exactly as diffusers'
    text-to-video pipeline calls it, on frames flattened to (B*F, C, h, w), so that eta > 0 draws
    its variance noise in the same order."""

    scheduler: DDIMScheduler
    steps: int
    eta: float = 0.0

    def __post_init__(self) -> None:
        self.scheduler = copy.deepcopy(self.scheduler)
        self.scheduler.set_timesteps(self.steps)
        self.timesteps = [int(t) for t in self.scheduler.timesteps]
        # DDIM steps from t to t - T/S whatever the next timestep of the grid is (the scheduler's
        # rule, with its final alpha after the last step)
        stride = self.scheduler.config.num_train_timesteps // self.steps
        alphas = self.scheduler.alphas_cumprod
        self.abar = [alphas[t] for t in self.timesteps]
        self.abar_after = [
            alphas[t - stride] if t - stride >= 0 else self.scheduler.final_alpha_cumprod for t in self.timesteps
        ]

    def timestep(self, j: int) -> torch.Tensor:
        return self.scheduler.timesteps[j]

    def noised(self, clean: torch.Tensor, j: int, noise: torch.Tensor) -> torch.Tensor:
        return q_sample(clean, self.abar[j], noise)

    def noised_after(self, clean: torch.Tensor, j: int, noise: torch.Tensor) -> torch.Tensor:
        return q_sample(clean, self.abar_after[j], noise)

    def renoise(self, z: torch.Tensor, j: int, noise: torch.Tensor) -> torch.Tensor:
        return renoise(z, self.abar_after[j], self.abar[j], noise)

    def step(self, z: torch.Tensor, out: torch.Tensor, j: int, generator: torch.Generator | None) -> torch.Tensor:
        t = self.scheduler.timesteps[j]
        stepped = self.scheduler.step(frames_flat(out), t, frames_flat(z), eta=self.eta, generator=generator)
        return frames_unflat(stepped.prev_sample, z)

    def clean_estimate(self, z: torch.Tensor, out: torch.Tensor, j: int) -> torch.Tensor:
        return predict_clean(z, self.abar[j], out)

    def ideal_output(self, z: torch.Tensor, j: int, clean: torch.Tensor) -> torch.Tensor:
        return implied_noise(z, self.abar[j], clean)

    def scales(self, j: int) -> tuple[float, float]:
        return math.sqrt(float(self.abar[j])), math.sqrt(1 - float(self.abar[j]))

    def scales_after(self, j: int) -> tuple[float, float]:
        return math.sqrt(float(self.abar_after[j])), math.sqrt(1 - float(self.abar_after[j]))


@dataclass
class FlowGrid:
    """A rectified flow's levels for `steps` steps, as diffusers' FlowMatchEulerDiscreteScheduler
    sets them (with its shift); the reverse step is the Euler step, stateless (diffusers' own
    step() counts its calls, which resampling at one level would break)."""

    scheduler: Any  # a FlowMatchEulerDiscreteScheduler; a copy is set to the run's steps
    steps: int

    def __post_init__(self) -> None:
        self.scheduler = copy.deepcopy(self.scheduler)
        self.scheduler.set_timesteps(self.steps)
        self.sigmas = self.scheduler.sigmas.to(torch.float32)  # steps + 1 levels, the last 0
        self.timesteps = self.scheduler.timesteps

    def timestep(self, j: int) -> torch.Tensor:
        return self.timesteps[j]

    def noised(self, clean: torch.Tensor, j: int, noise: torch.Tensor) -> torch.Tensor:
        return flow_sample(clean, float(self.sigmas[j]), noise)

    def noised_after(self, clean: torch.Tensor, j: int, noise: torch.Tensor) -> torch.Tensor:
        return flow_sample(clean, float(self.sigmas[j + 1]), noise)

    def renoise(self, z: torch.Tensor, j: int, noise: torch.Tensor) -> torch.Tensor:
        return flow_renoise(z, float(self.sigmas[j + 1]), float(self.sigmas[j]), noise)

    def step(self, z: torch.Tensor, out: torch.Tensor, j: int, generator: torch.Generator | None) -> torch.Tensor:
        return flow_step(z, out, self.sigmas[j], self.sigmas[j + 1])

    def clean_estimate(self, z: torch.Tensor, out: torch.Tensor, j: int) -> torch.Tensor:
        return flow_clean(z, out, float(self.sigmas[j]))

    def ideal_output(self, z: torch.Tensor, j: int, clean: torch.Tensor) -> torch.Tensor:
        return flow_velocity(z, float(self.sigmas[j]), clean)

    def scales(self, j: int) -> tuple[float, float]:
        return 1 - float(self.sigmas[j]), float(self.sigmas[j])

    def scales_after(self, j: int) -> tuple[float, float]:
        return 1 - float(self.sigmas[j + 1]), float(self.sigmas[j + 1])
