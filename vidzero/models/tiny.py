"""Tiny random-weight T2V checkpoints in diffusers format, for tests and smoke runs.

They have the component classes of ModelScope T2V and load through the same code path as real
checkpoints, but their weights are random: videos made with them show the mechanics, not content.

    python -m vidzero.models.tiny build/tiny          # a UNet3D checkpoint folder (about 0.5 MB)
    python -m vidzero.models.tiny build/tiny-wan --wan  # a Wan one
"""

from __future__ import annotations

import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

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

    from vidzero.models.hub import EMBEDDED_MODEL_DIR

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


TINY_WAN_FRAMES = 9  # video frames: 3 latent frames (the VAE compresses time by 4)
TINY_WAN_SIZE = 32  # pixels: 4x4 latents, 2x2 transformer patches


def byte_t5_tokenizer() -> object:
    """A fast tokenizer in T5's manner (pad 0, end of text 1 after every prompt) over byte-level
    symbols, built in memory: any prompt tokenises, no vocabulary file is fetched."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=512
    )


def tiny_wan_transformer(attention_head_dim: int = 12) -> Any:
    """Wan's transformer class at a tiny size (another head width: a model no LoRA of it fits)."""
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=attention_head_dim,
        in_channels=16,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )


def tiny_wan_components(seed: int = 0) -> dict:
    """Wan 2.1's component classes at a tiny size, random weights drawn from `seed`: transformer,
    causal VAE, UMT5 text encoder, tokenizer, and the flow-matching Euler scheduler (shift 3)."""
    import torch
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    tokenizer = byte_t5_tokenizer()
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(tokenizer),  # type: ignore[arg-type]
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=16,
        )
    )
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )
    transformer = tiny_wan_transformer()
    with torch.no_grad():  # as the UNet3D tiny model: every parameter matters a little
        for module in (transformer, vae, text_encoder):
            for p in module.parameters():
                p.add_(torch.randn_like(p) * 0.05)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    return {
        "transformer": transformer,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler": scheduler,
    }


def build_tiny_wan_checkpoint(
    folder: str | Path, seed: int = 0, frames: int = TINY_WAN_FRAMES, boundary_ratio: float | None = None
) -> object:
    """A tiny random-weight Wan checkpoint folder (WanPipeline's layout) with its native format;
    with `boundary_ratio`, Wan 2.2's two-expert layout (a second transformer, `transformer_2`, of
    other weights, taking the timesteps under the boundary)."""
    from diffusers import WanPipeline

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    components = tiny_wan_components(seed)
    if boundary_ratio is not None:
        components["transformer_2"] = tiny_wan_components(seed + 1)["transformer"]
        components["boundary_ratio"] = boundary_ratio
    pipe = WanPipeline(**components)
    pipe.save_pretrained(folder)
    (folder / "vidzero.json").write_text(
        json.dumps({"frames": frames, "height": TINY_WAN_SIZE, "width": TINY_WAN_SIZE})
    )
    return pipe


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3) or (len(sys.argv) == 3 and sys.argv[2] != "--wan"):
        sys.exit("usage: python -m vidzero.models.tiny FOLDER [--wan]")
    (build_tiny_wan_checkpoint if len(sys.argv) == 3 else build_tiny_checkpoint)(sys.argv[1])
    print(f"wrote a tiny random-weight checkpoint to {sys.argv[1]}")
