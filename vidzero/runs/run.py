"""A planned run: a spec, the plan its task made, the engine; streamed to frames or saved to disk.

`vidzero.tasks.start(spec)` makes a `PlannedRun`. It generates its frames once: iterating it
streams them as they are made (and keeps them, so that a later `save` writes them without
generating again); `save` writes the video and its records (vidzero.runs.finish), resumable
after an interruption at any moment.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidzero.core.backbone import Backbone
from vidzero.core.engine import Engine
from vidzero.core.frames import EngineState, Frame, from_pixels
from vidzero.core.sampler import SamplerSettings
from vidzero.core.timeline import WindowJob
from vidzero.errors import BadInput, StopRun
from vidzero.media.outputs import discard, output_kind
from vidzero.media.pictures import write_png
from vidzero.media.video import check_codec
from vidzero.quality.flicker import DeflickerSettings
from vidzero.runs.finish import SAVE_POINT_HOOKS, MadeFrames, finish, save_point
from vidzero.runs.notices import warn_if_far_from_the_model, warn_if_threads_differ
from vidzero.runs.options import RunOptions
from vidzero.runs.output import Output
from vidzero.runs.progress import progress_for
from vidzero.runs.records import manifest, prompt_record, run_fingerprint
from vidzero.runs.spec import RunSpec, TaskPlan
from vidzero.runs.state import engine_payload, engine_state, save_state
from vidzero.runs.timings import key_for, peak_memory_gib, record_seconds


def sampler_settings(o: RunOptions) -> SamplerSettings:
    """The sampler's settings from checked options (presets applied): each field of
    SamplerSettings is the run option of its name, step ranges parsed from their A:B text."""
    if o.steps is None or o.resample is None or o.init is None or o.guidance is None:
        raise ValueError("the options are not checked (RunOptions.check)")
    ranges = {
        "guidance_steps": o.guidance_range(),
        "posterior_steps": o.posterior_range(),
        "target_steps": o.target_range(),
    }
    taken = [f.name for f in fields(SamplerSettings) if f.name not in FROM_THE_BACKBONE]
    return SamplerSettings(**{name: ranges.get(name, getattr(o, name)) for name in taken})


# settings the engine takes from the backbone, not from the options
FROM_THE_BACKBONE = ("expert_boundary",)


def as_output_type(frame: Frame, output_type: str) -> Frame:
    if output_type == "uint8":
        return frame
    image: Any
    if output_type == "float":
        image = np.asarray(frame.image).astype(np.float32) / 255.0
    elif output_type == "pil":
        from PIL import Image

        image = Image.fromarray(np.asarray(frame.image))
    else:  # latent
        image = frame.latent
    return Frame(frame.index, image, frame.known, frame.seed, frame.latent)


@dataclass(frozen=True)
class RunCost:
    """What a planned run costs: its windows, the model's guided evaluations, those that take a
    gradient (posterior guidance), and whether those are checkpointed. One formula for the CLI's
    announcement, `--dry-run` and the studio's estimate."""

    windows: int
    evaluations: int
    backward: int = 0
    checkpointed: bool = False

    @property
    def work(self) -> int:
        """The run's model work in evaluations' time: a backward pass costs about one evaluation
        more, and one more again when its activations are recomputed (checkpointing)."""
        return self.evaluations + self.backward * (2 if self.checkpointed else 1)


