"""Augmentation pipelines: contract (RGB uint8 in/out), determinism, gates, pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

from semimtr_cli.core.errors import UsageError
from semimtr_cli.data.augment import geometry as geo
from semimtr_cli.data.augment import photometric as ph
from semimtr_cli.data.augment.base import pad_edges
from semimtr_cli.data.augment.pipelines import build_pipeline, two_view
from semimtr_cli.train.preview import pipeline_views

NAMES = ("abinet", "strong1", "strong2", "none")


def _crop(h=31, w=69, seed=0):
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), rng.integers(60, 200, 3), dtype=np.uint8)
    img[h // 3 : 2 * h // 3, w // 5 : 4 * w // 5] = 255 - img[0, 0]
    return img


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [(1, 1), (8, 8), (31, 69), (5, 200), (240, 520)])
def test_pipeline_returns_rgb_uint8(name, size):
    img = np.random.default_rng(1).integers(0, 256, size + (3,), dtype=np.uint8)
    opts = {"geometry_p": 1.0, "deterioration_p": 1.0, "color_p": 1.0, "freeze_geometry_type": False,
            "freeze_deterioration": False} if name == "abinet" else {}
    pipe = build_pipeline(name, seed=0, **opts)
    for i in range(12):
        out = pipe(img, np.random.default_rng(i))
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
        assert out.shape[0] >= 1 and out.shape[1] >= 1
        assert out.flags["C_CONTIGUOUS"]


def test_accepts_pil_image():
    img = Image.fromarray(_crop(), "RGB")
    for name in NAMES:
        out = build_pipeline(name, seed=0)(img, np.random.default_rng(0))
        assert isinstance(out, np.ndarray) and out.dtype == np.uint8


def test_rejects_non_rgb_array():
    with pytest.raises(ValueError):
        build_pipeline("strong1", seed=0)(np.zeros((8, 8), np.uint8))


@pytest.mark.parametrize("name", ["abinet", "strong1", "strong2"])
def test_deterministic_with_fixed_seed_and_differs_across_seeds(name):
    img = _crop()
    outs_a = [build_pipeline(name, seed=3)(img, np.random.default_rng([5, i])) for i in range(10)]
    outs_b = [build_pipeline(name, seed=3)(img, np.random.default_rng([5, i])) for i in range(10)]
    assert all(np.array_equal(a, b) for a, b in zip(outs_a, outs_b))
    outs_c = [build_pipeline(name, seed=3)(img, np.random.default_rng([6, i])) for i in range(10)]
    assert any(a.shape != c.shape or not np.array_equal(a, c) for a, c in zip(outs_a, outs_c))


def test_owned_generator_is_seeded_and_reseedable():
    img = _crop()
    p1, p2 = build_pipeline("strong1", seed=11), build_pipeline("strong1", seed=11)
    assert all(np.array_equal(p1(img), p2(img)) for _ in range(5))
    p1.reseed(99)
    p2.reseed(99)
    assert np.array_equal(p1(img), p2(img))


def test_zero_probabilities_are_identity():
    img = _crop()
    abinet = build_pipeline("abinet", seed=0, geometry_p=0, deterioration_p=0, color_p=0)
    s1 = build_pipeline("strong1", seed=0, p=0)
    s2 = build_pipeline("strong2", seed=0, p=0)
    for i in range(20):
        for pipe in (abinet, s1, s2, build_pipeline("none")):
            assert np.array_equal(pipe(img, np.random.default_rng(i)), img)


def test_abinet_untouched_fraction_matches_gates():
    # P(untouched) = 0.5 * 0.75 * 0.75 = 0.28125 (a gate that fires always changes this crop)
    img = _crop()
    pipe = build_pipeline("abinet", seed=0, geometry_type="rotation", freeze_deterioration=False)
    rng = np.random.default_rng(0)
    n = 600
    same = sum(np.array_equal(pipe(img, rng), img) for _ in range(n))
    assert 0.22 < same / n < 0.36


def test_abinet_freezes_geometry_type_by_default():
    kinds = {build_pipeline("abinet", seed=s).geometry_type for s in range(30)}
    assert kinds == {"rotation", "affine", "perspective"}
    p = build_pipeline("abinet", seed=0)
    assert p.describe()["geometry_type"] in kinds
    assert build_pipeline("abinet", seed=0, freeze_geometry_type=False).geometry_type is None
    det = build_pipeline("abinet", seed=4).describe()["deterioration"]
    assert det["noise_var"] >= 1 and 1 <= det["blur_size"] <= 5 and 0 <= det["rescale_factor"] <= 4
    assert sorted(det["order"]) == ["blur", "noise", "rescale"]
    assert build_pipeline("abinet", seed=4, freeze_deterioration=False).describe()["deterioration"] == "per-call"


def test_abinet_geometry_changes_canvas_for_rotation():
    img = _crop()
    pipe = build_pipeline("abinet", seed=0, geometry_type="rotation", geometry_p=1, deterioration_p=0, color_p=0)
    shapes = {pipe(img, np.random.default_rng(i)).shape for i in range(10)}
    assert any(s[:2] != img.shape[:2] for s in shapes)


@pytest.mark.parametrize("name", ["strong1", "strong2"])
def test_strong_pipelines_keep_size(name):
    pipe = build_pipeline(name, seed=0)
    for i, size in enumerate([(31, 69), (8, 8), (64, 17), (3, 120)]):
        img = np.random.default_rng(i).integers(0, 256, size + (3,), dtype=np.uint8)
        for j in range(15):
            assert pipe(img, np.random.default_rng([i, j])).shape == img.shape


def test_strong1_changes_most_images():
    img = _crop()
    pipe = build_pipeline("strong1", seed=0)
    changed = sum(not np.array_equal(pipe(img, np.random.default_rng(i)), img) for i in range(50))
    assert changed >= 45


@pytest.mark.parametrize("name", ["abinet", "strong1", "strong2", "none"])
def test_pickle_round_trip_keeps_behaviour(name):
    pipe = build_pipeline(name, seed=5)
    clone = pickle.loads(pickle.dumps(pipe))
    img = _crop()
    for i in range(5):
        assert np.array_equal(pipe(img, np.random.default_rng(i)), clone(img, np.random.default_rng(i)))
    tv = pickle.loads(pickle.dumps(two_view("abinet", "strong1", seed=1)))
    a, b = tv(img, np.random.default_rng(0))
    assert a.dtype == np.uint8 and b.shape == img.shape


def test_factory_and_stage_views():
    """The stage choices of show-aug are the paper recipes' views (AugmentConfig defaults)."""
    assert pipeline_views("teacher-student") == (("teacher", "abinet"), ("student", "strong1"))
    assert pipeline_views("seqclr") == (("view A", "strong1"), ("view B", "strong1"))
    assert pipeline_views("strong2") == (("strong2", "strong2"),)
    with pytest.raises(UsageError):
        pipeline_views("finetune")
    tv = two_view("strong1", "strong1", seed=0)
    assert tv.first.name == "strong1" and tv.second.name == "strong1"
    a, b = tv(_crop(), np.random.default_rng(0))
    assert not np.array_equal(a, b)
    with pytest.raises(UsageError):
        build_pipeline("strong3")
    with pytest.raises(UsageError):
        build_pipeline("abinet", bogus=1)
    with pytest.raises(UsageError):
        build_pipeline("abinet", geometry_p=1.5)
    with pytest.raises(UsageError):
        two_view("nope", "strong1")


