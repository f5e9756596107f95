"""What the tasks share: image sources, prompt schedules, the frame format a layout is made for,
motion paths."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PIL import Image

from vidzero.core.timeline import Prompt, VideoPlacement
from vidzero.errors import BadInput
from vidzero.media.images import check_image_array, fit_frame, load_image, open_image
from vidzero.runs.options import text

if TYPE_CHECKING:
    from vidzero.core.targets import ObjectPath

ImageSource = str | Path | Image.Image | np.ndarray


class FrameFormat(Protocol):
    """The frame size and window a task lays its timeline out for (a backbone, or its stand-in).
    `frames` counts latent frames; each after the first holds `temporal_stride` video frames."""

    frames: int
    height: int
    width: int
    temporal_stride: int

    def encode_video(self, pixels: Any) -> Any:
        """(T, 3, H, W) pixels in [-1, 1], T = 1 + stride k -> (1 + k, C, h, w) latents."""


def window_video_frames(fmt: FrameFormat) -> int:
    """The video frames a window of the format shows (its latent window, in video frames)."""
    return 1 + fmt.temporal_stride * (fmt.frames - 1)


def place_video(fmt: FrameFormat, length: int, given: dict[int, np.ndarray]) -> tuple[dict, dict, VideoPlacement]:
    """Known latent frames from the user's video frames, when latent frames hold several video
    frames (Wan): (latent frame -> a given frame it holds, latent frame -> its latent, placement).

    A latent frame is known when it holds a given frame. The given frames from frame 0 on, as far
    as they run unbroken over whole latent frames, are encoded together as one clip (the VAE's
    own causal encoding: exactly what encoding the video would give). Any other known latent frame
    (a keyframe, a clip placed later, a group cut short) is the second latent frame of encoding
    the group's first given frame followed by its four frames, the missing ones repeating the last
    one before them: for a still image, the image held for four frames after itself.
    """
    from vidzero.core.frames import from_pixels  # torch: not on `vidzero --help`

    stride = fmt.temporal_stride
    placement = VideoPlacement(stride, length, dict(given))
    slots = sorted({placement.slot_of(v) for v in given})
    prefix = 0
    while prefix in slots and all(v in given for v in placement.frames_of(prefix)) and prefix * stride < length:
        prefix += 1
    latents: dict[int, Any] = {}
    if prefix:
        clip = [given[v] for v in range(1 + stride * (prefix - 1))]
        latents.update(enumerate(fmt.encode_video(from_pixels(np.stack(clip)))))
    for slot in slots:
        if slot in latents:
            continue
        frames = list(placement.frames_of(slot))
        group, last = [], given[min(v for v in frames if v in given)]
        for v in frames:
            last = given.get(v, last)
            group.append(last)
        clip = group[:1] if slot == 0 else [group[0], *group]
        latents[slot] = fmt.encode_video(from_pixels(np.stack(clip)))[-1]
    pixels = {slot: given[min(v for v in placement.frames_of(slot) if v in given)] for slot in slots}
    return pixels, latents, placement


def check_schedule(prompt: Prompt, length: int | None = None) -> Prompt:
    """A prompt, or a schedule {first frame: prompt}; with `length`, checked against the video."""
    if isinstance(prompt, str):
        return text(prompt, "prompt")
    if not isinstance(prompt, dict) or not prompt:
        raise BadInput(
            f"{{option}} must be text or a non-empty dict {{first frame: text}}, got {type(prompt).__name__}", "prompt"
        )
    for frame, value in prompt.items():
        if isinstance(frame, bool) or not isinstance(frame, int):
            raise BadInput(f"{{option}}: frame {frame!r} must be a whole frame number", "prompt_schedule")
        if frame < 0 or (length and frame >= length):
            where = f" (0..{length - 1})" if length else ""
            raise BadInput(f"{{option}}: frame {frame!r} is outside the video{where}", "prompt_schedule")
        text(value, "prompt")
        if not value.strip():
            raise BadInput(f"{{option}}: the prompt at frame {frame} is empty", "prompt_schedule")
    if 0 not in prompt:
        raise BadInput("{option} needs an entry for frame 0", "prompt_schedule")
    return prompt[0] if len(prompt) == 1 else dict(sorted(prompt.items()))


def read_schedule(value: Any) -> Prompt:
    """A prompt schedule from a record (JSON object keys are text)."""
    if isinstance(value, dict):
        try:
            return {int(k): v for k, v in value.items()}
        except ValueError:
            raise BadInput("{option} positions must be whole frame numbers", "prompt_schedule") from None
    return value


def load_frame(image: ImageSource, fmt: FrameFormat, what: str = "image") -> np.ndarray:
    """A user image (path, PIL image or HxWx3 uint8 array) fitted to the frame size."""
    if isinstance(image, (str, Path)):
        return load_image(image, fmt.width, fmt.height)
    if isinstance(image, Image.Image):
        return fit_frame(image, fmt.width, fmt.height)
    if isinstance(image, np.ndarray):
        return fit_frame(check_image_array(image, what), fmt.width, fmt.height)
    raise BadInput(
        f"{{option}} must be a file path, a PIL image or an (H, W, 3) uint8 array, got {type(image).__name__}",
        "image" if what == "image" else None,
    )


def check_image_source(image: ImageSource, what: str = "image") -> tuple[int, int]:
    """Size (width, height) of an image, read before any model loads, so bad files fail first."""
    if isinstance(image, (str, Path)):
        h, w = open_image(image, what).shape[:2]
        return w, h
    if isinstance(image, Image.Image):
        return image.size
    if isinstance(image, np.ndarray):
        check_image_array(image, what)
        return int(image.shape[1]), int(image.shape[0])
    raise BadInput(f"{what} must be a file path, a PIL image or an (H, W, 3) uint8 array, got {type(image).__name__}")


def paths_of(*items: Any) -> list[Path]:
    return [Path(i) for i in items if isinstance(i, (str, Path))]


# ---------------------------------------------------------------------- motion paths
PATH_HELP = (
    "A motion path 'X,Y X,Y@F ...' in the image's pixels: the object under the first point moves along it "
    "(constant speed between frames pinned with @F; the last point is the last frame unless pinned). "
    "Repeatable: one path per object."
)
MASK_HELP = (
    "The object of a path, as a mask image of the input's size (white: the object); default: the region under "
    "the path's first point. Repeatable, in the paths' order."
)


def path_inputs(path: Any) -> tuple[str, ...]:
    """Paths as the inputs keep them, one text per object ('X,Y X,Y@F ...'), from any form the API,
    a job line or the command line gives (vidzero.core.paths.read_paths)."""
    from vidzero.core.paths import path_record, read_paths

    return tuple(path_record(points) for points in read_paths(path))


def mask_inputs(mask: Any) -> tuple[Any, ...]:
    """Masks as the inputs keep them: one file (or array) per path, in the paths' order."""
    if mask is None:
        return ()
    if isinstance(mask, (str, Path, np.ndarray)):
        return (mask,)
    return tuple(mask)


