"""Times the official augmentation pipelines; run by augment_speed.py in the official code's environment.

    OFFICIAL_PYTHON benchmarks/official_augment.py --repo CLONE --crops crops.npz --calls 3000 --repeats 3

CLONE is a local copy of amazon-science/semimtr-text-recognition; OFFICIAL_PYTHON an interpreter
with its requirements (imgaug 0.4, opencv, numpy < 2, torchvision). Each pipeline runs the way the
official dataset classes run it, on one thread, resize to 32x128 and ToTensor included:

* ``abinet``: ``Compose([CVGeometry, CVDeterioration, CVColorJitter])`` with ABINet's arguments on
  a PIL image, then ``np.array``, ``cv2.resize`` and ``ToTensor`` (``ImageDataset._process_training``);
  one construction per entry of ``--abinet-settings`` (cycled, as over several training LMDBs),
  each given the entry's geometry type and deterioration parameters -- the ones augment_speed.py
  gives ours -- in place of those the constructors draw; ``abinet-<type>``: the entries of one
  geometry type;
* ``strong1`` / ``strong2``: ``get_augmentation_pipeline(severity).augment_image`` on the array,
  then resize and ToTensor (the student view of ``ImageDatasetConsistencyRegularization``);
* ``none``: resize and ToTensor alone.

Prints one JSON object ``{pipeline: best images/s over the repeats}``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ABINET_ARGS = {
    "geometry": dict(degrees=45, translate=(0.0, 0.0), scale=(0.5, 2.0), shear=(45, 15), distortion=0.5, p=0.5),
    "deterioration": dict(var=20, degrees=6, factor=4, p=0.25),
    "color": dict(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.1, p=0.25),
}


def build(repo: Path, settings: list[dict]):
    """{pipeline name: [callables array -> tensor]} from the official modules; ``settings``: the
    frozen draws of each ABINet construction (geometry type, noise variance, blur size and angle,
    rescale factor, order of the three)."""
    sys.path.insert(0, str(repo))
    import numpy as np

    for alias, builtin in (("bool", bool), ("int", int), ("float", float)):
        if alias not in np.__dict__:  # imgaug 0.4 and ABINet's transforms use aliases gone since numpy 1.24
            setattr(np, alias, builtin)
    import cv2
    import imgaug
    import torch
    from PIL import Image
    from semimtr.dataset.augmentation_pipelines import get_augmentation_pipeline
    from semimtr.utils import transforms as T
    from torchvision import transforms

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    imgaug.seed(0)
    totensor = transforms.ToTensor()

    def finish(arr):
        return totensor(cv2.resize(arr, (128, 32)))

    g, d = ABINET_ARGS["geometry"], ABINET_ARGS["deterioration"]
    kinds = {"rotation": lambda: T.CVRandomRotation(degrees=g["degrees"]),
             "affine": lambda: T.CVRandomAffine(degrees=g["degrees"], translate=g["translate"], scale=g["scale"],
                                                shear=g["shear"]),
             "perspective": lambda: T.CVRandomPerspective(distortion=g["distortion"])}
    pipelines = {"abinet": []}
    for k, st in enumerate(settings):
        random.seed(k)
        np.random.seed(k)
        geometry = T.CVGeometry(**g)
        geometry.transforms = kinds[st["geometry"]]()
        deterioration = T.CVDeterioration(**d)
        noise, blur, rescale = T.CVGaussianNoise(var=d["var"]), T.CVMotionBlur(degrees=d["degrees"]), T.CVRescale(factor=d["factor"])
        noise.var, blur.degree, blur.angle, rescale.factor = st["noise_var"], st["blur_size"], st["blur_angle"], st["rescale_factor"]
        steps = {"noise": noise, "blur": blur, "rescale": rescale}
        deterioration.transforms = transforms.Compose([steps[name] for name in st["order"]])
        tfs = transforms.Compose([geometry, deterioration, T.CVColorJitter(**ABINET_ARGS["color"])])
        fn = lambda a, t=tfs: finish(np.array(t(Image.fromarray(a))))  # noqa: E731
        pipelines["abinet"].append(fn)
        pipelines.setdefault(f"abinet-{st['geometry']}", []).append(fn)
    strong = {s: get_augmentation_pipeline(s).augment_image for s in (1, 2)}
    return pipelines | {
        "none": [finish],
        "strong1": [lambda a: finish(strong[1](a))],
        "strong2": [lambda a: finish(strong[2](a))],
    }


def time_calls(fns, images, calls: int, repeats: int) -> float:
    """Best images/s over ``repeats`` runs of ``calls`` calls (images and constructions cycled)."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(calls):
            fns[i % len(fns)](images[i % len(images)])
        best = max(best, calls / (time.perf_counter() - start))
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, required=True)
    ap.add_argument("--crops", type=Path, required=True, help=".npz of HxWx3 uint8 arrays (augment_speed.py writes it)")
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pipelines", default="none,abinet,strong1,strong2")
    ap.add_argument("--abinet-settings", type=Path, required=True, help="JSON list of frozen ABINet draws")
    args = ap.parse_args(argv)
    import numpy as np

    with np.load(args.crops) as z:
        images = [z[k] for k in sorted(z.files, key=int)]
    pipelines = build(args.repo, json.loads(args.abinet_settings.read_text()))
    out = {}
    for name in args.pipelines.split(","):
        fns = pipelines[name]
        for f in fns:  # warm-up: lazy imports and caches
            for img in images[:20]:
                f(img)
        out[name] = round(time_calls(fns, images, args.calls, args.repeats), 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
