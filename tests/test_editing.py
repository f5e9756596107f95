"""Editing beyond the paper: seamless loops, rerolling a stretch of a finished run, the quality
report of every run and of any clip."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.synthetic import moving_square
from vidzero.app.cli import app
from vidzero.core.timeline import plan_prefix, plan_timeline
from vidzero.media.video import write_video
from vidzero.quality.report import quality_report

runner = CliRunner()
FAST = ["--steps", "1", "--resample", "0", "--quiet"]


def test_a_loop_plan_sees_the_first_frames_after_the_last():
    jobs = plan_prefix(20, 1, 8, loop=True)
    assert [t for j in jobs for t in j.targets] == list(range(1, 20))
    last = jobs[-1]
    target = last.generate[0]
    assert last.slots[target] == 19 and last.slots[target + 1 :] == (0, 1, 2)  # what follows the end: the start
    assert all(0 not in j.slots[j.generate[0] + 1 :] for j in jobs[:10])  # early windows look back only
    inward = plan_timeline(12, {0, 6}, 6, "inward", loop=True)
    assert sorted(t for j in inward for t in j.targets) == [1, 2, 3, 4, 5, 7, 8, 9, 10, 11]
    assert any(11 in j.targets and 0 in j.slots for j in inward)  # the wrap gap is filled from both keys


def test_every_run_writes_a_quality_report(tiny_model_dir, image_file, tmp_path):
    out = tmp_path / "o.mp4"
    res = runner.invoke(
        app, ["extend", str(image_file), "x", "-o", str(out), "--model", str(tiny_model_dir), "--frames", "6", *FAST]
    )
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "o.mp4.report.json").read_text())
    assert report["frames"] == 6 and report["known_frames"] == [0]
    assert report["per_frame"]["known_distance"][0] == 0.0  # the image is kept exactly
    assert set(report["per_frame"]) == {"flicker", "step", "change", "colour_drift", "known_distance"}
    manifest = json.loads((tmp_path / "o.mp4.manifest.json").read_text())
    assert manifest["report"]["seams"] == report["seams"] and "flicker_index" in manifest["report"]
    assert (tmp_path / "o.mp4.report.png").stat().st_size > 2000


def test_the_report_flags_a_seam_and_says_how_to_reroll_it(tmp_path):
    clip = moving_square(20, speed=1.0)
    clip[10] = np.roll(clip[10], 8, axis=1)  # a pop
    path = write_video(clip, tmp_path / "popped")
    res = runner.invoke(app, ["report", str(path)])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "popped.report.json").read_text())
    assert [s["frame"] for s in report["seams"]] == [10, 11]
    assert "vidzero reroll" in res.output and "--frames 8-11" in res.output
    assert quality_report(iter(moving_square(20, speed=1.0)))["seams"] == []  # a clean clip flags nothing
    res = runner.invoke(app, ["report", str(path)])
    assert res.exit_code == 2 and "output exists" in res.output


def test_reroll_regenerates_a_stretch_and_keeps_every_other_frame(tiny_model_dir, image_file, tmp_path):
    run = tmp_path / "run"  # a frame folder: lossless, so kept frames stay byte-identical
    res = runner.invoke(
        app, ["extend", str(image_file), "x", "-o", str(run), "--model", str(tiny_model_dir), "--frames", "10", *FAST]
    )
    assert res.exit_code == 0, res.output
    new = tmp_path / "new"
    res = runner.invoke(app, ["reroll", str(run), "--frames", "4-6", "-o", str(new), "--quiet"])
    assert res.exit_code == 0, res.output
    for i in range(10):
        same = (run / f"{i:06d}.png").read_bytes() == (new / f"{i:06d}.png").read_bytes()
        assert same == (not 4 <= i <= 6), i
    manifest = json.loads((tmp_path / "new.manifest.json").read_text())
    assert manifest["spec"]["task"] == "reroll" and manifest["spec"]["inputs"]["frames"] == "4-6"
    original = json.loads((tmp_path / "run.manifest.json").read_text())
    assert manifest["details"]["original_fingerprint"] == original["fingerprint"]
    assert manifest["spec"]["options"]["seed"] == original["spec"]["options"]["seed"] + 1
    assert manifest["sampler"] == original["sampler"]
    report = json.loads((tmp_path / "new.report.json").read_text())
    assert report["known_frames"] == [0]  # measured against the user's image, not against the frames kept
    again = tmp_path / "again"  # a reroll of a reroll: the kept frames are not the user's
    res = runner.invoke(app, ["reroll", str(new), "--frames", "1-2", "-o", str(again), "--quiet"])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["{run}", "--frames", "0-2", "-o", "{d}/n"], "includes the run's given frame"),
        (["{run}", "--frames", "5-40", "-o", "{d}/n"], "outside the run's 10 frames"),
        (["{run}", "--frames", "x", "-o", "{d}/n"], "should look like A-B"),
        (["{run}", "--frames", "2-3", "-o", "{d}/n", "--seed", "-1"], "--seed must be between 0"),
        (["{run}", "--frames", "3", "-o", "{run}"], "would overwrite the input"),
        (["{d}/clip", "--frames", "3", "-o", "{d}/n"], "no vidzero manifest"),
    ],
)
def test_reroll_refuses_what_it_cannot_do(tiny_model_dir, image_file, tmp_path, args, message):
    run = tmp_path / "run"
    assert (
        runner.invoke(
            app,
            ["extend", str(image_file), "x", "-o", str(run), "--model", str(tiny_model_dir), "--frames", "10", *FAST],
        ).exit_code
        == 0
    )
    write_video(moving_square(4, 16), tmp_path / "clip")
    res = runner.invoke(app, ["reroll", *[a.format(run=run, d=tmp_path) for a in args], "--quiet", "--force"])
    assert res.exit_code == 2 and message in res.output, res.output
    assert not (tmp_path / "n").exists()


def test_the_python_api_takes_loop(tiny_backbone, image_file):
    import vidzero

    run = vidzero.extend(
        image_file, "x", frames=12, loop=True, backbone=tiny_backbone, steps=1, resample=0, progress=False
    )
    frames = run.frames()
    assert len(frames) == 12 and run.manifest()["spec"]["inputs"]["loop"] is True


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m.update(written_frames="10"),
        lambda m: m["spec"]["options"].update(seed="3"),
        lambda m: m.pop("given_frames"),
        lambda m: m.pop("model"),
        lambda m: m.update(written_frames=10**6),
    ],
)
def test_reroll_of_a_hand_edited_manifest_is_bad_input(tiny_model_dir, image_file, tmp_path, edit):
    run = tmp_path / "run"
    args = ["extend", str(image_file), "x", "-o", str(run), "--model", str(tiny_model_dir), "--frames", "6", *FAST]
    assert runner.invoke(app, args).exit_code == 0
    path = tmp_path / "run.manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
    res = runner.invoke(app, ["reroll", str(run), "--frames", "2-3", "-o", str(tmp_path / "n"), "--quiet"])
    assert res.exit_code == 2 and "run.manifest.json was edited or is damaged" in res.output, res.output
    assert not (tmp_path / "n").exists()


def test_reroll_hints_survive_a_shell_whatever_the_name(tmp_path):
    import shlex

    clip = moving_square(20, speed=1.0)
    clip[10] = np.roll(clip[10], 8, axis=1)
    path = write_video(clip, tmp_path / "my vidéo 'take 2'.mp4")
    seams = quality_report(iter(clip), output=str(path))["seams"]
    assert seams and all(shlex.split(s["reroll"])[2] == str(path) for s in seams)
    # the span each reroll regenerates is kept as data too (the studio lists it)
    assert all(shlex.split(s["reroll"])[4] == s["frames"] for s in seams)


def test_a_reroll_checks_the_original_once(tiny_model_dir, image_file, tmp_path, monkeypatch):
    """The proof of the original (a hash of the whole output) is read once per reroll, however
    many steps consult the record; an edit in between is seen."""
    import vidzero.tasks.reroll as reroll_task

    run = tmp_path / "run"
    args = ["extend", str(image_file), "x", "-o", str(run), "--model", str(tiny_model_dir), "--frames", "6", *FAST]
    assert runner.invoke(app, args).exit_code == 0
    calls = []
    real = reroll_task.written_by_vidzero
    monkeypatch.setattr(reroll_task, "written_by_vidzero", lambda out: calls.append(out) or real(out))
    res = runner.invoke(app, ["reroll", str(run), "--frames", "2-3", "-o", str(tmp_path / "n"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert len(calls) == 1
    path = tmp_path / "run.manifest.json"
    path.write_text(path.read_text().replace('"written_frames": 6', '"written_frames": "6"'))
    res = runner.invoke(app, ["reroll", str(run), "--frames", "2-3", "-o", str(tmp_path / "m"), "--quiet"])
    assert res.exit_code == 2 and "was edited" in res.output
