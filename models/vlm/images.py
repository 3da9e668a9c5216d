"""Bytes in, an upright RGB picture of bounded size out (or why not)."""

from __future__ import annotations

import io

from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["FORMATS", "UnreadableImage", "decode"]

FORMATS = ("JPEG", "PNG", "WEBP")  # what device.image.camera.raw and screen.raw may carry


class UnreadableImage(ValueError):
    """The bytes are not an image this server takes (format, damage, size)."""


def decode(raw: bytes, *, max_pixels: int, max_side: int) -> Image.Image:
    """``raw`` as an RGB image turned upright as its EXIF orientation says, scaled down
    (aspect kept) to at most ``max_side`` on its longer side."""
    try:
        with Image.open(io.BytesIO(raw), formats=FORMATS) as image:
            if image.width * image.height > max_pixels:
                raise UnreadableImage(
                    f"the image is {image.width}x{image.height} pixels, more than "
                    f"{max_pixels} (LOOM_VLM_MAX_PIXELS)"
                )
            image.draft("RGB", (max_side, max_side))  # a JPEG decodes at 1/2, 1/4 … if it can
            upright = ImageOps.exif_transpose(image).convert("RGB")
    except UnidentifiedImageError:
        raise UnreadableImage("the bytes are not a readable JPEG, PNG or WebP image") from None
    except UnreadableImage:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UnreadableImage(f"the image cannot be decoded: {exc}") from None
    if max(upright.size) > max_side:
        upright.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return upright
