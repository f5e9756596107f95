"""The user-facing recipes run end to end on the tiny checkpoint (they use only the public API)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from PIL import Image

from tests.synthetic import moving_square
from vidzero.media.video import read_video, write_video

ROOT = Path(__file__).resolve().parents[1]


def run(module: str, *args) -> None:
    """A recipe's main() in this process (they are modules of the `recipes` package)."""
    importlib.import_module(module).main([str(a) for a in args])


@pytest.fixture
def material(tmp_path):
    (tmp_path / "clips").mkdir()
    (tmp_path / "photos").mkdir()
    write_video(moving_square(10), tmp_path / "clips" / "c0.mp4")
    for i in range(2):
        Image.fromarray(moving_square(1, start=(20.0 + 10 * i, 30.0))[0]).save(tmp_path / "photos" / f"p{i}.png")
    return tmp_path


def test_continue_clips(material, tiny_model_dir):
    run(
        "recipes.cookbook.continue_clips",
        material / "clips",
        material / "out",
        "x",
        "--frames",
        2,
        "--model",
        tiny_model_dir,
        "--steps",
        1,
        "--resample",
        0,
    )
    assert len(list(read_video(material / "out" / "c0-predict.mp4"))) == 7 + 2


def test_infill_pairs(material, tiny_model_dir):
    run(
        "recipes.cookbook.infill_pairs",
        material / "photos",
        material / "out",
        "x",
        "--frames",
        5,
        "--model",
        tiny_model_dir,
        "--steps",
        1,
        "--resample",
        0,
    )
    assert len(list(read_video(material / "out" / "p0_p1.mp4"))) == 5


def test_long_video_schedule(material, tiny_model_dir):
    out = material / "long.mp4"
    run(
        "recipes.cookbook.long_video_schedule",
        material / "photos" / "p0.png",
        out,
        "--frames",
        20,
        "--model",
        tiny_model_dir,
        "--steps",
        1,
        "--resample",
        0,
        "--at",
        "0=a cat",
        "--at",
        "10=a red circle",
    )
    assert len(list(read_video(out))) == 20


def test_paper_protocol(material, tiny_model_dir):
    run(
        "recipes.cookbook.paper_protocol",
        material / "clips",
        material / "fvd",
        "--prompt-from",
        "ucf101",
        "--frames",
        4,
        "--model",
        tiny_model_dir,
        "--steps",
        1,
        "--resample",
        0,
    )
    import json

    pairs = json.loads((material / "fvd" / "fvd.json").read_text())["pairs"]
    assert len(pairs) == 1
    real, fake = (list(read_video(pairs[0][k])) for k in ("real", "fake"))
    assert len(real) == len(fake) == 4 and real[0].shape == fake[0].shape


def test_ucf101_prompts():
    from recipes.cookbook.paper_protocol import ucf101_prompt

    assert ucf101_prompt("v_ApplyEyeMakeup_g01_c01") == "a person apply eye makeup"


@pytest.mark.slow
def test_wan_1_3b_real_architecture_loads_and_extends(tmp_path):
    """Wan 2.1 T2V 1.3B's transformer and VAE from their published configs with random weights,
    loaded through the normal path, a short extend on the CPU (about a minute, 3 GB of disk)."""
    from recipes.gpu import wan_random

    wan_random.main(["--out", str(tmp_path / "wan"), "--size", "32", "--frames", "5"])
    assert len(list(read_video(tmp_path / "wan" / "extend.mp4"))) == 5


def test_wan_memory_estimate_runs_on_fake_tensors():
    from recipes.bench import wan_memory

    result = wan_memory.estimate(9, 64, 64)
    assert result["weights"]["transformer bf16"] > 2.5 * 1024**3  # 1.4 B parameters in bf16
    assert set(result["phases"]) == {
        "text encoder",
        "transformer, one guided evaluation",
        "VAE, streaming decode step",
        "VAE, streaming decode step, one tile",
        "VAE encode, 1 frame",
    }


def test_packing_bench_runs(capsys):
    run("recipes.bench.packing", "--model", "tiny", "--pack", "2", "--frames", "3", "--steps", "2", "--repeats", "1")
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| 2 |"))
    assert row.endswith("levels |")


@pytest.mark.slow  # 22 s: the GPU script's every part, run before a GPU is used (python -m pytest -m slow)
def test_gpu_check_runs_every_part_on_tiny_models(tmp_path):
    import json

    run("recipes.gpu.check", "--tiny", "--device", "cpu", "--skip", "compile", "--out", tmp_path)
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert {name: part["status"] for name, part in report["parts"].items()} == dict.fromkeys(
        ("speed", "engine", "memory", "packing", "options", "wan"), "done"
    )


def test_deflicker_bench_quick(capsys):
    run("recipes.bench.deflicker", "--quick")
    assert "| vidzero |" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("bench", ["tasks", "fidelity"])
def test_bench_quick_modes(bench, tmp_path):
    """The benches behind the docs' tables run end to end on the embedded model (a minute each)."""
    run(f"recipes.bench.{bench}", "--quick", "--out", tmp_path)
    assert any(tmp_path.iterdir())


def test_every_recipe_imports():
    """A recipe that is not run by the default suite still follows the package's moves."""
    import pkgutil

    import recipes

    names = [m.name for m in pkgutil.walk_packages(recipes.__path__, "recipes.")]
    assert len(names) > 25
    for name in names:
        importlib.import_module(name)
