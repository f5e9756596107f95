"""Posterior guidance against float64 references written here from its equations, and on a
linear-Gaussian toy "video" whose exact denoiser and exact conditional are closed-form.

The references are plain numpy: a linear stand-in model (the noise prediction a fixed mixing of
the window's slots), so that the gradient of the known slots' error with respect to the new
slots is a matrix product written out by hand (vidzero.core.guidance gives the equations).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler

from tests.synthetic import patch_noise
from vidzero.core import guidance as pg
from vidzero.core import steering
from vidzero.core.sampler import Prediction, SamplerSettings, Window, initial_window, sample_window
from vidzero.core.schedule import DDIMGrid, FlowGrid

F = 4
SHAPE = (1, 2, F, 2, 2)
KNOWN = np.array([True, True, False, False])
SOURCES = (None, None, 1, 1)


def scheduler() -> DDIMScheduler:
    return DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        set_alpha_to_one=False, steps_offset=1,
    )  # fmt: skip


def mixing(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The stand-in's two branches: eps = K z + b per branch, K mixes slots (F x F)."""
    rng = np.random.default_rng(seed)
    return 0.3 * np.eye(F) + 0.1 * rng.standard_normal((F, F)), 0.05 * rng.standard_normal(F)


COND, UNCOND = mixing(1), mixing(2)


def mix(k: np.ndarray | torch.Tensor, z):
    if isinstance(z, torch.Tensor):
        return torch.einsum("fg,bcghw->bcfhw", torch.as_tensor(k, dtype=z.dtype), z)
    return np.einsum("fg,bcghw->bcfhw", k, z)


class LinearModel:
    """Both guidance branches of the linear stand-in; differentiable in z."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, z: torch.Tensor, t: torch.Tensor, guided: bool) -> Prediction:
        self.calls += 1

        def branch(kb):
            k, b = kb
            return mix(k, z) + torch.as_tensor(b, dtype=z.dtype).view(1, 1, -1, 1, 1)

        return Prediction(branch(COND), branch(UNCOND) if guided else None)


def guided_matrix(w: float) -> tuple[np.ndarray, np.ndarray]:
    (kc, bc), (ku, bu) = COND, UNCOND
    return ku + w * (kc - ku), bu + w * (bc - bu)


def reference_ddim_run(known, z, s: SamplerSettings, noises, abar, abar_after, weights):
    """Algorithm 1 (U = 0, eta = 0) with Ho's reconstruction guidance and the DPS step, float64,
    the gradient of the known slots' error written out for the linear model."""
    noises = iter(noises)
    m = KNOWN.reshape(1, 1, -1, 1, 1)
    new = ~m
    k, b = guided_matrix(s.guidance)
    for j in range(s.steps):
        a, n = np.sqrt(abar[j]), np.sqrt(1 - abar[j])
        a2, n2 = np.sqrt(abar_after[j]), np.sqrt(1 - abar_after[j])
        c_t = a * known + n * next(noises)
        next(noises)  # c_t', drawn and unused at the level's last step
        z = np.where(m, c_t, z)
        eps = mix(k, z) + b.reshape(1, 1, -1, 1, 1)
        x0 = (z - n * eps) / a
        p = (np.eye(F) - n * k) / a  # d x0_f / d z_g
        e = np.where(m, x0 - known, 0.0) * weights.reshape(1, 1, -1, 1, 1)
        grad = 2 * np.einsum("fg,bcfhw->bcghw", p, e)  # d sum_f w_f ||x0_f - s_f||^2 / d z_g
        grad = np.where(new, grad, 0.0)
        error = float((weights.reshape(1, 1, -1, 1, 1) * np.where(m, x0 - known, 0.0) ** 2).sum())
        shift = -(s.reconstruction * a / 2) * grad
        if s.dps > 0:
            gain = a2 - n2 * a / n
            shift = shift - s.dps * grad / (2 * np.sqrt(error)) / gain
        x0 = np.where(new, x0 + shift, x0)
        eps = np.where(new, (z - a * x0) / n, eps)
        z = a2 * x0 + n2 * eps
    return np.where(m, known, z)


