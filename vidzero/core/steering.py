"""What steers a window besides the paper's loop: the model output each step uses, and the parts
of the window held to given content.

The sampling loop (vidzero.core.sampler.sample_window) is the paper's Algorithm 1 and nothing
more; as in k-diffusion, where a sampler is a short loop and guidance lives in the model wrapper
handed to it, everything else sits here, in two places:

- `GuidedOutput`, the model wrapper: classifier-free guidance (only inside a range of steps if
  asked), posterior guidance through the model (reconstruction guidance, the DPS step;
  vidzero.core.guidance), noise rectification.
- `Holds`, what keeps parts of the window to given content at each level, each a `Hold` with two
  moments: `enter` (the start of a step, before its first evaluation) and `after` (each reverse
  step of that level, resampling ones included):
    - `KnownSlots`: the known slots replaced by q(s, level) with fresh noise (the paper), in the
      first N steps only if asked, or made from the model's own noise estimate (x0 replacement,
      DING);
    - `PatchSwap`: FlexTI2V's latent patch swapping;
    - `TargetHold`: a target for the new slots (the user's image moved along a motion) on a
      second clock: its masked region replaced by the target noised with one fixed noise draw
      from a weak level down to a strong one, free steps after (Time-to-Move's dual clock).

Every function draws its noise from the window's generator in a fixed order, so a window is a
pure function of its inputs and seed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import torch
from diffusers.utils.torch_utils import randn_tensor

from vidzero.core import guidance as pg
from vidzero.core.schedule import NoiseGrid, guide

if TYPE_CHECKING:
    from vidzero.core.sampler import Denoiser, SamplerSettings, Window

# DING's observation of the known slots through the model's noise estimate: its standard deviation
# is rho times the level's noise. On the linear-Gaussian toy (tests/test_guidance.py) the distance of
# the generated frame's mean from the exact conditional mean is 0.64 without it and 0.19, 0.20, 0.25,
# 0.39 at rho = 0, 0.1, 0.25, 0.5 (0 is x0 replacement; larger rho trusts the model's own known slots).
DING_OBSERVATION = 0.25


def noise_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return randn_tensor(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def differentiating(model: object) -> contextlib.AbstractContextManager[object]:
    """The denoiser's context for taking a gradient through it (none: a plain one)."""
    enter = getattr(model, "differentiating", None)
    return enter() if enter is not None else contextlib.nullcontext()


# ---------------------------------------------------------------------- the model output
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


class GuidedOutput:
    """The backbone's denoiser as the loop sees it: `guided(z, j)` is the model output step j
    uses, with classifier-free guidance, posterior guidance and noise rectification applied as
    `settings` ask."""

    def __init__(self, model: Denoiser, grid: NoiseGrid, window: Window, settings: SamplerSettings) -> None:
        self.model, self.grid, self.window, self.settings = model, grid, window, settings
        any_known = bool(window.known.any())
        self.posterior = any_known and not bool(window.known.all())
        self.rectify = settings.rectify > 0 and any_known

    def cfg(self, z: torch.Tensor, j: int) -> torch.Tensor:
        """uncond + w (cond - uncond) where the step is guided; the conditional branch alone
        elsewhere (w: the scale of the expert that takes the step, vidzero.core.sampler)."""
        t = self.grid.timestep(j)
        guided = self.settings.guided_at(j, float(t))
        cond, uncond = self.model(z, t, guided)
        return guide(uncond, cond, self.settings.scale_at(float(t))) if guided and uncond is not None else cond

    def __call__(self, z: torch.Tensor, j: int) -> torch.Tensor:
        s = self.settings
        if self.posterior and s.posterior_at(j):
            out = posterior_output(self.cfg, self.grid, self.window, z, j, s, differentiating(self.model))
        else:
            out = self.cfg(z, j)
        return rectified(out, z, self.grid, j, self.window, s.rectify) if self.rectify else out


# ---------------------------------------------------------------------- what is held
class Hold(Protocol):
    def enter(self, z: torch.Tensor, j: int) -> torch.Tensor:
        """The window at the start of step j, before its first evaluation."""

    def after(self, stepped: torch.Tensor, z: torch.Tensor, out: torch.Tensor, j: int, last: bool) -> torch.Tensor:
        """The window after a reverse step of level j (`stepped`, from `z` with the model output
        `out`); `last`: the step itself rather than a resampling one."""


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


