"""Every option of a run, defined once, checked once, shared by the Python API and the CLI.

`RunOptions` holds the options all generating tasks take: which checkpoint and how to load it,
the sampler, the output. The Python tasks take them as explicit keyword arguments (their
signatures and docstrings are built from this class by `takes_run_options`), the CLI builds its
flags from the same fields, and both call `RunOptions.check`, so a bad value gets the same
message everywhere, naming `steps` in Python and `--steps` on the command line.

Presets name a trade-off between cost and fidelity (docs/benchmarks.md): they fill the sampler
options the caller left unset.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from vidzero.errors import BadInput

MAX_SEED = 2**63 - 1
QUEUES = ("pixel", "latent")
INITS = ("inversion", "random")
OFFLOADS = ("none", "model", "sequential")
CODECS = {".mp4": ("h264", "hevc"), ".webm": ("vp9", "av1"), ".gif": ("gif",)}

# name -> sampler settings; "paper" is the TI2V-Zero release exactly.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "steps": 10,
        "resample": 4,
        "init": "inversion",
        "queue": "pixel",
        "new_per_window": 1,
        "guidance_passes": "all",
    },
    "quality": {
        "steps": 10,
        "resample": 4,
        "init": "inversion",
        "queue": "latent",
        "new_per_window": 1,
        "guidance_passes": "all",
    },
    "fast": {
        "steps": 10,
        "resample": 0,
        "init": "inversion",
        "queue": "latent",
        "new_per_window": 1,
        "guidance_passes": "all",
    },
}
DEFAULT_PRESET = "paper"
GUIDANCE_PASSES = ("all", "first")  # full guidance in every pass of a step, or the first pass's uncond reused


def opt(default: Any, help: str, *, cli: bool = True, python: bool = True, metavar: str | None = None) -> Any:
    """A dataclass field with its help text; `cli=False` hides it from the command line (Python
    objects such as callbacks), `python=False` from the Python signature."""
    return field(default=default, metadata={"help": help, "cli": cli, "python": python, "metavar": metavar})


@dataclass
class RunOptions:
    """Options every generating task takes. Unset sampler options (None) come from the preset."""

    # ---- the checkpoint and how to load it
    model: str = opt("shapes", "Checkpoint: 'shapes' (embedded), a diffusers folder, or a hub id in the local cache.")
    device: str = opt("auto", "cpu, cuda, cuda:N or auto.")
    dtype: Any = opt(None, "UNet/text-encoder precision: fp32, fp16, bf16 (default: fp16 on CUDA, fp32 on the CPU).")
    variant: str | None = opt(None, "Weight file variant, e.g. fp16 (default: found from the files).")
    revision: str | None = opt(None, "Hub revision (branch, tag or commit) in the cache.")
    cache_dir: Path | None = opt(None, "Hugging Face cache folder (default: the usual one).")
    download: bool = opt(False, "Download a hub checkpoint that is not in the cache (needs a network).")
    offload: str = opt("none", "Keep weights on the CPU between uses: none, model (whole components) or sequential.")
    vae_tiling: bool = opt(False, "Decode and encode in tiles (large frames on small GPUs).")
    attention_slicing: bool = opt(False, "Compute attention in slices (less memory, a little slower).")
    forward_chunking: int | None = opt(None, "Run the UNet's feed-forward layers N tokens at a time.", metavar="N")
    compile: bool = opt(False, "torch.compile the UNet (slow first window, faster after).")
    vae_slice: int = opt(8, "Frames per VAE call (less memory with fewer).", metavar="N")
    window: int | None = opt(
        None, "Frames per window (default: the checkpoint's native length, e.g. 16, 24 for zeroscope)."
    )
    height: int | None = opt(None, "Frame height in pixels (default: the checkpoint's).")
    width: int | None = opt(None, "Frame width in pixels (default: the checkpoint's).")
    # ---- the sampler
    preset: str | None = opt(None, "Sampler preset: paper (default), quality or fast; options given win.")
    steps: int | None = opt(None, "DDIM steps per window (num_inference_steps).")
    resample: int | None = opt(None, "Resampling iterations U per DDIM step.")
    resample_steps: int | None = opt(None, "Resample only in the first N DDIM steps (default: all).", metavar="N")
    guidance: float = opt(9.0, "Classifier-free guidance scale w (guidance_scale).")
    guidance_passes: str | None = opt(
        None, "'all': both guidance branches in every pass of a step; 'first': later passes reuse the first's uncond."
    )
    eta: float = opt(0.0, "DDIM eta (0: deterministic DDIM).")
    init: str | None = opt(None, "New-slot init: 'inversion' (DDPM inversion of the nearest known frame) or 'random'.")
    new_per_window: int | None = opt(
        None, "Frames generated per sampling run (1: the paper's; k: k times fewer UNet calls)."
    )
    queue: str | None = opt(
        None, "Generated frames condition later windows as 'pixel' (decode, re-encode) or 'latent'."
    )
    seed: int = opt(0, "Run seed; every window's seed derives from it (recorded in the manifest).")
    negative_prompt: str = opt("", "Negative prompt (the unconditional branch); default empty, as the release.")
    # ---- the output
    fps: float = opt(8.0, "Frame rate of the output.")
    deflicker: bool = opt(False, "Deflicker the frames before writing (known frames are kept as anchors).")
    codec: str | None = opt(None, "Video codec: h264 or hevc (.mp4), vp9 or av1 (.webm).")
    crf: int | None = opt(
        None, "Video quality, lower is better (x264/x265 0-51, default 16; vp9/av1 0-63, default 26)."
    )
    # ---- Python only
    callback: Callable | None = opt(
        None, "Called after every DDIM step with a StepInfo; return False to stop the run.", cli=False
    )
    output_type: str = opt("uint8", "What frame.image holds when iterating: uint8, float, pil or latent.", cli=False)
    progress: Any = opt(
        True, "Show progress bars (True), nothing (False), or an object with job/step methods.", cli=False
    )

    def resolved(self) -> RunOptions:
        """A copy with the preset's values in the sampler options left unset."""
        preset = self.preset or DEFAULT_PRESET
        if preset not in PRESETS:
            raise BadInput(f"unknown {{option}} {preset!r} (use {', '.join(PRESETS)})", "preset")
        values = {k: v for k, v in PRESETS[preset].items() if getattr(self, k) is None}
        return dataclasses.replace(self, preset=preset, **values)

    def check(self) -> RunOptions:
        """Validate every value; return the resolved options. Raises BadInput naming the option."""
        o = self.resolved()
        integer(o.steps, "steps", 1, 1000)
        integer(o.resample, "resample", 0, 100)
        number(o.guidance, "guidance", 0, 100)
        number(o.eta, "eta", 0, 1)
        integer(o.seed, "seed", 0, MAX_SEED)
        integer(o.new_per_window, "new_per_window", 1, 4096)
        number(o.fps, "fps", 0, 240, low_open=True)
        for name in ("window", "height", "width"):
            if getattr(o, name) is not None:
                integer(getattr(o, name), name, 2, 8192)
        integer(o.vae_slice, "vae_slice", 1, 4096)
        if o.resample_steps is not None:
            integer(o.resample_steps, "resample_steps", 0, 1000)
        if o.forward_chunking is not None:
            integer(o.forward_chunking, "forward_chunking", 1, 4096)
        if o.crf is not None:
            integer(o.crf, "crf", 0, 63)
        choice(o.init, "init", INITS)
        choice(o.queue, "queue", QUEUES)
        choice(o.offload, "offload", OFFLOADS)
        choice(o.guidance_passes, "guidance_passes", GUIDANCE_PASSES)
        choice(o.output_type, "output_type", ("uint8", "float", "pil", "latent"))
        text(o.negative_prompt, "negative_prompt")
        if o.codec is not None:
            choice(o.codec, "codec", sorted({c for codecs in CODECS.values() for c in codecs}))
        if o.callback is not None and not callable(o.callback):
            raise BadInput("{option} must be callable", "callback")
        return o


