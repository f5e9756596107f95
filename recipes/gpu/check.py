"""The GPU check: real architectures (random weights, no download) on a GPU in minutes, one part
after another, each written down as soon as it is measured.

    python -m recipes.gpu.check --out build/gpu-check                   # a machine with a CUDA GPU
    python -m recipes.gpu.check --tiny --device cpu --out /tmp/check    # the same code, tiny models

OUT/gpu-check.json is rewritten after every part, so a check killed at its time limit still
returns everything it measured up to then (a part that was running says "started"). Parts, in
order; each is skipped when less time is left of `--minutes` than its estimate, and a part that
fails records its one-line error and the check goes on:

1. `speed`: the ModelScope UNet (1.41 B) per precision (fp16, bf16): seconds per guided evaluation
   of a 16-frame 256x256 window (CUDA events, median of 5 after a warm-up), its FLOPs (counted on
   the meta device) and the share of the GPU's dense peak that reaches;
2. `packing`: windows per second with 1, 4 and 8 windows in one model call (`vidzero batch
   --pack`), and what the packer's hand-over adds per call;
3. `engine`: a 16-frame `extend` end to end at the `fast` and the `paper` preset, wall seconds;
4. `compile`: `torch.compile` of the UNet against eager: compile seconds and the speed-up per
   guided evaluation (the compile counts against the budget; it can take minutes);
5. `memory`: peak memory of a 16- and a 128-frame `extend` (1 step per window: memory is flat in
   length; 32 frames with --tiny), then one window with each memory switch added (VAE tiling,
   attention slicing, forward chunking), and with model offload (its own copy of the modules);
6. `wan`: Wan 2.1 1.3B's transformer and VAE (bf16): one guided evaluation of a 21-latent-frame
   (81 video frames) 480x832 window and of a 9-frame one, and peak memory of a 9-frame extend;
7. `options`: the speed options against the paper's settings, per-window time ratios side by side.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import vidzero
from recipes.gpu.modelscope_random import SCHEDULER, TEXT, UNET, VAE
from vidzero.core.packing import Packer, Request
from vidzero.media.outputs import write_json
from vidzero.models.loading import pick_device
from vidzero.models.unet3d import UNet3DBackbone

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
PROMPT = "a red circle moving right"


def peak_tflops(name: str) -> float | None:
    return next((v for k, v in PEAKS.items() if k in name), None)


class Check:
    """The report, its deadline, and the parts run against it."""

    def __init__(self, out: Path, minutes: float) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / "gpu-check.json"
        self.deadline = time.time() + 60 * minutes
        self.report: dict[str, Any] = {"parts": {}}

    def left(self) -> float:
        return self.deadline - time.time()

    def write(self) -> None:
        write_json(self.path, self.report)

    def part(self, name: str, estimate_s: float, work: Callable[[dict], None]) -> None:
        """Run `work(results)` unless less than `estimate_s` is left; write before and after."""
        if self.left() < estimate_s:
            self.report["parts"][name] = {"status": f"skipped: {self.left():.0f} s left, needs ~{estimate_s:.0f}"}
            self.write()
            print(f"{name}: skipped (time)", flush=True)
            return
        results: dict[str, Any] = {"status": "started"}
        self.report["parts"][name] = results
        self.write()
        started = time.perf_counter()
        try:
            work(results)
            results["status"] = "done"
        except Exception as exc:
            results["status"] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            traceback.print_exc()
        results["seconds"] = round(time.perf_counter() - started, 2)
        self.write()
        print(f"{name}: {results['status']} ({results['seconds']} s)", flush=True)


def modelscope_components(tiny: bool) -> tuple:
    """(unet, vae, text_encoder, tokenizer, scheduler) in fp32 on the CPU: the test suite's tiny
    model, or ModelScope's architecture from its published configs with random weights."""
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


def backbone(parts: tuple, device: torch.device, dtype: torch.dtype, size: int, **kwargs: Any) -> UNet3DBackbone:
    """A backbone over its own copy of the modules (a backbone casts and moves what it is given)."""
    unet, vae, text, tokenizer, scheduler = parts
    return UNet3DBackbone(
        copy.deepcopy(unet),
        copy.deepcopy(vae),
        copy.deepcopy(text),
        tokenizer,
        copy.deepcopy(scheduler),
        frames=16,
        height=size,
        width=size,
        device=device,
        dtype=dtype,
        **kwargs,
    )


def unet_flops(unet: torch.nn.Module, frames: int, h: int, w: int, width: int) -> float:
    """FLOPs of one guided evaluation (a batch of 2 windows), counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    meta = type(unet).from_config(unet.config).to("meta")
    z = torch.zeros(2, unet.config.in_channels, frames, h, w, device="meta")
    emb = torch.zeros(2, 77, width, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta(z, torch.tensor(500, device="meta"), encoder_hidden_states=emb)
    return float(counter.get_total_flops())


def seconds_of(fn: Callable[[], Any], device: torch.device, repeats: int = 5) -> float:
    """Median seconds of `fn` after a warm-up (CUDA events on a GPU)."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1000)
        else:
            began = time.perf_counter()
            fn()
            times.append(time.perf_counter() - began)
    return statistics.median(times)


