"""The cost planner: what a run will do and roughly how long it will take, before it runs.

`--dry-run` plans the run exactly as it would run (same planner, same window jobs) on a stand-in
backbone that knows the checkpoint's format from its files but holds no weights, and prints the
windows, guided UNet evaluations and frames, an estimated wall time and an estimated peak
memory. The time per guided evaluation comes from the last saved run with the same model,
device, precision and window on this machine (every saved run records it in
`~/.cache/vidzero/timings.json`); on a GPU with no such run, from the table measured on named
GPUs (vidzero.runs.timings.GPU_TIMINGS) when it has this GPU and architecture; or else from a
short probe: one guided evaluation of the checkpoint's UNet (its own weights for the embedded
model; random weights of its architecture otherwise, since only the time matters).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from vidzero.core.timeline import PlannedJobs, WindowJob
from vidzero.errors import BadInput
from vidzero.models.checkpoint import inspect_checkpoint
from vidzero.models.loading import (
    gradient_memory_bytes,
    parse_dtype,
    pick_device,
    quiet_loading,
)
from vidzero.runs.options import RunOptions
from vidzero.runs.run import PlannedRun
from vidzero.runs.spec import RunSpec
from vidzero.runs.timings import key_for, peak_memory_gib, recorded, table_seconds
from vidzero.tasks import start


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
    family: str = "unet3d"
    temporal_stride: int = 1
    truncated_prompts: dict[str, int] = field(default_factory=dict)
    info: Any = None

    def encode_video(self, pixels: torch.Tensor) -> torch.Tensor:
        """Latents of the right shape (the plan needs which frames are known, not their content)."""
        count = 1 + (pixels.shape[0] - 1) // self.temporal_stride if self.temporal_stride > 1 else pixels.shape[0]
        return torch.zeros(count, *self.latent_shape)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.latent_channels, self.height // self.vae_scale, self.width // self.vae_scale)


def planning_backbone(o: RunOptions) -> PlanningBackbone:
    info = inspect_checkpoint(o.model, cache_dir=o.cache_dir, revision=o.revision, variant=o.variant)
    summary = info.summary()
    device = pick_device(o.device)
    dtype = parse_dtype(o.dtype, device)
    stride = summary.get("vae_temporal_factor", 1) if info.family == "wan" else 1
    video_window = o.window or info.frames
    frames = 1 + (video_window - 1) // stride  # the window in latent frames
    height = o.height or summary["height"]
    width = o.width or summary["width"]
    bb = PlanningBackbone(
        o.model,
        frames,
        height,
        width,
        summary["latent_shape"][0],
        summary["vae_scale_factor"],
        torch.device(device),
        dtype,
        info.revision,
        info.format_source,
        family=info.family,
        temporal_stride=stride,
        info=info,
    )
    return bb


def gpu_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device)


def probe_seconds(bb: PlanningBackbone, evaluations: int = 2) -> float:
    """Seconds per guided evaluation of this checkpoint's UNet on this machine (a short probe)."""
    if bb.family != "unet3d":
        raise ValueError(
            "no run of this checkpoint on this machine to time it by, and the probe times UNet3D checkpoints only"
        )
    from diffusers import UNet3DConditionModel

    folder = bb.info.folder
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


def estimated_memory(bb: PlanningBackbone, offload: str = "none") -> dict[str, float]:
    """GiB: the weights on the device in their run dtypes, and one window's UNet activations (a
    rough rule: the batch-2 window's latents times the UNet's widest feature map, measured as
    about 2.3 GB per 16x32x32 window in fp16 for ModelScope). A checkpoint of two experts (Wan
    2.2) holds both unless offloaded; offloaded, one module at a time is on the GPU: only one
    expert works at any step."""
    summary = bb.info.summary()
    names = ("transformer", "transformer_2") if bb.family == "wan" else ("unet",)
    experts = [(summary.get(f"{name}_parameters") or 0) * bb.dtype.itemsize for name in names]
    text_bytes = (summary["text_encoder_parameters"] or 0) * bb.dtype.itemsize
    vae_bytes = (summary["vae_parameters"] or 0) * 4
    weights = sum(experts) + text_bytes + vae_bytes if offload == "none" else max(*experts, text_bytes, vae_bytes)
    _, h, w = bb.latent_shape
    activation = 2.3e9 * (bb.frames * h * w) / (16 * 32 * 32) * bb.dtype.itemsize / 2
    gib = 1024**3
    return {"weights": weights / gib, "activations": activation / gib}


