"""The CLI end to end (typer's runner) and its bad-input contract: exit 2, one clear line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vidzero.cli import app
from vidzero.io import read_video

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_extend_end_to_end(tiny_model_dir, image_file, tmp_path):
    out = tmp_path / "out.mp4"
    res = invoke("extend", image_file, "a red circle", "-o", out, "--model", tiny_model_dir, "--frames", 5,
                 "--steps", 2, "--resample", 1, "--quiet", "--seed", 7)
    assert res.exit_code == 0, res.output
    assert len(list(read_video(out))) == 5
    manifest = json.loads((tmp_path / "out.manifest.json").read_text())
    assert manifest["task"] == "extend" and manifest["seed"] == 7 and manifest["frames"] == 5
    assert len(manifest["frame_seeds"]) == 4 and manifest["sampler"]["resample"] == 1
    assert manifest["versions"]["diffusers"] and manifest["timings"]["cfg_evaluations"] == 4 * 2 * 2
    assert (tmp_path / "out.contact.png").exists()


def test_generate_and_info(tiny_model_dir, tmp_path):
    res = invoke("generate", "a cat", "-o", tmp_path / "frames", "--model", tiny_model_dir, "--steps", 2, "--quiet")
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "frames").glob("*.png"))) == 8
    res = invoke("info", tiny_model_dir, "--json")
    assert res.exit_code == 0
    assert json.loads(res.output)["window_frames"] == 8


@pytest.fixture
def bad_files(tmp_path):
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "exists.mp4").write_bytes(b"x")
    (tmp_path / "notamodel").mkdir()
    ro = tmp_path / "readonly"
    ro.mkdir()
    ro.chmod(0o500)
    return tmp_path


@pytest.mark.parametrize(
    "args,message",
    [
        (["{d}/missing.png", "-o", "{d}/o.mp4"], "image not found"),
        (["{d}/corrupt.png", "-o", "{d}/o.mp4"], "not an image or corrupt"),
        (["{d}/notes.txt", "-o", "{d}/o.mp4"], "not an image or corrupt"),
        (["{img}", "-o", "{d}/o.mp4", "--model", "{d}/notamodel"], "not a diffusers checkpoint"),
        (["{img}", "-o", "{d}/o.mp4", "--frames", "1"], "at least 2"),
        (["{img}", "-o", "{d}/o.mp4", "--frames", "100000000"], "absurdly large"),
        (["{img}", "-o", "{d}/o.mp4", "--steps", "0"], "--steps"),
        (["{img}", "-o", "{d}/o.mp4", "--guidance", "-1"], "--guidance"),
        (["{img}", "-o", "{d}/readonly/o.mp4"], "not writable"),
        (["{img}", "-o", "{d}/exists.mp4"], "output exists"),
        (["{img}", "-o", "{d}/o.avi"], "unknown output extension"),
        (["{img}", "-o", "{d}/o.mp4", "--queue", "disk"], "queue"),
        (["{img}", "-o", "{d}/o.mp4", "--dtype", "fp8"], "dtype"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(bad_files, image_file, tiny_model_dir, args, message):
    import os

    args = [a.format(d=bad_files, img=image_file) for a in args]
    if "readonly" in " ".join(args) and os.geteuid() == 0:
        # root ignores permission bits; a read-only mount still refuses it.
        readonly = next((p for p in ("/proc/sys", "/sys") if os.path.isdir(p) and not os.access(p, os.W_OK)), None)
        if readonly is None:
            pytest.skip("no read-only folder available to root here")
        args = [a.replace(f"{bad_files}/readonly", readonly) for a in args]
    if "--model" not in args:
        args += ["--model", str(tiny_model_dir)]
    res = invoke("extend", *args[:1], "a prompt", *args[1:], "--steps" if "--steps" not in args else "--seed", "1" if "--steps" not in args else "0", "--quiet")
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], res.output
    assert "Traceback" not in res.output
    assert not (bad_files / "o.mp4").exists()


def test_internal_errors_exit_1(monkeypatch, tiny_model_dir, image_file, tmp_path):
    import vidzero.engine

    def boom(*a, **k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(vidzero.engine, "sample_window", boom)
    res = invoke("extend", image_file, "x", "-o", tmp_path / "o.mp4", "--model", tiny_model_dir, "--steps", 1, "--quiet")
    assert res.exit_code == 1
    assert "internal error" in res.output and "kaboom" in res.output
    assert not list(tmp_path.glob("o.*"))


def test_help_has_examples():
    res = invoke("extend", "--help")
    assert res.exit_code == 0 and "Example" in res.output


def test_window_and_size_overrides(tiny_model_dir, image_file, tmp_path):
    out = tmp_path / "o"
    res = invoke("extend", image_file, "a cat", "-o", out, "--model", tiny_model_dir, "--frames", 6, "--window", 4,
                 "--height", 24, "--width", 32, "--steps", 1, "--resample", 0, "--quiet")
    assert res.exit_code == 0, res.output
    frames = list(read_video(out))
    assert len(frames) == 6 and frames[0].shape == (24, 32, 3)
    assert json.loads((tmp_path / "o.manifest.json").read_text())["model"]["window"] == 4
    res = invoke("extend", image_file, "a cat", "-o", tmp_path / "p", "--model", tiny_model_dir, "--height", 25, "--quiet")
    assert res.exit_code == 2 and "multiples of 2" in res.output
    res = invoke("generate", "a cat", "-o", tmp_path / "q", "--model", tiny_model_dir, "--window", 1, "--quiet")
    assert res.exit_code == 2 and "--window" in res.output
