"""Bad input never runs and never loses a file: a table of hostile inputs across every command and
the Python API, each with its exit code and message, and a check that nothing on disk changed."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import vidzero
from tests.synthetic import moving_square
from vidzero.app.cli import app
from vidzero.errors import BadInput
from vidzero.media.video import write_video

runner = CliRunner()


def huge_png(path: Path) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 12000, 10000, 8, 2, 0, 0, 0))
    path.write_bytes(header + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def ws(tmp_path_factory, tiny_model_dir):
    """A workspace of good and bad files; the cases below must leave it exactly as it is."""
    d = tmp_path_factory.mktemp("ws")
    frames = moving_square(6, 16, start=(4.0, 8.0), speed=1.0, half=3)
    Image.fromarray(frames[0]).save(d / "img.png")
    Image.fromarray(moving_square(1, 24)[0]).save(d / "big.png")
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    (d / "notes.txt").write_text("hello")
    (d / "jobs.jsonl").write_text('{"task": "extend", "image": "img.png", "prompt": "x", "frames": 3}\n')
    huge_png(d / "huge.png")
    (d / "imgdir").mkdir()
    write_video(frames, d / "clip.mp4")
    data = (d / "clip.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (d / "frames").mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(d / "frames" / f"{i:03d}.png")
    (d / "frames" / "004.png").write_bytes(b"not a png")
    (d / "one").mkdir()
    Image.fromarray(frames[0]).save(d / "one" / "000.png")
    (d / "mine.mp4").write_bytes(b"the user's own movie")
    (d / "userdir").mkdir()
    (d / "userdir" / "notes.md").write_text("the user's notes")
    (d / "clip.mp4.flicker.json").write_text('{"mine": true}')
    (d / "notamodel").mkdir()
    for name, index in (("listmodel", "[]"), ("halfmodel", None)):
        (d / name).mkdir()
        (d / name / "model_index.json").write_text(index or (tiny_model_dir / "model_index.json").read_text())
    badfmt = d / "badformat"
    import shutil

    shutil.copytree(tiny_model_dir, badfmt)
    (badfmt / "vidzero.json").write_text("{frames: 16")
    (d / "foreign.state.safetensors").write_bytes(os.urandom(300))
    torch.save({"version": 1, "finished": True}, d / "old.state.pt")
    res = runner.invoke(
        app,
        [
            "extend",
            str(d / "img.png"),
            "x",
            "-o",
            str(d / "done.mp4"),
            "--model",
            str(tiny_model_dir),
            "--frames",
            "3",
            "--steps",
            "1",
            "--resample",
            "0",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    os.mkfifo(d / "pipe.png")  # a named pipe: opening it would block forever
    audio_only(d / "audio.mp4")
    state = (d / "done.mp4.state.safetensors").read_bytes()
    (d / "damaged.state.safetensors").write_bytes(state[:-9] + bytes([state[-9] ^ 0xFF]) + state[-8:])
    (d / "edited.state.safetensors").write_bytes(edited_header(state, '\\"finished\\": true', '\\"finished\\": false'))
    (d / "deepmodel").mkdir()
    (d / "deepmodel" / "model_index.json").write_text("[" * 100_000 + "]" * 100_000)
    (d / ("c" * 220 + ".mp4")).write_bytes((d / "clip.mp4").read_bytes())
    (d / "edited.mp4.partial").mkdir()
    (d / "edited.mp4.state.safetensors").write_bytes((d / "edited.state.safetensors").read_bytes())
    return d


def audio_only(path: Path) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=44100)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 44100
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


def edited_header(data: bytes, old: str, new: str) -> bytes:
    """A safetensors file whose JSON header has `old` replaced by `new` (the tensors untouched)."""
    (length,) = struct.unpack("<Q", data[:8])
    header = data[8 : 8 + length].decode().replace(old, new)
    assert new in header
    raw = header.encode()
    return struct.pack("<Q", len(raw)) + raw + data[8 + length :]


def snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        key = str(p.relative_to(root))
        out[key] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


M = "{model}"
EXT = ["extend", "img.png", "a red circle moving right", "-o", "o.mp4", "--model", M]
BAD_CLI = [
    # extend: images
    (["extend", "missing.png", "x", "-o", "o.mp4", "--model", M], "image not found"),
    (["extend", "corrupt.png", "x", "-o", "o.mp4", "--model", M], "not an image, or corrupt"),
    (["extend", "notes.txt", "x", "-o", "o.mp4", "--model", M], "not an image, or corrupt"),
    (["extend", "imgdir", "x", "-o", "o.mp4", "--model", M], "got a folder"),
    (["extend", "huge.png", "x", "-o", "o.mp4", "--model", M], "megapixels"),
    (["extend", "img.png", "-o", "o.mp4", "--model", M], "give an image and a prompt"),
    (["extend", "img.png", "x", "--model", M], "give --output"),
    # extend: numbers
    ([*EXT, "--frames", "0"], "--frames must be between 2"),
    ([*EXT, "--frames", "1"], "--frames must be between 2"),
    ([*EXT, "--frames", "-3"], "--frames must be between 2"),
    ([*EXT, "--frames", "100000000"], "--frames must be between 2"),
    ([*EXT, "--steps", "0"], "--steps must be between 1 and 1000"),
    ([*EXT, "--steps", "5000"], "--steps must be between 1 and 1000"),
    ([*EXT, "--resample", "-1"], "--resample must be between 0"),
    ([*EXT, "--guidance", "nan"], "--guidance must be a finite number"),
    ([*EXT, "--guidance", "-1"], "--guidance must be in"),
    ([*EXT, "--eta", "2"], "--eta must be in"),
    ([*EXT, "--seed", "-1"], "--seed must be between 0"),
    ([*EXT, "--seed", str(2**64)], "--seed must be between 0"),
    ([*EXT, "--fps", "0"], "--fps must be in"),
    ([*EXT, "--fps", "2000"], "--fps must be in"),
    (["extend", "img.png", "x", "-o", "o.gif", "--model", M, "--fps", "60"], "--fps 60 is too fast for a .gif"),
    ([*EXT, "--frames", "2.5"], "Invalid value for '--frames'"),
    (["extend", "img.png", "-x moving right", "-o", "o.mp4", "--model", M], "a PROMPT that starts with '-'"),
    (["extend", "img.png", "x", "-o", "o.mp4", "--model", M, "--bogus"], "No such option: --bogus"),
    ([*EXT, "--fps", "1e-9"], "--fps must be in"),
    ([*EXT, "--new-per-window", "0"], "--new-per-window must be between"),
    ([*EXT, "--new-per-window", "99"], "--new-per-window must be between 1 and 7"),
    ([*EXT, "--window", "1"], "--window must be between 2"),
    ([*EXT, "--height", "25"], "multiples of 2"),
    ([*EXT, "--crf", "-1"], "--crf must be between 0 and 63"),
    ([*EXT, "--crf", "60"], "--crf for h264 must be between 0 and 51"),
    ([*EXT, "--vae-slice", "0"], "--vae-slice must be between"),
    ([*EXT, "--forward-chunking", "3"], "--forward-chunking 3 must divide every sequence"),
    ([*EXT, "--resample-steps", "-2"], "--resample-steps must be between"),
    # extend: choices
    ([*EXT, "--queue", "disk"], "unknown --queue 'disk'"),
    ([*EXT, "--init", "magic"], "unknown --init 'magic'"),
    ([*EXT, "--preset", "turbo"], "unknown --preset 'turbo'"),
    ([*EXT, "--guidance-steps", "5:2"], "--guidance-steps '5:2' must satisfy 0 <= A < B <= steps"),
    ([*EXT, "--guidance-steps", "one"], "--guidance-steps 'one' should look like A:B"),
    ([*EXT, "--given-start", "10"], "--given-start must be below steps (10)"),
    ([*EXT, "--rectify", "-1"], "--rectify must be in"),
    ([*EXT, "--offload", "disk"], "unknown --offload 'disk'"),
    ([*EXT, "--codec", "vp9"], "--codec 'vp9' does not go in a .mp4"),
    ([*EXT, "--codec", "mpeg2"], "--codec 'mpeg2' does not go in a .mp4"),
    ([*EXT, "--dtype", "fp8"], "unknown --dtype 'fp8'"),
    ([*EXT, "--dtype", "fp16"], "--dtype fp16 is not supported on the CPU"),
    ([*EXT, "--device", "mps"], "--device 'mps' is not available"),
    ([*EXT, "--device", "meta"], "--device 'meta' is not supported"),
    ([*EXT, "--device", "tpu"], "unknown --device 'tpu'"),
    ([*EXT, "--offload", "model"], "--offload needs a CUDA device"),
    # models
    (["extend", "img.png", "x", "-o", "o.mp4", "--model", "nowhere"], "no such folder"),
    (["extend", "img.png", "x", "-o", "o.mp4", "--model", "notamodel"], "not a diffusers checkpoint"),
    (["extend", "img.png", "x", "-o", "o.mp4", "--model", "listmodel"], "must hold a JSON object"),
    (["extend", "img.png", "x", "-o", "o.mp4", "--model", "halfmodel"], "is incomplete"),
    (["extend", "img.png", "x", "-o", "o.mp4", "--model", "badformat"], "is not valid JSON"),
    (["extend", "img.png", "x", "-o", "o.mp4", "--model", "notes.txt"], "is a file"),
    (["extend", "img.png", "x", "-o", "o.mp4", "--model", "someorg/somemodel"], "hf download someorg/somemodel"),
    ([*EXT, "--variant", "fp16"], "no 'fp16' weights"),
    # outputs
    (["extend", "img.png", "x", "-o", "o.avi", "--model", M], "unknown --output extension '.avi'"),
    (["extend", "img.png", "x", "-o", ".mp4", "--model", M], "no name before its extension"),
    (["extend", "img.png", "x", "-o", "mine.mp4", "--model", M], "output exists"),
    (["extend", "img.png", "x", "-o", "mine.mp4", "--model", M, "--force"], "was not written by vidzero"),
    (["extend", "img.png", "x", "-o", "userdir", "--model", M, "--force"], "was not written by vidzero"),
    (["extend", "img.png", "x", "-o", ".", "--model", M, "--force"], "current, home or root folder"),
    (["extend", "img.png", "x", "-o", "missing/o.mp4", "--model", M], "folder does not exist"),
    (["extend", "img.png", "x", "-o", "notes.txt/o.mp4", "--model", M], "is a file, not a folder"),
    (["extend", "img.png", "x", "-o", "n" * 250 + ".mp4", "--model", M], "too long"),
    (["extend", "img.png", "x", "-o", "done.mp4", "--model", M], "output exists"),
    (
        ["extend", "img.png", "x", "-o", "done.mp4", "--model", M, "--seed", "3", "--resume"],
        "belongs to a different run",
    ),
    # a name no record can carry (a NUL byte cannot reach a command line; the batch and API cases are below)
    (["extend", "img.png", "x", "-o", "\udcff\udcfe.mp4", "--model", M], "is not a UTF-8 name"),
    (["extend", "img.png", "x", "-o", "o.mp4", "--model", "deepmodel"], "is not valid JSON: nested too deep"),
    (["info", "deepmodel"], "is not valid JSON: nested too deep"),
    # a report beside a clip names the file, not an option the user never gave
    (["report", "c" * 220 + ".mp4"], "report file name is too long"),
    (["deflicker", "c" * 220 + ".mp4", "--report-only"], "report file name is too long"),
    # posterior guidance
    ([*EXT, "--dps", "-1"], "--dps must be in"),
    ([*EXT, "--reconstruction", "nan"], "--reconstruction must be a finite number"),
    ([*EXT, "--known-noise", "stale"], "unknown --known-noise 'stale'"),
    ([*EXT, "--posterior-steps", "5:2"], "--posterior-steps '5:2' must satisfy"),
    ([*EXT, "--patch-swap", "2"], "--patch-swap must be in"),
    ([*EXT, "--generated-weight", "-0.5"], "--generated-weight must be in"),
    # prompts
    (["extend", "img.png", "bad \udcff bytes", "-o", "o.mp4", "--model", M], "PROMPT is not valid UTF-8"),
    ([*EXT, "--prompt-at", "2="], "--prompt-at '2=' should look like N=TEXT"),
    ([*EXT, "--prompt-at", "2=a", "--prompt-at", "2=b"], "frame 2 is given twice"),
    ([*EXT, "--prompt-at", "x=a"], "should look like N=TEXT"),
    ([*EXT, "--prompt-at", "99=a"], "outside the video"),
    ([*EXT, "--prompt-at", "\u00b2=a"], "should look like N=TEXT"),
    # special files and kernel file systems, judged by stat before anything opens them
    (["extend", "pipe.png", "x", "-o", "o.mp4", "--model", M], "pipe.png is a named pipe, not a file"),
    (["extend", "/proc/self/status", "x", "-o", "o.mp4", "--model", M], "is in /proc, a kernel file system"),
    (["extend", "img.png", "x", "-o", "/proc/o.mp4", "--model", M], "in /proc, a kernel file system"),
    (["extend", "img.png", "x", "-o", "/sys/o.mp4", "--model", M], "in /sys, a kernel file system"),
    (["predict", "pipe.png", "x", "-o", "o.mp4", "--model", M], "is a named pipe, not a file"),
    (["predict", "audio.mp4", "x", "-o", "o.mp4", "--model", M], "has no video stream (it holds audio)"),
    (["deflicker", "audio.mp4", "-o", "o.mp4"], "has no video stream (it holds audio)"),
    # damaged or edited state files
    (["extend", "--from", "damaged.state.safetensors", "-o", "o.mp4", "--model", M], "is damaged"),
    (["extend", "--from", "edited.state.safetensors", "-o", "o.mp4", "--model", M], "is damaged"),
    (["extend", "--from", "pipe.png", "-o", "o.mp4", "--model", M], "is a named pipe"),
    (
        ["extend", "img.png", "x", "-o", "edited.mp4", "--model", M, "--frames", "3", "--steps", "1", "--resume"],
        "edited.mp4.state.safetensors is damaged",
    ),
    # extend --from
    (["extend", "--from", "nothing.state.safetensors", "-o", "o.mp4", "--model", M], "state file not found"),
    (["extend", "--from", "foreign.state.safetensors", "-o", "o.mp4", "--model", M], "not a vidzero state file"),
    (["extend", "--from", "old.state.pt", "-o", "o.mp4", "--model", M], "from vidzero 0.1"),
    (
        ["extend", "img.png", "x", "--from", "done.mp4.state.safetensors", "-o", "o.mp4", "--model", M],
        "at most a prompt",
    ),
    (
        ["extend", "--from", "done.mp4.state.safetensors", "-o", "o.mp4", "--model", M, "--frames", "0"],
        "--frames must be between 1",
    ),
    # motion paths (img.png: 16x16, a square at 4,8)
    (["extend", "img.png", "x", "-o", "o.mp4", "--model", M, "--path", "4,8 30,8"], "off the 16x16 image"),
    (["extend", "img.png", "x", "-o", "o.mp4", "--model", M, "--path", "14,2 10,2"], "on nothing that can be moved"),
    (["extend", "img.png", "x", "-o", "o.mp4", "--model", M, "--path", "4,8 10,8@5 12,8@3"], "out of order"),
    (["extend", "img.png", "x", "-o", "o.mp4", "--model", M, "--frames", "8", "--path", "4,8 10,8@40"], "0..7"),
    (["extend", "img.png", "x", "-o", "o.mp4", "--model", M, "--path", " "], "--path ' ' is empty"),
    (["extend", "img.png", "x", "-o", "o.mp4", "--model", M, "--path", "4;8 10,8"], "should look like X,Y"),
    (["extend", "img.png", "x", "-o", "o.mp4", "--model", M, "--path", "4,8"], "at least two points"),
    (["extend", "img.png", "x", "-o", "o.mp4", "--model", M, "--path", "4,8 9,8", "--mask", "big.png"], "24x24"),
    (["extend", "img.png", "x", "-o", "o.mp4", "--model", M, "--path", "4,8 9,8", "--mask", "notes.txt"], "mask"),
    (["extend", "img.png", "x", "-o", "o.mp4", "--model", M, "--mask", "img.png"], "1 mask(s) for 0 path(s)"),
    (["predict", "clip.mp4", "x", "-o", "o.mp4", "--model", M, "--path", "4,8 9,8@2"], "frames 5..20"),
    (["infill", "x", "-o", "o.mp4", "--model", M, "--key", "0=img.png", "--path", "4,8@3 9,8"], "holds no keyframe"),
    # predict
    (["predict", "missing.mp4", "x", "-o", "o.mp4", "--model", M], "video not found"),
    (["predict", "truncated.mp4", "x", "-o", "o.mp4", "--model", M], "truncated or corrupt"),
    (["predict", "notes.txt", "x", "-o", "o.mp4", "--model", M], "truncated or corrupt"),
    (["predict", "clip.mp4", "x", "-o", "o.mp4", "--model", M, "--frames", "0"], "--frames must be between 1"),
    (
        ["predict", "clip.mp4", "x", "-o", "o.mp4", "--model", M, "--from-frame", "4", "--to-frame", "2"],
        "--to-frame (2) must be after",
    ),
    (["predict", "clip.mp4", "x", "-o", "o.mp4", "--model", M, "--from-frame", "50"], "no frames in the range"),
    (["predict", "clip.mp4", "x", "-o", "clip.mp4", "--model", M, "--force"], "would overwrite the input"),
    (["predict", "frames", "x", "-o", "o.mp4", "--model", M], "cannot read frame"),
    (["predict", "clip.mp4", "x", "-o", "clip.mp4.manifest.json", "--model", M], "unknown --output extension"),
    # infill
    (
        ["infill", "img.png", "img.png", "x", "-o", "o.mp4", "--model", M, "--frames", "1"],
        "--frames must be between 2",
    ),
    (["infill", "x", "-o", "o.mp4", "--model", M], "no known frames"),
    (["infill", "x", "-o", "o.mp4", "--model", M, "--key", "x=img.png"], "--key 'x=img.png' should look like"),
    (["infill", "x", "-o", "o.mp4", "--model", M, "--key", "5=img.png", "--key", "5=img.png"], "two keys at frame 5"),
    (["infill", "x", "-o", "o.mp4", "--model", M, "--key", "99=img.png"], "--key at frame 99 is outside"),
    (["infill", "x", "-o", "o.mp4", "--model", M, "--key", "\u0663=img.png"], "should look like N=PATH"),
    (["infill", "img.png", "img.png", "x", "-o", "o.mp4", "--model", M, "--key", "0=img.png"], "two keys at one frame"),
    (["infill", "x", "-o", "o.mp4", "--model", M, "--key", "0=img.png", "--key", "9=big.png"], "differ in size"),
    (["infill", "img.png", "img.png", "x", "-o", "o.mp4", "--model", M, "--order", "sideways"], "unknown --order"),
    (["infill", "img.png", "x", "-o", "o.mp4", "--model", M], "give start and end images and a prompt"),
    (["infill", "x", "-o", "o.mp4", "--model", M, "--clip", "0:missing.mp4"], "video not found"),
    (["infill", "img.png", "img.png", "x", "-o", "img.png", "--model", M], "unknown --output extension"),
    # deflicker
    (["deflicker", "missing.mp4", "-o", "o.mp4"], "video not found"),
    (["deflicker", "frames", "-o", "o.mp4"], "cannot read frame"),
    (["deflicker", "one", "-o", "o.mp4"], "at least 2"),
    (["deflicker", "clip.mp4"], "give --output"),
    (["deflicker", "clip.mp4", "-o", "clip.mp4", "--force"], "would overwrite the input"),
    (["deflicker", "clip.mp4", "--report-only"], "output exists"),
    (["deflicker", "clip.mp4", "--report-only", "--force"], "not written by vidzero"),
    (["deflicker", "clip.mp4", "-o", "o.mp4", "--window", "100"], "window must be in [0, 64]"),
    (["deflicker", "clip.mp4", "-o", "o.mp4", "--flow", "magic"], "unknown flow"),
    (["deflicker", "clip.mp4", "-o", "o.mp4", "--anchor", "-1"], "--anchor must be between 0"),
    (["deflicker", "clip.mp4", "-o", "o.mp4", "--anchor", "999"], "--anchor 999 is outside the clip's 6 frames"),
    # batch: the command line's options are checked before the batch folder is made
    (["batch", "jobs.jsonl", "-o", "B", "--reconstruction", "nan"], "--reconstruction must be"),
    (["batch", "jobs.jsonl", "-o", "B", "--pack", "0"], "--pack must be 1 to 64"),
    # generate, info
    (["generate", "x", "-o", "o.mp4", "--model", M, "--frames", "0"], "--frames must be between 2"),
    (["generate", "x", "-o", "mine.mp4", "--model", M], "output exists"),
    (["info", "nowhere"], "no such folder"),
    (["info", "listmodel"], "must hold a JSON object"),
]


@pytest.mark.parametrize("args,message", BAD_CLI, ids=[f"{a[0]}-{i}" for i, (a, _) in enumerate(BAD_CLI)])
def test_bad_cli_input_exits_2_with_one_line_and_changes_nothing(ws, tiny_model_dir, monkeypatch, args, message):
    monkeypatch.chdir(ws)
    if "--device" in args and args[args.index("--device") + 1] == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has mps")
    args = [a.replace(M, str(tiny_model_dir)) for a in args]
    before = snapshot(ws)
    res = runner.invoke(app, [*args, "--quiet"] if args[0] not in ("deflicker", "info", "report", "batch") else args)
    lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.output
    assert snapshot(ws) == before


def run_api(ws, call):
    try:
        call()
    except BadInput as exc:
        return str(exc)
    return None


def api_cases(ws: Path, model: str):
    img = str(ws / "img.png")
    common = {"model": model, "progress": False}
    return [
        (lambda: vidzero.extend(img, "x", frames=0, **common), "frames must be between 2"),
        (lambda: vidzero.extend(img, "x", steps=0, **common), "steps must be between 1"),
        (lambda: vidzero.extend(img, "x", steps=2.5, **common), "steps must be a whole number"),
        (lambda: vidzero.extend(img, "x", seed=-1, **common), "seed must be between 0"),
        (lambda: vidzero.extend(img, "x", generator="seed", **common), "generator must be a torch.Generator"),
        (lambda: vidzero.extend(img, "x", dtype=torch.float16, **common), "dtype fp16 is not supported on the CPU"),
        (lambda: vidzero.extend(np.zeros((4, 4), np.uint8), "x", **common), "expected an (H, W, 3) uint8"),
        (lambda: vidzero.extend(img, {0: "a", 3.5: "b"}, **common), "prompt_schedule: frame 3.5 must be a whole"),
        (lambda: vidzero.extend(img, {"0": "a"}, **common), "prompt_schedule: frame '0' must be a whole frame"),
        (lambda: vidzero.extend(img, "x", output_type="tensor", **common), "unknown output_type"),
        (lambda: vidzero.extend(img, "x", callback=3, **common), "callback must be callable"),
        (lambda: vidzero.extend(img, "x", callback_on_step_end="stop", **common), "callback_on_step_end must be"),
        (lambda: vidzero.infill("x", 10, keys={2.5: img}, **common), "keys positions must be whole"),
        (lambda: vidzero.infill("x", 0, keys={0: img}, **common), "frames must be between 2"),
        (lambda: vidzero.infill_between(img, img, "x", frames="8", **common), "frames must be a whole number"),
        (lambda: vidzero.extend(img, "x", guidance_steps=(1, 2), **common), "guidance_steps (1, 2) should look like"),
        (lambda: vidzero.predict(str(ws / "clip.mp4"), "x", frames=0, **common), "frames must be between 1"),
        (lambda: vidzero.generate("x", guidance=float("inf"), **common), "guidance must be a finite number"),
        (lambda: vidzero.load_backbone(model, dtype="int8"), "unknown dtype 'int8'"),
        (lambda: vidzero.extend(str(ws / "img\x00.png"), "x", **common), "holds a NUL byte"),
        (lambda: vidzero.predict(str(ws / "clip.mp4") + "\x00", "x", **common), "holds a NUL byte"),
        (lambda: vidzero.extend(img, "x", steps=2, num_inference_steps=3, **common), "give steps or num_inference"),
        (lambda: vidzero.extend(img, "x", 4, num_frames=5, **common), "give frames or num_frames, not both"),
        (lambda: vidzero.extend(img, "x", dps=-1.0, **common), "dps must be in"),
    ]


def test_bad_python_input_raises_bad_input_naming_the_argument(ws, tiny_model_dir):
    before = snapshot(ws)
    cases = api_cases(ws, str(tiny_model_dir))
    for i, (call, message) in enumerate(cases):
        got = run_api(ws, call)
        assert got is not None and message in got and "--" not in got, (i, got)
    with pytest.raises(TypeError, match="stepz"):  # a misspelt keyword: Python's own error, as for any function
        vidzero.extend(str(ws / "img.png"), "x", stepz=3, model=str(tiny_model_dir))
    assert snapshot(ws) == before


def test_a_valid_16_bit_greyscale_image_is_read_right(ws, tiny_model_dir, tmp_path):
    ramp = (np.tile(np.linspace(0, 1, 16), (16, 1)) * 65535).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "grey16.png")
    run = vidzero.extend(
        tmp_path / "grey16.png", "x", frames=2, model=str(tiny_model_dir), steps=1, resample=0, progress=False
    )
    first = next(iter(run)).image
    assert first[0, 0, 0] == 0 and first[0, -1, 0] > 200  # not all white
    inputs = json.loads(json.dumps(run.manifest()["spec"]["inputs"]))  # the record is JSON as it is
    assert inputs["image"] == str(tmp_path / "grey16.png") and inputs["prompt"] == "x" and inputs["frames"] == 2


def test_force_never_replaces_a_frames_folder_whose_frame_the_user_retouched(tiny_model_dir, image_file, tmp_path):
    out = tmp_path / "frames"
    args = ["extend", str(image_file), "x", "-o", str(out), "--model", str(tiny_model_dir), "--frames", "3"]
    args += ["--steps", "1", "--quiet"]
    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, [*args, "--force", "--seed", "2"]).exit_code == 0  # its own folder: replaced
    retouched = np.asarray(Image.open(out / "000001.png")).copy()
    retouched[0, 0] = 255 - retouched[0, 0]
    Image.fromarray(retouched).save(out / "000001.png")
    res = runner.invoke(app, [*args, "--force"])
    assert res.exit_code == 2 and "was not written by vidzero" in res.output, res.output
    assert np.array_equal(np.asarray(Image.open(out / "000001.png")), retouched)
