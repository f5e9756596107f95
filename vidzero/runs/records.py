"""A run's record: the fingerprint that identifies its frames, and the manifest written beside it.

The record is the run's spec (task, inputs, options: `RunSpec.record`) with what running it
decided (the effective prompt, the plan, the seeds, the model's identity and format, library
versions, timings). The same spec record goes into the state file, and the batch summary points
at the manifest; nothing is recorded a second way.
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, Protocol

import numpy as np
import torch

from vidzero.core.backbone import Backbone
from vidzero.core.engine import Engine
from vidzero.core.timeline import Layout, WindowJob
from vidzero.runs.spec import RunSpec, TaskPlan
from vidzero.runs.state import fingerprint
from vidzero.version import __version__


class MadeRun(Protocol):
    """What a run's record is made of: its spec, its task's plan and the engine that ran it
    (`vidzero.runs.run.PlannedRun`)."""

    spec: RunSpec
    plan: TaskPlan
    layout: Layout
    engine: Engine

    @property
    def task(self) -> str: ...
    @property
    def backbone(self) -> Backbone: ...
    @property
    def length(self) -> int: ...
    @property
    def first_output(self) -> int: ...
    @property
    def jobs(self) -> Sequence[WindowJob]: ...


# Options that change how a run executes, not which frames it makes (within float rounding): a
# run resumed with another device, offload or memory switch is the same run.
EXECUTION_ONLY = (
    "device",
    "download",
    "cache_dir",
    "offload",
    "vae_tiling",
    "attention_slicing",
    "forward_chunking",
    "compile",
    "vae_slice",
)


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


def prompt_record(prompt: Any) -> Any:
    return prompt if isinstance(prompt, str) else {str(k): v for k, v in sorted(prompt.items())}


def model_record(run: MadeRun) -> dict[str, Any]:
    bb = run.backbone
    return {
        "id": bb.model_id,
        "family": bb.family,
        "revision": bb.revision,
        "window": bb.frames,
        "height": bb.height,
        "width": bb.width,
        "format_from": getattr(bb, "format_source", None),
        "loras": getattr(bb, "loras", []),
        "cache": getattr(bb, "cache", "none"),
    }


def model_print(bb: Any) -> list[Any]:
    """The model as a run's fingerprint sees it: its id, revision and format, each LoRA's file
    hash, scale and denoiser (a changed file is another run), and its cache hooks."""
    loras = [[lo["sha256"], lo["scale"], lo["into"]] for lo in getattr(bb, "loras", [])]
    cache = getattr(bb, "cache", "none")
    extra = ([loras] if loras else []) + ([cache] if cache != "none" else [])
    return [bb.model_id, bb.revision, bb.frames, bb.height, bb.width, *extra]


def fingerprint_params(run: MadeRun) -> dict[str, Any]:
    """What decides a run's frames and file, but its known pixels."""
    options = {k: v for k, v in run.spec.options.record().items() if k not in EXECUTION_ONLY}
    bb = run.backbone
    return {
        "task": run.task,
        "prompt": run.layout.prompt,
        "length": run.length,
        "options": options,
        "model": model_print(bb),
        "dtype": str(bb.dtype),
        "plan": [(j.slots, j.generate, j.init_source) for j in run.jobs],
        "first_output": run.first_output,
        "job_offset": run.plan.job_offset,
    }


def run_fingerprint(run: MadeRun) -> str:
    layout = run.layout
    params = fingerprint_params(run)
    if layout.paths:  # the objects moved along paths: their masks' pixels and where they go
        params["paths"] = [
            [
                p.reference,
                hashlib.sha256(np.packbits(p.mask).tobytes() + str(p.mask.shape).encode()).hexdigest(),
                {str(f): [round(float(v), 6) for v in c] for f, c in sorted(p.centres.items())},
            ]
            for p in layout.paths
        ]
    return fingerprint(params, layout.known if layout.video is None else layout.video.given)


def manifest(run: MadeRun) -> dict[str, Any]:
    """Everything about how the run was made (see docs/reliability.md)."""
    bb, stats, layout = run.backbone, run.engine.stats, run.layout
    generated = max(1, len(stats.frame_seeds))
    return {
        "spec": run.spec.record(),
        "prompt": prompt_record(layout.prompt),
        "frames": run.length,
        "written_frames": run.length - run.first_output,
        "known_frames": sorted(layout.known) if layout.video is None else sorted(layout.video.given),
        "given_frames": sorted(layout.given_video()),
        "fps": run.spec.options.fps,
        "details": run.plan.details,
        "sampler": asdict(run.engine.settings),
        "job_offset": run.plan.job_offset,
        "frame_seeds": {str(k): v for k, v in sorted(stats.frame_seeds.items())},
        "plan": [{"slots": list(j.slots), "generate": list(j.generate)} for j in layout.jobs],
        "model": model_record(run),
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