def peak_gib(fn: Callable[[], Any], device: torch.device) -> float | None:
    """Peak allocated GPU memory while `fn` runs (None on the CPU)."""
    if device.type != "cuda":
        fn()
        return None
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return round(torch.cuda.max_memory_allocated() / 1024**3, 3)


def window_latents(bb: Any, frames: int | None = None) -> torch.Tensor:
    c, h, w = bb.latent_shape
    return torch.randn(1, c, frames or bb.frames, h, w, device=bb.device)


def guided(bb: Any, z: torch.Tensor) -> Callable[[], Any]:
    denoiser = bb.denoiser(PROMPT, "")
    return torch.no_grad()(lambda: denoiser(z, torch.tensor(500), guided=True))


def image(bb: Any) -> np.ndarray:
    img = np.full((bb.height, bb.width, 3), (26, 30, 78), np.uint8)
    img[bb.height // 3 : bb.height // 2, bb.width // 3 : bb.width // 2] = (230, 40, 40)
    return img


def extend(bb: Any, frames: int, **options: Any) -> list:
    return vidzero.extend(image(bb), PROMPT, frames=frames, backbone=bb, progress=False, **options).frames()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="tiny models instead of the real sizes (a CPU try)")
    p.add_argument("--minutes", type=float, default=9.0)
    p.add_argument("--skip", default="", help="comma-separated parts not to run")
    p.add_argument("--out", type=Path, default=Path("build/gpu-check"))
    a = p.parse_args(argv)
    check = Check(a.out, a.minutes)
    skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    device = pick_device(a.device)
    gpu = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if gpu else "cpu"
    peak = peak_tflops(name)
    check.report.update({"device": name, "torch": torch.__version__, "tiny": a.tiny})
    print(f"device: {name}, torch {torch.__version__}", flush=True)
    parts = modelscope_components(a.tiny)
    size = 16 if a.tiny else 256
    scale = 2 if a.tiny else 8
    dtypes = {"fp16": torch.float16, "bf16": torch.bfloat16} if gpu else {"bf16": torch.bfloat16}
    main_dtype = next(iter(dtypes.values()))
    models: dict[str, UNet3DBackbone] = {}

    def model(dtype: torch.dtype) -> UNet3DBackbone:
        key = str(dtype)
        if key not in models:
            models.clear()  # one copy in memory at a time
            models[key] = backbone(parts, device, dtype, size)
        return models[key]

    def speed(r: dict) -> None:
        flops = unet_flops(parts[0], 16, size // scale, size // scale, parts[2].config.hidden_size)
        for label, dtype in dtypes.items():
            bb = model(dtype)
            seconds = seconds_of(guided(bb, window_latents(bb)), device)
            tflops = flops / seconds / 1e12
            r[label] = {
                "seconds_per_evaluation": seconds,
                "tflop_per_evaluation": flops / 1e12,
                "tflops": tflops,
                "share_of_peak": tflops / peak if peak else None,
            }
            check.write()

    def engine(r: dict) -> None:
        bb = model(main_dtype)
        frames = 4 if a.tiny else 16
        for preset in ("fast", "paper"):
            began = time.perf_counter()
            extend(bb, frames, preset=preset)
            if gpu:
                torch.cuda.synchronize()
            r[f"extend {frames} frames, {preset}: s"] = time.perf_counter() - began
            check.write()

    def memory(r: dict) -> None:
        bb = model(main_dtype)
        for frames in (16, 32 if a.tiny else 128):
            r[f"extend {frames} frames"] = peak_gib(lambda f=frames: extend(bb, f, steps=1, resample=0), device)
            check.write()
        switches: dict[str, Callable[[], Any]] = {
            "vae tiling": bb.vae.enable_tiling,
            "attention slicing": lambda: bb.unet.set_attention_slice("auto"),
            "forward chunking": lambda: bb.unet.enable_forward_chunking(chunk_size=1, dim=1),
        }
        for label, switch in switches.items():
            switch()
            r[f"one window + {label} (and those above)"] = peak_gib(lambda: extend(bb, 2, steps=1, resample=0), device)
            check.write()
        models.clear()
        if gpu:
            offloaded = backbone(parts, device, main_dtype, size, offload="model")
            r["one window, model offload"] = peak_gib(lambda: extend(offloaded, 2, steps=1, resample=0), device)

    def packing(r: dict) -> None:
        bb = model(main_dtype)
        denoiser = bb.denoiser(PROMPT, "")
        for count in (1, 4, 8):
            requests = [Request(window_latents(bb), torch.tensor(500), denoiser.cond, denoiser.uncond)] * count
            seconds = seconds_of(lambda q=requests: bb.predict_many(q), device, repeats=3)
            r[f"{count} per call"] = {"seconds": seconds, "windows_per_s": count / seconds}
            check.write()
        r["speed_up_8"] = r["8 per call"]["windows_per_s"] / r["1 per call"]["windows_per_s"]
        r["packer_overhead"] = packer_overhead(bb)

    def options(r: dict) -> None:
        bb = model(main_dtype)
        variants = {
            "paper": {"preset": "paper"},
            "resample 3 steps": {"preset": "paper", "resample_steps": 3},
            "guidance 2:10 + resample 3 steps": {"preset": "paper", "resample_steps": 3, "guidance_steps": "2:10"},
            "fast": {"preset": "fast"},
        }
        seconds = {}
        for label, values in variants.items():
            began = time.perf_counter()
            extend(bb, 2, **values)
            seconds[label] = time.perf_counter() - began
        r["seconds_per_window"] = seconds
        r["times_faster_than_paper"] = {k: seconds["paper"] / v for k, v in seconds.items()}

    def wan(r: dict) -> None:
        models.clear()
        bb = wan_backbone(a.tiny, device)
        r["transformer_parameters"] = sum(p.numel() for p in bb.transformer.parameters())
        for latent_frames in (3, 21):
            if a.tiny and latent_frames > 3:
                break
            z = window_latents(bb, latent_frames)
            r[f"{1 + 4 * (latent_frames - 1)} frames: s per guided evaluation"] = seconds_of(
                guided(bb, z), device, repeats=3
            )
            r[f"{1 + 4 * (latent_frames - 1)} frames: peak GiB of one"] = peak_gib(guided(bb, z), device)
            check.write()
        bb.frames = 3  # a 9-frame window
        r["extend 9 frames, 2 steps: peak GiB"] = peak_gib(lambda: extend(bb, 9, steps=2, resample=0), device)

    def compile_unet(r: dict) -> None:
        bb = model(main_dtype)
        evaluate = guided(bb, window_latents(bb))
        eager = seconds_of(evaluate, device)
        bb.unet.compile()
        began = time.perf_counter()
        evaluate()  # the compile happens here
        if gpu:
            torch.cuda.synchronize()
        r["compile_s"] = time.perf_counter() - began
        check.write()
        compiled = seconds_of(evaluate, device)
        r.update({"eager_s": eager, "compiled_s": compiled, "speed_up": eager / compiled})
        models.clear()  # the parts after this one measure the eager model

    plan = [  # the most wanted figures first: a check cut short keeps them
        ("speed", 60, speed),
        ("packing", 40, packing),
        ("engine", 120, engine),
        ("compile", 180, compile_unet),
        ("memory", 60, memory),
        ("wan", 150, wan),
        ("options", 60, options),
    ]
    for label, estimate, work in plan:
        if label not in skip:
            check.part(label, 1 if a.tiny else estimate, work)
    print(json.dumps(check.report, indent=1))
    print(f"wrote {check.path}")


def packer_overhead(bb: Any) -> float:
    """Seconds the packer adds per call (threads handing requests over), against a direct call."""
    denoiser = bb.denoiser(PROMPT, "")
    z = window_latents(bb)
    request = Request(z, torch.tensor(500), denoiser.cond, denoiser.uncond)
    direct = seconds_of(lambda: bb.predict_many([request]), bb.device, repeats=3)
    packer = Packer(bb.predict_many)
    member = packer.join()
    packed = seconds_of(lambda: packer.submit(member, request), bb.device, repeats=3)
    packer.leave(member)
    return packed - direct


def wan_backbone(tiny: bool, device: torch.device) -> Any:
    """Wan 2.1 1.3B's transformer and VAE with random weights (a 2-layer stand-in text encoder of
    UMT5-XXL's width), or the tiny Wan; bf16, a 21-latent-frame 480x832 window."""
    from vidzero.models.wan import WanBackbone

    if tiny:
        from vidzero.models.tiny import TINY_WAN_SIZE, tiny_wan_components

        c = tiny_wan_components()
        transformer, vae, text, tokenizer, scheduler = (
            c[k] for k in ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")
        )
        size = (TINY_WAN_SIZE, TINY_WAN_SIZE)
    else:
        from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanTransformer3DModel
        from transformers import UMT5Config, UMT5EncoderModel

        from recipes.gpu.wan_random import SCHEDULER as WAN_SCHEDULER
        from recipes.gpu.wan_random import TRANSFORMER, UMT5_XXL_WIDTH
        from recipes.gpu.wan_random import VAE as WAN_VAE
        from vidzero.models.tiny import byte_t5_tokenizer

        torch.manual_seed(0)
        tokenizer = byte_t5_tokenizer()
        with torch.device(device):  # random init on the GPU: seconds, not minutes
            transformer = WanTransformer3DModel(**TRANSFORMER).to(torch.bfloat16)
            text = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), num_layers=2, **UMT5_XXL_WIDTH))  # type: ignore[arg-type]
            vae = AutoencoderKLWan(**WAN_VAE)
        scheduler = UniPCMultistepScheduler(**WAN_SCHEDULER)
        size = (480, 832)
    return WanBackbone(
        transformer,
        vae,
        text,
        tokenizer,
        dict(scheduler.config),
        frames=3 if tiny else 21,
        height=size[0],
        width=size[1],
        device=device,
        dtype=torch.bfloat16,
    )


if __name__ == "__main__":
    main()
