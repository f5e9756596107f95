"""Saved run state: resuming an interrupted run, continuing a finished one.

While a run is saved to OUT, vidzero keeps next to it:

- `OUT.partial/`: every frame made so far, as lossless PNG, flushed as each window finishes;
- `OUT.state.safetensors`: what the engine needs to go on (next window, the frames and queue
  latents that later windows read, the last window's frames, the seeds so far) and a
  fingerprint of the run's parameters, plan and inputs.

State files hold tensors in safetensors and everything else as JSON in its header: loading one
never runs code, so a state file from someone else is as safe to open as an image.

Each window draws its noise from its own seed (run seed, window index), so a resumed run makes
exactly the frames the uninterrupted run would have made. The state on disk is always the last
complete one: it is replaced atomically, after the frames it accounts for are on disk.

When the run finishes, the state is rewritten as a *final* state: the last window-1 frames (and
their latents), the run's record (task, inputs, options) and the next window index, so that
`vidzero extend --from OUT.state.safetensors` continues the video exactly as a longer run would
have (`read_finished`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save

from vidzero.core.frames import EngineState
from vidzero.errors import BadInput
from vidzero.media.outputs import PARTIAL, STATE, atomic_write_bytes, check_input_file, read_once, sidecar

STATE_FORMAT = "vidzero-run-state"
STATE_VERSION = 3


def state_paths(output: str | Path) -> tuple[Path, Path]:
    """(state file, partial frames folder) of an output path."""
    return sidecar(output, STATE), sidecar(output, PARTIAL)


def fingerprint(params: dict, known: dict[int, np.ndarray]) -> str:
    """Hash of everything that decides a run's frames: parameters, plan, known pixels."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    for index in sorted(known):
        h.update(str(index).encode())
        h.update(np.ascontiguousarray(known[index]).tobytes())
    return h.hexdigest()


