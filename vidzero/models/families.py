"""Which backbone family a checkpoint is, from its own files, and loading it as that family.

    bb = load_backbone("damo-vilab/text-to-video-ms-1.7b", device="cuda", dtype="fp16")
    bb = load_backbone("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", dtype="bf16")

`model_index.json` names the pipeline and component classes: UNet3DConditionModel with
AutoencoderKL and CLIP is the UNet3D family (ModelScope T2V, zeroscope, the embedded model);
WanTransformer3DModel with AutoencoderKLWan and UMT5 is Wan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from typing_extensions import Unpack

from vidzero.core.backbone import Backbone
from vidzero.errors import BadInput
from vidzero.models.checkpoint import DEFAULT_MODEL, LoadOptions, LoadOptionsDict, inspect_checkpoint
from vidzero.models.loading import quiet_loading
from vidzero.models.unet3d import UNet3DBackbone


def load_backbone(model: str | Path | LoadOptions = DEFAULT_MODEL, **options: Unpack[LoadOptionsDict]) -> Backbone:
    """Load a checkpoint: 'shapes' (embedded), a diffusers folder, or a hub id from the local
    cache (downloaded only with `download=True`), as the family its files name. `options` are
    the fields of `LoadOptions` (device, dtype, window, height, width, offload, ...; a misspelt
    one is a TypeError), or give one `LoadOptions` whole. Window, height and width default to
    the checkpoint's native format (read from its files)."""
    load = model if isinstance(model, LoadOptions) else LoadOptions(model=str(model), **options)
    info = inspect_checkpoint(
        load.model, cache_dir=load.cache_dir, revision=load.revision, variant=load.variant, download=load.download
    )
    from vidzero.models.cache import apply_cache, check_cache

    check_cache(load.cache, info.family)  # before any weight loads
    if load.lora or load.lora_2:  # a file missing, or no room for a LoRA: one line before any weight loads
        from vidzero.models.lora import check_lora_files, check_lora_room

        check_lora_files(load.lora, "lora")
        check_lora_files(load.lora_2, "lora_2")
        check_lora_room(info.family, info.experts, bool(load.lora_2))
    backbone: Any
    if info.family == "wan":
        for name in ("attention_slicing", "forward_chunking"):
            if getattr(load, name):
                raise BadInput("{option} is a switch of the UNet3D family; Wan's transformer has none like it", name)
        from vidzero.models.wan import WanBackbone  # imported only for Wan checkpoints

        backbone = WanBackbone.from_checkpoint(info, load)
    else:
        backbone = UNet3DBackbone.from_checkpoint(info, load)
    if load.lora or load.lora_2:
        from vidzero.models.lora import load_loras

        with quiet_loading():
            backbone.loras = load_loras(backbone, load.lora, load.lora_2)
    apply_cache(backbone, load.cache)  # after the LoRAs: the hooks wrap the layers as they will run
    return backbone


def backbone_from_pipeline(
    pipe: Any,
    frames: int | None = None,
    height: int | None = None,
    width: int | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    model_id: str | None = None,
) -> Backbone:
    """A backbone on the components of a loaded diffusers text-to-video pipeline (its weights are
    used, not copied; a dtype or device other than the pipeline's changes them in place, as
    `pipe.to()` does)."""
    if getattr(pipe, "unet", None) is not None:
        return UNet3DBackbone.from_pipeline(pipe, frames, height, width, device, dtype, model_id)
    if type(getattr(pipe, "transformer", None)).__name__ == "WanTransformer3DModel":
        from vidzero.models.wan import WanBackbone

        return WanBackbone.from_pipeline(pipe, frames, height, width, device, dtype, model_id)
    raise BadInput(
        f"vidzero cannot drive a {type(pipe).__name__}: it needs a UNet3D (ModelScope, zeroscope) or a Wan "
        "text-to-video pipeline"
    )