def generated_count(jobs: Sequence[WindowJob], length: int) -> int:
    """Frames the plan generates inside the timeline (targets past its end are dropped), read off
    the plan's runs where it has them, so that pricing never works out every window."""
    runs = jobs.runs if isinstance(jobs, PlannedJobs) else [j.targets for j in jobs]
    return sum(1 for run in runs for f in run if f < length)


def dry_run(spec: RunSpec) -> str:
    """Plan the run on a stand-in backbone and describe its cost; writes nothing."""
    bb = planning_backbone(spec.options)
    run: PlannedRun = start(spec, bb)  # the stand-in has the format, no weights
    cost = run.cost()
    evaluations = cost.evaluations
    generated = generated_count(run.jobs, run.layout.length)
    last = recorded(key_for(bb))
    per_eval, peak = last.get("seconds"), last.get("peak_gib")
    source = "the last run on this machine"
    if per_eval is None and bb.device.type == "cuda":
        measured = table_seconds(
            gpu_name(bb.device),
            str(bb.dtype).replace("torch.", ""),
            bb.family,
            bb.info.summary().get("transformer_parameters" if bb.family == "wan" else "unet_parameters") or 0,
            (bb.frames, *bb.latent_shape[1:]),
        )
        if measured is not None:
            per_eval, source = measured
    if per_eval is None:
        try:
            per_eval = probe_seconds(bb)
            peak = peak_memory_gib(bb.device)
            source = "a probe of this machine"
        except (RuntimeError, ValueError, OSError, BadInput) as exc:
            per_eval, source = None, f"no estimate: {exc}"
    memory = estimated_memory(bb, spec.options.offload)
    unit = "frames" if bb.temporal_stride == 1 else f"latent frames of {bb.temporal_stride} video frames"
    lines = [
        f"plan: {run.task}, {run.length} frames ({generated} {unit} generated), {len(run.jobs)} windows of "
        f"{bb.frames} {unit} at {bb.width}x{bb.height}",
        f"cost: {evaluations} guided UNet evaluations ({evaluations / max(1, generated):.1f} per generated frame; "
        f"steps {run.engine.settings.steps}, resample {run.engine.settings.resample})",
    ]
    backward, checkpointed, work = cost.backward, cost.checkpointed, cost.work
    parameters = bb.info.summary().get("transformer_parameters" if bb.family == "wan" else "unet_parameters") or 0
    if backward:
        lines.append(
            f"gradients: {backward} of the evaluations take a gradient (posterior guidance), about "
            f"{(2 if checkpointed else 1) + 1}x an evaluation's work each"
            + (" with gradient checkpointing" if checkpointed else "")
        )
    if per_eval is not None:
        lines.append(f"time: about {per_eval * work:.0f} s ({per_eval:.3f} s per evaluation, from {source})")
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
    if backward:
        grad_gib = gradient_memory_bytes(bb, parameters, checkpointed=checkpointed) / 1024**3
        base = peak or memory["weights"] + memory["activations"]
        lines.append(
            f"memory with a gradient: about {base + grad_gib:.1f} GiB peak (estimated: {grad_gib:.2f} GiB of "
            "activations kept for the backward pass" + (", checkpointed)" if checkpointed else ")")
        )
    lines.append("dry run: nothing was written")
    return "\n".join(lines)
