"""Interrupted runs resume to the same frames; finished runs continue exactly (extend --from)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from vidzero.cli import app
from vidzero.io import read_video
from vidzero.runstate import load_state, state_paths

runner = CliRunner()


def frames_of(path):
    return np.stack(list(read_video(path)))


def extend_args(image, out, model, frames, *extra):
    return ["extend", str(image), "a red circle", "-o", str(out), "--model", str(model), "--frames", str(frames),
            "--steps", "3", "--resample", "1", "--seed", "5", "--quiet", *extra]


def test_resume_after_sigkill_gives_the_uninterrupted_frames(tiny_model_dir, image_file, tmp_path):
    reference = tmp_path / "reference"
    assert runner.invoke(app, extend_args(image_file, reference, tiny_model_dir, 30)).exit_code == 0

    out = tmp_path / "killed"
    state_file, partial = state_paths(out)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    code = "import sys; from vidzero.cli import main; sys.argv = ['vidzero'] + sys.argv[1:]; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, *extend_args(image_file, out, tiny_model_dir, 30)], env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        if state_file.exists():
            try:
                if load_state(state_file)["engine"]["next_job"] >= 4:
                    break
            except Exception:
                pass
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    state = load_state(state_file)
    assert not state["finished"] and 4 <= state["engine"]["next_job"] < 29, "the run was not killed mid-way"
    assert not out.exists()  # the output appears only when complete

    res = runner.invoke(app, extend_args(image_file, out, tiny_model_dir, 30))
    assert res.exit_code == 2 and "--resume" in res.output  # refuses to start over silently
    res = runner.invoke(app, extend_args(image_file, out, tiny_model_dir, 30, "--resume"))
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(frames_of(out), frames_of(reference))
    assert not partial.exists() and load_state(state_file)["finished"]


def test_resume_refuses_a_different_run(tiny_model_dir, image_file, tmp_path):
    out = tmp_path / "o"
    state_file, partial = state_paths(out)
    assert runner.invoke(app, extend_args(image_file, out, tiny_model_dir, 6)).exit_code == 0
    res = runner.invoke(app, extend_args(image_file, tmp_path / "fresh", tiny_model_dir, 6, "--resume"))
    assert res.exit_code == 2 and "state file not found" in res.output
    # a finished run's state cannot be resumed, only continued
    out.rename(tmp_path / "moved")
    res = runner.invoke(app, extend_args(image_file, out, tiny_model_dir, 6, "--resume"))
    assert res.exit_code == 2 and "extend --from" in res.output
    (tmp_path / "o.manifest.json").unlink()
    (tmp_path / "o.contact.png").unlink()
    state = load_state(state_file)
    state["finished"] = False
    import torch

    torch.save(state, state_file)
    partial.mkdir()
    res = runner.invoke(app, extend_args(image_file, out, tiny_model_dir, 6, "--resume", "--guidance", "3"))
    assert res.exit_code == 2 and "different run" in res.output


@pytest.mark.parametrize("queue", ["pixel", "latent"])
def test_extend_from_a_finished_run_equals_one_longer_run(tiny_model_dir, image_file, tmp_path, queue):
    short, more, long = tmp_path / "short", tmp_path / "more", tmp_path / "long"
    for out, n in ((short, 12), (long, 16)):
        res = runner.invoke(app, extend_args(image_file, out, tiny_model_dir, n, "--queue", queue))
        assert res.exit_code == 0, res.output
    state_file, _ = state_paths(short)
    res = runner.invoke(app, ["extend", "--from", str(state_file), "-o", str(more), "--model", str(tiny_model_dir),
                              "--frames", "4", "--steps", "3", "--resample", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    continued = frames_of(more)
    assert len(continued) == 4
    np.testing.assert_array_equal(continued, frames_of(long)[12:16])


def test_extend_from_rejects_bad_states(tiny_model_dir, tmp_path):
    bad = tmp_path / "bad.state.pt"
    bad.write_bytes(b"garbage")
    res = runner.invoke(app, ["extend", "--from", str(bad), "-o", str(tmp_path / "x.mp4"), "--model", str(tiny_model_dir)])
    assert res.exit_code == 2 and "corrupt" in res.output
