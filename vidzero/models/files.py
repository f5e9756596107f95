"""Reading a checkpoint's files without loading a weight: JSON configs, safetensors headers,
which weight variant each component has."""

from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path

from vidzero.errors import BadInput
from vidzero.media.outputs import check_input_file

WEIGHT_SUFFIXES = (".safetensors", ".bin")


def read_json(path: Path, what: str) -> dict:
    """A JSON object from `path`, or a one-line error naming it."""
    if path.exists() or path.is_symlink():
        check_input_file(path, what)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"{path.parent} is incomplete: {path.name} ({what}) is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        reason = "nested too deep" if isinstance(exc, RecursionError) else type(exc).__name__
        raise BadInput(f"{path} ({what}) is not valid JSON: {reason}") from None
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
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
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
