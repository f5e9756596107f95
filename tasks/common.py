"""What every task shares: a backbone and an engine from the run options, prompts, images."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vidzero.backbone import Backbone
from vidzero.engine import Engine, Prompt
from vidzero.errors import BadInput
from vidzero.flicker import DeflickerSettings
from vidzero.io import check_image_array, fit_frame, load_image, open_image
from vidzero.options import RunOptions, text
from vidzero.run import PlannedRun
from vidzero.sampler import SamplerSettings
from vidzero.timeline import WindowJob

ImageLike = str | Path | Image.Image | np.ndarray

# Options that do not decide the frames (kept out of the manifest's options record).
NOT_RECORDED = {"callback", "progress", "output_type"}


def load_backbone(o: RunOptions) -> Backbone:
    return Backbone.load(
        o.model,
        device=o.device,
        dtype=o.dtype,
        frames=o.window,
        height=o.height,
        width=o.width,
        cache_dir=o.cache_dir,
        revision=o.revision,
        variant=o.variant,
        download=o.download,
        offload=o.offload,
        vae_tiling=o.vae_tiling,
        attention_slicing=o.attention_slicing,
        forward_chunking=o.forward_chunking,
        compile=o.compile,
        vae_slice=o.vae_slice,
    )


def setup(options: RunOptions, backbone: Backbone | None) -> tuple[RunOptions, Backbone]:
    """Checked options (presets applied) and the backbone: the given one, or loaded."""
    o = options.check()
    if backbone is not None and not all(hasattr(backbone, a) for a in ("frames", "height", "width", "latent_shape")):
        raise BadInput(
            f"{{option}} must be a vidzero Backbone (vidzero.load_backbone), got {type(backbone).__name__}", "backbone"
        )
    bb = backbone or load_backbone(o)
    if o.new_per_window > bb.frames - 1:
        raise BadInput(
            f"{{option}} must be between 1 and {bb.frames - 1} (the window minus one known slot), "
            f"got {o.new_per_window}",
            "new_per_window",
        )
    return o, bb


def planned(
    task: str,
    o: RunOptions,
    bb: Backbone,
    jobs: list[WindowJob],
    length: int,
    known: dict[int, np.ndarray],
    prompt: Prompt,
    inputs: dict,
    input_paths: list[Path] | None = None,
    job_offset: int = 0,
    **extra: Any,
) -> PlannedRun:
    """The PlannedRun of a task, with its engine built from the options."""
    settings = SamplerSettings(
        steps=o.steps, resample=o.resample, guidance=o.guidance, eta=o.eta, init=o.init, resample_steps=o.resample_steps
    )
    engine = Engine(
        bb,
        settings,
        seed=o.seed,
        queue=o.queue,
        job_offset=job_offset,
        guidance_passes=o.guidance_passes,
        callback=o.callback,
    )
    recorded = {k: v for k, v in asdict(o).items() if k not in NOT_RECORDED}
    return PlannedRun(
        task,
        engine,
        jobs,
        length,
        known,
        prompt,
        o.negative_prompt,
        o.fps,
        inputs,
        o.progress,
        DeflickerSettings() if o.deflicker else None,
        input_paths=list(input_paths or []),
        output_type=o.output_type,
        codec=o.codec,
        crf=o.crf,
        options=recorded,
        **extra,
    )


def schedule(prompt: Prompt, length: int) -> Prompt:
    """A prompt, or a schedule {first frame: prompt}, checked against a video of `length` frames."""
    if isinstance(prompt, str):
        return text(prompt, "prompt")
    if not isinstance(prompt, dict) or not prompt:
        raise BadInput(
            f"{{option}} must be text or a non-empty dict {{first frame: text}}, got {type(prompt).__name__}", "prompt"
        )
    for frame, value in prompt.items():
        if isinstance(frame, bool) or not isinstance(frame, int) or not 0 <= frame < length:
            raise BadInput(f"{{option}}: frame {frame!r} is outside the video (0..{length - 1})", "prompt_schedule")
        text(value, "prompt")
        if not value.strip():
            raise BadInput(f"{{option}}: the prompt at frame {frame} is empty", "prompt_schedule")
    if 0 not in prompt:
        raise BadInput("{option} needs an entry for frame 0", "prompt_schedule")
    return prompt[0] if len(prompt) == 1 else dict(sorted(prompt.items()))


def load_frame(image: ImageLike, backbone: Backbone, what: str = "image") -> np.ndarray:
    """A user image (path, PIL image or HxWx3 uint8 array) fitted to the backbone's frame size."""
    if isinstance(image, (str, Path)):
        return load_image(image, backbone.width, backbone.height)
    if isinstance(image, Image.Image):
        return fit_frame(image, backbone.width, backbone.height)
    if isinstance(image, np.ndarray):
        return fit_frame(check_image_array(image, what), backbone.width, backbone.height)
    raise BadInput(
        f"{{option}} must be a file path, a PIL image or an (H, W, 3) uint8 array, got {type(image).__name__}",
        what if what in ("image",) else None,
    )


def check_image_source(image: ImageLike, what: str = "image") -> tuple[int, int]:
    """Size (width, height) of an image, read before any model loads, so bad files fail first."""
    if isinstance(image, (str, Path)):
        h, w = open_image(image, what).shape[:2]
        return w, h
    if isinstance(image, Image.Image):
        return image.size
    if isinstance(image, np.ndarray):
        check_image_array(image, what)
        return int(image.shape[1]), int(image.shape[0])
    raise BadInput(f"{what} must be a file path, a PIL image or an (H, W, 3) uint8 array, got {type(image).__name__}")


def source_name(image: ImageLike) -> str:
    return str(image) if isinstance(image, (str, Path)) else type(image).__name__


def paths_of(*items: Any) -> list[Path]:
    return [Path(i) for i in items if isinstance(i, (str, Path))]


__all__ = ["ImageLike", "Prompt", "RunOptions", "check_image_source", "load_frame", "planned", "schedule", "setup"]
