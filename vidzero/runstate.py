"""Saved run state: resuming an interrupted run, continuing a finished one.

While a run is saved to OUT, vidzero keeps next to it:

- `OUT.partial/`: every frame made so far, as lossless PNG, flushed as each window finishes;
- `OUT.state.pt`: what the engine needs to go on (next window, the frames and queue latents that
  later windows read, the seeds so far) and a fingerprint of the run's parameters and plan.

Each window draws its noise from its own seed (run seed, window index), so a resumed run makes
exactly the frames the uninterrupted run would have made. Whatever killed the run (SIGKILL
included), the state on disk is always the last complete one: it is replaced atomically, after
the frames it accounts for are on disk.

When the run finishes, the output is encoded from the PNGs, the partial folder is removed, and
the state file is rewritten as a *final* state. It holds the last window-1 frames (and their
latents), the prompt, the settings and the next window index, so that `vidzero extend --from
OUT.state.pt` continues the video exactly as a longer run would have: same windows, same seeds,
and with `--queue latent` no pixel round trip at the seam.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from vidzero.engine import EngineState
from vidzero.errors import BadInput
from vidzero.io import sidecar, temporary_sibling

STATE_VERSION = 1


def state_paths(output: str | Path) -> tuple[Path, Path]:
    """(state file, partial frames folder) of an output path."""
    return sidecar(output, ".state.pt"), sidecar(output, ".partial")


def fingerprint(params: dict, known: dict[int, np.ndarray]) -> str:
    """Hash of everything that decides a run's frames: parameters, plan, known pixels."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    for index in sorted(known):
        h.update(str(index).encode())
        h.update(np.ascontiguousarray(known[index]).tobytes())
    return h.hexdigest()


def save_state(path: Path, payload: dict) -> None:
    """Atomically replace the state file."""
    tmp = temporary_sibling(path)
    torch.save({"version": STATE_VERSION, **payload}, tmp)
    os.replace(tmp, path)


def load_state(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"state file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise BadInput(f"cannot read state file {path}: corrupt or not a vidzero state") from exc
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise BadInput(f"{path} is not a vidzero state file (version {STATE_VERSION})")
    return state


def engine_state(state: dict) -> EngineState:
    e = state["engine"]
    return EngineState(e["next_job"], e["next_out"], e["pixels"], e["latents"], e["seeds"])


def engine_payload(es: EngineState) -> dict:
    return {"next_job": es.next_job, "next_out": es.next_out, "pixels": es.pixels, "latents": es.latents, "seeds": es.seeds}
