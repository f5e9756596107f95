"""Images and videos in and out; run manifests and contact sheets.

Video files go through PyAV (mp4/h264, webm/vp9, gif), a path with no extension or ending in
"/" is a folder of PNG frames. Every output is written to a temporary name next to its final
place and renamed when complete, so an interrupted run never leaves a half-written file under
the name the user asked for.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from vidzero.errors import BadInput

VIDEO_FORMATS = {".mp4": ("mp4", "libx264", "yuv420p"), ".webm": ("webm", "libvpx-vp9", "yuv420p"), ".gif": ("gif", "gif", "rgb8")}
FRAME_FOLDER = "folder of PNG frames"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


# ---------------------------------------------------------------------- images in
def fit_frame(image: Image.Image | np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre-crop to the target aspect ratio and resize (the release's preprocessing), uint8 RGB."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image = image.convert("RGB")
    if image.size != (width, height):
        # Crop first, then resize: resampling the uncropped image would bleed pixels from
        # outside the crop into the border rows.
        src_w, src_h = image.size
        scale = max(width / src_w, height / src_h)
        crop_w, crop_h = round(width / scale), round(height / scale)
        left, top = (src_w - crop_w) // 2, (src_h - crop_h) // 2
        image = image.crop((left, top, left + crop_w, top + crop_h)).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8).copy()


def load_image(path: str | Path, width: int, height: int) -> np.ndarray:
    path = Path(path)
    if not path.exists():
        raise BadInput(f"image not found: {path}")
    if path.is_dir():
        raise BadInput(f"expected an image file, got a folder: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            return fit_frame(img, width, height)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise BadInput(f"cannot read image {path}: not an image or corrupt ({type(exc).__name__})") from exc


# ---------------------------------------------------------------------- outputs
def output_kind(path: str | Path) -> str:
    """The container for an output path, or a clear error for an unknown extension."""
    p = str(path)
    suffix = Path(p).suffix.lower()
    if p.endswith(("/", os.sep)) or suffix == "":
        return FRAME_FOLDER
    if suffix not in VIDEO_FORMATS:
        raise BadInput(f"unknown output extension {suffix!r} (use .mp4, .webm, .gif, or a folder name for PNG frames)")
    return suffix


def sidecar(path: str | Path, suffix: str) -> Path:
    """A file next to an output: out.mp4 (or the folder out/) -> out<suffix>."""
    p = Path(str(path).rstrip("/" + os.sep))
    base = p.with_suffix("") if p.suffix else p
    return base.parent / (base.name + suffix)


def sidecar_paths(path: str | Path) -> tuple[Path, Path]:
    """(manifest JSON, contact-sheet PNG) written next to an output."""
    return sidecar(path, ".manifest.json"), sidecar(path, ".contact.png")


def check_output(path: str | Path, force: bool) -> Path:
    """Refuse unknown extensions, missing or unwritable folders, and (without force) existing outputs."""
    kind = output_kind(path)
    out = Path(str(path).rstrip("/" + os.sep))
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise BadInput(f"output folder does not exist: {parent}")
    if not os.access(parent, os.W_OK):
        raise BadInput(f"output folder is not writable: {parent}")
    if out.exists() and not force:
        raise BadInput(f"output exists: {out} (use --force to overwrite)")
    if out.exists() and kind == FRAME_FOLDER and not out.is_dir():
        raise BadInput(f"output {out} exists and is not a folder")
    return out


class VideoWriter:
    """Streaming, atomic video writer: frames are encoded as they come, the file appears on close."""

    def __init__(self, path: str | Path, fps: float = 8.0, force: bool = False, quality: int = 16) -> None:
        self.kind = output_kind(path)
        self.path = check_output(path, force)
        self.fps = fps
        self.quality = quality
        self.count = 0
        self._container: av.container.OutputContainer | None = None
        self._stream = None
        self.tmp = temporary_sibling(self.path, ".part" + (self.path.suffix or ""))
        if self.kind == FRAME_FOLDER:
            self.tmp.unlink()
            self.tmp.mkdir()

    def _open(self, width: int, height: int) -> None:
        fmt, codec, pix_fmt = VIDEO_FORMATS[self.kind]
        self._container = av.open(str(self.tmp), mode="w", format=fmt)
        rate = Fraction(self.fps).limit_denominator(1001)
        stream = self._container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if codec == "libx264":
            stream.options = {"crf": str(self.quality), "preset": "medium"}
        elif codec == "libvpx-vp9":
            stream.options = {"crf": str(self.quality + 10), "b": "0"}
        self._stream = stream

    def write(self, frame: np.ndarray) -> None:
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected (H, W, 3) uint8 frames, got {frame.dtype} {frame.shape}")
        if self.kind == FRAME_FOLDER:
            Image.fromarray(frame).save(self.tmp / f"{self.count:06d}.png")
        else:
            if self._container is None:
                h, w = frame.shape[:2]
                if self.kind != ".gif" and (h % 2 or w % 2):
                    raise BadInput(f"{self.kind} needs even frame sizes, got {w}x{h}")
                self._open(w, h)
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            for packet in self._stream.encode(video_frame):
                self._container.mux(packet)
        self.count += 1

    def close(self) -> Path:
        """Flush and move the finished file into place."""
        if self.kind != FRAME_FOLDER:
            if self._container is None:
                raise BadInput("no frames to write")
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
        if self.path.exists():  # only reachable with force
            if self.path.is_dir():
                shutil.rmtree(self.path)
            else:
                self.path.unlink()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            if self._container is not None:
                self._container.close()
        if self.tmp.is_dir():
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(frames: Iterable[np.ndarray], path: str | Path, fps: float = 8.0, force: bool = False) -> Path:
    with VideoWriter(path, fps, force) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.path


# ---------------------------------------------------------------------- videos in
def video_info(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise BadInput(f"video not found: {path}")
    if path.is_dir():
        frames = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not frames:
            raise BadInput(f"no image frames in folder {path}")
        return {"frames": len(frames), "fps": 8.0}
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise BadInput(f"{path} has no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 8)
            return {"frames": stream.frames, "fps": fps, "width": stream.width, "height": stream.height}
    except av.error.FFmpegError as exc:
        raise BadInput(f"cannot read video {path}: not a video or corrupt") from exc


def read_video(path: str | Path, width: int | None = None, height: int | None = None) -> Iterator[np.ndarray]:
    """Frames of a video file or PNG folder as (H, W, 3) uint8, optionally fitted to a size."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"video not found: {path}")
    if path.is_dir():
        for frame_path in sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            frame = load_image(frame_path, width, height) if width else np.asarray(Image.open(frame_path).convert("RGB"))
            yield frame
        return
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise BadInput(f"cannot read video {path}: not a video or corrupt") from exc
    with container:
        if not container.streams.video:
            raise BadInput(f"{path} has no video stream")
        try:
            for vf in container.decode(video=0):
                frame = vf.to_ndarray(format="rgb24")
                yield fit_frame(frame, width, height) if width else frame
        except av.error.FFmpegError as exc:
            raise BadInput(f"cannot decode video {path}: corrupt data") from exc


