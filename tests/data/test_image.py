import io

import numpy as np
import pytest
import torch
from PIL import Image

from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.data.image import (
    IMAGENET_MEAN, decode_image, denormalize, normalize_levels, resize_levels, to_model_input,
)


def _encode(img, fmt="PNG", **kw):
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_model_input_shape_and_normalisation():
    arr = np.full((32, 128, 3), 255, np.uint8)
    x = to_model_input(arr)
    assert x.shape == (3, 32, 128) and x.dtype == torch.float32
    expected = (1.0 - IMAGENET_MEAN[0]) / 0.229
    assert torch.allclose(x[0], torch.full((32, 128), expected))
    assert np.array_equal(denormalize(x), arr)


def test_no_resample_at_target_size_and_bilinear_otherwise():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (32, 128, 3), dtype=np.uint8)
    assert torch.equal(resize_levels(arr).float(), torch.from_numpy(arr).permute(2, 0, 1).float())
    # 2x upscale of a 2-pixel ramp: bilinear with half-pixel centres, no antialiasing
    ramp = np.zeros((1, 2, 3), np.uint8)
    ramp[0, 1] = 200
    out = resize_levels(ramp, 1, 4).float()[0, 0].tolist()
    assert out == [0.0, 50.0, 150.0, 200.0]
    # shrinking does not antialias either: 4 -> 2 samples at x = 0.5 and 2.5 (means of neighbours)
    row = np.array([[[0] * 3, [100] * 3, [200] * 3, [40] * 3]], np.uint8)
    assert resize_levels(row, 1, 2).float()[0, 0].tolist() == [50.0, 120.0]


def test_model_input_same_for_pil_and_array_and_inputs_untouched():
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (23, 61, 3), dtype=np.uint8)
    before = arr.copy()
    x = to_model_input(arr)
    assert x.is_contiguous() and x.shape == (3, 32, 128)
    assert torch.equal(x, to_model_input(Image.fromarray(arr)))
    assert np.array_equal(arr, before)
    levels = torch.full((3, 32, 128), 255.0)
    assert torch.equal(normalize_levels(levels), to_model_input(np.full((32, 128, 3), 255, np.uint8)))
    assert float(levels.min()) == 255.0  # float levels are not normalised in place


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16", "LA"])
def test_decode_modes_to_rgb(mode):
    base = Image.new("RGB", (20, 10), (10, 200, 30))
    if mode == "I;16":
        img = Image.fromarray(np.full((10, 20), 40000, np.uint16))
    else:
        img = base.convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "I;16") else "PNG"
    out = decode_image(_encode(img, fmt))
    assert out.mode == "RGB" and out.size == (20, 10)
    if mode == "I;16":
        assert 150 < np.asarray(out)[0, 0, 0] < 160  # 40000/65535*255 = 155.6, not clipped white


def test_exif_rotation_applied():
    img = Image.new("RGB", (40, 10), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    out = decode_image(_encode(img, "JPEG", exif=exif.tobytes()))
    assert out.size == (10, 40)


def test_bad_bytes_are_clear_errors():
    with pytest.raises(SemimtrError, match="zero bytes"):
        decode_image(b"", name="x.png")
    with pytest.raises(SemimtrError, match="x.png: not a readable image"):
        decode_image(b"not an image", name="x.png")
    with pytest.raises(SemimtrError, match="exceeds the limit"):
        decode_image(_encode(Image.new("RGB", (100, 100))), max_pixels=500)
