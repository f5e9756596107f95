"""Quality bench: the paper's ablation on the shapes world, against training-free baselines.

    python -m recipes.bench_quality --model shapes [--cases 32] [--out docs/bench]     # full
    python -m recipes.bench_quality --model DIR --quick                                # CI-sized

Each case is a held-out shapes-world clip with one moving object: its first frame is the input
image and its caption the prompt; each variant makes a window-length video from them. Variants
(same prompts, seeds and steps for all):

- replacing: one window, the image in slot 0 replaced at every step, the rest generated at once;
- slide random init U=0: repeat-and-slide without DDPM inversion;
- slide U=0 / U=2 / U=4: with inversion, 0, 2 or 4 resampling iterations (U=4: the release);
- slide U=4 latent queue: the queue kept in latents instead of pixels;
- sdedit s=0.5/0.7/0.9: diffusers' VideoToVideoSDPipeline on the image repeated over the window;
- t2v: plain text-to-video from the prompt (motion upper bound, no image fidelity).

Metrics, from the project's evaluator on pixels only: first-frame PSNR against the input;
identity (object found with its colour, per frame) and shape kept; background PSNR against the
input's background; motion direction accuracy against the prompt; smoothness (mean centroid
acceleration in px/frame^2, flicker index); cost (CFG evaluations and seconds per generated
frame, measured in the same run). Writes OUT/quality.json, OUT/quality.md, OUT/quality.png
(metric bars) and OUT/samples_<variant>.png (the first case's frames).
"""

from __future__ import annotations

import argparse
import io
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import vidzero
from recipes.shapes import world
from recipes.shapes.judge import score_clip
from vidzero.flicker import flicker_report
from vidzero.io import atomic_write_bytes, contact_sheet, write_png
from vidzero.run import PlannedRun
from vidzero.tasks.common import RunOptions, load_frame
from vidzero.timeline import plan_single_window

HELD_OUT_SEED_BASE = 4_000_000_000


def cases(count: int) -> list[world.ShapesClip]:
    return world.moving_object_clips(count, HELD_OUT_SEED_BASE)


def variants(sdedit: bool) -> dict[str, dict]:
    v = {
        "replacing": dict(kind="replacing", resample=0, init="random"),
        "slide random init U=0": dict(kind="slide", resample=0, init="random"),
        "slide U=0": dict(kind="slide", resample=0),
        "slide U=2": dict(kind="slide", resample=2),
        "slide U=4": dict(kind="slide", resample=4),
        "slide U=4 latent queue": dict(kind="slide", resample=4, queue="latent"),
    }
    if sdedit:
        v |= {f"sdedit s={s}": dict(kind="sdedit", strength=s) for s in (0.5, 0.7, 0.9)}
    v["t2v"] = dict(kind="t2v", resample=0)
    return v


def make_video(bb, clip, spec: dict, steps: int, guidance: float, seed: int) -> tuple[np.ndarray, int]:
    """(frames, CFG evaluations) for one case and variant."""
    image = load_frame(clip.frames[0], bb)
    kind = spec["kind"]
    if kind == "sdedit":
        from diffusers import VideoToVideoSDPipeline

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe = VideoToVideoSDPipeline(
                vae=bb.vae, text_encoder=bb.text_encoder, tokenizer=bb.tokenizer, unet=bb.unet, scheduler=bb.scheduler
            )
        pipe.set_progress_bar_config(disable=True)
        video = pipe(
            clip.caption,
            video=[Image.fromarray(image)] * bb.frames,
            strength=spec["strength"],
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=torch.Generator().manual_seed(seed),
            output_type="np",
        ).frames[0]
        evaluations = min(int(steps * spec["strength"]), steps)
        return (np.clip(video, 0, 1) * 255).round().astype(np.uint8), evaluations
    opts = {k: v for k, v in spec.items() if k in ("resample", "init", "queue")}
    if kind == "t2v":
        run = vidzero.generate(clip.caption, backbone=bb, steps=steps, guidance=guidance, seed=seed, **opts)
    elif kind == "slide":
        run = vidzero.extend(
            image, clip.caption, frames=bb.frames, backbone=bb, steps=steps, guidance=guidance, seed=seed, **opts
        )
    else:
        o = RunOptions(steps=steps, guidance=guidance, seed=seed, **opts)
        run = PlannedRun(
            "replacing", o.engine(bb), plan_single_window(1, bb.frames), bb.frames, {0: image}, clip.caption
        )
    frames = np.stack(run.frames())
    return frames, run.engine.stats.cfg_evaluations


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def metrics(frames: np.ndarray, clip: world.ShapesClip, size: tuple[int, int]) -> dict:
    w, h = size
    background = np.asarray(Image.fromarray(clip.background).resize((w, h), Image.Resampling.BICUBIC))
    first = np.asarray(Image.fromarray(clip.frames[0]).resize((w, h), Image.Resampling.BICUBIC))
    score = score_clip(frames, clip.caption, background=background)
    obj = score["objects"][0]
    track = [np.array(c) for c in obj["track"] if c is not None]
    accel = (
        float(np.mean(np.linalg.norm(np.diff(np.stack(track), 2, axis=0), axis=1))) if len(track) >= 3 else float("nan")
    )
    return {
        "first_frame_psnr": min(psnr(frames[0], first), 99.0),
        "identity": obj["present"],
        "shape_kept": float(bool(obj["shape_correct"])),
        "background_psnr": min(score["background_psnr"], 99.0),
        "direction": float(bool(obj["direction_correct"])),
        "acceleration": accel,
        "flicker": flicker_report(iter(frames))["flicker_index"],
    }


