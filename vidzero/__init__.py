"""vidzero: a zero-shot video editor on a frozen text-to-video diffusion model (TI2V-Zero).

    import vidzero
    run = vidzero.extend("cat.png", "a cat turning its head", frames=32)
    for frame in run:              # frames stream out as they are made
        ...                        # frame.image is (H, W, 3) uint8
    run.save("cat.mp4")            # writes the frames made above: nothing is generated twice

The public names load on first use (torch and diffusers take seconds to import), so
`import vidzero` and `vidzero --help` stay fast. The layers, bottom up (docs/layout.md):
core (the method), media, models (backbone families), quality, runs, tasks, app.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vidzero.version import __version__

# public name -> module that defines it
_EXPORTS = {
    "BadInput": "vidzero.errors",
    "DeflickerSettings": "vidzero.quality.flicker",
    "Engine": "vidzero.core.engine",
    "Frame": "vidzero.core.frames",
    "PlannedRun": "vidzero.runs.run",
    "RunOptions": "vidzero.runs.options",
    "RunOptionsDict": "vidzero.app.api",
    "RunSpec": "vidzero.runs.spec",
    "SamplerSettings": "vidzero.core.sampler",
    "backbone_from_pipeline": "vidzero.models.families",
    "deflicker": "vidzero.quality.flicker",
    "extend": "vidzero.app.api",
    "extend_from": "vidzero.app.api",
    "flicker_report": "vidzero.quality.flicker",
    "generate": "vidzero.app.api",
    "infill": "vidzero.app.api",
    "infill_between": "vidzero.app.api",
    "load_backbone": "vidzero.models.families",
    "predict": "vidzero.app.api",
    "reroll": "vidzero.app.api",
    "run_batch": "vidzero.app.batch",
}

__all__ = [
    "BadInput",
    "DeflickerSettings",
    "Engine",
    "Frame",
    "PlannedRun",
    "RunOptions",
    "RunOptionsDict",
    "RunSpec",
    "SamplerSettings",
    "__version__",
    "backbone_from_pipeline",
    "deflicker",
    "extend",
    "extend_from",
    "flicker_report",
    "generate",
    "infill",
    "infill_between",
    "load_backbone",
    "predict",
    "reroll",
    "run_batch",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from vidzero.app.api import (
        RunOptionsDict,
        extend,
        extend_from,
        generate,
        infill,
        infill_between,
        predict,
        reroll,
    )
    from vidzero.app.batch import run_batch
    from vidzero.core.engine import Engine
    from vidzero.core.frames import Frame
    from vidzero.core.sampler import SamplerSettings
    from vidzero.errors import BadInput
    from vidzero.models.families import backbone_from_pipeline, load_backbone
    from vidzero.quality.flicker import DeflickerSettings, deflicker, flicker_report
    from vidzero.runs.options import RunOptions
    from vidzero.runs.run import PlannedRun
    from vidzero.runs.spec import RunSpec


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vidzero' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
