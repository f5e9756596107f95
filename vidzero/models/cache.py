"""diffusers' cache hooks on the denoiser: reuse of work from one step to the next.

`--cache none|first-block[:THRESHOLD]|pab|faster` applies diffusers' own hooks
(`enable_cache` with `FirstBlockCacheConfig`, `PyramidAttentionBroadcastConfig`,
`FasterCacheConfig`) to Wan's transformer (both experts of a Wan 2.2 checkpoint). They reuse
what an earlier step computed: first-block skips the blocks after the first when the first
block's output changed less than the threshold; pyramid attention broadcast reuses attention
outputs inside a range of timesteps; FasterCache reuses attention outputs and the unconditional
branch (it reads the branches as vidzero batches them, unconditional first, so every step must
be guided). Off by default: each trades some fidelity for speed (docs/gpu.md has the figures).

The frame queue runs many short sampling runs, so the hooks' state is reset at the start of
every window (a window's first step must not reuse the last step of the window before); the
two guidance branches run in one batch, one cache context. MagCache needs magnitude ratios
calibrated for the checkpoint, which diffusers ships for Flux only, and diffusers' hooks find no
transformer blocks in UNet3DConditionModel: both are refused with that reason.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from vidzero.errors import BadInput

CACHES = ("none", "first-block", "pab", "faster")
FIRST_BLOCK_THRESHOLD = 0.05  # diffusers' default


def parse_cache(text: Any) -> tuple[str, float | None]:
    """(name, threshold) of `NAME[:THRESHOLD]` (a threshold only for first-block)."""
    if not isinstance(text, str):
        raise BadInput(f"{{option}} must be text, one of {', '.join(CACHES)}, got {text!r}", "cache")
    name, colon, value = text.partition(":")
    if name == "mag":
        raise BadInput(
            "{option} mag needs magnitude ratios calibrated for the checkpoint (diffusers ships Flux's only); "
            "use first-block, pab or faster",
            "cache",
        )
    if name not in CACHES:
        raise BadInput(f"unknown {{option}} {text!r} (use {', '.join(CACHES)}; first-block:THRESHOLD)", "cache")
    if not colon:
        return name, FIRST_BLOCK_THRESHOLD if name == "first-block" else None
    if name != "first-block":
        raise BadInput(f"{{option}} {name} takes no value (first-block:THRESHOLD does)", "cache")
    try:
        threshold = float(value)
    except ValueError:
        raise BadInput(f"{{option}} threshold {value!r} must be a number", "cache") from None
    if not 0 < threshold <= 1:
        raise BadInput(f"{{option}} threshold must be in (0, 1], got {threshold:g}", "cache")
    return name, threshold


def check_cache(text: Any, family: str) -> None:
    """Refuse a cache the family has no blocks for (before any weight loads)."""
    name, _ = parse_cache(text)
    if name != "none" and family != "wan":
        raise BadInput(
            "{option} applies diffusers' hooks to transformer blocks; diffusers finds none in "
            "UNet3DConditionModel (ModelScope, zeroscope, the embedded model)",
            "cache",
        )


def cache_config(name: str, threshold: float | None, backbone: Any) -> Any:
    from diffusers.hooks import FasterCacheConfig, FirstBlockCacheConfig, PyramidAttentionBroadcastConfig

    def timestep() -> float:
        return backbone.current_timestep

    if name == "first-block":
        return FirstBlockCacheConfig(threshold=threshold or FIRST_BLOCK_THRESHOLD)
    if name == "pab":
        return PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=2,
            spatial_attention_timestep_skip_range=(100, 800),
            current_timestep_callback=timestep,
        )
    return FasterCacheConfig(
        spatial_attention_block_skip_range=2,
        spatial_attention_timestep_skip_range=(-1, 681),
        current_timestep_callback=timestep,
        attention_weight_callback=lambda _: 0.3,
        unconditional_batch_skip_range=5,
        unconditional_batch_timestep_skip_range=(-1, 781),
    )


def apply_cache(backbone: Any, text: str) -> None:
    """Enable the named cache on every expert of the backbone."""
    name, threshold = parse_cache(text)
    if name == "none":
        return
    check_cache(text, backbone.family)
    for expert in backbone.experts():
        expert.enable_cache(cache_config(name, threshold, backbone))
    backbone.cache = text


def reset_cache(backbone: Any) -> None:
    """Forget what the hooks kept (a new window starts)."""
    for expert in backbone.experts():
        if getattr(expert, "is_cache_enabled", False):
            expert._reset_stateful_cache()


@contextlib.contextmanager
def cache_context(module: Any, t: Any, enabled: bool) -> Iterator[None]:
    """The context diffusers' cache hooks read at each call: one name for the batched branches."""
    if not enabled:
        yield
        return
    with module.cache_context("guided", timestep=float(t)):
        yield
