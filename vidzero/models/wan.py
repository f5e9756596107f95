"""The Wan family (Wan 2.1 text-to-video): diffusers' WanTransformer3DModel, the causal video VAE
AutoencoderKLWan, the UMT5 text encoder, and the rectified flow, behind the engine's verbs.

What differs from the UNet3D family, and how vidzero handles it (docs/gpu.md, "Wan"):

- **Latent frames hold video frames.** The VAE compresses time by 4 and is causal: latent frame
  0 is video frame 0 alone, latent frame k >= 1 holds video frames 4k-3..4k. The engine's window
  and timeline count latent frames (`temporal_stride` 4); tasks place known frames in them
  (vidzero.tasks.common) and the output is decoded in order by `CausalDecoder`
  (vidzero.models.wan_decoder), which keeps the causal decoder's cache between latent frames, so a
  video decoded frame by frame as it is made is the video the VAE decodes whole.
- **Latents are normalised** per channel with the VAE's `latents_mean` / `latents_std`, as
  WanPipeline does; `encode_video` and the decoder apply and undo it.
- **The sampler steps a rectified flow** (`FlowGrid`): the checkpoint's scheduler config gives
  the shift (UniPC's `flow_shift`, or a FlowMatchEulerDiscreteScheduler's `shift`), and the step
  is the Euler step, stateless, so that a step can be taken again at one level (resampling).
- **Guidance** as WanPipeline defines it: uncond + w (cond - uncond) on the velocity.
- **Two experts (Wan 2.2 A14B).** `transformer` takes the high-noise steps (timesteps at or
  above `boundary_ratio` of the training schedule) and `transformer_2` the rest, as WanPipeline
  switches them; the low-noise steps may take their own guidance scale (`guidance_2`, diffusers'
  `guidance_scale_2`). With model offload only the expert at work is on the GPU.

Over 400 lines because the family is one backbone class (loading, the text encoder, the causal
VAE's encodings, the experts, packed calls) and its denoiser: the engine's protocol, implemented
in one place, with the second expert's rule beside the first's.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel

from vidzero.core.packing import Request, split_predictions
from vidzero.core.sampler import Prediction, SamplerSettings
from vidzero.core.schedule import FlowGrid
from vidzero.errors import BadInput
from vidzero.models.cache import cache_context, reset_cache
from vidzero.models.checkpoint import CheckpointInfo, LoadOptions
from vidzero.models.loading import (
    PromptTruncatedWarning,
    SharedModules,
    differentiable,
    loading_from,
    offload_modules,
    parse_dtype,
    pick_device,
    pipeline_placement,
)
from vidzero.models.wan_decoder import CausalDecoder

TEMPORAL_STRIDE = 4
MAX_SEQUENCE_LENGTH = 512  # WanPipeline's default prompt length in tokens


def latent_frames(video_frames: int, stride: int = TEMPORAL_STRIDE) -> int:
    """Latent frames of a video of `video_frames` frames (1 + 4k frames: 1 + k latent frames)."""
    return (video_frames - 1) // stride + 1


def flow_scheduler(config: dict[str, Any]) -> FlowMatchEulerDiscreteScheduler:
    """The flow-matching Euler scheduler of a checkpoint's scheduler config: its own, or the one
    a UniPC config with flow sigmas describes (same shift and training steps)."""
    if config.get("_class_name") == "FlowMatchEulerDiscreteScheduler":
        return FlowMatchEulerDiscreteScheduler.from_config(config)
    shift = config.get("flow_shift") or config.get("shift") or 1.0
    steps = config.get("num_train_timesteps", 1000)
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=steps, shift=float(shift))


def prompt_clean(text: str) -> str:
    """The text cleaning WanPipeline applies before tokenising (ftfy when installed, HTML
    entities, whitespace)."""
    try:
        from diffusers.pipelines.wan.pipeline_wan import prompt_clean as clean

        return clean(text)
    except ImportError:  # an older layout of diffusers: the whitespace part, as it does
        return " ".join(text.split())


class WanBackbone:
    """A loaded Wan text-to-video checkpoint. Construct with :meth:`from_checkpoint`,
    :meth:`from_pipeline`, or directly from components."""

    family = "wan"
    init_noise_sigma = 1.0
    temporal_stride = TEMPORAL_STRIDE

    def __init__(
        self,
        transformer: WanTransformer3DModel,
        vae: AutoencoderKLWan,
        text_encoder: Any,
        tokenizer: Any,
        scheduler_config: dict[str, Any],
        frames: int,
        height: int,
        width: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        model_id: str = "<components>",
        revision: str | None = None,
        offload: str = "none",
        transformer_2: WanTransformer3DModel | None = None,
        boundary_ratio: float | None = None,
    ) -> None:
        self.device, self.dtype, self.offload = torch.device(device), dtype, offload
        self.transformer = (transformer if transformer.dtype == dtype else transformer.to(dtype)).eval()
        self.transformer_2 = (
            None
            if transformer_2 is None
            else (transformer_2 if transformer_2.dtype == dtype else transformer_2.to(dtype)).eval()
        )
        self.text_encoder = (text_encoder if text_encoder.dtype == dtype else text_encoder.to(dtype)).eval()
        self.vae = (vae if vae.dtype == torch.float32 else vae.to(torch.float32)).eval()
        experts = [self.transformer] + ([self.transformer_2] if self.transformer_2 is not None else [])
        self.hooks: dict[int, Any] = {}  # expert -> its model-offload hook
        if offload == "none":
            for module in (*experts, self.text_encoder, self.vae):
                module.to(self.device)
        else:
            hooks = offload_modules((self.text_encoder, *experts, self.vae), self.device, offload)
            self.hooks = {id(e): h for e, h in zip(experts, hooks[1:])}
        fixed = offload == "none"
        named = {"transformer": (self.transformer, fixed)}
        if self.transformer_2 is not None:
            named["second expert (transformer_2)"] = (self.transformer_2, fixed)
        self.modules = SharedModules(named | {"text encoder": (self.text_encoder, fixed), "VAE": (self.vae, fixed)})
        self.tokenizer = tokenizer
        self.scheduler = flow_scheduler(dict(scheduler_config))
        if (transformer_2 is None) != (boundary_ratio is None):
            raise ValueError("a second expert (transformer_2) comes with its boundary_ratio, and only then")
        self.boundary_ratio = boundary_ratio
        # the timestep under which the second expert takes over (WanPipeline's boundary_timestep)
        self.boundary_timestep = (
            None if boundary_ratio is None else boundary_ratio * self.scheduler.config.num_train_timesteps
        )
        self.vae_scale = int(self.vae.config.scale_factor_spatial or 8)
        patch = self.transformer.config.patch_size
        multiple = self.vae_scale * int(patch[1])
        if height % multiple or width % multiple:
            raise BadInput(f"height and width must be multiples of {multiple} for this model, got {height}x{width}")
        if frames < 2:
            raise BadInput(f"the window must hold at least 2 latent frames (5 video frames), got {frames}", "window")
        self.frames, self.height, self.width = frames, height, width
        self.model_id, self.revision, self.format_source = model_id, revision, "given"
        self.truncated_prompts: dict[str, int] = {}
        self.loras: list[dict[str, Any]] = []  # what vidzero.models.lora loaded, for the run's record
        self.cache = "none"  # diffusers' cache hooks on the experts (vidzero.models.cache)
        self.current_timestep = 0.0  # the step being taken, for the hooks that skip by timestep
        self._text_cache: dict[str, torch.Tensor] = {}
        z = self.vae.config.z_dim
        self.latents_mean = torch.tensor(self.vae.config.latents_mean, dtype=torch.float32).view(1, z, 1, 1, 1)
        self.latents_std = torch.tensor(self.vae.config.latents_std, dtype=torch.float32).view(1, z, 1, 1, 1)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_checkpoint(
        cls,
        info: CheckpointInfo,
        load: LoadOptions,
    ) -> WanBackbone:
        """The backbone of a Wan checkpoint `inspect_checkpoint` has found, loaded as `load` says.
        Its window is in video frames (1 + 4k); the engine's window is that many latent frames."""
        from transformers import AutoTokenizer, UMT5EncoderModel

        torch_device = pick_device(load.device)
        torch_dtype = parse_dtype(load.dtype, torch_device)
        local: dict[str, Any] = {"local_files_only": True}
        with loading_from(info.folder):
            transformer = WanTransformer3DModel.from_pretrained(
                info.folder,
                subfolder="transformer",
                torch_dtype=torch_dtype,
                variant=info.variants["transformer"],
                **local,
            )
            vae = AutoencoderKLWan.from_pretrained(
                info.folder, subfolder="vae", torch_dtype=torch.float32, variant=info.variants["vae"], **local
            )
            transformer_2 = (
                WanTransformer3DModel.from_pretrained(
                    info.folder,
                    subfolder="transformer_2",
                    torch_dtype=torch_dtype,
                    variant=info.variants["transformer_2"],
                    **local,
                )
                if "transformer_2" in info.experts
                else None
            )
            text_encoder = UMT5EncoderModel.from_pretrained(
                info.folder / "text_encoder", dtype=torch_dtype, variant=info.variants["text_encoder"], **local
            )
            tokenizer = AutoTokenizer.from_pretrained(info.folder / "tokenizer", **local)
        scheduler_config = dict(info.scheduler_config())
        video_frames = load.window or info.frames
        backbone = cls(
            transformer,
            vae,
            text_encoder,
            tokenizer,
            scheduler_config,
            frames=latent_frames(video_frames),
            height=load.height or info.height or 480,
            width=load.width or info.width or 832,
            device=torch_device,
            dtype=torch_dtype,
            model_id=info.model_id,
            revision=info.revision,
            offload=load.offload,
            transformer_2=transformer_2,
            boundary_ratio=info.boundary_ratio,
        )
        if load.vae_tiling:
            backbone.vae.enable_tiling()
        if load.compile:
            for expert in backbone.experts():
                expert.compile()
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
    ) -> WanBackbone:
        """A backbone on the components of a loaded `WanPipeline` (its weights used, not copied;
        a dtype or device other than the pipeline's changes them in place, as `pipe.to()` does).
        `frames` is the window in video frames (default 81, Wan 2.1's)."""
        torch_device, torch_dtype, name = pipeline_placement(pipe, pipe.transformer, device, dtype)
        second = getattr(pipe, "transformer_2", None)
        return cls(
            pipe.transformer,
            pipe.vae,
            pipe.text_encoder,
            pipe.tokenizer,
            dict(pipe.scheduler.config),
            frames=latent_frames(frames or 81),
            height=height or 480,
            width=width or 832,
            device=torch_device,
            dtype=torch_dtype,
            model_id=model_id or name,
            transformer_2=second,
            boundary_ratio=pipe.config.boundary_ratio if second is not None else None,
        )

    # ------------------------------------------------------------------ the experts
    def experts(self) -> list[WanTransformer3DModel]:
        return [self.transformer] + ([self.transformer_2] if self.transformer_2 is not None else [])

    def expert(self, t: torch.Tensor | float) -> WanTransformer3DModel:
        """The transformer that takes timestep `t`: the second expert under the boundary (Wan
        2.2), the first otherwise; with model offload, the other one leaves the GPU first."""
        low = self.boundary_timestep is not None and float(t) < self.boundary_timestep
        chosen = self.transformer_2 if low and self.transformer_2 is not None else self.transformer
        for other in self.experts():
            if other is not chosen and id(other) in self.hooks:
                self.hooks[id(other)].offload()
        return chosen

    # ------------------------------------------------------------------ verbs
    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (int(self.vae.config.z_dim), self.height // self.vae_scale, self.width // self.vae_scale)

    @torch.no_grad()
    def encode_text(self, prompt: str) -> torch.Tensor:
        """(1, 512, width) UMT5 states of `prompt`, zero past its last token (as WanPipeline)."""
        if prompt not in self._text_cache:
            text = prompt_clean(prompt)
            length = len(self.tokenizer(text, add_special_tokens=True).input_ids)
            if length > MAX_SEQUENCE_LENGTH:
                self.truncated_prompts[prompt] = length
                warnings.warn(
                    f"the prompt is {length} tokens long; the text encoder reads the first {MAX_SEQUENCE_LENGTH}",
                    PromptTruncatedWarning,
                    stacklevel=2,
                )
            tok = self.tokenizer(
                [text],
                padding="max_length",
                max_length=MAX_SEQUENCE_LENGTH,
                truncation=True,
                add_special_tokens=True,
                return_attention_mask=True,
                return_tensors="pt",
            )
            mask = tok.attention_mask.to(self.device)
            states = self.text_encoder(tok.input_ids.to(self.device), mask).last_hidden_state
            used = int(mask.gt(0).sum())
            out = torch.zeros_like(states)
            out[:, :used] = states[:, :used]
            self._text_cache[prompt] = out.to(self.device, self.dtype)
        return self._text_cache[prompt]

    @torch.no_grad()
    def encode_video(self, pixels: torch.Tensor) -> torch.Tensor:
        """(T, 3, H, W) pixels in [-1, 1], T = 1 + 4k -> (1 + k, C, h, w) normalised latents: the
        VAE's causal encoding (frame 0 alone, then 4 frames per latent frame), its posterior mean."""
        video = pixels.to(self.device, torch.float32).permute(1, 0, 2, 3)[None]
        mean = self.vae.encode(video).latent_dist.mode()
        latents = (mean - self.latents_mean.to(mean.device)) / self.latents_std.to(mean.device)
        return latents[0].permute(1, 0, 2, 3)

    def encode_frames(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, C, h, w): each frame alone, as a first latent frame (a still)."""
        return torch.cat([self.encode_video(frame[None]) for frame in pixels])

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) latent frames, in order from a video's first -> its (1 + 4(N-1), 3, H, W) frames."""
        decoder = self.decoder()
        return torch.cat([decoder.push(latent) for latent in latents])

    def decoder(self) -> CausalDecoder:
        return CausalDecoder(self)

    def denoiser(self, prompt: str, negative_prompt: str = "") -> WanDenoiser:
        """The denoiser of one window: the cache hooks start afresh (a window's first step must
        not reuse the last step of the window before)."""
        self.modules.check()
        reset_cache(self)
        return WanDenoiser(self, self.encode_text(prompt), self.encode_text(negative_prompt))

    def run_expert(self, t: torch.Tensor, **inputs: Any) -> torch.Tensor:
        """The expert that takes timestep `t`, run on `inputs` (inside the cache hooks' context)."""
        model = self.expert(t)
        self.current_timestep = float(t.reshape(-1)[0])
        with cache_context(model, self.current_timestep, self.cache != "none"):
            return model(**inputs, return_dict=False)[0]

    @torch.no_grad()
    def predict_many(self, requests: list[Request]) -> list[Prediction]:
        """Several windows in one transformer call (see UNet3DBackbone.predict_many)."""
        by_expert: dict[int, list[int]] = {}  # windows at timesteps of different experts run apart
        for i, r in enumerate(requests):
            by_expert.setdefault(id(self.expert(r.t)), []).append(i)
        predictions: dict[int, Prediction] = {}
        for indices in by_expert.values():
            group = [requests[i] for i in indices]
            rows, times, texts = [], [], []
            for r in group:
                branches = [r.uncond, r.cond] if r.uncond is not None else [r.cond]
                rows += [r.z.to(self.dtype)] * len(branches)
                texts += [states.expand(r.z.shape[0], -1, -1) for states in branches]
                times += [r.t.reshape(1).expand(r.z.shape[0])] * len(branches)
            out = self.run_expert(
                group[0].t,
                hidden_states=torch.cat(rows),
                timestep=torch.cat(times),
                encoder_hidden_states=torch.cat(texts),
            )
            predictions |= dict(zip(indices, split_predictions(out.float(), group)))
        return [predictions[i] for i in range(len(requests))]

    def noise_grid(self, settings: SamplerSettings) -> FlowGrid:
        return FlowGrid(self.scheduler, settings.steps)

    def describe(self) -> dict:
        def params(m: torch.nn.Module) -> int:
            return sum(p.numel() for p in m.parameters())

        return {
            "model": self.model_id,
            "family": self.family,
            "window_latent_frames": self.frames,
            "window_video_frames": 1 + TEMPORAL_STRIDE * (self.frames - 1),
            "height": self.height,
            "width": self.width,
            "latent_shape": list(self.latent_shape),
            "transformer_parameters": params(self.transformer),
            "transformer_2_parameters": params(self.transformer_2) if self.transformer_2 is not None else None,
            "boundary_timestep": self.boundary_timestep,
            "vae_parameters": params(self.vae),
            "text_encoder_parameters": params(self.text_encoder),
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
        }


class WanDenoiser:
    """The velocity of a Wan transformer for one prompt: uncond and cond in one batch, or the
    conditional branch alone."""

    def __init__(self, backbone: WanBackbone, cond: torch.Tensor, uncond: torch.Tensor) -> None:
        self.bb, self.cond, self.uncond = backbone, cond, uncond

    @contextlib.contextmanager
    def differentiating(self) -> Iterator[None]:
        """Where posterior guidance takes a gradient through this denoiser
        (models.loading.differentiable), through whichever expert the step takes."""
        with contextlib.ExitStack() as stack:
            for expert in self.bb.experts():
                stack.enter_context(differentiable(self.bb, expert, expert.enable_gradient_checkpointing))
            yield

    def __call__(self, z: torch.Tensor, t: torch.Tensor, guided: bool) -> Prediction:
        # no no_grad here: posterior guidance differentiates through this call (in
        # `differentiating`); the sampler runs every other evaluation under no_grad
        bb, batch = self.bb, z.shape[0]
        z_in = z.to(bb.dtype)
        if not guided:
            out = bb.run_expert(
                t, hidden_states=z_in, timestep=t.expand(batch), encoder_hidden_states=self.cond.expand(batch, -1, -1)
            )
            return Prediction(out.float(), None)
        out = bb.run_expert(
            t,
            hidden_states=torch.cat([z_in, z_in]),
            timestep=t.expand(2 * batch),
            encoder_hidden_states=torch.cat([self.uncond.expand(batch, -1, -1), self.cond.expand(batch, -1, -1)]),
        )
        uncond, cond = out.float().chunk(2)
        return Prediction(cond, uncond)


__all__ = ["WanBackbone", "latent_frames"]
