"""The frozen text-to-video backbone: diffusers components behind four verbs.

`Backbone` loads a diffusers-format T2V checkpoint (ModelScope T2V, zeroscope, the embedded
shapes model) component by component, never through the deprecated pipelines, and exposes:

- `encode_text(prompt)`: CLIP embeddings, computed once per prompt and cached;
- `encode_frames(pixels)`: VAE posterior mean times the scaling factor;
- `decode(latents)`: frames back to pixels, a few frames at a time to bound memory;
- `guided_eps(z, t, prompt, guidance)`: the classifier-free-guided noise prediction for a
  window, unconditional and conditional in one batch (unconditional first, as diffusers does).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from vidzero.errors import BadInput

EMBEDDED_MODEL_DIR = Path(__file__).parent / "shapes" / "model"
SHORT_NAMES = {"shapes": EMBEDDED_MODEL_DIR}
DEFAULT_MODEL = "shapes"


@dataclass(frozen=True)
class NativeFormat:
    """What a checkpoint was trained on; its config does not say all of it."""

    frames: int
    height: int | None = None  # None: from the UNet's sample_size
    width: int | None = None


# Window length and size of known checkpoints (their configs hold no frame count, and
# zeroscope's sample_size does not match its training resolution).
KNOWN_FORMATS: dict[str, NativeFormat] = {
    "damo-vilab/text-to-video-ms-1.7b": NativeFormat(16, 256, 256),
    "ali-vilab/text-to-video-ms-1.7b": NativeFormat(16, 256, 256),
    "cerspense/zeroscope_v2_576w": NativeFormat(24, 320, 576),
    "cerspense/zeroscope_v2_xl": NativeFormat(24, 576, 1024),
}
FORMAT_FILE = "vidzero.json"  # optional, inside a checkpoint folder: {"frames": 16, ...}
DEFAULT_FRAMES = 16

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
REQUIRED = {
    "unet": "UNet3DConditionModel",
    "vae": "AutoencoderKL",
    "text_encoder": "CLIPTextModel",
    "tokenizer": "CLIPTokenizer",
    "scheduler": "DDIMScheduler",
}


def resolve_checkpoint(model: str, cache_dir: str | Path | None = None, revision: str | None = None) -> tuple[Path, str | None]:
    """A folder for `model` (short name, folder, or hub id from the local cache) and its revision.

    Never touches the network: hub ids are resolved from the local Hugging Face cache only.
    """
    if model in SHORT_NAMES:
        folder = SHORT_NAMES[model]
        if not (folder / "model_index.json").exists():
            raise BadInput(
                f"the embedded model {model!r} has not shipped yet (no weights at {folder}): pass --model with a "
                "diffusers T2V folder or cached hub id, or `python -m vidzero.tiny DIR` for a tiny test checkpoint"
            )
        return folder, None
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise BadInput(f"model {model!r} is a file; expected a diffusers checkpoint folder or hub id")
        return path, None
    if model.count("/") != 1 or model.startswith(("/", ".", "~")):
        raise BadInput(f"model {model!r}: no such folder, and not a hub id of the form ORG/NAME")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = snapshot_download(model, revision=revision, cache_dir=cache_dir, local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, OSError) as exc:
        raise BadInput(
            f"model {model!r} is not in the local Hugging Face cache (vidzero never downloads; "
            f"fetch it with `huggingface-cli download {model}` on a connected machine)"
        ) from exc
    folder = Path(folder)
    return folder, folder.name if len(folder.name) == 40 else revision


def check_checkpoint(folder: Path) -> dict:
    """The parsed model_index.json, or a clear error if this is no diffusers T2V checkpoint."""
    index_path = folder / "model_index.json"
    if not index_path.exists():
        raise BadInput(f"{folder} is not a diffusers checkpoint (no model_index.json)")
    try:
        index = json.loads(index_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{index_path} is not valid JSON") from exc
    for name, cls in REQUIRED.items():
        entry = index.get(name)
        # Tolerate odd library names (some zeroscope siblings write them oddly): the class counts.
        if not isinstance(entry, list) or len(entry) != 2 or entry[1] != cls:
            if name == "tokenizer" and isinstance(entry, list) and entry[1] == "CLIPTokenizerFast":
                continue
            if name == "scheduler" and isinstance(entry, list) and entry[1]:
                continue  # any scheduler config: we always drive it as DDIM (see Backbone.load)
            raise BadInput(f"{folder} is not a text-to-video checkpoint: component {name!r} should be {cls}, found {entry}")
        if not (folder / name).is_dir():
            raise BadInput(f"{folder} is incomplete: the folder {name}/ is missing")
    return index


def native_format(folder: Path, model: str) -> NativeFormat:
    fmt_file = folder / FORMAT_FILE
    if fmt_file.exists():
        data = json.loads(fmt_file.read_text())
        return NativeFormat(int(data["frames"]), data.get("height"), data.get("width"))
    return KNOWN_FORMATS.get(model, NativeFormat(DEFAULT_FRAMES))


def quiet_library_logs() -> None:
    """Loading chatter (accelerate hints, per-file progress bars) is noise on our CLI."""
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def pick_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BadInput(f"device {device!r} requested but no CUDA GPU is available")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise BadInput(f"unknown device {device!r} (use cpu, cuda, cuda:N or auto)") from exc


class Backbone:
    """A loaded T2V checkpoint. Construct with :meth:`load` (or directly from components)."""

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
        decode_chunk: int = 8,
        model_id: str = "<components>",
        revision: str | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.dtype = dtype
        # UNet and text encoder in the requested dtype; the VAE stays fp32 (as the release
        # does: fp16 VAE decodes overflow), latents are always fp32. Parameters keep
        # requires_grad: every verb runs under no_grad, and on the CPU flipping it selects other
        # kernels (1e-6 differences from diffusers' own pipeline on identical inputs).
        self.unet = unet.to(self.device, dtype).eval()
        self.text_encoder = text_encoder.to(self.device, dtype).eval()
        self.vae = vae.to(self.device, torch.float32).eval()
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
            raise BadInput(f"the window must hold at least 2 frames, got {frames}")
        self.frames = frames
        self.decode_chunk = decode_chunk
        self.model_id = model_id
        self.revision = revision
        self._text_cache: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        model: str = DEFAULT_MODEL,
        device: str | None = "auto",
        dtype: str = "fp32",
        frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        cache_dir: str | Path | None = None,
        revision: str | None = None,
        variant: str | None = None,
        decode_chunk: int = 8,
    ) -> Backbone:
        if dtype not in DTYPES:
            raise BadInput(f"unknown dtype {dtype!r} (use one of {', '.join(DTYPES)})")
        torch_device = pick_device(device)
        if torch_device.type == "cpu" and dtype == "fp16":
            raise BadInput("fp16 is not supported on the CPU; use fp32 or bf16")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        folder, resolved_rev = resolve_checkpoint(model, cache_dir, revision)
        check_checkpoint(folder)
        fmt = native_format(folder, model)
        torch_dtype = DTYPES[dtype]
        kwargs = {"variant": variant} if variant else {}
        quiet_library_logs()
        try:
            unet = UNet3DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=torch_dtype, **kwargs)
            vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=torch.float32, **kwargs)
            text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", dtype=torch_dtype, **kwargs)
            tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
            scheduler = DDIMScheduler.from_pretrained(folder, subfolder="scheduler")
        except (OSError, ValueError, RuntimeError, json.JSONDecodeError) as exc:
            raise BadInput(f"could not load the checkpoint at {folder}: {str(exc).splitlines()[0]}") from exc
        return cls(
            unet, vae, text_encoder, tokenizer, scheduler,
            frames=frames or fmt.frames,
            height=height or fmt.height,
            width=width or fmt.width,
            device=torch_device,
            dtype=torch_dtype,
            decode_chunk=decode_chunk,
            model_id=model,
            revision=resolved_rev,
        )

    # ------------------------------------------------------------------ verbs
    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.unet.config.in_channels, self.height // self.vae_scale, self.width // self.vae_scale)

    @torch.no_grad()
    def encode_text(self, prompt: str) -> torch.Tensor:
        """(1, tokens, width) embeddings of `prompt`; "" is the unconditional branch."""
        if prompt not in self._text_cache:
            tok = self.tokenizer(
                prompt, padding="max_length", max_length=self.tokenizer.model_max_length,
                truncation=True, return_tensors="pt",
            )
            mask = None
            if getattr(self.text_encoder.config, "use_attention_mask", False):
                mask = tok.attention_mask.to(self.device)
            emb = self.text_encoder(tok.input_ids.to(self.device), attention_mask=mask)[0]
            self._text_cache[prompt] = emb.to(self.dtype)
        return self._text_cache[prompt]

    @torch.no_grad()
    def encode_frames(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) pixels in [-1, 1] -> (N, C, h, w) fp32 latents (posterior mean x scale)."""
        out = []
        for chunk in pixels.split(self.decode_chunk):
            dist = self.vae.encode(chunk.to(self.device, torch.float32)).latent_dist
            out.append(dist.mean * self.vae.config.scaling_factor)
        return torch.cat(out)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) latents -> (N, 3, H, W) pixels in [-1, 1], `decode_chunk` frames at a time."""
        out = []
        for chunk in latents.split(self.decode_chunk):
            z = chunk.to(self.device, torch.float32) / self.vae.config.scaling_factor
            out.append(self.vae.decode(z).sample.clamp(-1, 1))
        return torch.cat(out)

    @torch.no_grad()
    def guided_eps(self, z: torch.Tensor, t: int | torch.Tensor, prompt: str, guidance: float, negative_prompt: str = "") -> torch.Tensor:
        """Classifier-free-guided epsilon for a window z of shape (B, C, F, h, w), fp32."""
        cond = self.encode_text(prompt)
        batch = z.shape[0]
        z_in = self.scheduler.scale_model_input(z, t).to(self.dtype)
        if guidance > 1.0:
            uncond = self.encode_text(negative_prompt)
            emb = torch.cat([uncond.expand(batch, -1, -1), cond.expand(batch, -1, -1)])
            eps = self.unet(torch.cat([z_in, z_in]), t, encoder_hidden_states=emb).sample.float()
            eps_uncond, eps_cond = eps.chunk(2)
            return eps_uncond + guidance * (eps_cond - eps_uncond)
        return self.unet(z_in, t, encoder_hidden_states=cond.expand(batch, -1, -1)).sample.float()

    def describe(self) -> dict:
        """Components, sizes and native window, for `vidzero info`."""
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
            "text_width": self.text_encoder.config.hidden_size,
            "scheduler": {k: self.scheduler.config[k] for k in ("beta_schedule", "beta_start", "beta_end", "prediction_type", "steps_offset", "set_alpha_to_one", "timestep_spacing")},
            "attention": sorted({type(p).__name__ for p in self.unet.attn_processors.values()}),
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
        }
