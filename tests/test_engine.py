"""The engine on tiny components: parity with diffusers, known frames, seeds, loading paths."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import torch

import vidzero
from vidzero.core.timeline import plan_prefix, plan_timeline
from vidzero.errors import BadInput
from vidzero.media.images import load_image
from vidzero.models.families import load_backbone


def latents_of(frames) -> torch.Tensor:
    return torch.stack([f.latent for f in frames], dim=1)[None]


@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_plain_t2v_reproduces_diffusers_pipeline(tiny_model_dir, tiny_backbone, eta):
    """eta > 0 checks that the DDIM step's own noise is drawn in diffusers' order too."""
    from diffusers import TextToVideoSDPipeline

    frames = list(vidzero.generate("a red circle", backbone=tiny_backbone, steps=6, guidance=7.5, seed=11, eta=eta))
    assert len(frames) == tiny_backbone.frames
    assert len({f.seed for f in frames}) == 1  # one window
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = TextToVideoSDPipeline.from_pretrained(tiny_model_dir)
    pipe.set_progress_bar_config(disable=True)
    kwargs = dict(
        prompt="a red circle",
        num_inference_steps=6,
        guidance_scale=7.5,
        num_frames=tiny_backbone.frames,
        height=tiny_backbone.height,
        width=tiny_backbone.width,
        eta=eta,
    )
    ref = pipe(**kwargs, generator=torch.Generator().manual_seed(frames[0].seed), output_type="latent").frames
    diff = (latents_of(frames) - ref).abs().max().item()
    assert diff <= 1e-5, f"latents differ from diffusers by {diff}"
    video = pipe(**kwargs, generator=torch.Generator().manual_seed(frames[0].seed), output_type="pt").frames[0]
    ref_pixels = (video.permute(0, 2, 3, 1).clamp(0, 1) * 255).round().byte().numpy()
    ours = np.stack([f.image for f in frames])
    assert np.abs(ours.astype(int) - ref_pixels.astype(int)).max() <= 1


def test_extend_keeps_the_image_and_streams_every_frame(tiny_backbone, image_file):
    run = vidzero.extend(
        str(image_file), "a red circle", frames=11, backbone=tiny_backbone, steps=2, resample=1, seed=0
    )
    frames = list(run)
    assert [f.index for f in frames] == list(range(11))
    expected = load_image(image_file, tiny_backbone.width, tiny_backbone.height)
    np.testing.assert_array_equal(frames[0].image, expected)
    assert frames[0].known and frames[0].seed is None
    assert all(not f.known and f.seed is not None for f in frames[1:])
    assert len({f.seed for f in frames[1:]}) == 10  # one window per new frame
    # CFG evaluations: S * (U + 1) per new frame, as the paper counts them.
    assert run.engine.stats.cfg_evaluations == 10 * 2 * (1 + 1)


def test_known_slots_come_out_unchanged_at_latent_level(tiny_backbone):
    from vidzero.core.sampler import SamplerSettings, Window, initial_window, sample_window

    bb = tiny_backbone
    c, h, w = bb.latent_shape
    window = Window(
        torch.randn(1, c, bb.frames, h, w),
        torch.tensor([True] * 5 + [False] * (bb.frames - 5)),
        (None,) * 5 + (4,) * (bb.frames - 5),
    )
    settings = SamplerSettings(steps=3, resample=2)
    grid = bb.noise_grid(settings)
    g = torch.Generator().manual_seed(0)
    out = sample_window(
        bb.denoiser("a red circle"), grid, window, initial_window(window, grid, settings, g), settings, g
    )
    assert torch.equal(out[:, :, :5], window.clean[:, :, :5])
    assert not torch.equal(out[:, :, 5:], window.clean[:, :, 5:])


@pytest.mark.parametrize("queue", ["pixel", "latent"])
def test_same_seed_same_frames_different_seed_different(tiny_backbone, image_file, queue):
    def run(seed):
        return np.stack(
            [
                f.image
                for f in vidzero.extend(
                    str(image_file),
                    "a red circle",
                    frames=5,
                    backbone=tiny_backbone,
                    steps=2,
                    resample=1,
                    seed=seed,
                    queue=queue,
                )
            ]
        )

    a, b, c = run(3), run(3), run(4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[1:], c[1:])


def test_queue_modes_differ_only_after_the_first_generated_frame(tiny_backbone, image_file):
    kw = dict(frames=4, backbone=tiny_backbone, steps=2, resample=0, seed=5)
    pixel = list(vidzero.extend(str(image_file), "a cat", queue="pixel", **kw))
    latent = list(vidzero.extend(str(image_file), "a cat", queue="latent", **kw))
    np.testing.assert_array_equal(pixel[1].image, latent[1].image)  # same known content
    assert not torch.equal(pixel[3].latent, latent[3].latent)  # conditioned on round-tripped vs raw latents


def test_memory_stays_flat_over_long_videos(tiny_backbone, image_file, monkeypatch):
    """The engine keeps at most one window of frames, whatever the length: what the store holds
    is read (its public `held`) each time a window is assembled."""
    from vidzero.core.frames import FrameStore

    held: list[int] = []
    assemble = FrameStore.window

    def window(self, job):
        held.append(self.held())
        return assemble(self, job)

    monkeypatch.setattr(FrameStore, "window", window)
    frames = sum(1 for _ in vidzero.extend(str(image_file), "a cat", frames=40, backbone=tiny_backbone, steps=1))
    assert frames == 40 and len(held) == 39  # one window per new frame, each seen
    assert max(held) <= tiny_backbone.frames + 1
    assert max(held[-10:]) == max(held[10:20])  # flat: as much at the end as early on


def test_plan_prefix_layouts():
    jobs = plan_prefix(20, 1, 16)
    assert len(jobs) == 19
    assert jobs[0].slots == (0,) * 15 + (1,) and jobs[0].generate == (15,) and jobs[0].init_source[15] == 14
    assert jobs[14].slots == tuple(range(0, 15)) + (15,)
    assert jobs[18].slots == tuple(range(4, 19)) + (19,)
    t2v = plan_prefix(8, 0, 16)
    assert t2v[0].generate == tuple(range(16)) and t2v[0].init_source == (None,) * 16
    assert len(plan_prefix(40, 0, 16)) == 1 + 24
    pred = plan_prefix(10, 4, 8)
    assert pred[0].slots == (0, 0, 0, 0, 1, 2, 3, 4)
    for bad in [(1, 0, 16), (10, 10, 16), (10**6, 1, 16)]:
        with pytest.raises(BadInput):
            plan_prefix(*bad)


def test_save_pretrained_folder_and_offline_hub_cache_give_identical_outputs(
    tiny_model_dir, tiny_backbone, tmp_path, monkeypatch
):
    from diffusers import TextToVideoSDPipeline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = TextToVideoSDPipeline.from_pretrained(tiny_model_dir)
        resaved = tmp_path / "resaved"
        pipe.save_pretrained(resaved)
    shutil.copy(tiny_model_dir / "vidzero.json", resaved / "vidzero.json")
    rev = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "cache" / "models--tiny-org--tiny-t2v" / "snapshots" / rev
    shutil.copytree(resaved, snapshot)
    (tmp_path / "cache" / "models--tiny-org--tiny-t2v" / "refs").mkdir()
    (tmp_path / "cache" / "models--tiny-org--tiny-t2v" / "refs" / "main").write_text(rev)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from_folder = load_backbone(str(resaved), device="cpu")
    from_hub = load_backbone("tiny-org/tiny-t2v", device="cpu", cache_dir=tmp_path / "cache")
    assert from_hub.revision == rev
    outs = []
    for bb in (tiny_backbone, from_folder, from_hub):
        outs.append(np.stack([f.image for f in vidzero.generate("a cat", backbone=bb, steps=2, seed=1)]))
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])
    with pytest.raises(BadInput, match="not in the local Hugging Face cache"):
        load_backbone("tiny-org/absent", device="cpu", cache_dir=tmp_path / "cache")


def test_loader_rejects_what_is_not_a_t2v_checkpoint(tmp_path, tiny_model_dir):
    with pytest.raises(BadInput, match="no model_index.json"):
        load_backbone(str(tmp_path), device="cpu")
    broken = tmp_path / "sd"
    shutil.copytree(tiny_model_dir, broken)
    text = (broken / "model_index.json").read_text().replace("UNet3DConditionModel", "UNet2DConditionModel")
    (broken / "model_index.json").write_text(text)
    with pytest.raises(BadInput, match="not a text-to-video checkpoint"):
        load_backbone(str(broken), device="cpu")
    with pytest.raises(BadInput, match="unknown dtype"):
        load_backbone(str(tiny_model_dir), device="cpu", dtype="fp8")


def test_the_denoiser_batches_uncond_first_and_skips_it_without_guidance(tiny_backbone):
    bb = tiny_backbone
    c, h, w = bb.latent_shape
    z = torch.randn(1, c, bb.frames, h, w)
    t = torch.tensor(501)
    cond = bb.unet(z, t, encoder_hidden_states=bb.encode_text("a cat")).sample
    uncond = bb.unet(z, t, encoder_hidden_states=bb.encode_text("")).sample
    alone = bb.denoiser("a cat")(z, t, False)
    torch.testing.assert_close(alone.cond, cond)
    assert alone.uncond is None
    both = bb.denoiser("a cat")(z, t, True)
    torch.testing.assert_close(both.cond, cond, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(both.uncond, uncond, rtol=1e-4, atol=1e-5)


def test_bf16_on_cpu_runs_and_stays_close_to_fp32(tiny_model_dir):
    fp32 = load_backbone(str(tiny_model_dir), device="cpu", dtype="fp32")
    bf16 = load_backbone(str(tiny_model_dir), device="cpu", dtype="bf16")
    assert bf16.unet.dtype == torch.bfloat16 and bf16.vae.dtype == torch.float32
    a = np.stack([f.image for f in vidzero.generate("a cat", backbone=fp32, steps=1, seed=2)]).astype(int)
    b = np.stack([f.image for f in vidzero.generate("a cat", backbone=bf16, steps=1, seed=2)]).astype(int)
    assert np.abs(a - b).mean() < 8  # same sample, bf16 rounding only
    with pytest.raises(BadInput, match="fp16 is not supported on the CPU"):
        load_backbone(str(tiny_model_dir), device="cpu", dtype="fp16")


def test_guidance_outside_its_steps_runs_the_conditional_branch_alone(tiny_backbone, image_file):
    def run(**options):
        r = vidzero.extend(image_file, "a red circle", frames=3, backbone=tiny_backbone, steps=4, resample=1, **options)
        return np.stack(r.frames()).astype(int), r.engine.stats

    full, full_stats = run()
    same, same_stats = run(guidance_steps="0:4")
    np.testing.assert_array_equal(full, same)
    assert same_stats.unet_samples == full_stats.unet_samples == 2 * 4 * 2 * 2  # windows x steps x passes x 2
    part, part_stats = run(guidance_steps="1:3")
    assert part_stats.cfg_evaluations == full_stats.cfg_evaluations
    assert part_stats.unet_samples == 2 * (2 * 2 * 2 + 2 * 2 * 1)  # guided in 2 of the 4 steps
    assert not np.array_equal(full, part)


def test_two_backbones_over_one_pipeline_say_when_one_changed_the_other(tiny_model_dir):
    """diffusers' pipe.to() casts in place; a backbone built over the same modules must not fail
    deep inside a layer when another one cast them, but say what happened."""
    import warnings

    from diffusers import TextToVideoSDPipeline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = TextToVideoSDPipeline.from_pretrained(tiny_model_dir)
    first = vidzero.backbone_from_pipeline(pipe, frames=8, device="cpu", dtype="fp32")
    vidzero.backbone_from_pipeline(pipe, frames=8, device="cpu", dtype="bf16")  # casts pipe's modules in place
    with pytest.raises(BadInput, match="the UNet is now bfloat16 on cpu, not float32"):
        list(vidzero.generate("a cat", backbone=first, steps=1))


@pytest.mark.slow
def test_compiled_denoiser_matches_eager(tiny_model_dir):
    """`--compile` (torch.compile of the UNet) changes the kernels, not the result: two minutes
    of compiling on a CPU, hence slow."""
    eager = load_backbone(str(tiny_model_dir), device="cpu")
    compiled = load_backbone(str(tiny_model_dir), device="cpu", compile=True)
    a = latents_of(vidzero.generate("a red circle", backbone=eager, steps=3, seed=5, frames=4))
    b = latents_of(vidzero.generate("a red circle", backbone=compiled, steps=3, seed=5, frames=4))
    assert (a - b).abs().max().item() <= 1e-4 * a.abs().max().item()


@pytest.mark.parametrize("seed", range(6))
def test_planning_looks_only_at_nearby_frames_and_plans_what_looking_at_all_of_them_plans(seed, monkeypatch):
    """Each window takes the available frames nearest in time; looking at the few that can be
    nearest (windows.nearby) keeps planning linear and must choose exactly as looking at all."""
    from vidzero.core import windows

    rng = np.random.default_rng(seed)
    length = int(rng.integers(20, 60))
    known = {int(k) for k in rng.choice(length, size=int(rng.integers(1, 6)), replace=False)}
    window, per_window = int(rng.integers(4, 10)), int(rng.integers(1, 3))
    kwargs = {"order": ("forward", "inward")[seed % 2], "per_window": per_window, "loop": seed % 3 == 0}
    if seed % 2:
        kwargs["anchors"] = (min(known),)
    fast = list(plan_timeline(length, known, window, **kwargs))
    monkeypatch.setattr(windows, "nearby", lambda available, *args: list(available))
    assert fast == list(plan_timeline(length, known, window, **kwargs))


def test_a_plan_is_priced_without_working_out_its_windows():
    from vidzero.app.planner import generated_count

    jobs = plan_prefix(100_000, 1, 16)
    assert len(jobs) == 99_999 and generated_count(jobs, 100_000) == 99_999
    assert jobs._jobs == []  # nothing worked out yet
    assert jobs[-1].targets == (99_999,) and len(jobs._jobs) == 99_999  # the run works them out in order
