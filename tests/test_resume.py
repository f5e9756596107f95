"""Interrupted runs always finish with --resume, to the bytes an uninterrupted run writes; finished
runs continue exactly (extend --from); two processes never write one output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.processes import killed_run
from vidzero.app.cli import app
from vidzero.media.outputs import sha256_of
from vidzero.media.pictures import read_png
from vidzero.media.video import read_video
from vidzero.runs.state import frames_of as state_frames
from vidzero.runs.state import load_state, state_paths

runner = CliRunner()
FRAMES = 7  # 6 windows of the tiny model's 8-frame window


def frames_of(path):
    return np.stack(list(read_video(path)))


def extend_args(image, out, model, frames=FRAMES, *extra):
    return [
        "extend",
        str(image),
        "a red circle",
        "-o",
        str(out),
        "--model",
        str(model),
        "--frames",
        str(frames),
        "--steps",
        "2",
        "--resample",
        "1",
        "--seed",
        "5",
        "--quiet",
        *extra,
    ]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_model_dir, image_file_module):
    """The uninterrupted run: its video and, from the same generation, its frames losslessly."""
    import vidzero

    out = tmp_path_factory.mktemp("ref") / "ref.mp4"
    run = vidzero.extend(
        image_file_module,
        "a red circle",
        model=str(tiny_model_dir),
        frames=FRAMES,
        steps=2,
        resample=1,
        seed=5,
        progress=False,
    )
    frames = np.stack(run.frames())
    run.save(out)
    return out, frames


@pytest.fixture(scope="module")
def reference(uninterrupted):
    return uninterrupted[0]


@pytest.fixture(scope="module")
def image_file_module(tmp_path_factory):
    from PIL import Image

    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("img") / "input.png"
    Image.fromarray((rng.random((40, 56, 3)) * 255).astype(np.uint8)).save(path)
    return path


# Kill points: before the first state, inside a window, between windows, and at each step of
# finishing (after every frame exists).
POINTS = ["window@1", "window@3", "between@2", "encode", "manifest", "contact", "commit", "final-state", "cleanup"]


@pytest.fixture(scope="module")
def reference_frames(uninterrupted):
    return uninterrupted[1]


def kill(args, fault, out, expected):
    """Kill a run at `fault`; the frames the killed process kept are the reference run's."""
    assert killed_run(args, fault) == -9
    kept = sorted(state_paths(out)[1].glob("*.png")) if state_paths(out)[1].is_dir() else []
    for path in kept:
        np.testing.assert_array_equal(read_png(path), expected[int(path.stem)])


@pytest.mark.parametrize("fault", POINTS)
def test_a_kill_at_any_point_resumes_to_identical_bytes(
    fault, reference, reference_frames, tiny_model_dir, image_file_module, tmp_path
):
    out = tmp_path / "out.mp4"
    args = extend_args(image_file_module, out, tiny_model_dir)
    kill(args, fault, out, reference_frames)
    state_file, _ = state_paths(out)
    if state_file.exists() and not load_state(state_file)[0]["finished"]:
        res = runner.invoke(app, args)  # a plain rerun does not silently start over
        assert res.exit_code == 2 and "--resume" in res.output, res.output
    res = runner.invoke(app, [*args, "--resume"])
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(frames_of(out), frames_of(reference))  # the frames, then the bytes
    assert sha256_of(out) == sha256_of(reference)
    meta, tensors = load_state(state_file)
    assert meta["finished"] and meta["tail"] == FRAMES and len(state_frames(tensors, "tail_pixels")) == FRAMES
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [
        "out.mp4",
        "out.mp4.contact.png",
        "out.mp4.manifest.json",
        "out.mp4.report.json",
        "out.mp4.report.png",
        "out.mp4.state.safetensors",
    ], left


