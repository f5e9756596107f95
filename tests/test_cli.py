"""The CLI end to end (typer's runner): outputs, sidecars, manifests, progress in logs, exit codes."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from vidzero.app.cli import app
from vidzero.media.video import read_video

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_extend_end_to_end(tiny_model_dir, image_file, tmp_path):
    out = tmp_path / "out.mp4"
    res = invoke(
        "extend",
        image_file,
        "a red circle",
        "-o",
        out,
        "--model",
        tiny_model_dir,
        "--frames",
        5,
        "--steps",
        2,
        "--resample",
        1,
        "--quiet",
        "--seed",
        7,
    )
    assert res.exit_code == 0, res.output
    assert len(list(read_video(out))) == 5
    manifest = json.loads((tmp_path / "out.mp4.manifest.json").read_text())
    assert manifest["spec"]["task"] == "extend" and manifest["spec"]["options"]["seed"] == 7 and manifest["frames"] == 5
    assert len(manifest["frame_seeds"]) == 4 and manifest["sampler"]["resample"] == 1
    # one run, counted once: 4 windows of 2 steps x (1 + 1 resampling) guided evaluations
    assert manifest["timings"]["windows"] == 4 and manifest["timings"]["cfg_evaluations"] == 4 * 2 * 2
    assert manifest["versions"]["diffusers"] and manifest["spec"]["options"]["preset"] == "faithful"  # the default
    options = manifest["spec"]["options"]
    assert options["queue"] == "latent" and options["guidance"] == 2.0  # from the preset
    assert manifest["vidzero"]["sha256"] and str(out) == manifest["output"]
    assert (tmp_path / "out.mp4.contact.png").exists() and (tmp_path / "out.mp4.state.safetensors").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "input.png",
        "out.mp4",
        "out.mp4.contact.png",
        "out.mp4.manifest.json",
        "out.mp4.report.json",
        "out.mp4.report.png",
        "out.mp4.state.safetensors",
    ]


def test_outputs_of_two_formats_do_not_share_sidecars(tiny_model_dir, image_file, tmp_path):
    for name in ("a.mp4", "a.webm", "a"):
        res = invoke(
            "extend",
            image_file,
            "x",
            "-o",
            tmp_path / name,
            "--model",
            tiny_model_dir,
            "--frames",
            3,
            "--steps",
            1,
            "--resample",
            0,
            "--quiet",
        )
        assert res.exit_code == 0, res.output
    for name in ("a.mp4", "a.webm", "a"):
        assert json.loads((tmp_path / f"{name}.manifest.json").read_text())["output"] == str(tmp_path / name)


def test_generate_and_info(tiny_model_dir, tmp_path):
    res = invoke("generate", "a cat", "-o", tmp_path / "frames", "--model", tiny_model_dir, "--steps", 2, "--quiet")
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "frames").glob("*.png"))) == 8
    res = invoke("info", tiny_model_dir, "--json")
    assert res.exit_code == 0
    info = json.loads(res.output)
    assert info["window_frames"] == 8 and info["format_from"] == "vidzero.json" and info["unet_parameters"] > 0


def test_progress_goes_to_logs_as_plain_lines(tiny_model_dir, image_file, tmp_path):
    """Without a terminal the progress is plain lines, one per window, before the run ends."""
    res = invoke(
        "extend",
        image_file,
        "x",
        "-o",
        tmp_path / "o.mp4",
        "--model",
        tiny_model_dir,
        "--frames",
        4,
        "--steps",
        1,
        "--resample",
        0,
    )
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert [ln.split(",")[0] for ln in lines[:3]] == ["window 1/3", "window 2/3", "window 3/3"]
    wrote = next(i for i, ln in enumerate(lines) if ln.startswith("wrote "))
    seams = json.loads((tmp_path / "o.mp4.manifest.json").read_text())["report"]["seams"]
    assert [ln.split(" (")[0] for ln in lines[wrote + 1 :]] == [f"  seam at frame {s['frame']}" for s in seams]


def test_dry_run_prints_the_plan_and_writes_nothing(tiny_model_dir, image_file, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    res = invoke(
        "extend", image_file, "x", "-o", tmp_path / "o.mp4", "--model", tiny_model_dir, "--frames", 12, "--dry-run"
    )
    assert res.exit_code == 0, res.output
    assert "11 windows" in res.output and "110 guided UNet evaluations" in res.output and "time: about" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.png"]


def test_dry_run_on_a_gpu_uses_the_table_measured_on_it(tiny_model_dir, image_file, tmp_path, monkeypatch):
    import torch

    import vidzero.app.planner as planner
    from vidzero.models.checkpoint import inspect_checkpoint
    from vidzero.runs import timings

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    parameters = inspect_checkpoint(str(tiny_model_dir)).summary()["unet_parameters"]
    row = timings.GpuTiming("B300", "float16", "unet3d", parameters, (4, 8, 8), 0.5, "B300, a test row")
    monkeypatch.setattr(timings, "GPU_TIMINGS", (row,))
    monkeypatch.setattr(planner, "pick_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(planner, "gpu_name", lambda device: "NVIDIA B300 SXM6")
    res = invoke(
        "extend", image_file, "x", "-o", tmp_path / "o.mp4", "--model", tiny_model_dir, "--frames", 3, "--dry-run"
    )
    assert res.exit_code == 0, res.output
    # the tiny window is 8 latent frames of 8x8: twice the row's volume, so twice its time
    assert "(1.000 s per evaluation, from the GPU table: B300, a test row, scaled" in res.output


def test_internal_errors_exit_1(monkeypatch, tiny_model_dir, image_file, tmp_path):
    import vidzero.core.engine

    def boom(*a, **k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(vidzero.core.engine, "sample_window", boom)
    res = invoke(
        "extend", image_file, "x", "-o", tmp_path / "o.mp4", "--model", tiny_model_dir, "--steps", 1, "--quiet"
    )
    assert res.exit_code == 1
    assert "internal error" in res.output and "kaboom" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.png"]


def test_help_has_examples_and_every_run_option():
    from vidzero.runs.options import RunOptions

    res = invoke("extend", "--help")
    assert res.exit_code == 0 and "Example" in res.output
    text = " ".join(res.output.split())
    import dataclasses

    for f in dataclasses.fields(RunOptions):
        if f.metadata.get("cli", True):
            assert "--" + f.name.replace("_", "-") in text, f.name


def test_window_and_size_overrides(tiny_model_dir, image_file, tmp_path):
    out = tmp_path / "o"
    res = invoke(
        "extend",
        image_file,
        "a cat",
        "-o",
        out,
        "--model",
        tiny_model_dir,
        "--frames",
        6,
        "--window",
        4,
        "--height",
        24,
        "--width",
        32,
        "--steps",
        1,
        "--resample",
        0,
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    frames = list(read_video(out))
    assert len(frames) == 6 and frames[0].shape == (24, 32, 3)
    assert json.loads((tmp_path / "o.manifest.json").read_text())["model"]["window"] == 4


def test_loop_planning_on_the_cli(tiny_model_dir, image_file, tmp_path):
    res = invoke(
        "extend",
        image_file,
        "x",
        "-o",
        tmp_path / "loop.mp4",
        "--model",
        tiny_model_dir,
        "--frames",
        12,
        "--steps",
        1,
        "--resample",
        0,
        "--loop",
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "loop.mp4.manifest.json").read_text())
    assert manifest["spec"]["inputs"]["loop"] is True
    assert 0 in manifest["plan"][-1]["slots"][manifest["plan"][-1]["generate"][0] + 1 :]  # frame 0 follows the end
    assert len(np.stack(list(read_video(tmp_path / "loop.mp4")))) == 12


def test_ctrl_c_while_the_model_loads_is_one_line_and_exit_130(tiny_model_dir, image_file, tmp_path, monkeypatch):
    import vidzero.models.unet3d

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(vidzero.models.unet3d.UNet3DBackbone, "from_checkpoint", interrupted)
    res = invoke("extend", image_file, "x", "-o", tmp_path / "o.mp4", "--model", tiny_model_dir, "--quiet")
    assert res.exit_code == 130 and res.output.strip() == "interrupted; nothing was written"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.png"]


def test_tiny_frames_and_fast_clips_run_to_the_end(tiny_model_dir, image_file, tmp_path):
    """8x8 frames (the quality report's flow needs frames of 12 px: smaller ones are enlarged for
    it) and a clip of 250 fps (its rate kept) both finish with every file written."""
    from tests.synthetic import moving_square
    from vidzero.media.video import video_info, write_video

    common = ["--model", str(tiny_model_dir), "--steps", "1", "--resample", "0", "--quiet"]
    res = runner.invoke(
        app,
        [
            "extend",
            str(image_file),
            "x",
            "-o",
            str(tmp_path / "s.mp4"),
            "--height",
            "8",
            "--width",
            "8",
            "--frames",
            "3",
            *common,
        ],
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "s.mp4.report.json").exists()
    clip = write_video(moving_square(10, 16), tmp_path / "fast.mp4", fps=250)
    res = runner.invoke(app, ["predict", str(clip), "x", "-o", str(tmp_path / "p.mp4"), "--frames", "2", *common])
    assert res.exit_code == 0, res.output
    assert video_info(tmp_path / "p.mp4")["fps"] == 250


def test_help_shows_a_b_ranges_as_written():
    """rich reads `:b:` as an emoji code; the help keeps `A:B` as written."""
    res = CliRunner().invoke(app, ["extend", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "\U0001f171" not in res.output and "--guidance-steps" in res.output
    assert "A:\u2060B: guidance only in steps" in res.output
