"""Peak GPU memory of ModelScope T2V and zeroscope windows, estimated on any machine in a minute.

    python -m recipes.bench.memory_estimate [--out docs/bench]

The real architectures (recipes/modelscope_random.py's published configurations) run on fake
tensors (torch's FakeTensorMode: shapes, dtypes and storages, no arithmetic) under a dispatch
mode that follows every tensor storage alive and records the peak. Each component is measured
in the precision vidzero loads it in on CUDA (UNet and text encoder fp16, VAE fp32) for each
phase of a run: the text encoder on 77 tokens, one guided UNet evaluation (conditional and
unconditional in one batch of 2), the VAE decoding `vae_slice` frames and encoding one.

The estimate of a run's peak is the resident weights plus the largest phase; with model offload
(accelerate's hooks keep one component on the GPU at a time) it is the largest component plus
its phase. These are lower bounds of what `torch.cuda.max_memory_allocated` reports: the caching
allocator's rounding and fragmentation, cuDNN workspaces and the CUDA context (about 0.3-0.5 GiB)
come on top; `recipes/gpu/check.py` measures the real figure on a GPU.
"""

from __future__ import annotations

import argparse
import json
import weakref
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from recipes.gpu.modelscope_random import TEXT, UNET, VAE

GIB = 1024**3
FORMATS = {"ModelScope T2V (16 x 256 x 256)": (16, 256, 256), "zeroscope_v2_576w (24 x 320 x 576)": (24, 320, 576)}
UNET_SWITCHES = {
    "none": {},
    "forward chunking 1": {"forward_chunking": 1},
    "attention slicing": {"attention_slicing": 1},
}
VAE_SLICES = {"vae_slice 8 (default)": 8, "vae_slice 1": 1}


class PeakTracker(TorchDispatchMode):
    """Bytes of tensor storage alive, and their peak, over every op in its context: a storage is
    counted when an op first returns it and uncounted when Python frees it. (torch's MemTracker
    does the same and more, but its cost per op grows with the tensors alive, which makes a
    chunked UNet take hours.)"""

    def __init__(self, exclude: list[torch.Tensor]) -> None:
        super().__init__()
        self.alive: dict[int, int] = {}
        self.known = {t.untyped_storage()._cdata for t in exclude}
        self.current = self.peak = 0

    def _freed(self, key: int) -> None:
        self.current -= self.alive.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key = storage._cdata
                if key not in self.alive and key not in self.known:
                    self.alive[key] = storage.nbytes()
                    self.current += storage.nbytes()
                    weakref.finalize(storage, self._freed, key)
        self.peak = max(self.peak, self.current)
        return out


def tracked_peak(
    module: torch.nn.Module, inputs: list[torch.Tensor], call: Callable[[], object], grad: bool = False
) -> int:
    """Bytes of tensor storage alive at the peak of `call`, beyond the module's weights and inputs
    (`grad`: with autograd on, for a call that takes a gradient)."""
    tracker = PeakTracker([*module.parameters(), *module.buffers(), *inputs])
    with tracker, torch.set_grad_enabled(grad):
        result = call()
        del result
    return tracker.peak


def fake_module(build: Callable[[], torch.nn.Module], dtype: torch.dtype, mode) -> torch.nn.Module:
    with torch.device("meta"):
        module = build().to(dtype).eval()
    with mode:
        return module.to_empty(device="cpu")


