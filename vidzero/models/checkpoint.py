"""What a checkpoint is, from its own files, without loading a weight.

`inspect_checkpoint(model)` finds the folder (the embedded model, a folder, or a hub id in the
local Hugging Face cache, downloaded only on request), checks that it is a diffusers T2V
checkpoint with ModelScope's component classes, picks the weight variant each component has
(an fp16-only download is found as such), and works out the native format (window, height,
width), saying where it came from:

1. `vidzero.json` in the folder (`{"frames": 24, "height": 320, "width": 576}`), an override;
2. a known checkpoint named by the files: the cache folder (`models--ORG--NAME`), the
   `_name_or_path` of model_index.json, or the model card (README.md) of a `--local-dir`
   download; then the id as typed;
3. the UNet's `sample_size` times the VAE's factor, and a 16-frame window.

`CheckpointInfo.summary()` reads configs and safetensors headers only (parameter counts and
dtypes), so `vidzero info` answers in well under a second for any checkpoint size. Nothing here
imports torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from typing_extensions import TypedDict

from vidzero.errors import BadInput
from vidzero.models.files import pick_variant, read_json, weight_stats
from vidzero.models.hub import repo_from_cache_path, resolve_folder

DEFAULT_MODEL = "shapes"
DEFAULT_FRAMES = 16
FORMAT_FILE = "vidzero.json"


@dataclass(frozen=True)
class LoadOptions:
    """How to load a checkpoint: taken whole by `load_backbone` and both families' loaders. The
    run option table's model group (vidzero.runs.options) is these fields, defaults included."""

    model: str = DEFAULT_MODEL
    device: str = "auto"
    dtype: str | None = None
    variant: str | None = None
    revision: str | None = None
    cache_dir: Path | None = None
    download: bool = False
    offload: str = "none"
    vae_tiling: bool = False
    attention_slicing: bool = False
    forward_chunking: int | None = None
    compile: bool = False
    vae_slice: int = 8
    window: int | None = None  # frames per window (video frames for Wan); None: the native
    height: int | None = None
    width: int | None = None
    lora: list[str] | None = None  # LoRAs, FILE[:SCALE] each (vidzero.models.lora)
    lora_2: list[str] | None = None  # LoRAs of a second expert (Wan 2.2's low-noise transformer)
    cache: str = "none"  # diffusers' cache hooks on the denoiser (vidzero.models.cache)


class LoadOptionsDict(TypedDict, total=False):
    """`LoadOptions`' fields as keywords (`load_backbone(model, **options)`), for help(), IDEs and
    type checkers; a test keeps the two equal."""

    device: str
    dtype: str | None
    variant: str | None
    revision: str | None
    cache_dir: Path | None
    download: bool
    offload: str
    vae_tiling: bool
    attention_slicing: bool
    forward_chunking: int | None
    compile: bool
    vae_slice: int
    window: int | None
    height: int | None
    width: int | None
    lora: list[str] | None
    lora_2: list[str] | None
    cache: str


@dataclass(frozen=True)
class NativeFormat:
    frames: int
    height: int | None = None
    width: int | None = None


# Checkpoints whose configs do not say their training window and size (zeroscope's sample_size
# does not match its training resolution); keys are lower-case repo ids.
# (Wan: frames counts video frames; its window is (frames - 1) / 4 + 1 latent frames.)
KNOWN_FORMATS: dict[str, NativeFormat] = {
    "damo-vilab/text-to-video-ms-1.7b": NativeFormat(16, 256, 256),
    "ali-vilab/text-to-video-ms-1.7b": NativeFormat(16, 256, 256),
    "cerspense/zeroscope_v2_576w": NativeFormat(24, 320, 576),
    "cerspense/zeroscope_v2_xl": NativeFormat(24, 576, 1024),
    "wan-ai/wan2.1-t2v-1.3b-diffusers": NativeFormat(81, 480, 832),
    "wan-ai/wan2.1-t2v-14b-diffusers": NativeFormat(81, 720, 1280),
    "wan-ai/wan2.2-t2v-a14b-diffusers": NativeFormat(81, 720, 1280),
}
# family -> component -> the classes model_index.json may name (None: any)
REQUIRED: dict[str, dict[str, tuple[str, ...] | None]] = {
    "unet3d": {
        "unet": ("UNet3DConditionModel",),
        "vae": ("AutoencoderKL",),
        "text_encoder": ("CLIPTextModel",),
        "tokenizer": ("CLIPTokenizer", "CLIPTokenizerFast"),
        "scheduler": None,  # any scheduler config is driven as DDIM
    },
    "wan": {
        "transformer": ("WanTransformer3DModel",),
        "vae": ("AutoencoderKLWan",),
        "text_encoder": ("UMT5EncoderModel",),
        "tokenizer": None,
        "scheduler": None,  # driven as the flow-matching Euler scheduler with the config's shift
    },
}
WEIGHT_STEMS: dict[str, dict[str, str]] = {
    "unet3d": {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "text_encoder": "model"},
    "wan": {"transformer": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "text_encoder": "model"},
}


