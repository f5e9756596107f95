"""LoRAs loaded with diffusers' own load_lora_weights (vidzero.models.lora), on the tiny Wan model."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

import vidzero
from vidzero.app.cli import app
from vidzero.models.lora import lora_specs, parse_lora

runner = CliRunner()
RUN = {"frames": 5, "steps": 2, "resample": 0, "seed": 2, "progress": False}
ATTENTION = ("to_q", "to_k", "to_v", "to_out.0")


def lora_layers(seed: int = 0, dims: dict | None = None) -> dict[str, torch.Tensor]:
    """A LoRA of the tiny Wan transformer's attention, in diffusers' layout (peft's state dict)."""
    from peft import LoraConfig, get_peft_model_state_dict

    from vidzero.models.tiny import tiny_wan_components

    transformer = tiny_wan_components(0)["transformer"] if dims is None else dims["transformer"]
    torch.manual_seed(seed)
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=list(ATTENTION), init_lora_weights=False))
    return {k: v.contiguous() for k, v in get_peft_model_state_dict(transformer).items()}


@pytest.fixture(scope="module")
def lora_file(tmp_path_factory):
    from diffusers import WanPipeline

    folder = tmp_path_factory.mktemp("lora")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        WanPipeline.save_lora_weights(folder, transformer_lora_layers=lora_layers())
    return folder / "pytorch_lora_weights.safetensors"


def frames(run) -> np.ndarray:
    return np.stack(run.frames())


def test_specs_read_every_form():
    assert (
        parse_lora("a/b.safetensors:0.5").scale == 0.5 and str(parse_lora("a/b.safetensors").file) == "a/b.safetensors"
    )
    assert parse_lora(("x.safetensors", 2)).spec == "x.safetensors:2"
    assert lora_specs("x.safetensors") == ["x.safetensors:1"]
    assert lora_specs(("x.safetensors", 0.5)) == ["x.safetensors:0.5"]
    assert lora_specs(["x.safetensors:0.25", ("y.safetensors", 1.5)]) == ["x.safetensors:0.25", "y.safetensors:1.5"]
    assert lora_specs(None) is None and lora_specs([]) is None
    with pytest.raises(vidzero.BadInput, match="scale must be a finite number"):
        parse_lora(("x.safetensors", float("nan")))


def test_scale_zero_is_no_lora_and_a_scale_changes_the_frames(tiny_wan_dir, lora_file):
    plain = frames(vidzero.generate("a red circle", model=str(tiny_wan_dir), device="cpu", **RUN))
    zero = frames(vidzero.generate("a red circle", model=str(tiny_wan_dir), device="cpu", lora=(lora_file, 0), **RUN))
    np.testing.assert_array_equal(zero, plain)
    full = vidzero.generate("a red circle", model=str(tiny_wan_dir), device="cpu", lora=str(lora_file), **RUN)
    assert not np.array_equal(frames(full), plain)
    assert full.backbone.loras[0]["file"] == lora_file.name and full.backbone.loras[0]["scale"] == 1.0


def test_the_original_wan_key_format_loads_through_diffusers_converter(tiny_wan_dir, lora_file, tmp_path):
    """The same LoRA written with the original Wan key names (diffusion_model.blocks.N.self_attn.q...)
    makes the same frames as in diffusers' format."""
    from safetensors.torch import load_file

    names = {"attn1": "self_attn", "attn2": "cross_attn", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "o"}
    original = {}
    for key, value in load_file(lora_file).items():
        parts = key.removeprefix("transformer.")
        for ours, theirs in names.items():
            parts = parts.replace(f".{ours}.", f".{theirs}.")
        original[f"diffusion_model.{parts}"] = value
    other = tmp_path / "wan_original.safetensors"
    save_file(original, other)
    ours = frames(vidzero.generate("a red circle", model=str(tiny_wan_dir), device="cpu", lora=lora_file, **RUN))
    theirs = frames(vidzero.generate("a red circle", model=str(tiny_wan_dir), device="cpu", lora=other, **RUN))
    np.testing.assert_array_equal(theirs, ours)


def test_the_manifest_records_each_lora_and_a_changed_file_is_another_run(tiny_wan_dir, lora_file, tmp_path):
    out = tmp_path / "o.mp4"
    args = ["generate", "a red circle", "-o", str(out), "--model", str(tiny_wan_dir), "--frames", "5"]
    args += ["--steps", "1", "--lora", f"{lora_file}:0.5", "--quiet"]
    assert runner.invoke(app, args).exit_code == 0
    manifest = json.loads((tmp_path / "o.mp4.manifest.json").read_text())
    from vidzero.media.outputs import sha256_of

    assert manifest["model"]["loras"] == [
        {"file": lora_file.name, "sha256": sha256_of(lora_file), "scale": 0.5, "into": "transformer"}
    ]
    assert manifest["spec"]["options"]["lora"] == [f"{lora_file}:0.5"]
    run = vidzero.generate("a red circle", model=str(tiny_wan_dir), device="cpu", lora=(lora_file, 0.5), **RUN)
    changed = tmp_path / "changed.safetensors"
    from safetensors.torch import load_file

    save_file({k: v * 2 for k, v in load_file(lora_file).items()}, changed)
    other = vidzero.generate("a red circle", model=str(tiny_wan_dir), device="cpu", lora=(changed, 0.5), **RUN)
    assert run.fingerprint() != other.fingerprint()


def test_loras_that_do_not_fit_are_one_line(tiny_wan_dir, tiny_model_dir, lora_file, tmp_path):
    from vidzero.models.tiny import tiny_wan_transformer

    wide = {"transformer": tiny_wan_transformer(attention_head_dim=16)}  # its LoRA's matrices fit no layer
    other = tmp_path / "other.safetensors"
    save_file({f"transformer.{k}": v for k, v in lora_layers(dims=wide).items()}, other)
    nothing = tmp_path / "nothing.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, nothing)
    (tmp_path / "notes.txt").write_text("hello")
    base = ["generate", "x", "-o", str(tmp_path / "o.mp4"), "--frames", "5", "--steps", "1", "--quiet"]
    cases = [
        (["--model", str(tiny_wan_dir), "--lora", str(other)], "is no LoRA for this model's transformer"),
        (["--model", str(tiny_wan_dir), "--lora", str(nothing)], "is no LoRA for this model's transformer"),
        (["--model", str(tiny_wan_dir), "--lora", str(tmp_path / "notes.txt")], "not a .safetensors LoRA file"),
        (["--model", str(tiny_wan_dir), "--lora", str(tmp_path / "missing.safetensors")], "not found"),
        (["--model", str(tiny_wan_dir), "--lora", f"{lora_file}:abc"], "not found"),  # ':abc' is part of the name
        (["--model", str(tiny_wan_dir), "--lora-2", str(lora_file)], "this checkpoint has one transformer"),
        (["--model", str(tiny_model_dir), "--lora", str(lora_file)], "UNet3DConditionModel"),
    ]
    for extra, message in cases:
        res = runner.invoke(app, [*base, *extra])
        lines = [line for line in res.output.splitlines() if line.strip()]
        assert res.exit_code == 2 and len(lines) == 1 and message in lines[0], (extra, res.output)
        assert not (tmp_path / "o.mp4").exists()
