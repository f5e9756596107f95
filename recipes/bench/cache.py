"""diffusers' cache hooks on Wan's transformer, measured side by side in one run.

    python -m recipes.bench.cache [--model real|tiny] [--steps 10] [--caches none,first-block,...]

`real` builds Wan 2.1 1.3B's transformer from its published config (30 layers, width 1536, random
weights, fp32 on the CPU) over a small window (9 video frames at 64x64: 3 latent frames of 4x4
tokens) with a tiny VAE and a text encoder of the transformer's text width; `tiny` is the tests'
model. Each cache makes the same plain text-to-video window (same prompt, seed and steps) and is
compared with no cache: the share of transformer evaluations whose tail blocks were skipped (the
last block's attention did not run), seconds per evaluation and their ratio to no cache, and how
far the latents moved (relative L2 against no cache). The weights are random: the distance is the
hooks' approximation error on this architecture, not a judgement of the pictures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import vidzero
from recipes.gpu.wan_random import TRANSFORMER as WAN_1_3B  # Wan 2.1 1.3B's published config


def backbone(kind: str):
    from diffusers import WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from vidzero.models.tiny import tiny_wan_components
    from vidzero.models.wan import WanBackbone

    parts = tiny_wan_components(0)
    size = 32
    if kind == "real":
        torch.manual_seed(0)
        parts["transformer"] = WanTransformer3DModel(**WAN_1_3B).eval()
        parts["text_encoder"] = UMT5EncoderModel(
            UMT5Config(vocab_size=len(parts["tokenizer"]), d_model=4096, d_kv=64, d_ff=256, num_layers=1, num_heads=4)
        ).eval()
        size = 64
    bb = WanBackbone(
        parts["transformer"],
        parts["vae"],
        parts["text_encoder"],
        parts["tokenizer"],
        dict(parts["scheduler"].config),
        frames=3,
        height=size,
        width=size,
        model_id=f"wan-{kind}",
    )
    return bb


def measure(bb, cache: str, steps: int) -> tuple[dict, torch.Tensor]:
    """One window with `cache` on the backbone's transformer, taken off again after (one model
    for every setting: a 1.3B transformer per setting would not fit in memory)."""
    from vidzero.models.cache import apply_cache

    apply_cache(bb, cache)
    computed = {"first": 0, "last": 0}

    def counter(name: str):
        return lambda *_: computed.__setitem__(name, computed[name] + 1)

    hooks = [
        bb.transformer.blocks[0].attn1.register_forward_pre_hook(counter("first")),
        bb.transformer.blocks[-1].attn1.register_forward_pre_hook(counter("last")),
    ]
    run = vidzero.generate(
        "a red circle moving right", 9, backbone=bb, steps=steps, guidance=5.0, seed=0, progress=False
    )
    started = time.perf_counter()
    frames = list(run)
    seconds = time.perf_counter() - started
    for hook in hooks:
        hook.remove()
    if bb.transformer.is_cache_enabled:
        bb.transformer.disable_cache()
    bb.cache = "none"
    latents = torch.stack([f.latent for f in frames if f.latent is not None])
    evaluations = run.engine.stats.cfg_evaluations
    return {
        "cache": cache,
        "evaluations": evaluations,
        "tail_skipped": 1 - computed["last"] / max(1, computed["first"]),
        "seconds_per_evaluation": run.engine.stats.unet_seconds / max(1, evaluations),
        "seconds": seconds,
    }, latents


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=("real", "tiny"), default="real")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--caches", default="none,first-block:0.05,first-block:0.1,first-block:0.2,pab,faster")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows, reference, bb = [], None, backbone(args.model)  # one model, each cache on and off in turn
    for cache in [c.strip() for c in args.caches.split(",") if c.strip()]:
        row, latents = measure(bb, cache, args.steps)
        if reference is None:
            reference, base = latents, row["seconds_per_evaluation"]
        row["time_ratio"] = row["seconds_per_evaluation"] / base
        row["latent_change"] = float((latents - reference).norm() / reference.norm())
        rows.append(row)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    print("\n| cache | evaluations | tail blocks skipped | s per evaluation | time vs none | latent change |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['cache']} | {r['evaluations']} | {r['tail_skipped']:.0%} | {r['seconds_per_evaluation']:.3f} "
            f"| {r['time_ratio']:.2f}x | {r['latent_change']:.3f} |"
        )
    if args.out is not None:
        args.out.write_text(json.dumps({"model": args.model, "steps": args.steps, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
