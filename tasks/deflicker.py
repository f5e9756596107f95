"""`vidzero deflicker`: remove flicker from an existing clip, or report on it.

The algorithm lives in `vidzero.deflicker` (it also runs on generated frames via --deflicker);
this task reads a clip, streams it through, and writes the result with a flicker report of the
clip before and after.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict
from pathlib import Path

from vidzero.errors import BadInput
from vidzero.flicker import DeflickerSettings, deflicker, flicker_report, plot_report
from vidzero.io import VideoWriter, read_video, sidecar, video_info, write_manifest, write_png


def report_paths(path: str | Path) -> tuple[Path, Path]:
    return sidecar(path, ".flicker.json"), sidecar(path, ".flicker.png")


def report_clip(clip: str | Path, force: bool = False) -> dict:
    """Write `<clip>.flicker.json` and `<clip>.flicker.png`; return the report."""
    video_info(clip)
    json_path, png_path = report_paths(clip)
    for p in (json_path, png_path):
        if p.exists() and not force:
            raise BadInput(f"output exists: {p} (use --force to overwrite)")
    report = flicker_report(read_video(clip))
    write_manifest(json_path, report)
    write_png(png_path, plot_report(report, Path(clip).name))
    return report


def deflicker_clip(
    clip: str | Path,
    output: str | Path,
    anchors: list[int] | None = None,
    settings: DeflickerSettings | None = None,
    force: bool = False,
) -> dict:
    """Deflicker `clip` into `output` (streaming); write flicker reports of both; return them."""
    info = video_info(clip)
    settings = settings or DeflickerSettings()
    settings.check()
    frames = read_video(clip)
    head = list(itertools.islice(frames, 2))  # refuse short clips before writing anything
    if len(head) < 2:
        raise BadInput(f"{clip} has {len(head)} frame(s); deflickering needs at least 2")
    with VideoWriter(output, info.get("fps") or 8.0, force) as writer:
        for frame in deflicker(itertools.chain(head, frames), anchors or [], settings):
            writer.write(frame)
    before = flicker_report(read_video(clip))
    after = flicker_report(read_video(writer.path))
    json_path, png_path = report_paths(writer.path)
    summary = {k: {m: r[m] for m in ("frames", "flicker_index", "colour_flicker_index", "warp_error")} for k, r in (("input", before), ("output", after))}
    write_manifest(json_path, {"input": str(clip), "output": str(writer.path), "settings": asdict(settings), **summary, "per_frame": after["per_frame"]})
    write_png(png_path, plot_report(after, f"{Path(output).name} (input flicker index {before['flicker_index']:.3f})"))
    return summary
