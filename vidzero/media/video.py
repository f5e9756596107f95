"""Videos in and out.

Video files go through PyAV: `.mp4` (H.264 or HEVC), `.webm` (VP9 or AV1), `.gif` (an adaptive
palette per frame, ffmpeg's palettegen/paletteuse); a name with no extension is a folder of PNG
frames. Encoding is deterministic: each RGB frame is converted to the codec's pixel format
explicitly and the encoder runs with a fixed thread count, so the same frames give the same
bytes (which is what lets a resumed run finish to the file an uninterrupted run writes).
Everything is written atomically (see vidzero.media.outputs).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.filter
import numpy as np

from vidzero.errors import BadInput
from vidzero.media.images import IMAGE_SUFFIXES, fit_frame, open_image
from vidzero.media.outputs import (
    DEFAULT_FPS,
    FRAME_FOLDER,
    check_input_file,
    check_output,
    clean_path,
    discard,
    output_kind,
    temporary_sibling,
    write_errors,
)
from vidzero.media.pictures import write_png

# codec name -> (PyAV encoder, pixel format, default crf, crf range)
CODECS = {
    "h264": ("libx264", "yuv420p", 16, 51),
    "hevc": ("libx265", "yuv420p", 18, 51),
    "vp9": ("libvpx-vp9", "yuv420p", 26, 63),
    "av1": ("libsvtav1", "yuv420p", 30, 63),
}
DEFAULT_CODEC = {".mp4": "h264", ".webm": "vp9"}
CONTAINER_CODECS = {".mp4": ("h264", "hevc"), ".webm": ("vp9", "av1"), ".gif": ()}


# ---------------------------------------------------------------------- videos out
MAX_GIF_FPS = 50.0  # a GIF's frame delays count hundredths of a second; viewers slow shorter ones down


def check_codec(kind: str, codec: str | None, crf: int | None, fps: float | None = None) -> str | None:
    """The codec for an output kind (its default when None); a clear error for a mismatch."""
    if kind == ".gif" and fps is not None and fps > MAX_GIF_FPS:
        raise BadInput(f"{{option}} {fps:g} is too fast for a .gif (at most {MAX_GIF_FPS:g}; use .mp4)", "fps")
    if kind in CONTAINER_CODECS and codec is not None and codec not in CONTAINER_CODECS[kind]:
        allowed = ", ".join(CONTAINER_CODECS[kind]) or "no codec option"
        raise BadInput(f"{{option}} {codec!r} does not go in a {kind} file (use {allowed})", "codec")
    codec = codec or DEFAULT_CODEC.get(kind)
    if crf is not None and codec in CODECS and crf > CODECS[codec][3]:
        raise BadInput(f"{{option}} for {codec} must be between 0 and {CODECS[codec][3]}, got {crf}", "crf")
    return codec


class VideoWriter:
    """Streaming, atomic video writer: frames are encoded as they come, the file appears on close.

    The caller checks the output path (vidzero.outputs.check_output) before writing.
    """

    def __init__(
        self, path: str | Path, fps: float = DEFAULT_FPS, codec: str | None = None, crf: int | None = None
    ) -> None:
        self.kind = output_kind(path)
        self.path = clean_path(path)
        self.fps = fps
        self.codec = check_codec(self.kind, codec, crf)
        self.crf = crf
        self.count = 0
        self._container: av.container.OutputContainer | None = None
        self._stream: Any = None  # av's VideoStream, once the first frame sets its size
        self._palette: av.filter.Graph | None = None
        self.tmp = temporary_sibling(self.path, ".part" + (self.path.suffix or ""))
        if self.kind == FRAME_FOLDER:
            self.tmp.unlink()
            with write_errors(self.path):
                self.tmp.mkdir()

    def _open(self, width: int, height: int) -> None:
        rate = Fraction(self.fps).limit_denominator(1001)
        with write_errors(self.path, cleanup=self.tmp):
            # bitexact: no random segment ids or timestamps in the container, same frames same bytes
            self._container = av.open(
                str(self.tmp), mode="w", format=self.kind.lstrip("."), options={"fflags": "+bitexact"}
            )
        if self.kind == ".gif":
            stream = self._container.add_stream("gif", rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "pal8"
            self._palette = palette_graph(width, height, rate)
        else:
            assert self.codec is not None  # check_codec gives every container but gif a codec
            encoder, pix_fmt, default_crf, _ = CODECS[self.codec]
            stream = self._container.add_stream(encoder, rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
            crf = str(default_crf if self.crf is None else self.crf)
            # A resumed run must write exactly what an uninterrupted one writes. One encoder
            # thread: threaded encoders do not promise the same bytes under load. No MB-tree
            # (x264), no CU-tree and no B-frames (x265): there the encoders read memory they never
            # wrote, so the bytes depended on what the process had allocated before (the same
            # frames encoded differently with MALLOC_PERTURB_ set; tests/test_io.py checks this).
            options = {
                "libx264": {"crf": crf, "preset": "medium", "x264-params": "threads=1:lookahead-threads=1:mbtree=0"},
                "libx265": {
                    "crf": crf,
                    "preset": "medium",
                    "x265-params": "pools=1:frame-threads=1:log-level=error:cutree=0:bframes=0",
                },
                "libvpx-vp9": {"crf": crf, "b": "0", "row-mt": "0"},
                "libsvtav1": {"crf": crf, "preset": "8", "svtav1-params": "lp=1"},
            }[encoder]
            stream.options = options
            stream.codec_context.thread_count = 1
            stream.codec_context.thread_type = "NONE"
        self._stream = stream

    def write(self, frame: np.ndarray) -> None:
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected (H, W, 3) uint8 frames, got {frame.dtype} {frame.shape}")
        with write_errors(self.path, cleanup=self.tmp):
            if self.kind == FRAME_FOLDER:
                write_png(self.tmp / f"{self.count:06d}.png", frame, atomic=False)
            else:
                if self._container is None:
                    h, w = frame.shape[:2]
                    if self.kind != ".gif" and (h % 2 or w % 2):
                        raise BadInput(f"{self.kind} needs even frame sizes, got {w}x{h}")
                    self._open(w, h)
                video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
                video_frame.pts = self.count
                video_frame.time_base = 1 / self._stream.average_rate
                if self._palette is not None:
                    self._palette.push(video_frame)
                    self._mux(pull_all(self._palette))
                else:
                    self._mux([yuv420p_frame(frame, self.count, video_frame.time_base)])
        self.count += 1

    def _mux(self, frames: Iterable[av.VideoFrame | None]) -> None:
        assert self._container is not None
        with zeroed_allocations():
            for vf in frames:
                for packet in self._stream.encode(vf):
                    self._container.mux(packet)

    def close(self) -> Path:
        """Flush and leave the finished file at `self.tmp`; `commit` moves it into place."""
        with write_errors(self.path, cleanup=self.tmp):
            if self.kind != FRAME_FOLDER:
                if self._container is None:
                    raise BadInput("no frames to write")
                if self._palette is not None:
                    self._palette.push(None)
                    self._mux(pull_all(self._palette))
                self._mux([None])
                self._container.close()
        return self.tmp

    def commit(self) -> Path:
        with write_errors(self.path, cleanup=self.tmp):
            os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            if self._container is not None:
                self._container.close()
        discard(self.tmp)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            self.commit()
        else:
            self.abort()


M_PERTURB = -6  # glibc's mallopt parameter behind MALLOC_PERTURB_


@contextlib.contextmanager
def zeroed_allocations() -> Iterator[None]:
    """While encoding, glibc hands out zero-filled memory. Encoders that read memory they never
    wrote (seen in x264 and x265 on small frames) then read zeros, not whatever the process had
    there before, so the same frames give the same bytes in any process at any moment. Elsewhere
    (another C library) this does nothing; the codec settings above avoid the known cases."""
    libc = _glibc()
    if libc is None:
        yield
        return
    libc.mallopt(M_PERTURB, 0xFF)  # new blocks are filled with 0xFF ^ 0xFF = 0
    try:
        yield
    finally:
        before = os.environ.get("MALLOC_PERTURB_", "0")
        libc.mallopt(M_PERTURB, int(before) & 0xFF if before.isdigit() else 0)


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
        return libc
    except (OSError, AttributeError):
        return None


def rgb_to_yuv420p(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> the (H * 3 / 2, W) yuv420p planes, BT.601 limited range (what
    decoders assume for untagged video), chroma from 2x2 block sums. Integer arithmetic, here
    rather than in swscale (whose SIMD paths depend on buffer alignment) or in floats (whose
    sums depend on the order): the same frame always gives the same bytes."""
    rgb = frame.astype(np.int64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    h, w = frame.shape[:2]
    sums = rgb.reshape(h // 2, 2, w // 2, 2, 3).sum(axis=(1, 3))  # exact in integers
    sr, sg, sb = sums[..., 0], sums[..., 1], sums[..., 2]
    u = ((-38 * sr - 74 * sg + 112 * sb + 512) >> 10) + 128
    v = ((112 * sr - 94 * sg - 18 * sb + 512) >> 10) + 128
    planes = [np.clip(p, 0, 255).astype(np.uint8).reshape(-1) for p in (y, u, v)]
    # the planes one after the other, as PyAV reads a (H * 3 / 2, W) array (H a multiple of 2,
    # not of 4: the chroma planes need not fill whole rows of W)
    return np.concatenate(planes).reshape(h * 3 // 2, w)


def yuv420p_frame(frame: np.ndarray, index: int, time_base: Fraction) -> av.VideoFrame:
    out = av.VideoFrame.from_ndarray(rgb_to_yuv420p(frame), format="yuv420p")
    out.pts, out.time_base = index, time_base
    return out


def yuv420p_to_rgb(planes: np.ndarray, full_range: bool = False) -> np.ndarray:
    """The inverse of rgb_to_yuv420p (BT.601; limited range unless `full_range`), chroma
    upsampled by repetition, in integers."""
    h = planes.shape[0] * 2 // 3
    w = planes.shape[1]
    flat = planes.reshape(-1)  # the planes one after the other (see rgb_to_yuv420p)
    y = flat[: h * w].reshape(h, w).astype(np.int64)
    u = flat[h * w : h * w * 5 // 4].reshape(h // 2, w // 2).astype(np.int64)
    v = flat[h * w * 5 // 4 :].reshape(h // 2, w // 2).astype(np.int64)
    d, e = (np.repeat(np.repeat(c, 2, axis=0), 2, axis=1) - 128 for c in (u, v))
    if full_range:
        c = 256 * y
        r, g, b = (c + 359 * e + 128) >> 8, (c - 88 * d - 183 * e + 128) >> 8, (c + 454 * d + 128) >> 8
    else:
        c = 298 * (y - 16)
        r, g, b = (c + 409 * e + 128) >> 8, (c - 100 * d - 208 * e + 128) >> 8, (c + 516 * d + 128) >> 8
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def to_rgb24(vf: av.VideoFrame) -> np.ndarray:
    """A decoded frame as RGB, the way players show it: turned by the container's rotation
    (its display matrix, e.g. a phone's -90 tag); 4:2:0 video converted here (deterministic, see
    rgb_to_yuv420p)."""
    name = vf.format.name
    if name in ("yuv420p", "yuvj420p") and vf.width % 2 == 0 and vf.height % 2 == 0:
        rgb = yuv420p_to_rgb(vf.to_ndarray(), full_range=name == "yuvj420p")
    else:
        rgb = vf.to_ndarray(format="rgb24")
    turns = round((vf.rotation or 0) / 90) % 4  # counter-clockwise quarter turns, as players apply it
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def palette_graph(width: int, height: int, rate: Fraction) -> av.filter.Graph:
    """ffmpeg's palettegen + paletteuse, a new palette for every frame (streaming)."""
    graph = av.filter.Graph()
    source = graph.add_buffer(width=width, height=height, format="rgb24", time_base=1 / rate)
    split = graph.add("split")
    generate = graph.add("palettegen", "stats_mode=single")
    use = graph.add("paletteuse", "new=1")
    sink = graph.add("buffersink")
    source.link_to(split)
    split.link_to(generate, 0, 0)
    split.link_to(use, 1, 0)
    generate.link_to(use, 0, 1)
    use.link_to(sink)
    graph.configure()
    return graph


def pull_all(graph: av.filter.Graph) -> list[av.VideoFrame]:
    frames = []
    while True:
        try:
            frames.append(graph.pull())
        except (av.error.BlockingIOError, av.error.EOFError):
            return frames


def write_video(
    frames: Iterable[np.ndarray],
    path: str | Path,
    fps: float = DEFAULT_FPS,
    force: bool = False,
    codec: str | None = None,
    crf: int | None = None,
) -> Path:
    """Write frames to `path` (checked like any output, no sidecars)."""
    check_output(path, force, sidecars=[])
    with VideoWriter(path, fps, codec, crf) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.path


# ---------------------------------------------------------------------- videos in
def frame_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def no_video(container: av.container.InputContainer, path: Path) -> None:
    """Refuse a container without a video stream: one with other streams holds no video; one
    with none at all lost what describes them (a file cut short)."""
    if container.streams.video:
        return
    kinds = sorted({s.type for s in container.streams})
    if not kinds:
        raise BadInput(f"cannot read video {path}: not a video, or truncated or corrupt (it holds no streams)")
    raise BadInput(f"{path} has no video stream (it holds {', '.join(kinds)})")


def video_info(path: str | Path) -> dict:
    path = Path(path)
    check_input_file(path, "video")
    if path.is_dir():
        frames = frame_files(path)
        if not frames:
            raise BadInput(f"no image frames in folder {path}")
        return {"frames": len(frames), "fps": DEFAULT_FPS}
    try:
        with av.open(str(path)) as container:
            no_video(container, path)
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 8)
            return {"frames": stream.frames, "fps": fps, "width": stream.width, "height": stream.height}
    except BadInput:
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise BadInput(
            f"cannot read video {path}: not a video, or truncated or corrupt ({type(exc).__name__})"
        ) from None


def read_video(path: str | Path, width: int | None = None, height: int | None = None) -> Iterator[np.ndarray]:
    """Frames of a video file or image folder as (H, W, 3) uint8, optionally fitted to a size."""
    path = Path(path)
    check_input_file(path, "video")
    if path.is_dir():
        for frame_path in frame_files(path):
            frame = open_image(frame_path, "frame")
            yield fit_frame(frame, width, height) if width and height else frame
        return
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise BadInput(
            f"cannot read video {path}: not a video, or truncated or corrupt ({type(exc).__name__})"
        ) from None
    with container:
        no_video(container, path)
        try:
            for vf in container.decode(video=0):
                frame = to_rgb24(vf)
                yield fit_frame(frame, width, height) if width and height else frame
        except (av.error.FFmpegError, ValueError) as exc:
            raise BadInput(f"cannot decode video {path}: truncated or corrupt data ({type(exc).__name__})") from None
