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

import json
import math
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from vidzero.errors import BadInput
from vidzero.media.outputs import check_input_file

EMBEDDED_MODEL_DIR = Path(__file__).parents[1] / "shapes" / "model"
SHORT_NAMES = {"shapes": EMBEDDED_MODEL_DIR}
DEFAULT_MODEL = "shapes"
DEFAULT_FRAMES = 16
FORMAT_FILE = "vidzero.json"


@dataclass(frozen=True)
class NativeFormat:
    frames: int
    height: int | None = None
    width: int | None = None


# Checkpoints whose configs do not say their training window and size (zeroscope's sample_size
# does not match its training resolution); keys are lower-case repo ids.
KNOWN_FORMATS: dict[str, NativeFormat] = {
    "damo-vilab/text-to-video-ms-1.7b": NativeFormat(16, 256, 256),
    "ali-vilab/text-to-video-ms-1.7b": NativeFormat(16, 256, 256),
    "cerspense/zeroscope_v2_576w": NativeFormat(24, 320, 576),
    "cerspense/zeroscope_v2_xl": NativeFormat(24, 576, 1024),
}
REQUIRED = {
    "unet": "UNet3DConditionModel",
    "vae": "AutoencoderKL",
    "text_encoder": "CLIPTextModel",
    "tokenizer": "CLIPTokenizer",
    "scheduler": "DDIMScheduler",
}
WEIGHT_STEMS = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "text_encoder": "model"}
WEIGHT_SUFFIXES = (".safetensors", ".bin")


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

    def summary(self) -> dict:
        """Components, parameter counts, weight dtypes and sizes, native format: from configs
        and safetensors headers, no weights loaded."""
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
        out = {
            "model": self.model_id,
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
        for name in WEIGHT_STEMS:
            stats = weight_stats(self.folder / name, WEIGHT_STEMS[name], self.variants[name])
            out[f"{name}_parameters"] = stats["parameters"]
            out[f"{name}_weights"] = stats["dtypes"]
            out[f"{name}_variant"] = self.variants[name]
        return out


# ---------------------------------------------------------------------- reading files
def read_json(path: Path, what: str) -> dict:
    """A JSON object from `path`, or a one-line error naming it."""
    if path.exists() or path.is_symlink():
        check_input_file(path, what)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"{path.parent} is incomplete: {path.name} ({what}) is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"{path} ({what}) is not valid JSON: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path} ({what}) must hold a JSON object, not {type(data).__name__}")
    return data


