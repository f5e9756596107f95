"""Loading helpers every backbone family shares: the device, the precision, quiet loading, model
offload, placement on a loaded pipeline."""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch

from vidzero.errors import BadInput

DTYPE_NAMES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}


def pick_device(device: str | torch.device | None) -> torch.device:
    """`auto` (CUDA when present, else the CPU), or a device that exists on this machine."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise BadInput(f"unknown {{option}} {device!r} (use cpu, cuda, cuda:N or auto)", "device") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BadInput(f"{{option}} {device!r} requested but no CUDA GPU is available", "device")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BadInput(f"{{option}} {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)", "device")
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise BadInput(f"{{option}} {device!r} is not available on this machine", "device")
    elif dev.type != "cpu":
        raise BadInput(f"{{option}} {device!r} is not supported (use cpu, cuda, cuda:N or auto)", "device")
    return dev


def parse_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """fp16 on CUDA and fp32 elsewhere by default; torch dtypes and the usual spellings accepted."""
    if dtype is None or dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        value = dtype
    elif isinstance(dtype, str) and dtype.lower().removeprefix("torch.") in DTYPE_NAMES:
        value = DTYPE_NAMES[dtype.lower().removeprefix("torch.")]
    else:
        raise BadInput(f"unknown {{option}} {dtype!r} (use fp32, fp16 or bf16)", "dtype")
    if value not in (torch.float32, torch.float16, torch.bfloat16):
        raise BadInput(f"{{option}} {dtype!r} is not supported (use fp32, fp16 or bf16)", "dtype")
    if device.type == "cpu" and value == torch.float16:
        raise BadInput("{option} fp16 is not supported on the CPU; use fp32 or bf16", "dtype")
    return value


# One load at a time in a process. Loading swaps process-wide state: diffusers and transformers
# build modules on the meta device by patching torch.nn.Module's parameter registration (accelerate's
# init_empty_weights), and their logging settings are global. Two threads loading at once (the
# studio's, a web app's) saw each other's patch ("Unsupported device type 'meta'") and one restored
# the other's patched function as the original, breaking every later load in the process.
LOADING = threading.RLock()


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Load alone (`LOADING`), with diffusers' and transformers' loading chatter (per-file bars,
    hints) silenced, then put their settings back as they were: the caller's logging is not ours
    to change."""
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    with LOADING:
        saved = [(lib, lib.get_verbosity(), lib.is_progress_bar_enabled()) for lib in (dlog, tlog)]
        for lib, _, _ in saved:
            lib.set_verbosity_error()
            lib.disable_progress_bar()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                yield
        finally:
            for lib, verbosity, bars in saved:
                lib.set_verbosity(verbosity)
                if bars:
                    lib.enable_progress_bar()


class PromptTruncatedWarning(UserWarning):
    """A prompt is longer than the text encoder reads; the rest is cut off."""


class SharedModules:
    """The modules a backbone runs, with the device and precision it put them in.

    A backbone built over modules the caller holds (`from_pipeline`, or two backbones over one
    pipeline) casts and moves them in place, as diffusers' `pipe.to()` does: copies would double
    the memory of a model that barely fits. What must not happen is one holder changing them
    under another silently (a bf16 backbone used after an fp16 one was built over the same
    modules fails deep inside a convolution). So the backbone checks, before every window, that
    its modules are still where it put them, and says what changed if not.
    """

    def __init__(self, modules: dict[str, tuple[torch.nn.Module, bool]]) -> None:
        """name -> (module, whether its device is fixed: not with offloading hooks, which move it)."""
        self.modules = {name: module for name, (module, _) in modules.items()}
        self.placed = {name for name, (_, fixed) in modules.items() if fixed}
        # as they are now: the precision of the weights the backbone cast (modules that keep some
        # layers in fp32, such as diffusers' Wan transformer, have several), and their device
        self.expected = {name: self.describe(name) for name in self.modules}

    def describe(self, name: str) -> tuple[str, str]:
        dtypes = sorted({str(p.dtype).replace("torch.", "") for p in self.modules[name].parameters()})
        device = str(next(self.modules[name].parameters()).device) if name in self.placed else "(offloaded)"
        return "/".join(dtypes), device

    def check(self) -> None:
        for name in self.modules:
            (dtypes, device), (was_dtypes, was_device) = self.describe(name), self.expected[name]
            if (dtypes, device) != (was_dtypes, was_device):
                raise BadInput(
                    f"the {name} is now {dtypes} on {device}, not {was_dtypes} on {was_device}: "
                    "another backbone or your code changed modules this backbone uses; build this backbone again "
                    "after the change"
                )


@contextlib.contextmanager
def loading_from(folder: object) -> Iterator[None]:
    """Quiet loading of a checkpoint's components; what the libraries raise over a broken or
    incomplete folder becomes one line naming it."""
    try:
        with quiet_loading():
            yield
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"could not load the checkpoint at {folder}: {first}") from exc