# ----------------------------------------------------------------------------- building blocks


def test_median_blur_matches_pil():
    from PIL import ImageFilter

    img = np.random.default_rng(0).integers(0, 256, (13, 21, 3), dtype=np.uint8)
    for k in (3, 5, 7):
        ref = np.asarray(Image.fromarray(img).filter(ImageFilter.MedianFilter(k)))
        assert np.array_equal(ph.median_blur(img, k), ref)


def test_correlate_matches_numpy_in_interior():
    img = np.random.default_rng(0).integers(0, 256, (12, 15, 3), dtype=np.uint8)
    kernel = ph.emboss_kernel(0.7, 1.2)
    out = ph.correlate(img, kernel).astype(np.int32)
    f = img.astype(np.float64)
    ref = sum(kernel[dy, dx] * f[dy : dy + 10, dx : dx + 13] for dy in range(3) for dx in range(3))
    ref = np.clip(np.rint(ref), 0, 255)
    assert np.abs(out[1:-1, 1:-1] - ref).max() <= 1


def test_pyr_down_halves_size_and_keeps_flat_levels():
    flat = np.full((128, 512, 3), 77, np.uint8)
    out = geo.pyr_down(flat)
    assert out.shape == (64, 256, 3) and (out == 77).all()
    assert geo.pyr_down(np.zeros((31, 69, 3), np.uint8)).shape == (16, 35, 3)


