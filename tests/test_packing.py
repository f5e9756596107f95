"""Packed windows: several runs' model evaluations in one call, each run's frames as unpacked."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import vidzero
from vidzero.app.cli import app
from vidzero.core.packing import Packer, Request, split_predictions
from vidzero.core.sampler import Prediction

# Packed frames may differ from unpacked ones by the rounding of a larger batch: kernels sum in
# another order. Measured on the tiny model: at most 1 level of 255; the bound leaves room for
# other CPUs' kernels.
PACKED_LEVELS = 2


def request(value: float, guided: bool) -> Request:
    z = torch.full((1, 2, 3, 2, 2), value)
    states = torch.full((1, 4, 5), value)
    return Request(z, torch.tensor(10), states, -states if guided else None)


def echo(requests: list[Request]) -> list[Prediction]:
    """A model whose output rows are their inputs (uncond rows negated), to follow the rows."""
    rows = []
    for r in requests:
        rows += [-r.z, r.z] if r.uncond is not None else [r.z]
    return split_predictions(torch.cat(rows), requests)


def test_rows_go_back_to_their_requests():
    requests = [request(1.0, True), request(2.0, False), request(3.0, True)]
    out = echo(requests)
    for r, p in zip(requests, out):
        assert torch.equal(p.cond, r.z)
        assert (p.uncond is None) == (r.uncond is None)
        if p.uncond is not None:
            assert torch.equal(p.uncond, -r.z)


def test_members_are_evaluated_together_and_leaving_releases_the_rest():
    calls: list[int] = []

    def evaluate(requests):
        calls.append(len(requests))
        return echo(requests)

    packer = Packer(evaluate)
    steps = {0: 3, 1: 5}  # member 1 runs longer: after member 0 leaves it goes on alone
    members = [packer.join() for _ in steps]

    def run(member: int) -> list[float]:
        seen = []
        for step in range(steps[member]):
            p = packer.submit(member, request(10 * member + step, guided=True))
            seen.append(float(p.cond.flatten()[0]))
        packer.leave(member)
        return seen

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, members))
    assert results == [[0, 1, 2], [10, 11, 12, 13, 14]]
    assert calls == [2, 2, 2, 1, 1]
    assert packer.calls == 5 and packer.packed == 8


def test_a_failed_model_call_reaches_every_member_and_cancel_wakes_the_waiting():
    def fail(requests):
        raise RuntimeError("out of memory")

    packer = Packer(fail)
    a, b = packer.join(), packer.join()
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(packer.submit, m, request(1.0, True)) for m in (a, b)]
        for f in futures:
            with pytest.raises(RuntimeError, match="out of memory"):
                f.result()

    packer = Packer(echo)
    a, b = packer.join(), packer.join()
    raised: list[BaseException] = []

    def wait_for_b() -> None:  # b never submits: a would wait for it forever
        try:
            packer.submit(a, request(1.0, True))
        except KeyboardInterrupt as exc:
            raised.append(exc)

    waiting = threading.Thread(target=wait_for_b)
    waiting.start()
    packer.cancel(KeyboardInterrupt())
    waiting.join(timeout=10)
    assert not waiting.is_alive() and len(raised) == 1


def test_predict_many_of_one_window_is_the_denoisers_own_call(tiny_backbone):
    denoiser = tiny_backbone.denoiser("a red circle", "")
    z = torch.randn(1, *tiny_backbone.latent_shape[:1], tiny_backbone.frames, *tiny_backbone.latent_shape[1:])
    t = torch.tensor(500)
    alone = denoiser(z, t, guided=True)
    (packed,) = tiny_backbone.predict_many([Request(z, t, denoiser.cond, denoiser.uncond)])
    assert torch.equal(alone.cond, packed.cond) and torch.equal(alone.uncond, packed.uncond)


def runs(backbone, packer=None):
    prompts = ["a red circle", "a blue square", "a green dot"]
    made = []
    for i, prompt in enumerate(prompts):
        run = vidzero.generate(prompt, frames=4, backbone=backbone, steps=3, guidance=5.0, seed=i, progress=False)
        run.engine.packer = packer
        made.append(run)
    return made


def test_packed_runs_make_the_unpacked_frames(tiny_backbone):
    alone = [np.stack(run.frames()) for run in runs(tiny_backbone)]
    packer = Packer(tiny_backbone.predict_many)
    with ThreadPoolExecutor(3) as pool:
        packed = list(pool.map(lambda run: np.stack(run.frames()), runs(tiny_backbone, packer)))
    assert packer.packed == 3 * 3 and packer.calls < packer.packed  # some calls held several windows
    for a, p in zip(alone, packed):
        assert np.abs(a.astype(int) - p.astype(int)).max() <= PACKED_LEVELS


def test_batch_pack_writes_every_job(tmp_path, tiny_model_dir, image_file):
    jobs = [
        {"defaults": {"model": str(tiny_model_dir), "steps": 2, "resample": 0}},
        {"task": "extend", "id": "a", "image": str(image_file), "prompt": "a cat", "frames": 3},
        {"task": "generate", "id": "b", "prompt": "a dog", "frames": 3},
        {"task": "extend", "id": "c", "image": str(image_file), "prompt": "a fox", "frames": 4},
    ]
    (tmp_path / "jobs.jsonl").write_text("\n".join(json.dumps(j) for j in jobs) + "\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["batch", str(tmp_path / "jobs.jsonl"), "-o", str(out), "-q", "--pack", "3"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "batch.json").read_text())
    assert summary["counts"]["done"] == 3
    made = {name: (out / f"{name}.mp4").stat().st_mtime_ns for name in "abc"}
    again = CliRunner().invoke(app, ["batch", str(tmp_path / "jobs.jsonl"), "-o", str(out), "-q", "--pack", "3"])
    assert again.exit_code == 0, again.output
    assert made == {name: (out / f"{name}.mp4").stat().st_mtime_ns for name in "abc"}  # done: skipped


def test_batch_pack_refuses_jobs_on_several_models(tmp_path, tiny_model_dir, image_file):
    jobs = [
        {"task": "generate", "id": "a", "prompt": "x", "model": str(tiny_model_dir)},
        {"task": "generate", "id": "b", "prompt": "x", "model": str(tiny_model_dir), "dtype": "float64"},
    ]
    (tmp_path / "jobs.jsonl").write_text("\n".join(json.dumps(j) for j in jobs) + "\n")
    res = CliRunner().invoke(app, ["batch", str(tmp_path / "jobs.jsonl"), "-o", str(tmp_path / "o"), "--pack", "2"])
    assert res.exit_code == 2
    assert "--pack runs every job on one model" in res.output
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_a_cancel_is_not_kept_waiting_by_a_model_call_under_way():
    """Ctrl-C in a packed batch: the cancel returns while the model call runs, and each run stops
    at its next request (the call's own result still reaches it)."""
    import threading

    from vidzero.core.packing import Packer

    started, release = threading.Event(), threading.Event()

    def slow(requests):
        started.set()
        release.wait(10)
        return [Prediction(r.z, None) for r in requests]

    packer = Packer(slow)
    member = packer.join()
    request = Request(torch.zeros(1, 1, 1, 1, 1), torch.tensor(1), torch.zeros(1, 1, 1), None)
    outcome = {}

    def run():
        outcome["first"] = packer.submit(member, request)
        try:
            packer.submit(member, request)
        except KeyboardInterrupt:
            outcome["second"] = "cancelled"

    worker = threading.Thread(target=run)
    worker.start()
    assert started.wait(10)
    canceller = threading.Thread(target=packer.cancel, args=(KeyboardInterrupt(),))
    canceller.start()
    canceller.join(5)
    cancel_returned = not canceller.is_alive()
    release.set()
    worker.join(10)
    assert cancel_returned  # while the model call was still under way
    assert torch.equal(outcome["first"].cond, request.z) and outcome["second"] == "cancelled"


def test_ctrl_c_in_a_batch_says_what_is_kept_and_how_to_continue(tmp_path, tiny_model_dir, image_file, monkeypatch):
    from vidzero.app import batch as batch_module

    jobs = [
        {
            "task": "extend",
            "id": k,
            "image": str(image_file),
            "prompt": "x",
            "frames": 3,
            "model": str(tiny_model_dir),
            "steps": 1,
        }
        for k in "ab"
    ]
    (tmp_path / "jobs.jsonl").write_text("\n".join(json.dumps(j) for j in jobs) + "\n")
    real = batch_module.Batch.run_job
    calls = {"n": 0}

    def second_is_interrupted(self, job):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, job)

    monkeypatch.setattr(batch_module.Batch, "run_job", second_is_interrupted)
    res = CliRunner().invoke(app, ["batch", str(tmp_path / "jobs.jsonl"), "-o", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 130
    assert "nothing was written" not in res.output and "kept in" in res.output and "continue with" in res.output
    assert (tmp_path / "o" / "a.mp4").exists()
