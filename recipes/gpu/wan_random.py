"""Wan 2.1 T2V 1.3B's real architecture with random weights: built from its published
configurations, saved as a diffusers folder, loaded through vidzero's normal loading path, and
run through a short `extend` on the CPU.

    python -m recipes.gpu.wan_random --out build/wan-1.3b-random

The transformer and the VAE are Wan 2.1's (Wan-AI/Wan2.1-T2V-1.3B-Diffusers: 30 layers of width
1536, 12 heads, FFN 8960, text width 4096; the causal VAE with 16 latent channels, 4x in time,
8x in space). The text encoder is a stand-in with UMT5-XXL's width (4096) but 2 layers and a
byte-level vocabulary: the real one (5.7 B parameters, 11 GB in bf16) would only make the folder
big. The scheduler is the real checkpoint's: UniPC with flow sigmas and a shift of 3, which vidzero
drives as the flow-matching Euler step with that shift. Quality needs the real weights; this
checks that the real shapes load, sample, decode and write.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch

TRANSFORMER = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 12,
    "attention_head_dim": 128,
    "in_channels": 16,
    "out_channels": 16,
    "text_dim": 4096,
    "freq_dim": 256,
    "ffn_dim": 8960,
    "num_layers": 30,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
    "rope_max_seq_len": 1024,
}
VAE = {  # AutoencoderKLWan's defaults are Wan 2.1's VAE
    "base_dim": 96,
    "z_dim": 16,
    "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_scales": [],
    "temperal_downsample": [False, True, True],
}
UMT5_XXL_WIDTH = {"d_model": 4096, "d_kv": 64, "num_heads": 64, "d_ff": 10240}
SCHEDULER = {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "flow_shift": 3.0}


def build(folder: Path, dtype: torch.dtype = torch.bfloat16, layers: int = 2) -> None:
    """Write the random-weight checkpoint folder (`layers` text-encoder layers)."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from vidzero.models.tiny import byte_t5_tokenizer

    torch.manual_seed(0)
    tokenizer = byte_t5_tokenizer()
    text = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), num_layers=layers, **UMT5_XXL_WIDTH))  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = WanPipeline(
            tokenizer=tokenizer,
            text_encoder=text.to(dtype),
            vae=AutoencoderKLWan(**VAE),
            scheduler=UniPCMultistepScheduler(**SCHEDULER),
            transformer=WanTransformer3DModel(**TRANSFORMER).to(dtype),
        )
        pipe.save_pretrained(folder)
    # the published model's native format, as its model card states it
    (folder / "vidzero.json").write_text(json.dumps({"frames": 81, "height": 480, "width": 832}))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("build/wan-1.3b-random"))
    p.add_argument("--size", type=int, default=64, help="frame height and width of the smoke run (multiple of 16)")
    p.add_argument("--frames", type=int, default=9, help="video frames of the smoke run (1 + 4k)")
    p.add_argument("--image", type=Path, default=Path("examples/red_circle.png"))
    a = p.parse_args(argv)
    import vidzero
    from vidzero.models.checkpoint import inspect_checkpoint

    if not (a.out / "model_index.json").exists():
        started = time.perf_counter()
        build(a.out)
        print(f"built {a.out} in {time.perf_counter() - started:.0f} s", flush=True)
    summary = inspect_checkpoint(str(a.out)).summary()
    print(
        json.dumps(
            {
                k: summary[k]
                for k in (
                    "family",
                    "window_frames",
                    "window_latent_frames",
                    "latent_shape",
                    "transformer_parameters",
                    "text_encoder_parameters",
                    "vae_parameters",
                )
            }
        )
    )
    started = time.perf_counter()
    bb = vidzero.load_backbone(str(a.out), device="cpu", dtype="bf16", window=a.frames, height=a.size, width=a.size)
    loaded = time.perf_counter() - started
    run = vidzero.extend(
        a.image, "a red circle moving right", a.frames, backbone=bb, steps=2, resample=1, progress=False
    )
    out = run.save(a.out / "extend.mp4", force=True)
    stats = run.engine.stats
    print(
        f"loaded in {loaded:.1f} s; extend of {a.frames} frames at {a.size}x{a.size}: {stats.jobs} windows, "
        f"{stats.cfg_evaluations} evaluations, {stats.seconds:.1f} s ({stats.unet_seconds:.1f} s in the transformer); "
        f"wrote {out}"
    )


if __name__ == "__main__":
    main()