@pytest.mark.parametrize(
    "options",
    [
        {"reconstruction": 1.5},
        {"dps": 0.7},
        {"reconstruction": 0.5, "dps": 0.3, "generated_weight": 0.25},
    ],
)
def test_gradient_guidance_matches_its_float64_reference(monkeypatch, options):
    steps = 3
    settings = SamplerSettings(steps=steps, resample=0, guidance=2.0, **options)
    grid = DDIMGrid(scheduler(), steps)
    rng = np.random.default_rng(5)
    known, z = rng.standard_normal(SHAPE), rng.standard_normal(SHAPE)
    noises = [rng.standard_normal(SHAPE) for _ in range(2 * steps)]
    drawn = iter([torch.from_numpy(x) for x in noises])
    patch_noise(monkeypatch, lambda x, g: next(drawn))
    given = torch.tensor([True, False, False, False])  # slot 1 holds a generated frame
    window = Window(torch.from_numpy(known), torch.from_numpy(KNOWN), SOURCES, given)
    out = sample_window(LinearModel(), grid, window, torch.from_numpy(z), settings)
    weights = np.array([1.0, settings.generated_weight, 0.0, 0.0])
    abar = [float(a) for a in grid.abar]
    abar_after = [float(a) for a in grid.abar_after]
    ref = reference_ddim_run(known, z, settings, noises, abar, abar_after, weights)
    # diffusers keeps the schedule in float32: its DDIM step takes square roots at that precision
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("family", ["ddim", "flow"])
def test_the_dps_step_moves_the_result_by_the_norms_gradient_in_both_families(family):
    """Written in x0 space and read back through the step's gain, the DPS update is Chung et
    al.'s: the step's result moves by -zeta grad_z ||M (x0 - s)|| on the new slots, nothing else."""
    steps, j = 4, 1
    grid = DDIMGrid(scheduler(), steps) if family == "ddim" else FlowGrid(FlowMatchEulerDiscreteScheduler(shift=3.0), 4)
    rng = np.random.default_rng(7)
    known = torch.from_numpy(rng.standard_normal(SHAPE))
    z = torch.from_numpy(rng.standard_normal(SHAPE))
    window = Window(known, torch.from_numpy(KNOWN), SOURCES)
    model = LinearModel()

    def output(z, j):
        return steering.guide(*reversed(model(z, grid.timestep(j), True)), 2.0)

    plain = grid.step(z, output(z, j), j, None)
    guided_out = steering.posterior_output(output, grid, window, z, j, SamplerSettings(steps=steps, dps=0.8))
    guided = grid.step(z, guided_out, j, None)
    free = z.clone().requires_grad_(True)
    x0 = grid.clean_estimate(free, output(free, j), j)
    norm = ((x0 - known)[:, :, torch.from_numpy(KNOWN)] ** 2).sum().sqrt()
    (grad,) = torch.autograd.grad(norm, free)
    new = torch.from_numpy(~KNOWN).view(1, 1, -1, 1, 1)
    expected = torch.where(new, plain - 0.8 * grad, plain)
    torch.testing.assert_close(guided, expected, rtol=1e-6, atol=1e-7)  # the schedule's float32 roots
    assert float((guided - plain).abs().max()) > 1e-2


@pytest.mark.parametrize("family", ["ddim", "flow"])
def test_model_consistent_known_slots_keep_the_models_own_noise(monkeypatch, family):
    """x0 replacement: after each step the known slots are a' s + n' eps_hat, eps_hat the model's
    noise estimate at the step's input (read off its output); the next step does not re-noise them."""
    steps = 3
    grid = DDIMGrid(scheduler(), steps) if family == "ddim" else FlowGrid(FlowMatchEulerDiscreteScheduler(shift=3.0), 3)
    rng = np.random.default_rng(3)
    known = torch.from_numpy(rng.standard_normal(SHAPE))
    window = Window(known, torch.from_numpy(KNOWN), SOURCES)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    model = LinearModel()

    def recording(z, t, guided):
        out = model(z, t, guided)
        seen.append((z.clone(), steering.guide(out.uncond, out.cond, 2.0)))
        return out

    z0 = torch.from_numpy(rng.standard_normal(SHAPE))
    settings = SamplerSettings(steps=steps, resample=0, guidance=2.0, known_noise="model")
    states: list[torch.Tensor] = []
    sample_window(recording, grid, window, z0, settings, on_step=lambda j, z, x0: states.append(z.clone()))
    m = torch.from_numpy(KNOWN)
    for j in range(steps - 1):
        z_in, out = seen[j]
        a, n = grid.scales(j)
        a2, n2 = grid.scales_after(j)
        eps = (z_in - a * grid.clean_estimate(z_in, out, j)) / n
        torch.testing.assert_close(states[j][:, :, m], (a2 * known + n2 * eps)[:, :, m], rtol=1e-6, atol=1e-7)
        # the next step's input keeps them as they are
        torch.testing.assert_close(seen[j + 1][0][:, :, m], states[j][:, :, m], rtol=0, atol=0)


