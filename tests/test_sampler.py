"""The sampler against a float64 reference written here from the equations (docs/how-it-works.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidzero import sampler
from vidzero.backbone import EMBEDDED_MODEL_DIR
from vidzero.sampler import SamplerSettings, initial_window, predict_clean, q_sample, renoise, sample_window

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


def fake_eps(z: np.ndarray | torch.Tensor, t: int):
    """A nonlinear, time-dependent stand-in for the UNet (same formula for both sides)."""
    lib = torch if isinstance(z, torch.Tensor) else np
    return 0.3 * z + 0.2 * lib.sin(3 * z) + t / 2000.0


def reference_run(known, mask, z, steps, resample, noises):
    """Algorithm 1 of TI2V-Zero with resampling, float64 numpy, DDIM with eta = 0."""
    abar = reference_alphas()
    noises = iter(noises)
    m = mask.reshape(1, 1, -1, 1, 1)

    def ddim(x, t, a_t, a_prev):
        eps = fake_eps(x, t)
        x0 = (x - np.sqrt(1 - a_t) * eps) / np.sqrt(a_t)
        return np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev) * eps

    for t in reference_timesteps(steps):
        a_t = abar[t]
        a_prev = abar[t - T // steps] if t - T // steps >= 0 else abar[0]  # set_alpha_to_one=False
        c_t = np.sqrt(a_t) * known + np.sqrt(1 - a_t) * next(noises)
        c_prev = np.sqrt(a_prev) * known + np.sqrt(1 - a_prev) * next(noises)
        z = np.where(m, c_t, z)
        for _ in range(resample):
            z = ddim(z, t, a_t, a_prev)
            z = np.where(m, c_prev, z)
            r = a_t / a_prev
            z = np.sqrt(r) * z + np.sqrt(1 - r) * next(noises)
        z = ddim(z, t, a_t, a_prev)
    return np.where(m, known, z)


@pytest.mark.parametrize("steps,resample", [(1, 0), (3, 0), (4, 2), (10, 4)])
def test_sample_window_matches_float64_reference(monkeypatch, steps, resample):
    rng = np.random.default_rng(steps * 10 + resample)
    shape = (1, 4, 6, 3, 3)
    known = rng.standard_normal(shape)
    mask = np.array([True, True, False, True, False, False])
    z = rng.standard_normal(shape)
    noises = [rng.standard_normal(shape) for _ in range(steps * (2 + resample))]
    drawn = iter([torch.from_numpy(n) for n in noises])
    monkeypatch.setattr(sampler, "noise_like", lambda x, g: next(drawn))

    sched = make_scheduler()
    sched.set_timesteps(steps)
    assert [int(t) for t in sched.timesteps] == reference_timesteps(steps)
    out = sample_window(
        lambda x, t: fake_eps(x, int(t)),
        sched,
        torch.from_numpy(known),
        torch.from_numpy(mask),
        torch.from_numpy(z),
        SamplerSettings(steps=steps, resample=resample),
    )
    ref = reference_run(known, mask, z, steps, resample, noises)
    assert out.dtype == torch.float64
    # The scheduler keeps its alphas in float32: agreement to ~1e-6 relative is the float32 floor.
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-5)
    assert next(drawn, None) is None, "the sampler drew a different number of noise tensors"
    np.testing.assert_array_equal(out.numpy()[:, :, mask], known[:, :, mask])


def test_q_sample_and_renoise_are_the_forward_process():
    x0 = torch.randn(1000, dtype=torch.float64)
    eps = torch.randn(1000, dtype=torch.float64)
    abar = 0.3
    torch.testing.assert_close(q_sample(x0, abar, eps), np.sqrt(abar) * x0 + np.sqrt(1 - abar) * eps)
    torch.testing.assert_close(predict_clean(q_sample(x0, abar, eps), abar, eps), x0)  # its exact inverse
    # Renoising from level a' to level a (a < a') keeps a zero-mean unit-variance process on
    # track: variance of sqrt(r) * N(0, 1) + sqrt(1 - r) * N(0, 1) is 1.
    z = torch.randn(200_000, dtype=torch.float64)
    out = renoise(z, 0.8, 0.5, torch.randn(200_000, dtype=torch.float64))
    assert abs(out.var().item() - 1.0) < 0.02
    torch.testing.assert_close(renoise(z, 0.8, 0.5, eps.new_zeros(200_000)), z * np.sqrt(0.5 / 0.8))


def test_initial_window_inverts_from_the_named_source_slot():
    g = torch.Generator().manual_seed(0)
    known = torch.randn(1, 4, 5, 2, 2, dtype=torch.float64)
    mask = torch.tensor([True, True, False, True, False])
    abar = torch.tensor(0.25, dtype=torch.float64)
    z = initial_window(known, mask, [None, None, 1, None, 3], abar, "inversion", g)
    noise = torch.randn(known.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(z[:, :, 2], 0.5 * known[:, :, 1] + np.sqrt(0.75) * noise[:, :, 2])
    torch.testing.assert_close(z[:, :, 4], 0.5 * known[:, :, 3] + np.sqrt(0.75) * noise[:, :, 4])
    r = initial_window(known, mask, [None, None, 1, None, 3], abar, "random", torch.Generator().manual_seed(0))
    torch.testing.assert_close(r, noise)
