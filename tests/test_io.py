"""Video/image IO: every image mode, every container and codec, deterministic and atomic writes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vidzero.errors import BadInput
from vidzero.media.images import load_image, open_image
from vidzero.media.outputs import _process_umask, atomic_write_bytes, sha256_of
from vidzero.media.pictures import contact_sheet, sample_indices
from vidzero.media.video import VideoWriter, read_video, write_video


def frames(n=6, size=32):
    """Smooth content with a moving square (random noise is not what codecs are for)."""
    yy, xx = np.mgrid[0:size, 0:size]
    out = []
    for i in range(n):
        img = np.stack([xx * 255 // size, yy * 255 // size, np.full_like(xx, 90)], -1).astype(np.uint8)
        img[8:16, 4 + 2 * i : 12 + 2 * i] = (250, 40, 40)
        out.append(img)
    return out


def psnr(a, b):
    mse = np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)


@pytest.mark.parametrize(
    "name,codec,min_psnr",
    [
        ("v.mp4", None, 30),
        ("v.mp4", "hevc", 30),
        ("v.webm", None, 30),
        ("v.webm", "av1", 28),
        ("v.gif", None, 30),
        ("frames", None, 99),
    ],
)
def test_roundtrip_formats(tmp_path, name, codec, min_psnr):
    src = frames()
    path = write_video(src, tmp_path / name, fps=8, codec=codec)
    back = list(read_video(path))
    assert len(back) == len(src) and back[0].shape == src[0].shape
    assert np.mean([psnr(a, b) for a, b in zip(src, back)]) >= min_psnr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_gif_palette_is_adaptive():
    """A smooth gradient keeps its detail: each frame gets its own palette (a fixed 3-3-2 palette
    measured 21 dB on this content)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        src = frames(4, 64)
        back = list(read_video(write_video(src, Path(d) / "g.gif")))
        assert np.mean([psnr(a, b) for a, b in zip(src, back)]) > 30


@pytest.mark.parametrize("name", ["v.mp4", "v.webm", "v.gif"])
def test_encoding_is_deterministic(tmp_path, name):
    src = frames(8)
    a = write_video(src, tmp_path / ("a" + name))
    b = write_video(src, tmp_path / ("b" + name))
    assert sha256_of(a) == sha256_of(b)


ENCODE = """
import sys
import numpy as np
from vidzero.media.video import write_video
yy, xx = np.mgrid[0:64, 0:64]
rng = np.random.default_rng(7)
frames = []
for i in range(12):  # a square moving over a gradient, then noise: each has shown the problem
    img = np.stack([xx * 4, yy * 4, np.full_like(xx, 90)], -1).astype(np.uint8)
    img[20:34, 6 + 2 * i : 20 + 2 * i] = (250, 40, 40)
    frames.append(img if i < 6 else rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
write_video(frames, sys.argv[1], codec=sys.argv[2])
"""


@pytest.mark.parametrize("name,codec", [(".mp4", "h264"), (".mp4", "hevc")])
def test_encoding_does_not_depend_on_what_the_process_allocated_before(tmp_path, name, codec):
    """glibc's MALLOC_PERTURB_ fills new memory with a byte pattern: an encoder that reads memory
    it never wrote (x264's MB-tree, x265's CU-tree on small frames) gives other bytes with it."""
    digests = set()
    for perturb in ("0", "85", "170"):
        out = tmp_path / f"p{perturb}{name}"
        env = {**os.environ, "MALLOC_PERTURB_": perturb, "OMP_NUM_THREADS": "1"}
        subprocess.run([sys.executable, "-c", ENCODE, str(out), codec], env=env, check=True, timeout=120)
        digests.add(sha256_of(out))
    assert len(digests) == 1


