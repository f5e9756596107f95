"""Tiny random-weight T2V checkpoints in diffusers format, for tests and smoke runs.

They have the component classes of ModelScope T2V and load through the same code path as real
checkpoints, but their weights are random: videos made with them show the mechanics, not content.

    python -m vidzero.tiny build/tiny     # writes a checkpoint folder (about 0.5 MB)
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import torch

TINY_WINDOW = 8
TINY_SIZE = 16  # pixels; the tiny VAE has spatial factor 2 -> 8x8 latents


def build_tiny_checkpoint(folder: str | Path, seed: int = 0, window: int = TINY_WINDOW, size: int = TINY_SIZE):
    from diffusers import AutoencoderKL, DDIMScheduler, TextToVideoSDPipeline, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from vidzero.shapes.model import MODELSCOPE_SCHEDULER_CONFIG
    from vidzero.shapes.tokenizer import build_tokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    unet = UNet3DConditionModel(
        sample_size=size // 2,
        block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        layers_per_block=1,
        cross_attention_dim=16,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 8),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=2,
        sample_size=size,
    )
    tokenizer = build_tokenizer(["a", "red", "circle", "moving", "right", "cat"], folder / "_tok")
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        )
    )
    # Random weights leave the UNet's output layer at zero init in diffusers: perturb every
    # parameter a little so eps depends on the input and the tests can tell things apart.
    with torch.no_grad():
        for module in (unet, vae, text_encoder):
            for p in module.parameters():
                p.add_(torch.randn_like(p) * 0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = TextToVideoSDPipeline(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
            scheduler=DDIMScheduler(**MODELSCOPE_SCHEDULER_CONFIG),
        )
        pipe.save_pretrained(folder)
    (folder / "vidzero.json").write_text(json.dumps({"frames": window}))
    return pipe


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m vidzero.tiny FOLDER")
    build_tiny_checkpoint(sys.argv[1])
    print(f"wrote a tiny random-weight checkpoint to {sys.argv[1]}")
