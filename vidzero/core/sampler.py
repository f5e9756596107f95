"""The TI2V-Zero sampling run for one window, as small pure functions (k-diffusion style).

A window z of shape (B, C, F, h, w) has *known* slots (clean latents s, given) and generated
ones. With the levels of a `NoiseGrid` (DDIM for ModelScope, the rectified flow for Wan), one run
is Algorithm 1 of the paper with RePaint-style resampling:

    z <- init: every new slot from q(s[nearest known slot], level 0) (DDPM inversion), or noise
    for each step j (level j -> level after j):
        c, c' <- q(s, level j), q(s, level after j)     fresh, independent noise every step
        z[known] <- c
        repeat U times:
            z <- step(z, guided(z));  z[known] <- c';  z <- renoise(z, after j -> j)
        z <- step(z, guided(z))
    z[known] <- s

guided(z) = uncond + w (cond - uncond), classifier-free guidance.

Options beyond the paper, each off by default (`SamplerSettings`): resampling in the first steps
only; guidance only inside a range of steps (the conditional branch alone elsewhere); known slots
replaced in the first steps only, after which the whole window refines together (a dual clock);
noise rectification (the model's error on the known slots, whose true noise is known, taken off
the new slot that starts from each); a start at a later step for windows that generate next to a
user's frame (SDEdit-like); a low-pass init of the new slot. Posterior guidance, where the known
slots guide the new ones through the model (reconstruction guidance, the DPS step, model-consistent
known slots, DING, latent patch swapping), is written out in vidzero.core.guidance.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import torch
from diffusers.utils.torch_utils import randn_tensor

from vidzero.core import guidance as pg
from vidzero.core.choices import RELEASE_GUIDANCE, RELEASE_INIT, RELEASE_RESAMPLE, RELEASE_STEPS
from vidzero.core.schedule import NoiseGrid, guide

# DING's observation of the known slots through the model's noise estimate: its standard deviation
# is rho times the level's noise. On the linear-Gaussian toy (tests/test_guidance.py) the distance of
# the generated frame's mean from the exact conditional mean is 0.64 without it and 0.19, 0.20, 0.25,
# 0.39 at rho = 0, 0.1, 0.25, 0.5 (0 is x0 replacement; larger rho trusts the model's own known slots).
DING_OBSERVATION = 0.25


class Prediction(NamedTuple):
    cond: torch.Tensor
    uncond: torch.Tensor | None  # None when only the conditional branch ran


class Denoiser(Protocol):
    """The backbone's prediction for a whole window at the model timestep t: both guidance
    branches when `guided`, the conditional one alone otherwise. A denoiser may also have a
    `differentiating()` context, entered around an evaluation and its backward pass when
    posterior guidance takes a gradient through it (the backbones freeze their weights there)."""

    def __call__(self, z: torch.Tensor, t: torch.Tensor, guided: bool) -> Prediction: ...


def differentiating(model: object) -> contextlib.AbstractContextManager[object]:
    """The denoiser's context for taking a gradient through it (none: a plain one)."""
    enter = getattr(model, "differentiating", None)
    return enter() if enter is not None else contextlib.nullcontext()


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

    def guided_at(self, step: int) -> bool:
        if self.guidance <= 1.0:
            return False
        return self.guidance_steps is None or self.guidance_steps[0] <= step < self.guidance_steps[1]

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


def noise_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return randn_tensor(x.shape, generator=generator, device=x.device, dtype=x.dtype)


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


def rectified(
    out: torch.Tensor, z: torch.Tensor, grid: NoiseGrid, j: int, window: Window, weight: float
) -> torch.Tensor:
    """Noise rectification: on a known slot the true model output is known (its noise is), so the
    model's error there, which carries its prior (e.g. the size it prefers), is taken off, times
    `weight`, from every new slot that starts from that known slot."""
    ideal = grid.ideal_output(z, j, window.clean)
    fixed = out.clone()
    for slot, source in enumerate(window.init_source):
        if not window.known[slot] and source is not None:
            fixed[:, :, slot] -= weight * (out[:, :, source] - ideal[:, :, source])
    return fixed


def posterior_output(
    model: Callable[[torch.Tensor, int], torch.Tensor],
    grid: NoiseGrid,
    window: Window,
    z: torch.Tensor,
    j: int,
    settings: SamplerSettings,
    context: contextlib.AbstractContextManager[object] | None = None,
) -> torch.Tensor:
    """The model output at step j with the gradient guidance of vidzero.core.guidance applied:
    the error of the clean estimate on the known slots, differentiated with respect to the new
    slots only (the only place a gradient is enabled), shifts the new slots' clean estimate; the
    output that DDIM or the Euler step expects is read back from the shifted estimate."""
    new = (~window.known).view(1, 1, -1, 1, 1).to(z.device)
    weights = window.error_weights(settings.generated_weight).to(z.device)
    with torch.enable_grad(), context or contextlib.nullcontext():
        free = z.detach().requires_grad_(True)
        z_in = torch.where(new, free, z.detach())
        out = model(z_in, j)
        x0 = grid.clean_estimate(z_in, out, j)
        error = pg.known_error(x0, window.clean, weights)
        # each window's error depends on its own z; backward() with inputs rather than
        # autograd.grad(), which non-reentrant gradient checkpointing does not support
        error.sum().backward(inputs=[free])
    grad = free.grad if free.grad is not None else torch.zeros_like(z)
    grad, out, x0, error = torch.where(new, grad, 0.0), out.detach(), x0.detach(), error.detach()
    signal, noise = grid.scales(j)
    shift = torch.zeros_like(x0)
    if settings.reconstruction > 0:
        shift = shift + pg.reconstruction_shift(grad, signal, settings.reconstruction)
    if settings.dps > 0:
        gain = pg.step_gain(signal, noise, *grid.scales_after(j))
        shift = shift + pg.dps_shift(grad, error, gain, settings.dps)
    return torch.where(new, grid.ideal_output(z, j, x0 + shift), out)