def safetensors_header(path: Path) -> dict:
    """The JSON header of a safetensors file: tensor names -> dtype, shape, offsets."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise BadInput(f"{path} is not a safetensors file (truncated)")
        (length,) = struct.unpack("<Q", raw)
        if length > 100_000_000:
            raise BadInput(f"{path} is not a safetensors file (header of {length} bytes)")
        try:
            return json.loads(f.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadInput(f"{path} is not a safetensors file (bad header)") from None


def weight_files(component: Path, stem: str, variant: str | None) -> list[Path]:
    """The weight files of a component for a variant (sharded files through their index)."""
    for suffix in WEIGHT_SUFFIXES:
        name = f"{stem}.{variant}{suffix}" if variant else f"{stem}{suffix}"
        if (component / name).is_file():
            return [component / name]
        index_name = f"{stem}{suffix}.index.{variant}.json" if variant else f"{stem}{suffix}.index.json"
        if (component / index_name).is_file():
            weight_map = read_json(component / index_name, "a weight index").get("weight_map", {})
            return sorted({component / f for f in weight_map.values()})
    return []


def available_variants(component: Path, stem: str) -> list[str | None]:
    found: set[str | None] = set()
    if not component.is_dir():
        return []
    pattern = re.compile(rf"^{re.escape(stem)}(?:\.(?P<v>[A-Za-z0-9_-]+))?\.(?:safetensors|bin)$")
    index = re.compile(rf"^{re.escape(stem)}\.(?:safetensors|bin)\.index(?:\.(?P<v>[A-Za-z0-9_-]+))?\.json$")
    for path in component.iterdir():
        m = pattern.match(path.name) or index.match(path.name)
        if m:
            found.add(m.group("v"))
    return sorted(found, key=lambda v: (v is not None, v or ""))


def pick_variant(component: Path, stem: str, requested: str | None) -> str | None:
    """The requested variant if the files exist; else the plain weights; else the only (or the
    fp16) variant present: a folder holding only fp16 weights loads without being told."""
    found = available_variants(component, stem)
    if requested is not None:
        if requested not in found:
            have = ", ".join(v or "(plain)" for v in found) or "none"
            raise BadInput(f"{component} has no {requested!r} weights (found: {have})", "variant")
        return requested
    if None in found:
        return None
    if not found:
        raise BadInput(f"{component} holds no weight files ({stem}.safetensors or .bin)")
    return "fp16" if "fp16" in found else found[0]


def weight_stats(component: Path, stem: str, variant: str | None) -> dict:
    params, dtypes = 0, set()
    files = weight_files(component, stem, variant)
    if not files or any(f.suffix != ".safetensors" for f in files):
        return {"parameters": None, "dtypes": ["(pickle weights: counted only when loaded)"] if files else []}
    for f in files:
        if not f.is_file():
            raise BadInput(f"{component} is incomplete: {f.name} is missing")
        for name, entry in safetensors_header(f).items():
            if name == "__metadata__" or not isinstance(entry, dict):
                continue
            params += math.prod(entry.get("shape", []))
            dtypes.add(str(entry.get("dtype")))
    return {"parameters": params, "dtypes": sorted(dtypes)}


# ---------------------------------------------------------------------- finding the folder
def resolve_folder(
    model: str, cache_dir: str | Path | None, revision: str | None, variant: str | None, download: bool
) -> tuple[Path, str | None, str | None]:
    """(folder, repo id, revision) for a short name, a folder or a hub id; never touches the
    network unless `download`."""
    if model in SHORT_NAMES:
        return SHORT_NAMES[model], None, None
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise BadInput(
                f"{{option}} {model!r} is a file; expected a diffusers checkpoint folder or a hub id", "model"
            )
        return path, repo_from_cache_path(path), None
    if model.count("/") != 1 or model.startswith(("/", ".", "~")) or not re.fullmatch(r"[\w.-]+/[\w.-]+", model):
        raise BadInput(f"{{option}} {model!r}: no such folder, and not a hub id of the form ORG/NAME", "model")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = snapshot_download(model, revision=revision, cache_dir=cache_dir, local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        if not download:
            raise BadInput(
                f"{{option}} {model!r} is not in the local Hugging Face cache: fetch it with `hf download {model}` "
                "(or add --download on a connected machine)",
                "model",
            ) from None
        weights = [f"*.{variant}.safetensors"] if variant else ["*.safetensors"]
        try:
            folder = snapshot_download(
                model, revision=revision, cache_dir=cache_dir, allow_patterns=["*.json", "*.txt", "*.md", *weights]
            )
        except (HfHubHTTPError, OSError, ValueError) as exc:
            raise BadInput(
                f"could not download {model!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from None
    folder = Path(folder)
    return folder, model, folder.name if re.fullmatch(r"[0-9a-f]{40}", folder.name) else revision


def repo_from_cache_path(folder: Path) -> str | None:
    """A hub cache snapshot (`.../models--ORG--NAME/snapshots/REV`) names its repo."""
    for part in folder.resolve().parts:
        if part.startswith("models--") and part.count("--") >= 2:
            return part.removeprefix("models--").replace("--", "/", 1)
    return None


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


def native_format(folder: Path, typed: str, index: dict) -> tuple[NativeFormat, str, str | None]:
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
    return NativeFormat(DEFAULT_FRAMES), "the UNet config (window: the default 16 frames)", None


def check_index(folder: Path) -> dict:
    """The parsed model_index.json, or a clear error if this is no diffusers T2V checkpoint."""
    if not (folder / "model_index.json").exists():
        raise BadInput(f"{folder} is not a diffusers checkpoint (no model_index.json)")
    index = read_json(folder / "model_index.json", "the pipeline index")
    for name, cls in REQUIRED.items():
        entry = index.get(name)
        found = entry[1] if isinstance(entry, list) and len(entry) == 2 else None
        # Some zeroscope siblings name the library oddly: the class counts. Any scheduler config
        # is driven as DDIM, and a fast tokenizer reads the same files.
        ok = found == cls or (name == "tokenizer" and found == "CLIPTokenizerFast") or (name == "scheduler" and found)
        if not ok:
            raise BadInput(
                f"{folder} is not a text-to-video checkpoint: component {name!r} should be {cls}, found {entry}"
            )
        if not (folder / name).is_dir():
            raise BadInput(f"{folder} is incomplete: the folder {name}/ is missing")
    return index


def inspect_checkpoint(
    model: str,
    cache_dir: str | Path | None = None,
    revision: str | None = None,
    variant: str | None = None,
    download: bool = False,
) -> CheckpointInfo:
    folder, repo, resolved_revision = resolve_folder(model, cache_dir, revision, variant, download)
    index = check_index(folder)
    variants = {name: pick_variant(folder / name, stem, variant) for name, stem in WEIGHT_STEMS.items()}
    fmt, source, named = native_format(folder, model, index)
    return CheckpointInfo(
        folder, model, named or repo, resolved_revision, fmt.frames, fmt.height, fmt.width, source, variants, index
    )
