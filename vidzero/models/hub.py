"""Finding a checkpoint's folder: the embedded model's short name, a folder, or a hub id in the
local Hugging Face cache (downloaded only on request); and the known checkpoint a folder's own
files name (cache folder, model_index.json, model card)."""

from __future__ import annotations

import re
from pathlib import Path

from vidzero.errors import BadInput, shown

EMBEDDED_MODEL_DIR = Path(__file__).parents[1] / "shapes" / "model"
SHORT_NAMES = {"shapes": EMBEDDED_MODEL_DIR}


def resolve_folder(
    model: str, cache_dir: str | Path | None, revision: str | None, variant: str | None, download: bool
) -> tuple[Path, str | None, str | None]:
    """(folder, repo id, revision) for a short name, a folder or a hub id; never touches the
    network unless `download`."""
    if model in SHORT_NAMES:
        return SHORT_NAMES[model], None, None
    path = Path(model).expanduser()
    try:
        exists = path.exists()
    except OSError as exc:  # a name no file system holds (too long, say)
        raise BadInput(f"{{option}} {shown(model)}: {exc.strerror or 'not a usable path'}", "model") from None
    if exists:
        if not path.is_dir():
            raise BadInput(
                f"{{option}} {model!r} is a file; expected a diffusers checkpoint folder or a hub id", "model"
            )
        return path, repo_from_cache_path(path), None
    if model.count("/") != 1 or model.startswith(("/", ".", "~")) or not re.fullmatch(r"[\w.-]+/[\w.-]+", model):
        raise BadInput(f"{{option}} {shown(model)}: no such folder, and not a hub id of the form ORG/NAME", "model")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = snapshot_download(model, revision=revision, cache_dir=cache_dir, local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        if not download:
            raise BadInput(
                f"{{option}} {model!r} is not in the local Hugging Face cache: fetch it with `hf download {model}` "
                "(or {+download} on a connected machine)",
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
