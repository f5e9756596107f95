"""What runs on this machine measured: seconds per model evaluation and peak memory, per model,
device, precision and window (`~/.cache/vidzero/timings.json`), for the next plan's estimate;
and what `recipes/gpu/check.py` measured on named GPUs, for a plan on a GPU this machine has not
run yet."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class GpuTiming:
    device: str  # a part of the CUDA device name
    dtype: str  # torch dtype name
    family: str
    parameters: int  # the denoiser's (the time depends on the architecture and shapes, not the weights)
    window: tuple[int, int, int]  # latent frames, height, width
    seconds: float  # per guided evaluation (both branches in one batch), CUDA events, median of 5
    source: str


# Measured by `python -m recipes.gpu.check` on the real architectures with random weights.
GPU_TIMINGS: tuple[GpuTiming, ...] = (
    GpuTiming("H200", "float16", "unet3d", 1_411_233_860, (16, 32, 32), 0.0692, "H200, torch 2.11, CUDA 13"),
    GpuTiming("H200", "bfloat16", "unet3d", 1_411_233_860, (16, 32, 32), 0.0768, "H200, torch 2.11, CUDA 13"),
)


def table_seconds(
    device_name: str, dtype: str, family: str, parameters: int, window: tuple[int, int, int]
) -> tuple[float, str] | None:
    """Seconds per guided evaluation from the measured GPU table, and what they rest on: a row of
    this GPU, precision and architecture (parameters within 3 %); another window size is scaled by
    its latent volume (attention grows faster, so larger windows are underestimated)."""
    for row in GPU_TIMINGS:
        if row.device not in device_name or row.dtype != dtype or row.family != family:
            continue
        if abs(parameters - row.parameters) > 0.03 * row.parameters:
            continue
        scale = math.prod(window) / math.prod(row.window)
        how = "" if scale == 1 else f", scaled from a {'x'.join(map(str, row.window))} latent window"
        return row.seconds * scale, f"the GPU table: {row.source}{how}"
    return None


def timings_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vidzero" / "timings.json"


def timing_key(model: str, device: str, dtype: str, frames: int, height: int, width: int) -> str:
    return f"{model}|{device}|{dtype}|{frames}x{height}x{width}"


def recorded(key: str) -> dict:
    """What the last saved run of this configuration measured: seconds per guided evaluation and
    peak memory (GiB), or {}."""
    try:
        data = json.loads(timings_path().read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) and isinstance(value.get("seconds"), (int, float)) else {}


def peak_memory_gib(device: Any) -> float:
    """Peak memory of this process so far: the GPU's allocator on CUDA, the resident set else."""
    if getattr(device, "type", "cpu") == "cuda":
        import torch

        return torch.cuda.max_memory_allocated(device) / 1024**3
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def record_seconds(key: str, seconds_per_evaluation: float, peak_gib: float | None = None) -> None:
    """Remember this machine's time per guided evaluation and peak memory (best effort: never
    fails a run)."""
    path = timings_path()
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
        data = data if isinstance(data, dict) else {}
        data[key] = {"seconds": round(seconds_per_evaluation, 5), "peak_gib": round(peak_gib, 3) if peak_gib else None}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)
    except (OSError, json.JSONDecodeError):
        pass


def key_for(backbone: Any) -> str:
    """The timings key of a backbone (or its planning stand-in)."""
    dtype = str(backbone.dtype).replace("torch.", "")
    return timing_key(backbone.model_id, str(backbone.device), dtype, backbone.frames, backbone.height, backbone.width)