def offload_modules(modules: tuple[torch.nn.Module, ...], device: torch.device, mode: str) -> list[Any]:
    """Weights stay on the CPU and move to the GPU only while a module runs, through accelerate's
    hooks (as diffusers' enable_model_cpu_offload / enable_sequential_cpu_offload); `modules` in
    the order a run calls them, so each hands the GPU to the next. Returns each module's hook
    (model offload; none for sequential), for a family whose modules take turns out of that
    order (Wan 2.2's experts)."""
    if device.type != "cuda":
        raise BadInput("{option} needs a CUDA device (the weights move to it only while they run)", "offload")
    from accelerate import cpu_offload, cpu_offload_with_hook

    if mode == "sequential":
        for module in modules:
            cpu_offload(module, device)
        return []
    hook, hooks = None, []
    for module in modules:
        _, hook = cpu_offload_with_hook(module, device, prev_module_hook=hook)
        hooks.append(hook)
    return hooks


def pipeline_placement(
    pipe: object, denoiser: Any, device: str | torch.device | None, dtype: str | torch.dtype | None
) -> tuple[torch.device, torch.dtype, str]:
    """Device, precision and name of a backbone built on a loaded pipeline: those of its denoiser (a
    diffusers model) unless given (given ones cast and move its modules in place, as `pipe.to()`
    does)."""
    torch_device: torch.device = pick_device(device) if device is not None else denoiser.device
    torch_dtype: torch.dtype = parse_dtype(dtype, torch_device) if dtype is not None else denoiser.dtype
    config = getattr(pipe, "config", None)
    name = getattr(pipe, "name_or_path", None) or getattr(config, "_name_or_path", None) or "<pipeline>"
    return torch_device, torch_dtype, str(name)


@contextlib.contextmanager
def input_gradient_only(module: torch.nn.Module) -> Iterator[None]:
    """The module's parameters frozen while a gradient with respect to its input is taken
    (posterior guidance): autograd then keeps no layer inputs for weight gradients, which are
    never wanted, and the evaluation needs less memory. Restored after, so that evaluations
    without a gradient run the kernels they always run."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def checkpoint_blocks(blocks: list[torch.nn.Module]) -> None:
    """Gradient checkpointing for models that diffusers gives none (UNet3DConditionModel): each
    block's forward keeps only its inputs under a gradient and runs again during the backward
    pass; without a gradient it runs as before."""
    from torch.utils.checkpoint import checkpoint

    for block in blocks:
        forward = block.forward

        def checkpointed(*args: Any, _forward: Any = forward, **kwargs: Any) -> Any:
            if torch.is_grad_enabled():
                return checkpoint(_forward, *args, use_reentrant=False, **kwargs)
            return _forward(*args, **kwargs)

        block.forward = checkpointed


# Activations an evaluation with a gradient keeps for its backward pass (weights frozen), per
# window position (a latent pixel of a latent frame) and batch row, in bytes at 2 bytes per value:
# measured on fake tensors by recipes/bench/guidance_cost.py for the published architectures
# (ModelScope T2V's UNet, 1.41 B parameters, 16 x 32 x 32 latents: 12.76 GiB, checkpointed 5.19;
# Wan 2.1 1.3B's transformer, 1.42 B parameters, 21 x 60 x 104 latents: 136.84 GiB, checkpointed
# 12.50; docs/bench/guidance-cost.md). Models of another size scale with the square root of their
# parameter count (activations grow with the width, parameters with its square).
GRADIENT_BYTES_PER_POSITION = {"unet3d": 418_000.0, "wan": 560_600.0}
CHECKPOINTED_BYTES_PER_POSITION = {"unet3d": 170_000.0, "wan": 51_200.0}
MEASURED_PARAMETERS = {"unet3d": 1.412e9, "wan": 1.417e9}


def gradient_memory_bytes(backbone: Any, parameters: int, guided: bool = True, checkpointed: bool = False) -> int:
    """Estimated activations of one evaluation with a gradient of a denoiser of `parameters`
    parameters, with checkpointing or without."""
    _, h, w = backbone.latent_shape
    rows = 2 if guided else 1
    table = CHECKPOINTED_BYTES_PER_POSITION if checkpointed else GRADIENT_BYTES_PER_POSITION
    size = (parameters / MEASURED_PARAMETERS[backbone.family]) ** 0.5
    per_position = table[backbone.family] * size * backbone.dtype.itemsize / 2
    return int(per_position * rows * backbone.frames * h * w)


def gradient_needs_checkpointing(backbone: Any, parameters: int) -> bool:
    """Checkpoint an evaluation with a gradient when its activations, as estimated, would not
    fit in 80 % of the GPU memory free now (on the CPU, never: memory is rarely the limit)."""
    if backbone.device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(backbone.device)
    return gradient_memory_bytes(backbone, parameters) > 0.8 * free


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@contextlib.contextmanager
def differentiable(backbone: Any, module: torch.nn.Module, checkpoint: Callable[[], None]) -> Iterator[None]:
    """Where posterior guidance takes a gradient through a backbone's denoiser (its forward and
    backward pass): `module`'s weights frozen (no weight gradients, fewer activations kept), and
    `checkpoint()` (the family's gradient checkpointing) called first when, on a GPU, the
    estimated activations would not fit."""
    if backbone.device.type == "cuda" and gradient_needs_checkpointing(backbone, parameter_count(module)):
        checkpoint()
    with input_gradient_only(module):
        yield
