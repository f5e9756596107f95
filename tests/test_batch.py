"""`vidzero batch`: job files, skipping what is done, resuming what was cut, recording failures,
and several processes splitting one batch without running a job twice."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import vidzero.core.engine
from tests.processes import killed_run
from tests.synthetic import moving_square
from vidzero.app.cli import app
from vidzero.media.video import read_video, write_video

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def material(tmp_path, tiny_model_dir):
    frames = moving_square(6, 16, start=(4.0, 8.0), speed=1.0, half=3)
    Image.fromarray(frames[0]).save(tmp_path / "a.png")
    Image.fromarray(frames[3]).save(tmp_path / "b.png")
    write_video(frames, tmp_path / "clip.mp4")
    jobs = [
        {"defaults": {"model": str(tiny_model_dir), "steps": 1, "resample": 0}},
        {"task": "extend", "id": "cat", "image": "a.png", "prompt": "a cat", "frames": 4, "seed": 3},
        {"task": "generate", "prompt": "a dog", "frames": 3, "format": "gif"},
        {"task": "predict", "clip": "clip.mp4", "prompt": "more", "frames": 2},
        {"task": "infill", "start": "a.png", "end": "b.png", "prompt": "x", "frames": 5},
        {"task": "deflicker", "clip": "clip.mp4", "id": "clean"},
        {"task": "extend", "id": "broken", "image": "missing.png", "prompt": "x"},
    ]
    (tmp_path / "jobs.jsonl").write_text("\n".join(json.dumps(j) for j in jobs) + "\n")
    return tmp_path


def count_windows(monkeypatch) -> dict:
    calls = {"n": 0}
    real = vidzero.core.engine.sample_window

    def counting(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(vidzero.core.engine, "sample_window", counting)
    return calls


def batch(material, *extra):
    return runner.invoke(app, ["batch", str(material / "jobs.jsonl"), "-o", str(material / "out"), "--quiet", *extra])


def test_a_batch_runs_every_task_records_failures_and_skips_what_is_done(material, monkeypatch):
    job_file = (material / "jobs.jsonl").read_bytes()
    calls = count_windows(monkeypatch)
    res = batch(material)
    assert res.exit_code == 3, res.output  # finished, with a failed job
    out = material / "out"
    summary = json.loads((out / "batch.json").read_text())
    status = {r["id"]: r["status"] for r in summary["rows"]}
    assert status == {
        "cat": "done",
        "job-00001": "done",
        "clip-predict": "done",
        "a-infill": "done",
        "clean": "done",
        "broken": "failed",
    }
    broken = next(r for r in summary["rows"] if r["id"] == "broken")
    assert "image not found" in broken["error"] and "\n" not in broken["error"]
    assert len(list(read_video(out / "cat.mp4"))) == 4 and (out / "job-00001.gif").exists()
    assert json.loads((out / "cat.mp4.manifest.json").read_text())["spec"]["options"]["seed"] == 3
    assert (out / "batch.csv").read_text().splitlines()[0] == "id,task,status,seconds,unet_passes,output,error"
    assert (out / "batch.index.png").stat().st_size > 1000
    first = calls["n"]
    assert first == 3 + 1 + 2 + 3  # extend, generate (one whole window), predict, infill windows

    res = batch(material)  # a rerun: done jobs are recognised by manifest and fingerprint
    assert calls["n"] == first and res.exit_code == 3
    assert {r["id"]: r["status"] for r in json.loads((out / "batch.json").read_text())["rows"]}["cat"] == "done"

    lines = (material / "jobs.jsonl").read_text().splitlines()
    lines[1] = lines[1].replace('"seed": 3', '"seed": 4')  # an edited job runs again
    (material / "jobs.jsonl").write_text("\n".join(lines) + "\n")
    batch(material)
    assert calls["n"] == first + 3
    assert json.loads((out / "cat.mp4.manifest.json").read_text())["spec"]["options"]["seed"] == 4
    (material / "jobs.jsonl").write_bytes(job_file)


def test_an_interrupted_job_resumes_from_its_own_state(material, tiny_model_dir):
    (material / "jobs.jsonl").write_text(
        json.dumps(
            {
                "task": "extend",
                "id": "long",
                "image": "a.png",
                "prompt": "x",
                "frames": 8,
                "model": str(tiny_model_dir),
                "steps": 2,
                "resample": 1,
            }
        )
        + "\n"
    )
    args = ["batch", str(material / "jobs.jsonl"), "-o", str(material / "out"), "--quiet"]
    assert killed_run(args, "window@4") == -9
    assert (material / "out" / "long.mp4.state.safetensors").exists()
    assert batch(material).exit_code == 0
    record = json.loads((material / "out" / ".vidzero-batch" / "long.json").read_text())
    assert record["status"] == "done" and len(record["attempts"]) == 2
    assert json.loads((material / "out" / "long.mp4.manifest.json").read_text())["resumed"] is True
    reference = material / "ref"
    res = runner.invoke(
        app,
        [
            "extend",
            str(material / "a.png"),
            "x",
            "-o",
            str(reference),
            "--frames",
            "8",
            "--model",
            str(tiny_model_dir),
            "--steps",
            "2",
            "--resample",
            "1",
            "--quiet",
        ],
    )
    assert res.exit_code == 0
    np.testing.assert_array_equal(
        np.stack(list(read_video(material / "out" / "long.mp4"))).shape, np.stack(list(read_video(reference))).shape
    )


def test_csv_jobs_and_defaults_from_the_command_line(material, tiny_model_dir):
    (material / "jobs.csv").write_text("task,image,prompt,frames\nextend,a.png,a cat,3\nextend,b.png,a dog,3\n")
    res = runner.invoke(
        app,
        [
            "batch",
            str(material / "jobs.csv"),
            "-o",
            str(material / "csv"),
            "--model",
            str(tiny_model_dir),
            "--steps",
            "1",
            "--resample",
            "0",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    rows = json.loads((material / "csv" / "batch.json").read_text())["rows"]
    assert [r["id"] for r in rows] == ["a-extend", "b-extend"] and all(r["status"] == "done" for r in rows)


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"task": "extend", "image": "a.png"', "not valid JSON"),
        ('{"task": "paint", "prompt": "x"}', "unknown task 'paint'"),
        ('{"task": "extend", "image": "a.png", "prompt": "x", "stepz": 3}', "extend takes no 'stepz'"),
        ('{"task": "extend", "image": "a.png"}', "extend needs 'prompt'"),
        (
            '{"task": "generate", "id": "x", "prompt": "a"}\n{"task": "generate", "id": "x", "prompt": "b"}',
            "also the id",
        ),
        ('{"task": "generate", "id": "../up", "prompt": "a"}', "must be letters"),
        ('{"task": "generate", "prompt": "a", "output": "../../etc/x.mp4"}', "inside the batch folder"),
        ("", "holds no jobs"),
        (
            '{"task": "generate", "id": "a", "prompt": "a", "output": "same.mp4"}\n'
            '{"task": "generate", "id": "b", "prompt": "b", "output": "same.mp4"}',
            "would write same.mp4, which the job on line 1 ('a') writes too",
        ),
        (
            '{"task": "generate", "id": "a", "prompt": "a"}\n'
            '{"task": "generate", "id": "b", "prompt": "b", "output": "a.mp4"}',
            "which the job on line 1 ('a') writes too",
        ),
        (
            '{"task": "generate", "id": "a", "prompt": "a"}\n'
            '{"task": "generate", "id": "b", "prompt": "b", "output": "a.mp4.manifest.json"}',
            "writes too",
        ),
        ('{"task": "generate", "prompt": "a", "output": "escape/x.mp4"}', "outside the batch folder"),
        ('{"task": "deflicker", "clip": "clip.mp4", "anchors": [0], "model": "x"}', "deflicker takes no 'model'"),
        # a NUL byte, which JSON can carry and no file name can
        ('{"task": "extend", "image": "a\\u0000.png", "prompt": "x"}', "holds a NUL byte"),
        ('{"task": "predict", "clip": "clip\\u0000.mp4", "prompt": "x"}', "holds a NUL byte"),
        ('{"task": "generate", "prompt": "x", "output": "o\\u0000.mp4"}', "holds a NUL byte"),
        ('{"task": "generate", "prompt": "x", "output": "o\\udcff.mp4"}', "is not a UTF-8 name"),
        ("[" * 100_000 + "]" * 100_000, "nested too deep"),
    ],
)
def test_a_bad_job_file_is_refused_before_anything_runs(material, tmp_path_factory, content, message):
    (material / "jobs.jsonl").write_text(content + "\n")
    outside = tmp_path_factory.mktemp("outside")
    (material / "out").mkdir()
    (material / "out" / "escape").symlink_to(outside)  # a link in the batch folder to elsewhere
    res = batch(material)
    assert res.exit_code == 2 and message in res.output, res.output
    assert sorted(p.name for p in (material / "out").iterdir()) == ["escape"] and not list(outside.iterdir())


def test_a_batch_never_replaces_a_video_it_did_not_make(material, tiny_model_dir):
    jobs = '{"task": "extend", "id": "cat", "image": "a.png", "prompt": "a cat", "frames": 3}\n'
    options = ["--model", str(tiny_model_dir), "--steps", "1", "--resample", "0"]
    other = material / "other"
    res = runner.invoke(app, ["batch", str(material / "jobs.jsonl"), "-o", str(other), "--quiet", *options])
    (material / "jobs.jsonl").write_text(jobs)
    assert batch(material, *options).exit_code == 0
    out = material / "out"
    made = (out / "cat.mp4").read_bytes()
    # another vidzero run (not this batch) now sits where the job writes
    res = runner.invoke(
        app,
        [
            "extend",
            str(material / "b.png"),
            "a dog",
            "-o",
            str(out / "cat.mp4"),
            "--force",
            "--quiet",
            "--frames",
            "3",
            *options,
        ],
    )
    assert res.exit_code == 0, res.output
    foreign = (out / "cat.mp4").read_bytes()
    assert foreign != made
    res = batch(material, *options)
    summary = json.loads((out / "batch.json").read_text())
    assert res.exit_code == 3 and "another run made it" in summary["rows"][0]["error"]
    assert (out / "cat.mp4").read_bytes() == foreign  # untouched
    assert batch(material, *options, "--force").exit_code == 0  # --force replaces a vidzero output
    assert (out / "cat.mp4").read_bytes() == made


def test_a_job_reads_and_hashes_what_is_at_its_output_once(material, tiny_model_dir, monkeypatch):
    from vidzero.media import outputs

    one = [json.loads(line) for line in (material / "jobs.jsonl").read_text().splitlines()][:2]
    (material / "jobs.jsonl").write_text("\n".join(json.dumps(j) for j in one) + "\n")
    assert batch(material).exit_code == 0
    cat = material / "out" / "cat.mp4"
    hashed: list[Path] = []
    real_hash = outputs.sha256_of
    monkeypatch.setattr(outputs, "sha256_of", lambda path: hashed.append(Path(path)) or real_hash(path))
    assert batch(material).exit_code == 0  # done already: skipped, by its manifest's proof
    assert hashed == [cat]
    hashed.clear()
    assert batch(material, "--force").exit_code == 0  # replaced: the old output proven once, then written
    assert hashed[0] == cat and len(hashed) == 2 and hashed[1].name.startswith(".cat.mp4.")  # the new one's proof


def test_two_processes_split_a_batch_and_run_every_job_once(material, tiny_model_dir):
    jobs = [
        {
            "task": "extend",
            "id": f"j{i}",
            "image": "a.png",
            "prompt": "x",
            "frames": 3,
            "seed": i,
            "model": str(tiny_model_dir),
            "steps": 1,
            "resample": 0,
        }
        for i in range(6)
    ]
    (material / "jobs.jsonl").write_text("\n".join(json.dumps(j) for j in jobs) + "\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "vidzero.app.cli",
            "batch",
            str(material / "jobs.jsonl"),
            "-o",
            str(material / "out"),
            "--quiet",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    records = [json.loads((material / "out" / ".vidzero-batch" / f"j{i}.json").read_text()) for i in range(6)]
    assert all(r["status"] == "done" and len(r["attempts"]) == 1 for r in records)  # every job exactly once
    assert {r["rank"] for r in records} == {0, 1}  # both processes worked
    digests = {hashlib.sha256((material / "out" / f"j{i}.mp4").read_bytes()).hexdigest() for i in range(6)}
    assert len(digests) == 6


def test_a_full_disk_stops_the_batch_with_one_line(material, tiny_model_dir, monkeypatch):
    """The machine, not a job: the first write that finds no room stops the batch (every later
    job would fail the same way) with one line, and what was done stays done."""
    import errno

    import vidzero.runs.run

    jobs = [
        {
            "task": "extend",
            "id": k,
            "image": "a.png",
            "prompt": "x",
            "frames": 3,
            "model": str(tiny_model_dir),
            "steps": 1,
        }
        for k in ("first", "second", "third")
    ]
    (material / "jobs.jsonl").write_text("\n".join(json.dumps(j) for j in jobs) + "\n")
    real, calls = vidzero.runs.run.write_png, {"n": 0}

    def full_after_the_first_job(path, image, atomic=True):
        calls["n"] += 1
        if calls["n"] > 3:  # the first job's three frames fit
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, image, atomic)

    monkeypatch.setattr(vidzero.runs.run, "write_png", full_after_the_first_job)
    res = batch(material)
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and "no space left on the device" in lines[0], res.output
    assert (material / "out" / "first.mp4").exists() and not (material / "out" / "third.mp4").exists()


def test_a_job_line_moves_an_object_along_a_path_with_a_mask_beside_the_job_file(material):
    """path and mask are task inputs like any other: a job line gives them (a mask's file name
    relative to the job file), the run is the CLI's, and its manifest records both."""
    mask = np.zeros((16, 16), np.uint8)
    mask[5:12, 1:8] = 255  # the square at 4,8 (half 3)
    Image.fromarray(mask).save(material / "square-mask.png")
    line = {"task": "extend", "id": "moved", "image": "a.png", "prompt": "x", "frames": 4}
    line |= {"path": "4,8 10,8", "mask": "square-mask.png"}
    jobs = [json.loads(x) for x in (material / "jobs.jsonl").read_text().splitlines()[:1]] + [line]
    (material / "jobs.jsonl").write_text("\n".join(json.dumps(j) for j in jobs) + "\n")
    assert batch(material).exit_code == 0
    manifest = json.loads((material / "out" / "moved.mp4.manifest.json").read_text())
    assert manifest["spec"]["inputs"]["path"] == ["4,8 10,8"]
    assert manifest["spec"]["inputs"]["mask"] == [str(material / "square-mask.png")]
