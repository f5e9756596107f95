"""vidzero's deflicker against ffmpeg's `deflicker` filter on clips with known synthetic flicker.

    python -m recipes.bench.deflicker [--clips 8] [--frames 48] [--quick]

Clean shapes-world clips get one of three kinds of flicker (global brightness gain, per-channel
colour gain, per-frame gain + offset + slight noise). Both tools then run on the same frames,
fed as raw RGB: vidzero in process, ffmpeg (imageio-ffmpeg's binary or the system's) through
pipes, so that neither side is timed on video coding. Printed side by side: flicker index after
(mean |second temporal difference| of L*), PSNR and SSIM against the clean clip, and ms per
frame. ffmpeg runs with its defaults (size 5, arithmetic mean) and with size 9.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time

import numpy as np

from recipes.shapes import world
from vidzero.quality.flicker import deflicker, flicker_report


def add_flicker(clip: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    n = len(clip)
    x = clip.astype(np.float32)
    if kind == "brightness":
        x = x * rng.normal(1.0, 0.08, (n, 1, 1, 1))
    elif kind == "colour":
        x = x * rng.normal(1.0, 0.06, (n, 1, 1, 3))
    elif kind == "gain+offset":
        x = x * rng.normal(1.0, 0.06, (n, 1, 1, 1)) + rng.normal(0, 6, (n, 1, 1, 3)) + rng.normal(0, 2, x.shape)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except ImportError:
        exe = shutil.which("ffmpeg")
        if exe is None:
            raise SystemExit("needs ffmpeg: pip install imageio-ffmpeg, or the system package") from None
        return exe


def run_ffmpeg(frames: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    n, h, w, _ = frames.shape
    cmd = [
        ffmpeg_exe(),
        "-v",
        "error",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{w}x{h}",
        "-i",
        "-",
        "-vf",
        f"deflicker=size={size}:mode=am",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-",
    ]
    t = time.perf_counter()
    out = subprocess.run(cmd, input=frames.tobytes(), capture_output=True, check=True).stdout
    return np.frombuffer(out, np.uint8).reshape(n, h, w, 3), time.perf_counter() - t


def run_vidzero(frames: np.ndarray) -> tuple[np.ndarray, float]:
    t = time.perf_counter()
    out = np.stack(list(deflicker(iter(frames))))
    return out, time.perf_counter() - t


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    return min(99.0, float(peak_signal_noise_ratio(a, b, data_range=255)))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity as Wang et al. (2004) define it (an 11x11 Gaussian window of sigma
    1.5, K1 0.01, K2 0.03), over the three channels: scikit-image's, with those settings."""
    from skimage.metrics import structural_similarity

    return float(
        structural_similarity(
            a, b, channel_axis=-1, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
    )


def scores(out: np.ndarray, clean: np.ndarray, seconds: float) -> dict:
    return {
        "flicker": flicker_report(iter(out))["flicker_index"],
        "psnr": psnr(clean, out),
        "ssim": float(np.mean([ssim(c, o) for c, o in zip(clean, out)])),
        "ms": 1000 * seconds / len(out),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--quick", action="store_true", help="2 clips of 24 frames")
    a = p.parse_args(argv)
    if a.quick:
        a.clips, a.frames = 2, 24
    rng = np.random.default_rng(0)
    methods = ["input", "vidzero", "ffmpeg size=5", "ffmpeg size=9"]
    table: dict[str, dict[str, list[dict]]] = {}
    for kind in ("brightness", "colour", "gain+offset"):
        rows: dict[str, list[dict]] = {m: [] for m in methods}
        for i in range(a.clips):
            clean = world.make_clip(10**8 + i, frames=a.frames).frames
            noisy = add_flicker(clean, kind, rng)
            rows["input"].append(scores(noisy, clean, 0.0))
            out, sec = run_vidzero(noisy)
            rows["vidzero"].append(scores(out, clean, sec))
            for size in (5, 9):
                out, sec = run_ffmpeg(noisy, size)
                rows[f"ffmpeg size={size}"].append(scores(out, clean, sec))
        table[kind] = rows
    print(f"{a.clips} shapes-world clips x {a.frames} frames per flicker kind; mean over clips\n")
    print("| flicker | method | flicker index (lower better) | PSNR dB | SSIM | ms / frame |")
    print("|---|---|---|---|---|---|")
    for kind, rows in table.items():
        for m in methods:
            r = {k: float(np.mean([x[k] for x in rows[m]])) for k in ("flicker", "psnr", "ssim", "ms")}
            ms = "-" if m == "input" else f"{r['ms']:.1f}"
            print(f"| {kind} | {m} | {r['flicker']:.3f} | {r['psnr']:.2f} | {r['ssim']:.4f} | {ms} |")
    clean_ref = float(
        np.mean(
            [
                flicker_report(iter(world.make_clip(10**8 + i, frames=a.frames).frames))["flicker_index"]
                for i in range(a.clips)
            ]
        )
    )
    print(f"\nflicker index of the clean clips themselves: {clean_ref:.3f}")


if __name__ == "__main__":
    main()
