"""What runs on this machine measured: seconds per model evaluation and peak memory, per model,
device, precision and window (`~/.cache/vidzero/timings.json`), for the next plan's estimate."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


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
