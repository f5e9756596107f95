"""LoRA adapters, loaded with diffusers' own `load_lora_weights` (through peft) into the
denoiser they fit.

A LoRA is given as `FILE[:SCALE]` (`--lora`, repeatable; `lora=` in Python: a path, a
(path, scale) pair, or a list of them); `--lora-2` loads into the second expert of a Wan 2.2
checkpoint (its low-noise transformer), as step-distilled LoRAs come in a pair. diffusers reads
its own format and the original Wan key formats (its converters). Each adapter is weighted by
its scale with `set_adapters`; at scale 0 the adapter adds exactly nothing, so the frames are
those of no LoRA. The run's record keeps each file's name, SHA-256 and scale (a resumed run with
a changed file is another run).

Wan's transformer takes LoRAs in diffusers; diffusers' UNet3DConditionModel (ModelScope,
zeroscope) has no LoRA loading, and is refused with that reason.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidzero.errors import BadInput, shown

EXPERTS = ("transformer", "transformer_2")


@dataclass(frozen=True)
class Lora:
    file: Path
    scale: float = 1.0

    @property
    def spec(self) -> str:
        return f"{self.file}:{self.scale:g}"


def parse_lora(value: Any, option: str = "lora") -> Lora:
    """`FILE[:SCALE]`, a path, or a (path, scale) pair."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise BadInput(f"{{option}} {value!r} must be a path or a (path, scale) pair", option)
        path, scale = value
    elif isinstance(value, (str, Path)):
        text = str(value)
        head, colon, tail = text.rpartition(":")
        path, scale = (head, tail) if colon and head and is_number(tail) else (text, 1.0)
    else:
        raise BadInput(f"{{option}} must be FILE[:SCALE], a path, or a (path, scale) pair, got {value!r}", option)
    try:
        scale = float(scale)
    except (TypeError, ValueError):
        raise BadInput(f"{{option}} scale {scale!r} must be a number", option) from None
    if isinstance(scale, bool) or not math.isfinite(scale) or not -10 <= scale <= 10:
        raise BadInput(f"{{option}} scale must be a finite number in [-10, 10], got {scale!r}", option)
    return Lora(Path(str(path)), scale)


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def lora_specs(value: Any, option: str = "lora") -> list[str] | None:
    """The LoRAs as the options keep them, `FILE:SCALE` each (None: none)."""
    if value is None or value == [] or value == ():
        return None
    pair = isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], (int, float))
    items = [value] if isinstance(value, (str, Path)) or pair else list(value)
    return [parse_lora(item, option).spec for item in items]


def check_lora_files(specs: Sequence[str] | None, option: str) -> list[Lora]:
    """The LoRAs, each file a readable safetensors file (before any model loads)."""
    from vidzero.media.outputs import check_input_file

    loras = [parse_lora(s, option) for s in specs or []]
    for lora in loras:
        check_input_file(lora.file, f"{option.replace('_', '-')} file")
        if lora.file.suffix.lower() != ".safetensors":
            raise BadInput(f"{{option}} {shown(str(lora.file))} is not a .safetensors LoRA file", option)
    return loras


def check_lora_room(family: str, experts: Sequence[str], second: bool) -> None:
    """Refuse LoRAs a checkpoint has no denoiser for (before its weights load)."""
    if family != "wan":
        raise BadInput(
            "{option} needs a denoiser diffusers loads LoRAs into (Wan's transformer); diffusers' "
            "UNet3DConditionModel (ModelScope, zeroscope, the embedded model) has no LoRA loading",
            "lora",
        )
    if second and EXPERTS[1] not in experts:
        raise BadInput("{option} loads into a second expert; this checkpoint has one transformer", "lora_2")


def load_loras(backbone: Any, first: Sequence[str] | None, second: Sequence[str] | None) -> list[dict[str, Any]]:
    """Load the LoRAs into a backbone's denoisers with diffusers' `load_lora_weights`; returns
    what the run's record keeps of each (file name, SHA-256, scale, the denoiser it went into)."""
    from vidzero.media.outputs import sha256_of

    loras = [(lora, EXPERTS[0]) for lora in check_lora_files(first, "lora")]
    loras += [(lora, EXPERTS[1]) for lora in check_lora_files(second, "lora_2")]
    if not loras:
        return []
    experts = tuple(name for name in EXPERTS if getattr(backbone, name, None) is not None)
    check_lora_room(backbone.family, experts, any(expert == EXPERTS[1] for _, expert in loras))
    pipe = lora_pipeline(backbone)
    names, weights, records = [], [], []
    for i, (lora, expert) in enumerate(loras):
        name = f"vidzero_{i}"
        module = getattr(backbone, expert)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pipe.load_lora_weights(str(lora.file), adapter_name=name, load_into_transformer_2=expert == EXPERTS[1])
        except (ValueError, KeyError, RuntimeError, OSError) as exc:
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise BadInput(f"{lora.file} is no LoRA for this model's {expert}: {first_line}") from None
        if name not in (getattr(module, "peft_config", None) or {}):
            raise BadInput(f"{lora.file} is no LoRA for this model's {expert}: none of its layers match")
        names.append(name)
        weights.append(lora.scale)
        records.append({"file": lora.file.name, "sha256": sha256_of(lora.file), "scale": lora.scale, "into": expert})
    pipe.set_adapters(names, weights)
    return records


def lora_pipeline(backbone: Any) -> Any:
    """A WanPipeline over the backbone's own modules (nothing copied), for diffusers' LoRA loading."""
    from diffusers import WanPipeline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return WanPipeline(
            transformer=backbone.transformer,
            vae=backbone.vae,
            text_encoder=backbone.text_encoder,
            tokenizer=backbone.tokenizer,
            scheduler=backbone.scheduler,
            transformer_2=backbone.transformer_2,
            boundary_ratio=backbone.boundary_ratio,
        )
