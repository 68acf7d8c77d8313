"""Decoding and the one model-input pipeline used at train, eval and read time.

Pipeline (identical to the official code's): decode -> RGB -> bilinear resize to 32x128
ignoring aspect ratio -> [0, 1] -> ImageNet mean/std.

The official code resizes with OpenCV ``INTER_LINEAR`` on uint8 (no antialiasing, output
rounded to uint8). We resize with ``torch.nn.functional.interpolate(mode="bilinear",
align_corners=False, antialias=False)`` on the uint8 image -- the same sampling grid, fixed-point
weights, rounded -- so results agree with OpenCV's within one grey level. PIL's ``BILINEAR`` is
*not* used: it antialiases when shrinking and would shift the input distribution away from the
official checkpoints'.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from semimtr_cli.core.errors import SemimtrError

#: Smallest usable crop side in pixels: the official loader rejects crops whose width or height is <= 6 px.
MIN_SIDE = 7

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_HEIGHT = 32
DEFAULT_WIDTH = 128
MAX_PIXELS_DEFAULT = 50_000_000  # decompression-bomb guard for word crops

_MEAN = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(3, 1, 1)
# (levels / 255 - mean) / std == levels * _SCALE - _SHIFT, one fused multiply-add
_SCALE = 1.0 / (255.0 * _STD)
_SHIFT = _MEAN / _STD


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB conversion that keeps 16-bit and float grey images visible.

    PIL's own ``convert("RGB")`` clips 16-bit (``I;16``/``I``) and float (``F``) images to
    0..255, turning most of them white; we rescale their full range to 8 bits instead.
    """
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        if img.mode in ("I", "F") and arr.max() <= 255:
            hi = 255.0
        arr8 = np.clip(arr * (255.0 / hi), 0, 255).round().astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img if img.mode == "RGB" else img.convert("RGB")


def decode_image(data: bytes, *, max_pixels: int = MAX_PIXELS_DEFAULT, name: str = "image") -> Image.Image:
    """Encoded bytes -> RGB PIL image, EXIF orientation applied.

    Raises:
        SemimtrError: if the bytes are empty, not an image, truncated, or larger than
            ``max_pixels`` (``name`` is used in the message).
    """
    if not data:
        raise SemimtrError(f"{name}: zero bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise SemimtrError(f"{name}: {w}x{h} pixels exceeds the limit of {max_pixels}")
            img.load()
            if img.info.get("exif") or getattr(img, "tag_v2", None) is not None:  # orientation lives there
                img = ImageOps.exif_transpose(img) or img
            return _to_rgb(img)
    except SemimtrError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise SemimtrError(f"{name}: {exc}") from None
    except Exception as exc:  # PIL raises many types for broken files
        raise SemimtrError(f"{name}: not a readable image ({type(exc).__name__}: {exc})") from None


def as_uint8_array(img: Image.Image | np.ndarray) -> np.ndarray:
    """HxWx3 uint8 array of an RGB PIL image or array; ValueError for anything else.

    An array comes back as is; a PIL image as a writable copy of its pixels (so
    ``torch.from_numpy`` needs no second copy downstream)."""
    if isinstance(img, Image.Image):
        if img.mode != "RGB":
            img = img.convert("RGB")
        w, h = img.size
        return np.frombuffer(bytearray(img.tobytes()), np.uint8).reshape(h, w, 3)
    arr = np.asarray(img)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 array, got {arr.dtype} {arr.shape}")
    return arr


def resize_levels(img: Image.Image | np.ndarray, height: int = DEFAULT_HEIGHT, width: int = DEFAULT_WIDTH) -> torch.Tensor:
    """Bilinear (OpenCV ``INTER_LINEAR``-like) resize ignoring aspect ratio, on uint8.

    Returns a uint8 tensor (3, height, width) in channels-last memory (a view of an HxWx3 block).
    torch's uint8 bilinear kernel (the one torchvision.transforms.v2 resizes with; SIMD on x86)
    works in fixed point and rounds, as OpenCV does; no resampling at the target size.
    """
    arr = as_uint8_array(img)
    if not arr.flags.writeable or not arr.flags.c_contiguous:
        arr = np.array(arr, order="C")  # torch refuses read-only memory (PIL-backed arrays)
    t = torch.from_numpy(arr).permute(2, 0, 1)
    if t.shape[1] == height and t.shape[2] == width:
        return t
    return F.interpolate(t.unsqueeze(0), size=(height, width), mode="bilinear", align_corners=False, antialias=False)[0]


def normalize_levels(levels: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) 0..255 levels (any dtype, on the CPU) -> ImageNet-normalised contiguous
    float32, same shape. (Writing into a preallocated contiguous ``out=`` from the resize's
    output took twice as long on word crops.)"""
    return torch.mul(levels, _SCALE).sub_(_SHIFT).contiguous()  # uint8 * float32 -> float32


def to_model_input(img: Image.Image | np.ndarray, height: int = DEFAULT_HEIGHT, width: int = DEFAULT_WIDTH) -> torch.Tensor:
    """The model-input pipeline: RGB image -> float32 tensor (3, height, width), normalised."""
    return normalize_levels(resize_levels(img, height, width))


def rotate_tall(img: Image.Image | np.ndarray) -> Image.Image | np.ndarray:
    """Rotate a crop taller than twice its width by 90 degrees counter-clockwise, so vertical
    text written top to bottom reads left to right. A PIL image or an HxWx3 array, returned as
    the same kind (unchanged, the same object, when not tall)."""
    if isinstance(img, Image.Image):
        return img.transpose(Image.Transpose.ROTATE_90) if img.height > 2 * img.width else img
    return np.ascontiguousarray(np.rot90(img)) if img.shape[0] > 2 * img.shape[1] else img


def denormalize(x: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`to_model_input` for previews: (3,H,W) tensor -> HxWx3 uint8."""
    levels = (x.detach().cpu().float() * _STD + _MEAN) * 255.0
    return levels.round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
