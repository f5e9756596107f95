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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidzero.media.outputs import (
    CONTACT,
    content_proof,
    discard,
    output_kind,
    run_sidecars,
    sidecar,
    write_json,
)
from vidzero.media.pictures import contact_sheet, read_png, sample_indices, write_png
from vidzero.media.video import VideoWriter
from vidzero.quality.flicker import DeflickerSettings, deflicker
from vidzero.quality.report import ReportBuilder, plot_report, report_paths
from vidzero.runs.output import Output
from vidzero.runs.state import save_state
from vidzero.version import __version__

# The named points of saving ("between", "window", "encode", "manifest", "contact", "commit",
# "final-state", "cleanup"). The interruption tests install a hook that kills the process at one of them
# (tests/processes.py) and check that --resume ends with the bytes an uninterrupted run writes;
# the product installs none.
SAVE_POINT_HOOKS: list[Callable[[str], None]] = []


def save_point(name: str) -> None:
    for hook in SAVE_POINT_HOOKS:
        hook(name)


@dataclass(frozen=True)
class MadeFrames:
    """A run's frames as they lie in its frames folder, and how they become the video."""

    folder: Path
    length: int  # frames of the timeline, the first `first_output` of them not written
    first_output: int
    fps: float
    codec: str | None = None
    crf: int | None = None
    given: dict[int, np.ndarray] = field(default_factory=dict)  # known pixels, by frame
    anchors: dict[int, Any] = field(default_factory=dict)  # frames deflickering keeps unchanged
    deflicker: DeflickerSettings | None = None

    def read(self, index: int) -> np.ndarray:
        return read_png(self.folder / f"{index:06d}.png")


def finish(
    output: Output, frames: MadeFrames, record: dict, final_state: Callable[[], tuple[dict, dict[str, torch.Tensor]]]
) -> dict:
    """Steps 2-7 of the sequence above for a run's `frames` and its `record` (what the manifest
    says of how they were made); `final_state` gives the state kept for `extend --from`. Returns
    the manifest written."""
    started = time.time()
    out = output.path
    kind = output_kind(out)
    save_point("encode")
    written = range(frames.first_output, frames.length)
    images: Any = (frames.read(i) for i in range(frames.length))
    if frames.deflicker is not None:
        images = deflicker(images, anchors=frames.anchors, settings=frames.deflicker)
    writer = VideoWriter(out, frames.fps, frames.codec, frames.crf)
    known_out: dict[int, np.ndarray | None] = {
        i - frames.first_output: px for i, px in frames.given.items() if i >= frames.first_output
    }
    report = ReportBuilder(known_out or {0: None})
    try:
        for index, image in enumerate(images):
            if index >= frames.first_output:
                writer.write(image)
                report.add(image)
        encoded = writer.close()
    except BaseException:
        writer.abort()
        raise
    proof: dict[str, Any] = {"version": __version__, "kind": kind, **content_proof(encoded)}
    quality = report.finish(str(out)) if len(written) >= 2 else None
    save_point("manifest")
    manifest = record | {
        "vidzero": proof,
        "output": str(out),
        "sidecars": [str(p) for p in run_sidecars(out)],
        "deflicker": asdict(frames.deflicker) if frames.deflicker is not None else None,
        "report": None
        if quality is None
        else quality["summary"] | {"known_frames": quality["known_frames"], "seams": quality["seams"]},
        "encode_seconds": round(time.time() - started, 3),
    }
    output.write_manifest(manifest)
    save_point("contact")
    wanted = [frames.first_output + i for i in sample_indices(len(written))]
    write_png(sidecar(out, CONTACT), contact_sheet([(i, frames.read(i)) for i in wanted]))
    if quality is not None:
        report_json, report_png = report_paths(out)
        write_json(report_json, {"vidzero": proof | {"kind": "quality report"}, **quality})
        write_png(report_png, plot_report(quality, out.name))
    save_point("commit")
    output.commit(writer)
    save_point("final-state")
    save_state(output.state_path, *final_state())
    save_point("cleanup")
    discard(output.partial)
    return manifest
