"""Images as the model servers take them: base64 in a request, decoded upright.

``image_bytes`` reads a request's ``"image"`` (base64, bounded before it is decoded);
``decode`` opens the bytes (JPEG, PNG or WebP, bounded in pixels before they are
decoded) as an RGB picture turned upright as its EXIF orientation says (phones store
most photos sideways), scaled down to a bounded side if asked.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

from kserve.errors import InvalidInput
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["FORMATS", "UnreadableImage", "decode", "image_bytes"]

FORMATS = ("JPEG", "PNG", "WEBP")  # what device.image.camera.raw and screen.raw may carry


class UnreadableImage(ValueError):
    """The bytes are not an image this server takes (format, damage, size)."""


def image_bytes(payload: dict[str, Any], limit: int, setting: str) -> bytes:
    """The bytes of ``payload["image"]`` (base64); a request without one, with one of more
    than ``limit`` bytes (the ``setting`` that says so) or not base64 is refused (400)."""
    text = payload.get("image")
    if not isinstance(text, str) or not text:
        raise InvalidInput("expected 'image': the image's bytes as base64")
    if len(text) > (limit + 2) // 3 * 4:
        raise InvalidInput(
            f"the image is about {len(text) * 3 // 4} bytes, more than {limit} ({setting})"
        )
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"'image' is not valid base64: {exc}") from None


def decode(
    raw: bytes, *, max_pixels: int, setting: str, max_side: int | None = None
) -> Image.Image:
    """``raw`` as an RGB image turned upright as its EXIF orientation says; with
    ``max_side``, scaled down (aspect kept) to at most that on its longer side. More than
    ``max_pixels`` (the ``setting`` that says so) is :class:`UnreadableImage`."""
    try:
        with Image.open(io.BytesIO(raw), formats=FORMATS) as image:
            if image.width * image.height > max_pixels:
                raise UnreadableImage(
                    f"the image is {image.width}x{image.height} pixels, more than "
                    f"{max_pixels} ({setting})"
                )
            if max_side is not None:  # a JPEG decodes at 1/2, 1/4 … if it can
                image.draft("RGB", (max_side, max_side))
            upright = ImageOps.exif_transpose(image).convert("RGB")
    except UnidentifiedImageError:
        raise UnreadableImage("the bytes are not a readable JPEG, PNG or WebP image") from None
    except UnreadableImage:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UnreadableImage(f"the image cannot be decoded: {exc}") from None
    if max_side is not None and max(upright.size) > max_side:
        upright.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return upright
