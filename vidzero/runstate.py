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
their latents), the prompt, the settings and the next window index, so that `vidzero extend
--from OUT.state.safetensors` continues the video exactly as a longer run would have.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from vidzero.engine import EngineState
from vidzero.errors import BadInput
from vidzero.outputs import PARTIAL, STATE, _process_umask, sidecar, temporary_sibling, write_errors

STATE_FORMAT = "vidzero-run-state"
STATE_VERSION = 2


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


def save_state(path: Path, meta: dict, tensors: dict[str, torch.Tensor]) -> None:
    """Atomically replace the state file: tensors as safetensors, `meta` as JSON in its header."""
    header = {"format": STATE_FORMAT, "version": STATE_VERSION, **meta}
    tmp = temporary_sibling(path)
    with write_errors(path, cleanup=tmp):
        save_file(
            {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()},
            str(tmp),
            metadata={"vidzero": json.dumps(header, default=str)},
        )
        os.chmod(tmp, 0o666 & ~_process_umask())  # safetensors writes the file anew, private
        tmp.replace(path)


def load_state(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(meta, tensors) of a vidzero state file; a clear error for anything else."""
    path = Path(path)
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
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != STATE_FORMAT:
        raise BadInput(f"{path} is not a vidzero state file", "state")
    if meta.get("version") != STATE_VERSION:
        raise BadInput(
            f"{path} is a state file of another vidzero version (format {meta.get('version')}, "
            f"this one reads {STATE_VERSION})",
            "state",
        )
    return meta, tensors


def frames_of(tensors: dict[str, torch.Tensor], prefix: str) -> dict[int, torch.Tensor]:
    return {int(k.split(".", 1)[1]): v for k, v in tensors.items() if k.startswith(prefix + ".")}


def engine_payload(es: EngineState) -> tuple[dict, dict[str, torch.Tensor]]:
    meta = {"next_job": es.next_job, "next_out": es.next_out, "seeds": {str(k): v for k, v in es.seeds.items()}}
    tensors = {f"pixels.{k}": torch.from_numpy(np.ascontiguousarray(v)) for k, v in es.pixels.items()}
    tensors |= {f"latents.{k}": v for k, v in es.latents.items()}
    tensors |= {f"tail.{k}": v for k, v in es.tail_latents.items()}
    return meta, tensors


def engine_state(meta: dict, tensors: dict[str, torch.Tensor]) -> EngineState:
    pixels = {k: v.numpy() for k, v in frames_of(tensors, "pixels").items()}
    return EngineState(
        meta["next_job"],
        meta["next_out"],
        pixels,
        frames_of(tensors, "latents"),
        {int(k): v for k, v in meta["seeds"].items()},
        frames_of(tensors, "tail"),
    )