# ---------------------------------------------------------------------- sidecars
def temporary_sibling(path: Path, suffix: str = ".part") -> Path:
    """A new empty hidden file beside `path`, to be written and then moved onto it atomically.

    mkstemp makes it private (0600); it gets the permissions any new file gets instead (umask
    applied), or every output written through it would end up unreadable to other users.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.fchmod(fd, 0o666 & ~_process_umask())
    os.close(fd)
    return Path(tmp)


@functools.cache
def _process_umask() -> int:
    # The only portable way to read the umask is to set it and set it back; done once per
    # process (at the first write), so no other thread can create a file in between later on.
    umask = os.umask(0o077)
    os.umask(umask)
    return umask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = temporary_sibling(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_manifest(path: Path, manifest: dict) -> None:
    atomic_write_bytes(path, json.dumps(manifest, indent=2, default=str).encode())


def contact_sheet(frames: list[tuple[int, np.ndarray]], columns: int = 8, scale: int = 0) -> np.ndarray:
    """A grid of frames labelled with their index; small frames are enlarged for viewing."""
    if not frames:
        raise ValueError("no frames")
    h, w = frames[0][1].shape[:2]
    scale = scale or max(1, 128 // max(h, w))
    tiles = []
    for index, frame in frames:
        tile = cv2.resize(frame, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST) if scale > 1 else frame.copy()
        tile = cv2.copyMakeBorder(tile, 14, 2, 2, 2, cv2.BORDER_CONSTANT, value=(255, 255, 255))
        cv2.putText(tile, str(index), (3, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(tile)
    columns = min(columns, len(tiles))
    while len(tiles) % columns:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.concatenate(tiles[i : i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=0)


def read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise BadInput(f"cannot read frame {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_png(path: Path, image: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {path}")
    atomic_write_bytes(path, buf.tobytes())


def sample_indices(length: int, count: int = 16) -> list[int]:
    """Evenly spread frame indices (always the first and the last) for a contact sheet."""
    if length <= count:
        return list(range(length))
    return sorted({round(i * (length - 1) / (count - 1)) for i in range(count)})