def param_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def estimate(frames: int, height: int, width: int) -> dict:
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from torch._subclasses.fake_tensor import FakeTensorMode
    from transformers import CLIPTextConfig, CLIPTextModel

    mode = FakeTensorMode(allow_non_fake_inputs=True)
    half = torch.float16
    unet = fake_module(lambda: UNet3DConditionModel(**UNET), half, mode)
    vae = fake_module(lambda: AutoencoderKL(**VAE), torch.float32, mode)
    text = fake_module(lambda: CLIPTextModel(CLIPTextConfig(**TEXT)), half, mode)
    h, w = height // 8, width // 8
    with mode:
        z = torch.randn(2, 4, frames, h, w, dtype=half)
        emb = torch.randn(2, 77, 1024, dtype=half)
        tokens = torch.zeros(1, 77, dtype=torch.long)
        phases = {"text encoder": tracked_peak(text, [tokens], lambda: text(tokens))}
        for name, switch in UNET_SWITCHES.items():
            if switch.get("forward_chunking"):
                unet.enable_forward_chunking(chunk_size=switch["forward_chunking"], dim=1)
            if switch.get("attention_slicing"):
                unet.set_attention_slice("auto")
            phases[f"UNet, {name}"] = tracked_peak(unet, [z, emb], lambda: unet(z, 500, encoder_hidden_states=emb))
            if switch.get("forward_chunking"):
                unet.disable_forward_chunking()
        one = torch.randn(1, 3, height, width)
        phases["VAE encode, 1 frame"] = tracked_peak(vae, [one], lambda: vae.encode(one))
        for name, slice_ in VAE_SLICES.items():
            lat = torch.randn(min(slice_, frames), 4, h, w)
            phases[f"VAE decode, {name}"] = tracked_peak(vae, [lat], lambda lat=lat: vae.decode(lat))
        vae.enable_tiling()
        lat = torch.randn(1, 4, h, w)
        phases["VAE decode, vae_slice 1 + tiling"] = tracked_peak(vae, [lat], lambda: vae.decode(lat))
    weights = {"UNet fp16": param_bytes(unet), "VAE fp32": param_bytes(vae), "text encoder fp16": param_bytes(text)}
    return {"weights": weights, "phases": phases}


def table(results: dict[str, dict]) -> str:
    gib = lambda b: f"{b / GIB:.2f}"  # noqa: E731
    lines = [
        "| format | switches | weights on the GPU (GiB) | largest phase (GiB) | estimated peak (GiB) |",
        "|---|---|---:|---:|---:|",
    ]
    for fmt, r in results.items():
        w, p = r["weights"], r["phases"]
        resident = sum(w.values())
        for unet_switch in UNET_SWITCHES:
            for vae_name in (*VAE_SLICES, "vae_slice 1 + tiling"):
                if unet_switch != "none" and vae_name != "vae_slice 1":
                    continue
                largest = max(p["text encoder"], p[f"UNet, {unet_switch}"], p[f"VAE decode, {vae_name}"])
                label = ", ".join(s for s in (unet_switch if unet_switch != "none" else "", vae_name) if s)
                lines.append(f"| {fmt} | {label} | {gib(resident)} | {gib(largest)} | {gib(resident + largest)} |")
        offload = max(
            w["UNet fp16"] + p["UNet, none"],
            w["VAE fp32"] + p["VAE decode, vae_slice 1"],
            w["text encoder fp16"] + p["text encoder"],
        )
        lines.append(f"| {fmt} | model offload, vae_slice 1 | (one at a time) | | {gib(offload)} |")
    return "\n".join(lines)


def run_estimates(
    argv: list[str] | None,
    description: str | None,
    formats: dict[str, tuple[int, int, int]],
    estimate_one: Callable[[int, int, int], dict],
    make_table: Callable[[dict[str, dict]], str],
    stem: str,
) -> None:
    """The command line of an estimate: each format's phases printed, then the table, and with
    --out both written as STEM.json and STEM.md."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None, help=f"write {stem}.json and .md here")
    a = p.parse_args(argv)
    results = {}
    for name, (frames, height, width) in formats.items():
        results[name] = estimate_one(frames, height, width)
        print(f"{name}: " + ", ".join(f"{k} {v / GIB:.2f} GiB" for k, v in results[name]["phases"].items()), flush=True)
    text = make_table(results)
    print(text)
    if a.out is not None:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / f"{stem}.json").write_text(json.dumps(results, indent=1))
        (a.out / f"{stem}.md").write_text(text + "\n")


def main(argv: list[str] | None = None) -> None:
    run_estimates(argv, __doc__, FORMATS, estimate, table, "memory-estimate")


if __name__ == "__main__":
    main()