class PlannedRun:
    def __init__(self, spec: RunSpec, plan: TaskPlan, backbone: Backbone) -> None:
        o = spec.options
        if o.queue is None:
            raise ValueError("the options are not checked (RunOptions.check)")
        self.spec, self.plan, self.layout = spec, plan, plan.layout
        self.engine = Engine(
            backbone,
            sampler_settings(o),
            seed=o.seed,
            queue=o.queue,
            negative_prompt=o.negative_prompt,
            job_offset=plan.job_offset,
            callback=o.callback,
        )
        self.deflicker = DeflickerSettings() if o.deflicker else None
        self.progress: Any = o.progress
        self._made: list[Frame] = []  # frames generated so far, in order
        self._stream: Generator[Frame, None, None] | None = None
        self._finished = False
        self._last_state: EngineState | None = None
        self._checkpoint: Callable[[EngineState], None] | None = None
        self._progress: Any = None
        self._saved_to: Path | None = None
        self._fingerprint: str | None = None
        self.stopped = False
        self.complete_already = False  # save(resume=True) found the run finished
        self.manifest_written: dict | None = None  # what save() wrote next to the output

    # ------------------------------------------------------------------ what it is
    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def backbone(self) -> Backbone:
        return self.engine.backbone

    @property
    def length(self) -> int:
        """Frames of the video (the timeline's latent frames may hold several each)."""
        return self.layout.output_length

    @property
    def jobs(self) -> Sequence[WindowJob]:
        return self.layout.jobs

    @property
    def first_output(self) -> int:
        return self.plan.first_output

    @property
    def input_paths(self) -> list[Path]:
        return [Path(p) for p in self.spec.inputs.paths()]

    def cost(self) -> RunCost:
        """What this run costs (see `RunCost`)."""
        from vidzero.models.loading import gradient_needs_checkpointing

        settings, windows = self.engine.settings, len(self.jobs)
        backward = windows * settings.backward_passes()
        checkpointed = False
        if backward:
            bb = self.backbone
            info = getattr(bb, "info", None)
            summary = info.summary() if info is not None else {}
            parameters = summary.get("transformer_parameters" if bb.family == "wan" else "unet_parameters") or 0
            checkpointed = gradient_needs_checkpointing(bb, parameters)
        return RunCost(windows, windows * settings.evaluations(), backward, checkpointed)

    def fingerprint(self) -> str:
        """What identifies this run's frames and file (its spec, plan and known pixels): hashed
        once, as nothing it covers changes after planning (a batch or the studio asks before
        saving, and saving asks again)."""
        if self._fingerprint is None:
            self._fingerprint = run_fingerprint(self)
        return self._fingerprint

    def manifest(self) -> dict:
        """How the run was made, as its manifest records it (the output's own fields aside)."""
        return manifest(self)

    # ------------------------------------------------------------------ generating (once)
    def _generate(self, resume: EngineState | None = None) -> Iterator[Frame]:
        """Frames not made yet, from the one stream this run has."""
        if self._stream is None:
            if self._finished:
                return
            if resume is None:
                warn_if_far_from_the_model(self.backbone, self.layout)
            self._progress = progress_for(self.progress)
            self._stream = self.engine.run(self.layout, self._progress, resume=resume, on_job_done=self._job_done)
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

    def close(self) -> None:
        """Stop sampling where it is (a run shared with others, vidzero.core.packing, then leaves
        them); what was saved so far resumes as after an interruption."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _job_done(self, state: EngineState) -> None:
        self._last_state = state
        if self._checkpoint is not None:
            self._checkpoint(state)

    def __iter__(self) -> Iterator[Frame]:
        """Every frame, in order; frames made by an earlier iteration are not made again. A step
        callback that returns False ends the iteration early (`self.stopped` is then True)."""
        output_type = self.spec.options.output_type
        for frame in self._made:
            yield as_output_type(frame, output_type)
        if self._finished:
            return
        self._check_not_streamed_away()
        try:
            for frame in self._generate():
                self._made.append(frame)
                yield as_output_type(frame, output_type)
        except StopRun:
            self.stopped = True

    def _check_not_streamed_away(self) -> None:
        if self._saved_to is not None and self._finished:
            raise BadInput(
                f"this run was saved to {self._saved_to} without keeping its frames; plan it again "
                "(or iterate it before saving) to have them twice"
            )

    def frames(self) -> list[Any]:
        """All frames (of the run's output_type), in order (holds the whole video in memory)."""
        return [f.image for f in self]

    # ------------------------------------------------------------------ saving
    def save(self, path: str | Path | Output, force: bool = False, resume: bool = False) -> Path:
        """Generate (unless done already) and write `path` with its manifest, contact sheet,
        quality report and final state; resumable with `resume=True` after an interruption."""
        output = path if isinstance(path, Output) else Output(path, self.input_paths)
        o = self.spec.options
        check_codec(output_kind(output.path), o.codec, o.crf, o.fps)
        if self._finished and len(self._made) < self.length:
            self._check_not_streamed_away()
        with output.claim():
            print_id = self.fingerprint()
            start = output.begin(print_id, force, resume)
            if start.complete:  # killed after it finished
                self.complete_already = True
                return output.path
            resume_from = None
            if start.state is not None:
                meta, tensors = start.state
                warn_if_threads_differ(meta.get("cpu_threads"))
                resume_from = engine_state(output.state_path, meta, tensors, len(self.jobs), self.layout.length)
            try:
                self._write_frames(output.partial, output.state_path, print_id, resume_from)
            except BaseException:
                if not output.state_path.exists():  # nothing a resume could use: leave nothing behind
                    discard(output.partial)
                raise
            record = self.manifest() | {"fingerprint": print_id, "resumed": resume}
            made = self._made_frames(output.partial)
            self.manifest_written = finish(output, made, record, lambda: self.final_state(made, print_id))
        stats = self.engine.stats
        if stats.cfg_evaluations >= 4:
            seconds = stats.seconds / stats.cfg_evaluations
            record_seconds(key_for(self.backbone), seconds, peak_memory_gib(self.backbone.device))
        self._saved_to = output.path
        return output.path

    def _made_frames(self, folder: Path) -> MadeFrames:
        o, layout = self.spec.options, self.layout
        given = layout.given_video()
        anchors = given if layout.video is not None else layout.known
        return MadeFrames(folder, self.length, self.first_output, o.fps, o.codec, o.crf, given, anchors, self.deflicker)

    def final_state(self, frames: MadeFrames, print_id: str) -> tuple[dict, dict[str, torch.Tensor]]:
        """The last window-1 frames, in pixels and latents, and the run's record, for `extend --from`."""
        bb = self.backbone
        slots = self.layout.length
        tail = list(range(max(0, slots - (bb.frames - 1)), slots))  # latent frames
        video = self.layout.video
        indices = [v for s in tail for v in video.frames_of(s) if v < self.length] if video is not None else tail
        generated = self._last_state.tail_latents if self._last_state is not None else {}
        known_latents = self.layout.known_latents or {}
        tensors: dict[str, torch.Tensor] = {}
        for i, index in enumerate(indices):
            tensors[f"tail_pixels.{i}"] = torch.from_numpy(frames.read(index))
        for i, index in enumerate(tail):
            latent = generated.get(index)
            if latent is None:
                latent = known_latents.get(index)
            if latent is None:  # a known frame: its latent is its (deterministic) encoding
                latent = bb.encode_frames(from_pixels(frames.read(index)[None]))[0]
            tensors[f"tail_latents.{i}"] = latent.float()
        reference = self.target_reference()
        if reference is not None and video is None:  # a continuation goes on moving the user's frame
            tensors["reference_pixels.0"] = torch.from_numpy(np.ascontiguousarray(reference[1]))
        meta = {
            "fingerprint": print_id,
            "finished": True,
            "spec": self.spec.record(),
            "prompt": prompt_record(self.layout.prompt),
            "next_job_offset": self.plan.job_offset + len(self.jobs),
            "window": bb.frames,
            "height": bb.height,
            "width": bb.width,
            "fps": self.spec.options.fps,
            "tail": len(tail),
            "reference_frames": [reference[0] - tail[0]] if reference is not None and video is None else [],
        }
        return meta, tensors

    def target_reference(self) -> tuple[int, np.ndarray] | None:
        """The user's frame the run's moving targets took their look from last (the latest given
        frame, or the one a continuation carried), with its timeline index; None without targets."""
        o = self.spec.options
        if o.target in (None, "off") and o.target_frames == "model":
            return None
        layout = self.layout
        frames = {f: layout.known[f] for f in layout.given_frames() if f in layout.known}
        frames |= dict(layout.references or {})
        if not frames:
            return None
        latest = max(frames)
        return latest, frames[latest]

    def _write_frames(self, partial: Path, state_path: Path, print_id: str, resume_from: EngineState | None) -> None:
        def checkpoint(state: EngineState) -> None:
            save_point("between")
            meta, tensors = engine_payload(state)
            threads_now = torch.get_num_threads()
            record = {"fingerprint": print_id, "finished": False, "engine": meta, "cpu_threads": threads_now}
            save_state(state_path, record, tensors)

        def window_point(info: Any) -> object:
            if info.step == 1:
                save_point("window")
            return callback(info) if callback is not None else None

        self._checkpoint = checkpoint
        callback = self.engine.callback
        if SAVE_POINT_HOOKS:  # a test's hook also hears the start of every window
            self.engine.callback = window_point
        try:
            pending = itertools.chain(self._made, self._generate(resume=resume_from))
            for frame in pending:
                write_png(partial / f"{frame.index:06d}.png", np.asarray(frame.image), atomic=False)
        finally:
            self._checkpoint = None
            self.engine.callback = callback
        if resume_from is not None and self._last_state is None:
            self._last_state = resume_from
