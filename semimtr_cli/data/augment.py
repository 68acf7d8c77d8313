"""Training augmentation pipelines: ABINet's regular one and SemiMTR's strong ones.

Every pipeline is a picklable callable ``pipeline(img, rng=None) -> np.ndarray``:

* ``img``: RGB uint8 array ``HxWx3`` or an RGB PIL image.
* returns: RGB uint8 array ``H'xW'x3`` (geometry may change the size; the 32x128 resize
  happens later in :func:`semimtr_cli.data.image.to_model_input`).
* ``rng``: a ``numpy.random.Generator`` for this call's random draws. When omitted, the
  pipeline's own generator (seeded at construction with ``seed``) is used.

Randomness design: parameters the official code freezes at construction (ABINet's geometric
type, its deterioration parameters) are drawn once from ``seed`` when the pipeline is built.
Per-call draws come from the ``rng`` argument, so a dataset can make every sample
reproducible regardless of worker assignment, e.g.
``pipeline(img, np.random.default_rng([seed, epoch, index]))``. A pipeline copied into
DataLoader workers carries the same owned generator state in each worker: pass ``rng``
explicitly, or call :meth:`reseed` in ``worker_init_fn``.

Names for :func:`build_pipeline`: ``abinet`` (weak/teacher view), ``strong1`` (SemiMTR
severity 1: student view and both SeqCLR views), ``strong2`` (severity 2, SeqCLR paper's
list), ``none``. Stage views: :data:`STAGE_VIEWS` and :func:`two_view`.
See docs/augmentation.md for the mapping to the official code and every difference.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from PIL import Image

from ..errors import UsageError
from . import augment_geometry as geo
from . import augment_photometric as ph

PIPELINE_NAMES = ("abinet", "strong1", "strong2", "none")

#: Views (first, second) of each training stage: fine-tuning = (teacher, student),
#: SeqCLR pre-training = two independent strong views of the same crop.
STAGE_VIEWS: dict[str, tuple[str, str]] = {
    "finetune": ("abinet", "strong1"),
    "seqclr": ("strong1", "strong1"),
}
_STAGE_ALIASES = {"teacher-student": "finetune", "fine-tune": "finetune", "pretrain": "seqclr"}


def _as_array(img) -> np.ndarray:
    if isinstance(img, Image.Image):
        img = img.convert("RGB") if img.mode != "RGB" else img
        return np.asarray(img)
    arr = np.asarray(img)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 HxWx3 array, got {arr.dtype} {arr.shape}")
    return arr


def _sym(rng: np.random.Generator, magnitude: float) -> float:
    """ABINet ``sample_sym``: (Beta(4,4) - 0.5) * 2 * magnitude, in [-magnitude, magnitude]."""
    return float((rng.beta(4, 4) - 0.5) * 2 * magnitude)


def _asym(rng: np.random.Generator, magnitude: float, size=None):
    """ABINet ``sample_asym``: Beta(1,4) * magnitude, in [0, magnitude]."""
    return rng.beta(1, 4, size) * magnitude


class Pipeline:
    """Base: owned generator, seed handling, ``__call__`` contract."""

    name = "base"

    def __init__(self, seed: int | None = None):
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def reseed(self, seed) -> None:
        """Reset the owned generator (frozen construction-time parameters are kept)."""
        self._rng = np.random.default_rng(seed)

    def __call__(self, img, rng: np.random.Generator | None = None) -> np.ndarray:
        arr = _as_array(img)
        out = self.apply(arr, self._rng if rng is None else rng)
        return np.ascontiguousarray(out)

    def apply(self, arr: np.ndarray, rng: np.random.Generator) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """JSON-able settings, including anything frozen at construction (for run logs)."""
        return {"pipeline": self.name, "seed": self.seed}


class Identity(Pipeline):
    """No augmentation (``none``): returns the image as an RGB uint8 array."""

    name = "none"

    def apply(self, arr, rng):
        return arr


# ============================================================================ ABINet


class AbinetAugment(Pipeline):
    """ABINet's regular training augmentation; SemiMTR's fine-tune teacher (weak) view.

    Mirrors ``Compose([CVGeometry(degrees=45, translate=(0, 0), scale=(0.5, 2), shear=(45, 15),
    distortion=0.5, p=0.5), CVDeterioration(var=20, degrees=6, factor=4, p=0.25),
    CVColorJitter(0.5, 0.5, 0.5, 0.1, p=0.25)])`` of ABINet/SemiMTR ``dataset.py``:

    * geometry (p ``geometry_p``): rotation (angle sym(45), canvas enlarged to the rotated
      size), affine (angle sym(45), scale U(0.5, 2) used as the official code does, shear
      sym(45)/sym(15), canvas from the min-area rectangle of the projected corners) or
      perspective (corners moved inward by asym(0.5*W/2), asym(0.5*H/2) ints, cropped);
      replicate border; interpolation random among nearest/linear/cubic/area.
      ``freeze_geometry_type=True`` (default, as official) picks ONE type at construction
      (u < 0.33 rotation, < 0.66 affine, else perspective); False picks per call.
    * deterioration (p ``deterioration_p``): Gaussian noise (variance max(int(asym(20)), 1)),
      motion blur (size max(int(asym(6)), 1), angle U(-90, 90), kernel / size), rescale
      (resize to 512x128, ``round(U(0, 4))`` pyrDowns, resize back, random interpolations),
      in a shuffled order. ``freeze_deterioration=True`` (default, as official) draws these
      parameters and the order once at construction; the noise itself is fresh per call.
      False redraws them per call.
    * colour jitter (p ``color_p``): torchvision ``ColorJitter(0.5, 0.5, 0.5, 0.1)`` semantics
      on PIL (random order of brightness/contrast/saturation/hue, fresh factors per call).

    Differences: warps/resizes run in PIL (same sampling geometry as OpenCV, bicubic kernel
    a = -0.5 vs OpenCV's -0.75); motion-blur sizes above 5 (probability ~0) are clipped to 5;
    borders of filters are replicated where OpenCV reflects.
    """

    name = "abinet"
    GEOMETRY_TYPES = ("rotation", "affine", "perspective")

    def __init__(
        self,
        seed: int | None = None,
        *,
        geometry_p: float = 0.5,
        deterioration_p: float = 0.25,
        color_p: float = 0.25,
        freeze_geometry_type: bool = True,
        freeze_deterioration: bool = True,
        geometry_type: str | None = None,
    ):
        super().__init__(seed)
        for key, p in (("geometry_p", geometry_p), ("deterioration_p", deterioration_p), ("color_p", color_p)):
            if not 0.0 <= p <= 1.0:
                raise UsageError(f"{key} must be in [0, 1], got {p}")
        if geometry_type is not None and geometry_type not in self.GEOMETRY_TYPES:
            raise UsageError(f"geometry_type must be one of {', '.join(self.GEOMETRY_TYPES)}, got {geometry_type!r}")
        self.geometry_p = geometry_p
        self.deterioration_p = deterioration_p
        self.color_p = color_p
        self.freeze_geometry_type = freeze_geometry_type or geometry_type is not None
        self.freeze_deterioration = freeze_deterioration
        init = np.random.default_rng(None if seed is None else [int(seed), 0xAB1])
        self.geometry_type = geometry_type or (self._draw_geometry_type(init) if self.freeze_geometry_type else None)
        self.deterioration = self._draw_deterioration(init) if freeze_deterioration else None

    # ---- construction-time draws (same distributions as the official constructors)
    @staticmethod
    def _draw_geometry_type(rng: np.random.Generator) -> str:
        u = rng.random()
        return "rotation" if u < 0.33 else "affine" if u < 0.66 else "perspective"

    @staticmethod
    def _draw_deterioration(rng: np.random.Generator) -> dict[str, Any]:
        var = max(int(_asym(rng, 20)), 1)
        size = min(max(int(_asym(rng, 6)), 1), 5)
        angle = float(rng.uniform(-90, 90))
        factor = int(round(float(rng.uniform(0, 4))))
        order = [str(s) for s in rng.permutation(["noise", "blur", "rescale"])]
        kernel = ph.abinet_motion_kernel(size, angle) if size > 1 else None
        return {"noise_var": var, "blur_size": size, "blur_angle": angle, "rescale_factor": factor, "order": order, "_kernel": kernel}

    # ---- per-call
    def apply(self, arr, rng):
        x = arr  # ndarray or PIL image between steps (avoids conversions on tiny crops)
        if self.geometry_p and rng.random() < self.geometry_p:
            x = self._geometry(x, rng)
        if self.deterioration_p and rng.random() < self.deterioration_p:
            x = self._deteriorate(_as_array(x), rng)
        if self.color_p and rng.random() < self.color_p:
            x = self._color_jitter(x if isinstance(x, Image.Image) else ph.to_pil(x), rng)
        return _as_array(x)

    def _geometry(self, arr, rng):
        kind = self.geometry_type or self._draw_geometry_type(rng)
        h, w = arr.shape[:2]
        if kind == "rotation":
            angle = _sym(rng, 45)
            return geo.abinet_rotate(arr, angle, geo.random_interpolation(rng), as_image=True)
        if kind == "affine":
            angle = _sym(rng, 45)
            scale = float(rng.uniform(0.5, 2.0))
            shear = (_sym(rng, 45), _sym(rng, 15))
            return geo.abinet_affine(arr, angle, scale, shear, geo.random_interpolation(rng), as_image=True)
        off_h = _asym(rng, 0.5 * h / 2, 4).astype(int)
        off_w = _asym(rng, 0.5 * w / 2, 4).astype(int)
        return geo.abinet_perspective(arr, off_w, off_h, geo.random_interpolation(rng), as_image=True)

    def _deteriorate(self, arr, rng):
        params = self.deterioration or self._draw_deterioration(rng)
        for step in params["order"]:
            if step == "noise":
                arr = ph.add_gaussian_noise(arr, rng, params["noise_var"] ** 0.5, per_channel=True, truncate=True)
            elif step == "blur":
                if params["_kernel"] is not None:
                    arr = ph.correlate(arr, params["_kernel"])
            elif params["rescale_factor"] > 0:
                up, down = geo.random_interpolation(rng), geo.random_interpolation(rng)
                arr = geo.pyramid_rescale(arr, params["rescale_factor"], up, down)
        return arr

    @staticmethod
    def _color_jitter(img: Image.Image, rng) -> Image.Image:
        for which in rng.permutation(4):
            if which == 0:
                img = ph.jitter_brightness(img, float(rng.uniform(0.5, 1.5)))
            elif which == 1:
                img = ph.jitter_contrast(img, float(rng.uniform(0.5, 1.5)))
            elif which == 2:
                img = ph.jitter_saturation(img, float(rng.uniform(0.5, 1.5)))
            else:
                img = ph.jitter_hue(img, float(rng.uniform(-0.1, 0.1)))
        return img

    def describe(self):
        out = super().describe()
        out.update(
            geometry_p=self.geometry_p,
            deterioration_p=self.deterioration_p,
            color_p=self.color_p,
            geometry_type=self.geometry_type or "per-call",
        )
        if self.deterioration is not None:
            out["deterioration"] = {k: v for k, v in self.deterioration.items() if not k.startswith("_")}
        else:
            out["deterioration"] = "per-call"
        return out


# ============================================================================ SemiMTR severity 1


def _channel_shuffle(arr, rng):
    if rng.random() < 0.35:
        return ph.channel_permute(arr, rng.permutation(3))
    return arr


def _grayscale(arr, rng):
    return ph.grayscale_blend(arr, float(rng.uniform(0.0, 1.0)))


def _kmeans(arr, rng):
    return ph.kmeans_quantize(arr, int(rng.integers(2, 17)), rng)


def _hist_eq(arr, rng):
    return ph.equalize_luma(arr)


def _dropout(arr, rng):
    return ph.dropout(arr, rng, float(rng.uniform(0.0, 0.2)), per_channel=bool(rng.random() < 0.5))


def _gamma(arr, rng):
    return ph.gamma_contrast(arr, float(rng.uniform(0.5, 2.0)))


def _brightness(arr, rng):
    space = "YCbCr" if rng.random() < 0.5 else "HSV"
    return ph.multiply_brightness(arr, float(rng.uniform(0.5, 1.5)), space)


def _hue_saturation(arr, rng):
    hue = int(rng.integers(-50, 51))
    sat = int(rng.integers(-50, 51))
    cv_units = int(hue / 255.0 * 180)  # imgaug maps the value to OpenCV hue units (0..180)
    return ph.add_hue_saturation(arr, round(cv_units * 256 / 180), sat)


def _temperature(arr, rng):
    return ph.color_temperature(arr, float(rng.uniform(1100, 10000)))


def _sharpen(arr, rng):
    return ph.correlate(arr, ph.sharpen_kernel(float(rng.uniform(0, 0.5)), float(rng.uniform(0, 0.5))))


def _gaussian_blur(arr, rng):
    return ph.gaussian_blur(arr, float(rng.uniform(0.5, 1.5)))


def _average_blur(arr, rng):
    return ph.box_blur(arr, int(rng.integers(2, 7)))


def _median_blur(arr, rng):
    k = int(rng.integers(3, 8))
    return ph.median_blur(arr, k if k % 2 else k + 1)


def _motion_blur(arr, rng):
    kernel = ph.imgaug_motion_kernel(5, float(rng.uniform(0, 360)), float(rng.uniform(-1, 1)))
    return ph.correlate(arr, kernel)


def _emboss(arr, rng):
    return ph.correlate(arr, ph.emboss_kernel(float(rng.uniform(0, 1)), float(rng.uniform(0.5, 1.5))))


def _gaussian_noise(arr, rng):
    return ph.add_gaussian_noise(arr, rng, float(rng.uniform(0, 0.2 * 255)), per_channel=False)


def _impulse(arr, rng):
    return ph.impulse_noise(arr, rng, 0.1)


def _multiply_elementwise(arr, rng):
    return ph.multiply_elementwise(arr, rng, 0.5, 1.5)


Op = Callable[[np.ndarray, np.random.Generator], np.ndarray]

COLOR_OPS: tuple[Op, ...] = (
    _channel_shuffle, _grayscale, _kmeans, _hist_eq, _dropout, _gamma, _brightness, _hue_saturation, _temperature,
)
BLUR_OPS: tuple[Op, ...] = (_gaussian_blur, _average_blur, _median_blur, _motion_blur)
NOISE_OPS: tuple[Op, ...] = (_emboss, _gaussian_noise, _impulse, _multiply_elementwise)


class Strong1Augment(Pipeline):
    """SemiMTR ``augmentation_severity=1`` (student view in fine-tuning, both SeqCLR views).

    Mirrors the imgaug ``Sequential`` of SemiMTR ``augmentation_pipelines.py``; photometric
    only, output size == input size:

    1. Invert (p 0.5).
    2. One of: ChannelShuffle (p 0.35); Grayscale (alpha U(0,1)); KMeansColorQuantization
       (2..16 colours); HistogramEqualization; Dropout (p U(0,0.2), per channel with p 0.5);
       GammaContrast (U(0.5,2)); MultiplyBrightness (U(0.5,1.5)); AddToHueAndSaturation
       (ints in [-50,50], hue and saturation drawn independently); ChangeColorTemperature
       (U(1100,10000) K).
    3. One of: Sharpen (alpha U(0,0.5), lightness U(0,0.5)); one of GaussianBlur (sigma
       U(0.5,1.5)), AverageBlur (k 2..6), MedianBlur (k 3/5/7), MotionBlur (k 5, angle
       U(0,360), direction U(-1,1)).
    4. One of: Emboss (alpha U(0,1), strength U(0.5,1.5)); AdditiveGaussianNoise (scale
       U(0,51), same for all channels); ImpulseNoise (10% of channel values); 
       MultiplyElementwise (U(0.5,1.5) per pixel).

    ``p`` (default 1.0, as official) is the probability that the whole pipeline is applied.

    Differences: k-means quantisation runs in RGB only (imgaug picks RGB or Lab) with PIL's
    median-cut + 2 k-means passes; histogram equalisation works on YCbCr luma (imgaug: Lab L);
    MultiplyBrightness picks YCbCr-Y or HSV-V (imgaug: YCrCb/HSV/HLS/Lab); colour
    temperature uses the fitted curve instead of imgaug's table; even AverageBlur sizes use a
    symmetric window with half-weight ends (OpenCV's is off-centre by half a pixel);
    Gaussian blur is PIL's (box approximation of the Gaussian).
    """

    name = "strong1"

    def __init__(self, seed: int | None = None, *, p: float = 1.0, invert_p: float = 0.5):
        super().__init__(seed)
        if not 0.0 <= p <= 1.0 or not 0.0 <= invert_p <= 1.0:
            raise UsageError(f"probabilities must be in [0, 1], got p={p}, invert_p={invert_p}")
        self.p = p
        self.invert_p = invert_p

    def apply(self, arr, rng):
        if self.p < 1.0 and rng.random() >= self.p:
            return arr
        if rng.random() < self.invert_p:
            arr = ph.invert(arr)
        arr = COLOR_OPS[int(rng.integers(len(COLOR_OPS)))](arr, rng)
        if rng.random() < 0.5:
            arr = _sharpen(arr, rng)
        else:
            arr = BLUR_OPS[int(rng.integers(len(BLUR_OPS)))](arr, rng)
        return NOISE_OPS[int(rng.integers(len(NOISE_OPS)))](arr, rng)

    def describe(self):
        out = super().describe()
        out.update(p=self.p, invert_p=self.invert_p)
        return out


# ============================================================================ SemiMTR severity 2


def _linear_contrast(arr, rng):
    return ph.linear_contrast(arr, float(rng.uniform(0.5, 1.0)))


def _vertical_crop(arr, rng):
    return geo.crop_keep_size(arr, float(rng.uniform(0, 0.4)), 0.0, float(rng.uniform(0, 0.4)), 0.0)


def _horizontal_crop(arr, rng):
    return geo.crop_keep_size(arr, 0.0, float(rng.uniform(0, 0.02)), 0.0, float(rng.uniform(0, 0.02)))


def _elastic(arr, rng):
    return geo.elastic_nearest(arr, rng, float(rng.uniform(0, 0.8)))


def _perspective(arr, rng):
    scale = float(rng.uniform(0.01, 0.02))
    return geo.corner_jitter_perspective(arr, rng.normal(0.0, scale, (4, 2)))


SEVERITY2_OPS: tuple[Op, ...] = (
    _linear_contrast, _gaussian_blur, _vertical_crop, _horizontal_crop, _sharpen, _elastic, _perspective,
)


class Strong2Augment(Pipeline):
    """SemiMTR ``augmentation_severity=2`` (the SeqCLR paper's list; unused by shipped configs).

    Mirrors imgaug ``SomeOf((1, None), [...], random_order=True)``: 1..7 distinct ops, random
    order, out of LinearContrast (U(0.5,1)); GaussianBlur (sigma U(0.5,1.5)); vertical Crop
    (top and bottom U(0,0.4) each, resized back); horizontal Crop (left and right U(0,0.02));
    Sharpen (alpha U(0,0.5), lightness U(0,0.5)); ElasticTransformation (alpha U(0,0.8),
    sigma 0.25, nearest, black outside); PerspectiveTransform (corner jitter N(0, U(0.01,0.02)),
    keep size). Output size == input size.

    Differences: crops are resized back with PIL bicubic; the elastic displacement field is
    not smoothed (sigma 0.25 is a no-op); the perspective maps the inner quadrilateral straight
    onto the output (imgaug warps to an intermediate size, then resizes).
    """

    name = "strong2"

    def __init__(self, seed: int | None = None, *, p: float = 1.0):
        super().__init__(seed)
        if not 0.0 <= p <= 1.0:
            raise UsageError(f"p must be in [0, 1], got {p}")
        self.p = p

    def apply(self, arr, rng):
        if self.p < 1.0 and rng.random() >= self.p:
            return arr
        n = int(rng.integers(1, len(SEVERITY2_OPS) + 1))
        for i in rng.permutation(len(SEVERITY2_OPS))[:n]:
            arr = SEVERITY2_OPS[int(i)](arr, rng)
        return arr

    def describe(self):
        out = super().describe()
        out.update(p=self.p)
        return out


# ============================================================================ factory, views

_BUILDERS = {"abinet": AbinetAugment, "strong1": Strong1Augment, "strong2": Strong2Augment, "none": Identity}


def build_pipeline(name: str, seed: int | None = None, **options) -> Pipeline:
    """Build a pipeline by name (``abinet``, ``strong1``, ``strong2``, ``none``).

    ``options`` are the class's keyword arguments (e.g. ``geometry_p=0``,
    ``freeze_geometry_type=False``).

    Raises:
        UsageError: unknown name or option.
    """
    key = str(name).strip().lower()
    if key not in _BUILDERS:
        raise UsageError(f"unknown augmentation pipeline {name!r}; choose one of {', '.join(PIPELINE_NAMES)}")
    try:
        return _BUILDERS[key](seed, **options)
    except TypeError as exc:
        raise UsageError(f"pipeline {key!r}: {exc}") from None


class TwoViewPipeline:
    """Two independent augmented views of the same crop: ``(img, rng) -> (view1, view2)``.

    Each view is computed from the original image (the student view is not stacked on the
    teacher view), as in SemiMTR's two-view datasets.
    """

    def __init__(self, first: Pipeline, second: Pipeline):
        self.first = first
        self.second = second

    def __call__(self, img, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self.first(img, rng), self.second(img, rng)

    def reseed(self, seed) -> None:
        self.first.reseed(seed)
        self.second.reseed(None if seed is None else [int(np.asarray(seed).ravel()[0]), 1])

    def describe(self) -> dict[str, Any]:
        return {"first": self.first.describe(), "second": self.second.describe()}


def stage_view_names(stage: str) -> tuple[str, str]:
    """Pipeline names of a stage's two views (``finetune``/``teacher-student``, ``seqclr``)."""
    key = _STAGE_ALIASES.get(stage.strip().lower(), stage.strip().lower())
    if key not in STAGE_VIEWS:
        raise UsageError(f"unknown two-view stage {stage!r}; choose one of finetune (teacher-student), seqclr")
    return STAGE_VIEWS[key]


def two_view(stage: str, seed: int | None = None, **options) -> TwoViewPipeline:
    """The two-view pipeline of a stage: ``finetune`` = (abinet teacher, strong1 student),
    ``seqclr`` = (strong1, strong1). ``options`` go to both pipelines when they accept them."""
    first, second = stage_view_names(stage)
    seeds = (None, None) if seed is None else (int(seed), int(seed) + 1)
    return TwoViewPipeline(
        build_pipeline(first, seeds[0], **_accepted(first, options)),
        build_pipeline(second, seeds[1], **_accepted(second, options)),
    )


def _accepted(name: str, options: dict) -> dict:
    import inspect

    params = inspect.signature(_BUILDERS[name].__init__).parameters
    return {k: v for k, v in options.items() if k in params}
