"""SemiMTR's strong augmentations: severity 1 (``strong1``: student and SeqCLR views) and
severity 2 (``strong2``: the SeqCLR paper's list), one small op function per imgaug augmenter."""

from __future__ import annotations

from semimtr_cli.core.errors import UsageError
from semimtr_cli.data.augment import geometry as geo
from semimtr_cli.data.augment import photometric as ph
from semimtr_cli.data.augment.base import Op, Pipeline

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
