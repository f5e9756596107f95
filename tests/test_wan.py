"""The Wan family on a tiny Wan 2.1 model built here: parity with diffusers' WanPipeline, the
frame queue in the causal VAE's latent frames, every task, resume, batch."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import vidzero
from tests.processes import killed_run
from tests.synthetic import moving_square
from vidzero.app.cli import app
from vidzero.core.timeline import latent_length, latent_slot
from vidzero.media.images import load_image
from vidzero.media.outputs import sha256_of
from vidzero.media.video import read_video, write_video

runner = CliRunner()
FAST = {"steps": 2, "resample": 1, "progress": False}


def pipeline(folder):
    from diffusers import WanPipeline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = WanPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_plain_t2v_reproduces_wan_pipeline(tiny_wan_dir, tiny_wan):
    """Same components, prompt, seed and (flow-matching Euler) scheduler: latents within 1e-5."""
    run = vidzero.generate("a red circle", 9, backbone=tiny_wan, steps=4, guidance=5.0, seed=3, progress=False)
    frames = list(run)
    assert len(frames) == 9 and len({f.seed for f in frames}) == 1
    latents = torch.stack([f.latent for f in frames if f.latent is not None], dim=1)[None]
    pipe = pipeline(tiny_wan_dir)
    kwargs = dict(prompt="a red circle", num_frames=9, height=32, width=32, num_inference_steps=4, guidance_scale=5.0)
    ref = pipe(**kwargs, generator=torch.Generator().manual_seed(frames[0].seed), output_type="latent").frames
    assert latents.shape == ref.shape == (1, 16, 3, 4, 4)
    assert (latents - ref).abs().max().item() <= 1e-5
    video = pipe(**kwargs, generator=torch.Generator().manual_seed(frames[0].seed), output_type="pt").frames[0]
    ours = np.stack([f.image for f in frames]).astype(int)
    theirs = (video.permute(0, 2, 3, 1).clamp(0, 1) * 255).round().byte().numpy().astype(int)
    assert np.abs(ours - theirs).max() <= 1


def test_decoding_latent_frames_as_they_come_is_decoding_the_video_whole(tiny_wan):
    latents = torch.randn(4, *tiny_wan.latent_shape, generator=torch.Generator().manual_seed(0))
    streamed = tiny_wan.decode(latents)  # one latent frame at a time, the cache kept
    z = latents.permute(1, 0, 2, 3)[None] * tiny_wan.latents_std + tiny_wan.latents_mean
    whole = tiny_wan.vae.decode(z).sample[0].permute(1, 0, 2, 3)
    assert streamed.shape == (13, 3, 32, 32)
    torch.testing.assert_close(streamed, whole, rtol=0, atol=1e-5)


def test_tiled_decoding_as_frames_come_is_the_vaes_tiled_decode(tiny_wan_dir, tiny_wan):
    """--vae-tiling: each spatial tile keeps its own causal cache and the tiles blend as diffusers
    blends them; a run saved with tiling resumes only with it."""
    from vidzero.errors import BadInput
    from vidzero.models.wan_decoder import CausalDecoder

    bb = vidzero.load_backbone(str(tiny_wan_dir), device="cpu", vae_tiling=True)
    # 32 px frames: tiles of 16 px every 8 px (4 latent pixels: 2 tiles of 2, overlapping by 1)
    bb.vae.enable_tiling(16, 16, 8, 8)
    latents = torch.randn(3, *bb.latent_shape, generator=torch.Generator().manual_seed(1))
    decoder = CausalDecoder(bb)
    assert decoder.tiled and len(decoder.caches) == 16
    streamed = torch.cat([decoder.push(latent) for latent in latents])
    z = latents.permute(1, 0, 2, 3)[None] * bb.latents_std + bb.latents_mean
    whole = bb.vae.tiled_decode(z).sample[0].permute(1, 0, 2, 3)
    torch.testing.assert_close(streamed, whole, rtol=0, atol=1e-5)
    assert not torch.allclose(streamed, tiny_wan.decode(latents), atol=1e-3)  # tiling did change something
    # a state saved mid-video goes on to the same frames
    first = CausalDecoder(bb)
    first.push(latents[0])
    again = CausalDecoder(bb)
    again.load(first.state(), 1)
    torch.testing.assert_close(torch.cat([again.push(x) for x in latents[1:]]), streamed[1:], rtol=0, atol=1e-6)
    with pytest.raises(BadInput, match="started with VAE tiling; resume it with vae_tiling"):
        CausalDecoder(tiny_wan).load(first.state(), 1)


def test_latent_frames_and_video_frames():
    assert [latent_slot(v, 4) for v in range(10)] == [0, 1, 1, 1, 1, 2, 2, 2, 2, 3]
    assert latent_length(81, 4) == 21 and latent_length(9, 4) == 3 and latent_length(10, 4) == 4


def test_extend_keeps_the_image_as_latent_frame_zero(tiny_wan, image_file):
    run = vidzero.extend(image_file, "a red circle", 13, backbone=tiny_wan, **FAST)
    frames = list(run)
    assert [f.index for f in frames] == list(range(13))
    np.testing.assert_array_equal(frames[0].image, load_image(image_file, 32, 32))
    assert frames[0].known and not any(f.known for f in frames[1:])
    assert run.engine.stats.jobs == 3  # latent frames 1..3, one window each
    from vidzero.core.frames import from_pixels

    encoded = tiny_wan.encode_video(from_pixels(frames[0].image[None]))[0]
    torch.testing.assert_close(frames[0].latent, encoded)
    assert frames[4].latent is None and frames[5].latent is not None  # a latent per group of 4


def test_keyframes_and_predict_keep_the_users_frames(tiny_wan, tmp_path):
    clip = moving_square(9, 32, start=(6.0, 14.0), speed=2.0, half=4)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    from PIL import Image

    Image.fromarray(clip[0]).save(a)
    Image.fromarray(clip[8]).save(b)
    run = vidzero.infill("a red square moving right", 17, keys={0: a, 10: b}, backbone=tiny_wan, **FAST)
    frames = list(run)
    np.testing.assert_array_equal(frames[10].image, clip[8])  # a key at a video frame of latent frame 3
    assert {f.index for f in frames if f.known} == {0, 10}
    folder = write_video(list(clip), tmp_path / "clip")
    predicted = list(vidzero.predict(folder, "on", 4, backbone=tiny_wan, **FAST))
    assert len(predicted) == 5 + 4  # the clip's last 1 + 4 frames (window-1 latent frames), then 4 new
    for i in range(5):
        np.testing.assert_array_equal(predicted[i].image, clip[4 + i])


def test_reroll_and_extend_from_on_wan(tiny_wan_dir, image_file, tmp_path):
    common = ["--model", str(tiny_wan_dir), "--steps", "2", "--resample", "1", "--quiet"]
    out = tmp_path / "run"
    res = runner.invoke(app, ["extend", str(image_file), "x", "-o", str(out), "--frames", "17", *common])
    assert res.exit_code == 0, res.output
    new = tmp_path / "new"
    res = runner.invoke(app, ["reroll", str(out), "--frames", "6-7", "-o", str(new), "--quiet"])
    assert res.exit_code == 0, res.output
    for i in range(17):  # latent frame 2 (video frames 5-8) is regenerated; frames outside 6-7 are written as read
        same = (out / f"{i:06d}.png").read_bytes() == (new / f"{i:06d}.png").read_bytes()
        assert same == (i not in (6, 7)), i
    more = tmp_path / "more"
    state = tmp_path / "run.state.safetensors"
    res = runner.invoke(app, ["extend", "--from", str(state), "-o", str(more), "--frames", "8", *common])
    assert res.exit_code == 0, res.output
    assert len(list(more.iterdir())) == 8
    manifest = json.loads((tmp_path / "more.manifest.json").read_text())
    assert manifest["model"]["family"] == "wan" and manifest["spec"]["options"]["queue"] == "latent"


def test_a_killed_wan_run_resumes_to_identical_bytes(tiny_wan_dir, image_file, tmp_path):
    args = lambda out: [  # noqa: E731
        "extend",
        str(image_file),
        "a red circle",
        "-o",
        str(out),
        "--model",
        str(tiny_wan_dir),
        "--frames",
        "21",
        "--steps",
        "2",
        "--resample",
        "1",
        "--seed",
        "4",
        "--quiet",
    ]
    assert runner.invoke(app, args(tmp_path / "ref.mp4")).exit_code == 0
    out = tmp_path / "k.mp4"
    assert killed_run(args(out), "window@3") == -9  # mid-run: frames decoded so far, the decoder's cache saved
    res = runner.invoke(app, [*args(out), "--resume"])
    assert res.exit_code == 0, res.output
    assert sha256_of(out) == sha256_of(tmp_path / "ref.mp4")


def test_a_batch_runs_wan_jobs(tiny_wan_dir, image_file, tmp_path):
    jobs = tmp_path / "jobs.jsonl"
    lines = [
        {"task": "extend", "id": "e", "image": str(image_file), "prompt": "x", "frames": 9},
        {"task": "generate", "id": "g", "prompt": "y", "frames": 9},
    ]
    jobs.write_text("\n".join(json.dumps(j) for j in lines))
    options = ["--model", str(tiny_wan_dir), "--steps", "1", "--resample", "0", "--quiet"]
    res = runner.invoke(app, ["batch", str(jobs), "-o", str(tmp_path / "out"), *options])
    assert res.exit_code == 0, res.output
    assert len(list(read_video(tmp_path / "out" / "e.mp4"))) == 9 and (tmp_path / "out" / "g.mp4").exists()


def test_info_reads_a_wan_folder(tiny_wan_dir):
    res = runner.invoke(app, ["info", str(tiny_wan_dir), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["family"] == "wan" and info["window_latent_frames"] == 3 and info["transformer_parameters"] > 0


def test_switches_of_the_other_family_are_refused(tiny_wan_dir):
    with pytest.raises(vidzero.BadInput, match="attention_slicing is a switch of the UNet3D family"):
        vidzero.load_backbone(str(tiny_wan_dir), device="cpu", attention_slicing=True)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"_class_name": "WanImageToVideoPipeline"}, "a WanImageToVideoPipeline checkpoint"),
        ({"transformer_2": ["diffusers", "WanTransformer3DModel"]}, "no boundary_ratio between 0 and 1"),
        ({"expand_timesteps": True}, "a Wan 2.2 TI2V checkpoint"),
    ],
)
def test_wan_checkpoints_it_cannot_drive_are_refused(tiny_wan_dir, tmp_path, change, message):
    import shutil

    folder = tmp_path / "other"
    shutil.copytree(tiny_wan_dir, folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, **change}))
    with pytest.raises(vidzero.BadInput, match=message):
        vidzero.load_backbone(str(folder), device="cpu")


def test_a_dry_run_on_a_wan_folder_gives_its_reason_for_no_time_in_words(
    tiny_wan_dir, image_file, tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no earlier run of it to time by
    args = ["extend", str(image_file), "x", "-o", str(tmp_path / "o.mp4"), "--model", str(tiny_wan_dir)]
    res = runner.invoke(app, [*args, "--frames", "13", "--dry-run"])
    assert res.exit_code == 0, res.output
    line = next(line for line in res.output.splitlines() if line.startswith("time:"))
    assert "the probe times UNet3D checkpoints only" in line and "Error" not in line
    assert not (tmp_path / "o.mp4").exists()


# ---------------------------------------------------------------------- Wan 2.2: two experts
@pytest.fixture(scope="module")
def two_experts(tmp_path_factory):
    from vidzero.models.tiny import build_tiny_wan_checkpoint

    folder = tmp_path_factory.mktemp("tiny-wan22")
    build_tiny_wan_checkpoint(folder, boundary_ratio=0.875)
    return folder


def test_two_experts_reproduce_wan_pipeline_with_its_second_guidance_scale(two_experts):
    """transformer above the boundary (0.875 x 1000), transformer_2 under it, each step with its
    own guidance scale, as WanPipeline does it: latents within 1e-5."""
    bb = vidzero.load_backbone(str(two_experts), device="cpu")
    assert bb.boundary_timestep == 875.0 and bb.transformer_2 is not None
    took: list[str] = []
    for name, expert in (("high", bb.transformer), ("low", bb.transformer_2)):
        expert.register_forward_pre_hook(lambda m, a, k, name=name: took.append(name), with_kwargs=True)
    run = vidzero.generate(
        "a red circle", 9, backbone=bb, steps=4, guidance_scale=5.0, guidance_scale_2=2.0, seed=3, progress=False
    )
    frames = list(run)
    assert took == ["high", "low", "low", "low"]  # shift 3: timesteps 1000, 858, 602, 9
    latents = torch.stack([f.latent for f in frames if f.latent is not None], dim=1)[None]
    pipe = pipeline(two_experts)
    kwargs = dict(prompt="a red circle", num_frames=9, height=32, width=32, num_inference_steps=4)
    ref = pipe(
        **kwargs,
        guidance_scale=5.0,
        guidance_scale_2=2.0,
        generator=torch.Generator().manual_seed(frames[0].seed),
        output_type="latent",
    ).frames
    assert (latents - ref).abs().max().item() <= 1e-5
    one_scale = vidzero.generate("a red circle", 9, backbone=bb, steps=4, guidance=5.0, seed=3, progress=False)
    assert not torch.equal(frames[1].latent, list(one_scale)[1].latent)  # the second scale counts


def test_info_shows_both_experts_and_the_boundary(two_experts):
    res = runner.invoke(app, ["info", str(two_experts), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["experts"] == ["transformer", "transformer_2"] and info["boundary_ratio"] == 0.875
    assert info["boundary_timestep"] == 875.0 and info["transformer_2_parameters"] == info["transformer_parameters"]


def test_every_task_runs_on_two_experts(two_experts, tmp_path):
    image = tmp_path / "i.png"
    from PIL import Image

    Image.fromarray(moving_square(1, 32)[0]).save(image)
    out = tmp_path / "o.mp4"
    res = runner.invoke(
        app,
        [
            "extend",
            str(image),
            "x",
            "-o",
            str(out),
            "--model",
            str(two_experts),
            "--frames",
            "9",
            "--steps",
            "2",
            "--guidance-2",
            "3",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "o.mp4.manifest.json").read_text())
    assert manifest["spec"]["options"]["guidance_2"] == 3.0 and len(list(read_video(out))) == 9


def test_memory_planning_holds_both_experts_or_one_at_a_time_offloaded(two_experts):
    from vidzero.app.planner import estimated_memory, planning_backbone
    from vidzero.runs.options import RunOptions

    bb = planning_backbone(RunOptions(model=str(two_experts), device="cpu"))  # fp32 on the CPU: 4 bytes
    s = bb.info.summary()
    modules = [s[f"{name}_parameters"] * 4 for name in ("transformer", "transformer_2", "text_encoder", "vae")]
    assert estimated_memory(bb)["weights"] * 1024**3 == pytest.approx(sum(modules))
    assert estimated_memory(bb, "model")["weights"] * 1024**3 == pytest.approx(max(modules))


# ---------------------------------------------------------------------- diffusers' cache hooks
def block_calls(bb) -> dict[str, list[float]]:
    """The timesteps at which the first and the last transformer block computed (their attention
    ran: a skipped block is still called, and hands back what the cache kept)."""
    seen: dict[str, list[float]] = {"first": [], "last": []}
    bb.transformer.blocks[0].attn1.register_forward_pre_hook(lambda *_: seen["first"].append(bb.current_timestep))
    bb.transformer.blocks[-1].attn1.register_forward_pre_hook(lambda *_: seen["last"].append(bb.current_timestep))
    return seen


def test_first_block_cache_skips_blocks_and_starts_every_window_afresh(tiny_wan_dir):
    plain = vidzero.load_backbone(str(tiny_wan_dir), device="cpu")
    cached = vidzero.load_backbone(str(tiny_wan_dir), device="cpu", cache="first-block:1.0")  # skips whatever it can
    seen = block_calls(cached)
    run = {"frames": 17, "steps": 4, "resample": 0, "seed": 1, "progress": False}  # windows of a long generate
    a = np.stack(vidzero.generate("x", backbone=plain, **run).frames())
    b = np.stack(vidzero.generate("x", backbone=cached, **run).frames())
    windows = len(seen["first"]) // 4
    assert windows >= 2 and len(seen["last"]) < len(seen["first"])  # the tail blocks were skipped
    assert seen["last"][::1].count(1000.0) == windows  # every window's first step ran all blocks
    assert not np.array_equal(a, b)
    # the backbone's cache is part of what made the frames: another fingerprint, in the record
    with_cache = vidzero.generate("x", backbone=cached, **run)
    assert with_cache.fingerprint() != vidzero.generate("x", backbone=plain, **run).fingerprint()
    assert with_cache.manifest()["model"]["cache"] == "first-block:1.0"


@pytest.mark.parametrize("cache", ["pab", "faster"])
def test_the_other_caches_run_on_wan(tiny_wan_dir, image_file, cache):
    bb = vidzero.load_backbone(str(tiny_wan_dir), device="cpu", cache=cache)
    frames = vidzero.extend(image_file, "x", frames=9, backbone=bb, steps=3, resample=0, guidance=4.0, progress=False)
    assert len(frames.frames()) == 9 and bb.cache == cache


@pytest.mark.parametrize(
    "cache, model, message",
    [
        ("mag", "wan", "magnitude ratios calibrated"),
        ("tea", "wan", "unknown --cache 'tea'"),
        ("pab:0.2", "wan", "pab takes no value"),
        ("first-block:2", "wan", "threshold must be in (0, 1]"),
        ("first-block", "unet3d", "UNet3DConditionModel"),
    ],
)
def test_caches_it_cannot_apply_are_one_line(tiny_wan_dir, tiny_model_dir, tmp_path, cache, model, message):
    folder = tiny_wan_dir if model == "wan" else tiny_model_dir
    res = runner.invoke(
        app, ["generate", "x", "-o", str(tmp_path / "o.mp4"), "--model", str(folder), "--cache", cache, "--quiet"]
    )
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and message in lines[0], res.output


def test_a_path_on_wan_is_refused_with_its_reason_and_the_default_target_stays_off(tiny_wan, image_file):
    with pytest.raises(vidzero.BadInput, match="one latent frame per video frame"):
        vidzero.extend(image_file, "x", frames=9, backbone=tiny_wan, path="3,3 5,5", progress=False)
    with pytest.raises(vidzero.BadInput, match="one latent frame per video frame"):
        list(vidzero.extend(image_file, "x", frames=9, backbone=tiny_wan, target="window", steps=1, progress=False))
    run = vidzero.extend(image_file, "x", frames=9, backbone=tiny_wan, steps=1, progress=False)  # the preset's auto
    assert run.engine.settings.target == "auto" and len(run.frames()) == 9