def check_paths(paths: tuple[str, ...], masks: tuple[Any, ...]) -> None:
    """What needs no model: every path parses, no more masks than paths, every mask is an image."""
    from vidzero.core.paths import parse_path

    for written in paths:
        parse_path(written)
    if len(masks) > len(paths):
        given = f"{len(masks)} mask(s) for {len(paths)} path(s)"
        raise BadInput(f"{{option}}: {given}; give one per path, in order", "mask")
    for mask in masks:
        if isinstance(mask, np.ndarray):
            if mask.ndim != 2:
                raise BadInput(f"{{option}} arrays must be (H, W), got shape {mask.shape}", "mask")
        else:
            open_image(mask, "mask")


def load_mask(mask: Any, source: tuple[int, int], fmt: FrameFormat) -> np.ndarray:
    """A path's mask, of the input's size, fitted to the frame as the image is (white: the object)."""
    if isinstance(mask, np.ndarray):
        grey = (mask > (0 if mask.dtype == bool else 127)).astype(np.uint8) * 255
    else:
        grey = open_image(mask, "mask").mean(axis=2).round().astype(np.uint8)
    h, w = grey.shape[:2]
    if (w, h) != source:
        raise BadInput(f"{{option}} is {w}x{h}; it must be the input's size, {source[0]}x{source[1]}", "mask")
    fitted_mask = fit_frame(np.repeat(grey[..., None], 3, axis=2), fmt.width, fmt.height)[..., 0] > 127
    if not fitted_mask.any():
        raise BadInput("{option} holds no object (no white pixels inside the part of the image the model sees)", "mask")
    return fitted_mask


def object_paths(
    paths: tuple[str, ...],
    masks: tuple[Any, ...],
    frame: np.ndarray,
    source: tuple[int, int],
    fmt: FrameFormat,
    start: int,
    last: int,
) -> tuple[ObjectPath, ...]:
    """The objects the user moves: each path's points moved onto the model's frame, its object
    (the mask, or the region under its first point in `frame`, the known frame `start`) and its
    centre in every frame `start`..`last`."""
    from vidzero.core.motion import find_object
    from vidzero.core.paths import check_path, fitted, parse_path, positions
    from vidzero.core.targets import ObjectPath

    if not paths:
        return ()
    if fmt.temporal_stride > 1:
        raise BadInput(
            "{option} needs a backbone with one latent frame per video frame (the UNet3D family); this one's "
            f"latent frames hold {fmt.temporal_stride}",
            "path",
        )
    objects = []
    for i, written in enumerate(paths):
        points = parse_path(written)
        check_path(points, source, start, last)
        on_frame = fitted(points, source, (fmt.width, fmt.height))
        x, y, _ = on_frame[0]
        if not (0 <= x <= fmt.width - 1 and 0 <= y <= fmt.height - 1):
            where = f"{points[0][0]:g},{points[0][1]:g}"
            raise BadInput(f"{{option}} starts at {where}, outside the centre crop the model sees", "path")
        if i < len(masks):
            mask = load_mask(masks[i], source, fmt)
        else:
            found = find_object(frame, point=(x, y))
            if found is None:
                raise BadInput(
                    f"{{option}} starts at {points[0][0]:g},{points[0][1]:g}, on nothing that can be moved (no region "
                    "there differs from its surroundings): start it on the object, or give its mask (--mask)",
                    "path",
                )
            mask = found
        objects.append(ObjectPath(start, mask, positions(on_frame, start, last)))
    return tuple(objects)
