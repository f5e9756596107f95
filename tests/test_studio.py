"""The studio's actions (vidzero.app.studio) and its page (built, not served): the browser test
that drives the served page is tests/test_studio_browser.py (marked `browser`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import vidzero
from vidzero.app.cli import app, studio_stopped
from vidzero.app.studio import Progress, Studio, frame_span, message, seam_choices
from vidzero.errors import BadInput

FAST = {"steps": 2, "resample": 0, "seed": 3}


def cli_extend(image, out, model, frames=5, *extra):
    args = ["extend", str(image), "a red circle", "-o", str(out), "--frames", str(frames), "--model", str(model)]
    args += ["--steps", "2", "--resample", "0", "--seed", "3", "--device", "cpu", "--quiet", *extra]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output


@pytest.fixture
def studio(tmp_path, tiny_model_dir):
    return Studio(tmp_path / "outputs", model=str(tiny_model_dir), device="cpu")


def test_a_bad_outputs_folder_or_port_is_one_line_and_makes_nothing(tmp_path):
    import socket

    (tmp_path / "file").write_text("x")
    with pytest.raises(BadInput, match="is a file, not a folder"):
        Studio(tmp_path / "file")
    with pytest.raises(BadInput, match="kernel file system"):
        Studio("/proc/vidzero-studio")
    outputs = tmp_path / "outputs"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = [(str(port), f"--port {port} is in use"), ("70000", "--port must be a port number from 1 to 65535")]
        for given, expected in [*cases, ("-5", "--port must be a port number")]:
            res = CliRunner().invoke(app, ["studio", "--outputs", str(outputs), "--port", given])
            lines = [line for line in res.output.splitlines() if line.strip()]
            assert res.exit_code == 2 and len(lines) == 1 and expected in lines[0], res.output
            assert not outputs.exists()


def test_a_model_name_no_file_system_holds_is_one_short_line(studio):
    for name in ("a" * 10_000, "a/" * 3_000):
        with pytest.raises(BadInput) as caught:
            studio.choose_model(name)
        assert len(message(caught.value)) < 200 and "--model" in message(caught.value)


def test_names_stay_in_the_outputs_folder(studio):
    assert studio.output_path("circle") == studio.outputs / "circle.mp4"
    assert studio.output_path("a.webm") == studio.outputs / "a.webm"
    for bad in ("../x.mp4", "sub/x.mp4", ".hidden", "", "/etc/x.mp4"):
        with pytest.raises(BadInput):
            studio.output_path(bad)
    with pytest.raises(BadInput, match="outside the outputs folder"):
        studio.served(studio.outputs.parent / "elsewhere.mp4")
    assert studio.served(studio.outputs / "a.mp4") == studio.outputs / "a.mp4"


def test_bad_input_gets_the_clis_line_and_writes_nothing(studio, image_file):
    fake = studio.outputs / ".studio" / "upload.png"  # an upload that is no image
    fake.write_text("not a picture")
    before = sorted(p.name for p in studio.outputs.iterdir())
    cases = [
        ({"image": str(image_file), "prompt": "x", "frames": 0}, {}, "--frames"),
        ({"image": str(image_file)}, {}, "give an image and a prompt"),
        ({"image": str(studio.outputs / "missing.png"), "prompt": "x"}, {}, "not found"),
        ({"image": str(image_file), "prompt": "x"}, {"steps": -1}, "--steps"),
        ({"image": str(image_file), "prompt": "x"}, {"preset": "best"}, "--preset"),
        ({"image": str(fake), "prompt": "x"}, {}, "upload.png"),
    ]
    for inputs, options, expected in cases:
        with pytest.raises(BadInput) as caught:
            studio.start("extend", inputs, options, "v.mp4")
        assert expected in message(caught.value) and "\n" not in message(caught.value)
    assert sorted(p.name for p in studio.outputs.iterdir()) == before
    assert message(RuntimeError("boom")) == "internal error: RuntimeError: boom"
    assert frame_span(" 8 - 11 ") == "8-11" and frame_span("8-11 (seam at 10: flicker)") == "8-11"
    seam = {
        "frame": 10,
        "signal": "flicker",
        "frames": "8-11",
        "reroll": "vidzero reroll 'my out.mp4' --frames 8-11 -o NEW",
    }
    assert seam_choices([seam]) == ["8-11 (seam at 10: flicker)"]
    with pytest.raises(BadInput):
        frame_span("eight")


def test_a_page_run_writes_what_the_cli_writes(studio, image_file, tiny_model_dir, tmp_path):
    handle = studio.start("extend", {"image": str(image_file), "prompt": "a red circle", "frames": 5}, FAST, "page")
    assert handle.wait(120) == "done"
    cli_extend(image_file, tmp_path / "cli.mp4", tiny_model_dir)
    page = studio.outputs / "page.mp4"
    assert page.read_bytes() == (tmp_path / "cli.mp4").read_bytes()
    for suffix in (".manifest.json", ".contact.png", ".report.json", ".report.png", ".state.safetensors"):
        assert (studio.outputs / f"page.mp4{suffix}").exists(), suffix
    made = json.loads((studio.outputs / "page.mp4.manifest.json").read_text())
    cli = json.loads((tmp_path / "cli.mp4.manifest.json").read_text())
    assert made["fingerprint"] == cli["fingerprint"] and made["spec"]["inputs"] == cli["spec"]["inputs"]
    files = studio.result_files(page)
    assert files == {
        "video": str(page),
        "contact": str(studio.outputs / "page.mp4.contact.png"),
        "report": str(studio.outputs / "page.mp4.report.png"),
        "seams": made["report"]["seams"],
    }
    assert studio.finished_outputs() == ["page.mp4"]
    assert studio.free_name("page") == "page-001.mp4" and studio.free_name("fresh") == "fresh"
    assert handle.snapshot()["output"] == str(page)
    assert studio_stopped(studio) == f"studio stopped; 1 video(s) made in {studio.outputs}"  # Ctrl-C's line
    assert [p.name for p in handle.frames()] == [f"{i:06d}.png" for i in range(5)]  # the page's gallery
    assert "frames in" in handle.estimate and "guided evaluations" in handle.estimate
    # the CLI goes on from what the page made, and the page from what the CLI made
    more = CliRunner().invoke(
        app,
        [
            "extend",
            "--from",
            f"{page}.state.safetensors",
            "-o",
            str(tmp_path / "more.mp4"),
            "--frames",
            "3",
            "--model",
            str(tiny_model_dir),
            "--device",
            "cpu",
            "--quiet",
        ],
    )
    assert more.exit_code == 0, more.output
    rerolled = studio.start("reroll", {"run": str(tmp_path / "cli.mp4"), "frames": "2-3"}, {"seed": 9}, "fixed")
    assert rerolled.wait(120) == "done"


def test_stop_leaves_a_run_that_resume_finishes_to_the_same_bytes(studio, image_file, tmp_path, monkeypatch):
    inputs = {"image": str(image_file), "prompt": "a red circle", "frames": 8}
    whole = studio.start("extend", inputs, FAST, "whole")
    assert whole.wait(120) == "done"

    report = Progress.job

    def stop_after_two_windows(self, done, total):
        report(self, done, total)
        if done == 2:
            studio.stop()

    monkeypatch.setattr(Progress, "job", stop_after_two_windows)
    stopped = studio.start("extend", inputs, FAST, "cut")
    assert stopped.wait(120) == "stopped"
    assert (studio.outputs / "cut.mp4.state.safetensors").exists() and not (studio.outputs / "cut.mp4").exists()
    # the frames made so far are what the page shows: the image and the two windows' frames
    assert [p.name for p in stopped.frames()] == ["000000.png", "000001.png", "000002.png"]
    assert studio.free_name("cut") == "cut"  # the name stays for Resume
    monkeypatch.setattr(Progress, "job", report)
    with pytest.raises(BadInput) as refused:
        studio.start("extend", inputs, FAST, "cut")
    assert "--resume continues it" in message(refused.value)
    resumed = studio.start("extend", inputs, FAST, "cut", resume=True)
    assert resumed.wait(120) == "done"
    assert (studio.outputs / "cut.mp4").read_bytes() == (studio.outputs / "whole.mp4").read_bytes()


def test_a_timeline_of_images_and_clips_fills_in(studio, image_file, tmp_path):
    from tests.synthetic import moving_square
    from vidzero.app.studio import timeline_inputs
    from vidzero.media.video import write_video

    clip = tmp_path / "clip.mp4"
    write_video(moving_square(4, 16, start=(4.0, 8.0), speed=1.0, half=3), clip)
    inputs = timeline_inputs([str(image_file)], "0", [str(clip)], "6", {"0": "a cat", "5": "a dog"}, 10)
    assert inputs["keys"] == {"0": str(image_file)} and inputs["clips"] == {"6": str(clip)}
    handle = studio.start("infill", inputs, FAST, "timeline")
    assert handle.wait(120) == "done", handle.outcome
    assert json.loads((studio.outputs / "timeline.mp4.manifest.json").read_text())["frames"] == 10
    for bad in (
        ([], "", [], "", "x", 8),
        ([str(image_file)], "0, 9", [], "", "x", 8),
        ([str(image_file)], "a", [], "", "x", 8),
    ):
        with pytest.raises(BadInput):
            timeline_inputs(*bad)


def test_progress_counts_windows_and_steps():
    from vidzero.app.studio import bar

    progress = Progress()
    assert progress.fraction() == 0.0 and progress.line() == "starting"
    progress.job(0, 4)
    progress.step(5, 10)
    assert progress.fraction() == 0.125 and "window 1/4, step 5/10" in progress.line()
    progress.job(2, 4)
    progress.step(10, 10)
    assert progress.fraction() == 0.75 and "s left" in progress.line()
    progress.job(4, 4)
    assert progress.fraction() == 1.0
    assert bar(0.5, 10) == "\u2588" * 5 + "\u2591" * 5 + " 50%"


def test_one_run_at_a_time(studio, image_file, monkeypatch):
    import threading

    inputs = {"image": str(image_file), "prompt": "x", "frames": 12}
    started, tried = threading.Event(), threading.Event()
    report = Progress.job

    def hold_the_first_window(self, done, total):
        report(self, done, total)
        if done == 1:
            started.set()
            tried.wait(60)

    monkeypatch.setattr(Progress, "job", hold_the_first_window)
    first = studio.start("extend", inputs, FAST, "one")
    try:
        assert started.wait(60)
        with pytest.raises(BadInput, match="a run is going on"):
            studio.start("extend", inputs, FAST, "two")
    finally:
        studio.stop()
        tried.set()
        first.wait(120)
    assert first.outcome == "stopped" and not (studio.outputs / "two.mp4").exists()


def test_deflicker_and_report_a_clip_in_the_outputs_folder(studio, image_file, tmp_path):
    handle = studio.start("extend", {"image": str(image_file), "prompt": "x", "frames": 4}, FAST, "clip")
    assert handle.wait(120) == "done"
    summary = studio.deflicker(studio.outputs / "clip.mp4", "smooth")
    assert (studio.outputs / "smooth.mp4").exists() and summary["output"]["frames"] == 4
    with pytest.raises(BadInput, match="output exists"):
        studio.deflicker(studio.outputs / "clip.mp4", "smooth")
    report = studio.report(studio.outputs / "smooth.mp4")
    assert (studio.outputs / "smooth.mp4.report.png").exists() and "seams" in report


def test_a_model_is_chosen_by_what_its_files_say(studio, tiny_model_dir):
    assert studio.choose_model("shapes")["window_frames"] == 16 and studio.model == "shapes"
    with pytest.raises(BadInput):
        studio.choose_model(str(studio.outputs / "no-such-model"))
    assert studio.model == "shapes"
    assert studio.choose_model(str(tiny_model_dir))["family"] == "unet3d"


def test_the_page_builds_with_every_control(studio, monkeypatch):
    from vidzero.app.studio_fields import prompt_value
    from vidzero.app.studio_page import build_page

    monkeypatch.setenv("GRADIO_TEMP_DIR", "")  # restored afterwards: the page points it at the outputs folder

    page = build_page(studio)
    ids = {getattr(block, "elem_id", None) for block in page.blocks.values()}
    assert {"image", "prompt", "frames", "seed", "preset", "name", "run", "stop", "resume", "gallery"} <= ids
    assert {"video", "contact", "report", "seams", "error", "status"} <= ids
    assert prompt_value("0: a red circle\n8: a blue square") == {"0": "a red circle", "8": "a blue square"}
    assert prompt_value(" a cat ") == "a cat" and prompt_value("") is None
    assert os.environ["GRADIO_TEMP_DIR"] == str(studio.outputs / ".studio")
    assert not list(Path(vidzero.__file__).parent.rglob("*.pyi"))  # Gradio writes stubs beside component subclasses


def test_requests_the_page_refuses_are_one_line_never_a_traceback(studio, tmp_path, monkeypatch, capfd):
    """Uploads that are no image, and requests Gradio itself refuses (a value outside a dropdown's
    choices, a file field that is no file), answered on a live server: the CLI's line or one
    line of Gradio's reason on the page, at most one line in the console, and the server goes on."""
    from gradio_client import Client, handle_file

    from vidzero.app.studio_server import serve, served_url

    monkeypatch.setenv("GRADIO_TEMP_DIR", "")
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "noise.png").write_bytes(os.urandom(1 << 20))
    page = serve(studio)
    try:
        client = Client(served_url(page), verbose=False)
        for upload in ("text.png", "empty.png", "noise.png"):
            answer = client.predict(
                handle_file(str(tmp_path / upload)), "x", 3, 0, "", "fast", "", "a", api_name="/run_new"
            )
            assert answer[0].startswith("cannot read image") and "not an image" in answer[0], answer[0]
        refused = [
            ("/run_new", (None, "x", 3, 0, "", "no-such-preset", "", "b")),
            ("/seams_of", ("no-such.mp4",)),
            ("/reroll", ("no-such.mp4", "1-2", 1, "c")),
            (
                "/deflicker",
                ({"video": {"path": str(tmp_path / "text.png"), "meta": {"_type": "gradio.FileData"}}}, "d"),
            ),
        ]
        for endpoint, args in refused:
            with pytest.raises(Exception) as caught:
                client.predict(*args, api_name=endpoint)
            assert len(str(caught.value).splitlines()) == 1
        assert client.predict("clip", api_name="/free_name") == "clip"  # still serving
    finally:
        page.close()
    console = capfd.readouterr().err
    assert "Traceback" not in console
    assert len([line for line in console.splitlines() if "refused a request" in line]) == len(refused)
    assert sorted(p.name for p in studio.outputs.iterdir()) == [".studio"]  # nothing written


