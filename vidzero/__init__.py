"""vidzero: a zero-shot video editor on a frozen text-to-video diffusion model (TI2V-Zero).

    import vidzero
    run = vidzero.extend("cat.png", "a cat turning its head", frames=32)
    for frame in run:              # frames stream out as they are made
        ...                        # frame.image is (H, W, 3) uint8
    run.save("cat.mp4")            # or write video + manifest + contact sheet
"""

__version__ = "0.1.0"

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

__all__ = [
    "Backbone",
    "BadInput",
    "DeflickerSettings",
    "Engine",
    "Frame",
    "Keyframes",
    "SamplerSettings",
    "deflicker",
    "extend",
    "flicker_report",
    "generate",
    "infill",
    "infill_between",
    "load_backbone",
    "predict",
]
