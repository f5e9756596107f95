"""What posterior guidance costs on the real architectures: memory and work of one guided
evaluation with a gradient, estimated on any machine.

    python -m recipes.bench.guidance_cost [--out docs/bench]

Reconstruction guidance and the DPS step (vidzero.core.guidance) take, at every step they act
in, the gradient of the known frames' error with respect to the new frames, through the model:
one guided evaluation whose activations are kept for a backward pass, then that pass. This
measures it as `memory_estimate.py` measures a plain evaluation (fake tensors, every storage
followed, the real ModelScope T2V 1.7B UNet and Wan 2.1 1.3B transformer in the precision vidzero
runs them on CUDA), in three forms: without a gradient; with one (parameters frozen, as vidzero
takes it: no weight gradients); with one and gradient checkpointing (the transformer's own for
Wan; each UNet block's for ModelScope, whose UNet has none in diffusers). The work is counted by
torch's FLOP counter on the same fake tensors (the forward and the backward pass). Lower bounds
of what the allocator reports, as in memory_estimate.py.
"""

from __future__ import annotations

import torch

from recipes.bench.memory_estimate import GIB, fake_module, param_bytes, run_estimates, tracked_peak
from recipes.gpu.modelscope_random import UNET
from recipes.gpu.wan_random import TRANSFORMER
from vidzero.models.loading import checkpoint_blocks, input_gradient_only

FORMATS = {
    "ModelScope T2V 1.7B, 16 x 256 x 256 (fp16)": (16, 256, 256),
    "Wan 2.1 1.3B, 81 x 480 x 832 (bf16)": (81, 480, 832),
}


def build(name: str, mode):  # type: ignore[no-untyped-def]
    from diffusers import UNet3DConditionModel, WanTransformer3DModel

    if name.startswith("ModelScope"):
        return fake_module(lambda: UNet3DConditionModel(**UNET), torch.float16, mode)
    return fake_module(lambda: WanTransformer3DModel(**TRANSFORMER), torch.bfloat16, mode)


def estimate_model(name: str, frames: int, height: int, width: int) -> dict:
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    mode = FakeTensorMode(allow_non_fake_inputs=True)
    model = build(name, mode)
    wan = not name.startswith("ModelScope")
    dtype = next(model.parameters()).dtype
    with mode:
        if wan:
            z = torch.randn(2, 16, (frames - 1) // 4 + 1, height // 8, width // 8, dtype=dtype)
            emb = torch.randn(2, 512, 4096, dtype=dtype)
            t = torch.full((2,), 500.0)

            def forward(x: torch.Tensor) -> torch.Tensor:
                return model(hidden_states=x, timestep=t, encoder_hidden_states=emb, return_dict=False)[0]
        else:
            z = torch.randn(2, 4, frames, height // 8, width // 8, dtype=dtype)
            emb = torch.randn(2, 77, 1024, dtype=dtype)

            def forward(x: torch.Tensor) -> torch.Tensor:
                return model(x, 500, encoder_hidden_states=emb).sample

        def with_gradient() -> object:
            free = z.detach().requires_grad_(True)
            with input_gradient_only(model):
                forward(free).float().pow(2).sum().backward(inputs=[free])
            return free.grad

        phases = {"no gradient": tracked_peak(model, [z, emb], lambda: forward(z))}
        phases["gradient"] = tracked_peak(model, [z, emb], with_gradient, grad=True)
        flops = {}
        for label, call, grad in (("no gradient", lambda: forward(z), False), ("gradient", with_gradient, True)):
            counter = FlopCounterMode(display=False)
            with counter, torch.set_grad_enabled(grad):
                call()
            flops[label] = counter.get_total_flops()
        if wan:
            model.enable_gradient_checkpointing()
        else:
            checkpoint_blocks([*model.down_blocks, model.mid_block, *model.up_blocks])
        phases["gradient, checkpointing"] = tracked_peak(model, [z, emb], with_gradient, grad=True)
        counter = FlopCounterMode(display=False)
        with counter, torch.enable_grad():
            with_gradient()
        flops["gradient, checkpointing"] = counter.get_total_flops()
    return {"weights": {"model": param_bytes(model)}, "phases": phases, "flops": flops}


def table(results: dict[str, dict]) -> str:
    lines = [
        "| model and window | evaluation | weights (GiB) | activations (GiB) | estimated peak (GiB) | TFLOP "
        "| work vs no gradient |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        weights, base = r["weights"]["model"], r["flops"]["no gradient"]
        for phase, peak in r["phases"].items():
            lines.append(
                f"| {name} | {phase} | {weights / GIB:.2f} | {peak / GIB:.2f} | {(weights + peak) / GIB:.2f} | "
                f"{r['flops'][phase] / 1e12:.1f} | {r['flops'][phase] / base:.2f}x |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    estimates = {name: (lambda f, h, w, name=name: estimate_model(name, f, h, w)) for name in FORMATS}

    def estimate(frames: int, height: int, width: int) -> dict:
        name = next(n for n, fmt in FORMATS.items() if fmt == (frames, height, width))
        return estimates[name](frames, height, width)

    run_estimates(argv, __doc__, FORMATS, estimate, table, "guidance-cost")


if __name__ == "__main__":
    main()