# ---------------------------------------------------------------------- value checks
def integer(value: Any, option: str, low: int, high: int) -> int:
    """An int in [low, high]; bools, floats and strings are refused (no silent rounding)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{{option}} must be a whole number, got {value!r}", option)
    if not low <= value <= high:
        raise BadInput(f"{{option}} must be between {low} and {high}, got {value}", option)
    return value


def number(value: Any, option: str, low: float, high: float, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadInput(f"{{option}} must be a finite number, got {value!r}", option)
    if value > high or value < low or (low_open and value == low):
        interval = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
        raise BadInput(f"{{option}} must be in {interval}, got {value}", option)
    return float(value)


def choice(value: Any, option: str, allowed: tuple[str, ...] | list[str]) -> str:
    if value not in allowed:
        raise BadInput(f"unknown {{option}} {value!r} (use {', '.join(allowed)})", option)
    return value


def text(value: Any, option: str) -> str:
    """A str that is valid Unicode (command-line bytes that are not UTF-8 arrive as surrogates)."""
    if not isinstance(value, str):
        raise BadInput(f"{{option}} must be text, got {type(value).__name__}", option)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput("{option} is not valid UTF-8 text", option) from None
    return value


def frame_count(value: Any, option: str = "frames", low: int = 1, high: int = 100_000) -> int:
    """A number of frames: None is handled by the caller (the default); 0 is never "default"."""
    return integer(value, option, low, high)


# ---------------------------------------------------------------------- the Python signature
# diffusers' names, accepted as aliases of vidzero's own
ALIASES = {
    "num_inference_steps": "steps",
    "guidance_scale": "guidance",
    "num_frames": "frames",
    "callback_on_step_end": "callback",
    "torch_dtype": "dtype",
}


def python_fields() -> list[dataclasses.Field]:
    return [f for f in fields(RunOptions) if f.metadata.get("python", True)]


def options_doc() -> str:
    lines = [
        "Run options (keyword-only; diffusers' names num_inference_steps, guidance_scale, num_frames,",
        "torch_dtype and callback_on_step_end are accepted too; generator= takes a torch.Generator whose",
        "initial_seed() becomes the run seed):",
        "",
    ]
    for f in python_fields():
        lines.append(f"    {f.name} (default {f.default!r}): {f.metadata['help']}")
    return "\n".join(lines)


def takes_run_options(func: Callable) -> Callable:
    """Give a task function every RunOptions field as an explicit keyword argument.

    The task is written as `def task(..., *, options: RunOptions)`; the wrapper's signature (what
    `help()`, IDEs and `inspect` show) lists each option with its default instead, accepts the
    diffusers aliases and `generator=`, and refuses unknown names with a clear error.
    """
    own = inspect.signature(func)
    own_params = [p for p in own.parameters.values() if p.name != "options"]
    option_params = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
        for f in python_fields()
        if f.name not in own.parameters
    ]
    extra = [
        inspect.Parameter("generator", inspect.Parameter.KEYWORD_ONLY, default=None),
        *(inspect.Parameter(a, inspect.Parameter.KEYWORD_ONLY, default=None) for a in ALIASES),
    ]
    known_task = {p.name for p in own_params}
    option_names = {f.name for f in python_fields()}

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for alias, name in ALIASES.items():
            if alias in kwargs:
                value = kwargs.pop(alias)
                if value is None:
                    continue
                if name in kwargs:
                    raise BadInput(f"give {name} or {alias}, not both")
                kwargs[name] = value
        generator = kwargs.pop("generator", None)
        if generator is not None:
            if "seed" in kwargs:
                raise BadInput("give seed or generator, not both")
            if not hasattr(generator, "initial_seed"):
                raise BadInput("generator must be a torch.Generator")
            kwargs["seed"] = int(generator.initial_seed())
        unknown = sorted(set(kwargs) - known_task - option_names)
        if unknown:
            raise BadInput(f"unknown argument {unknown[0]!r} for {func.__name__}()")
        task_kwargs = {k: v for k, v in kwargs.items() if k in known_task}
        options = RunOptions(**{k: v for k, v in kwargs.items() if k in option_names and k not in known_task})
        return func(*args, **task_kwargs, options=options)

    wrapper.__signature__ = own.replace(parameters=sorted_params([*own_params, *option_params, *extra]))
    wrapper.__doc__ = (func.__doc__ or "").rstrip() + "\n\n" + options_doc()
    return wrapper


def sorted_params(params: list[inspect.Parameter]) -> list[inspect.Parameter]:
    """Parameters in an order `inspect.Signature` accepts (kinds ascending, stable otherwise)."""
    return sorted(params, key=lambda p: p.kind)
