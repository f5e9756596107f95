"""The embedded default backbone that ships inside the package loads through the real loader
and behaves like a trained model (not like random weights)."""

from __future__ import annotations

import json

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

import vidzero
from tests.synthetic import moving_square
from vidzero.models.families import load_backbone
from vidzero.models.hub import EMBEDDED_MODEL_DIR

# The scheduler of the ModelScope T2V release, which the embedded model shares.
MODELSCOPE_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
}
PROMPTS = [
    "a red circle moving right",
    "a small blue square moving up on a gray background",
    "a large green triangle moving left",
    "two objects: a white circle standing still and a red square moving down",
]


def test_shipped_model_is_the_default_and_loads():
    backbone = load_backbone(device="cpu")  # no model named: the embedded one
    assert backbone.model_id == "shapes"
    assert isinstance(backbone.unet, UNet3DConditionModel)
    assert isinstance(backbone.vae, AutoencoderKL)
    assert isinstance(backbone.text_encoder, CLIPTextModel)
    assert isinstance(backbone.tokenizer, CLIPTokenizer)
    assert isinstance(backbone.scheduler, DDIMScheduler)
    assert (backbone.frames, backbone.height, backbone.width) == (16, 64, 64)
    assert backbone.latent_shape == (4, 8, 8)
    for key, value in MODELSCOPE_SCHEDULER.items():
        assert backbone.scheduler.config[key] == value, key
    weights = sum(f.stat().st_size for f in EMBEDDED_MODEL_DIR.rglob("*.safetensors"))
    assert 1e6 < weights <= 25e6
    assert json.loads((EMBEDDED_MODEL_DIR / "training.json").read_text())["unet_steps"] > 0


def test_shipped_vae_reconstructs_the_world_and_text_encoder_tells_captions_apart():
    backbone = load_backbone("shapes", device="cpu")
    clip = moving_square(16, speed=2.0)
    pixels = torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 127.5 - 1
    back = backbone.decode(backbone.encode_frames(pixels))
    mse = (back - pixels).pow(2).mean().item()
    assert 10 * np.log10(4 / mse) > 25  # PSNR over the [-1, 1] range; random weights give ~5 dB
    red, blue, empty = (
        backbone.encode_text(p) for p in ("a red circle moving right", "a blue circle moving right", "")
    )
    assert not torch.allclose(red, blue, atol=1e-3) and not torch.allclose(red, empty, atol=1e-3)


def test_default_model_generates_a_window():
    frames = list(vidzero.generate("a red circle moving right", steps=2, seed=0).frames())
    assert len(frames) == 16 and frames[0].shape == (64, 64, 3) and frames[0].dtype == np.uint8


def test_shipped_tokenizer_has_the_classic_files_too(tmp_path):
    import shutil

    for name in ("vocab.json", "merges.txt"):
        shutil.copy(EMBEDDED_MODEL_DIR / "tokenizer" / name, tmp_path / name)
    classic = CLIPTokenizer.from_pretrained(tmp_path)  # built from vocab.json + merges.txt alone
    shipped = CLIPTokenizer.from_pretrained(EMBEDDED_MODEL_DIR / "tokenizer")
    for caption in PROMPTS:
        assert classic(caption).input_ids == shipped(caption).input_ids


def test_a_photograph_far_outside_the_model_gets_one_warning_and_still_runs():
    import warnings

    import cv2
    import skimage.data

    from vidzero.runs.notices import FarFromModelWarning

    cat = cv2.resize(skimage.data.chelsea()[:, 75:375], (64, 64), interpolation=cv2.INTER_AREA)
    circle = vidzero.extend("examples/red_circle.png", "a red circle moving right", frames=2, steps=1, progress=False)
    photo = vidzero.extend(cat, "a cat moving right", frames=2, steps=1, progress=False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert len(circle.frames()) == 2
        assert [str(w.message) for w in seen if w.category is FarFromModelWarning] == []
        assert len(photo.frames()) == 2  # never a refusal
    far = [str(w.message) for w in seen if w.category is FarFromModelWarning]
    assert len(far) == 1 and "docs/model-card.md" in far[0] and "--model" in far[0]
