"""The option table: every option of a generating run, defined once, checked once.

`RunOptions` is the table. Each field is one option with its type, its default and its help
text; the CLI makes its flags from the fields, the batch job schema accepts their names, the
Python API's keyword parameters carry the same names (a test holds the three to the table), and
`check` validates every value in one place, so a bad value gets the same message everywhere,
naming `steps` in Python and `--steps` on the command line.

Sampler fields left unset (None) come from the preset. Presets name a trade-off between cost and
fidelity (docs/benchmarks.md); `paper` is TI2V-Zero's release exactly.

Over 400 lines because the table is one dataclass of every option with its help text, the presets
and the checks of each value: declared once, here, for every face.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from vidzero.core.choices import (
    INITS,
    KNOWN_NOISE,
    QUEUES,
    RELEASE_GUIDANCE,
    RELEASE_INIT,
    RELEASE_QUEUE,
    RELEASE_RESAMPLE,
    RELEASE_STEPS,
    TARGET_FRAMES,
    TARGETS,
)
from vidzero.errors import BadInput
from vidzero.media.outputs import DEFAULT_FPS
from vidzero.models.checkpoint import LoadOptions

MAX_SEED = 2**63 - 1
MIN_FPS, MAX_FPS = 0.1, 1000.0  # what the containers keep exactly (a .gif: see media.video.MAX_GIF_FPS)
OFFLOADS = ("none", "model", "sequential")
OUTPUT_TYPES = ("uint8", "float", "pil", "latent")
CODECS = {".mp4": ("h264", "hevc"), ".webm": ("vp9", "av1"), ".gif": ("gif",)}
GROUPS = ("model", "sampler", "output", "python")

# name -> sampler settings. "paper" is the TI2V-Zero release exactly; "faithful", the default, keeps
# the user's image best on the fidelity bench (docs/fidelity.md): no resampling, the latent queue,
# a low guidance scale and the moving target, at a fifth of the paper's model work.
WINDOWS = {"steps": RELEASE_STEPS, "init": RELEASE_INIT, "new_per_window": 1}  # the same in every preset
NO_TARGET = {"target": "off"}
PRESETS: dict[str, dict[str, Any]] = {
    # the moving target in the window (held through the last 40 % of the steps: 6-9 of 10) and in
    # the queue (docs/fidelity.md)
    "faithful": {
        **WINDOWS,
        "resample": 0,
        "queue": "latent",
        "guidance": 2.0,
        "target": "auto",
    },
    "paper": {
        **WINDOWS,
        **NO_TARGET,
        "resample": RELEASE_RESAMPLE,
        "queue": RELEASE_QUEUE,
        "guidance": RELEASE_GUIDANCE,
    },
    "quality": {**WINDOWS, **NO_TARGET, "resample": RELEASE_RESAMPLE, "queue": "latent", "guidance": RELEASE_GUIDANCE},
    "fast": {**WINDOWS, **NO_TARGET, "resample": 0, "queue": "latent", "guidance": RELEASE_GUIDANCE},
    # step-distilled checkpoints and LoRAs (Wan's "Lightning" / LightX2V ones): their published
    # settings, 4 steps with no classifier-free guidance
    "distilled": {**WINDOWS, **NO_TARGET, "steps": 4, "resample": 0, "queue": "latent", "guidance": 1.0},
}
DEFAULT_PRESET = "faithful"
# Options that do not decide a run's frames: not part of its record or fingerprint.
NOT_RECORDED = ("callback", "progress", "output_type")
LOAD = LoadOptions()  # the loading defaults


def opt(default: Any, help: str, group: str, *, cli: bool = True, metavar: str | None = None) -> Any:
    """A field of the table: its default and help text, its group, whether the CLI shows it
    (`cli=False`: Python objects such as callbacks)."""
    return field(default=default, metadata={"help": help, "group": group, "cli": cli, "metavar": metavar})


@dataclass(frozen=True)
class RunOptions:
    """Options every generating task takes. Unset sampler options (None) come from the preset."""

    # ---- the checkpoint and how to load it (defaults: LoadOptions', defined there once)
    model: str = opt(
        LOAD.model, "Checkpoint: 'shapes' (embedded), a diffusers folder, or a hub id in the local cache.", "model"
    )
    device: str = opt(LOAD.device, "cpu, cuda, cuda:N or auto.", "model")
    dtype: str | None = opt(
        LOAD.dtype, "UNet/text-encoder precision: fp32, fp16, bf16 (default: fp16 on CUDA, fp32 on the CPU).", "model"
    )
    variant: str | None = opt(LOAD.variant, "Weight file variant, e.g. fp16 (default: found from the files).", "model")
    revision: str | None = opt(LOAD.revision, "Hub revision (branch, tag or commit) in the cache.", "model")
    cache_dir: Path | None = opt(LOAD.cache_dir, "Hugging Face cache folder (default: the usual one).", "model")
    download: bool = opt(
        LOAD.download, "Download a hub checkpoint that is not in the cache (needs a network).", "model"
    )
    offload: str = opt(
        LOAD.offload, "Keep weights on the CPU between uses: none, model (whole components) or sequential.", "model"
    )
    vae_tiling: bool = opt(LOAD.vae_tiling, "Decode and encode in tiles (large frames on small GPUs).", "model")
    attention_slicing: bool = opt(
        LOAD.attention_slicing, "Compute attention in slices (less memory, a little slower).", "model"
    )
    forward_chunking: int | None = opt(
        LOAD.forward_chunking, "Run the UNet's feed-forward layers N tokens at a time.", "model", metavar="N"
    )
    compile: bool = opt(LOAD.compile, "torch.compile the denoiser (slow first window, faster after).", "model")
    vae_slice: int = opt(LOAD.vae_slice, "Frames per VAE call (less memory with fewer).", "model", metavar="N")
    window: int | None = opt(
        LOAD.window, "Frames per window (default: the checkpoint's native length, e.g. 16, 24 for zeroscope).", "model"
    )
    height: int | None = opt(LOAD.height, "Frame height in pixels (default: the checkpoint's).", "model")
    width: int | None = opt(LOAD.width, "Frame width in pixels (default: the checkpoint's).", "model")
    lora: list[str] | None = opt(
        LOAD.lora,
        "A LoRA to load into the denoiser (diffusers' format or the original Wan ones), weighted by SCALE "
        "(default 1). Repeatable.",
        "model",
        metavar="FILE[:SCALE]",
    )
    lora_2: list[str] | None = opt(
        LOAD.lora_2,
        "A LoRA for the second expert of a Wan 2.2 checkpoint. Repeatable.",
        "model",
        metavar="FILE[:SCALE]",
    )
    cache: str = opt(
        LOAD.cache,
        "diffusers' cache hooks on the denoiser (Wan): none, first-block[:THRESHOLD], pab or faster; faster "
        "needs guided steps.",
        "model",
    )
    # ---- the sampler
    preset: str | None = opt(
        None,
        "Sampler preset: faithful (default), paper (the release exactly), quality, fast, or distilled (4 steps, "
        "no guidance: step-distilled LoRAs); options given win.",
        "sampler",
    )
    steps: int | None = opt(None, "Denoising steps per window (num_inference_steps).", "sampler")
    resample: int | None = opt(None, "Resampling iterations U per step.", "sampler")
    resample_steps: int | None = opt(None, "Resample only in the first N steps (default: all).", "sampler", metavar="N")
    guidance: float | None = opt(
        None, "Classifier-free guidance scale w (guidance_scale; default: the preset's).", "sampler"
    )
    guidance_2: float | None = opt(
        None,
        "Guidance scale of a second expert's steps (Wan 2.2's low-noise ones; guidance_scale_2; default: guidance).",
        "sampler",
    )
    guidance_steps: str | None = opt(
        None, "A:B: guidance only in steps A..B-1 (the conditional branch alone elsewhere).", "sampler", metavar="A:B"
    )
    eta: float = opt(0.0, "DDIM eta (0: deterministic DDIM).", "sampler")
    init: str | None = opt(
        None,
        "New-slot init: 'inversion' (DDPM inversion of the nearest known frame), 'random', or 'lowpass' "
        "(inversion's low spatial frequencies, noise's high ones).",
        "sampler",
    )
    replace_steps: int | None = opt(
        None, "Replace known slots in the first N steps only; then the window refines together.", "sampler", metavar="N"
    )
    rectify: float = opt(
        0.0, "Noise rectification weight: the model's error on known slots taken off new slots (0: off).", "sampler"
    )
    given_start: int = opt(
        0, "Windows that generate next to a frame the user gave start at step N (SDEdit-like).", "sampler", metavar="N"
    )
    reconstruction: float = opt(
        0.0,
        "Reconstruction guidance weight w_r (Ho et al.): new frames pulled toward what explains the known ones, "
        "through the model (a gradient per step; 0: off).",
        "sampler",
    )
    dps: float = opt(
        0.0, "DPS step size: the normalised form of reconstruction guidance (Chung et al.; 0: off).", "sampler"
    )
    posterior_steps: str | None = opt(
        None, "A:B: reconstruction guidance and DPS in steps A..B-1 only (default: all).", "sampler", metavar="A:B"
    )
    generated_weight: float = opt(
        1.0,
        "Weight of generated frames in the queue in the guidance's error (the frames you gave weigh 1).",
        "sampler",
    )
    known_noise: str = opt(
        "fresh",
        "Known slots' noise at each step: 'fresh' (the paper), 'model' (x0 replacement: the model's own noise "
        "estimate) or 'ding' (DING's closed-form posterior).",
        "sampler",
    )
    patch_swap: float = opt(
        0.0,
        "Share of a new frame's latent patches taken from the known frame at each step (FlexTI2V; 0: off).",
        "sampler",
    )
    target: str | None = opt(
        None,
        "Moving target: the user's image moved along the motion the video makes, held in each window on a "
        "second clock ('window'), read by later windows instead of the model's drawing ('queue'), 'both', 'off', "
        "or 'auto' (the faithful preset's: both where the backbone has a latent frame per video frame, else off).",
        "sampler",
    )
    target_steps: str | None = opt(
        None,
        "A:B: the window holds the moving target in steps A..B-1, built from step A-1's estimate (default: the "
        "last 40 % of the steps, 6:10 of 10; a path's, every step).",
        "sampler",
        metavar="A:B",
    )
    target_frames: str = opt(
        "model", "Frames written with a moving target: the model's (harmonised) or the targets.", "sampler"
    )
    new_per_window: int | None = opt(
        None, "Frames generated per sampling run (1: the paper's; k: k times fewer UNet calls).", "sampler"
    )
    queue: str | None = opt(
        None, "Generated frames condition later windows as 'pixel' (decode, re-encode) or 'latent'.", "sampler"
    )
    seed: int = opt(0, "Run seed; every window's seed derives from it (recorded in the manifest).", "sampler")
    negative_prompt: str = opt(
        "", "Negative prompt (the unconditional branch); default empty, as the release.", "sampler"
    )
    # ---- the output
    fps: float = opt(DEFAULT_FPS, "Frame rate of the output.", "output")
    deflicker: bool = opt(False, "Deflicker the frames before writing (known frames are kept as anchors).", "output")
    codec: str | None = opt(None, "Video codec: h264 or hevc (.mp4), vp9 or av1 (.webm).", "output")
    crf: int | None = opt(
        None, "Video quality, lower is better (x264/x265 0-51, default 16; vp9/av1 0-63, default 26).", "output"
    )
    # ---- Python only
    callback: Callable[..., object] | None = opt(
        None, "Called after every step with a StepInfo; return False to stop the run.", "python", cli=False
    )
    output_type: str = opt(
        "uint8", "What frame.image holds when iterating: uint8, float, pil or latent.", "python", cli=False
    )
    progress: Any = opt(
        True, "Show progress bars (True), nothing (False), or an object with job/step methods.", "python", cli=False
    )

    # ------------------------------------------------------------------ building
    @classmethod
    def given(cls, values: Mapping[str, Any]) -> RunOptions:
        """The options named in `values` that are not None; every other one at its default."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise BadInput(f"unknown option {unknown[0]!r}")
        return cls(**{k: v for k, v in values.items() if v is not None})

    def resolved(self) -> RunOptions:
        """A copy with the preset's values in the sampler options left unset."""
        preset = self.preset or DEFAULT_PRESET
        if preset not in PRESETS:
            raise BadInput(f"unknown {{option}} {preset!r} (use {', '.join(PRESETS)})", "preset")
        values = {k: v for k, v in PRESETS[preset].items() if getattr(self, k) is None}
        return dataclasses.replace(self, preset=preset, **values)

    def check(self) -> RunOptions:
        """Validate every value; return the resolved options. Raises BadInput naming the option."""
        from vidzero.models.lora import lora_specs

        o = self.resolved()
        o = dataclasses.replace(o, lora=lora_specs(o.lora, "lora"), lora_2=lora_specs(o.lora_2, "lora_2"))
        steps = integer(o.steps, "steps", 1, 1000)
        integer(o.resample, "resample", 0, 100)
        number(o.guidance, "guidance", 0, 100)
        if o.guidance_2 is not None:
            number(o.guidance_2, "guidance_2", 0, 100)
        number(o.eta, "eta", 0, 1)
        integer(o.seed, "seed", 0, MAX_SEED)
        integer(o.new_per_window, "new_per_window", 1, 4096)
        number(o.fps, "fps", MIN_FPS, MAX_FPS)
        for name in ("window", "height", "width"):
            if getattr(o, name) is not None:
                integer(getattr(o, name), name, 2, 8192)
        integer(o.vae_slice, "vae_slice", 1, 4096)
        for name in ("resample_steps", "replace_steps"):
            if getattr(o, name) is not None:
                integer(getattr(o, name), name, 0, 1000)
        integer(o.given_start, "given_start", 0, 1000)
        if o.given_start >= steps:
            raise BadInput(f"{{option}} must be below steps ({steps}), got {o.given_start}", "given_start")
        number(o.rectify, "rectify", 0, 10)
        number(o.reconstruction, "reconstruction", 0, 1000)
        number(o.dps, "dps", 0, 1000)
        number(o.generated_weight, "generated_weight", 0, 1)
        number(o.patch_swap, "patch_swap", 0, 1)
        choice(o.known_noise, "known_noise", KNOWN_NOISE)
        for name in ("guidance_steps", "posterior_steps", "target_steps"):
            if getattr(o, name) is not None:
                step_range(getattr(o, name), name, steps)
        choice(o.target, "target", TARGETS)
        choice(o.target_frames, "target_frames", TARGET_FRAMES)
        if o.forward_chunking is not None:
            integer(o.forward_chunking, "forward_chunking", 1, 4096)
        if o.crf is not None:
            integer(o.crf, "crf", 0, 63)
        choice(o.init, "init", INITS)
        choice(o.queue, "queue", QUEUES)
        choice(o.offload, "offload", OFFLOADS)
        choice(o.output_type, "output_type", OUTPUT_TYPES)
        text(o.negative_prompt, "negative_prompt")
        if o.codec is not None:
            choice(o.codec, "codec", sorted({c for codecs in CODECS.values() for c in codecs}))
        if o.callback is not None and not callable(o.callback):
            raise BadInput("{option} must be callable", "callback")
        return o

    def load_options(self) -> LoadOptions:
        """The model group, as `load_backbone` takes it."""
        return LoadOptions(**{name: getattr(self, name) for name in LOAD_OPTIONS})

    def record(self) -> dict[str, Any]:
        """The options that decide a run's frames and file, JSON-ready (the manifest's and state's)."""
        return {
            f.name: (str(v) if isinstance(v := getattr(self, f.name), Path) else v)
            for f in fields(self)
            if f.name not in NOT_RECORDED
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> RunOptions:
        """Options read back from a record; names this version does not know are refused."""
        names = {f.name for f in fields(cls)} - set(NOT_RECORDED)
        unknown = sorted(set(record) - names)
        if unknown:
            raise BadInput(f"the run record holds an option this vidzero does not know: {unknown[0]!r}")
        values = dict(record)
        if values.get("cache_dir") is not None:
            values["cache_dir"] = Path(values["cache_dir"])
        return cls(**values)

    def guidance_range(self) -> tuple[int, int] | None:
        return None if self.guidance_steps is None else step_range(self.guidance_steps, "guidance_steps", 10**6)

    def posterior_range(self) -> tuple[int, int] | None:
        return None if self.posterior_steps is None else step_range(self.posterior_steps, "posterior_steps", 10**6)

    def target_range(self) -> tuple[int, int] | None:
        return None if self.target_steps is None else step_range(self.target_steps, "target_steps", 10**6)


def option_fields(group: str | None = None, cli: bool | None = None) -> list[dataclasses.Field[Any]]:
    """The table's fields, optionally one group's, or those the CLI shows."""
    return [
        f
        for f in fields(RunOptions)
        if (group is None or f.metadata["group"] == group) and (cli is None or f.metadata["cli"] == cli)
    ]


LOAD_OPTIONS = tuple(f.name for f in option_fields("model"))  # = LoadOptions' fields (tested)


# ---------------------------------------------------------------------- value checks
def integer(value: Any, option: str, low: int, high: int) -> int:
    """An int in [low, high]; bools, floats and strings are refused (no silent rounding)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{{option}} must be a whole number, got {value!r}", option)
    if not low <= value <= high:
        raise BadInput(f"{{option}} must be between {low} and {high}, got {value}", option)
    return value


def number(value: Any, option: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadInput(f"{{option}} must be a finite number, got {value!r}", option)
    if not low <= value <= high:
        raise BadInput(f"{{option}} must be in [{low:g}, {high:g}], got {value:g}", option)
    return float(value)


def choice(value: Any, option: str, allowed: tuple[str, ...] | list[str]) -> str:
    if value not in allowed:
        raise BadInput(f"unknown {{option}} {value!r} (use {', '.join(allowed)})", option)
    return str(value)


def text(value: Any, option: str) -> str:
    """A str that is valid Unicode (command-line bytes that are not UTF-8 arrive as surrogates)."""
    if not isinstance(value, str):
        raise BadInput(f"{{option}} must be text, got {type(value).__name__}", option)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput("{option} is not valid UTF-8 text", option) from None
    return value


def step_range(value: Any, option: str, steps: int) -> tuple[int, int]:
    """'A:B' with 0 <= A < B <= steps, as (A, B)."""
    parts = value.split(":") if isinstance(value, str) else []
    if len(parts) != 2 or not all(re.fullmatch(r"\s*[0-9]+\s*", p) for p in parts):
        raise BadInput(f"{{option}} {value!r} should look like A:B (step numbers)", option)
    a, b = (int(p) for p in parts)
    if not 0 <= a < b <= steps:
        raise BadInput(f"{{option}} {value!r} must satisfy 0 <= A < B <= steps ({steps})", option)
    return a, b


def frame_count(value: Any, option: str = "frames", low: int = 1, high: int = 100_000) -> int:
    """A number of frames: None is handled by the caller (the default); 0 is never "default"."""
    return integer(value, option, low, high)
