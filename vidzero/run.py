"""A planned run: the engine, its plan and its inputs, streamed to frames or saved to disk.

Tasks build a `PlannedRun`. It generates its frames once: iterating it streams them as they are
made (and keeps them, so that a later `save` writes them without generating again); `save`
writes the video, a manifest, a contact sheet and a final state, atomically, resumable after an
interruption at any moment.

Finishing a saved run is a fixed sequence, each step atomic and each repeatable, so that
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

import itertools
import os
import platform
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidzero.backbone import Backbone
from vidzero.engine import Engine, EngineState, Frame, Prompt, from_pixels
from vidzero.errors import BadInput, StopRun
from vidzero.flicker import DeflickerSettings, deflicker
from vidzero.io import VideoWriter, check_codec, contact_sheet, read_png, sample_indices, write_png
from vidzero.outputs import (
    FRAME_FOLDER,
    FRAME_NAME,
    OutputLock,
    check_destination,
    check_output,
    cleanup_temporaries,
    discard,
    output_kind,
    remove_output,
    run_sidecars,
    sha256_of,
    sidecar_paths,
    write_errors,
    write_json,
)
from vidzero.progress import progress_for
from vidzero.report import ReportBuilder, plot_report, report_paths
from vidzero.runstate import engine_payload, engine_state, fingerprint, load_state, save_state, state_paths
from vidzero.timeline import WindowJob
from vidzero.version import __version__


def library_versions() -> dict[str, str]:
    import av
    import diffusers
    import transformers

    return {
        "vidzero": __version__,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "av": av.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def fault_point(name: str) -> None:
    """Kill this process at a named point of saving when VIDZERO_FAULT names it (`name` or
    `name@N` for the N-th time): the hook the interruption tests use. Off unless set."""
    wanted = os.environ.get("VIDZERO_FAULT")
    if not wanted:
        return
    point, _, count = wanted.partition("@")
    if point != name:
        return
    fault_point.seen[name] = fault_point.seen.get(name, 0) + 1  # type: ignore[attr-defined]
    if fault_point.seen[name] >= int(count or 1):  # type: ignore[attr-defined]
        os.kill(os.getpid(), signal.SIGKILL)


fault_point.seen = {}  # type: ignore[attr-defined]


def as_output_type(frame: Frame, output_type: str) -> Frame:
    if output_type == "uint8":
        return frame
    if output_type == "float":
        image: Any = frame.image.astype(np.float32) / 255.0
    elif output_type == "pil":
        from PIL import Image

        image = Image.fromarray(frame.image)
    else:  # latent
        image = frame.latent
    return Frame(frame.index, image, frame.known, frame.seed, frame.latent)


@dataclass
class PlannedRun:
    task: str
    engine: Engine
    jobs: list[WindowJob]
    length: int
    known: dict[int, np.ndarray]
    prompt: Prompt  # one prompt, or {first frame: prompt} (a schedule)
    negative_prompt: str = ""
    fps: float = 8.0
    inputs: dict = field(default_factory=dict)  # task-specific parameters for the manifest
    progress: Any = True
    deflicker: DeflickerSettings | None = None  # applied when saving; known frames are anchors
    first_output: int = 0  # frames before this timeline index are not written (predict --new-only)
    known_latents: dict | None = None  # latents of known frames used as-is (extend --from, latent queue)
    input_paths: list[Path] = field(default_factory=list)  # files the output must never replace
    output_type: str = "uint8"
    codec: str | None = None
    crf: int | None = None
    options: dict = field(default_factory=dict)  # the resolved run options, for the manifest
    # the frames the quality report measures against (the user's); default: every known frame.
    # A reroll keeps most frames as known, but its report compares with what the user gave.
    report_known: set[int] | None = None

    def __post_init__(self) -> None:
        self._made: list[Frame] = []  # frames generated so far, in order
        self._stream: Iterator[Frame] | None = None
        self._finished = False
        self._last_state: EngineState | None = None
        self._checkpoint: Callable[[EngineState], None] | None = None
        self._progress: Any = None
        self._saved_to: Path | None = None
        self.stopped = False
        self.complete_already = False  # save(resume=True) found the run finished
        self.manifest_written: dict | None = None  # what save() wrote next to the output

    # ------------------------------------------------------------------ generating (once)
    def _generate(self, resume: EngineState | None = None) -> Iterator[Frame]:
        """Frames not made yet, from the one stream this run has."""
        if self._stream is None:
            if self._finished:
                return
            self._progress = progress_for(self.progress)
            self._stream = self.engine.run(
                self.jobs,
                self.length,
                self.known,
                self.prompt,
                self.negative_prompt,
                self._progress,
                resume=resume,
                on_job_done=self._job_done,
                known_latents=self.known_latents,
            )
        elif resume is not None:
            raise BadInput("this run has already started; resume applies to a run that has not")
        # next() by hand, not `yield from`: a caller that stops iterating early closes this
        # generator, and the engine's stream must survive that to go on later.
        try:
            while True:
                try:
                    frame = next(self._stream)
                except StopIteration:
                    break
                yield frame
        except StopRun:
            self._stream = None
            raise
        finally:
            if self._progress is not None and hasattr(self._progress, "close"):
                self._progress.close()
        self._stream = None
        self._finished = True

    def _job_done(self, state: EngineState) -> None:
        self._last_state = state
        if self._checkpoint is not None:
            self._checkpoint(state)

    def __iter__(self) -> Iterator[Frame]:
        """Every frame, in order; frames made by an earlier iteration are not made again. A step
        callback that returns False ends the iteration early (`self.stopped` is then True)."""
        for frame in self._made:
            yield as_output_type(frame, self.output_type)
        if self._finished:
            return
        self._check_not_streamed_away()
        try:
            for frame in self._generate():
                self._made.append(frame)
                yield as_output_type(frame, self.output_type)
        except StopRun:
            self.stopped = True

    def _check_not_streamed_away(self) -> None:
        if self._saved_to is not None and self._finished:
            raise BadInput(
                f"this run was saved to {self._saved_to} without keeping its frames; plan it again "
                "(or iterate it before saving) to have them twice"
            )

    @property
    def backbone(self) -> Backbone:
        return self.engine.backbone

    def frames(self) -> list[Any]:
        """All frames (of `output_type`), in order (holds the whole video in memory)."""
        return [f.image for f in self]

    # ------------------------------------------------------------------ records
    def manifest(self) -> dict:
        bb, stats = self.backbone, self.engine.stats
        generated = max(1, len(stats.frame_seeds))
        return {
            "task": self.task,
            "prompt": self.prompt
            if isinstance(self.prompt, str)
            else {str(k): v for k, v in sorted(self.prompt.items())},
            "negative_prompt": self.negative_prompt,
            "frames": self.length,
            "written_frames": self.length - self.first_output,
            "known_frames": sorted(self.known),
            # the user's frames among them (a reroll's kept frames are known but not given)
            "given_frames": sorted(self.known if self.report_known is None else self.report_known),
            "fps": self.fps,
            "inputs": self.inputs,
            "options": self.options,
            "sampler": asdict(self.engine.settings),
            "queue": self.engine.queue,
            "guidance_passes": self.engine.guidance_passes,
            "seed": self.engine.seed,
            "frame_seeds": {str(k): v for k, v in sorted(stats.frame_seeds.items())},
            "plan": [{"slots": list(j.slots), "generate": list(j.generate)} for j in self.jobs],
            "job_offset": self.engine.job_offset,
            "model": {
                "id": bb.model_id,
                "revision": bb.revision,
                "window": bb.frames,
                "height": bb.height,
                "width": bb.width,
                "format_from": getattr(bb, "format_source", None),
            },
            "device": str(bb.device),
            "dtype": str(bb.dtype).replace("torch.", ""),
            "truncated_prompts": dict(bb.truncated_prompts),
            "versions": library_versions(),
            "timings": {
                "seconds": round(stats.seconds, 3),
                "unet_seconds": round(stats.unet_seconds, 3),
                "windows": stats.jobs,
                "cfg_evaluations": stats.cfg_evaluations,
                "unet_samples": stats.unet_samples,
                "seconds_per_generated_frame": round(stats.seconds / generated, 4),
                "cfg_evaluations_per_generated_frame": round(stats.cfg_evaluations / generated, 3),
            },
        }

    def fingerprint(self) -> str:
        """What identifies this run's frames (its parameters, plan and known pixels)."""
        return fingerprint(self.state_params(), self.known)

    def state_params(self) -> dict:
        """What decides this run's frames (for the resume fingerprint)."""
        bb = self.backbone
        return {
            "task": self.task,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "length": self.length,
            "sampler": asdict(self.engine.settings),
            "seed": self.engine.seed,
            "queue": self.engine.queue,
            "guidance_passes": self.engine.guidance_passes,
            "job_offset": self.engine.job_offset,
            "model": [bb.model_id, bb.revision, bb.frames, bb.height, bb.width],
            "dtype": str(bb.dtype),
            "plan": [(j.slots, j.generate, j.init_source) for j in self.jobs],
            "output": {
                "first": self.first_output,
                "fps": self.fps,
                "codec": self.codec,
                "crf": self.crf,
                "deflicker": asdict(self.deflicker) if self.deflicker else None,
            },
        }

    # ------------------------------------------------------------------ saving
    def save(self, path: str | Path, force: bool = False, resume: bool = False) -> Path:
        """Generate (unless done already) and write `path` with its manifest, contact sheet,
        quality report and final state; resumable with `resume=True` after an interruption."""
        out = check_destination(path, self.input_paths)  # names and folders, before the lock
        check_codec(output_kind(out), self.codec, self.crf)
        if self._finished and len(self._made) < self.length:
            self._check_not_streamed_away()
        state_path, partial = state_paths(out)
        with OutputLock(out):
            cleanup_temporaries(out)
            print_id = fingerprint(self.state_params(), self.known)
            resume_from = self._prepare(out, state_path, partial, print_id, force, resume)
            if resume_from == "complete":
                self.complete_already = True
                return out
            try:
                self._write_frames(partial, state_path, print_id, resume_from)
            except BaseException:
                if not state_path.exists():  # nothing a resume could use: leave nothing behind
                    discard(partial)
                raise
            self._finish(out, partial, state_path, print_id, resume)
        self._saved_to = out
        return out

    def _prepare(
        self, out: Path, state_path: Path, partial: Path, print_id: str, force: bool, resume: bool
    ) -> EngineState | str | None:
        """Check what is on disk for `out`; clear what a fresh run replaces; return where to start."""
        meta = tensors = None
        if state_path.exists():
            meta, tensors = load_state(state_path)
            if meta.get("fingerprint") != print_id:
                if resume:
                    raise BadInput(f"{state_path} belongs to a different run (parameters, plan or inputs differ)")
                if not meta.get("finished") and not force:
                    raise BadInput(
                        f"an interrupted run of other settings left {state_path}: --force starts this one over it"
                    )
        own_state = [state_path] if meta is not None else []
        if resume and meta is not None and meta.get("fingerprint") == print_id:
            if meta.get("finished"):
                check_output(out, True, self.input_paths, known_own=own_state)
                discard(partial)  # killed while cleaning up: the run is complete
                return "complete"
            if not partial.is_dir():
                raise BadInput(f"cannot resume: the frames folder {partial} is missing")
            check_output(out, True, self.input_paths, known_own=own_state)
            return engine_state(meta["engine"], tensors)
        if meta is not None and not meta.get("finished") and not force and not resume:
            raise BadInput(
                f"an interrupted run of {out} exists ({state_path.name}): add --resume to continue it, "
                "or --force to start over"
            )
        # a fresh start (also `--resume` when nothing was saved yet)
        check_output(out, force or resume, self.input_paths, known_own=own_state)
        if partial.exists():
            if not partial.is_dir() or any(not FRAME_NAME.match(e.name) for e in partial.iterdir()):
                raise BadInput(f"{partial} holds files vidzero did not write; move it away")
            discard(partial)
        if meta is not None:
            state_path.unlink()
        with write_errors(partial):
            partial.mkdir()
        return None

    def _write_frames(self, partial: Path, state_path: Path, print_id: str, resume_from: EngineState | None) -> None:
        def checkpoint(state: EngineState) -> None:
            fault_point("between")
            meta, tensors = engine_payload(state)
            save_state(state_path, {"fingerprint": print_id, "finished": False, "engine": meta}, tensors)

        def window_fault(info: Any) -> None:
            if info.step == 1:
                fault_point("window")

        self._checkpoint = checkpoint
        callback = self.engine.callback
        if os.environ.get("VIDZERO_FAULT", "").startswith("window"):
            self.engine.callback = lambda info: (window_fault(info), callback(info) if callback else None)[1]
        try:
            pending = itertools.chain(self._made, self._generate(resume=resume_from))
            for frame in pending:
                write_png(partial / f"{frame.index:06d}.png", frame.image, atomic=False)
        finally:
            self._checkpoint = None
            self.engine.callback = callback
        if resume_from is not None and self._last_state is None:
            self._last_state = resume_from

    def _finish(self, out: Path, partial: Path, state_path: Path, print_id: str, resumed: bool) -> None:
        started = time.time()
        kind = output_kind(out)
        fault_point("encode")
        written = range(self.first_output, self.length)
        images = (read_png(partial / f"{i:06d}.png") for i in range(self.length))
        if self.deflicker is not None:
            images = deflicker(images, anchors=self.known, settings=self.deflicker)
        writer = VideoWriter(out, self.fps, self.codec, self.crf)
        known_out = {
            i - self.first_output: px
            for i, px in self.known.items()
            if i >= self.first_output and (self.report_known is None or i in self.report_known)
        }
        report = ReportBuilder(known_out or {0: None})
        try:
            for index, image in enumerate(images):
                if index >= self.first_output:
                    writer.write(image)
                    report.add(image)
            encoded = writer.close()
        except BaseException:
            writer.abort()
            raise
        manifest_path, sheet_path = sidecar_paths(out)
        proof = {"version": __version__, "kind": kind}
        if kind == FRAME_FOLDER:
            proof["frames"] = len(written)
        else:
            proof["sha256"] = sha256_of(encoded)
        quality = report.finish(str(out)) if len(written) >= 2 else None
        fault_point("manifest")
        manifest = self.manifest()
        manifest |= {
            "vidzero": proof,
            "output": str(out),
            "sidecars": [str(p) for p in run_sidecars(out)],
            "fingerprint": print_id,
            "resumed": resumed,
            "deflicker": asdict(self.deflicker) if self.deflicker is not None else None,
            "report": None
            if quality is None
            else quality["summary"] | {"known_frames": quality["known_frames"], "seams": quality["seams"]},
            "encode_seconds": round(time.time() - started, 3),
        }
        write_json(manifest_path, manifest)
        self.manifest_written = manifest
        fault_point("contact")
        wanted = [self.first_output + i for i in sample_indices(len(written))]
        write_png(sheet_path, contact_sheet([(i, read_png(partial / f"{i:06d}.png")) for i in wanted]))
        if quality is not None:
            report_json, report_png = report_paths(out)
            write_json(report_json, {"vidzero": proof | {"kind": "quality report"}, **quality})
            write_png(report_png, plot_report(quality, out.name))
        if out.is_dir() and not out.is_symlink():
            remove_output(out)  # a previous vidzero frame folder, proven by check_output
        writer.commit()
        fault_point("final-state")
        self._save_final_state(partial, state_path, print_id)
        fault_point("cleanup")
        discard(partial)
        self._record_timing()

    def _record_timing(self) -> None:
        from vidzero.planner import peak_memory_gib, record_seconds, timing_key

        stats, bb = self.engine.stats, self.backbone
        if stats.cfg_evaluations >= 4:
            key = timing_key(
                bb.model_id, str(bb.device), str(bb.dtype).replace("torch.", ""), bb.frames, bb.height, bb.width
            )
            record_seconds(key, stats.seconds / stats.cfg_evaluations, peak_memory_gib(bb.device))

    def _save_final_state(self, partial: Path, state_path: Path, print_id: str) -> None:
        """The last window-1 frames, in pixels and latents, for `extend --from`."""
        bb = self.backbone
        tail = list(range(max(0, self.length - (bb.frames - 1)), self.length))
        generated = self._last_state.tail_latents if self._last_state is not None else {}
        tensors: dict[str, torch.Tensor] = {}
        for i, index in enumerate(tail):
            pixels = read_png(partial / f"{index:06d}.png")
            tensors[f"tail_pixels.{i}"] = torch.from_numpy(pixels)
            latent = generated.get(index)
            if latent is None and self.known_latents and index in self.known_latents:
                latent = self.known_latents[index]
            if latent is None:  # a known frame: its latent is its (deterministic) encoding
                latent = bb.encode_frames(from_pixels(pixels[None]))[0]
            tensors[f"tail_latents.{i}"] = latent.float()
        params = self.state_params() | {"plan": None}
        save_state(
            state_path,
            {
                "fingerprint": print_id,
                "finished": True,
                "params": params,
                "next_job_offset": self.engine.job_offset + len(self.jobs),
                "window": bb.frames,
                "fps": self.fps,
                "tail": len(tail),
            },
            tensors,
        )
