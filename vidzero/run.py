"""A planned run: the engine, its plan and its inputs, streamed to frames or saved to disk.

Tasks build a `PlannedRun`; the Python API returns it (iterate it for frames), the CLI and the
recipes call `save` on it, which writes the video, a manifest and a contact sheet atomically.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vidzero import __version__
from vidzero.backbone import Backbone
from vidzero.engine import Engine, Frame, Progress
from vidzero.flicker import DeflickerSettings, deflicker
from vidzero.io import VideoWriter, contact_sheet, sample_indices, sidecar_paths, write_manifest, write_png
from vidzero.timeline import WindowJob


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
    prompt: str
    negative_prompt: str = ""
    fps: float = 8.0
    inputs: dict = field(default_factory=dict)  # task-specific parameters for the manifest
    progress: Progress | None = None
    deflicker: DeflickerSettings | None = None  # applied when saving; known frames are anchors
    first_output: int = 0  # frames before this timeline index are not written (predict --new-only)

    def __iter__(self) -> Iterator[Frame]:
        return self.engine.run(self.jobs, self.length, self.known, self.prompt, self.negative_prompt, self.progress)

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
            "prompt": self.prompt,
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

    def save(self, path: str | Path, force: bool = False) -> Path:
        """Stream frames into `path`; then write `<name>.manifest.json` and `<name>.contact.png`."""
        manifest_path, sheet_path = sidecar_paths(path)
        for side in (manifest_path, sheet_path):
            if side.exists() and not force:
                from vidzero.errors import BadInput

                raise BadInput(f"output exists: {side} (use --force to overwrite)")
        wanted = {self.first_output + i for i in sample_indices(self.length - self.first_output)}
        sheet: list[tuple[int, np.ndarray]] = []
        started = time.time()
        images = (frame.image for frame in self)
        if self.deflicker is not None:
            images = deflicker(images, anchors=self.known, settings=self.deflicker)
        with VideoWriter(path, self.fps, force) as writer:
            for index, image in enumerate(images):
                if index < self.first_output:
                    continue
                writer.write(image)
                if index in wanted:
                    sheet.append((index, image))
        manifest = self.manifest()
        manifest["deflicker"] = asdict(self.deflicker) if self.deflicker is not None else None
        manifest["output"] = str(writer.path)
        manifest["wall_seconds"] = round(time.time() - started, 3)
        write_manifest(manifest_path, manifest)
        write_png(sheet_path, contact_sheet(sheet))
        return writer.path
