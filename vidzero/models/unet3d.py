"""The UNet3D family (ModelScope T2V, zeroscope, the embedded shapes model): diffusers
components behind the engine's verbs (vidzero.core.backbone).

`UNet3DBackbone` loads a diffusers-format T2V checkpoint component by component, never through
the deprecated pipelines, and exposes:

- `encode_text(prompt)`: CLIP embeddings, computed once per prompt and cached;
- `encode_frames(pixels)`: VAE posterior mean times the scaling factor;
- `decode(latents)`: frames back to pixels, a few frames at a time to bound memory;
- `denoiser(prompt, negative)`: the noise prediction for a window, both guidance branches in one
  batch (unconditional first, as diffusers does);
- `noise_grid(settings)`: DDIM's levels with the checkpoint's scheduler config.

What a checkpoint is (its folder, native window and size, weight variant) is worked out from
its own files by `vidzero.checkpoint`, without loading any weights.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from vidzero.core.packing import Request, split_predictions
from vidzero.core.sampler import Prediction, SamplerSettings
from vidzero.core.schedule import DDIMGrid
from vidzero.errors import BadInput
from vidzero.models.checkpoint import DEFAULT_FRAMES, CheckpointInfo, LoadOptions
from vidzero.models.loading import (
    PromptTruncatedWarning,
    SharedModules,
    checkpoint_blocks,
    differentiable,
    loading_from,
    offload_modules,
    parse_dtype,
    pick_device,
    pipeline_placement,
)


class UNet3DBackbone:
    """A loaded UNet3D text-to-video checkpoint. Construct with :meth:`load`,
    :meth:`from_pipeline`, or directly from components."""

    family = "unet3d"
    init_noise_sigma = 1.0  # DDIM's
    temporal_stride = 1  # a latent frame is a video frame

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
        vae_slice: int = LoadOptions.vae_slice,
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
            offload_modules((self.text_encoder, self.unet, self.vae), self.device, offload)
        fixed = offload == "none"  # offloaded weights move while they run
        self.modules = SharedModules(
            {"UNet": (self.unet, fixed), "text encoder": (self.text_encoder, fixed), "VAE": (self.vae, fixed)}
        )
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
        self.loras: list[dict[str, Any]] = []  # what vidzero.models.lora loaded, for the run's record
        self._text_cache: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_checkpoint(
        cls,
        info: CheckpointInfo,
        load: LoadOptions,
    ) -> UNet3DBackbone:
        """The backbone of a checkpoint `inspect_checkpoint` has found, loaded as `load` says."""
        torch_device = pick_device(load.device)
        torch_dtype = parse_dtype(load.dtype, torch_device)
        kwargs: dict[str, Any] = {"local_files_only": True}
        with loading_from(info.folder):
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
        backbone = cls(
            unet,
            vae,
            text_encoder,
            tokenizer,
            scheduler,
            frames=load.window or info.frames,
            height=load.height or info.height,
            width=load.width or info.width,
            device=torch_device,
            dtype=torch_dtype,
            vae_slice=load.vae_slice,
            model_id=info.model_id,
            revision=info.revision,
            offload=load.offload,
        )
        backbone.configure(
            vae_tiling=load.vae_tiling,
            attention_slicing=load.attention_slicing,
            forward_chunking=load.forward_chunking,
            compile=load.compile,
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
    ) -> UNet3DBackbone:
        """A backbone on the components of an already loaded diffusers pipeline (e.g. a
        `TextToVideoSDPipeline`); the pipeline's own weights are used, not copied. As diffusers'
        `pipe.to()`, a `dtype` or `device` other than the pipeline's casts and moves its modules
        in place; a backbone that finds its modules changed under it says so (`SharedModules`).
        The scheduler is driven as DDIM with the pipeline scheduler's config."""
        missing = [
            n for n in ("unet", "vae", "text_encoder", "tokenizer", "scheduler") if getattr(pipe, n, None) is None
        ]
        if missing:
            raise BadInput(f"the pipeline has no {', '.join(missing)}: vidzero needs a UNet3D text-to-video pipeline")
        if not isinstance(pipe.unet, UNet3DConditionModel):
            raise BadInput(f"the pipeline's UNet is a {type(pipe.unet).__name__}, not a UNet3DConditionModel")
        torch_device, torch_dtype, name = pipeline_placement(pipe, pipe.unet, device, dtype)
        scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
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
            model_id=model_id or name,
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

    def checkpoint_gradients(self) -> None:
        """Gradient checkpointing for evaluations that take a gradient (diffusers gives the
        UNet3D none: each down, mid and up block is checkpointed)."""
        if not getattr(self.unet, "_vidzero_checkpointed", False):
            unet = self.unet
            checkpoint_blocks([*unet.down_blocks, unet.mid_block, *unet.up_blocks])
            unet._vidzero_checkpointed = True

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

    def encode_video(self, pixels: torch.Tensor) -> torch.Tensor:
        """A clip's latent frames: each frame's own (the VAE is per frame)."""
        return self.encode_frames(pixels)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) latents -> (N, 3, H, W) pixels in [-1, 1], `vae_slice` frames at a time."""
        out = []
        for chunk in latents.split(self.vae_slice):
            z = chunk.to(self.device, torch.float32) / self.vae.config.scaling_factor
            out.append(self.vae.decode(z).sample.clamp(-1, 1))
        return torch.cat(out)

    def denoiser(self, prompt: str, negative_prompt: str = "") -> UNet3DDenoiser:
        """The window's noise prediction under `prompt`, both guidance branches in one UNet batch."""
        self.modules.check()
        return UNet3DDenoiser(self, self.encode_text(prompt), self.encode_text(negative_prompt))

    @torch.no_grad()
    def predict_many(self, requests: list[Request]) -> list[Prediction]:
        """Several windows in one UNet call: each guided request's uncond and cond rows, each
        unguided one's cond row, every row with its own timestep and text states."""
        rows, times, texts = [], [], []
        for r in requests:
            z_in = self.scheduler.scale_model_input(r.z, r.t).to(self.dtype)
            branches = [r.uncond, r.cond] if r.uncond is not None else [r.cond]
            rows += [z_in] * len(branches)
            texts += [states.expand(r.z.shape[0], -1, -1) for states in branches]
            times += [r.t.reshape(1).expand(r.z.shape[0])] * len(branches)
        eps = self.unet(torch.cat(rows), torch.cat(times), encoder_hidden_states=torch.cat(texts)).sample.float()
        return split_predictions(eps, requests)

    def noise_grid(self, settings: SamplerSettings) -> DDIMGrid:
        return DDIMGrid(self.scheduler, settings.steps, settings.eta)

    def decoder(self) -> FrameDecoder:
        return FrameDecoder(self)

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


