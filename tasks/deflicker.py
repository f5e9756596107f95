"""`vidzero deflicker`: remove flicker from an existing clip, or report on it.

The algorithm lives in `vidzero.quality.flicker` (it also runs on generated frames via
--deflicker); this task reads a clip, streams it through, and writes the result with its
manifest and a flicker report of the clip before and after (`OUT.flicker.json`, `OUT.flicker.png`).
It needs no model, so it takes no run options.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from vidzero.errors import BadInput
from vidzero.media.outputs import DEFAULT_FPS, MANIFEST, content_proof, sidecar, write_json
from vidzero.runs.options import integer
from vidzero.runs.output import Output, write_clip_report
from vidzero.runs.spec import inp, input_record, read_fields
from vidzero.version import __version__


@dataclass(frozen=True)
class DeflickerInputs:
    task: ClassVar[str] = "deflicker"

    clip: Path = inp("Video file or folder of frames.", cli="argument")
    anchors: tuple[int, ...] = inp(
        "Index of a known frame: kept unchanged, pulls its neighbours' colours. Repeatable.",
        (),
        names=("--anchor",),
        metavar="N",
    )
    window: int = inp("Frames on each side for the temporal median of colour statistics.", 4)
    temporal: float = inp("Weight of the flow-warped previous frame (0 turns it off).", 0.5)
    flow: str = inp("Optical flow: dis, farneback or none.", "dis")

    @classmethod
    def from_cli(cls, values: dict[str, Any]) -> DeflickerInputs:
        anchors = tuple(values["anchors"] or ())
        return cls(values["clip"], anchors, values["window"], values["temporal"], values["flow"])

    def check(self) -> None:
        from vidzero.media.video import read_video, video_info  # PyAV: not on `vidzero --help`

        self.settings().check()
        info = video_info(self.clip)
        anchors = [integer(anchor, "anchors", 0, 10**9) for anchor in self.anchors]
        if anchors:
            count = info.get("frames") or sum(1 for _ in read_video(self.clip))
            outside = [a for a in anchors if a >= count]
            if outside:
                raise BadInput(
                    f"{{option}} {outside[0]} is outside the clip's {count} frames (0..{count - 1})", "anchors"
                )

    def settings(self) -> Any:
        from vidzero.quality.flicker import DeflickerSettings  # OpenCV: not on `vidzero --help`

        return DeflickerSettings(window=self.window, temporal=self.temporal, flow=self.flow)

    def paths(self) -> list[Path]:
        return [Path(self.clip)]

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> DeflickerInputs:
        values = read_fields(cls, record, "deflicker")
        values["clip"] = Path(values["clip"])
        values["anchors"] = tuple(values.get("anchors", ()))
        return cls(**values)


FLICKER_JSON, FLICKER_PNG = ".flicker.json", ".flicker.png"


def report_paths(path: str | Path) -> tuple[Path, Path]:
    return sidecar(path, FLICKER_JSON), sidecar(path, FLICKER_PNG)


def report_clip(clip: str | Path, force: bool = False) -> dict:
    """Write `<clip>.flicker.json` and `<clip>.flicker.png` next to the clip; return the report."""
    from vidzero.media.video import read_video, video_info
    from vidzero.quality.flicker import flicker_report, plot_flicker

    video_info(clip)
    return write_clip_report(
        clip, report_paths(clip), "flicker report", force, lambda: flicker_report(read_video(clip)), plot_flicker
    )


def deflicker_clip(inputs: DeflickerInputs, output: str | Path | Output, force: bool = False) -> dict:
    """Deflicker the clip into `output` (streaming); write its manifest and flicker reports; return
    the before/after summary."""
    from vidzero.media.pictures import write_png
    from vidzero.media.video import VideoWriter, read_video, video_info
    from vidzero.quality.flicker import deflicker, flicker_report, plot_flicker

    inputs.check()
    clip, settings, anchors = inputs.clip, inputs.settings(), list(inputs.anchors)
    info = video_info(clip)
    if not isinstance(output, Output):
        output = Output(output, [clip], sidecars=deflicker_sidecars(output))
    json_path, png_path = report_paths(output.path)
    frames = read_video(clip)
    head = list(itertools.islice(frames, 2))  # refuse short clips before writing anything
    if len(head) < 2:
        raise BadInput(f"{clip} has {len(head)} frame(s); deflickering needs at least 2")
    with output.claim():
        output.check_writable(force)
        out = output.path
        writer = VideoWriter(out, info.get("fps") or DEFAULT_FPS)
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
        proof = {"version": __version__, "kind": out.suffix or "folder", **content_proof(encoded)}
        output.write_manifest(
            {
                "vidzero": proof,
                "spec": {"task": "deflicker", "inputs": input_record(inputs), "options": {}},
                "fingerprint": deflicker_fingerprint(inputs),
                "input": str(clip),
                "output": str(out),
                "sidecars": [str(p) for p in output.sidecars],
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
        write_png(png_path, plot_flicker(after, f"{out.name} (input flicker index {before['flicker_index']:.3f})"))
        output.commit(writer)
    return summary


def deflicker_fingerprint(inputs: DeflickerInputs) -> str:
    """What identifies a deflicker's output: its inputs' record (the clip, anchors, settings)."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(input_record(inputs), sort_keys=True, default=str).encode()).hexdigest()


def deflicker_sidecars(output: str | Path) -> list[Path]:
    """The files a deflicker writes beside its output: manifest, flicker report and its plot."""
    return [sidecar(output, MANIFEST), *report_paths(output)]
