"""`vidzero report`: the quality report of any clip (per-frame flicker, motion, change, colour
drift, distance to known frames, flagged seams), written next to it as JSON and a plot.

For a vidzero output the known frames come from its manifest; for any other clip frame 0 is
taken as the known one. The algorithm is in `vidzero.quality.report`.
"""

from __future__ import annotations

from pathlib import Path

from vidzero.media.outputs import written_by_vidzero
from vidzero.media.video import read_video, video_info
from vidzero.quality.report import plot_report, quality_report, report_paths
from vidzero.runs.output import write_clip_report


def report_clip(video: str | Path, force: bool = False) -> dict:
    """Write `<video>.report.json` and `<video>.report.png`; return the report."""
    video_info(video)

    def make() -> dict:
        # a vidzero output's known frames come from its proven manifest
        made = written_by_vidzero(Path(video)) if Path(video).exists() else None
        known_frames = (made or {}).get("report", {}) or {}
        known = {i: None for i in known_frames.get("known_frames", [])} or None
        return quality_report(read_video(video), known, output=str(video))

    return write_clip_report(video, report_paths(video), "quality report", force, make, plot_report)
