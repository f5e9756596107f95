"""Images in: any file Pillow reads, or an array, as (H, W, 3) uint8 RGB fitted to a model's size."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vidzero.errors import BadInput
from vidzero.media.outputs import check_input_file

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
MAX_IMAGE_PIXELS = 100_000_000  # refused before decoding: a header can claim any size


def to_rgb(img: Image.Image) -> np.ndarray:
    """Any image Pillow reads as (H, W, 3) uint8 RGB: 16-bit and 32-bit greyscale scaled to 8 bits
    (not clipped), float images from [0, 1], transparency composited over white, palette, CMYK
    and the rest converted by Pillow.

    32-bit integer greyscale ("I") carries 8-, 16- or 32-bit data (16-bit PNGs load as "I"); the
    smallest of those ranges that holds every value is the one scaled from. Negative values are
    black."""
    mode = img.mode
    if mode.startswith("I"):  # I;16, I;16B, I;16L, I
        grey = np.asarray(img, dtype=np.float64)
        top = grey.max(initial=0)
        if mode.startswith("I;16"):
            scale = 65535.0
        else:
            scale = 255.0 if top <= 255 else 65535.0 if top <= 65535 else 2147483647.0  # "I" is signed 32-bit
        grey = np.rint(np.clip(grey / scale, 0, 1) * 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "F":
        grey = np.asarray(img, dtype=np.float64)
        grey = grey * 255 if grey.max(initial=0) <= 1.0 else grey
        return np.repeat(np.rint(np.clip(grey, 0, 255)).astype(np.uint8)[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.uint8).copy()
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def open_image(path: str | Path, what: str = "image") -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB, upright (EXIF orientation applied); a one-line error
    for anything missing, unreadable, corrupt or absurdly large."""
    path = Path(path)
    check_input_file(path, what)
    if path.is_dir():
        raise BadInput(f"expected an {what} file, got a folder: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise BadInput(
                        f"{what} {path} claims {width}x{height} pixels; vidzero reads images of up to "
                        f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels"
                    )
                img.load()
                return to_rgb(ImageOps.exif_transpose(img))
    except BadInput:
        raise
    except Image.DecompressionBombError:
        raise BadInput(
            f"{what} {path} claims more pixels than vidzero reads ({MAX_IMAGE_PIXELS // 1_000_000} megapixels at most)"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadInput(f"cannot read {what} {path}: not an image, or corrupt ({type(exc).__name__})") from None


def fit_frame(image: Image.Image | np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre-crop to the target aspect ratio and resize (the release's preprocessing), uint8 RGB."""
    array = to_rgb(image) if isinstance(image, Image.Image) else image
    if array.shape[:2] == (height, width):
        return np.ascontiguousarray(array, dtype=np.uint8).copy()
    # Crop first, then resize: resampling the uncropped image would bleed pixels from outside
    # the crop into the border rows.
    img = Image.fromarray(array)
    src_w, src_h = img.size
    scale = max(width / src_w, height / src_h)
    crop_w, crop_h = round(width / scale), round(height / scale)
    left, top = (src_w - crop_w) // 2, (src_h - crop_h) // 2
    img = img.crop((left, top, left + crop_w, top + crop_h)).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.uint8).copy()


def load_image(path: str | Path, width: int, height: int) -> np.ndarray:
    return fit_frame(open_image(path), width, height)


def check_image_array(image: np.ndarray, what: str = "image") -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        raise BadInput(
            f"expected an (H, W, 3) uint8 {what} array, got {getattr(image, 'dtype', type(image).__name__)} {shape}"
        )
    if min(image.shape[:2]) < 1:
        raise BadInput(f"the {what} array is empty")
    return image
