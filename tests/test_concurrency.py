"""One owner per output across threads and processes, and loading from several threads: the
concurrency promise of docs/reliability.md."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import vidzero
from vidzero.media.locks import OutputBusy, OutputLock
from vidzero.runs.output import Output

FAST = {"steps": 1, "resample": 0, "progress": False}


def in_thread(work) -> BaseException | None:
    """Run `work` in another thread; what it raised (None if nothing)."""
    raised: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=60)
    return raised[0] if raised else None


def test_a_claim_is_refused_to_another_thread_and_nests_in_its_own(tmp_path):
    out = tmp_path / "a.mp4"
    first = Output(out)
    with first.claim():
        with first.claim():  # the same claimant nests (a batch claims, then saves through it)
            pass
        raised = in_thread(lambda: Output(out).claim().__enter__())
        assert isinstance(raised, OutputBusy) and "another run in this process" in str(raised)
        raised = in_thread(lambda: first.claim().__enter__())  # the same object, another thread
        assert isinstance(raised, OutputBusy)
    with Output(out).claim():  # released: the next claim is held
        pass
    assert not (tmp_path / ".a.mp4.lock").exists()


def test_two_threads_saving_one_output_keep_their_runs_apart(tiny_backbone, image_file, tmp_path):
    out = tmp_path / "shared.mp4"
    started, tried = threading.Event(), threading.Event()

    def wait_for_the_other(info):
        started.set()
        tried.wait(timeout=60)

    first = vidzero.extend(image_file, "x", frames=4, backbone=tiny_backbone, callback=wait_for_the_other, **FAST)
    second = vidzero.extend(image_file, "x", frames=4, backbone=tiny_backbone, seed=5, **FAST)
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: first.save(out))
    thread.start()
    assert started.wait(timeout=60)
    try:
        second.save(out)
    except vidzero.BadInput as exc:
        errors.append(exc)
    finally:
        tried.set()
    thread.join(timeout=60)
    assert len(errors) == 1 and isinstance(errors[0], OutputBusy), errors
    manifest = json.loads((tmp_path / "shared.mp4.manifest.json").read_text())
    assert manifest["fingerprint"] == first.fingerprint()
    clean = vidzero.extend(image_file, "x", frames=4, backbone=tiny_backbone, **FAST)
    clean.save(tmp_path / "clean.mp4")
    assert (tmp_path / "clean.mp4").read_bytes() == out.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("shared")) == [
        "shared.mp4",
        "shared.mp4.contact.png",
        "shared.mp4.manifest.json",
        "shared.mp4.report.json",
        "shared.mp4.report.png",
        "shared.mp4.state.safetensors",
    ]


def test_a_lock_released_while_a_claimant_opens_it_is_not_held_twice(tmp_path, monkeypatch):
    """The holder releases (unlinks, closes) between a claimant's open and its flock, and a third
    claimant takes the new lock file: the claimant must see the third holds it."""
    out = tmp_path / "a.mp4"
    holder = OutputLock(out).__enter__()
    real_flock, third = fcntl.flock, []

    def release_then_flock(fd, operation):
        if not third:
            holder.__exit__(None, None, None)
            monkeypatch.setattr(fcntl, "flock", real_flock)
            third.append(OutputLock(out).__enter__())
        return real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", release_then_flock)
    with pytest.raises(OutputBusy, match="another run in this process"):
        OutputLock(out).__enter__()
    third[0].__exit__(None, None, None)


def test_models_load_in_several_threads_at_once(tiny_model_dir, tiny_wan_dir):
    """diffusers and transformers patch process-wide state while loading; loads in threads must
    neither see each other's patch nor leave it in place."""
    from vidzero.models.families import load_backbone

    errors: list[BaseException] = []

    def load(model: Path) -> None:
        try:
            load_backbone(str(model), device="cpu")
        except BaseException as exc:
            errors.append(exc)

    for _ in range(2):
        threads = [threading.Thread(target=load, args=(m,)) for m in (tiny_model_dir, tiny_wan_dir, tiny_model_dir)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert errors == []
    load_backbone(str(tiny_model_dir), device="cpu")  # and the process loads afterwards


TAKER = """
import os, sys
from pathlib import Path
from vidzero.media.locks import OutputBusy, OutputLock
out, marker, takes = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
held = overlaps = 0
for _ in range(takes):
    try:
        with OutputLock(out):
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                overlaps += 1
                continue
            os.close(fd)
            held += 1
            os.unlink(marker)
    except OutputBusy:
        pass
print(held, overlaps)
"""


@pytest.mark.slow
def test_three_processes_taking_one_lock_never_overlap_or_crash(tmp_path):
    out, marker = tmp_path / "a.mp4", tmp_path / "held"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-c", TAKER, str(out), str(marker), "3000"]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in "abc"]
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1][-500:] for r in results]
    counts = [tuple(map(int, r[0].split())) for r in results]
    assert sum(h for h, _ in counts) > 0 and all(o == 0 for _, o in counts), counts
