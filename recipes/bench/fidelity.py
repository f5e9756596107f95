"""The fidelity bench: the paper's ablation, baselines and vidzero's options on held-out images.

    python -m recipes.bench.fidelity --split dev --cases 8                 # choose settings here
    python -m recipes.bench.fidelity --split test --cases 8 --variants paper,default
    python -m recipes.bench.fidelity --quick --model DIR                   # a smoke run (CI)
    python -m recipes.bench.fidelity --long 128 --cases 4                  # long video, per quarter

Each case (recipes/bench/fidelity_cases.py) is a first frame and a prompt; each variant makes a 16-frame
image-to-video from it with the same seed; every variant's frames are measured on pixels alone
(shape IoU, area, colour, background, first-step jump, direction) and its cost in the same run
(guided UNet evaluations and seconds per generated frame, and the UNet work in window samples).
`±` columns are the bench's noise: half a 90 % bootstrap interval over the cases. Writes
OUT/fidelity-SPLIT.json, OUT/fidelity-SPLIT.md and a sample sheet per variant.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import vidzero
from recipes.bench.fidelity_cases import (
    bootstrap_halfwidth,
    case_record,
    make_cases,
    measure,
    paired_difference,
    summary,
    worse_beyond_noise,
)
from vidzero.core.frames import to_pixels
from vidzero.core.timeline import Layout, plan_prefix, plan_single_window
from vidzero.media.outputs import write_json
from vidzero.media.pictures import contact_sheet, write_png
from vidzero.runs.options import RunOptions
from vidzero.runs.run import PlannedRun
from vidzero.runs.spec import RunSpec, TaskPlan
from vidzero.tasks.extend import ExtendInputs

# name -> how to make the video: a kind and its options
VARIANTS: dict[str, dict] = {
    "paper": {"kind": "extend", "preset": "paper"},
    "latent queue": {"kind": "extend", "preset": "paper", "queue": "latent"},
    "random init": {"kind": "extend", "preset": "paper", "init": "random"},
    "U=0": {"kind": "extend", "preset": "paper", "resample": 0},
    "U=2": {"kind": "extend", "preset": "paper", "resample": 2},
    "resample 3 steps": {"kind": "extend", "preset": "paper", "resample_steps": 3},
    "resample 2 steps": {"kind": "extend", "preset": "paper", "resample_steps": 2},
    "rectify 0.5": {"kind": "extend", "preset": "paper", "rectify": 0.5},
    "rectify 1": {"kind": "extend", "preset": "paper", "rectify": 1.0},
    "fast rectify 0.5": {"kind": "extend", "preset": "fast", "rectify": 0.5},
    "fast rectify 1": {"kind": "extend", "preset": "fast", "rectify": 1.0},
    "fast given start 2": {"kind": "extend", "preset": "fast", "given_start": 2},
    "fast given start 4": {"kind": "extend", "preset": "fast", "given_start": 4},
    "fast replace 5": {"kind": "extend", "preset": "fast", "replace_steps": 5},
    "fast replace 8": {"kind": "extend", "preset": "fast", "replace_steps": 8},
    "fast lowpass": {"kind": "extend", "preset": "fast", "init": "lowpass"},
    "fast guidance 2:10": {"kind": "extend", "preset": "fast", "guidance_steps": "2:10"},
    "fast guidance 0:5": {"kind": "extend", "preset": "fast", "guidance_steps": "0:5"},
    "fast w3": {"kind": "extend", "preset": "fast", "guidance": 3.0},
    "fast w5": {"kind": "extend", "preset": "fast", "guidance": 5.0},
    "fast w6": {"kind": "extend", "preset": "fast", "guidance": 6.0},
    "fast given start 2 w5": {"kind": "extend", "preset": "fast", "given_start": 2, "guidance": 5.0},
    "paper w5": {"kind": "extend", "preset": "paper", "guidance": 5.0},
    "paper w3": {"kind": "extend", "preset": "paper", "guidance": 3.0},
    "fast w1": {"kind": "extend", "preset": "fast", "guidance": 1.0},
    "fast w2": {"kind": "extend", "preset": "fast", "guidance": 2.0},
    "fast w3 given start 2": {"kind": "extend", "preset": "fast", "guidance": 3.0, "given_start": 2},
    "fast pixel w3": {"kind": "extend", "preset": "fast", "queue": "pixel", "guidance": 3.0},
    "fast w3 anchored": {"kind": "anchored", "preset": "fast", "guidance": 3.0},
    "4 per window": {"kind": "extend", "preset": "paper", "new_per_window": 4},
    "fast anchored": {"kind": "anchored", "preset": "fast"},
    "default anchored": {"kind": "anchored"},
    "fast pixel": {"kind": "extend", "preset": "fast", "queue": "pixel"},
    "fast pixel given start 2": {"kind": "extend", "preset": "fast", "queue": "pixel", "given_start": 2},
    "resample 2 steps given start 2": {"kind": "extend", "preset": "paper", "resample_steps": 2, "given_start": 2},
    "default": {"kind": "extend"},
    # posterior guidance on the default (vidzero.core.guidance)
    "x0 replace": {"kind": "extend", "known_noise": "model"},
    "ding": {"kind": "extend", "known_noise": "ding"},
    "recon 1": {"kind": "extend", "reconstruction": 1.0},
    "recon 4": {"kind": "extend", "reconstruction": 4.0},
    "dps 1": {"kind": "extend", "dps": 1.0},
    "dps 3": {"kind": "extend", "dps": 3.0},
    "dps 3 user-weighted": {"kind": "extend", "dps": 3.0, "generated_weight": 0.25},
    "x0 replace dps 1": {"kind": "extend", "known_noise": "model", "dps": 1.0},
    "x0 replace dps 3": {"kind": "extend", "known_noise": "model", "dps": 3.0},
    "ding dps 3": {"kind": "extend", "known_noise": "ding", "dps": 3.0},
    "patch swap 0.5": {"kind": "extend", "patch_swap": 0.5},
    "dps 3 steps 5:10": {"kind": "extend", "dps": 3.0, "posterior_steps": "5:10"},
    "ding w3": {"kind": "extend", "known_noise": "ding", "guidance": 3.0},
    "ding w4": {"kind": "extend", "known_noise": "ding", "guidance": 4.0},
    # moving targets on the default (vidzero.core.targets); "no target" is the default before them
    "no target": {"kind": "extend", "target": "off"},
    "target both 6:10": {"kind": "extend", "target": "both", "target_steps": "6:10"},
    "target window": {"kind": "extend", "target": "window"},
    "target queue": {"kind": "extend", "target": "queue"},
    "target both": {"kind": "extend", "target": "both"},
    "target window written": {"kind": "extend", "target": "window", "target_frames": "target"},
    "target queue written": {"kind": "extend", "target": "queue", "target_frames": "target"},
    "target both written": {"kind": "extend", "target": "both", "target_frames": "target"},
    "target window 4:8": {"kind": "extend", "target": "window", "target_steps": "4:8"},
    "target both 4:8": {"kind": "extend", "target": "both", "target_steps": "4:8"},
    "target both 3:9": {"kind": "extend", "target": "both", "target_steps": "3:9"},
    "target window 7:10": {"kind": "extend", "target": "window", "target_steps": "7:10"},
    "target window 8:10": {"kind": "extend", "target": "window", "target_steps": "8:10"},
    "target window 5:9": {"kind": "extend", "target": "window", "target_steps": "5:9"},
    "target window 6:10": {"kind": "extend", "target": "window", "target_steps": "6:10"},
    "target both 7:10": {"kind": "extend", "target": "both", "target_steps": "7:10"},
    "target both 7:9": {"kind": "extend", "target": "both", "target_steps": "7:9"},
    "fast": {"kind": "extend", "preset": "fast"},
    "quality": {"kind": "extend", "preset": "quality"},
    "replacing": {"kind": "replacing"},
    "SDEdit 0.7": {"kind": "sdedit", "strength": 0.7},
    "VAE round trip": {"kind": "vae"},
}
ABLATION = ["paper", "latent queue", "random init", "U=0", "U=2", "replacing", "SDEdit 0.7", "VAE round trip"]
COLUMNS = [
    ("iou_0.8", "IoU>=0.8", "{:.0%}"),
    ("area_15", "area ±15 %", "{:.0%}"),
    ("area", "area ratio", "{:.2f}"),
    ("delta_e", "ΔE", "{:.1f}"),
    ("background_psnr", "bg PSNR", "{:.1f}"),
    ("background_within_3", "bg ΔE<=3", "{:.0%}"),
    ("first_step_jump", "jump px", "{:.2f}"),
    ("direction", "direction", "{:.0%}"),
    ("speed", "speed px/frame", "{:.2f}"),
    ("cfg_per_frame", "evals/frame", "{:.1f}"),
    ("backward_per_frame", "gradients/frame", "{:.1f}"),
    ("unet_per_frame", "UNet samples/frame", "{:.1f}"),
    ("seconds_per_frame", "s/frame", "{:.2f}"),
]
NOISE = ("iou_0.8", "area_15", "first_step_jump", "direction", "background_psnr", "speed")


def make_video(bb, case, spec: dict, frames: int, seed: int) -> tuple[np.ndarray, int, int, int]:
    """(frames, guided evaluations, UNet window samples, gradients through the model) for one
    case and variant."""
    image = case.first_frame()
    kind = spec["kind"]
    if kind == "vae":
        pixels = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
        back = to_pixels(bb.decode(bb.encode_frames(pixels)))[0]
        return np.stack([image] + [back] * (frames - 1)), 0, 0, 0
    if kind == "sdedit":
        from diffusers import VideoToVideoSDPipeline
        from PIL import Image

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe = VideoToVideoSDPipeline(
                vae=bb.vae, text_encoder=bb.text_encoder, tokenizer=bb.tokenizer, unet=bb.unet, scheduler=bb.scheduler
            )
        pipe.set_progress_bar_config(disable=True)
        steps = 10
        video = pipe(
            case.prompt,
            video=[Image.fromarray(image)] * bb.frames,
            strength=spec["strength"],
            num_inference_steps=steps,
            guidance_scale=9.0,
            generator=torch.Generator().manual_seed(seed),
            output_type="np",
        ).frames[0]
        used = int(steps * spec["strength"])
        video = (np.clip(video, 0, 1) * 255).round().astype(np.uint8)
        return np.concatenate([image[None], video[1:frames]]), used, 2 * used, 0
    if kind == "replacing":  # one window, the image in slot 0, every other slot generated at once
        options = RunOptions(steps=10, resample=0, init="random", seed=seed, progress=False)
        spec = RunSpec.checked(ExtendInputs(image, case.prompt, bb.frames), options)
        layout = Layout(bb.frames, {0: image}, plan_single_window(1, bb.frames), case.prompt)
        run = PlannedRun(spec, TaskPlan(layout), bb)
        return (np.stack(run.frames())[:frames], *costs(run))
    if kind == "anchored":  # extend, every window also holding the user's frame (slot 0)
        values = {k: v for k, v in spec.items() if k != "kind"}
        spec_ = RunSpec.checked(
            ExtendInputs(image, case.prompt, frames), RunOptions(seed=seed, progress=False, **values)
        )
        assert spec_.options.new_per_window is not None
        layout = Layout(
            frames,
            {0: image},
            plan_prefix(frames, 1, bb.frames, spec_.options.new_per_window, anchor=True),
            case.prompt,
        )
        run = PlannedRun(spec_, TaskPlan(layout), bb)
        return (np.stack(run.frames()), *costs(run))
    options = {k: v for k, v in spec.items() if k != "kind"}
    run = vidzero.extend(image, case.prompt, frames=frames, backbone=bb, seed=seed, progress=False, **options)
    return (np.stack(run.frames()), *costs(run))


def costs(run: PlannedRun) -> tuple[int, int, int]:
    stats = run.engine.stats
    return stats.cfg_evaluations, stats.unet_samples, stats.backward_passes


def encoded(video: np.ndarray, spec: str) -> np.ndarray:
    """The frames as a viewer sees them after encoding: `CODEC[:CRF][:xN]` (xN: enlarged N times,
    nearest neighbour, before encoding, and brought back by area averaging after decoding)."""
    import tempfile

    import cv2

    from vidzero.media.video import VideoWriter, read_video

    codec, *rest = spec.split(":")
    crf = next((int(r) for r in rest if r.isdigit()), None)
    scale = next((int(r[1:]) for r in rest if r.startswith("x")), 1)
    h, w = video.shape[1:3]
    if scale > 1:
        video = np.stack([cv2.resize(f, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST) for f in video])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("v.webm" if codec in ("vp9", "av1") else "v.mp4")
        writer = VideoWriter(path, 8.0, codec, crf)
        for frame in video:
            writer.write(frame)
        writer.close()
        writer.commit()
        back = np.stack(list(read_video(path)))
    if scale > 1:
        back = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in back])
    return back


def run_variant(bb, cases, spec: dict, frames: int, seed: int) -> tuple[dict, list[dict], list[np.ndarray]]:
    measured, videos, evals, samples, backward, seconds = [], [], 0, 0, 0, 0.0
    for case in cases:
        start = time.perf_counter()
        video, e, u, b = make_video(bb, case, spec, frames, seed)
        seconds += time.perf_counter() - start
        evals, samples, backward = evals + e, samples + u, backward + b
        measured.append(measure(video, case))
        videos.append(video)
    generated = len(cases) * (frames - 1)
    result = summary(measured) | {
        "cfg_per_frame": evals / generated,
        "unet_per_frame": samples / generated,
        "backward_per_frame": backward / generated,
        "seconds_per_frame": seconds / generated,
    }
    result |= {f"{k}_noise": bootstrap_halfwidth(measured, k) for k in NOISE}
    result["by_size"] = {
        size: summary([m for m, c in zip(measured, cases) if size_class(c.radius) == size])
        for size in SIZE_CLASSES
        if any(size_class(c.radius) == size for c in cases)
    }
    return result, measured, videos


SIZE_CLASSES = ("small", "medium", "large")


def size_class(radius: float) -> str:
    """small: under 7 px (under one latent pixel of radius, at 8 px per latent pixel), medium:
    7-10 px, large: above 10 px."""
    return "small" if radius < 7 else "medium" if radius <= 10 else "large"


def size_sweep(bb, variants: list[str], radii: list[float], frames: int, seed: int) -> dict:
    """Discs of each radius (two colours, two backgrounds, moving right): the median area ratio
    and IoU>=0.8 share per radius, for each variant. An r-pixel disc is r/8 latent pixels wide."""
    from recipes.bench.fidelity_cases import BACKGROUNDS, COLOURS, Case

    table: dict[str, dict[str, dict]] = {}
    for name in variants:
        table[name] = {}
        for r in radii:
            cases = [
                Case(
                    f"disc-{r}-{i}",
                    "disc",
                    r,
                    colour,
                    COLOURS[colour],
                    "plain",
                    BACKGROUNDS[bg],
                    18.0,
                    32.0,
                    "right",
                    9000 + i,
                )
                for i, (colour, bg) in enumerate((("red", "navy"), ("yellow", "plum")))
            ]
            measured = [measure(make_video(bb, c, VARIANTS[name], frames, seed)[0], c) for c in cases]
            table[name][str(r)] = summary(measured)
            row = table[name][str(r)]
            print(
                f"{name} r={r} ({r / 8:.2f} latent px): area {row['area']:.2f}, IoU>=0.8 {row['iou_0.8']:.0%}",
                flush=True,
            )
    return table


def quarters(video: np.ndarray, case) -> list[dict]:
    """The metrics of each quarter of a long video (each against frame 0), and its flicker index
    (the quality report's, over the quarter's frames)."""
    from recipes.bench.fidelity_cases import measure as measure_video
    from vidzero.quality.report import quality_report

    n = len(video)
    per_frame = measure_video(video, case)["per_frame"]
    out = []
    for q in range(4):
        span = slice(q * (n - 1) // 4, (q + 1) * (n - 1) // 4)
        row = summary([{"per_frame": per_frame[span], "first_step_jump": None, "direction_correct": False}])
        row["flicker_index"] = quality_report(iter(video[span]))["summary"]["flicker_index"]
        out.append(row)
    return out


def table(results: dict[str, dict], title: str) -> str:
    head = "| variant | " + " | ".join(c[1] for c in COLUMNS) + " |"
    lines = [f"### {title}", "", head, "|" + "---|" * (len(COLUMNS) + 1)]
    for name, r in results.items():
        cells = []
        for key, _, fmt in COLUMNS:
            value = r.get(key)
            cell = fmt.format(value) if value is not None and value == value else "-"
            if f"{key}_noise" in r and name in ("paper", "default"):
                cell += " ±" + fmt.format(r[f"{key}_noise"]).rstrip("%")
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    sizes = [size for size in SIZE_CLASSES if any(size in r.get("by_size", {}) for r in results.values())]
    if sizes:
        lines += ["", "By object size (IoU>=0.8 / area ±15 % / area ratio):", ""]
        lines.append("| variant | " + " | ".join(sizes) + " |")
        lines.append("|" + "---|" * (len(sizes) + 1))
        for name, r in results.items():
            cells = []
            for size in sizes:
                row = r.get("by_size", {}).get(size)
                cells.append(f"{row['iou_0.8']:.0%} / {row['area_15']:.0%} / {row['area']:.2f}" if row else "-")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="shapes")
    p.add_argument("--split", choices=("dev", "test"), default="dev")
    p.add_argument("--cases", type=int, default=8)
    p.add_argument("--variants", default=",".join(ABLATION), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--long", type=int, default=0, metavar="N", help="instead: N-frame videos, metrics per quarter")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("docs/bench"))
    p.add_argument("--quick", action="store_true", help="2 cases, 4 frames, 2 variants (a smoke run)")
    p.add_argument(
        "--encode",
        default="",
        help="also measure each video after encoding: comma-separated CODEC[:CRF][:xN] (xN: enlarged N times first)",
    )
    p.add_argument(
        "--sizes",
        default="",
        metavar="R,R,...",
        help="instead: the object-size sweep, discs of these radii in px (area ratio against radius)",
    )
    p.add_argument(
        "--combine",
        nargs="+",
        type=Path,
        metavar="JSON",
        help="instead: merge the variants of earlier runs' fidelity-SPLIT.json (same cases and seed) into one table; "
        "a variant measured on several models is named 'VARIANT @ MODEL'",
    )
    p.add_argument(
        "--reference", default="paper", help="the row the others are paired against (without it in the run: default)"
    )
    a = p.parse_args(argv)
    if a.combine:
        combine(a.combine, a.out, a.split, a.reference)
        return
    names = [v.strip() for v in a.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        p.error(f"unknown variant {unknown[0]!r}")
    if a.quick:
        a.cases, a.frames, names = 2, 4, ["paper", "VAE round trip"]
    if a.threads:
        torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    bb = vidzero.load_backbone(a.model, device="cpu")
    cases = make_cases(a.split, a.cases)
    if a.sizes:
        radii = [float(r) for r in a.sizes.split(",")]
        sweep = size_sweep(bb, names, radii, a.frames, a.seed)
        write_json(a.out / "fidelity-sizes.json", {"frames": a.frames, "radii": radii, "variants": sweep})
        return
    if a.long:
        report = {}
        for name in names:
            rows = []
            for case in cases:
                video = make_video(bb, case, VARIANTS[name], a.long, a.seed)[0]
                rows.append(quarters(video, case))
            report[name] = [{k: float(np.nanmean([r[q][k] for r in rows])) for k in rows[0][q]} for q in range(4)]
            print(name, json.dumps(report[name], indent=1))
        write_json(
            a.out / f"fidelity-long{a.long}-{a.split}.json",
            {"frames": a.long, "cases": [case_record(c) for c in cases], "quarters": report},
        )
        return
    results, per_case = {}, {}
    encodings = [e.strip() for e in (a.encode or "").split(",") if e.strip()]
    for name in names:
        started = time.perf_counter()
        results[name], measured, videos = run_variant(bb, cases, VARIANTS[name], a.frames, a.seed)
        per_case[name] = measured
        for spec in encodings:  # the same frames after an encoder and its decoder
            again = [measure(encoded(v, spec), c) for v, c in zip(videos, cases)]
            label = f"{name} after {spec}"
            results[label] = summary(again) | {f"{k}_noise": bootstrap_halfwidth(again, k) for k in NOISE}
            per_case[label] = again
        sheet = [(i * 100 + k, v[k]) for i, v in enumerate(videos[:4]) for k in range(0, len(v), max(1, len(v) // 8))]
        write_png(
            a.out / f"fidelity-{a.split}-{name.replace(' ', '_').replace('=', '')}.png", contact_sheet(sheet, columns=8)
        )
        print(
            f"{name}: "
            + ", ".join(f"{k} {results[name][k]:.3f}" for k, _, _ in COLUMNS)
            + f" ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    setup = (
        f"{len(cases)} {a.split} cases, {a.frames} frames, seed {a.seed}, model {a.model}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    write_json(
        a.out / f"fidelity-{a.split}.json",
        {"setup": setup, "cases": [case_record(c) for c in cases], "results": results, "per_case": per_case},
    )
    reference = a.reference if a.reference in per_case else "default"
    text = table(results, setup) + against_reference(per_case, reference)
    (a.out / f"fidelity-{a.split}.md").write_text(text + "\n")
    print(text)


def combine(files: list[Path], out: Path, split: str, reference: str = "paper") -> None:
    """One table (and JSON) from several runs over the same cases: variants measured in separate
    runs compare as if measured together, the bench being deterministic per case and seed. A
    variant name that several runs share (one preset on several models) is told apart by the
    model each run names; the rows are then paired against `reference`."""
    import json
    import re

    runs = [json.loads(f.read_text()) for f in files]
    if any(r["cases"] != runs[0]["cases"] for r in runs):
        raise SystemExit("the runs measured different cases")
    names = [name for r in runs for name in r["results"]]
    results: dict[str, dict] = {}
    per_case: dict[str, list[dict]] = {}
    for r in runs:
        found = re.search(r"model (\S+?),", r["setup"])
        model = Path(found.group(1)).name if found else "?"
        for name, result in r["results"].items():
            label = f"{name} @ {model}" if names.count(name) > 1 else name
            results[label], per_case[label] = result, r["per_case"][name]
    setup = runs[0]["setup"] + f" (merged from {len(runs)} runs)"
    out.mkdir(parents=True, exist_ok=True)
    write_json(
        out / f"fidelity-{split}.json",
        {"setup": setup, "cases": runs[0]["cases"], "results": results, "per_case": per_case},
    )
    text = table(results, setup) + against_reference(per_case, reference)
    (out / f"fidelity-{split}.md").write_text(text + "\n")
    print(text)


def against_reference(per_case: dict[str, list[dict]], reference: str = "paper") -> str:
    """Each variant against `reference` on the same cases: the paired difference of each metric
    with its 90 % bootstrap interval, and the metrics worse beyond that noise."""
    if reference not in per_case or len(per_case) < 2:
        return ""
    keys = [("iou_0.8", "IoU>=0.8", 100), ("area_15", "area ±15 %", 100), ("delta_e", "ΔE", 1)]
    keys += [("background_psnr", "bg PSNR", 1), ("first_step_jump", "|jump| px", 1), ("direction", "direction", 100)]
    keys += [("speed", "speed px/frame", 1)]  # the motion guard
    title = f"Against {reference}, paired over the same cases (difference [90 % interval]; shares in points):"
    lines = ["", "", title, ""]
    lines.append("| variant | " + " | ".join(k[1] for k in keys) + " | worse beyond noise |")
    lines.append("|" + "---|" * (len(keys) + 2))
    for name, measured in per_case.items():
        if name == reference:
            continue
        cells = []
        for key, _, scale in keys:
            diff, lo, hi = paired_difference(measured, per_case[reference], key)
            cells.append(f"{diff * scale:+.1f} [{lo * scale:+.1f}, {hi * scale:+.1f}]")
        worse = worse_beyond_noise(measured, per_case[reference])
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {', '.join(worse) or 'none'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
