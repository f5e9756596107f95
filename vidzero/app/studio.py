"""vidzero studio: what the local web editor does, without the page (vidzero.app.studio_page).

Each action of the page is a method here, a thin layer over the task table: the inputs and
options the page's fields hold become a checked spec by the very call a batch job line makes
(`vidzero.tasks.spec_from_fields`), with the CLI's messages, and the model is kept in memory as
the batch keeps it (`vidzero.tasks.OneModel`). A run is saved by `PlannedRun.save` into the
studio's outputs folder, so what the page makes is what the CLI makes (video, manifest,
sidecars, state), and either can resume, reroll, extend or batch what the other made.

A run goes on in a worker thread; the page polls `RunHandle.snapshot()` for the frames written
so far (the run's own frames folder), the planner's estimate and the step counter. Stop asks the
run to end at its next denoising step (a step callback that returns False); the state saved
after its last finished window makes it resumable, and Resume continues it to the bytes an
uninterrupted run writes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidzero.errors import BadInput, StopRun
from vidzero.media.outputs import (
    CONTACT,
    FRAME_NAME,
    MANIFEST,
    PARTIAL,
    REPORT_PNG,
    STATE,
    VIDEO_SUFFIXES,
    check_path_text,
    discard,
    environment_message,
    read_manifest,
    sidecar,
    virtual_root,
    write_errors,
)
from vidzero.runs.options import LOAD
from vidzero.runs.output import Output
from vidzero.tasks import OneModel, read_inputs, spec_from_fields

STUDIO_FOLDER = ".studio"  # inside the outputs folder: the page's uploads and temporary files


def message(exc: BaseException) -> str:
    """The one line the page shows for an error: the CLI's own for bad input, a short line for a
    defect (the server keeps serving and never shows a traceback)."""
    if isinstance(exc, BadInput):
        return exc.for_cli()
    if isinstance(exc, OSError) and environment_message(exc) is not None:
        return str(environment_message(exc))
    return f"internal error: {type(exc).__name__}: {str(exc)[:300]}"


@dataclass
class Progress:
    """The run's progress as the page shows it; the engine reports to it (its progress
    protocol: `job` after each window, `step` after each denoising step)."""

    windows: int = 0
    windows_done: int = 0
    steps_done: int = 0
    steps: int = 0
    started: float = field(default_factory=time.monotonic)

    def job(self, done: int, total: int) -> None:
        self.windows_done, self.windows = done, total

    def step(self, done: int, total: int) -> None:
        self.steps_done, self.steps = done, total

    def close(self) -> None:
        pass

    def fraction(self) -> float:
        """The share of the run's model work done (windows, and steps within the current one)."""
        if not self.windows:
            return 0.0
        within = self.steps_done / self.steps if self.steps and self.windows_done < self.windows else 0.0
        return min(1.0, (self.windows_done + within) / self.windows)

    def line(self) -> str:
        if not self.windows:
            return "starting"
        elapsed = time.monotonic() - self.started
        text = f"window {min(self.windows_done + 1, self.windows)}/{self.windows}, step {self.steps_done}/{self.steps}"
        if self.windows_done:
            text += f", about {elapsed / self.windows_done * (self.windows - self.windows_done):.0f} s left"
        return text


@dataclass
class RunHandle:
    """One run the page started: its output, its thread, its progress, how it ended."""

    output: Path
    estimate: str
    progress: Progress = field(default_factory=Progress)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    outcome: str = ""  # "done", "stopped", "complete already", or the error line
    manifest: dict | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    @property
    def shown(self) -> Path:
        """Where the page's copies of the frames live: the run's frames folder goes when the run
        finishes, so each frame is hard-linked here (no second copy on disk) as it appears."""
        return self.output.parent / STUDIO_FOLDER / "frames" / self.output.name

    def frames(self) -> list[Path]:
        """The frames written so far, in order."""
        partial = sidecar(self.output, PARTIAL)
        made = sorted(p for p in partial.iterdir() if FRAME_NAME.match(p.name)) if partial.is_dir() else []
        if made:
            self.shown.mkdir(parents=True, exist_ok=True)
        for frame in made:
            kept = self.shown / frame.name
            if not kept.exists():
                try:
                    os.link(frame, kept)
                except OSError:  # a file system without hard links, or the run just removed it
                    with contextlib.suppress(OSError):
                        shutil.copyfile(frame, kept)
        return sorted(self.shown.iterdir()) if self.shown.is_dir() else []

    def keep_frames(self, first_output: int) -> None:
        """Once the run finished: the frames the page did not catch while they were in the frames
        folder (a run faster than the page's polling), read back from the video."""
        from vidzero.media.pictures import write_png
        from vidzero.media.video import read_video

        self.frames()
        self.shown.mkdir(parents=True, exist_ok=True)
        for offset, image in enumerate(read_video(self.output)):
            kept = self.shown / f"{first_output + offset:06d}.png"
            if not kept.exists():
                write_png(kept, image)

    def snapshot(self) -> dict[str, Any]:
        return {
            "status": self.outcome or self.progress.line(),
            "fraction": 1.0 if self.outcome == "done" else self.progress.fraction(),
            "estimate": self.estimate,
            "frames": [str(p) for p in self.frames()],
            "running": self.running,
            "output": str(self.output) if self.outcome == "done" or self.outcome == "complete already" else None,
        }

    def wait(self, timeout: float | None = None) -> str:
        if self.thread is not None:
            self.thread.join(timeout)
        return self.outcome