class UNet3DDenoiser:
    """eps(z, t) of a UNet3D for one prompt: uncond and cond in one batch (uncond first, as
    diffusers' pipelines order them), or the conditional branch alone."""

    def __init__(self, backbone: UNet3DBackbone, cond: torch.Tensor, uncond: torch.Tensor) -> None:
        self.bb, self.cond, self.uncond = backbone, cond, uncond

    def differentiating(self) -> contextlib.AbstractContextManager[None]:
        """Where posterior guidance takes a gradient through this denoiser (models.loading.differentiable)."""
        return differentiable(self.bb, self.bb.unet, self.bb.checkpoint_gradients)

    def __call__(self, z: torch.Tensor, t: torch.Tensor, guided: bool) -> Prediction:
        # no no_grad here: posterior guidance differentiates through this call (in
        # `differentiating`); the sampler runs every other evaluation under no_grad
        bb, batch = self.bb, z.shape[0]
        z_in = bb.scheduler.scale_model_input(z, t).to(bb.dtype)
        if not guided:
            eps = bb.unet(z_in, t, encoder_hidden_states=self.cond.expand(batch, -1, -1)).sample.float()
            return Prediction(eps, None)
        emb = torch.cat([self.uncond.expand(batch, -1, -1), self.cond.expand(batch, -1, -1)])
        eps = bb.unet(torch.cat([z_in, z_in]), t, encoder_hidden_states=emb).sample.float()
        uncond, cond = eps.chunk(2)
        return Prediction(cond, uncond)


class FrameDecoder:
    """Decodes latent frames one by one: a UNet3D's VAE decodes each frame alone, so there is no
    state to keep between them."""

    def __init__(self, backbone: UNet3DBackbone) -> None:
        self.bb = backbone

    def push(self, latent: torch.Tensor) -> torch.Tensor:
        return self.bb.decode(latent[None])

    def state(self) -> list[Any]:
        return []

    def load(self, cache: list[Any], count: int) -> None:
        pass
