"""Small data makers shared by the tests, and a loader for the repository's scripts."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

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


def load_script(path: str):
    """The module of a script outside the package (``experiments/x.py``, ``benchmarks/y.py``),
    registered in ``sys.modules`` under its file name (dataclasses look their module up)."""
    file = Path(__file__).resolve().parents[1] / path
    spec = importlib.util.spec_from_file_location(file.stem, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