class Studio:
    """The page's actions over one outputs folder."""

    def __init__(self, outputs: str | Path, model: str = LOAD.model, device: str = LOAD.device) -> None:
        self.outputs = Path(outputs).resolve()
        self.label = str(outputs)  # the folder as the user named it, for the page
        check_path_text(str(self.outputs), "{option}", "outputs")
        if self.outputs.exists() and not self.outputs.is_dir():
            raise BadInput(f"{{option}} {outputs} is a file, not a folder", "outputs")
        if virtual_root(self.outputs) is not None:
            raise BadInput(f"{{option}} {outputs} is in a kernel file system: choose a folder on a disk", "outputs")
        with write_errors(self.outputs):
            (self.outputs / STUDIO_FOLDER).mkdir(parents=True, exist_ok=True)
        self.model, self.device = model, device
        self._model = OneModel()
        self._lock = threading.Lock()  # one run at a time on the one model
        self.current: RunHandle | None = None
        self.made: list[Path] = []  # outputs the page's runs and deflickers finished

    def made_here(self) -> list[Path]:
        """The outputs this studio wrote that are still there."""
        return [p for p in self.made if p.exists()]

    def choose_model(self, model: str) -> dict[str, Any]:
        """Use another checkpoint for the next runs ('shapes', a folder, a hub id in the local
        cache); returns what its files say of it, as `vidzero info` prints it."""
        from vidzero.models.checkpoint import inspect_checkpoint

        summary = inspect_checkpoint((model or "").strip() or LOAD.model).summary()
        self.model = summary["model"]
        return summary

    # ------------------------------------------------------------------ names and files
    def output_path(self, name: str) -> Path:
        """A video in the outputs folder, from a plain file name ("circle" -> circle.mp4)."""
        name = (name or "").strip()
        if not name:
            raise BadInput("give the video a name")
        check_path_text(name, "name")
        if Path(name).name != name or name in (".", "..") or name.startswith("."):
            raise BadInput(f"name {name!r} must be a plain file name: videos are written in the outputs folder only")
        if Path(name).suffix.lower() not in VIDEO_SUFFIXES:
            name += ".mp4"
        return self.outputs / name

    def next_name(self, stem: str = "video") -> str:
        taken = {p.name for p in self.outputs.iterdir()}
        n = 1
        while f"{stem}-{n:03d}.mp4" in taken or sidecar(f"{stem}-{n:03d}.mp4", STATE).name in taken:
            n += 1
        return f"{stem}-{n:03d}.mp4"

    def free_name(self, name: str) -> str:
        """`name` while no finished video has it, else the next free name of its kind: the page's
        name field moves on after a run, so that the next run does not collide, and stays after
        Stop, so that Resume continues the stopped run."""
        try:
            taken = self.output_path(name)
        except BadInput:
            return name
        if not taken.exists():
            return name
        stem = re.sub(r"-\d{3}$", "", taken.stem) or "video"
        return self.next_name(stem)

    def finished_outputs(self) -> list[str]:
        """Videos in the outputs folder that a run finished (their manifest beside them)."""
        return sorted(
            p.name for p in self.outputs.iterdir() if p.suffix in VIDEO_SUFFIXES and sidecar(p, MANIFEST).exists()
        )

    def served(self, path: str | Path) -> Path:
        """A file the page may show: inside the outputs folder, or refused."""
        real = Path(path).resolve()
        if self.outputs != real and self.outputs not in real.parents:
            raise BadInput(f"{path} is outside the outputs folder")
        return real

    # ------------------------------------------------------------------ runs
    def spec(self, task: str, inputs: dict[str, Any], options: dict[str, Any]) -> Any:
        """The checked spec of a page's run: the inputs as a job line gives them, the options the
        page set (an empty field is the option's default)."""
        given = {k: v for k, v in options.items() if v not in (None, "")}
        if task != "reroll":  # a reroll keeps its run's model
            given.setdefault("model", self.model)
        given.setdefault("device", self.device)
        return spec_from_fields(task, inputs, given)

    def start(
        self, task: str, inputs: dict[str, Any], options: dict[str, Any], name: str, resume: bool = False
    ) -> RunHandle:
        """Check everything, then run and save in a worker thread; bad input raises here, before
        anything is written."""
        from vidzero.tasks import start as plan_run

        if self.current is not None and self.current.running:
            raise BadInput("a run is going on: stop it or wait for it to finish")
        out = self.output_path(name)
        spec = self.spec(task, inputs, options)
        handle = RunHandle(out, estimate="")
        run = plan_run(spec, self._model(spec.options))
        run.progress = handle.progress
        run.engine.callback = lambda info: not handle.stop.is_set()
        Output(out, run.input_paths).decide(run.fingerprint(), force=False, resume=resume)  # before any write
        discard(handle.shown)  # the frames an earlier run of this name showed
        handle.estimate = estimate(run)

        def work() -> None:
            with self._lock:
                try:
                    run.save(out, resume=resume)
                    handle.manifest = run.manifest_written
                    handle.keep_frames(run.first_output)
                    handle.outcome = "complete already" if run.complete_already else "done"
                    self.made.append(out)
                    if run.stopped:
                        handle.outcome = "stopped"
                except StopRun:
                    handle.outcome = "stopped"
                except Exception as exc:  # the server keeps serving
                    handle.outcome = "error: " + message(exc)

        handle.thread = threading.Thread(target=work, name="vidzero-studio-run", daemon=True)
        self.current = handle
        handle.thread.start()
        return handle

    def stop(self) -> None:
        """Ask the current run to end at its next step (resumable)."""
        if self.current is not None:
            self.current.stop.set()

    # ------------------------------------------------------------------ results
    def result_files(self, output: Path) -> dict[str, Any]:
        """What the page shows of a finished output: the video, its contact sheet, the quality
        report's picture and its seams (with the frames each covers)."""
        record = read_manifest(sidecar(output, MANIFEST)) or {}
        seams = ((record.get("report") or {}).get("seams")) or []
        existing = {"video": output, "contact": sidecar(output, CONTACT), "report": sidecar(output, REPORT_PNG)}
        return {k: str(v) if v.exists() else None for k, v in existing.items()} | {"seams": seams}

    def deflicker(self, clip: str | Path, name: str) -> dict:
        """Deflicker a clip into the outputs folder; its manifest and flicker report beside it."""
        from vidzero.tasks.deflicker import DeflickerInputs, deflicker_clip

        out = self.output_path(name)
        inputs = read_inputs("deflicker", {"clip": str(clip)})
        assert isinstance(inputs, DeflickerInputs)
        summary = deflicker_clip(inputs, out)
        self.made.append(out)
        return summary

    def report(self, clip: str | Path) -> dict:
        """The quality report of a clip in the outputs folder, written beside it."""
        from vidzero.app.clip_report import report_clip

        return report_clip(self.served(clip), force=True)