def test_crf_and_codec_choices(tmp_path):
    src = frames(6)
    small = write_video(src, tmp_path / "small.mp4", crf=40)
    large = write_video(src, tmp_path / "large.mp4", crf=5)
    assert small.stat().st_size < large.stat().st_size
    with pytest.raises(BadInput, match="does not go in a .mp4"):
        VideoWriter(tmp_path / "x.mp4", codec="vp9")
    with pytest.raises(BadInput, match="between 0 and 51"):
        VideoWriter(tmp_path / "y.mp4", crf=60)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_outputs_get_ordinary_file_permissions(tmp_path):
    """Atomic writes go through private temporary files; what lands must be readable like any new
    file (here umask 022: 0644), frames, sidecars, state files and videos alike."""
    import torch

    from vidzero.runs.state import save_state

    old = os.umask(0o022)
    _process_umask.cache_clear()  # read once per process; this test sets its own
    try:
        atomic_write_bytes(tmp_path / "run.json", b"{}")
        save_state(tmp_path / "run.state.safetensors", {}, {"x": torch.zeros(2)})
        folder = write_video(frames(2), tmp_path / "frames")
        video = write_video(frames(2), tmp_path / "v.mp4")
    finally:
        os.umask(old)
        _process_umask.cache_clear()
    for path in [tmp_path / "run.json", tmp_path / "run.state.safetensors", video, *folder.iterdir()]:
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_failed_write_leaves_nothing(tmp_path):
    def broken():
        yield frames(1)[0]
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_video(broken(), tmp_path / "v.mp4")
    assert list(tmp_path.iterdir()) == []


def test_full_disk_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    real_open = open

    def full(path, mode="r", *args, **kwargs):
        if "w" in mode and str(path).startswith(str(tmp_path)):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", full)
    with pytest.raises(BadInput, match="no space left"):
        atomic_write_bytes(tmp_path / "x.json", b"{}")
    assert list(tmp_path.iterdir()) == []
    import torch

    from vidzero.runs.state import save_state

    with pytest.raises(BadInput, match="no space left"):  # a state file too: one line, no temporary
        save_state(tmp_path / "o.state.safetensors", {}, {"x": torch.zeros(8)})
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- images in
def test_images_are_centre_cropped_and_resized(tmp_path):
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, 20:60] = 255  # the centre square is white
    Image.fromarray(img).save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png", 16, 16)
    assert out.shape == (16, 16, 3) and out.min() == 255


def test_a_32_bit_greyscale_image_is_scaled_from_its_range(tmp_path):
    ramp = (np.linspace(0, 1, 64 * 64).reshape(64, 64) * (2**31 - 1)).astype(np.int32)
    Image.fromarray(ramp, mode="I").save(tmp_path / "i32.tif")
    out = open_image(tmp_path / "i32.tif")
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255 and abs(float(out.mean()) - 127.5) < 1


def grey_ramp() -> np.ndarray:
    return np.tile(np.linspace(0, 1, 32), (8, 1))


@pytest.mark.parametrize("mode", ["I;16", "I", "L", "1", "P", "LA", "RGBA", "CMYK", "F", "RGB", "YCbCr"])
def test_every_image_mode_comes_out_right(tmp_path, mode):
    """Grey ramps in every mode Pillow reads come out as the same 8-bit RGB ramp (16-bit ones
    scaled, not clipped to white); transparent pixels over white."""
    ramp = grey_ramp()
    if mode == "I;16":
        img = Image.fromarray((ramp * 65535).astype(np.uint16))
    elif mode == "I":
        img = Image.fromarray((ramp * 65535).astype(np.int32), mode="I")
    elif mode == "F":
        img = Image.fromarray(ramp.astype(np.float32), mode="F")
    elif mode == "1":
        img = Image.fromarray((ramp * 255).astype(np.uint8)).convert("1", dither=Image.Dither.NONE)
    else:
        img = Image.fromarray((ramp * 255).astype(np.uint8)).convert(mode)
    ext = {"F": ".tiff", "I": ".tiff", "CMYK": ".tiff", "YCbCr": ".jpg"}.get(mode, ".png")
    if mode in ("I;16",):
        ext = ".png"
    path = tmp_path / f"ramp{ext}"
    img.save(path, quality=100) if ext == ".jpg" else img.save(path)
    out = open_image(path)
    assert out.shape == (8, 32, 3) and out.dtype == np.uint8
    expected = np.rint(ramp * 255)
    if mode == "1":
        expected = np.where(ramp * 255 >= 128, 255, 0)
    tolerance = 3 if mode in ("CMYK", "YCbCr") else 1
    assert np.abs(out[..., 0].astype(float) - expected).max() <= tolerance, mode
    assert np.array_equal(out[..., 0], out[..., 2]) or mode in ("CMYK", "YCbCr")


