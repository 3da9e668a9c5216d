"""An event's image as the model server takes it: its bytes (inline or by blob
reference), checked to be an image, scaled down when it is larger than it needs to be.

Scaling uses Pillow, which comes with the ``models`` extra. Without it (a core install
that reaches a remote model server through ``LOOM_MODEL_URLS``) images go as they came,
checked by their first bytes only, and the server scales them and refuses what it cannot
decode; either way an undecodable image is a dead letter.
"""

from __future__ import annotations

import io
from typing import Any

from loom.runtime.invoke import PoisonEvent
from loom.store import BlobStore
from loom.store.media import media_bytes

__all__ = ["image_bytes", "shrink"]

_FORMATS = ("JPEG", "PNG", "WEBP")
_MAGIC = ((b"\xff\xd8\xff", 0), (b"\x89PNG\r\n\x1a\n", 0), (b"WEBP", 8))


async def image_bytes(data: dict[str, Any], blobs: BlobStore) -> bytes:
    """The bytes of ``image_data`` (base64) or of the blob ``blob_ref`` names."""
    return await media_bytes(data, blobs, inline="image_data", ref="blob_ref", what="image")


def shrink(raw: bytes, *, max_side: int, max_pixels: int) -> bytes:
    """``raw`` if it is a decodable image no larger than ``max_side``; a scaled-down,
    upright copy if it is larger (PNG for a PNG or a picture with transparency, else JPEG)."""
    try:
        from PIL import Image, ImageOps, UnidentifiedImageError
    except ImportError:
        if not any(raw[at : at + len(magic)] == magic for magic, at in _MAGIC):
            raise PoisonEvent("the image's bytes are not a JPEG, PNG or WebP image") from None
        return raw
    try:
        with Image.open(io.BytesIO(raw), formats=_FORMATS) as image:
            if image.width * image.height > max_pixels:
                raise PoisonEvent(
                    f"the image is {image.width}x{image.height} pixels, more than {max_pixels} "
                    "(LOOM_VISION_MAX_PIXELS)"
                )
            if max(image.size) <= max_side:
                image.load()  # decodable as it is: it goes unchanged, EXIF and all
                return raw
            source = image.format
            image.draft(image.mode if image.mode in ("RGB", "L") else "RGB", (max_side, max_side))
            upright = ImageOps.exif_transpose(image)
    except UnidentifiedImageError:
        raise PoisonEvent("the image's bytes are not a readable JPEG, PNG or WebP image") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise PoisonEvent(f"the image cannot be decoded: {exc}") from None
    clear = "A" in upright.getbands() or "transparency" in upright.info
    if upright.mode not in ("RGB", "L"):
        upright = upright.convert("RGBA" if clear else "RGB")
    upright.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if source == "PNG" or clear:
        upright.save(out, format="PNG")
    else:
        upright.save(out, format="JPEG", quality=90)
    return out.getvalue()
