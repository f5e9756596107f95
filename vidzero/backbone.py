"""The frozen text-to-video backbone: diffusers components behind four verbs.

`Backbone` loads a diffusers-format T2V checkpoint (ModelScope T2V, zeroscope, the embedded
shapes model) component by component, never through the deprecated pipelines, and exposes:

- `encode_text(prompt)`: CLIP embeddings, computed once per prompt and cached;
- `encode_frames(pixels)`: VAE posterior mean times the scaling factor;
- `decode(latents)`: frames back to pixels, a few frames at a time to bound memory;
- `guided_eps(z, t, prompt, guidance)`: the classifier-free-guided noise prediction for a
  window, unconditional and conditional in one batch (unconditional first, as diffusers does).

What a checkpoint is (its folder, native window and size, weight variant) is worked out from
its own files by `vidzero.checkpoint`, without loading any weights.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from vidzero.checkpoint import DEFAULT_FRAMES, DEFAULT_MODEL, EMBEDDED_MODEL_DIR, inspect_checkpoint
from vidzero.errors import BadInput

__all__ = ["DEFAULT_MODEL", "EMBEDDED_MODEL_DIR", "Backbone", "parse_dtype", "pick_device"]

DTYPE_NAMES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}


class PromptTruncatedWarning(UserWarning):
    """A prompt is longer than the text encoder reads; the rest is cut off."""


def pick_device(device: str | torch.device | None) -> torch.device:
    """`auto` (CUDA when present, else the CPU), or a device that exists on this machine."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise BadInput(f"unknown {{option}} {device!r} (use cpu, cuda, cuda:N or auto)", "device") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BadInput(f"{{option}} {device!r} requested but no CUDA GPU is available", "device")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BadInput(f"{{option}} {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)", "device")
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise BadInput(f"{{option}} {device!r} is not available on this machine", "device")
    elif dev.type != "cpu":
        raise BadInput(f"{{option}} {device!r} is not supported (use cpu, cuda, cuda:N or auto)", "device")
    return dev


def parse_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """fp16 on CUDA and fp32 elsewhere by default; torch dtypes and the usual spellings accepted."""
    if dtype is None or dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        value = dtype
    elif isinstance(dtype, str) and dtype.lower().removeprefix("torch.") in DTYPE_NAMES:
        value = DTYPE_NAMES[dtype.lower().removeprefix("torch.")]
    else:
        raise BadInput(f"unknown {{option}} {dtype!r} (use fp32, fp16 or bf16)", "dtype")
    if value not in (torch.float32, torch.float16, torch.bfloat16):
        raise BadInput(f"{{option}} {dtype!r} is not supported (use fp32, fp16 or bf16)", "dtype")
    if device.type == "cpu" and value == torch.float16:
        raise BadInput("{option} fp16 is not supported on the CPU; use fp32 or bf16", "dtype")
    return value


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence diffusers' and transformers' loading chatter (per-file bars, hints) while loading,
    then put their settings back as they were: the caller's logging is not ours to change."""
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    saved = [(lib, lib.get_verbosity(), lib.is_progress_bar_enabled()) for lib in (dlog, tlog)]
    for lib, _, _ in saved:
        lib.set_verbosity_error()
        lib.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        for lib, verbosity, bars in saved:
            lib.set_verbosity(verbosity)
            if bars:
                lib.enable_progress_bar()


