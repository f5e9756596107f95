"""Tiny T2V components built and saved here: no network, seconds to load."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"
# Runs remember their timings in the user's cache (for --dry-run); tests keep theirs to themselves.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="vidzero-test-cache-")
# Tiny models gain nothing from threads, and spinning OpenMP threads slow down anything else
# running (a training job, a parallel CI step) by an order of magnitude.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from vidzero.models.tiny import build_tiny_checkpoint

    folder = tmp_path_factory.mktemp("tiny-t2v")
    build_tiny_checkpoint(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_backbone(tiny_model_dir):
    from vidzero.models.families import load_backbone

    return load_backbone(str(tiny_model_dir), device="cpu")


@pytest.fixture
def image_file(tmp_path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    img = (rng.random((40, 56, 3)) * 255).astype(np.uint8)  # not square: exercises centre crop
    path = tmp_path / "input.png"
    Image.fromarray(img).save(path)
    return path


@pytest.fixture(scope="session")
def tiny_wan_dir(tmp_path_factory) -> Path:
    from vidzero.models.tiny import build_tiny_wan_checkpoint

    folder = tmp_path_factory.mktemp("tiny-wan")
    build_tiny_wan_checkpoint(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_wan(tiny_wan_dir):
    from vidzero.models.families import load_backbone

    return load_backbone(str(tiny_wan_dir), device="cpu")
