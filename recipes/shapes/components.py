"""Component definitions of the embedded "shapes" backbone: ModelScope-style T2V in miniature.

Same classes as damo-vilab/text-to-video-ms-1.7b (AutoencoderKL with spatial factor 8 and 4
latent channels, CLIPTextModel + CLIPTokenizer, UNet3DConditionModel, DDIMScheduler with the
ModelScope scheduler config); only the sizes differ.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from recipes.shapes import world
from recipes.shapes.tokenizer import build_tokenizer

TEXT_WIDTH = 128
REPO = Path(__file__).resolve().parents[2]
FRESH_TEXT = REPO / "build" / "shapes" / "fresh-text"

# The scheduler config of the ModelScope T2V release (see docs/how-it-works.md).
MODELSCOPE_SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    prediction_type="epsilon",
    timestep_spacing="leading",
)


def fresh_text_encoder(folder: Path = FRESH_TEXT, seed: int = 0, max_tokens: int = 24) -> Path:
    """A folder with a `text_encoder/` of the shapes model's architecture, newly initialised from
    `seed` (not refreshed, not scaled), and its `tokenizer/`: where the blob toy starts by default.
    The shipped model's phase 1 started from an earlier release's trained encoder instead (see the
    README of this folder); pass such a folder to the toy with --text-model."""
    if not (folder / "text_encoder" / "model.safetensors").exists():
        tokenizer = make_tokenizer(folder / "tokenizer", max_tokens)
        torch.manual_seed(seed)
        make_text_encoder(tokenizer).save_pretrained(folder / "text_encoder")
    return folder


def make_scheduler() -> DDIMScheduler:
    return DDIMScheduler(**MODELSCOPE_SCHEDULER_CONFIG)


def make_vae() -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(32, 64, 64, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=16,
        sample_size=world.SIZE,
    )


def make_unet(layers_per_block: int = 1) -> UNet3DConditionModel:
    return UNet3DConditionModel(
        sample_size=world.SIZE // 8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        block_out_channels=(64, 128),
        layers_per_block=layers_per_block,
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=8,
        norm_num_groups=32,
    )


def grow_unet(unet: UNet3DConditionModel, layers_per_block: int) -> UNet3DConditionModel:
    """The same UNet with `layers_per_block` layers per block (each a resnet, a temporal
    convolution and, in attention blocks, a spatial and a temporal transformer), computing exactly
    what `unet` computes: its layers keep their weights and the new ones start as the identity
    (the last convolution or projection of each new part is zero, and a new up layer's 1x1
    shortcut passes the hidden state on and ignores the skip it is given). Training then decides
    what the added depth does. Grows a one-layer UNet only."""
    if unet.config.layers_per_block != 1 or layers_per_block < 1:
        raise ValueError("grow_unet grows a UNet of one layer per block")
    grown = UNet3DConditionModel.from_config({**unet.config, "layers_per_block": layers_per_block})
    extra = layers_per_block - 1
    state = {}
    # where each grown layer's weights come from (None: a new, identity layer)
    for name in grown.state_dict():
        parts = name.split(".")
        source: str | None = name
        if parts[0] in ("down_blocks", "up_blocks") and parts[2] in (
            "resnets",
            "temp_convs",
            "attentions",
            "temp_attentions",
        ):
            index = int(parts[3])
            if parts[0] == "down_blocks":
                old = index if index == 0 else None
            else:  # up blocks: the first and the last layer are the old ones, the middle ones new
                old = 0 if index == 0 else (1 if index == layers_per_block else None)
                if extra == 0:
                    old = index
            source = None if old is None else ".".join([*parts[:3], str(old), *parts[4:]])
        state[name] = unet.state_dict()[source] if source is not None else None
    fresh = grown.state_dict()
    for name, value in state.items():
        fresh[name] = value.clone() if value is not None else identity_start(name, fresh[name])
    grown.load_state_dict(fresh)
    return grown


def identity_start(name: str, value: torch.Tensor) -> torch.Tensor:
    """A new layer's weight where the layer should pass its input on unchanged."""
    last_parts = ("conv2.", "conv4.3.", "proj_out.")  # resnet, temporal conv, both transformers
    if any(part in name for part in last_parts):
        return torch.zeros_like(value)
    if "conv_shortcut.weight" in name:  # (out, out + skip, 1, 1): keep the hidden channels
        out = value.shape[0]
        eye = torch.zeros_like(value)
        eye[:, :out, 0, 0] = torch.eye(out)
        return eye
    if "conv_shortcut.bias" in name:
        return torch.zeros_like(value)
    return value


def make_tokenizer(folder: str | Path, max_length: int = 77) -> CLIPTokenizer:
    return build_tokenizer(world.vocabulary(), folder, max_length)


def make_text_encoder(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_WIDTH,
        intermediate_size=4 * TEXT_WIDTH,
        num_hidden_layers=4,
        num_attention_heads=4,
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config)


def timestep_loss_weights(snr: torch.Tensor, min_snr: float, high_noise_cap: float = 1.0) -> torch.Tensor:
    """Per-timestep weights of the noise-prediction MSE: min-SNR-gamma (Hang et al. 2023), times
    1/SNR capped at `high_noise_cap` where SNR < 1. The noise error at high noise is SNR times the
    x0 error, so the clip-level layout decided there (where the object is in which frame: the
    direction) barely counts without the second factor; a cap of 1 leaves plain min-SNR."""
    return torch.clamp(snr, max=min_snr) / snr * torch.clamp(1 / snr, min=1.0, max=high_noise_cap)