COLUMNS = [
    ("first_frame_psnr", "first-frame PSNR"),
    ("identity", "identity"),
    ("shape_kept", "shape"),
    ("background_psnr", "background PSNR"),
    ("direction", "direction acc."),
    ("acceleration", "accel. px/f²"),
    ("flicker", "flicker"),
    ("cfg_per_frame", "CFG evals/frame"),
    ("seconds_per_frame", "s/frame"),
]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="shapes")
    p.add_argument("--device", default="auto")
    p.add_argument("--cases", type=int, default=32)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--guidance", type=float, default=9.0)
    p.add_argument("--no-sdedit", action="store_true")
    p.add_argument("--out", type=Path, default=Path("docs/bench"))
    p.add_argument("--quick", action="store_true", help="2 cases, 2 steps")
    a = p.parse_args(argv)
    if a.quick:
        a.cases, a.steps = 2, 2
    a.out.mkdir(parents=True, exist_ok=True)
    bb = vidzero.load_backbone(a.model, device=a.device)
    results: dict[str, dict] = {}
    setup = (
        f"{a.cases} held-out cases, {a.steps} DDIM steps, guidance {a.guidance}, model {a.model}, window {bb.frames}"
    )
    for name, spec in variants(not a.no_sdedit).items():
        rows, evaluations, seconds = [], 0, 0.0
        for i, clip in enumerate(cases(a.cases)):
            t = time.perf_counter()
            frames, n_eval = make_video(bb, clip, spec, a.steps, a.guidance, seed=i)
            seconds += time.perf_counter() - t
            evaluations += n_eval
            rows.append(metrics(frames, clip, (bb.width, bb.height)))
            if i == 0:
                write_png(
                    a.out / f"samples_{name.replace(' ', '_').replace('=', '')}.png",
                    contact_sheet(list(enumerate(frames))),
                )
        generated = a.cases * (bb.frames - (0 if spec["kind"] == "t2v" else 1))
        results[name] = {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}
        results[name] |= {"cfg_per_frame": evaluations / generated, "seconds_per_frame": seconds / generated}
        print(f"{name}: " + ", ".join(f"{k} {v:.3g}" for k, v in results[name].items()), flush=True)
        # Written after every variant: a full run takes hours on a CPU, and one stopped midway
        # keeps the rows it finished.
        text = write_results(results, setup, a.out)
    print(f"\n{setup}\n\n{text}")


def write_results(results: dict[str, dict], setup: str, out: Path) -> str:
    header = "| variant | " + " | ".join(c for _, c in COLUMNS) + " |"
    table = [header, "|" + "---|" * (len(COLUMNS) + 1)]
    for name, r in results.items():
        table.append(f"| {name} | " + " | ".join(f"{r[k]:.3g}" for k, _ in COLUMNS) + " |")
    text = "\n".join(table)
    atomic_write_bytes(out / "quality.md", f"{setup}\n\n{text}\n".encode())
    atomic_write_bytes(out / "quality.json", json.dumps({"setup": setup, "results": results}, indent=1).encode())
    plot(results, out / "quality.png")
    return text


def plot(results: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["first_frame_psnr", "background_psnr", "identity", "direction", "flicker", "cfg_per_frame"]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 4))
    names = list(results)
    for ax, key in zip(axes, keys):
        ax.barh(names, [results[n][key] for n in names])
        ax.set_title(dict(COLUMNS)[key], fontsize=9)
        ax.tick_params(labelsize=7)
        if ax is not axes[0]:
            ax.set_yticklabels([])
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, png.getvalue())


if __name__ == "__main__":
    main()
