"""Small data makers shared by the tests."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw


def word_png(text: str, size=(64, 24), seed: int = 0, fmt: str = "PNG") -> bytes:
    """Encoded image bytes of ``text`` drawn on a random light background."""
    rng = np.random.default_rng(seed)
    bg = tuple(int(x) for x in rng.integers(150, 255, 3))
    img = Image.new("RGB", size, bg)
    ImageDraw.Draw(img).text((2, 4), text, fill=(0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()
