"""predict, infill and keyframe timelines: layouts on the one planner, known frames in place."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import vidzero
from vidzero.app.cli import app
from vidzero.core.timeline import (
    WindowJob,
    contiguous_runs,
    fill_order,
    plan_prefix,
    plan_single_window,
    plan_timeline,
    window_for,
    window_for_run,
)
from vidzero.errors import BadInput
from vidzero.media.video import read_video, write_video

runner = CliRunner()
FAST = dict(steps=1, resample=0)


def test_window_for_keeps_temporal_order_and_repeats_outer_frames():
    slots, target_slot, source = window_for(5, [0, 1, 2, 3, 4], 8)
    assert slots == (0, 0, 0, 1, 2, 3, 4, 5) and target_slot == 7 and source == 6
    slots, target_slot, source = window_for(3, [0, 10], 6)  # both ends: pad on both sides
    assert slots == (0, 0, 0, 3, 10, 10) and target_slot == 3 and source == 2
    slots, target_slot, source = window_for(2, [7, 8, 9], 5)  # suffix: generate backwards
    assert slots == (2, 7, 8, 9, 9) and target_slot == 0 and source == 1
    slots, _, _ = window_for(20, list(range(0, 20)) + list(range(21, 40)), 8)
    assert slots == (16, 17, 18, 19, 20, 21, 22, 23)  # nearest on both sides, ties to the earlier frame


def test_fill_orders():
    assert fill_order(8, {0, 7}, "forward") == [1, 2, 3, 4, 5, 6]
    assert fill_order(8, {0, 7}, "inward") == [1, 6, 2, 5, 3, 4]
    assert fill_order(8, {3}, "inward") == [2, 1, 0, 4, 5, 6, 7]  # before the key: backwards
    assert fill_order(10, {0, 4, 9}, "inward") == [1, 3, 2, 5, 8, 6, 7]
    with pytest.raises(BadInput):
        fill_order(8, {0}, "random")


@pytest.mark.parametrize("known", [{0}, {9}, {0, 9}, {0, 4, 9}, {2, 3, 4, 5}])
def test_every_plan_generates_each_unknown_frame_once_from_frames_that_exist(known):
    jobs = plan_timeline(10, known, 6, "inward")
    targets = [t for j in jobs for t in j.targets]
    assert sorted(targets) == sorted(set(range(10)) - known)
    available = set(known)
    for job in jobs:
        assert all(f in available for f in job.reads)
        assert list(job.slots) == sorted(job.slots)  # temporal order
        assert len(job.slots) == 6
        available |= set(job.targets)


def test_several_new_frames_per_window():
    # extend: the repeated image fills the context, then four new frames per window
    jobs = plan_prefix(12, 1, 8, per_window=4)
    assert [j.targets for j in jobs] == [(1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11)]
    assert jobs[0].slots == (0, 0, 0, 0, 1, 2, 3, 4) and jobs[0].init_source == (None,) * 4 + (3,) * 4
    assert jobs[1].slots == (1, 2, 3, 4, 5, 6, 7, 8) and jobs[1].init_source == (None,) * 4 + (3,) * 4
    assert jobs[2].slots == (4, 5, 6, 7, 8, 9, 10, 11)
    # inward: runs from each end of the gap, each new frame inverted from its nearest key
    assert fill_order(12, {0, 11}, "inward", chunk=3) == [1, 2, 3, 10, 9, 8, 4, 5, 6, 7]
    assert contiguous_runs([1, 2, 3, 10, 9, 8, 4, 5, 6, 7], 3) == [(1, 2, 3), (10, 9, 8), (4, 5, 6), (7,)]
    slots, target_slots, sources = window_for_run((6, 7, 8), [0, 1, 2, 5, 10], 6)
    assert slots == (2, 5, 6, 7, 8, 10) and target_slots == (2, 3, 4) and sources == (1, 1, 5)
    # runs never straddle a known frame, and plans stay valid for every size
    for per_window in range(1, 6):
        jobs = plan_timeline(14, {0, 5, 13}, 6, "inward", per_window)
        assert sorted(t for j in jobs for t in j.targets) == sorted(set(range(14)) - {0, 5, 13})
        assert all(len(j.targets) <= per_window and list(j.slots) == sorted(j.slots) for j in jobs)
    with pytest.raises(BadInput, match="new_per_window must be between"):
        plan_prefix(12, 1, 8, per_window=8)


def test_single_window_plan_is_the_replacing_layout():
    # the known prefix in the first slots, every other slot generated at once from the last known one
    assert plan_single_window(1, 6) == [WindowJob(0, (0, 1, 2, 3, 4, 5), (1, 2, 3, 4, 5), (None, 0, 0, 0, 0, 0))]
    assert plan_single_window(3, 5) == [WindowJob(0, (0, 1, 2, 3, 4), (3, 4), (None, None, None, 2, 2))]
    with pytest.raises(BadInput, match="single window"):
        plan_single_window(6, 6)


def test_several_new_frames_per_window_end_to_end(tiny_backbone, image_file):
    run = vidzero.extend(image_file, "a cat", frames=10, backbone=tiny_backbone, new_per_window=3, **FAST)
    frames = list(run)
    assert len(frames) == 10 and run.engine.stats.jobs == 3
    np.testing.assert_array_equal(frames[0].image, fitted(image_file, tiny_backbone))


@pytest.mark.parametrize(
    "length,known,message",
    [
        (10, {10}, "outside"),
        (10, set(), "at least one known"),
        (3, {0, 1, 2}, "nothing to generate"),
        (1, {0}, "at least 2"),
    ],
)
def test_invalid_timelines(length, known, message):
    with pytest.raises(BadInput, match=message):
        plan_timeline(length, known, 8)


def fitted(path, bb):
    from vidzero.media.images import load_image

    return load_image(path, bb.width, bb.height)


def make_images(tmp_path, n=3, size=(24, 20)):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = tmp_path / f"k{i}.png"
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def test_infill_keeps_keys_and_placed_clip_frames(tiny_backbone, tmp_path):
    a, b, c = make_images(tmp_path)
    clip_frames = [np.full((16, 16, 3), 40 * i, np.uint8) for i in range(3)]
    clip = write_video(clip_frames, tmp_path / "clipframes")  # PNG folder: lossless
    frames = list(
        vidzero.infill("a cat", 14, keys={0: a, 6: b, 13: c}, clips={9: clip}, backbone=tiny_backbone, **FAST)
    )
    assert [f.index for f in frames] == list(range(14))
    for pos, img in ((0, a), (6, b), (13, c)):
        np.testing.assert_array_equal(frames[pos].image, fitted(img, tiny_backbone))
    for i in range(3):
        np.testing.assert_array_equal(frames[9 + i].image, clip_frames[i])
    assert {f.index for f in frames if f.known} == {0, 6, 9, 10, 11, 13}


def test_infill_between_two_ends(tiny_backbone, tmp_path):
    a, b, _ = make_images(tmp_path)
    run = vidzero.infill_between(a, b, "a cat", frames=6, backbone=tiny_backbone, **FAST)
    frames = list(run)
    np.testing.assert_array_equal(frames[-1].image, fitted(b, tiny_backbone))
    assert run.engine.stats.jobs == 4


def test_predict_continues_from_the_clip_tail(tiny_backbone, tmp_path):
    src = [np.full((16, 16, 3), 10 * i, np.uint8) for i in range(12)]
    clip = write_video(src, tmp_path / "src")
    frames = list(vidzero.predict(clip, "a cat", frames=3, backbone=tiny_backbone, **FAST))
    context = tiny_backbone.frames - 1  # 7
    assert len(frames) == context + 3
    for i in range(context):
        np.testing.assert_array_equal(frames[i].image, src[12 - context + i])
    ranged = list(vidzero.predict(clip, "a cat", frames=2, from_frame=2, to_frame=6, backbone=tiny_backbone, **FAST))
    assert len(ranged) == 4 + 2
    np.testing.assert_array_equal(ranged[0].image, src[2])


def test_predict_cli_new_only_keeps_the_clip_fps(tiny_model_dir, tmp_path):
    src = [np.full((16, 16, 3), 10 * i, np.uint8) for i in range(10)]
    clip = write_video(src, tmp_path / "src.mp4", fps=12)
    out = tmp_path / "out.mp4"
    res = runner.invoke(
        app,
        [
            "predict",
            str(clip),
            "a cat",
            "-o",
            str(out),
            "--model",
            str(tiny_model_dir),
            "--frames",
            "3",
            "--new-only",
            "--steps",
            "1",
            "--resample",
            "0",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    assert len(list(read_video(out))) == 3
    manifest = json.loads((tmp_path / "out.mp4.manifest.json").read_text())
    assert manifest["fps"] == 12 and manifest["details"]["context_frames"] == 7


@pytest.mark.parametrize(
    "case,message",
    [
        ("outside", "outside the timeline"),
        ("overlap", "two keys at frame 0"),
        ("sizes", "differ in size"),
        ("empty-clip", "no image frames"),
        ("corrupt-clip", "corrupt"),
        ("clip-overlaps-key", "overlaps a known frame"),
        ("no-keys", "no known frames"),
    ],
)
def test_invalid_timelines_exit_2(tiny_model_dir, tmp_path, case, message):
    a, b, _ = make_images(tmp_path)
    (big,) = make_images(tmp_path / "big" if (tmp_path / "big").mkdir() is None else tmp_path, n=1, size=(40, 30))
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 64)
    clip = write_video([np.zeros((16, 16, 3), np.uint8)] * 3, tmp_path / "c3")
    args = {
        "outside": ["--key", f"0={a}", "--key", f"20={b}"],
        "overlap": ["--key", f"0={a}", "--key", f"0={b}"],
        "sizes": ["--key", f"0={a}", "--key", f"9={big}"],
        "empty-clip": ["--key", f"0={a}", "--clip", f"3:{tmp_path / 'empty'}"],
        "corrupt-clip": ["--key", f"0={a}", "--clip", f"3:{tmp_path / 'bad.mp4'}"],
        "clip-overlaps-key": ["--key", f"4={a}", "--clip", f"3:{clip}"],
        "no-keys": [],
    }[case]
    res = runner.invoke(
        app,
        [
            "infill",
            "a cat",
            "-o",
            str(tmp_path / "o.mp4"),
            "--frames",
            "10",
            "--model",
            str(tiny_model_dir),
            "--steps",
            "1",
            "--quiet",
            *args,
        ],
    )
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o.mp4").exists()


def test_every_public_name_loads_under_its_own_name_and_nothing_else_does():
    for name in vidzero.__all__:
        value = getattr(vidzero, name)  # loaded on first use: a stale entry raises here
        assert name == "__version__" or value.__name__ == name, name
    with pytest.raises(AttributeError, match="no attribute 'extned'"):
        vidzero.extned  # noqa: B018


def test_prompt_schedule_switches_per_window(tiny_backbone, image_file, monkeypatch):
    seen = []
    real = tiny_backbone.denoiser

    def spy(prompt, negative=""):
        seen.append(prompt)
        return real(prompt, negative)

    monkeypatch.setattr(tiny_backbone, "denoiser", spy)
    run = vidzero.extend(str(image_file), {0: "a cat", 4: "a red circle"}, frames=7, backbone=tiny_backbone, **FAST)
    assert len(list(run)) == 7
    assert seen == ["a cat"] * 3 + ["a red circle"] * 3  # windows making frames 1-3, then 4-6
    assert run.manifest()["prompt"] == {"0": "a cat", "4": "a red circle"}
    with pytest.raises(BadInput, match="outside"):
        vidzero.extend(str(image_file), {0: "a", 9: "b"}, frames=7, backbone=tiny_backbone)
    with pytest.raises(BadInput, match="frame 0"):
        vidzero.extend(str(image_file), {3: "a"}, frames=7, backbone=tiny_backbone)


def test_cli_prompt_at(tiny_model_dir, tmp_path):
    a, b, _ = make_images(tmp_path)
    res = runner.invoke(
        app,
        [
            "infill",
            str(a),
            str(b),
            "a cat",
            "-o",
            str(tmp_path / "o.mp4"),
            "--frames",
            "8",
            "--prompt-at",
            "4=a red circle",
            "--model",
            str(tiny_model_dir),
            "--steps",
            "1",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "o.mp4.manifest.json").read_text())["prompt"] == {"0": "a cat", "4": "a red circle"}
    res = runner.invoke(
        app,
        [
            "infill",
            str(a),
            str(b),
            "a cat",
            "-o",
            str(tmp_path / "p.mp4"),
            "--prompt-at",
            "x=y",
            "--model",
            str(tiny_model_dir),
        ],
    )
    assert res.exit_code == 2 and "N=PATH" not in res.output and "--prompt-at" in res.output


def test_an_anchored_plan_keeps_frame_0_in_every_window():
    from vidzero.core.timeline import plan_prefix

    plain, anchored = plan_prefix(40, 1, 16), plan_prefix(40, 1, 16, anchor=True)
    assert anchored[:15] == plain[:15]  # frame 0 is in the first windows anyway
    for job, plain_job in zip(anchored[15:], plain[15:]):  # frame 0 replaces the oldest frame
        assert job.slots == (0, *plain_job.slots[1:]) and job.generate == plain_job.generate
    last = anchored[-1]
    assert last.slots == (0, *range(25, 40)) and last.generate == (15,) and last.init_source[15] == 14
