"""One-line notices a run gives before or while it works: a given frame far outside what the
model draws, a resume on another number of CPU threads. Warnings, never refusals: the run goes on."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from vidzero.core.backbone import Backbone
from vidzero.core.frames import from_pixels, to_pixels
from vidzero.models.checkpoint import DEFAULT_MODEL


class ResumeThreadsWarning(UserWarning):
    """A run resumes with another number of CPU threads than it started with."""


def threads(n: int) -> str:
    return f"{n} CPU thread" + ("" if n == 1 else "s")


# dB: below this, the model's own VAE round trip says a frame is far outside what the model draws.
# The embedded model keeps the fidelity bench's 48 shapes at 22.1-34.2 dB, and photographs it cannot
# draw at 11.7 (scikit-image's astronaut), 13.2 (coffee), 15.9 (chelsea), 21.7 (rocket, mostly sky).
DRAWABLE_PSNR = 18.0


class FarFromModelWarning(UserWarning):
    """A given frame is far outside what the model draws: the video will not keep it."""


def warn_if_far_from_the_model(backbone: Backbone, layout: Any) -> None:
    """One line before a run whose given frames the model's own VAE reconstructs badly (never a
    refusal: the run goes on)."""
    if backbone.temporal_stride > 1:  # known frames arrive as clips' latents: no frame to try alone
        return
    given = [layout.known[f] for f in sorted(layout.given_frames()) if f in layout.known][:4]
    if not given:
        return
    pixels = from_pixels(np.stack(given)).to(backbone.device)
    with torch.no_grad():
        back = to_pixels(backbone.decode(backbone.encode_frames(pixels)))
    errors = ((back.astype(np.float64) - np.stack(given).astype(np.float64)) ** 2).reshape(len(given), -1).mean(1)
    worst = float(min(10 * np.log10(255.0**2 / max(float(e), 1e-10)) for e in errors))
    if worst < DRAWABLE_PSNR:
        card = "its model card, docs/model-card.md" if backbone.model_id == DEFAULT_MODEL else "the checkpoint's card"
        warnings.warn(
            f"the model's own VAE keeps your image at {worst:.1f} dB (images it draws: above {DRAWABLE_PSNR:.0f} "
            f"dB): it is far outside what {backbone.model_id} draws and the video will not keep it; see "
            f"{card}, or choose a checkpoint that draws such images (--model, model= in Python)",
            FarFromModelWarning,
            stacklevel=2,
        )


def warn_if_threads_differ(started: int | None) -> None:
    # Matrix products split over another number of threads round differently: the frames made
    # after the resume can differ in the last bits from an uninterrupted run's.
    now = torch.get_num_threads()
    if started is not None and started != now:
        warnings.warn(
            f"this run started with {threads(started)} and resumes with {threads(now)}: its frames from here on may "
            f"differ in the last bits from an uninterrupted run (OMP_NUM_THREADS={started} gives identical bytes)",
            ResumeThreadsWarning,
            stacklevel=3,
        )