def state_digest(meta: dict, tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the record and of the tensors' names, dtypes, shapes and bytes: a damaged or
    edited state file is found before it is used."""
    h = hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode())
    for key in sorted(tensors):
        value = tensors[key]
        h.update(f"{key}|{value.dtype}|{tuple(value.shape)}|".encode())
        h.update(value.contiguous().view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return h.hexdigest()


def save_state(path: Path, meta: dict, tensors: dict[str, torch.Tensor]) -> None:
    """Atomically replace the state file: tensors as safetensors, `meta` and the tensors' digest as
    JSON in its header."""
    tensors = {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}
    # as JSON reads it back (text keys, lists), so that the digest checks what load_state sees
    header = json.loads(json.dumps({"format": STATE_FORMAT, "version": STATE_VERSION, **meta}, default=str))
    header["sha256"] = state_digest(header, tensors)
    # serialised in memory and written by our own atomic write: a full disk is then an OSError
    # like any other (safetensors' own writer reports it as its own error type)
    atomic_write_bytes(path, save(tensors, metadata={"vidzero": json.dumps(header, default=str)}))


def load_state(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(meta, tensors) of a vidzero state file; a clear error for anything else."""
    path = Path(path)
    check_input_file(path, "state file")
    if not path.is_file():
        raise BadInput(f"state file not found: {path}", "state")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = (f.metadata() or {}).get("vidzero")
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except Exception:  # safetensors raises its own error types for foreign bytes
        raise BadInput(
            f"{path} is not a vidzero state file (unreadable, or from vidzero 0.1, whose .state.pt "
            "files cannot be read: rerun that video)",
            "state",
        ) from None
    try:
        meta = json.loads(header) if header else None
    except (json.JSONDecodeError, RecursionError):
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != STATE_FORMAT:
        raise BadInput(f"{path} is not a vidzero state file", "state")
    if meta.get("version") != STATE_VERSION:
        raise BadInput(
            f"{path} is a state file of another vidzero version (format {meta.get('version')}, "
            f"this one reads {STATE_VERSION})",
            "state",
        )
    digest = meta.pop("sha256", None)
    if digest != state_digest(meta, tensors):
        raise BadInput(f"{path} is damaged: its contents do not match the checksum it was saved with", "state")
    return meta, tensors


def frames_of(tensors: dict[str, torch.Tensor], prefix: str) -> dict[int, torch.Tensor]:
    return {int(k.split(".", 1)[1]): v for k, v in tensors.items() if k.startswith(prefix + ".")}


def engine_payload(es: EngineState) -> tuple[dict, dict[str, torch.Tensor]]:
    meta = {"next_job": es.next_job, "next_out": es.next_out, "seeds": {str(k): v for k, v in es.seeds.items()}}
    tensors = {f"pixels.{k}": torch.from_numpy(np.ascontiguousarray(v)) for k, v in es.pixels.items()}
    tensors |= {f"latents.{k}": v for k, v in es.latents.items()}
    tensors |= {f"tail.{k}": v for k, v in es.tail_latents.items()}
    if es.decoder_cache is not None:  # a causal decoder's cache: its tensors, and what stood between
        meta["decoder"] = ["tensor" if isinstance(e, torch.Tensor) else e for e in es.decoder_cache]
        tensors |= {f"decoder.{i}": e for i, e in enumerate(es.decoder_cache) if isinstance(e, torch.Tensor)}
    return meta, tensors


def decoder_cache(markers: list | None, tensors: dict[int, torch.Tensor]) -> list | None:
    if markers is None:
        return None
    return [tensors[i] if marker == "tensor" else marker for i, marker in enumerate(markers)]


def engine_state(path: Path, meta: dict, tensors: dict[str, torch.Tensor], jobs: int, length: int) -> EngineState:
    """The engine's state of an interrupted run of `jobs` windows over `length` frames; a record
    that is incomplete, or that this plan could not have left, is refused with one line."""
    try:
        engine = meta["engine"]
        pixels = {k: v.numpy() for k, v in frames_of(tensors, "pixels").items()}
        state = EngineState(
            whole(engine["next_job"]),
            whole(engine["next_out"]),
            pixels,
            frames_of(tensors, "latents"),
            {int(k) if k.isdigit() else whole(k): whole(v) for k, v in engine["seeds"].items()},
            frames_of(tensors, "tail"),
            decoder_cache(engine.get("decoder"), frames_of(tensors, "decoder")),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        raise BadInput(
            f"{path} is a damaged vidzero state file (its record of the windows done is incomplete)"
        ) from None
    frames = [*state.pixels, *state.latents, *state.seeds]
    if not (0 <= state.next_job <= jobs and 0 <= state.next_out <= length and all(0 <= f < length for f in frames)):
        raise BadInput(
            f"{path} is a damaged vidzero state file: it records window {state.next_job} and frame {state.next_out} "
            f"of a run of {jobs} windows and {length} frames"
        )
    return state


def whole(value: Any) -> int:
    """An int from a record, as the run wrote it (int(\"3\") and int(2.7) would pass a forged value)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(value)
    return value


@dataclass
class FinishedRun:
    """A finished run's final state, read back typed (for `extend --from`)."""

    spec_options: dict[str, Any]  # the run's options record
    prompt: Any  # the prompt (or schedule) in force
    window: int
    height: int
    width: int
    fps: float
    next_job_offset: int
    tail_pixels: list[np.ndarray]
    tail_latents: list[torch.Tensor]
    # the user's frame the run's moving targets took their look from, by its index before the tail
    # (negative): a continuation goes on moving it
    references: dict[int, np.ndarray] = field(default_factory=dict)


@read_once
def read_finished(path: str | Path) -> FinishedRun:
    meta, tensors = load_state(path)
    if not meta.get("finished"):
        raise BadInput(f"{path} is an interrupted run's state: resume that run ({{+resume}}) instead", "state")
    try:
        pixels, latents = frames_of(tensors, "tail_pixels"), frames_of(tensors, "tail_latents")
        kept = frames_of(tensors, "reference_pixels")
        references = {int(at): kept[i].numpy() for i, at in enumerate(meta.get("reference_frames", []))}
        return FinishedRun(
            spec_options=meta["spec"]["options"],
            prompt=meta["prompt"],
            window=int(meta["window"]),
            height=int(meta["height"]),
            width=int(meta["width"]),
            fps=float(meta["fps"]),
            next_job_offset=int(meta["next_job_offset"]),
            tail_pixels=[pixels[i].numpy() for i in sorted(pixels)],
            tail_latents=[latents[i] for i in sorted(latents)],
            references=references,
        )
    except (KeyError, TypeError, ValueError):
        raise BadInput(f"{path} is a damaged vidzero state file (its record is incomplete)", "state") from None
