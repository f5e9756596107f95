"""`vidzero report`: the quality report of any clip (per-frame flicker, motion, change, colour
drift, distance to known frames, flagged seams), written next to it as JSON and a plot.

For a vidzero output the known frames come from its manifest; for any other clip frame 0 is
taken as the known one. The algorithm is in `vidzero.quality.report`.
"""

from __future__ import annotations

from pathlib import Path

from vidzero.errors import BadInput
from vidzero.media.outputs import check_file_destination, read_manifest, write_json, written_by_vidzero
from vidzero.media.pictures import write_png
from vidzero.media.video import read_video, video_info
from vidzero.quality.report import plot_report, quality_report, report_paths
from vidzero.version import __version__


def report_clip(video: str | Path, force: bool = False) -> dict:
    """Write `<video>.report.json` and `<video>.report.png`; return the report."""
    video_info(video)
    json_path, png_path = report_paths(video)
    for path in (json_path, png_path):
        check_file_destination(path, [video])
    existing = [p for p in (json_path, png_path) if p.exists()]
    if existing and not force:
        raise BadInput(f"output exists: {existing[0]} (--force replaces a previous vidzero report)")
    if existing and read_manifest(json_path) is None:
        raise BadInput(f"{existing[0]} was not written by vidzero; move it away")
    manifest = written_by_vidzero(Path(video)) if Path(video).exists() else None
    known_frames = (manifest or {}).get("report", {}) or {}
    known = {i: None for i in known_frames.get("known_frames", [])} or None
    report = quality_report(read_video(video), known, output=str(video))
    write_json(json_path, {"vidzero": {"version": __version__, "kind": "quality report"}, "clip": str(video), **report})
    write_png(png_path, plot_report(report, Path(video).name))
    return report