def test_the_final_state_of_a_resumed_run_continues_the_video(reference, tiny_model_dir, image_file_module, tmp_path):
    out = tmp_path / "out.mp4"
    args = extend_args(image_file_module, out, tiny_model_dir)
    assert killed_run(args, "final-state") == -9
    assert runner.invoke(app, [*args, "--resume"]).exit_code == 0
    more = tmp_path / "more"  # frame folders: lossless, so frames compare exactly
    res = runner.invoke(
        app,
        [
            "extend",
            "--from",
            str(state_paths(out)[0]),
            "-o",
            str(more),
            "--model",
            str(tiny_model_dir),
            "--frames",
            "3",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    long = tmp_path / "long"
    assert runner.invoke(app, extend_args(image_file_module, long, tiny_model_dir, FRAMES + 3)).exit_code == 0
    np.testing.assert_array_equal(frames_of(more), frames_of(long)[FRAMES:])


def test_resume_with_nothing_saved_starts_over_and_refuses_other_runs(tiny_model_dir, image_file_module, tmp_path):
    out = tmp_path / "o"
    res = runner.invoke(app, extend_args(image_file_module, out, tiny_model_dir, 4, "--resume"))
    assert res.exit_code == 0, res.output  # nothing to resume: a fresh run
    res = runner.invoke(app, extend_args(image_file_module, out, tiny_model_dir, 4, "--resume"))
    assert res.exit_code == 0 and "complete already" in res.output  # nothing to do
    res = runner.invoke(app, extend_args(image_file_module, out, tiny_model_dir, 4, "--resume", "--guidance", "3"))
    assert res.exit_code == 2 and "different run" in res.output


def test_a_second_process_on_the_same_output_is_refused(tiny_model_dir, image_file_module, tmp_path):
    out = tmp_path / "o.mp4"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from vidzero.media.locks import OutputLock\nwith OutputLock(Path(sys.argv[1])):\n"
            "    print('held', flush=True); time.sleep(60)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        res = runner.invoke(app, extend_args(image_file_module, out, tiny_model_dir, 4))
    finally:
        holder.kill()
        holder.wait()
    assert res.exit_code == 2 and "being written by another vidzero process" in res.output
    assert not out.exists() and not state_paths(out)[1].exists()


def interrupt_on_third_frame(monkeypatch):
    """Ctrl-C while the third frame is being flushed; returns what undoes it."""
    import vidzero.runs.run

    calls = {"n": 0}
    real = vidzero.runs.run.write_png

    def interrupt_on_third(path, image, atomic=True):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real(path, image, atomic)

    monkeypatch.setattr(vidzero.runs.run, "write_png", interrupt_on_third)
    return lambda: monkeypatch.setattr(vidzero.runs.run, "write_png", real)


def test_ctrl_c_keeps_the_frames_and_says_how_to_resume(tiny_model_dir, image_file_module, tmp_path, monkeypatch):
    interrupt_on_third_frame(monkeypatch)
    out = tmp_path / "o.mp4"
    res = runner.invoke(app, extend_args(image_file_module, out, tiny_model_dir))
    assert res.exit_code == 130
    assert len(res.output.strip().splitlines()) == 1 and "--resume" in res.output
    assert state_paths(out)[0].exists()


@pytest.mark.parametrize("queue", ["pixel", "latent"])
def test_extend_from_a_finished_run_equals_one_longer_run(tiny_model_dir, image_file, tmp_path, queue):
    short, more, long = tmp_path / "short", tmp_path / "more", tmp_path / "long"
    for out, n in ((short, 9), (long, 12)):
        res = runner.invoke(app, extend_args(image_file, out, tiny_model_dir, n, "--queue", queue))
        assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        [
            "extend",
            "--from",
            str(state_paths(short)[0]),
            "-o",
            str(more),
            "--model",
            str(tiny_model_dir),
            "--frames",
            "3",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(frames_of(more), frames_of(long)[9:12])


def test_state_files_hold_no_code(tiny_model_dir, image_file, tmp_path):
    """A state file is safetensors with a JSON header: no pickle anywhere in it."""
    out = tmp_path / "o"
    assert runner.invoke(app, extend_args(image_file, out, tiny_model_dir, 3)).exit_code == 0
    data = Path(state_paths(out)[0]).read_bytes()
    assert b"vidzero-run-state" in data[:20000] and b"\x80\x04\x95" not in data  # no pickle protocol header


def test_two_runs_in_one_process_write_identical_bytes(tiny_model_dir, image_file, tmp_path):
    outs = []
    for name in ("a.mp4", "b.mp4"):
        assert runner.invoke(app, extend_args(image_file, tmp_path / name, tiny_model_dir)).exit_code == 0
        outs.append(sha256_of(tmp_path / name))
    assert outs[0] == outs[1]


def test_resuming_with_another_thread_count_says_so(tiny_model_dir, image_file_module, tmp_path, monkeypatch):
    """Frames depend in the last bits on the CPU thread count: a resume with another count warns
    in one line and still finishes the run."""
    import torch

    undo = interrupt_on_third_frame(monkeypatch)
    out = tmp_path / "o.mp4"
    assert runner.invoke(app, extend_args(image_file_module, out, tiny_model_dir)).exit_code == 130
    assert load_state(state_paths(out)[0])[0]["cpu_threads"] == torch.get_num_threads()
    undo()
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        res = runner.invoke(app, [*extend_args(image_file_module, out, tiny_model_dir), "--resume"])
    finally:
        torch.set_num_threads(threads)
    assert res.exit_code == 0, res.output
    assert f"started with {threads} CPU thread" in res.output
    assert f"resumes with {threads + 1} CPU threads" in res.output


@pytest.mark.parametrize(
    "field,value",
    [("next_job", 10**9), ("next_out", -3), ("next_job", "2"), ("next_job", 2), ("seeds", []), ("seeds", {"x": 1})],
)
def test_a_state_forged_with_a_valid_checksum_is_bad_input(
    tiny_model_dir, image_file_module, tmp_path, monkeypatch, field, value
):
    """The checksum finds accidents; a record written to pass it must still be one this run's
    plan could have left."""
    from vidzero.runs.state import load_state, save_state

    undo = interrupt_on_third_frame(monkeypatch)
    out = tmp_path / "o.mp4"
    assert runner.invoke(app, extend_args(image_file_module, out, tiny_model_dir)).exit_code == 130
    undo()
    path = state_paths(out)[0]
    meta, tensors = load_state(path)
    meta["engine"][field] = value
    for key in ("format", "version"):
        meta.pop(key)
    save_state(path, meta, tensors)  # a valid checksum over the forged record
    before = sorted(p.name for p in tmp_path.rglob("*"))
    res = runner.invoke(app, [*extend_args(image_file_module, out, tiny_model_dir), "--resume"])
    assert res.exit_code == 2 and "damaged" in res.output and "state" in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_extend_from_reads_the_state_file_once(tiny_model_dir, image_file, tmp_path, monkeypatch):
    import vidzero.runs.state as state

    out = tmp_path / "a.mp4"
    assert runner.invoke(app, extend_args(image_file, out, tiny_model_dir)).exit_code == 0
    calls = []
    real = state.load_state
    monkeypatch.setattr(state, "load_state", lambda path: calls.append(path) or real(path))
    more = tmp_path / "b.mp4"
    args = [
        "extend",
        "--from",
        str(state_paths(out)[0]),
        "-o",
        str(more),
        "--frames",
        "3",
        "--model",
        str(tiny_model_dir),
    ]
    res = runner.invoke(app, [*args, "-q"])
    assert res.exit_code == 0, res.output
    assert calls == [state_paths(out)[0]]


@pytest.mark.parametrize(
    "extra",
    [
        ("--target", "both", "--target-steps", "1:2", "--target-frames", "target"),
        ("--path", "24,30 40,20@4 44,36"),
    ],
    ids=["targets", "path"],
)
def test_a_run_with_moving_targets_resumes_to_identical_bytes(tiny_model_dir, tmp_path, extra):
    """The targets are rebuilt from what the run keeps (the frame before is in the queue), so a
    resumed run holds its windows and fills its queue as an uninterrupted one."""
    from tests.synthetic import disc_frame, textured_background

    image = tmp_path / "disc.png"
    Image.fromarray(disc_frame(textured_background(), (24.0, 30.0), 7.0)[0]).save(image)
    reference = tmp_path / "ref.mp4"
    assert runner.invoke(app, extend_args(image, reference, tiny_model_dir, FRAMES, *extra)).exit_code == 0
    out = tmp_path / "out.mp4"
    args = extend_args(image, out, tiny_model_dir, FRAMES, *extra)
    assert killed_run(args, "window@4") == -9
    res = runner.invoke(app, [*args, "--resume"])
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == reference.read_bytes()
    manifest = json.loads((tmp_path / "out.mp4.manifest.json").read_text())
    if "--path" in extra:
        assert manifest["spec"]["inputs"]["path"] == [extra[1]]
    else:
        assert manifest["spec"]["options"]["target"] == "both"
