"""Peak GPU memory of a Wan 2.1 T2V 1.3B window, per switch, estimated on any machine.

    python -m recipes.bench.wan_memory [--out docs/bench]

The same method as `memory_estimate.py` (fake tensors, every storage followed): the real
transformer and VAE (recipes/gpu/wan_random.py's configurations) and the real text encoder's
size (UMT5-XXL's encoder: 24 layers of width 4096, 5.7 B parameters), in the precision vidzero
loads them in on CUDA (transformer and text encoder bf16 here, VAE fp32), for each phase of a
run: the text encoder on 512 tokens, one guided evaluation of the window (both branches in one
batch of 2), and the streaming decoder's step (one latent frame to 4 video frames) and the
encoder's (a first frame). Lower bounds of what the allocator reports: its rounding, workspaces
and the CUDA context come on top.
"""

from __future__ import annotations

import torch

from recipes.bench.memory_estimate import GIB, fake_module, param_bytes, run_estimates, tracked_peak
from recipes.gpu.wan_random import TRANSFORMER, UMT5_XXL_WIDTH, VAE

FORMATS = {"Wan 2.1 1.3B, 81 x 480 x 832": (81, 480, 832), "Wan 2.1 1.3B, 33 x 480 x 832": (33, 480, 832)}
UMT5_XXL = {**UMT5_XXL_WIDTH, "num_layers": 24, "vocab_size": 256384}


def estimate(frames: int, height: int, width: int) -> dict:
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d
    from torch._subclasses.fake_tensor import FakeTensorMode
    from transformers import UMT5Config, UMT5EncoderModel

    mode = FakeTensorMode(allow_non_fake_inputs=True)
    bf16 = torch.bfloat16
    transformer = fake_module(lambda: WanTransformer3DModel(**TRANSFORMER), bf16, mode)
    vae = fake_module(lambda: AutoencoderKLWan(**VAE), torch.float32, mode)
    text = fake_module(lambda: UMT5EncoderModel(UMT5Config(**UMT5_XXL)), bf16, mode)
    latent_frames, h, w = (frames - 1) // 4 + 1, height // 8, width // 8
    with mode:
        z = torch.randn(2, 16, latent_frames, h, w, dtype=bf16)
        emb = torch.randn(2, 512, 4096, dtype=bf16)
        t = torch.full((2,), 500.0)
        tokens, mask = torch.zeros(1, 512, dtype=torch.long), torch.ones(1, 512, dtype=torch.long)
        phases = {"text encoder": tracked_peak(text, [tokens], lambda: text(tokens, mask))}
        phases["transformer, one guided evaluation"] = tracked_peak(
            transformer, [z, emb], lambda: transformer(hidden_states=z, timestep=t, encoder_hidden_states=emb)
        )
        count = sum(isinstance(m, WanCausalConv3d) for m in vae.decoder.modules())
        latent = torch.randn(1, 16, 1, h, w)

        def decode_two() -> object:  # the first latent frame, then one that yields 4 frames
            cache: list = [None] * count
            vae.decoder(vae.post_quant_conv(latent), feat_cache=cache, feat_idx=[0], first_chunk=True)
            return vae.decoder(vae.post_quant_conv(latent), feat_cache=cache, feat_idx=[0])

        phases["VAE, streaming decode step"] = tracked_peak(vae, [latent], decode_two)
        # --vae-tiling: one tile at a time (diffusers' default tiles: 256 px, every 192 px)
        tile = torch.randn(1, 16, 1, min(h, 256 // 8), min(w, 256 // 8))

        def decode_tile() -> object:
            cache: list = [None] * count
            vae.decoder(vae.post_quant_conv(tile), feat_cache=cache, feat_idx=[0], first_chunk=True)
            return vae.decoder(vae.post_quant_conv(tile), feat_cache=cache, feat_idx=[0])

        phases["VAE, streaming decode step, one tile"] = tracked_peak(vae, [tile], decode_tile)
        one = torch.randn(1, 3, 1, height, width)
        phases["VAE encode, 1 frame"] = tracked_peak(vae, [one], lambda: vae.encode(one))
    weights = {
        "transformer bf16": param_bytes(transformer),
        "VAE fp32": param_bytes(vae),
        "text encoder bf16": param_bytes(text),
    }
    return {"weights": weights, "phases": phases}


def table(results: dict[str, dict]) -> str:
    gib = lambda b: f"{b / GIB:.2f}"  # noqa: E731
    lines = [
        "| format | switch | weights on the GPU (GiB) | largest phase (GiB) | estimated peak (GiB) |",
        "|---|---|---:|---:|---:|",
    ]
    for fmt, r in results.items():
        w, p = r["weights"], r["phases"]
        resident = sum(w.values())
        for switch, decode in (
            ("none", "VAE, streaming decode step"),
            ("vae tiling", "VAE, streaming decode step, one tile"),
        ):
            others = [v for k, v in p.items() if not k.startswith("VAE, streaming")]
            largest = max([*others, p[decode]])
            lines.append(f"| {fmt} | {switch} | {gib(resident)} | {gib(largest)} | {gib(resident + largest)} |")
            offload = max(
                w["transformer bf16"] + p["transformer, one guided evaluation"],
                w["VAE fp32"] + p[decode],
                w["text encoder bf16"] + p["text encoder"],
            )
            label = "model offload" + (" + vae tiling" if switch != "none" else "")
            lines.append(f"| {fmt} | {label} | (one at a time) | | {gib(offload)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    run_estimates(argv, __doc__, FORMATS, estimate, table, "wan-memory")


if __name__ == "__main__":
    main()