class KnownSlots:
    """The known slots: at the start of each step q(s, level j), and after each resampling step
    q(s, level after j), fresh noise every step and the same q(s, level after j) in every
    resampling iteration (the paper); replaced in the first `replace_steps` steps only if asked
    (the whole window refines together after); or made from the model's own noise estimate
    (`known_noise` model: x0 replacement; ding: DING's posterior)."""

    def __init__(
        self,
        window: Window,
        grid: NoiseGrid,
        settings: SamplerSettings,
        generator: torch.Generator | None,
        start: int,
    ) -> None:
        self.window, self.grid, self.settings, self.generator, self.start = window, grid, settings, generator, start
        self.mask = window.known.view(1, 1, -1, 1, 1).to(window.clean.device)
        self.any = bool(window.known.any())
        self.from_model = settings.known_noise != "fresh" and self.any
        self.replacing = False
        self.level_after: torch.Tensor | None = None

    def enter(self, z: torch.Tensor, j: int) -> torch.Tensor:
        s, clean = self.settings, self.window.clean
        self.replacing = self.any and s.replaces_at(j)
        if not self.replacing:
            return z
        level_now = self.grid.noised(clean, j, noise_like(clean, self.generator))
        self.level_after = self.grid.noised_after(clean, j, noise_like(clean, self.generator))
        # model-consistent known slots come from the previous step (fresh noise at the first)
        if not self.from_model or j == self.start or not s.replaces_at(j - 1):
            z = torch.where(self.mask, level_now, z)
        return z

    def after(self, stepped: torch.Tensor, z: torch.Tensor, out: torch.Tensor, j: int, last: bool) -> torch.Tensor:
        if not self.replacing:
            return stepped
        if self.from_model:
            mode = self.settings.known_noise
            known = known_after_step(self.grid, self.window, z, out, j, mode, self.generator)
            return torch.where(self.mask, known, stepped)
        if last:  # fresh known slots are left as the step made them: the next step replaces them
            return stepped
        assert self.level_after is not None
        return torch.where(self.mask, self.level_after, stepped)

    def finish(self, z: torch.Tensor) -> torch.Tensor:
        """The sampled window with its known slots exactly the clean latents."""
        return torch.where(self.mask, self.window.clean, z) if self.any else z


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


class PatchSwap:
    """FlexTI2V's latent patch swapping at the start of every step."""

    def __init__(self, window: Window, grid: NoiseGrid, share: float, generator: torch.Generator | None) -> None:
        self.window, self.grid, self.share, self.generator = window, grid, share, generator

    def enter(self, z: torch.Tensor, j: int) -> torch.Tensor:
        return swap_patches(z, self.window, j, self.share, self.grid.steps, self.generator)

    def after(self, stepped: torch.Tensor, z: torch.Tensor, out: torch.Tensor, j: int, last: bool) -> torch.Tensor:
        return stepped


# A target for the new slots: (clean latent window (B, C, F, h, w), mask (1, 1, F, h, w) in [0, 1]),
# or None where there is none to hold this window to.
Target = tuple[torch.Tensor, torch.Tensor]


class TargetHold:
    """A target for the new slots on a second clock (Time-to-Move's dual clock): in steps
    [first, until) the masked region is the target taken to the step's level with one fixed noise
    draw, so that the region's noise does not fight itself from step to step; the steps after are
    free, and harmonise the region with the rest. The target comes from `make(x0)`: called with
    the clean estimate of step first - 1 (the motion the model has settled on by then, read from
    its estimate), or with None before the first step when `first` is 0 (a motion known before
    sampling, a path)."""

    def __init__(
        self,
        grid: NoiseGrid,
        first: int,
        until: int,
        make: Callable[[torch.Tensor | None], Target | None],
        generator: torch.Generator | None,
    ) -> None:
        self.grid, self.first, self.until, self.make, self.generator = grid, first, until, make, generator
        self.target: Target | None = None
        self.noise: torch.Tensor | None = None

    def _take(self, x0: torch.Tensor | None) -> None:
        self.target = self.make(x0)
        if self.target is not None:
            self.noise = noise_like(self.target[0], self.generator)  # the one draw of this window

    def _held(self, z: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        assert self.target is not None
        mask = self.target[1].to(z.dtype)
        return z + mask * (level - z)

    def enter(self, z: torch.Tensor, j: int) -> torch.Tensor:
        if j == self.first == 0 and self.target is None:
            self._take(None)
        if self.target is None or not self.first <= j < self.until:
            return z
        assert self.noise is not None
        return self._held(z, self.grid.noised(self.target[0], j, self.noise))

    def after(self, stepped: torch.Tensor, z: torch.Tensor, out: torch.Tensor, j: int, last: bool) -> torch.Tensor:
        if last and j == self.first - 1:
            self._take(self.grid.clean_estimate(z, out, j))
        if last or self.target is None or not self.first <= j < self.until:
            return stepped  # the next step's enter holds the region again, or the steps are free
        assert self.noise is not None
        return self._held(stepped, self.grid.noised_after(self.target[0], j, self.noise))


class Holds:
    """The holds of one window, applied in order at each moment; the known slots first (the
    paper's replacement), then the rest."""

    def __init__(self, known: KnownSlots, others: Sequence[Hold] = ()) -> None:
        self.known, self.all = known, [known, *others]

    def enter(self, z: torch.Tensor, j: int) -> torch.Tensor:
        for hold in self.all:
            z = hold.enter(z, j)
        return z

    def after(
        self, stepped: torch.Tensor, z: torch.Tensor, out: torch.Tensor, j: int, last: bool = False
    ) -> torch.Tensor:
        for hold in self.all:
            stepped = hold.after(stepped, z, out, j, last)
        return stepped

    def finish(self, z: torch.Tensor) -> torch.Tensor:
        return self.known.finish(z)


def window_holds(
    window: Window,
    grid: NoiseGrid,
    settings: SamplerSettings,
    generator: torch.Generator | None,
    start: int = 0,
    extra: Sequence[Hold] = (),
) -> Holds:
    """The holds `settings` ask for on `window`, then `extra` ones (a moving target)."""
    others: list[Hold] = []
    if settings.patch_swap > 0 and bool(window.known.any()):
        others.append(PatchSwap(window, grid, settings.patch_swap, generator))
    return Holds(KnownSlots(window, grid, settings, generator, start), [*others, *extra])