@dataclass
class CheckpointInfo:
    folder: Path
    model_id: str  # as the user named it
    repo_id: str | None  # the hub id the files identify, if any
    revision: str | None
    frames: int
    height: int | None
    width: int | None
    format_source: str
    variants: dict[str, str | None]
    index: dict = field(default_factory=dict)
    family: str = "unet3d"

    @property
    def experts(self) -> tuple[str, ...]:
        """The denoisers of the checkpoint: a Wan 2.2 two-expert one hands the low-noise steps
        (timesteps under `boundary_ratio` of the schedule) to `transformer_2`."""
        return ("transformer", "transformer_2") if two_experts(self.index) else ("transformer",)

    @property
    def boundary_ratio(self) -> float | None:
        return float(self.index["boundary_ratio"]) if two_experts(self.index) else None

    def scheduler_config(self) -> dict:
        return read_json(self.folder / "scheduler" / "scheduler_config.json", "the scheduler config")

    def summary(self) -> dict:
        """Components, parameter counts, weight dtypes and sizes, native format: from configs
        and safetensors headers, no weights loaded."""
        out = self._wan_summary() if self.family == "wan" else self._unet3d_summary()
        for name, stem in weight_stems(self.family, self.index).items():
            stats = weight_stats(self.folder / name, stem, self.variants[name])
            out[f"{name}_parameters"] = stats["parameters"]
            out[f"{name}_weights"] = stats["dtypes"]
            out[f"{name}_variant"] = self.variants[name]
        return out

    def _wan_summary(self) -> dict:
        transformer = read_json(self.folder / "transformer" / "config.json", "the transformer config")
        vae = read_json(self.folder / "vae" / "config.json", "the VAE config")
        text = read_json(self.folder / "text_encoder" / "config.json", "the text encoder config")
        spatial, temporal = vae.get("scale_factor_spatial") or 8, vae.get("scale_factor_temporal") or 4
        height, width = self.height or 480, self.width or 832
        scheduler = self.scheduler_config()
        return {
            "model": self.model_id,
            "family": "wan",
            "folder": str(self.folder),
            "repo_id": self.repo_id,
            "revision": self.revision,
            "window_frames": self.frames,
            "window_latent_frames": (self.frames - 1) // temporal + 1,
            "height": height,
            "width": width,
            "format_from": self.format_source,
            "latent_shape": [vae.get("z_dim", 16), height // spatial, width // spatial],
            "vae_scale_factor": spatial,
            "vae_temporal_factor": temporal,
            "transformer_layers": transformer.get("num_layers"),
            "transformer_width": (transformer.get("num_attention_heads") or 0)
            * (transformer.get("attention_head_dim") or 0),
            "text_width": text.get("d_model"),
            "experts": list(self.experts),
            "boundary_ratio": self.boundary_ratio,
            "boundary_timestep": None
            if self.boundary_ratio is None
            else self.boundary_ratio * scheduler.get("num_train_timesteps", 1000),
            "scheduler": {
                "class": scheduler.get("_class_name"),
                "shift": scheduler.get("flow_shift") or scheduler.get("shift"),
                "prediction_type": scheduler.get("prediction_type", "flow_prediction"),
            },
        }

    def _unet3d_summary(self) -> dict:
        unet = read_json(self.folder / "unet" / "config.json", "the UNet config")
        vae = read_json(self.folder / "vae" / "config.json", "the VAE config")
        text = read_json(self.folder / "text_encoder" / "config.json", "the text encoder config")
        tok_config = self.folder / "tokenizer" / "tokenizer_config.json"
        tokens = read_json(tok_config, "the tokenizer config").get("model_max_length") if tok_config.exists() else None
        scheduler = read_json(self.folder / "scheduler" / "scheduler_config.json", "the scheduler config")
        factor = 2 ** (len(vae.get("block_out_channels", [1])) - 1)
        sample = unet.get("sample_size", 32)
        sample_h, sample_w = (sample, sample) if isinstance(sample, int) else sample
        height, width = self.height or sample_h * factor, self.width or sample_w * factor
        return {
            "model": self.model_id,
            "family": "unet3d",
            "folder": str(self.folder),
            "repo_id": self.repo_id,
            "revision": self.revision,
            "window_frames": self.frames,
            "height": height,
            "width": width,
            "format_from": self.format_source,
            "latent_shape": [unet.get("in_channels", 4), height // factor, width // factor],
            "vae_scale_factor": factor,
            "vae_scaling_factor": vae.get("scaling_factor"),
            "text_tokens": tokens if isinstance(tokens, int) and tokens < 10**6 else None,
            "text_width": text.get("hidden_size"),
            "scheduler": {
                k: scheduler.get(k)
                for k in (
                    "beta_schedule",
                    "beta_start",
                    "beta_end",
                    "prediction_type",
                    "steps_offset",
                    "set_alpha_to_one",
                    "timestep_spacing",
                )
            },
        }


def named_by_files(folder: Path, index: dict) -> tuple[str, str] | None:
    """(repo id, where it was read) of a known checkpoint that the folder's files name."""
    candidates = [(repo_from_cache_path(folder), "the cache folder name")]
    name_or_path = index.get("_name_or_path")
    if isinstance(name_or_path, str):
        candidates.append((name_or_path, "model_index.json"))
    for repo, where in candidates:
        if repo and repo.lower() in KNOWN_FORMATS:
            return repo.lower(), where
    card = folder / "README.md"
    if card.is_file():
        repo = named_by_card(card.read_text(encoding="utf-8", errors="replace")[:50000])
        if repo is not None:
            return repo, "the model card (README.md)"
    return None


def normalized(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def named_by_card(text: str) -> str | None:
    """The known checkpoint a model card (README.md of a `--local-dir` download) is about: its
    title names it, or else its usage code loads it (the most often)."""
    names = {normalized(repo.split("/")[1]): repo for repo in KNOWN_FORMATS}
    title = re.search(r"^#\s+(.+)$", text, flags=re.MULTILINE)
    if title and normalized(title.group(1)) in names:
        return names[normalized(title.group(1))]
    loaded = [m.lower() for m in re.findall(r"from_pretrained\(\s*[\"']([\w.-]+/[\w.-]+)[\"']", text)]
    counts = {repo: loaded.count(repo) for repo in set(loaded) if repo in KNOWN_FORMATS}
    if counts:
        best = max(counts.values())
        top = [repo for repo, n in counts.items() if n == best]
        if len(top) == 1:
            return top[0]
    return None


def native_format(
    folder: Path, typed: str, index: dict, family: str = "unet3d"
) -> tuple[NativeFormat, str, str | None]:
    """(format, where it came from, identified repo id)."""
    override = folder / FORMAT_FILE
    if override.exists():
        data = read_json(override, "vidzero's format override")
        frames, height, width = data.get("frames"), data.get("height"), data.get("width")
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < 2:
            raise BadInput(f"{override}: 'frames' must be a whole number >= 2, got {frames!r}")
        for name, value in (("height", height), ("width", width)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 8 or value % 8):
                raise BadInput(f"{override}: {name!r} must be a multiple of 8, got {value!r}")
        return NativeFormat(frames, height, width), FORMAT_FILE, None
    named = named_by_files(folder, index)
    if named is not None:
        repo, where = named
        return KNOWN_FORMATS[repo], f"{repo} (named by {where})", repo
    if typed.lower() in KNOWN_FORMATS:
        return KNOWN_FORMATS[typed.lower()], typed.lower(), typed.lower()
    if family == "wan":
        return NativeFormat(81, 480, 832), "Wan 2.1's defaults (81 frames at 832x480)", None
    return NativeFormat(DEFAULT_FRAMES), "the UNet config (window: the default 16 frames)", None


def two_experts(index: dict) -> bool:
    """A Wan 2.2 two-expert checkpoint: model_index.json names a `transformer_2`."""
    entry = index.get("transformer_2")
    return isinstance(entry, list) and None not in entry


def weight_stems(family: str, index: dict) -> dict[str, str]:
    """The weighted components of a checkpoint and their file stems (a second expert's too)."""
    stems = dict(WEIGHT_STEMS[family])
    if family == "wan" and two_experts(index):
        stems["transformer_2"] = stems["transformer"]
    return stems


def family_of(index: dict) -> str:
    """The backbone family model_index.json names: its pipeline class, else its components."""
    if index.get("_class_name", "").startswith("Wan") or "transformer" in index:
        return "wan"
    return "unet3d"


def check_index(folder: Path) -> tuple[dict, str]:
    """The parsed model_index.json and the family it names, or a clear error if this is no
    text-to-video checkpoint vidzero drives."""
    if not (folder / "model_index.json").exists():
        raise BadInput(f"{folder} is not a diffusers checkpoint (no model_index.json)")
    index = read_json(folder / "model_index.json", "the pipeline index")
    family = family_of(index)
    pipeline = index.get("_class_name", "")
    if family == "wan" and pipeline not in ("WanPipeline", ""):
        # Image-to-video, VACE and the like take inputs the text-to-video transformer has no room for.
        raise BadInput(f"{folder} is a {pipeline} checkpoint; vidzero drives Wan text-to-video (WanPipeline) ones")
    if family == "wan" and index.get("expand_timesteps"):
        # TI2V-5B: its transformer takes a timestep per token (frame 0 held clean for image-to-video)
        # and its VAE packs 2x2 patches; neither is in the frame queue's model of a window yet
        raise BadInput(
            f"{folder} is a Wan 2.2 TI2V checkpoint (expand_timesteps: a timestep per token, and a VAE of 16x16 "
            "patches); vidzero drives the text-to-video transformers of Wan 2.1 and Wan 2.2 A14B"
        )
    required = dict(REQUIRED[family])
    if family == "wan" and two_experts(index):
        required["transformer_2"] = REQUIRED["wan"]["transformer"]
        ratio = index.get("boundary_ratio")
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio < 1:
            raise BadInput(
                f"{folder} has a second expert (transformer_2) but no boundary_ratio between 0 and 1 in "
                f"model_index.json (found {ratio!r}): which steps each expert takes is undefined"
            )
    for name, classes in required.items():
        entry = index.get(name)
        found = entry[1] if isinstance(entry, list) and len(entry) == 2 else None
        # Some zeroscope siblings name the library oddly: the class counts.
        if found is None or (classes is not None and found not in classes):
            expected = " or ".join(classes) if classes else "a component"
            raise BadInput(
                f"{folder} is not a text-to-video checkpoint vidzero drives (ModelScope, zeroscope, Wan 2.1, Wan 2.2 "
                "A14B): "
                f"component {name!r} should be {expected}, found {entry}"
            )
        if not (folder / name).is_dir():
            raise BadInput(f"{folder} is incomplete: the folder {name}/ is missing")
    return index, family


def inspect_checkpoint(
    model: str,
    cache_dir: str | Path | None = None,
    revision: str | None = None,
    variant: str | None = None,
    download: bool = False,
) -> CheckpointInfo:
    folder, repo, resolved_revision = resolve_folder(model, cache_dir, revision, variant, download)
    index, family = check_index(folder)
    variants = {name: pick_variant(folder / name, stem, variant) for name, stem in weight_stems(family, index).items()}
    fmt, source, named = native_format(folder, model, index, family)
    return CheckpointInfo(
        folder,
        model,
        named or repo,
        resolved_revision,
        fmt.frames,
        fmt.height,
        fmt.width,
        source,
        variants,
        index,
        family,
    )
