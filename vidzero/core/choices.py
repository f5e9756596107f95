"""The sampler's named choices and the TI2V-Zero release's settings, as plain values: the option
table (vidzero.runs.options) and `vidzero --help` read them without importing torch."""

from __future__ import annotations

QUEUES = ("pixel", "latent")  # what the queue keeps of a generated frame (vidzero.core.frames)
INITS = ("inversion", "random", "lowpass")  # how a new slot starts (vidzero.core.sampler)
KNOWN_NOISE = ("fresh", "model", "ding")  # how known slots are re-noised (vidzero.core.guidance)
# where a moving target is used (vidzero.core.targets); "auto": in the window where the backbone's
# latent frames hold one video frame each (the UNet3D family), off elsewhere (Wan)
TARGETS = ("off", "auto", "window", "queue", "both")
TARGET_FRAMES = ("model", "target")  # which frames are written when a moving target is used

# The TI2V-Zero release (and ModelScope's pipeline, for the guidance scale): the sampler's
# defaults and the "paper" preset.
RELEASE_STEPS = 10
RELEASE_RESAMPLE = 4
RELEASE_GUIDANCE = 9.0
RELEASE_INIT = "inversion"
RELEASE_QUEUE = "pixel"
