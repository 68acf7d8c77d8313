"""Per-core throughput of the augmentation pipelines, model-input resize included.

Renders word crops (about 31x69 px: a word drawn with PIL on a noisy coloured background),
then, on ONE thread (``torch.set_num_threads(1)``), times ``to_model_input(pipeline(img, rng))``
for each pipeline: ``abinet`` (construction seeds 0..7 cycled, so the frozen geometry type and
deterioration parameters are averaged over several draws as over several training LMDBs),
``strong1``, ``strong2`` and ``none`` (decode-free floor: the resize + normalisation alone).
Best of ``--repeats`` runs. Writes benchmarks/results/augment_speed.json.

Reference (official imgaug/cv2 pipelines, ICDAR 2015 crops, one core, resize included):
severity 1 ~1250 images/s, severity 2 ~1000, ABINet ~3500.

Usage:

    python benchmarks/augment_speed.py [--images 200] [--calls 3000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semimtr_cli.runtime import machine_record  # noqa: E402
from semimtr_cli.data.augment import build_pipeline  # noqa: E402
from semimtr_cli.data.image import to_model_input  # noqa: E402
from semimtr_cli.data.preview import dejavu_font  # noqa: E402

REFERENCE = {"strong1": 1250, "strong2": 1000, "abinet": 3500}
WORDS = "the STOP Coffee HOTEL 2014 Sale OPEN London PIZZA water people number EXIT market".split()


def make_crops(count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` RGB uint8 word crops of about 31x69 px."""
    rng = np.random.default_rng(seed)
    fonts = [dejavu_font(s) for s in (18, 20, 22)]
    out = []
    for i in range(count):
        w, h = int(rng.integers(55, 85)), int(rng.integers(26, 37))
        base = rng.integers(40, 230, 3)
        noise = rng.normal(0, 12, (h, w, 3))
        bg = np.clip(base + noise, 0, 255).astype(np.uint8)
        img = Image.fromarray(bg, "RGB").filter(ImageFilter.GaussianBlur(0.8))
        ink = tuple(int(255 - c) for c in base)
        ImageDraw.Draw(img).text((2, 2), WORDS[i % len(WORDS)], fill=ink, font=fonts[i % len(fonts)])
        out.append(np.asarray(img))
    return out


def time_pipeline(pipelines, images, calls: int, repeats: int) -> float:
    best = 0.0
    for rep in range(repeats):
        rng = np.random.default_rng(rep)
        n_img, n_pipe = len(images), len(pipelines)
        start = time.perf_counter()
        for i in range(calls):
            to_model_input(pipelines[i % n_pipe](images[i % n_img], rng))
        best = max(best, calls / (time.perf_counter() - start))
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "augment_speed.json"))
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    images = make_crops(args.images)
    results = {}
    for name in ("none", "abinet", "strong1", "strong2"):
        seeds = range(8) if name == "abinet" else range(1)
        pipes = [build_pipeline(name, seed=s) for s in seeds]
        for p in pipes:  # warm-up (caches, lazy imports)
            for img in images[:20]:
                p(img, np.random.default_rng(0))
        ips = time_pipeline(pipes, images, args.calls, args.repeats)
        results[name] = {
            "images_per_s": round(ips, 1),
            "us_per_image": round(1e6 / ips, 1),
            "reference_images_per_s": REFERENCE.get(name),
            "ratio_to_reference": round(ips / REFERENCE[name], 3) if name in REFERENCE else None,
        }
        print(f"{name:8s} {ips:8.0f} images/s  ({1e6 / ips:6.1f} us/image)"
              + (f"  reference {REFERENCE[name]}" if name in REFERENCE else ""))
    mean_hw = np.mean([im.shape[:2] for im in images], axis=0)
    report = {
        "benchmark": "augment_speed",
        "threads": 1,
        "images": args.images,
        "mean_image_hw": [round(float(v), 1) for v in mean_hw],
        "calls": args.calls,
        "repeats": args.repeats,
        "includes": "pipeline + to_model_input (resize to 32x128, normalise)",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pillow": Image.__version__,
        "machine": machine_record(),
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
