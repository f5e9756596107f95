"""What every task shares: getting a backbone and an engine from user-level options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vidzero.backbone import DEFAULT_MODEL, Backbone
from vidzero.engine import Engine, Prompt
from vidzero.errors import BadInput
from vidzero.flicker import DeflickerSettings
from vidzero.io import fit_frame, load_image
from vidzero.sampler import SamplerSettings

ImageLike = str | Path | Image.Image | np.ndarray


@dataclass
class RunOptions:
    """Options every task takes (the CLI's common flags). Defaults are the release's."""

    model: str = DEFAULT_MODEL
    device: str = "auto"
    dtype: str = "fp32"
    steps: int = 10
    resample: int = 4
    guidance: float = 9.0
    eta: float = 0.0
    init: str = "inversion"
    new_per_window: int = 1  # frames generated per sampling run (1: the paper's repeat-and-slide)
    seed: int = 0
    queue: str = "pixel"
    fps: float = 8.0
    negative_prompt: str = ""
    deflicker: bool = False  # post-process on save (known frames are anchors)
    window: int | None = None  # override the checkpoint's native frame count
    height: int | None = None
    width: int | None = None

    def backbone(self, given: Backbone | None = None) -> Backbone:
        if given is not None:
            return given
        for name, value in (("window", self.window), ("height", self.height), ("width", self.width)):
            if value is not None and not 2 <= value <= 4096:
                raise BadInput(f"--{name} must be between 2 and 4096, got {value}")
        return Backbone.load(self.model, device=self.device, dtype=self.dtype, frames=self.window, height=self.height, width=self.width)

    def engine(self, backbone: Backbone, job_offset: int = 0) -> Engine:
        settings = SamplerSettings(steps=self.steps, resample=self.resample, guidance=self.guidance, eta=self.eta, init=self.init)
        return Engine(backbone, settings, seed=self.seed, queue=self.queue, job_offset=job_offset)

    def deflicker_settings(self) -> DeflickerSettings | None:
        return DeflickerSettings() if self.deflicker else None

    def check(self) -> None:
        if not 0 < self.fps <= 240:
            raise BadInput(f"--fps must be in (0, 240], got {self.fps}")


def schedule(prompt: Prompt, length: int) -> Prompt:
    """A prompt, or a schedule {first frame: prompt}, checked against a video of `length` frames."""
    table = dict(prompt) if isinstance(prompt, dict) else {0: prompt}
    for frame, text in table.items():
        if not isinstance(frame, int) or not 0 <= frame < length:
            raise BadInput(f"prompt at frame {frame} is outside the video (0..{length - 1})")
        if not isinstance(text, str):
            raise BadInput(f"the prompt at frame {frame} is not text")
    if 0 not in table:
        raise BadInput("a prompt schedule needs an entry for frame 0")
    return table[0] if len(table) == 1 else dict(sorted(table.items()))


def load_frame(image: ImageLike, backbone: Backbone) -> np.ndarray:
    """A user image (path, PIL image or HxWx3 uint8 array) fitted to the backbone's frame size."""
    if isinstance(image, (str, Path)):
        return load_image(image, backbone.width, backbone.height)
    if isinstance(image, np.ndarray) and (image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8):
        raise BadInput(f"expected an (H, W, 3) uint8 image array, got {image.dtype} {image.shape}")
    return fit_frame(image, backbone.width, backbone.height)


__all__ = ["ImageLike", "Prompt", "RunOptions", "load_frame", "schedule"]
