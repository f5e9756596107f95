"""Posterior guidance: the known slots guide the new ones through the model.

TI2V-Zero's replacement method only ever *overwrites* the known slots; whatever the new slots
should be given them reaches the new slots through the model's attention alone, and Ho et al.
(2022, "Video Diffusion Models", sec. 3.1) found that this leaves generated frames incoherent
with the given ones. The functions here pull the new slots toward what explains the known
frames. Every update is written in x0 space (the step's estimate of the clean window), so one
function serves both noise families: the sampler turns a guided clean estimate back into the
model output that DDIM or the flow's Euler step expects (`NoiseGrid.ideal_output`).

Notation: at step j the window is z, the guided model output gives the clean estimate
x0(z) and the noise estimate eps(z); s are the clean known latents, M the known slots with their
weights; the level of step j has signal scale a_j and noise scale n_j (VP: sqrt(abar), sqrt(1 -
abar); flow: 1 - sigma, sigma), primes mark the level the step ends at.

- Reconstruction guidance (Ho et al. 2022, eq. 7), new slots b only:
      x0~_b = x0_b - (w_r a_j / 2) grad_{z_b} ||M (x0(z) - s)||^2
- The DPS step (Chung et al. 2023, "Diffusion Posterior Sampling", Alg. 1 with the norm's
  gradient, as their normalised step size zeta / ||y - A x0||): the step's result moves by
      z'_b <- z'_b - zeta grad_{z_b} ||M (x0(z) - s)||
  written in x0 space through the step's gain g_j = d z' / d x0 at fixed z (DDIM, eta = 0:
  a'_j - n'_j a_j / n_j; the Euler step: 1 - sigma'/sigma): x0~_b = x0_b - zeta grad / g_j.
- Model-consistent known slots (x0 replacement, DDNM, Wang et al. 2023): after a step the known
  slots are s taken to the next level with the model's *own* noise estimate, a'_j s + n'_j eps,
  instead of fresh noise, so the window stays one the model itself could have made.
- DING (Moufad et al., ICLR 2026, "Efficient zero-shot inpainting with decoupled diffusion
  guidance"): the known slots are observed through the model's noise estimate,
  y' = a'_j s + n'_j eps with standard deviation rho n'_j, and the Gaussian transition of the
  known slots (mean m, the DDPM variance v_j) is conditioned on it in closed form:
      z'_a = m + k (y' - m) + sqrt(k rho^2 n'^2_j) xi,   k = v_j / (v_j + rho^2 n'^2_j)
  rho -> 0 is x0 replacement; no gradient through the model is needed (rho: sampler.DING_OBSERVATION).
- Latent patch swapping (FlexTI2V, Lai et al. 2025): before each model call a random share of
  each new slot's patches is taken from its source known latent noised to the step's level; the
  share falls with the step and with the slot's distance from the known frame:
      p_ij = p (1 - j / S) / d_i
"""

from __future__ import annotations

import math

import torch

PATCH = 2  # latent pixels per side of a swapped patch (16 pixels in a VAE of factor 8)


# ---------------------------------------------------------------------- reconstruction guidance
def known_error(x0: torch.Tensor, clean: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(B,): sum_k w_k ||x0_k - s_k||^2 of each window in the batch (B, C, F, h, w); the
    weights (F,) are 0 on the new slots."""
    w = weights.to(x0.dtype).view(1, 1, -1, 1, 1)
    return (w * (x0 - clean).pow(2)).flatten(1).sum(1)


def reconstruction_shift(grad_sq: torch.Tensor, signal: float, weight: float) -> torch.Tensor:
    """Ho et al.'s correction of the clean estimate: -(w_r a_j / 2) grad_z ||M (x0 - s)||^2."""
    return -(weight * signal / 2) * grad_sq


def dps_shift(grad_sq: torch.Tensor, error_sq: torch.Tensor, gain: float, weight: float) -> torch.Tensor:
    """DPS's normalised step in x0 space: -zeta grad_z ||M (x0 - s)|| / g_j per window, with the
    norm's gradient grad ||e|| = grad ||e||^2 / (2 ||e||) (zero where the error is zero)."""
    norm = error_sq.sqrt().view(-1, *([1] * (grad_sq.dim() - 1)))
    safe = torch.where(norm > 0, norm, torch.ones_like(norm))
    return torch.where(norm > 0, -(weight / gain) * grad_sq / (2 * safe), torch.zeros_like(grad_sq))


def step_gain(signal: float, noise: float, signal_after: float, noise_after: float) -> float:
    """d z' / d x0 of a deterministic step at fixed z: z' = a' x0 + n' (z - a x0) / n. The DDIM
    step with eta = 0 and the flow's Euler step are both of this form."""
    return signal_after - noise_after * signal / noise


# ---------------------------------------------------------------------- known slots from the model
def model_noise_known(clean: torch.Tensor, eps: torch.Tensor, signal_after: float, noise_after: float) -> torch.Tensor:
    """x0 replacement (DDNM): the known slots at the next level with the model's own noise,
    a' s + n' eps."""
    return signal_after * clean + noise_after * eps


def ddpm_variance(abar: float, abar_after: float) -> float:
    """The DDPM posterior variance of a step from abar to abar_after (> abar):
    (1 - abar') / (1 - abar) (1 - abar / abar')."""
    return (1 - abar_after) / (1 - abar) * (1 - abar / abar_after)


def vp_level(signal: float, noise: float) -> float:
    """The variance-preserving abar of a level with these scales (a flow level's equivalent):
    a^2 / (a^2 + n^2)."""
    return signal**2 / (signal**2 + noise**2)


def ding_known(
    transition_mean: torch.Tensor,
    observed: torch.Tensor,
    transition_var: float,
    observation_std: float,
    noise: torch.Tensor,
) -> torch.Tensor:
    """DING's closed-form Gaussian posterior of the known slots: the transition N(m, v) times the
    observation N(y'; ., r^2): mean m + k (y' - m), variance k r^2, k = v / (v + r^2)."""
    r2 = observation_std**2
    if r2 == 0.0:
        return observed
    k = transition_var / (transition_var + r2)
    return transition_mean + k * (observed - transition_mean) + math.sqrt(k * r2) * noise


# ---------------------------------------------------------------------- latent patch swapping
def swap_share(share: float, step: int, steps: int, distance: int) -> float:
    """FlexTI2V's share of a new slot's patches taken from its known frame at step j: p (1 - j/S) / d."""
    return share * (1 - step / steps) / max(distance, 1)


def patch_mask(shape: tuple[int, int], share: float, generator: torch.Generator | None) -> torch.Tensor:
    """(h, w) bool: a random `share` of PATCH x PATCH patches (a draw per patch), True to swap."""
    h, w = shape
    ph, pw = -(-h // PATCH), -(-w // PATCH)
    draw = torch.rand((ph, pw), generator=generator) < share
    return draw.repeat_interleave(PATCH, 0).repeat_interleave(PATCH, 1)[:h, :w]


__all__ = [
    "PATCH",
    "ddpm_variance",
    "ding_known",
    "dps_shift",
    "known_error",
    "model_noise_known",
    "patch_mask",
    "reconstruction_shift",
    "step_gain",
    "swap_share",
    "vp_level",
]
