"""Checkpoints as diffusers users download them: the format from the files, fp16-only folders,
`info` from headers alone, memory switches that keep the output."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import torch

import vidzero
from vidzero.errors import BadInput
from vidzero.models.checkpoint import inspect_checkpoint


@pytest.fixture(scope="module")
def fp16_only(tmp_path_factory, tiny_model_dir):
    """The usual GPU download: only `*.fp16.safetensors` weights."""
    from diffusers import TextToVideoSDPipeline

    folder = tmp_path_factory.mktemp("fp16only")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = TextToVideoSDPipeline.from_pretrained(tiny_model_dir)
        pipe.to(torch.float16).save_pretrained(folder, variant="fp16")
    shutil.copy(tiny_model_dir / "vidzero.json", folder / "vidzero.json")
    return folder


def test_an_fp16_only_folder_is_found_and_loads(fp16_only):
    info = inspect_checkpoint(str(fp16_only))
    assert set(info.variants.values()) == {"fp16"}
    bb = vidzero.load_backbone(str(fp16_only), device="cpu")
    assert bb.unet.dtype == torch.float32  # weights cast to the run's dtype
    with pytest.raises(BadInput, match="no 'fp32' weights"):
        inspect_checkpoint(str(fp16_only), variant="fp32")


def test_info_reads_headers_only(fp16_only, monkeypatch):
    import safetensors.torch

    def refuse(*args, **kwargs):
        raise AssertionError("info must not load weights")

    monkeypatch.setattr(safetensors.torch, "load_file", refuse)
    summary = inspect_checkpoint(str(fp16_only)).summary()
    assert summary["unet_parameters"] > 1000 and summary["unet_weights"] == ["F16"]
    assert summary["unet_variant"] == "fp16" and summary["window_frames"] == 8


def zeroscope_like(tmp_path, tiny_model_dir, how: str):
    folder = tmp_path / ("models--cerspense--zeroscope_v2_576w/snapshots/" + "a" * 40 if how == "cache" else "zs")
    shutil.copytree(tiny_model_dir, folder)
    (folder / "vidzero.json").unlink()
    if how == "card":
        (folder / "README.md").write_text(
            "# zeroscope_v2 576w\nA watermark-free Modelscope-based video model, "
            "576x320, 24 frames. See zeroscope_v2_XL for upscaling; zeroscope_v2_576w."
        )
    if how == "index":
        index = json.loads((folder / "model_index.json").read_text())
        index["_name_or_path"] = "cerspense/zeroscope_v2_576w"
        (folder / "model_index.json").write_text(json.dumps(index))
    return folder


@pytest.mark.parametrize("how", ["card", "cache", "index"])
def test_the_native_format_comes_from_the_files_not_the_typed_name(tmp_path, tiny_model_dir, how):
    info = inspect_checkpoint(str(zeroscope_like(tmp_path, tiny_model_dir, how)))
    assert (info.frames, info.height, info.width) == (24, 320, 576) and "zeroscope_v2_576w" in info.format_source


def test_a_format_override_wins_and_unknown_checkpoints_say_where_their_format_came_from(tmp_path, tiny_model_dir):
    folder = zeroscope_like(tmp_path, tiny_model_dir, "card")
    (folder / "vidzero.json").write_text(json.dumps({"frames": 12, "height": 64, "width": 64}))
    assert inspect_checkpoint(str(folder)).frames == 12
    (folder / "vidzero.json").unlink()
    (folder / "README.md").unlink()
    info = inspect_checkpoint(str(folder))
    assert info.frames == 16 and "default" in info.format_source


def test_memory_switches_keep_the_output(tiny_model_dir, image_file):
    def frames(**switches):
        bb = vidzero.load_backbone(str(tiny_model_dir), device="cpu", **switches)
        run = vidzero.extend(image_file, "x", frames=3, backbone=bb, steps=2, resample=1, progress=False)
        return np.stack(run.frames()).astype(int)

    plain = frames()
    for switches in ({"attention_slicing": True}, {"forward_chunking": 2}, {"vae_slice": 1}, {"vae_tiling": True}):
        assert np.abs(frames(**switches) - plain).max() <= 1, switches
