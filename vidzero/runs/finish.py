"""Finishing a saved run: a fixed sequence, each step atomic and each repeatable, so that
`--resume` after a kill at any point ends with the bytes an uninterrupted run writes:

1. every frame is in OUT.partial/ and the state says every window is done;
2. the video is encoded (deterministically) to a hidden temporary file;
3. the manifest is written, with the video's SHA-256 (the proof that vidzero wrote it);
4. the contact sheet and the quality report are written;
5. the video is moved into place;
6. the final state is written (the last frames, for `extend --from`);
7. OUT.partial/ is removed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vidzero.core.frames import from_pixels
from vidzero.media.outputs import (
    FRAME_FOLDER,
    discard,
    output_kind,
    remove_output,
    run_sidecars,
    sha256_of,
    sidecar_paths,
    write_json,
)
from vidzero.media.pictures import contact_sheet, read_png, sample_indices, write_png
from vidzero.media.video import VideoWriter
from vidzero.quality.flicker import deflicker
from vidzero.quality.report import ReportBuilder, plot_report, report_paths
from vidzero.runs.records import manifest, prompt_record
from vidzero.runs.state import save_state
from vidzero.runs.timings import key_for, peak_memory_gib, record_seconds
from vidzero.version import __version__

if TYPE_CHECKING:
    from vidzero.runs.run import PlannedRun

# The named points of saving ("between", "window", "encode", "manifest", "contact", "final-state",
# "cleanup"). The interruption tests install a hook that kills the process at one of them
# (tests/processes.py) and check that --resume ends with the bytes an uninterrupted run writes;
# the product installs none.
SAVE_POINT_HOOKS: list[Callable[[str], None]] = []


def save_point(name: str) -> None:
    for hook in SAVE_POINT_HOOKS:
        hook(name)


def finish(run: PlannedRun, out: Path, partial: Path, state_path: Path, print_id: str, resumed: bool) -> dict:
    """Steps 2-7 of the sequence above; returns the manifest written."""
    started = time.time()
    o = run.spec.options
    kind = output_kind(out)
    save_point("encode")
    written = range(run.first_output, run.length)
    images: Any = (read_png(partial / f"{i:06d}.png") for i in range(run.length))
    given = run.layout.given_video()
    if run.deflicker is not None:
        anchors = given if run.layout.video is not None else run.layout.known
        images = deflicker(images, anchors=anchors, settings=run.deflicker)
    writer = VideoWriter(out, o.fps, o.codec, o.crf)
    known_out: dict[int, np.ndarray | None] = {
        i - run.first_output: px for i, px in given.items() if i >= run.first_output
    }
    report = ReportBuilder(known_out or {0: None})
    try:
        for index, image in enumerate(images):
            if index >= run.first_output:
                writer.write(image)
                report.add(image)
        encoded = writer.close()
    except BaseException:
        writer.abort()
        raise
    manifest_path, sheet_path = sidecar_paths(out)
    proof: dict[str, Any] = {"version": __version__, "kind": kind}
    if kind == FRAME_FOLDER:
        proof["frames"] = len(written)
    else:
        proof["sha256"] = sha256_of(encoded)
    quality = report.finish(str(out)) if len(written) >= 2 else None
    save_point("manifest")
    record = manifest(run) | {
        "vidzero": proof,
        "output": str(out),
        "sidecars": [str(p) for p in run_sidecars(out)],
        "fingerprint": print_id,
        "resumed": resumed,
        "deflicker": asdict(run.deflicker) if run.deflicker is not None else None,
        "report": None
        if quality is None
        else quality["summary"] | {"known_frames": quality["known_frames"], "seams": quality["seams"]},
        "encode_seconds": round(time.time() - started, 3),
    }
    write_json(manifest_path, record)
    save_point("contact")
    wanted = [run.first_output + i for i in sample_indices(len(written))]
    write_png(sheet_path, contact_sheet([(i, read_png(partial / f"{i:06d}.png")) for i in wanted]))
    if quality is not None:
        report_json, report_png = report_paths(out)
        write_json(report_json, {"vidzero": proof | {"kind": "quality report"}, **quality})
        write_png(report_png, plot_report(quality, out.name))
    if out.is_dir() and not out.is_symlink():
        remove_output(out)  # a previous vidzero frame folder, proven by check_output
    writer.commit()
    save_point("final-state")
    save_final_state(run, partial, state_path, print_id)
    save_point("cleanup")
    discard(partial)
    stats = run.engine.stats
    if stats.cfg_evaluations >= 4:
        record_seconds(
            key_for(run.backbone), stats.seconds / stats.cfg_evaluations, peak_memory_gib(run.backbone.device)
        )
    return record


def save_final_state(run: PlannedRun, partial: Path, state_path: Path, print_id: str) -> None:
    """The last window-1 frames, in pixels and latents, and the run's record, for `extend --from`."""
    bb = run.backbone
    slots = run.layout.length
    tail = list(range(max(0, slots - (bb.frames - 1)), slots))  # latent frames
    video = run.layout.video
    frames = [v for s in tail for v in video.frames_of(s) if v < run.length] if video is not None else tail
    generated = run.tail_latents()
    known_latents = run.layout.known_latents or {}
    tensors: dict[str, torch.Tensor] = {}
    for i, index in enumerate(frames):
        tensors[f"tail_pixels.{i}"] = torch.from_numpy(read_png(partial / f"{index:06d}.png"))
    for i, index in enumerate(tail):
        latent = generated.get(index)
        if latent is None:
            latent = known_latents.get(index)
        if latent is None:  # a known frame: its latent is its (deterministic) encoding
            latent = bb.encode_frames(from_pixels(read_png(partial / f"{index:06d}.png")[None]))[0]
        tensors[f"tail_latents.{i}"] = latent.float()
    meta = {
        "fingerprint": print_id,
        "finished": True,
        "spec": run.spec.record(),
        "prompt": prompt_record(run.layout.prompt),
        "next_job_offset": run.plan.job_offset + len(run.jobs),
        "window": bb.frames,
        "height": bb.height,
        "width": bb.width,
        "fps": run.spec.options.fps,
        "tail": len(tail),
    }
    save_state(state_path, meta, tensors)
