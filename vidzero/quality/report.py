"""The quality report of a clip: where a video went wrong, without watching it.

Per frame, on pixels alone (offline, CPU, no model):

- `flicker`: the brightness jitter, |second temporal difference| of the mean L* (CIELAB);
- `step`: how far the content moved from the previous frame (mean dense optical flow, px);
- `change`: what the flow does not explain (mean absolute error after warping the previous frame
  onto this one, 8-bit levels): a cut, a pop or a seam shows here;
- `colour_drift`: CIE76 delta E between the frame's mean colour and the nearest known frame's
  (the user's image or keyframes; frame 0 for a clip with no manifest);
- `known_distance`: for a known frame, its difference from the known pixels given (0 when kept
  exactly); for a frame next to a known one, the step from it (mean absolute 8-bit difference).

A **seam** is a step k-1 -> k where the motion, the unexplained change or the flicker stands out
from the steps around it: more than `SEAM_RATIO` times their median, and above a floor (1.5 px
of motion, 4 levels of change, 1 L* of flicker), so that a still clip does not flag its noise.
Each flagged seam comes with the `vidzero reroll` command that regenerates the frames around it.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from vidzero.core.motion import optical_flow, warp
from vidzero.media.outputs import REPORT_JSON, REPORT_PNG, sidecar
from vidzero.quality.flicker import lab_stats
from vidzero.quality.plot import Panel, line_chart

SEAM_RATIO = 3.0
SEAM_FLOORS = {"step": 1.5, "change": 4.0, "flicker": 1.0}  # px, 8-bit levels, L*


def mean_lab(frame: np.ndarray) -> np.ndarray:
    return lab_stats(frame)[0]


class ReportBuilder:
    """Builds the report one frame at a time (constant memory: two frames)."""

    def __init__(self, known: Mapping[int, np.ndarray | None] | None = None) -> None:
        self.known = dict(known) if known else {0: None}
        self.known_labs = {i: mean_lab(f) for i, f in self.known.items() if f is not None}
        self.brightness: list[float] = []
        self.steps, self.changes = [0.0], [0.0]
        self.labs: list[np.ndarray] = []
        self.distance: list[float | None] = []
        self.previous: np.ndarray | None = None

    def add(self, frame: np.ndarray) -> None:
        index, known = len(self.brightness), self.known
        lab = mean_lab(frame)
        if index in known and index not in self.known_labs:
            self.known_labs[index] = lab
        self.brightness.append(float(lab[0]))
        self.labs.append(lab)
        self.distance.append(None)
        given = known.get(index)
        if given is not None:
            self.distance[index] = float(np.abs(frame.astype(np.float32) - given.astype(np.float32)).mean())
        if self.previous is not None:
            previous = self.previous
            flow = optical_flow(frame, previous, "dis")
            self.steps.append(float(np.linalg.norm(flow, axis=-1).mean()))
            self.changes.append(
                float(np.abs(warp(previous.astype(np.float32), flow) - frame.astype(np.float32)).mean())
            )
            step = float(np.abs(frame.astype(np.float32) - previous.astype(np.float32)).mean())
            if index - 1 in known and index not in known:
                self.distance[index] = step  # the step out of a known frame
            elif index in known and index - 1 not in known:
                self.distance[index - 1] = step  # the step into a known frame
        self.previous = frame

    def finish(self, output: str | None = None) -> dict:
        n = len(self.brightness)
        if n < 2:
            from vidzero.errors import BadInput

            raise BadInput(f"a report needs at least 2 frames, got {n}")
        labs = self.known_labs

        def nearest_known(i: int) -> int:
            return min(labs, key=lambda k: (abs(k - i), k))

        drift = [float(np.linalg.norm(lab - labs[nearest_known(i)])) for i, lab in enumerate(self.labs)]
        b = np.array(self.brightness)
        jitter = [0.0] + [float(abs(b[i] - 0.5 * (b[i - 1] + b[i + 1]))) for i in range(1, n - 1)] + [0.0]
        signals = {"step": self.steps, "change": self.changes, "flicker": jitter}
        seams = find_seams(signals)
        return {
            "frames": n,
            "known_frames": sorted(self.known),
            "summary": {
                "flicker_index": float(np.mean(jitter[1:-1])) if n > 2 else 0.0,
                "median_step": float(np.median(self.steps[1:])),
                "median_change": float(np.median(self.changes[1:])),
                "max_colour_drift": float(np.max(drift)),
                "seams": len(seams),
            },
            "per_frame": {
                "flicker": jitter,
                "step": self.steps,
                "change": self.changes,
                "colour_drift": drift,
                "known_distance": self.distance,
            },
            "seams": [seam_entry(k, why, signals, set(self.known), n, output) for k, why in seams],
        }


def quality_report(
    frames: Iterable[np.ndarray], known: Mapping[int, np.ndarray | None] | None = None, output: str | None = None
) -> dict:
    """The report of a stream of (H, W, 3) uint8 frames. `known` maps the index of each known
    frame to the pixels that were given for it (None: take the clip's own); default: frame 0."""
    builder = ReportBuilder(known)
    for frame in frames:
        builder.add(frame)
    return builder.finish(output)


def seam_entry(k: int, why: str, signals: dict[str, list[float]], known: set[int], n: int, output: str | None) -> dict:
    """A flagged seam (the step k-1 -> k) and the reroll that regenerates the frames around it."""
    first, last = max(0, k - 2), min(n - 1, k + 1)
    while first in known and first < last:
        first += 1
    while last in known and last > first:
        last -= 1
    return {
        "frame": k,
        "signal": why,
        "value": signals[why][k],
        "local_median": local_median(signals[why], k),
        "frames": f"{first}-{last}",  # the span its reroll regenerates
        # quoted as a shell would need it (names with spaces, quotes or other letters)
        "reroll": shlex.join(["vidzero", "reroll", str(output or "OUT"), "--frames", f"{first}-{last}", "-o", "NEW"]),
    }


def local_median(values: list[float], k: int, radius: int = 4) -> float:
    around = [values[i] for i in range(max(1, k - radius), min(len(values), k + radius + 1)) if i != k]
    return float(np.median(around)) if around else 0.0


def find_seams(signals: dict[str, list[float]]) -> list[tuple[int, str]]:
    """Steps k (frame k-1 -> k) where a signal stands out from the steps around it."""
    seams = []
    for k in range(1, len(signals["step"])):
        for name, values in signals.items():
            if values[k] > SEAM_FLOORS[name] and values[k] > SEAM_RATIO * local_median(values, k):
                seams.append((k, name))
                break
    return seams


def plot_report(report: dict, title: str = "") -> np.ndarray:

    pf = report["per_frame"]
    marks = [s["frame"] for s in report["seams"]]
    return line_chart(
        [
            Panel(
                "motion and change (step k-1 -> k)",
                {"step (flow px)": pf["step"], "change (levels)": pf["change"]},
                marks,
            ),
            Panel(
                "flicker and colour", {"flicker (L*)": pf["flicker"], "colour drift (dE)": pf["colour_drift"]}, marks
            ),
            Panel(
                "distance to known frames",
                {"levels": [v if v is not None else float("nan") for v in pf["known_distance"]]},
                marks,
            ),
        ],
        f"{title}  {len(marks)} seam(s) flagged",
    )


def seam_lines(seams: list[dict], shown: int = 10) -> list[str]:
    """The seams a report flagged as lines to print, each with the reroll that regenerates it."""
    lines = [
        f"  seam at frame {s['frame']} ({s['signal']} {s['value']:.2f}, around it {s['local_median']:.2f}): "
        f"{s['reroll']}"
        for s in seams[:shown]
    ]
    return lines + ([f"  ... and {len(seams) - shown} more in the report"] if len(seams) > shown else [])


def report_paths(output: str | Path) -> tuple[Path, Path]:

    return sidecar(output, REPORT_JSON), sidecar(output, REPORT_PNG)
