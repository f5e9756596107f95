"""A planned run: the engine, its plan and its inputs, streamed to frames or saved to disk.

Tasks build a `PlannedRun`; the Python API returns it (iterate it for frames), the CLI and the
recipes call `save` on it, which writes the video, a manifest and a contact sheet atomically.
"""

from __future__ import annotations

import os
import platform
import shutil
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vidzero.backbone import Backbone
from vidzero.engine import Engine, EngineState, Frame, Progress, Prompt
from vidzero.errors import BadInput
from vidzero.flicker import DeflickerSettings, deflicker
from vidzero.io import (
    VideoWriter,
    check_output,
    contact_sheet,
    read_png,
    sample_indices,
    sidecar_paths,
    write_manifest,
    write_png,
)
from vidzero.runstate import engine_payload, engine_state, fingerprint, load_state, save_state, state_paths
from vidzero.timeline import WindowJob
from vidzero.version import __version__


def library_versions() -> dict[str, str]:
    import av
    import diffusers
    import torch
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
    progress: Progress | None = None
    deflicker: DeflickerSettings | None = None  # applied when saving; known frames are anchors
    first_output: int = 0  # frames before this timeline index are not written (predict --new-only)
    known_latents: dict | None = None  # latents of known frames used as-is (extend --from, latent queue)

    def __iter__(self) -> Iterator[Frame]:
        return self.engine.run(self.jobs, self.length, self.known, self.prompt, self.negative_prompt, self.progress,
                               known_latents=self.known_latents)

    @property
    def backbone(self) -> Backbone:
        return self.engine.backbone

    def frames(self) -> list[np.ndarray]:
        """All frames as (H, W, 3) uint8 arrays (holds the whole video in memory)."""
        return [f.image for f in self]

    def manifest(self) -> dict:
        bb, stats = self.backbone, self.engine.stats
        return {
            "task": self.task,
            "prompt": self.prompt if isinstance(self.prompt, str) else {str(k): v for k, v in sorted(self.prompt.items())},
            "negative_prompt": self.negative_prompt,
            "frames": self.length,
            "known_frames": sorted(self.known),
            "fps": self.fps,
            "inputs": self.inputs,
            "sampler": asdict(self.engine.settings),
            "queue": self.engine.queue,
            "seed": self.engine.seed,
            "frame_seeds": {str(k): v for k, v in sorted(stats.frame_seeds.items())},
            "model": {"id": bb.model_id, "revision": bb.revision, "window": bb.frames, "height": bb.height, "width": bb.width},
            "device": str(bb.device),
            "dtype": str(bb.dtype).replace("torch.", ""),
            "versions": library_versions(),
            "timings": {
                "seconds": round(stats.seconds, 3),
                "windows": stats.jobs,
                "cfg_evaluations": stats.cfg_evaluations,
                "seconds_per_generated_frame": round(stats.seconds / max(1, len(stats.frame_seeds)), 4),
            },
        }

    def state_params(self) -> dict:
        """What decides this run's frames (for the resume fingerprint)."""
        bb = self.backbone
        return {
            "task": self.task, "prompt": self.prompt, "negative_prompt": self.negative_prompt, "length": self.length,
            "sampler": asdict(self.engine.settings), "seed": self.engine.seed, "queue": self.engine.queue,
            "job_offset": self.engine.job_offset, "model": [bb.model_id, bb.revision, bb.frames, bb.height, bb.width],
            "dtype": str(bb.dtype), "plan": [(j.slots, j.generate, j.init_source) for j in self.jobs],
        }

    def save(self, path: str | Path, force: bool = False, resume: bool = False) -> Path:
        """Run and write `path`, with `<name>.manifest.json`, `<name>.contact.png`, `<name>.state.pt`.

        Frames are flushed to `<name>.partial/` (PNG) and the state saved after every window, so
        an interrupted run continues with `resume=True`; the video itself is encoded at the end
        and appears atomically. See vidzero.runstate.
        """
        out = Path(str(path).rstrip("/" + os.sep))
        manifest_path, sheet_path = sidecar_paths(path)
        state_path, partial = state_paths(path)
        check_output(path, force)
        print_id = fingerprint(self.state_params(), self.known)
        resume_from = None
        if resume:
            state = load_state(state_path)
            if state.get("finished"):
                raise BadInput(f"{state_path} belongs to a finished run: continue it with `vidzero extend --from {state_path}`")
            if state.get("fingerprint") != print_id:
                raise BadInput(f"{state_path} belongs to a different run (parameters, plan or inputs differ)")
            if not partial.is_dir():
                raise BadInput(f"cannot resume: the frames folder {partial} is missing")
            resume_from = engine_state(state)
        else:
            for side in (manifest_path, sheet_path, state_path, partial):
                if side.exists() and not force:
                    hint = " (an interrupted run: add --resume to continue it)" if side in (state_path, partial) else ""
                    raise BadInput(f"output exists: {side}{hint} (use --force to overwrite)")
            if partial.exists():
                shutil.rmtree(partial)
            state_path.unlink(missing_ok=True)  # a forced rerun must not leave the old run's state
            partial.mkdir()
        started = time.time()
        tail: deque[Frame] = deque(maxlen=self.backbone.frames - 1)
        if resume_from is not None:  # the last frames before the resume point, for the final state
            for index in sorted(f for f in resume_from.pixels if f < resume_from.next_out)[-tail.maxlen :]:
                tail.append(Frame(index, resume_from.pixels[index], index in self.known, resume_from.seeds.get(index),
                                  resume_from.latents.get(index)))

        def checkpoint(es: EngineState) -> None:
            save_state(state_path, {"fingerprint": print_id, "finished": False, "engine": engine_payload(es)})

        frames = self.engine.run(self.jobs, self.length, self.known, self.prompt, self.negative_prompt, self.progress,
                                 resume=resume_from, on_job_done=checkpoint, known_latents=self.known_latents)
        try:
            for frame in frames:
                write_png(partial / f"{frame.index:06d}.png", frame.image)
                tail.append(frame)
            self._encode(out, partial, force)
        except BaseException:
            # Keep what a resume needs; with no state saved yet there is nothing to resume.
            if not state_path.exists():
                shutil.rmtree(partial, ignore_errors=True)
            raise
        manifest = self.manifest()
        manifest["output"] = str(out)
        manifest["wall_seconds"] = round(time.time() - started, 3)
        manifest["resumed"] = resume
        manifest["deflicker"] = asdict(self.deflicker) if self.deflicker is not None else None
        write_manifest(manifest_path, manifest)
        wanted = {self.first_output + i for i in sample_indices(self.length - self.first_output)}
        sheet = [(i, read_png(partial / f"{i:06d}.png")) for i in sorted(wanted)]
        write_png(sheet_path, contact_sheet(sheet))
        save_state(state_path, {
            "fingerprint": print_id, "finished": True, "params": self.state_params() | {"plan": None},
            "next_job_offset": self.engine.job_offset + len(self.jobs), "window": self.backbone.frames,
            "fps": self.fps, "tail_pixels": [f.image for f in tail], "tail_latents": [f.latent for f in tail],
        })
        shutil.rmtree(partial)
        return out

    def _encode(self, out: Path, partial: Path, force: bool) -> None:
        """Encode the flushed PNG frames into the output, deflickered if asked, atomically."""
        images = (read_png(partial / f"{i:06d}.png") for i in range(self.length))
        if self.deflicker is not None:
            images = deflicker(images, anchors=self.known, settings=self.deflicker)
        with VideoWriter(out, self.fps, force) as writer:
            for index, image in enumerate(images):
                if index >= self.first_output:
                    writer.write(image)
