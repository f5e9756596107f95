"""A GPU check that runs in minutes: the real ModelScope architecture (random weights, no
download) on the GPU, its speed, the share of the GPU's peak it reaches, and its memory.

    python -m recipes.gpu.check --out build/gpu-check           # on a machine with a CUDA GPU
    python -m recipes.gpu.check --tiny --device cpu --out /tmp/x   # the same code on a tiny model

Prints, and writes to OUT/gpu-check.json:

1. per precision (fp16, bf16): seconds per guided evaluation of a 16-frame 256x256 window (CUDA
   events, median of 5 after a warm-up), its FLOPs (counted on the meta device) and the share of
   the GPU's dense peak that reaches; a short `extend` and `generate` through the engine;
2. peak memory of a 16-frame and a 128-frame `extend` (1 step per window: memory does not grow
   with length), and of a window with each memory switch (model offload, VAE tiling, attention
   slicing, forward chunking);
3. `torch.compile` against eager, and the speed options (guidance reuse, resampling in the first
   3 steps only) against the paper's settings, as time ratios measured side by side.

A budget (`--minutes`, default 7) stops the optional parts when time runs short.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import vidzero
from recipes.gpu.modelscope_random import SCHEDULER, TEXT, UNET, VAE
from vidzero.models.loading import pick_device

# dense bf16/fp16 tensor-core peaks in TFLOP/s (vendor data sheets), by device name
PEAKS = {
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10": 125.0,
    "4090": 165.0,
    "3090": 71.0,
    "T4": 65.0,
    "V100": 125.0,
}


def peak_tflops(name: str) -> float | None:
    return next((v for k, v in PEAKS.items() if k in name), None)


def components(tiny: bool):
    """(unet, vae, text_encoder, tokenizer, scheduler): the test suite's tiny model, or ModelScope's
    architecture from its published configs, with random weights."""
    if tiny:
        from vidzero.models.tiny import tiny_components

        return tiny_components()
    import tempfile

    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from vidzero.models.tiny import write_byte_tokenizer

    with tempfile.TemporaryDirectory() as tok_dir:
        write_byte_tokenizer(Path(tok_dir))
        tokenizer = CLIPTokenizer.from_pretrained(tok_dir, model_max_length=77)
    unet, vae = UNet3DConditionModel(**UNET), AutoencoderKL(**VAE)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, **TEXT))
    return unet, vae, text, tokenizer, DDIMScheduler(**SCHEDULER)


def unet_flops(unet, frames: int, h: int, w: int, width: int) -> float:
    """FLOPs of one guided evaluation (a batch of 2 windows), counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    meta = type(unet).from_config(unet.config).to("meta")
    z = torch.zeros(2, 4, frames, h, w, device="meta")
    emb = torch.zeros(2, 77, width, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta(z, torch.tensor(500, device="meta"), encoder_hidden_states=emb)
    return float(counter.get_total_flops())


def cuda_time(fn, repeats: int = 5) -> float:
    fn()
    if not torch.cuda.is_available():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    return statistics.median(times)


def peak_memory(fn) -> float | None:
    if not torch.cuda.is_available():
        fn()
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 1024**3


def image(bb) -> np.ndarray:
    img = np.full((bb.height, bb.width, 3), (26, 30, 78), np.uint8)
    img[bb.height // 3 : bb.height // 2, bb.width // 3 : bb.width // 2] = (230, 40, 40)
    return img


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="a tiny model instead of ModelScope's size (for a CPU try)")
    p.add_argument("--minutes", type=float, default=7.0)
    p.add_argument("--out", type=Path, default=Path("build/gpu-check"))
    a = p.parse_args(argv)
    deadline = time.time() + 60 * a.minutes
    device = pick_device(a.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    report: dict = {"device": name, "torch": torch.__version__, "precisions": {}, "memory_gib": {}, "ratios": {}}
    print(f"device: {name}, torch {torch.__version__}", flush=True)
    unet, vae, text, tokenizer, scheduler = components(a.tiny)
    size = (16, 16) if a.tiny else (256, 256)
    flops = unet_flops(
        unet, 16, size[0] // (2 if a.tiny else 8), size[1] // (2 if a.tiny else 8), text.config.hidden_size
    )
    peak = peak_tflops(name)
    dtypes = ["fp16", "bf16"] if device.type == "cuda" else ["bf16"]
    bb = None
    for dtype in dtypes:
        torch_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
        bb = vidzero.Backbone(
            unet,
            vae,
            text,
            tokenizer,
            scheduler,
            frames=16,
            height=size[0],
            width=size[1],
            device=device,
            dtype=torch_dtype,
        )
        c, h, w = bb.latent_shape
        z = torch.randn(1, c, 16, h, w, device=device)
        seconds = cuda_time(lambda bb=bb, z=z: bb.guided_eps(z, torch.tensor(500), "a cat", 9.0))
        start = time.perf_counter()
        vidzero.extend(image(bb), "a cat", frames=3, backbone=bb, steps=2, resample=1, progress=False).frames()
        extend_s = time.perf_counter() - start
        start = time.perf_counter()
        vidzero.generate("a cat", frames=16, backbone=bb, steps=2, progress=False).frames()
        generate_s = time.perf_counter() - start
        row = {
            "seconds_per_evaluation": seconds,
            "tflop_per_evaluation": flops / 1e12,
            "tflops": flops / seconds / 1e12,
            "share_of_peak": (flops / seconds / 1e12 / peak) if peak else None,
            "extend_3_frames_s": extend_s,
            "generate_16_frames_s": generate_s,
        }
        report["precisions"][dtype] = row
        print(
            f"{dtype}: {seconds * 1000:.1f} ms per guided evaluation, {row['tflops']:.1f} TFLOP/s"
            + (f" ({row['share_of_peak']:.0%} of {peak:.0f})" if peak else "")
            + f"; extend 3 frames {extend_s:.1f} s, generate 16 frames {generate_s:.1f} s",
            flush=True,
        )
    for frames in (16, 128):
        if time.time() > deadline:
            break
        gib = peak_memory(
            lambda frames=frames: vidzero.extend(
                image(bb), "a cat", frames=frames, backbone=bb, steps=1, resample=0, progress=False
            ).frames()
        )
        report["memory_gib"][f"extend {frames} frames"] = gib
        print(f"peak memory, extend {frames} frames: {gib if gib is None else round(gib, 2)} GiB", flush=True)
    switches = {
        "vae tiling": lambda: bb.vae.enable_tiling(),
        "attention slicing": lambda: bb.unet.set_attention_slice("auto"),
        "forward chunking": lambda: bb.unet.enable_forward_chunking(chunk_size=1, dim=1),
    }
    for label, switch in switches.items():
        if time.time() > deadline:
            break
        switch()
        gib = peak_memory(
            lambda: vidzero.extend(
                image(bb), "a cat", frames=2, backbone=bb, steps=1, resample=0, progress=False
            ).frames()
        )
        report["memory_gib"][f"one window + {label} (cumulative)"] = gib
        print(f"peak memory, one window with {label} (and the switches above): {gib} GiB", flush=True)
    if device.type == "cuda" and time.time() < deadline:
        offloaded = vidzero.Backbone(
            unet,
            vae,
            text,
            tokenizer,
            scheduler,
            frames=16,
            height=size[0],
            width=size[1],
            device=device,
            dtype=torch.float16,
            offload="model",
        )
        gib = peak_memory(
            lambda: vidzero.extend(
                image(offloaded), "a cat", frames=2, backbone=offloaded, steps=1, resample=0, progress=False
            ).frames()
        )
        report["memory_gib"]["one window, model offload"] = gib
        print(f"peak memory, one window with model offload: {gib} GiB", flush=True)
    paper = {"steps": 10, "resample": 4}
    for label, options in {
        "guidance reuse": {"guidance_passes": "first"},
        "resample 3 steps": {"resample_steps": 3},
    }.items():
        if time.time() > deadline:
            break
        runs = {}
        for variant, extra in (("paper", {}), (label, options)):
            start = time.perf_counter()
            vidzero.extend(image(bb), "a cat", frames=2, backbone=bb, progress=False, **paper, **extra).frames()
            runs[variant] = time.perf_counter() - start
        report["ratios"][label] = runs["paper"] / runs[label]
        print(f"{label}: {report['ratios'][label]:.2f}x faster than the paper's settings per window", flush=True)
    if device.type == "cuda" and time.time() < deadline - 120:
        c, h, w = bb.latent_shape
        z = torch.randn(1, c, 16, h, w, device=device)
        eager = cuda_time(lambda: bb.guided_eps(z, torch.tensor(500), "a cat", 9.0))
        bb.unet.compile()
        compiled = cuda_time(lambda: bb.guided_eps(z, torch.tensor(500), "a cat", 9.0))
        report["ratios"]["torch.compile"] = eager / compiled
        print(f"torch.compile: {eager / compiled:.2f}x faster per guided evaluation", flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "gpu-check.json").write_text(json.dumps(report, indent=1))
    print(f"wrote {a.out / 'gpu-check.json'}")


if __name__ == "__main__":
    main()
