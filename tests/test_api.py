"""The Python API in the shape diffusers users know: explicit keywords, aliases, generator=,
step callbacks that can stop a run, output types, progress, runs that generate once."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import vidzero
import vidzero.core.engine
from vidzero.models.loading import PromptTruncatedWarning

FAST = {"steps": 1, "resample": 0, "progress": False}


def count_windows(monkeypatch) -> dict:
    calls = {"n": 0}
    real = vidzero.core.engine.sample_window

    def counting(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(vidzero.core.engine, "sample_window", counting)
    return calls


def test_iterating_then_saving_generates_once(tiny_backbone, image_file, tmp_path, monkeypatch):
    calls = count_windows(monkeypatch)
    run = vidzero.extend(image_file, "x", frames=4, backbone=tiny_backbone, **FAST)
    images = [f.image for f in run]
    run.save(tmp_path / "a.mp4")
    assert calls["n"] == 3 and len(images) == 4
    manifest = json.loads((tmp_path / "a.mp4.manifest.json").read_text())
    assert manifest["timings"]["windows"] == 3 and manifest["timings"]["cfg_evaluations"] == 3
    assert [f.image for f in run] == images or all(np.array_equal(a, b.image) for a, b in zip(images, run))
    assert calls["n"] == 3  # iterating again replays what was made


def test_a_partly_iterated_run_saves_the_rest_once(tiny_backbone, image_file, tmp_path, monkeypatch):
    calls = count_windows(monkeypatch)
    run = vidzero.extend(image_file, "x", frames=6, backbone=tiny_backbone, **FAST)
    for frame in run:
        if frame.index == 2:
            break
    run.save(tmp_path / "a")
    assert calls["n"] == 5 and len(list((tmp_path / "a").iterdir())) == 6


def test_a_run_saved_without_keeping_its_frames_says_so_when_saved_again(tiny_backbone, image_file, tmp_path):
    run = vidzero.extend(image_file, "x", frames=3, backbone=tiny_backbone, **FAST)
    run.save(tmp_path / "c")  # streamed to disk: frames are not kept in memory
    with pytest.raises(vidzero.BadInput, match="saved to"):
        run.save(tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_a_generator_gives_the_run_its_seed(tiny_backbone, image_file):
    a = vidzero.extend(
        image_file,
        "x",
        3,
        steps=2,
        guidance=3.0,
        generator=torch.Generator().manual_seed(11),
        backbone=tiny_backbone,
        resample=0,
        progress=False,
    )
    assert a.length == 3 and a.engine.settings.steps == 2 and a.engine.settings.guidance == 3.0 and a.engine.seed == 11
    b = vidzero.extend(
        image_file, "x", frames=3, steps=2, guidance=3.0, seed=11, backbone=tiny_backbone, resample=0, progress=False
    )
    np.testing.assert_array_equal(np.stack(a.frames()), np.stack(b.frames()))
    with pytest.raises(vidzero.BadInput, match="seed or generator"):
        vidzero.extend(image_file, "x", seed=1, generator=torch.Generator(), backbone=tiny_backbone)


def test_a_step_callback_sees_latents_and_x0_and_can_stop_the_run(tiny_backbone, image_file):
    seen = []

    def callback(info):
        seen.append((info.window, info.step, info.timestep, tuple(info.latents.shape), tuple(info.x0.shape)))
        return not (info.window == 1 and info.step == 2)  # stop in the second window

    run = vidzero.extend(
        image_file, "x", frames=6, backbone=tiny_backbone, steps=3, resample=0, progress=False, callback=callback
    )
    frames = list(run)
    assert run.stopped and len(frames) == 2  # the image and the first window's frame
    assert seen[0][:3] == (0, 1, 667) and seen[-1][:2] == (1, 2)  # 3 "leading" steps: 667, 334, 1
    assert seen[0][3] == seen[0][4] == (1, 4, 8, 8, 8)


@pytest.mark.parametrize("kind", ["uint8", "float", "pil", "latent"])
def test_output_types(tiny_backbone, image_file, kind):
    frames = vidzero.extend(image_file, "x", frames=3, backbone=tiny_backbone, output_type=kind, **FAST).frames()
    first, last = frames[0], frames[-1]
    if kind == "uint8":
        assert first.dtype == np.uint8 and first.shape == (16, 16, 3)
    elif kind == "float":
        assert first.dtype == np.float32 and 0 <= first.min() and first.max() <= 1
    elif kind == "pil":
        assert isinstance(first, Image.Image) and first.size == (16, 16)
    else:
        assert isinstance(last, torch.Tensor) and tuple(last.shape) == (4, 8, 8)


def test_progress_is_shown_by_default_and_can_be_switched_off(tiny_backbone, image_file, monkeypatch):
    buffer = io.StringIO()
    monkeypatch.setattr("sys.stderr", buffer)
    vidzero.extend(image_file, "x", frames=3, backbone=tiny_backbone, steps=1, resample=0).frames()
    assert "window 2/2" in buffer.getvalue()
    buffer.truncate(0)
    vidzero.extend(image_file, "x", frames=3, backbone=tiny_backbone, **FAST).frames()
    assert buffer.getvalue() == ""


def test_dtypes_are_accepted_as_torch_dtypes_and_names(tiny_model_dir):
    for value in (torch.bfloat16, "bf16", "bfloat16", "torch.bfloat16"):
        assert vidzero.load_backbone(str(tiny_model_dir), device="cpu", dtype=value).dtype == torch.bfloat16
    assert vidzero.load_backbone(str(tiny_model_dir), device="cpu").dtype == torch.float32  # the CPU default


def test_a_backbone_from_a_loaded_diffusers_pipeline(tiny_model_dir, tiny_backbone, image_file):
    from diffusers import TextToVideoSDPipeline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = TextToVideoSDPipeline.from_pretrained(tiny_model_dir)
    bb = vidzero.backbone_from_pipeline(pipe, frames=8)
    assert bb.unet is pipe.unet  # the pipeline's own weights, not a copy
    a = vidzero.extend(image_file, "x", frames=3, backbone=bb, **FAST).frames()
    b = vidzero.extend(image_file, "x", frames=3, backbone=tiny_backbone, **FAST).frames()
    np.testing.assert_array_equal(np.stack(a), np.stack(b))


def test_long_prompts_warn_that_they_are_cut(tiny_backbone, image_file):
    long_prompt = "a red circle moving right " * 10
    with pytest.warns(PromptTruncatedWarning, match="first 77"):
        run = vidzero.extend(image_file, long_prompt, frames=2, backbone=tiny_backbone, **FAST)
        run.frames()
    assert run.manifest()["truncated_prompts"][long_prompt] > 77


def test_loading_leaves_the_process_settings_alone(tiny_model_dir, monkeypatch):
    import os

    import diffusers.utils.logging as dlog

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    dlog.set_verbosity_info()
    vidzero.load_backbone(str(tiny_model_dir), device="cpu")
    assert dlog.get_verbosity() == dlog.INFO and "HF_HUB_OFFLINE" not in os.environ
    dlog.set_verbosity_warning()


def test_diffusers_names_are_aliases_of_vidzeros(tiny_backbone, image_file):
    """A diffusers user's habits: num_inference_steps, guidance_scale, num_frames, torch_dtype and
    callback_on_step_end give the run vidzero's names give."""
    import numpy as np
    import torch

    seen = []

    def on_step_end(pipe, step_index, timestep, callback_kwargs):
        seen.append((step_index, int(timestep), tuple(callback_kwargs["latents"].shape)))
        return callback_kwargs

    common = {"backbone": tiny_backbone, "progress": False, "resample": 0}
    ours = vidzero.extend(image_file, "a red circle", 3, steps=2, guidance=3.0, **common)
    theirs = vidzero.extend(
        image_file,
        "a red circle",
        num_frames=3,
        num_inference_steps=2,
        guidance_scale=3.0,
        torch_dtype=torch.float32,
        callback_on_step_end=on_step_end,
        **common,
    )
    np.testing.assert_array_equal(np.stack(ours.frames()), np.stack(theirs.frames()))
    assert theirs.spec.options.steps == 2 and theirs.spec.options.guidance == 3.0
    assert [s[0] for s in seen] == [0, 1, 0, 1]  # two windows of two steps
    with pytest.raises(TypeError, match="unexpected keyword argument 'num_frames'"):
        vidzero.reroll("out.mp4", "1-2", num_frames=3)
