"""The sampler against float64 references written here from the equations (docs/how-it-works.md).

The references are plain numpy: Algorithm 1 of TI2V-Zero with RePaint-style resampling, DDIM
with eta = 0, and each option beyond the paper written out as its definition says; the rectified
flow's forward process, renoising and Euler step from their definitions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.synthetic import patch_noise
from vidzero.core.sampler import Prediction, SamplerSettings, Window, initial_window, sample_window
from vidzero.core.schedule import (
    DDIMGrid,
    flow_clean,
    flow_renoise,
    flow_sample,
    flow_step,
    flow_velocity,
    implied_noise,
    predict_clean,
    q_sample,
    renoise,
)
from vidzero.models.hub import EMBEDDED_MODEL_DIR

T = 1000


def make_scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_pretrained(EMBEDDED_MODEL_DIR, subfolder="scheduler")


def reference_alphas() -> np.ndarray:
    betas = np.linspace(0.00085**0.5, 0.012**0.5, T, dtype=np.float64) ** 2  # scaled_linear
    return np.cumprod(1.0 - betas)


def reference_timesteps(steps: int) -> list[int]:
    # "leading" spacing with steps_offset 1: S=10 gives 901, 801, ..., 1
    return [(steps - 1 - j) * (T // steps) + 1 for j in range(steps)]


def fake_eps(z, t: int, prompt_shift: float):
    """A nonlinear, time-dependent stand-in for one guidance branch (same formula both sides)."""
    lib = torch if isinstance(z, torch.Tensor) else np
    return 0.3 * z + 0.2 * lib.sin(3 * z) + t / 2000.0 + prompt_shift


class FakeModel:
    """Both guidance branches of the stand-in: they differ by a constant and a term in z."""

    def __init__(self) -> None:
        self.calls: list[bool] = []

    def __call__(self, z, t, guided):
        self.calls.append(guided)
        cond = fake_eps(z, int(t), 0.1) + 0.05 * z
        return Prediction(cond, fake_eps(z, int(t), -0.1) if guided else None)


def reference_guided(z, t, w, guided):
    cond = fake_eps(z, t, 0.1) + 0.05 * z
    if not guided:
        return cond
    uncond = fake_eps(z, t, -0.1)
    return uncond + w * (cond - uncond)


def reference_run(known, mask, sources, z, s: SamplerSettings, noises, start=0):
    """Algorithm 1 with resampling, float64 numpy, DDIM with eta = 0, and the options:
    resampling in the first steps, guidance in a range of steps, replacement in the first steps,
    noise rectification."""
    abar = reference_alphas()
    noises = iter(noises)
    m = mask.reshape(1, 1, -1, 1, 1)
    steps = s.steps

    def output(x, j, t, a_t):
        guided = s.guidance > 1 and (s.guidance_steps is None or s.guidance_steps[0] <= j < s.guidance_steps[1])
        eps = reference_guided(x, t, s.guidance, guided)
        if s.rectify and mask.any():
            true = (x - np.sqrt(a_t) * known) / np.sqrt(1 - a_t)  # the noise that made x from known
            fixed = eps.copy()
            for slot, source in enumerate(sources):
                if not mask[slot] and source is not None:
                    fixed[:, :, slot] -= s.rectify * (eps[:, :, source] - true[:, :, source])
            eps = fixed
        return eps

    def ddim(x, eps, a_t, a_prev):
        x0 = (x - np.sqrt(1 - a_t) * eps) / np.sqrt(a_t)
        return np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev) * eps

    for j, t in enumerate(reference_timesteps(steps)):
        if j < start:
            continue
        a_t = abar[t]
        a_prev = abar[t - T // steps] if t - T // steps >= 0 else abar[0]  # set_alpha_to_one=False
        replace = mask.any() and (s.replace_steps is None or j < s.replace_steps)
        if replace:
            c_t = np.sqrt(a_t) * known + np.sqrt(1 - a_t) * next(noises)
            c_prev = np.sqrt(a_prev) * known + np.sqrt(1 - a_prev) * next(noises)
            z = np.where(m, c_t, z)
        for _ in range(s.resample if s.resample_steps is None or j < s.resample_steps else 0):
            z = ddim(z, output(z, j, t, a_t), a_t, a_prev)
            if replace:
                z = np.where(m, c_prev, z)
            r = a_t / a_prev
            z = np.sqrt(r) * z + np.sqrt(1 - r) * next(noises)
        z = ddim(z, output(z, j, t, a_t), a_t, a_prev)
    return np.where(m, known, z)


CASES = [
    SamplerSettings(steps=1, resample=0),
    SamplerSettings(steps=3, resample=0),
    SamplerSettings(steps=4, resample=2),
    SamplerSettings(steps=10, resample=4),
    SamplerSettings(steps=6, resample=2, resample_steps=2),
    SamplerSettings(steps=5, resample=1, guidance_steps=(1, 3)),
    SamplerSettings(steps=5, resample=1, replace_steps=2),
    SamplerSettings(steps=4, resample=1, rectify=0.7),
    SamplerSettings(steps=5, resample=1, guidance=1.0),
]


@pytest.mark.parametrize("settings", CASES, ids=lambda s: f"S{s.steps}U{s.resample}")
@pytest.mark.parametrize("start", [0, 1])
def test_sample_window_matches_float64_reference(monkeypatch, settings, start):
    if start >= settings.steps:
        return
    rng = np.random.default_rng(settings.steps * 10 + settings.resample)
    shape = (1, 4, 6, 3, 3)
    known = rng.standard_normal(shape)
    mask = np.array([True, True, False, True, False, False])
    sources = (None, None, 1, None, 3, 3)
    z = rng.standard_normal(shape)
    draws = sum(2 * settings.replaces_at(j) + settings.resamples_at(j) for j in range(start, settings.steps))
    noises = [rng.standard_normal(shape) for _ in range(draws)]
    drawn = iter([torch.from_numpy(n) for n in noises])
    patch_noise(monkeypatch, lambda x, g: next(drawn))

    grid = DDIMGrid(make_scheduler(), settings.steps)
    assert grid.timesteps == reference_timesteps(settings.steps)
    model = FakeModel()
    window = Window(torch.from_numpy(known), torch.from_numpy(mask), sources)
    out = sample_window(model, grid, window, torch.from_numpy(z), settings, start=start)
    ref = reference_run(known, mask, sources, z, settings, noises, start)
    assert out.dtype == torch.float64
    # The scheduler keeps its alphas in float32: agreement to ~1e-6 relative is the float32 floor.
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-5)
    assert next(drawn, None) is None, "the sampler drew a different number of noise tensors"
    np.testing.assert_array_equal(out.numpy()[:, :, mask], known[:, :, mask])
    assert model.calls.count(True) + model.calls.count(False) == settings.evaluations(start)
    assert 2 * model.calls.count(True) + model.calls.count(False) == settings.unet_samples(start)


def test_the_sampler_draws_exactly_the_noise_the_algorithm_needs(monkeypatch):
    """Replacement (2 draws per step while it lasts) and renoising (1 per resampling pass)."""
    count = {"n": 0}

    def counting(x, g):
        count["n"] += 1
        return torch.zeros_like(x)

    patch_noise(monkeypatch, counting)
    s = SamplerSettings(steps=6, resample=2, resample_steps=3, replace_steps=4)
    window = Window(torch.zeros(1, 4, 5, 2, 2), torch.tensor([True, True, False, True, False]), (None,) * 2 + (1,) * 3)
    sample_window(FakeModel(), DDIMGrid(make_scheduler(), 6), window, torch.zeros(1, 4, 5, 2, 2), s)
    assert count["n"] == 2 * 4 + 2 * 3


def test_q_sample_and_renoise_are_the_forward_process():
    x0 = torch.randn(1000, dtype=torch.float64)
    eps = torch.randn(1000, dtype=torch.float64)
    abar = 0.3
    torch.testing.assert_close(q_sample(x0, abar, eps), np.sqrt(abar) * x0 + np.sqrt(1 - abar) * eps)
    torch.testing.assert_close(predict_clean(q_sample(x0, abar, eps), abar, eps), x0)  # its exact inverse
    torch.testing.assert_close(implied_noise(q_sample(x0, abar, eps), abar, x0), eps)
    # Renoising from level a' to level a (a < a') keeps a zero-mean unit-variance process on
    # track: variance of sqrt(r) * N(0, 1) + sqrt(1 - r) * N(0, 1) is 1.
    z = torch.randn(200_000, dtype=torch.float64)
    out = renoise(z, 0.8, 0.5, torch.randn(200_000, dtype=torch.float64))
    assert abs(out.var().item() - 1.0) < 0.02
    torch.testing.assert_close(renoise(z, 0.8, 0.5, eps.new_zeros(200_000)), z * np.sqrt(0.5 / 0.8))


def test_the_flow_forms_follow_their_definitions():
    rng = np.random.default_rng(3)
    x0, eps = rng.standard_normal(50_000), rng.standard_normal(50_000)
    t0, te = torch.from_numpy(x0), torch.from_numpy(eps)
    sigma, later = 0.3, 0.7
    z = flow_sample(t0, sigma, te)
    np.testing.assert_allclose(z.numpy(), (1 - sigma) * x0 + sigma * eps, rtol=0, atol=1e-12)
    v = te - t0  # the velocity of the straight path from x0 to eps
    np.testing.assert_allclose(flow_velocity(z, sigma, t0).numpy(), v.numpy(), atol=1e-12)
    np.testing.assert_allclose(flow_clean(z, v, sigma).numpy(), x0, atol=1e-12)
    # an Euler step along the true velocity lands on the same path at the next level
    np.testing.assert_allclose(
        flow_step(z, v, sigma, later).numpy(), ((1 - later) * x0 + later * eps), rtol=0, atol=1e-12
    )
    # renoising from sigma up to a later sigma: the clean part scales to (1 - later), the noise
    # part's variance to later^2 (x0 and the noises independent, unit variance)
    up = flow_renoise(z, sigma, later, torch.from_numpy(rng.standard_normal(50_000)))
    a = (1 - later) / (1 - sigma)
    residual = up.numpy() - (1 - later) * x0
    assert abs(residual.var() - later**2) < 0.01
    np.testing.assert_allclose(up.numpy() - residual, a * z.numpy() - a * sigma * eps, atol=1e-9)


def test_initial_window_inverts_from_the_named_source_slot():
    g = torch.Generator().manual_seed(0)
    window = Window(
        torch.randn(1, 4, 5, 2, 2, dtype=torch.float64),
        torch.tensor([True, True, False, True, False]),
        (None, None, 1, None, 3),
    )
    grid = DDIMGrid(make_scheduler(), 4)
    abar = float(grid.abar[0])
    z = initial_window(window, grid, SamplerSettings(steps=4), g)
    noise = torch.randn(window.clean.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    known = window.clean
    torch.testing.assert_close(z[:, :, 2], np.sqrt(abar) * known[:, :, 1] + np.sqrt(1 - abar) * noise[:, :, 2])
    torch.testing.assert_close(z[:, :, 4], np.sqrt(abar) * known[:, :, 3] + np.sqrt(1 - abar) * noise[:, :, 4])
    r = initial_window(window, grid, SamplerSettings(steps=4, init="random"), torch.Generator().manual_seed(0))
    torch.testing.assert_close(r, noise)
    # a later start inverts to that step's level
    later = initial_window(window, grid, SamplerSettings(steps=4), torch.Generator().manual_seed(0), start=2)
    a2 = float(grid.abar[2])
    torch.testing.assert_close(later[:, :, 2], np.sqrt(a2) * known[:, :, 1] + np.sqrt(1 - a2) * noise[:, :, 2])


def test_the_lowpass_init_keeps_the_inversions_low_frequencies():
    from vidzero.core.sampler import lowpass

    window = Window(torch.randn(1, 4, 3, 8, 8, dtype=torch.float64), torch.tensor([True, False, False]), (None, 0, 0))
    grid = DDIMGrid(make_scheduler(), 4)
    inverted = initial_window(window, grid, SamplerSettings(steps=4), torch.Generator().manual_seed(1))
    low = initial_window(window, grid, SamplerSettings(steps=4, init="lowpass"), torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    torch.randn(window.clean.shape, generator=g, dtype=torch.float64)  # the inversion's draw
    extra = torch.randn(window.clean.shape, generator=g, dtype=torch.float64)[:, :, 1]
    # low frequencies from the inversion, high ones from fresh noise (a filter in frequency space)
    torch.testing.assert_close(low[:, :, 1], lowpass(inverted[:, :, 1]) + extra - lowpass(extra))
    gain = torch.exp(
        -(torch.fft.fftfreq(8, dtype=torch.float64)[:, None] ** 2 + torch.fft.fftfreq(8)[None] ** 2) * 4 / (2 * 0.25**2)
    )
    torch.testing.assert_close(torch.fft.fft2(lowpass(extra)), torch.fft.fft2(extra) * gain)


def reference_flow_sigmas(steps: int, shift: float = 3.0, train: int = 1000) -> np.ndarray:
    """The flow-matching schedule from its definition: shifted sigmas from 1 to the smallest
    shifted training sigma, evenly spaced before the shift, then 0."""

    def shifted(s):
        return shift * s / (1 + (shift - 1) * s)

    sigma_min = shifted(1 / train)
    linear = np.linspace(1.0, sigma_min, steps)
    return np.append(shifted(linear), 0.0)


def reference_flow_run(known, mask, z, s: SamplerSettings, noises, sigmas):
    """Algorithm 1 on a rectified flow, float64: known slots at (1 - sigma) s + sigma eps, the Euler
    step along the guided velocity, resampling by renoising from the next level back up."""
    noises = iter(noises)
    m = mask.reshape(1, 1, -1, 1, 1)
    for j in range(s.steps):
        sig, nxt = sigmas[j], sigmas[j + 1]
        c_t = (1 - sig) * known + sig * next(noises)
        c_next = (1 - nxt) * known + nxt * next(noises)
        z = np.where(m, c_t, z)
        t = sig * 1000
        for _ in range(s.resample):
            z = z + (nxt - sig) * reference_guided(z, int(t), s.guidance, True)
            z = np.where(m, c_next, z)
            a = (1 - sig) / (1 - nxt)
            z = a * z + np.sqrt(sig**2 - (a * nxt) ** 2) * next(noises)
        z = z + (nxt - sig) * reference_guided(z, int(t), s.guidance, True)
    return np.where(m, known, z)


@pytest.mark.parametrize("steps,resample", [(1, 0), (3, 1), (5, 2)])
def test_the_flow_sampler_matches_its_float64_reference(monkeypatch, steps, resample):
    from diffusers import FlowMatchEulerDiscreteScheduler

    from vidzero.core.schedule import FlowGrid

    settings = SamplerSettings(steps=steps, resample=resample, guidance=4.0)
    grid = FlowGrid(FlowMatchEulerDiscreteScheduler(shift=3.0), steps)
    sigmas = reference_flow_sigmas(steps)
    np.testing.assert_allclose(grid.sigmas.numpy(), sigmas, rtol=1e-6, atol=1e-7)
    rng = np.random.default_rng(steps)
    shape = (1, 4, 5, 2, 2)
    known, z = rng.standard_normal(shape), rng.standard_normal(shape)
    mask = np.array([True, False, True, False, False])
    noises = [rng.standard_normal(shape) for _ in range(steps * (2 + resample))]
    drawn = iter([torch.from_numpy(n) for n in noises])
    patch_noise(monkeypatch, lambda x, g: next(drawn))

    class Model:  # the stand-in, told the flow's timestep (sigma x 1000) as an int like the reference
        def __call__(self, x, t, guided):
            return FakeModel()(x, int(t), guided)

    window = Window(torch.from_numpy(known), torch.from_numpy(mask), (None, 0, None, 2, 2))
    out = sample_window(Model(), grid, window, torch.from_numpy(z), settings)
    ref = reference_flow_run(known, mask, z, settings, noises, grid.sigmas.double().numpy())
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-6, atol=1e-6)
    assert next(drawn, None) is None


def reference_dual_clock(known, mask, sources, z, s: SamplerSettings, noises, target, region, first, until, seen):
    """Algorithm 1 (DDIM, eta = 0) with a target for the new slots on a second clock, float64:
    the target is made from the clean estimate of step first-1 (or before step 0 when first is
    0), one noise draw is taken for it, and in steps [first, until) the region (a soft mask) is
    the target taken to each level with that one draw; the steps after are free."""
    abar = reference_alphas()
    noises = iter(noises)
    m = mask.reshape(1, 1, -1, 1, 1)
    fixed = None

    def hold(x, a):
        return x + region * (np.sqrt(a) * target + np.sqrt(1 - a) * fixed - x)

    def ddim(x, eps, a_t, a_prev):
        x0 = (x - np.sqrt(1 - a_t) * eps) / np.sqrt(a_t)
        return np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev) * eps, x0

    for j, t in enumerate(reference_timesteps(s.steps)):
        a_t = abar[t]
        a_prev = abar[t - T // s.steps] if t - T // s.steps >= 0 else abar[0]
        c_t = np.sqrt(a_t) * known + np.sqrt(1 - a_t) * next(noises)
        c_prev = np.sqrt(a_prev) * known + np.sqrt(1 - a_prev) * next(noises)
        z = np.where(m, c_t, z)
        if j == first == 0:
            seen.append(None)
            fixed = next(noises)
        held = first <= j < until
        if held:
            z = hold(z, a_t)
        for _ in range(s.resample):
            z, _ = ddim(z, reference_guided(z, t, s.guidance, s.guidance > 1), a_t, a_prev)
            z = np.where(m, c_prev, z)
            if held:
                z = hold(z, a_prev)
            r = a_t / a_prev
            z = np.sqrt(r) * z + np.sqrt(1 - r) * next(noises)
        z, x0 = ddim(z, reference_guided(z, t, s.guidance, s.guidance > 1), a_t, a_prev)
        if j == first - 1:
            seen.append(x0)
            fixed = next(noises)
    return np.where(m, known, z)


@pytest.mark.parametrize("first,until", [(2, 4), (0, 3)])
def test_the_dual_clock_matches_its_float64_reference(monkeypatch, first, until):
    from vidzero.core.steering import TargetHold

    s = SamplerSettings(steps=5, resample=1, guidance=3.0)
    rng = np.random.default_rng(11)
    shape = (1, 4, 5, 3, 3)
    known, z, target = (rng.standard_normal(shape) for _ in range(3))
    mask = np.array([True, True, False, True, False])
    sources = (None, None, 1, None, 3)
    region = np.zeros((1, 1, 5, 3, 3))
    region[:, :, [2, 4]] = rng.uniform(0, 1, (1, 1, 2, 3, 3))  # soft, on the new slots
    noises = [rng.standard_normal(shape) for _ in range(2 * 5 + 5 + 1)]
    drawn = iter([torch.from_numpy(n) for n in noises])
    patch_noise(monkeypatch, lambda x, g: next(drawn))
    grid = DDIMGrid(make_scheduler(), 5)
    made: list[torch.Tensor | None] = []

    def make(x0):
        made.append(x0)
        return torch.from_numpy(target), torch.from_numpy(region)

    window = Window(torch.from_numpy(known), torch.from_numpy(mask), sources)
    hold = TargetHold(grid, first, until, make, None)
    out = sample_window(FakeModel(), grid, window, torch.from_numpy(z), s, holds=[hold])
    seen: list[np.ndarray | None] = []
    ref = reference_dual_clock(known, mask, sources, z, s, noises, target, region, first, until, seen)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-5)
    assert next(drawn, None) is None and len(made) == len(seen) == 1
    if first:  # made from the clean estimate of the step before it holds
        np.testing.assert_allclose(made[0].numpy(), seen[0], rtol=1e-5, atol=1e-5)
    else:
        assert made[0] is None
