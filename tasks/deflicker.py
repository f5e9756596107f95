"""`vidzero deflicker`: remove flicker from an existing clip, or report on it.

The algorithm lives in `vidzero.flicker` (it also runs on generated frames via --deflicker);
this task reads a clip, streams it through, and writes the result with its manifest and a
flicker report of the clip before and after (`OUT.flicker.json`, `OUT.flicker.png`).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict
from pathlib import Path

from vidzero.errors import BadInput
from vidzero.flicker import DeflickerSettings, deflicker, flicker_report, plot_report
from vidzero.io import VideoWriter, read_video, video_info, write_png
from vidzero.options import integer
from vidzero.outputs import (
    MANIFEST,
    OutputLock,
    check_file_destination,
    check_output,
    cleanup_temporaries,
    read_manifest,
    sha256_of,
    sidecar,
    write_json,
)
from vidzero.version import __version__

FLICKER_JSON, FLICKER_PNG = ".flicker.json", ".flicker.png"


def report_paths(path: str | Path) -> tuple[Path, Path]:
    return sidecar(path, FLICKER_JSON), sidecar(path, FLICKER_PNG)


def report_clip(clip: str | Path, force: bool = False) -> dict:
    """Write `<clip>.flicker.json` and `<clip>.flicker.png` next to the clip; return the report."""
    video_info(clip)
    json_path, png_path = report_paths(clip)
    for path in (json_path, png_path):
        check_file_destination(path, [clip])
    existing = [p for p in (json_path, png_path) if p.exists()]
    if existing and not force:
        raise BadInput(f"output exists: {existing[0]} (--force replaces a previous vidzero report)")
    if existing and read_manifest(json_path) is None:
        raise BadInput(f"{existing[0]} was not written by vidzero; move it away")
    report = flicker_report(read_video(clip))
    write_json(json_path, {"vidzero": {"version": __version__, "kind": "flicker report"}, "clip": str(clip), **report})
    write_png(png_path, plot_report(report, Path(clip).name))
    return report


def deflicker_clip(
    clip: str | Path,
    output: str | Path,
    anchors: list[int] | None = None,
    settings: DeflickerSettings | None = None,
    force: bool = False,
) -> dict:
    """Deflicker `clip` into `output` (streaming); write its manifest and flicker reports; return
    the before/after summary."""
    info = video_info(clip)
    settings = settings or DeflickerSettings()
    settings.check()
    anchors = [integer(a, "anchors", 0, 10**9) for a in anchors or []]
    json_path, png_path = report_paths(output)
    manifest_path = sidecar(output, MANIFEST)
    out = check_output(output, force, [clip], sidecars=[manifest_path, json_path, png_path])
    frames = read_video(clip)
    head = list(itertools.islice(frames, 2))  # refuse short clips before writing anything
    if len(head) < 2:
        raise BadInput(f"{clip} has {len(head)} frame(s); deflickering needs at least 2")
    with OutputLock(out):
        cleanup_temporaries(out)
        writer = VideoWriter(out, info.get("fps") or 8.0)
        try:
            for frame in deflicker(itertools.chain(head, frames), anchors, settings):
                writer.write(frame)
            encoded = writer.close()
            before = flicker_report(read_video(clip))
            after = flicker_report(read_video(encoded))
        except BaseException:
            writer.abort()
            raise
        keys = ("frames", "flicker_index", "colour_flicker_index", "warp_error")
        summary = {name: {k: r[k] for k in keys} for name, r in (("input", before), ("output", after))}
        proof = {"version": __version__, "kind": out.suffix or "folder"}
        if encoded.is_file():
            proof["sha256"] = sha256_of(encoded)
        else:
            proof["frames"] = after["frames"]
        write_json(
            manifest_path,
            {
                "vidzero": proof,
                "task": "deflicker",
                "input": str(clip),
                "output": str(out),
                "sidecars": [str(manifest_path), str(json_path), str(png_path)],
                "settings": asdict(settings),
                "anchors": anchors,
                **summary,
            },
        )
        write_json(
            json_path,
            {
                "vidzero": {"version": __version__, "kind": "flicker report"},
                "input": str(clip),
                "output": str(out),
                **summary,
                "per_frame": after["per_frame"],
            },
        )
        write_png(
            png_path, plot_report(after, f"{Path(output).name} (input flicker index {before['flicker_index']:.3f})")
        )
        if out.is_dir() and not out.is_symlink():
            from vidzero.outputs import remove_output

            remove_output(out)
        writer.commit()
    return summary