def test_ding_is_the_gaussian_posterior_of_transition_and_observation():
    rng = np.random.default_rng(0)
    mean, observed, noise = (torch.from_numpy(rng.standard_normal(8)) for _ in range(3))
    v, r = 0.3, 0.5
    # the product of N(m, v) and N(y, r^2), written from precisions
    precision = 1 / v + 1 / r**2
    post_mean = (mean / v + observed / r**2) / precision
    expected = post_mean + np.sqrt(1 / precision) * noise
    torch.testing.assert_close(pg.ding_known(mean, observed, v, r, noise), expected, rtol=1e-12, atol=1e-12)
    # rho -> 0: the observation itself (x0 replacement)
    torch.testing.assert_close(pg.ding_known(mean, observed, v, 0.0, noise), observed)
    # the DDPM variance of a step, from its definition with betas
    assert pg.ddpm_variance(0.5, 0.8) == pytest.approx((1 - 0.8) / (1 - 0.5) * (1 - 0.5 / 0.8))
    assert pg.vp_level(0.6, 0.8) == pytest.approx(0.36)


def test_patch_swapping_takes_the_share_of_patches_from_the_known_slot():
    assert pg.swap_share(0.6, 0, 10, 1) == pytest.approx(0.6)
    assert pg.swap_share(0.6, 5, 10, 2) == pytest.approx(0.15)
    mask = pg.patch_mask((64, 64), 0.3, torch.Generator().manual_seed(0))
    blocks = mask.reshape(32, 2, 32, 2)
    assert bool((blocks == blocks[:, :1, :, :1]).all())  # whole 2x2 patches
    assert 0.25 < float(mask.float().mean()) < 0.35
    z = torch.zeros(1, 2, F, 16, 16, dtype=torch.float64)
    z[:, :, 1] = 1.0
    window = Window(z.clone(), torch.from_numpy(KNOWN), SOURCES)
    swapped = steering.swap_patches(z, window, 0, 1.0, 4, torch.Generator().manual_seed(0))
    assert float(swapped[:, :, 2].mean()) == 1.0  # distance 1, step 0: every patch
    assert 0.3 < float(swapped[:, :, 3].mean()) < 0.7  # distance 2: about half
    assert bool((swapped[:, :, :2] == z[:, :, :2]).all())


def test_everything_off_is_the_paper_sampler_bit_for_bit():
    grid = DDIMGrid(scheduler(), 3)
    window = Window(torch.randn(SHAPE, dtype=torch.float64), torch.from_numpy(KNOWN), SOURCES)
    z = initial_window(window, grid, SamplerSettings(steps=3), torch.Generator().manual_seed(0))
    runs = [
        sample_window(LinearModel(), grid, window, z, s, torch.Generator().manual_seed(1))
        for s in (
            SamplerSettings(steps=3, resample=1),
            SamplerSettings(steps=3, resample=1, reconstruction=0.0, dps=0.0, known_noise="fresh", patch_swap=0.0),
        )
    ]
    assert torch.equal(runs[0], runs[1])
    assert SamplerSettings(steps=3, reconstruction=1.0, posterior_steps=(1, 3), resample=1).backward_passes() == 4


# ---------------------------------------------------------------------- the linear-Gaussian toy
class GaussianVideo:
    """x in R^F (one number per frame) ~ N(0, S), S_fg = rho^|f - g|: the exact denoiser of the
    variance-preserving process, E[x | z_t] = a S (a^2 S + n^2 I)^-1 z, as a noise prediction."""

    def __init__(self, frames: int = 4, rho: float = 0.9, abar: list[float] | None = None) -> None:
        idx = np.arange(frames)
        self.cov = rho ** np.abs(idx[:, None] - idx[None, :])
        self.abar_of_t = abar

    def conditional_mean(self, known: np.ndarray, given: np.ndarray) -> np.ndarray:
        s = self.cov
        a, b = given, ~given
        return s[np.ix_(b, a)] @ np.linalg.solve(s[np.ix_(a, a)], known)

    def __call__(self, z: torch.Tensor, t: torch.Tensor, guided: bool) -> Prediction:
        abar = float(self.abar_of_t[int(t)])
        a, n = np.sqrt(abar), np.sqrt(1 - abar)
        gain = torch.from_numpy(a * self.cov @ np.linalg.inv(abar * self.cov + (1 - abar) * np.eye(len(self.cov))))
        x0 = mix(gain, z)
        eps = (z - a * x0) / n
        return Prediction(eps, eps if guided else None)