class Backbone:
    """A loaded T2V checkpoint. Construct with :meth:`load`, :meth:`from_pipeline`, or directly
    from components."""

    def __init__(
        self,
        unet: UNet3DConditionModel,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        scheduler: DDIMScheduler,
        frames: int = DEFAULT_FRAMES,
        height: int | None = None,
        width: int | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        vae_slice: int = 8,
        model_id: str = "<components>",
        revision: str | None = None,
        offload: str = "none",
    ) -> None:
        self.device = torch.device(device)
        self.dtype = dtype
        # UNet and text encoder in the requested dtype; the VAE stays fp32, as the release runs
        # it (an fp16 SD VAE overflows in its decoder), and latents are always fp32. Parameters
        # keep requires_grad: every verb runs under no_grad, and on the CPU flipping it selects
        # other kernels (1e-6 differences from diffusers' own pipeline on identical inputs).
        self.offload = offload
        # .to(dtype) only where needed: diffusers warns on every dtype cast of a loaded model
        self.unet = (unet if unet.dtype == dtype else unet.to(dtype)).eval()
        self.text_encoder = (text_encoder if text_encoder.dtype == dtype else text_encoder.to(dtype)).eval()
        self.vae = (vae if vae.dtype == torch.float32 else vae.to(torch.float32)).eval()
        if offload == "none":
            for module in (self.unet, self.text_encoder, self.vae):
                module.to(self.device)
        else:
            self._offload(offload)
        self.tokenizer = tokenizer
        self.scheduler = scheduler
        self.vae_scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        sample = self.unet.config.sample_size
        sample_h, sample_w = (sample, sample) if isinstance(sample, int) else sample
        self.height = height or sample_h * self.vae_scale
        self.width = width or sample_w * self.vae_scale
        if self.height % self.vae_scale or self.width % self.vae_scale:
            raise BadInput(f"height and width must be multiples of {self.vae_scale}, got {self.height}x{self.width}")
        if frames < 2:
            raise BadInput(f"the window must hold at least 2 frames, got {frames}", "window")
        self.frames = frames
        self.vae_slice = vae_slice
        self.model_id = model_id
        self.revision = revision
        self.format_source = "given"
        self.truncated_prompts: dict[str, int] = {}  # prompt -> its length in tokens
        self._text_cache: dict[str, torch.Tensor] = {}

    def _offload(self, mode: str) -> None:
        """Weights stay on the CPU and move to the GPU only while a component runs, through
        accelerate's hooks (as diffusers' enable_model_cpu_offload / enable_sequential_cpu_offload)."""
        if self.device.type != "cuda":
            raise BadInput("{option} needs a CUDA device (the weights move to it only while they run)", "offload")
        from accelerate import cpu_offload, cpu_offload_with_hook

        if mode == "sequential":
            for module in (self.text_encoder, self.unet, self.vae):
                cpu_offload(module, self.device)
            return
        hook = None
        for module in (self.text_encoder, self.unet, self.vae):
            _, hook = cpu_offload_with_hook(module, self.device, prev_module_hook=hook)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        model: str | Path = DEFAULT_MODEL,
        device: str | torch.device | None = "auto",
        dtype: str | torch.dtype | None = None,
        frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        cache_dir: str | Path | None = None,
        revision: str | None = None,
        variant: str | None = None,
        download: bool = False,
        offload: str = "none",
        vae_slice: int = 8,
        vae_tiling: bool = False,
        attention_slicing: bool = False,
        forward_chunking: int | None = None,
        compile: bool = False,
    ) -> Backbone:
        """Load a checkpoint: 'shapes' (embedded), a diffusers folder, or a hub id from the local
        cache (downloaded only with `download=True`). Window, height and width default to the
        checkpoint's native format (read from its files; `frames`/`height`/`width` override)."""
        torch_device = pick_device(device)
        torch_dtype = parse_dtype(dtype, torch_device)
        info = inspect_checkpoint(
            str(model), cache_dir=cache_dir, revision=revision, variant=variant, download=download
        )
        kwargs: dict[str, Any] = {"local_files_only": True}
        try:
            with quiet_loading():
                unet = UNet3DConditionModel.from_pretrained(
                    info.folder, subfolder="unet", torch_dtype=torch_dtype, variant=info.variants["unet"], **kwargs
                )
                vae = AutoencoderKL.from_pretrained(
                    info.folder, subfolder="vae", torch_dtype=torch.float32, variant=info.variants["vae"], **kwargs
                )
                text_encoder = CLIPTextModel.from_pretrained(
                    info.folder / "text_encoder", dtype=torch_dtype, variant=info.variants["text_encoder"], **kwargs
                )
                tokenizer = CLIPTokenizer.from_pretrained(info.folder / "tokenizer", **kwargs)
                scheduler = DDIMScheduler.from_pretrained(info.folder, subfolder="scheduler", **kwargs)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BadInput(f"could not load the checkpoint at {info.folder}: {first}") from exc
        backbone = cls(
            unet,
            vae,
            text_encoder,
            tokenizer,
            scheduler,
            frames=frames or info.frames,
            height=height or info.height,
            width=width or info.width,
            device=torch_device,
            dtype=torch_dtype,
            vae_slice=vae_slice,
            model_id=info.model_id,
            revision=info.revision,
            offload=offload,
        )
        backbone.configure(
            vae_tiling=vae_tiling,
            attention_slicing=attention_slicing,
            forward_chunking=forward_chunking,
            compile=compile,
        )
        backbone.format_source = info.format_source
        return backbone

    @classmethod
    def from_pipeline(
        cls,
        pipe: Any,
        frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        model_id: str | None = None,
    ) -> Backbone:
        """A backbone on the components of an already loaded diffusers pipeline (e.g. a
        `TextToVideoSDPipeline`); the pipeline's own weights are used, not copied. The scheduler
        is driven as DDIM with the pipeline scheduler's config."""
        missing = [
            n for n in ("unet", "vae", "text_encoder", "tokenizer", "scheduler") if getattr(pipe, n, None) is None
        ]
        if missing:
            raise BadInput(f"the pipeline has no {', '.join(missing)}: vidzero needs a UNet3D text-to-video pipeline")
        if not isinstance(pipe.unet, UNet3DConditionModel):
            raise BadInput(f"the pipeline's UNet is a {type(pipe.unet).__name__}, not a UNet3DConditionModel")
        torch_device = pick_device(device) if device is not None else pipe.unet.device
        torch_dtype = parse_dtype(dtype, torch_device) if dtype is not None else pipe.unet.dtype
        scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
        name = (
            model_id
            or getattr(pipe, "name_or_path", None)
            or getattr(pipe.config, "_name_or_path", None)
            or "<pipeline>"
        )
        return cls(
            pipe.unet,
            pipe.vae,
            pipe.text_encoder,
            pipe.tokenizer,
            scheduler,
            frames=frames or DEFAULT_FRAMES,
            height=height,
            width=width,
            device=torch_device,
            dtype=torch_dtype,
            model_id=str(name),
        )

    def configure(
        self,
        vae_tiling: bool = False,
        attention_slicing: bool = False,
        forward_chunking: int | None = None,
        compile: bool = False,
    ) -> None:
        """Memory and speed switches, each as diffusers offers it."""
        if vae_tiling:
            self.vae.enable_tiling()
        if attention_slicing:
            self.unet.set_attention_slice("auto")
        if forward_chunking:
            lengths = self.sequence_lengths()
            if any(n % forward_chunking for n in lengths):
                divisors = [d for d in range(1, min(lengths) + 1) if all(n % d == 0 for n in lengths)]
                raise BadInput(
                    f"{{option}} {forward_chunking} must divide every sequence the UNet's feed-forward layers see "
                    f"({', '.join(map(str, lengths))} here); use one of {', '.join(map(str, divisors))}",
                    "forward_chunking",
                )
            self.unet.enable_forward_chunking(chunk_size=forward_chunking, dim=1)
        if compile:
            self.unet.compile()  # in place: the module keeps its type and config

    def sequence_lengths(self) -> list[int]:
        """Token counts of the UNet's transformer blocks for this format: the window's frames (the
        temporal blocks) and the latent grid at each resolution level (the spatial blocks)."""
        _, h, w = self.latent_shape
        levels = len(self.unet.config.block_out_channels)
        return sorted({self.frames} | {(h >> i) * (w >> i) for i in range(levels)}, reverse=True)

    # ------------------------------------------------------------------ verbs
    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.unet.config.in_channels, self.height // self.vae_scale, self.width // self.vae_scale)

    @torch.no_grad()
    def encode_text(self, prompt: str) -> torch.Tensor:
        """(1, tokens, width) embeddings of `prompt`; "" is the unconditional branch."""
        if prompt not in self._text_cache:
            limit = self.tokenizer.model_max_length
            length = len(self.tokenizer(prompt, truncation=False).input_ids)
            if length > limit:
                self.truncated_prompts[prompt] = length
                warnings.warn(
                    f"the prompt is {length} tokens long; the text encoder reads the first {limit}: {prompt[:60]!r}...",
                    PromptTruncatedWarning,
                    stacklevel=2,
                )
            tok = self.tokenizer(prompt, padding="max_length", max_length=limit, truncation=True, return_tensors="pt")
            mask = None
            if getattr(self.text_encoder.config, "use_attention_mask", False):
                mask = tok.attention_mask.to(self.device)
            emb = self.text_encoder(tok.input_ids.to(self.device), attention_mask=mask)[0]
            self._text_cache[prompt] = emb.to(self.device, self.dtype)
        return self._text_cache[prompt]

    @torch.no_grad()
    def encode_frames(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) pixels in [-1, 1] -> (N, C, h, w) fp32 latents (posterior mean x scale)."""
        out = []
        for chunk in pixels.split(self.vae_slice):
            dist = self.vae.encode(chunk.to(self.device, torch.float32)).latent_dist
            out.append(dist.mean * self.vae.config.scaling_factor)
        return torch.cat(out)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) latents -> (N, 3, H, W) pixels in [-1, 1], `vae_slice` frames at a time."""
        out = []
        for chunk in latents.split(self.vae_slice):
            z = chunk.to(self.device, torch.float32) / self.vae.config.scaling_factor
            out.append(self.vae.decode(z).sample.clamp(-1, 1))
        return torch.cat(out)

    @torch.no_grad()
    def guided_eps(
        self,
        z: torch.Tensor,
        t: int | torch.Tensor,
        prompt: str,
        guidance: float,
        negative_prompt: str = "",
        return_uncond: bool = False,
    ) -> Any:
        """Classifier-free-guided epsilon for a window z of shape (B, C, F, h, w), fp32; with
        `return_uncond`, also the unconditional prediction (None when guidance <= 1 skips it)."""
        cond = self.encode_text(prompt)
        batch = z.shape[0]
        z_in = self.scheduler.scale_model_input(z, t).to(self.dtype)
        if guidance > 1.0:
            uncond = self.encode_text(negative_prompt)
            emb = torch.cat([uncond.expand(batch, -1, -1), cond.expand(batch, -1, -1)])
            eps = self.unet(torch.cat([z_in, z_in]), t, encoder_hidden_states=emb).sample.float()
            eps_uncond, eps_cond = eps.chunk(2)
            guided = eps_uncond + guidance * (eps_cond - eps_uncond)
            return (guided, eps_uncond) if return_uncond else guided
        eps = self.unet(z_in, t, encoder_hidden_states=cond.expand(batch, -1, -1)).sample.float()
        return (eps, None) if return_uncond else eps

    def describe(self) -> dict:
        """Components, sizes and native window of the loaded backbone."""

        def params(m: torch.nn.Module) -> int:
            return sum(p.numel() for p in m.parameters())

        return {
            "model": self.model_id,
            "revision": self.revision,
            "window_frames": self.frames,
            "height": self.height,
            "width": self.width,
            "latent_shape": list(self.latent_shape),
            "vae_scale_factor": self.vae_scale,
            "vae_scaling_factor": self.vae.config.scaling_factor,
            "unet_parameters": params(self.unet),
            "vae_parameters": params(self.vae),
            "text_encoder_parameters": params(self.text_encoder),
            "text_tokens": self.tokenizer.model_max_length,
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "vae_dtype": "float32",
            "offload": self.offload,
        }