def test_transparency_is_composited_over_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque red, bottom half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    out = open_image(tmp_path / "t.png")
    assert tuple(out[0, 0]) == (200, 0, 0) and tuple(out[3, 0]) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path):
    img = np.zeros((10, 20, 3), np.uint8)
    img[:, :10] = 255  # left half white
    pil = Image.fromarray(img)
    exif = pil.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    pil.save(tmp_path / "r.jpg", exif=exif, quality=100)
    out = open_image(tmp_path / "r.jpg")
    assert out.shape == (20, 10, 3) and out[:10].mean() > 200 and out[10:].mean() < 50


def test_absurd_sizes_are_refused_before_decoding(tmp_path):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
    (tmp_path / "huge.png").write_bytes(header + chunk(b"IEND", b""))
    with pytest.raises(BadInput, match="megapixels"):
        open_image(tmp_path / "huge.png")


def test_corrupt_video_is_a_clear_error(tmp_path):
    (tmp_path / "x.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(BadInput, match="truncated or corrupt"):
        list(read_video(tmp_path / "x.mp4"))
    good = write_video(frames(8), tmp_path / "g.mp4")
    (tmp_path / "t.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(BadInput, match="truncated or corrupt"):
        list(read_video(tmp_path / "t.mp4"))


def test_contact_sheet_and_indices():
    assert sample_indices(5) == [0, 1, 2, 3, 4]
    idx = sample_indices(128)
    assert idx[0] == 0 and idx[-1] == 127 and len(idx) == 16
    sheet = contact_sheet([(i, f) for i, f in enumerate(frames(5, 16))], columns=4)
    assert sheet.ndim == 3 and sheet.shape[1] == 4 * (16 * 8 + 4)


def rotated_clip(path, rotation: int) -> np.ndarray:
    """A 3-frame clip of a 32x64 frame with a red block at its top left, tagged with a display
    rotation as phones tag theirs; returns the frame as stored."""
    import av

    frame = np.zeros((32, 64, 3), np.uint8)
    frame[:8, :16] = (255, 0, 0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(rotation)
        for _ in range(3):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return frame


@pytest.mark.parametrize("rotation,turns", [(-90, 3), (90, 1), (180, 2)])
def test_clips_are_read_turned_as_players_show_them(tmp_path, rotation, turns):
    """The display matrix's rotation is applied as ffmpeg's players apply it (measured against
    ffmpeg's autorotation: a -90 tag shows the stored frame turned a quarter clockwise)."""
    stored = rotated_clip(tmp_path / "phone.mp4", rotation)
    shown = np.rot90(stored, turns)
    frames = list(read_video(tmp_path / "phone.mp4"))
    assert len(frames) == 3 and frames[0].shape == shown.shape
    assert np.abs(frames[0].astype(int) - shown).mean() < 4
    # a tool that writes frames writes them as shown: deflicker keeps the orientation
    from vidzero.tasks.deflicker import DeflickerInputs, deflicker_clip

    deflicker_clip(DeflickerInputs(tmp_path / "phone.mp4"), tmp_path / "out.mp4")
    assert next(iter(read_video(tmp_path / "out.mp4"))).shape == shown.shape


@pytest.mark.parametrize("size", [2, 6, 10])
def test_frames_whose_height_is_not_a_multiple_of_four_round_trip(tmp_path, size):
    rng = np.random.default_rng(size)
    frames = [
        np.full((size, size, 3), 30 * k, np.uint8) + rng.integers(0, 20, (size, size, 3), dtype=np.uint8)
        for k in range(4)
    ]
    write_video(frames, tmp_path / "small.mp4", crf=0)
    back = list(read_video(tmp_path / "small.mp4"))
    assert len(back) == 4 and back[0].shape == (size, size, 3)
    assert max(np.abs(a.astype(int) - b).mean() for a, b in zip(frames, back)) < 12
