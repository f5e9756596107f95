"""vidzero: a zero-shot video editor on a frozen text-to-video diffusion model (TI2V-Zero).

    import vidzero
    run = vidzero.extend("cat.png", "a cat turning its head", frames=32)
    for frame in run:              # frames stream out as they are made
        ...                        # frame.image is (H, W, 3) uint8
    run.save("cat.mp4")            # writes the frames made above: nothing is generated twice

The public names load on first use (torch and diffusers take seconds to import), so
`import vidzero` and `vidzero --help` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vidzero.version import __version__

# public name -> module that defines it
_EXPORTS = {
    "Backbone": "vidzero.backbone",
    "BadInput": "vidzero.errors",
    "DeflickerSettings": "vidzero.flicker",
    "Engine": "vidzero.engine",
    "Frame": "vidzero.engine",
    "Keyframes": "vidzero.tasks.infill",
    "SamplerSettings": "vidzero.sampler",
    "deflicker": "vidzero.flicker",
    "extend": "vidzero.tasks.extend",
    "flicker_report": "vidzero.flicker",
    "generate": "vidzero.tasks.generate",
    "infill": "vidzero.tasks.infill",
    "infill_between": "vidzero.tasks.infill",
    "predict": "vidzero.tasks.predict",
}
_ALIASES = {"load_backbone": ("vidzero.backbone", "Backbone.load")}

__all__ = [
    "Backbone",
    "BadInput",
    "DeflickerSettings",
    "Engine",
    "Frame",
    "Keyframes",
    "SamplerSettings",
    "__version__",
    "deflicker",
    "extend",
    "flicker_report",
    "generate",
    "infill",
    "infill_between",
    "load_backbone",
    "predict",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from vidzero.backbone import Backbone
    from vidzero.engine import Engine, Frame
    from vidzero.errors import BadInput
    from vidzero.flicker import DeflickerSettings, deflicker, flicker_report
    from vidzero.sampler import SamplerSettings
    from vidzero.tasks.extend import extend
    from vidzero.tasks.generate import generate
    from vidzero.tasks.infill import Keyframes, infill, infill_between
    from vidzero.tasks.predict import predict

    load_backbone = Backbone.load


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _ALIASES:
        module, path = _ALIASES[name]
        value = importlib.import_module(module)
        for part in path.split("."):
            value = getattr(value, part)
    else:
        raise AttributeError(f"module 'vidzero' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
