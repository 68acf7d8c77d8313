"""ABINet's regular training augmentation (pipeline ``abinet``): SemiMTR's weak/teacher view."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from semimtr_cli.core.errors import UsageError
from semimtr_cli.data.augment import geometry as geo
from semimtr_cli.data.augment import photometric as ph
from semimtr_cli.data.augment.base import Pipeline, as_rgb_array, sample_asym, sample_sym


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

    Differences: warps and resizes run in PIL, bilinear resizes in torch's uint8 kernel (same
    sampling geometry as OpenCV, bicubic kernel a = -0.5 vs OpenCV's -0.75); motion-blur sizes
    above 5 (probability ~0) are clipped to 5; borders of filters are replicated where OpenCV
    reflects.
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
        var = max(int(sample_asym(rng, 20)), 1)
        size = min(max(int(sample_asym(rng, 6)), 1), 5)
        angle = float(rng.uniform(-90, 90))
        factor = int(round(float(rng.uniform(0, 4))))
        order = [str(s) for s in rng.permutation(["noise", "blur", "rescale"])]
        return AbinetAugment.deterioration_settings(var, size, angle, factor, order)

    @staticmethod
    def deterioration_settings(noise_var: int, blur_size: int, blur_angle: float, rescale_factor: int,
                               order: list[str]) -> dict[str, Any]:
        """The frozen deterioration of one construction (assign to ``.deterioration``): Gaussian
        noise variance, motion-blur size (px) and angle (degrees), pyramid rescale factor, and the
        order of the three steps; the blur kernel is built here once."""
        kernel = ph.abinet_motion_kernel(blur_size, blur_angle) if blur_size > 1 else None
        return {"noise_var": noise_var, "blur_size": blur_size, "blur_angle": blur_angle,
                "rescale_factor": rescale_factor, "order": list(order), "_kernel": kernel}

    # ---- per-call
    def apply(self, arr, rng):
        x = arr  # ndarray or PIL image between steps (avoids conversions on tiny crops)
        if self.geometry_p and rng.random() < self.geometry_p:
            x = self._geometry(x, rng)
        if self.deterioration_p and rng.random() < self.deterioration_p:
            x = self._deteriorate(as_rgb_array(x), rng)
        if self.color_p and rng.random() < self.color_p:
            x = self._color_jitter(x if isinstance(x, Image.Image) else ph.to_pil(x), rng)
        return as_rgb_array(x)

    def _geometry(self, arr, rng):
        kind = self.geometry_type or self._draw_geometry_type(rng)
        h, w = arr.shape[:2]
        if kind == "rotation":
            angle = sample_sym(rng, 45)
            return geo.abinet_rotate(arr, angle, geo.random_interpolation(rng), as_image=True)
        if kind == "affine":
            angle = sample_sym(rng, 45)
            scale = float(rng.uniform(0.5, 2.0))
            shear = (sample_sym(rng, 45), sample_sym(rng, 15))
            return geo.abinet_affine(arr, angle, scale, shear, geo.random_interpolation(rng), as_image=True)
        off_h = sample_asym(rng, 0.5 * h / 2, 4).astype(int)
        off_w = sample_asym(rng, 0.5 * w / 2, 4).astype(int)
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
