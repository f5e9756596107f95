"""The real ModelScope T2V architecture with random weights, as a diffusers folder (no download).

    python -m recipes.gpu.modelscope_random build/modelscope-random [--dtype fp16] [--zeroscope]

The component configurations are ModelScope T2V's published ones (damo-vilab/text-to-video-ms-1.7b:
UNet3DConditionModel with blocks 320/640/1280/1280, two layers per block, head size 64,
cross-attention width 1024; the SD AutoencoderKL; a 23-layer CLIP text encoder of width 1024;
its DDIM scheduler). The weights are random, so videos show noise, but every shape, FLOP and
byte is the real model's: what benchmarks of time and memory need. `--zeroscope` writes
zeroscope_v2_576w's format (24 frames at 576x320) into vidzero.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

UNET = dict(
    sample_size=32,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    attention_head_dim=64,
    cross_attention_dim=1024,
    down_block_types=("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
    up_block_types=("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
    norm_num_groups=32,
)
VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    layers_per_block=2,
    sample_size=256,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    scaling_factor=0.18215,
)
TEXT = dict(
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=23,
    num_attention_heads=16,
    max_position_embeddings=77,
    hidden_act="gelu",
    projection_dim=1024,
)
SCHEDULER = dict(
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


def build_modelscope(folder: str | Path, dtype: str = "fp16", zeroscope: bool = False, seed: int = 0) -> Path:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, TextToVideoSDPipeline, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from vidzero.models.tiny import write_byte_tokenizer

    folder = Path(folder)
    torch.manual_seed(seed)
    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    with tempfile.TemporaryDirectory() as tok_dir:
        write_byte_tokenizer(Path(tok_dir))
        tokenizer = CLIPTokenizer.from_pretrained(tok_dir, model_max_length=77)
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **TEXT,
        )
    )
    pipe_parts = dict(
        unet=UNet3DConditionModel(**UNET),
        vae=AutoencoderKL(**VAE),
        text_encoder=text,
        tokenizer=tokenizer,
        scheduler=DDIMScheduler(**SCHEDULER),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = TextToVideoSDPipeline(**pipe_parts)
        pipe.to(torch_dtype)
        pipe.save_pretrained(folder, variant="fp16" if dtype == "fp16" else None)
    fmt = {"frames": 24, "height": 320, "width": 576} if zeroscope else {"frames": 16, "height": 256, "width": 256}
    (folder / "vidzero.json").write_text(json.dumps(fmt))
    return folder


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path)
    p.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp16")
    p.add_argument("--zeroscope", action="store_true")
    a = p.parse_args(argv)
    if a.folder.exists() and any(a.folder.iterdir()):
        p.error(f"{a.folder} exists and is not empty")
    build_modelscope(a.folder, a.dtype, a.zeroscope)
    print(f"wrote the ModelScope T2V architecture with random weights to {a.folder}")


if __name__ == "__main__":
    main()
