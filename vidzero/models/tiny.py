"""Tiny random-weight T2V checkpoints in diffusers format, for tests and smoke runs.

They have the component classes of ModelScope T2V and load through the same code path as real
checkpoints, but their weights are random: videos made with them show the mechanics, not content.

    python -m vidzero.tiny build/tiny     # writes a checkpoint folder (about 0.5 MB)
"""

from __future__ import annotations

import json
import sys
import tempfile
import warnings
from pathlib import Path

TINY_WINDOW = 8
TINY_SIZE = 16  # pixels; the tiny VAE has spatial factor 2 -> 8x8 latents
BOS, EOS, WORD_END = "<|startoftext|>", "<|endoftext|>", "</w>"


def byte_symbols() -> list[str]:
    """CLIP's byte-level alphabet: printable bytes stand for themselves, the others are shifted
    above 255 so that every byte has a visible symbol."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(shifted)) for b in range(256)]


def write_byte_tokenizer(folder: Path) -> None:
    """A CLIP BPE tokenizer with no merges: every text falls apart into byte-level symbols, so
    any prompt tokenizes and the vocabulary stays at 514 entries."""
    folder.mkdir(parents=True, exist_ok=True)
    alphabet = byte_symbols()
    tokens = [*alphabet, *(s + WORD_END for s in alphabet), BOS, EOS]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")


def tiny_components(seed: int = 0, size: int = TINY_SIZE) -> tuple:
    """(unet, vae, text_encoder, tokenizer, scheduler): ModelScope's component classes at a tiny
    size, random weights drawn from `seed`, the embedded model's scheduler config."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from vidzero.models.checkpoint import EMBEDDED_MODEL_DIR

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
    with tempfile.TemporaryDirectory() as tok_dir:
        write_byte_tokenizer(Path(tok_dir))
        tokenizer = CLIPTokenizer.from_pretrained(tok_dir, model_max_length=77)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    # diffusers zero-initialises the UNet's output layer: perturb every parameter a little so eps
    # depends on the input and the tests can tell things apart.
    with torch.no_grad():
        for module in (unet, vae, text_encoder):
            for p in module.parameters():
                p.add_(torch.randn_like(p) * 0.05)
    # The ModelScope scheduler config, as the embedded model ships it.
    scheduler = DDIMScheduler.from_pretrained(EMBEDDED_MODEL_DIR, subfolder="scheduler")
    return unet, vae, text_encoder, tokenizer, scheduler


def build_tiny_checkpoint(folder: str | Path, seed: int = 0, window: int = TINY_WINDOW, size: int = TINY_SIZE):
    from diffusers import TextToVideoSDPipeline

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    unet, vae, text_encoder, tokenizer, scheduler = tiny_components(seed, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = TextToVideoSDPipeline(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler
        )
        pipe.save_pretrained(folder)
    (folder / "vidzero.json").write_text(json.dumps({"frames": window}))
    return pipe


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m vidzero.tiny FOLDER")
    build_tiny_checkpoint(sys.argv[1])
    print(f"wrote a tiny random-weight checkpoint to {sys.argv[1]}")
