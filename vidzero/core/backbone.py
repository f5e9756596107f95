"""What the engine needs of a frozen text-to-video model: a window format and four verbs.

The families (vidzero.models: ModelScope/zeroscope's UNet3D with DDIM, Wan's transformer with a
rectified flow) implement this protocol; the engine and the sampler see nothing else of them.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from vidzero.core.packing import Request
from vidzero.core.sampler import Denoiser, Prediction, SamplerSettings
from vidzero.core.schedule import NoiseGrid


class Backbone(Protocol):
    model_id: str
    revision: str | None
    family: str  # "unet3d" or "wan"
    device: torch.device
    dtype: torch.dtype
    frames: int  # the native window, in latent frames
    temporal_stride: int  # video frames per latent frame after the first (1: one each)
    height: int
    width: int
    init_noise_sigma: float
    truncated_prompts: dict[str, int]  # prompt -> its length in tokens, for prompts cut short

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one latent frame."""

    def encode_frames(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) pixels in [-1, 1] -> (N, C, h, w) latents, each frame on its own."""

    def encode_video(self, pixels: torch.Tensor) -> torch.Tensor:
        """(T, 3, H, W) pixels of a clip -> its latent frames (T of them, or 1 + (T - 1) / stride)."""

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) latents -> (N, 3, H, W) pixels in [-1, 1]."""

    def denoiser(self, prompt: str, negative_prompt: str) -> PromptDenoiser:
        """The model's prediction for a window under this prompt (and the negative one)."""

    def predict_many(self, requests: list[Request]) -> list[Prediction]:
        """Several windows' predictions in one model call (packed windows)."""

    def noise_grid(self, settings: SamplerSettings) -> NoiseGrid:
        """The levels of one sampling run with these settings."""

    def decoder(self) -> StreamDecoder:
        """Decodes latent frames in timeline order (families whose latent frames hold several
        video frames decode causally, with a cache)."""


class PromptDenoiser(Denoiser, Protocol):
    cond: torch.Tensor  # the prompt's text states
    uncond: torch.Tensor  # the negative prompt's


class StreamDecoder(Protocol):
    def push(self, latent: torch.Tensor) -> torch.Tensor:
        """(C, h, w) -> the (n, 3, H, W) video frames this latent frame holds."""

    def state(self) -> list[Any]: ...

    def load(self, cache: list[Any], count: int) -> None: ...
