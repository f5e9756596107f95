"""Video/image IO: formats, atomic writes, refusing to clobber."""

from __future__ import annotations

import numpy as np
import pytest

from vidzero.errors import BadInput
from vidzero.io import (
    VideoWriter,
    atomic_write_bytes,
    contact_sheet,
    load_image,
    read_video,
    sample_indices,
    write_video,
)


def frames(n=6, size=32):
    """Smooth content with a moving square (random noise is not what codecs are for)."""
    yy, xx = np.mgrid[0:size, 0:size]
    out = []
    for i in range(n):
        img = np.stack([xx * 255 // size, yy * 255 // size, np.full_like(xx, 90)], -1).astype(np.uint8)
        img[8:16, 4 + 2 * i : 12 + 2 * i] = (250, 40, 40)
        out.append(img)
    return out


@pytest.mark.parametrize("name,tol", [("v.mp4", 6), ("v.webm", 6), ("v.gif", 20), ("frames", 0)])
def test_roundtrip_formats(tmp_path, name, tol):
    src = frames()
    path = write_video(src, tmp_path / name, fps=8)
    back = list(read_video(path))
    assert len(back) == len(src)
    assert back[0].shape == src[0].shape
    err = np.mean([np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(src, back)])
    assert err <= tol
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]


def test_existing_output_refused_unless_forced(tmp_path):
    path = write_video(frames(), tmp_path / "v.mp4")
    with pytest.raises(BadInput, match="exists"):
        write_video(frames(), path)
    write_video(frames(3), path, force=True)
    assert len(list(read_video(path))) == 3


def test_outputs_get_ordinary_file_permissions(tmp_path):
    """Atomic writes go through private temporary files; what lands must be readable like any new
    file (here umask 022: 0644), frames, sidecars and videos alike."""
    import os

    import vidzero.io
    from vidzero.runstate import save_state

    old = os.umask(0o022)
    vidzero.io._process_umask.cache_clear()  # read once per process; this test sets its own
    try:
        atomic_write_bytes(tmp_path / "run.json", b"{}")
        save_state(tmp_path / "run.state", {})
        folder = write_video(frames(2), tmp_path / "frames")
        video = write_video(frames(2), tmp_path / "v.mp4")
    finally:
        os.umask(old)
        vidzero.io._process_umask.cache_clear()
    for path in [tmp_path / "run.json", tmp_path / "run.state", video, *folder.iterdir()]:
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_failed_write_leaves_nothing(tmp_path):
    def broken():
        yield frames(1)[0]
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_video(broken(), tmp_path / "v.mp4")
    assert list(tmp_path.iterdir()) == []


def test_bad_outputs(tmp_path):
    with pytest.raises(BadInput, match="unknown output extension"):
        VideoWriter(tmp_path / "v.avi")
    with pytest.raises(BadInput, match="does not exist"):
        VideoWriter(tmp_path / "missing" / "v.mp4")


def test_images_are_centre_cropped_and_resized(tmp_path):
    from PIL import Image

    img = np.zeros((40, 80, 3), np.uint8)
    img[:, 20:60] = 255  # the centre square is white
    Image.fromarray(img).save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png", 16, 16)
    assert out.shape == (16, 16, 3) and out.min() == 255
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    with pytest.raises(BadInput, match="not an image or corrupt"):
        load_image(tmp_path / "bad.png", 16, 16)


def test_corrupt_video_is_a_clear_error(tmp_path):
    (tmp_path / "x.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(BadInput):
        list(read_video(tmp_path / "x.mp4"))


def test_contact_sheet_and_indices():
    assert sample_indices(5) == [0, 1, 2, 3, 4]
    idx = sample_indices(128)
    assert idx[0] == 0 and idx[-1] == 127 and len(idx) == 16
    sheet = contact_sheet([(i, f) for i, f in enumerate(frames(5, 16))], columns=4)
    assert sheet.ndim == 3 and sheet.shape[1] == 4 * (16 * 8 + 4)