def test_the_estimate_prices_gradients_as_the_cli_and_the_dry_run_do(tiny_backbone, image_file):
    """One formula (PlannedRun.cost) for the studio's estimate, the CLI's announcement and --dry-run."""
    import vidzero
    from vidzero.app.studio import estimate

    run = vidzero.extend(
        image_file, "x", frames=4, backbone=tiny_backbone, steps=2, resample=0, dps=1.0, progress=False
    )
    cost = run.cost()
    assert (cost.windows, cost.evaluations, cost.backward, cost.checkpointed, cost.work) == (3, 6, 6, False, 12)
    assert estimate(run).startswith("4 frames in 3 windows, 6 guided evaluations (6 with a gradient)")


def test_a_reroll_from_the_page_keeps_the_tasks_seed_rule(studio, image_file):
    """An empty seed field is no seed given: the reroll's own rule (the original seed + 1)."""
    from vidzero.app.studio_page import build_page

    page = build_page(studio)
    field = next(b for b in page.blocks.values() if getattr(b, "elem_id", None) == "reroll-seed")
    assert field.value is None
    original = studio.start("extend", {"image": str(image_file), "prompt": "x", "frames": 4}, FAST | {"seed": 7}, "o")
    assert original.wait(120) == "done"
    inputs = {"run": str(studio.outputs / "o.mp4"), "frames": "1-2"}
    rerolled = studio.start("reroll", inputs, {"seed": None}, "r")
    assert rerolled.wait(120) == "done"
    assert json.loads((studio.outputs / "r.mp4.manifest.json").read_text())["spec"]["options"]["seed"] == 8


def test_a_path_is_drawn_by_clicks_and_shown_over_the_image(tmp_path):
    from PIL import Image

    from vidzero.app.studio_fields import add_point, path_preview

    path = add_point(add_point("", 14.2, 32.0), 40.0, 20.6)
    assert path == "14,32 40,21"
    image = tmp_path / "i.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(image)
    shown = path_preview(str(image), path + "@9")
    assert shown.shape == (64, 64, 3) and shown[32, 14].max() > 200 and shown[26, 27].max() > 100  # dot, line
    assert path_preview(None, path) is None
    assert np.array_equal(path_preview(str(image), "12;oops"), np.zeros((64, 64, 3), np.uint8))  # no path to draw