def estimate(run: Any) -> str:
    """The plan's cost as `--dry-run` states it (`PlannedRun.cost`): frames, windows, guided
    evaluations and gradients, and the time from the last run of this model on this machine."""
    from vidzero.runs.timings import key_for, recorded

    cost = run.cost()
    text = f"{run.length - run.first_output} frames in {cost.windows} windows, {cost.evaluations} guided evaluations"
    if cost.backward:
        text += f" ({cost.backward} with a gradient)"
    per_evaluation = recorded(key_for(run.backbone)).get("seconds")
    if per_evaluation:
        text += f", about {per_evaluation * cost.work:.0f} s (from the last run on this machine)"
    return text


def placed(files: list[str], positions: str, what: str) -> dict[str, str]:
    """Files at frame positions ("0, 15": the first file at frame 0, the second at 15)."""
    words = [w for w in re.split(r"[,\s]+", (positions or "").strip()) if w]
    if not all(w.isdigit() for w in words) or len(words) != len(files):
        raise BadInput(f"give one frame number per {what}, in order (e.g. 0, 15): {len(files)} file(s), {positions!r}")
    return dict(zip(words, files, strict=True))


def timeline_inputs(
    images: list[str], image_frames: str, clips: list[str], clip_frames: str, prompt: Any, frames: int | None
) -> dict[str, Any]:
    """An infill's inputs from the page's timeline: images and clips at frame positions (a clip
    fills frames from its position on), a prompt or a prompt per stretch, the length."""
    if not images and not clips:
        raise BadInput("place at least one image or clip on the timeline")
    inputs: dict[str, Any] = {"prompt": prompt, "frames": frames}
    if images:
        inputs["keys"] = placed(images, image_frames, "image")
    if clips:
        inputs["clips"] = placed(clips, clip_frames, "clip")
    return inputs


def bar(fraction: float, width: int = 30) -> str:
    """A progress bar in text (the page's status line)."""
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "\u2588" * filled + "\u2591" * (width - filled) + f" {fraction:.0%}"


def seam_choices(seams: list[dict]) -> list[str]:
    """A finished video's flagged seams as the page lists them: "8-11 (seam at 10: flicker)" (the
    span each seam's reroll regenerates, as the report keeps it)."""
    return [f"{s['frames']} (seam at {s.get('frame')}: {s.get('signal')})" for s in seams if s.get("frames")]


def frame_span(text: str) -> str:
    """A reroll span as the page takes it ("40-47"), checked as the CLI checks it."""
    text = (text or "").split("(")[0]  # a listed seam: "8-11 (seam at 10: flicker)"
    if not re.fullmatch(r"\s*\d+\s*-\s*\d+\s*", text):
        raise BadInput(f"frames {text.strip()!r}: give a span such as 8-11")
    return text.replace(" ", "")
