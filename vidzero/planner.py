"""The cost planner: what a run will do and roughly how long it will take, before it runs.

`--dry-run` plans the run exactly as it would run (same planner, same window jobs) on a stand-in
backbone that knows the checkpoint's format from its files but holds no weights, and prints the
windows, guided UNet evaluations and frames, an estimated wall time and an estimated peak
memory. The time per guided evaluation comes from the last saved run with the same model,
device, precision and window on this machine (every saved run records it in
`~/.cache/vidzero/timings.json`), or else from a short probe: one guided evaluation of the
checkpoint's UNet (its own weights for the embedded model; random weights of its architecture
otherwise, since only the time matters).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidzero.checkpoint import inspect_checkpoint
from vidzero.errors import BadInput


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


@dataclass
class PlanningBackbone:
    """Stands in for a Backbone when only the plan is wanted: the format, no weights."""

    model_id: str
    frames: int
    height: int
    width: int
    latent_channels: int
    vae_scale: int
    device: Any
    dtype: Any
    revision: str | None = None
    format_source: str = ""

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.latent_channels, self.height // self.vae_scale, self.width // self.vae_scale)

    truncated_prompts: dict = None  # type: ignore[assignment]


def planning_backbone(kwargs: dict) -> PlanningBackbone:
    import torch

    from vidzero.backbone import parse_dtype, pick_device

    info = inspect_checkpoint(
        kwargs.get("model", "shapes"),
        cache_dir=kwargs.get("cache_dir"),
        revision=kwargs.get("revision"),
        variant=kwargs.get("variant"),
    )
    summary = info.summary()
    device = pick_device(kwargs.get("device", "auto"))
    dtype = parse_dtype(kwargs.get("dtype"), device)
    frames = kwargs.get("window") or info.frames
    height = kwargs.get("height") or summary["height"]
    width = kwargs.get("width") or summary["width"]
    bb = PlanningBackbone(
        str(kwargs.get("model", "shapes")),
        frames,
        height,
        width,
        summary["latent_shape"][0],
        summary["vae_scale_factor"],
        torch.device(device),
        dtype,
        info.revision,
        info.format_source,
    )
    bb.truncated_prompts = {}
    bb.info = info  # type: ignore[attr-defined]
    return bb


def probe_seconds(bb: PlanningBackbone, evaluations: int = 2) -> float:
    """Seconds per guided evaluation of this checkpoint's UNet on this machine (a short probe)."""
    import torch
    from diffusers import UNet3DConditionModel

    from vidzero.backbone import quiet_loading

    folder = bb.info.folder  # type: ignore[attr-defined]
    with quiet_loading():
        if folder.stat().st_size and (folder / "unet" / "config.json").exists() and bb.model_id == "shapes":
            unet = UNet3DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=bb.dtype)
        else:
            config = UNet3DConditionModel.load_config(folder, subfolder="unet")
            unet = UNet3DConditionModel.from_config(config).to(bb.dtype)
    unet = unet.to(bb.device).eval()
    c, h, w = bb.latent_shape
    z = torch.randn(2, c, bb.frames, h, w, device=bb.device, dtype=bb.dtype)
    text_width = unet.config.cross_attention_dim
    emb = torch.zeros(2, 77, text_width, device=bb.device, dtype=bb.dtype)
    with torch.no_grad():
        unet(z, 500, encoder_hidden_states=emb)  # warm-up
        if bb.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(evaluations):
            unet(z, 500, encoder_hidden_states=emb)
        if bb.device.type == "cuda":
            torch.cuda.synchronize()
    return (time.perf_counter() - start) / evaluations


def estimated_memory(bb: PlanningBackbone) -> dict[str, float]:
    """GiB: the weights in their run dtypes, and one window's UNet activations (a rough
    rule: the batch-2 window's latents times the UNet's widest feature map, measured as
    about 2.3 GB per 16x32x32 window in fp16 for ModelScope)."""
    summary = bb.info.summary()  # type: ignore[attr-defined]
    unet_bytes = (summary["unet_parameters"] or 0) * bb.dtype.itemsize
    text_bytes = (summary["text_encoder_parameters"] or 0) * bb.dtype.itemsize
    vae_bytes = (summary["vae_parameters"] or 0) * 4
    _, h, w = bb.latent_shape
    activation = 2.3e9 * (bb.frames * h * w) / (16 * 32 * 32) * bb.dtype.itemsize / 2
    gib = 1024**3
    return {"weights": (unet_bytes + text_bytes + vae_bytes) / gib, "activations": activation / gib}


def dry_run(make_run: Any, task_args: dict, kwargs: dict) -> str:
    """Plan the run on a stand-in backbone and describe its cost; writes nothing."""
    bb = planning_backbone(kwargs)
    run = make_run(**task_args, **kwargs, backbone=bb)
    evaluations = len(run.jobs) * run.engine.settings.evaluations()
    generated = sum(1 for j in run.jobs for f in j.targets if f < run.length)
    key = timing_key(bb.model_id, str(bb.device), str(bb.dtype).replace("torch.", ""), bb.frames, bb.height, bb.width)
    last = recorded(key)
    per_eval, peak = last.get("seconds"), last.get("peak_gib")
    source = "the last run on this machine"
    if per_eval is None:
        try:
            per_eval = probe_seconds(bb)
            peak = peak_memory_gib(bb.device)
            source = "a probe of this machine"
        except (RuntimeError, ValueError, OSError, BadInput) as exc:
            per_eval, source = None, f"no estimate ({type(exc).__name__})"
    memory = estimated_memory(bb)
    lines = [
        f"plan: {run.task}, {run.length} frames ({generated} generated), {len(run.jobs)} windows of {bb.frames} frames "
        f"at {bb.width}x{bb.height}",
        f"cost: {evaluations} guided UNet evaluations ({evaluations / max(1, generated):.1f} per generated frame; "
        f"steps {run.engine.settings.steps}, resample {run.engine.settings.resample})",
    ]
    if per_eval is not None:
        lines.append(f"time: about {per_eval * evaluations:.0f} s ({per_eval:.3f} s per evaluation, from {source})")
    else:
        lines.append(f"time: {source}")
    if peak:
        lines.append(
            f"memory: about {peak:.2f} GiB peak ({'measured' if source.startswith('the last') else 'probed'}; "
            f"{memory['weights']:.2f} GiB of it weights)"
        )
    else:
        lines.append(
            f"memory: about {memory['weights'] + memory['activations']:.1f} GiB peak (estimated: "
            f"{memory['weights']:.2f} GiB weights, {memory['activations']:.2f} GiB for a window's activations)"
        )
    lines.append("dry run: nothing was written")
    return "\n".join(lines)