def toy_distance(settings: SamplerSettings, samples: int = 3000) -> float:
    """Distance of the generated frame's sample mean from the exact conditional mean."""
    sched = scheduler()
    grid = DDIMGrid(sched, settings.steps)
    model = GaussianVideo(abar=[float(a) for a in sched.alphas_cumprod])
    given = np.array([True, True, True, False])
    known_values = np.array([1.5, 1.8, 2.0])
    clean = torch.zeros(samples, 1, 4, 1, 1, dtype=torch.float64)
    clean[:, 0, :3, 0, 0] = torch.from_numpy(known_values)
    window = Window(clean, torch.from_numpy(given), (None, None, None, 2))
    g = torch.Generator().manual_seed(0)
    z = initial_window(window, grid, settings, g)
    out = sample_window(model, grid, window, z, settings, g)
    target = model.conditional_mean(known_values, given)[0]
    return abs(float(out[:, 0, 3, 0, 0].mean()) - target)


# The exact distances of the generated frame's mean from the exact conditional mean (3,000
# samples, seed 0): replacement alone leaves 0.64; the figures vidzero.core.steering and
# docs/how-it-works.md quote.
TOY_DISTANCES = [
    ({}, 0.640),
    ({"reconstruction": 0.5}, 0.513),
    ({"reconstruction": 1.0}, 0.398),
    ({"reconstruction": 8.0}, 0.422),
    ({"dps": 0.25}, 0.293),
    ({"dps": 1.0}, 0.414),
    ({"known_noise": "model"}, 0.191),
    ({"known_noise": "ding"}, 0.246),
    ({"patch_swap": 0.5}, 0.025),
]


@pytest.mark.parametrize("options,distance", TOY_DISTANCES, ids=[str(o) for o, _ in TOY_DISTANCES])
def test_guidance_moves_samples_toward_the_exact_conditional_mean(options, distance):
    got = toy_distance(SamplerSettings(steps=10, resample=0, guidance=1.0, **options))
    assert got == pytest.approx(distance, abs=0.001), (options, got)


# ---------------------------------------------------------------------- on real backbones
POSTERIOR = {"steps": 3, "resample": 0, "guidance": 3.0, "dps": 2.0, "known_noise": "model", "patch_swap": 0.3}


@pytest.mark.parametrize("family", ["unet3d", "wan"])
def test_posterior_guidance_runs_through_both_families_and_checkpointing_changes_nothing(
    family, tiny_backbone, tiny_wan, image_file
):
    import vidzero

    bb = tiny_backbone if family == "unet3d" else tiny_wan
    length = 4 if family == "unet3d" else 9
    plain = vidzero.extend(image_file, "a red circle", length, backbone=bb, progress=False, steps=3, resample=0)
    plain_frames = np.stack([f.image for f in plain])
    run = vidzero.extend(image_file, "a red circle", length, backbone=bb, progress=False, **POSTERIOR)
    frames = np.stack([f.image for f in run])
    assert run.engine.stats.backward_passes == run.engine.stats.jobs * 3  # one per step of each window
    assert not np.array_equal(frames[1:], plain_frames[1:])  # the guidance acts
    np.testing.assert_array_equal(frames[0], plain_frames[0])  # the user's frame is kept
    # the weights are left as they were: requiring gradients, none accumulated
    model = bb.unet if family == "unet3d" else bb.transformer
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
    if family == "unet3d":
        bb.checkpoint_gradients()
    else:
        bb.transformer.enable_gradient_checkpointing()
    try:
        again = vidzero.extend(image_file, "a red circle", length, backbone=bb, progress=False, **POSTERIOR)
        np.testing.assert_array_equal(np.stack([f.image for f in again]), frames)
    finally:
        if family == "wan":
            bb.transformer.disable_gradient_checkpointing()


def test_each_frame_counts_once_in_the_guidance_error():
    """The copies that pad the first windows' queue are one frame, not a still scene: only the
    copy nearest the new slot counts."""
    from vidzero.core.frames import repeated_slots
    from vidzero.core.timeline import plan_prefix

    first, later = plan_prefix(20, 1, 16)[0], plan_prefix(20, 1, 16)[18]
    assert repeated_slots(first).tolist() == [True] * 14 + [False, False]
    assert not repeated_slots(later).any()  # fifteen different frames
    window = Window(torch.zeros(1, 1, 16, 1, 1), torch.tensor([True] * 15 + [False]), (None,) * 15 + (14,))
    counted = Window(window.clean, window.known, window.init_source, None, repeated_slots(first))
    assert counted.error_weights(1.0).tolist() == [0.0] * 14 + [1.0, 0.0]
    assert window.error_weights(0.5).tolist() == [1.0] * 15 + [0.0]