def test_pyr_down_equals_the_direct_5x5_binomial():
    """The planar two-pass version against the definition: the 5x5 outer product of 1-4-6-4-1 over a
    reflect-101 padding (numpy's "reflect"), every second pixel, (sum + 128) >> 8."""
    rng = np.random.default_rng(3)
    taps = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1])
    for h, w in ((3, 3), (7, 12), (31, 69), (32, 128), (17, 5)):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        p = np.pad(img.astype(np.int64), ((2, 2), (2, 2), (0, 0)), mode="reflect")
        full = sum(taps[dy, dx] * p[dy : dy + h, dx : dx + w] for dy in range(5) for dx in range(5))
        ref = ((full[::2, ::2] + 128) >> 8).astype(np.uint8)
        assert np.array_equal(geo.pyr_down(img), ref), (h, w)


def test_pad_edges_replicates_like_numpy_edge_mode():
    img = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for sides in ((0, 0, 0, 0), (3, 0, 2, 9), (0, 4, 0, 1), (6, 6, 6, 6)):
        t, b, l, r = sides
        assert np.array_equal(pad_edges(img, *sides), np.pad(img, ((t, b), (l, r), (0, 0)), mode="edge")), sides


def test_bilinear_enlarge_equals_pil_and_contrast_equals_image_enhance():
    """Speed-ups that must not change a pixel: torch's uint8 bilinear enlargement (the rescale's
    way up) against PIL's, and the contrast jitter against ``ImageEnhance.Contrast``."""
    from PIL import ImageEnhance

    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (23, 61, 3), dtype=np.uint8)
    pil = Image.fromarray(img)
    for w, h in ((256, 64), (128, 32), (61, 40)):
        assert np.array_equal(geo.resize_cv2_like(img, w, h, geo.LINEAR), np.asarray(pil.resize((w, h), Image.Resampling.BILINEAR)))
    for factor in (0.0, 0.5, 0.93, 1.5, 2.7):
        assert np.array_equal(np.asarray(ph.jitter_contrast(pil, factor)), np.asarray(ImageEnhance.Contrast(pil).enhance(factor)))


def test_pyr_down_reflects_short_sides_as_opencv():
    """BORDER_REFLECT_101 on a side of 2 repeats the reflection: rows -2..3 of [a0, a1] are
    a0 a1 | a0 a1 | a0 a1, so the single output row is (8 a0 + 8 a1) / 16 (cv2.pyrDown gives 80 here)."""
    two_rows = np.zeros((2, 9, 3), np.uint8)
    two_rows[1] = 160
    out = geo.pyr_down(two_rows)
    assert out.shape == (1, 5, 3) and (out == 80).all()
    assert list(geo.reflect101_index(2, 2)) == [0, 1, 0, 1, 0, 1]
    assert list(geo.reflect101_index(5, 2)) == [2, 1, 0, 1, 2, 3, 4, 3, 2]
    assert list(geo.reflect101_index(1, 2)) == [0] * 5


def test_rotation_replicates_border():
    img = np.full((20, 40, 3), 123, np.uint8)
    out = geo.abinet_rotate(img, 30.0, geo.LINEAR)
    assert out.shape[0] > 20 and (np.abs(out.astype(int) - 123) <= 1).all()


def test_min_area_rect_of_axis_aligned_box():
    assert geo.min_area_rect_bounds([(0, 0), (10, 0), (10, 5), (0, 5)]) == (0, 0, 10, 5)


def test_kelvin_multipliers_are_warm_to_cool():
    warm, cool = ph.kelvin_to_rgb(1100), ph.kelvin_to_rgb(10000)
    assert warm[0] == 1.0 and warm[2] < 0.1
    assert cool[2] == 1.0 and cool[0] < 0.85