def known_after_step(
    grid: NoiseGrid,
    window: Window,
    z: torch.Tensor,
    out: torch.Tensor,
    j: int,
    mode: str,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """The known slots at the level step j ends at, made from the model's own noise estimate at
    z: x0 replacement (`model`) or DING's posterior (`ding`); see vidzero.core.guidance."""
    signal, noise = grid.scales(j)
    signal_after, noise_after = grid.scales_after(j)
    x0 = grid.clean_estimate(z, out, j)
    eps = (z - signal * x0) / noise
    observed = pg.model_noise_known(window.clean, eps, signal_after, noise_after)
    if mode == "model" or noise_after == 0.0:
        return observed
    # the stochastic (DDPM-variance) transition of the known slots, in the family's own units
    scale = signal_after**2 + noise_after**2
    var = pg.ddpm_variance(pg.vp_level(signal, noise), pg.vp_level(signal_after, noise_after)) * scale
    mean = signal_after * x0 + max(noise_after**2 - var, 0.0) ** 0.5 * eps
    return pg.ding_known(mean, observed, var, DING_OBSERVATION * noise_after, noise_like(z, generator))


def swap_patches(
    z: torch.Tensor, window: Window, j: int, share: float, steps: int, generator: torch.Generator | None
) -> torch.Tensor:
    """FlexTI2V's latent patch swapping: each new slot takes a random share of its patches from
    its source known slot at the same level (z's known slots, already replaced)."""
    z = z.clone()
    for slot, source in enumerate(window.init_source):
        if window.known[slot] or source is None:
            continue
        p = pg.swap_share(share, j, steps, abs(slot - source))
        if p <= 0:
            continue
        take = pg.patch_mask((z.shape[-2], z.shape[-1]), p, generator).to(z.device)
        z[:, :, slot] = torch.where(take, z[:, :, source], z[:, :, slot])
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
) -> torch.Tensor:
    """One sampling run over a window from step `start`; returns the window with its generated
    slots filled in (and its known slots exactly `window.clean`).

    z: the window at step `start` (see `initial_window`); on_step(j, z, x0) after each step.
    """
    mask = window.known.view(1, 1, -1, 1, 1).to(z.device)
    any_known = bool(window.known.any())
    any_new = not bool(window.known.all())
    rectify = settings.rectify > 0 and any_known
    from_model = settings.known_noise != "fresh" and any_known

    def guided_output(z: torch.Tensor, j: int) -> torch.Tensor:
        guided = settings.guided_at(j)
        cond, uncond = model(z, grid.timestep(j), guided)
        return guide(uncond, cond, settings.guidance) if guided and uncond is not None else cond

    def predict(z: torch.Tensor, j: int) -> torch.Tensor:
        if any_known and any_new and settings.posterior_at(j):
            out = posterior_output(guided_output, grid, window, z, j, settings, differentiating(model))
        else:
            out = guided_output(z, j)
        return rectified(out, z, grid, j, window, settings.rectify) if rectify else out

    def step(z: torch.Tensor, j: int, replace: bool, c_after: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = predict(z, j)
        stepped = grid.step(z, out, j, generator)
        if replace and from_model:
            stepped = torch.where(
                mask, known_after_step(grid, window, z, out, j, settings.known_noise, generator), stepped
            )
        elif replace:
            stepped = torch.where(mask, c_after, stepped)
        return stepped, out

    with torch.no_grad():  # posterior_output enables a gradient where it needs one
        for j in range(start, grid.steps):
            replace = any_known and settings.replaces_at(j)
            if replace:
                c_now = grid.noised(window.clean, j, noise_like(window.clean, generator))
                c_after = grid.noised_after(window.clean, j, noise_like(window.clean, generator))
                # model-consistent known slots come from the previous step (fresh noise at the first)
                if not from_model or j == start or not settings.replaces_at(j - 1):
                    z = torch.where(mask, c_now, z)
            else:
                c_after = z
            if settings.patch_swap > 0 and any_known:
                z = swap_patches(z, window, j, settings.patch_swap, grid.steps, generator)
            for _ in range(settings.resamples_at(j)):
                z, _ = step(z, j, replace, c_after)
                z = grid.renoise(z, j, noise_like(z, generator))
            z_before = z
            # fresh known slots are left as the level's last step made them (the next step replaces them)
            z, out = step(z, j, replace and from_model, c_after)
            if on_step is not None:
                on_step(j, z, grid.clean_estimate(z_before, out, j))
    return torch.where(mask, window.clean, z) if any_known else z
