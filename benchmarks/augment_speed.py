"""Per-core throughput of the augmentation pipelines, model-input resize included, beside the official ones.

Takes real word crops (``--crops DIR``: the first ``--images`` images of a folder, for example
ICDAR 2015's training crops) or renders some (about 31x69 px: a word drawn with PIL on a noisy
coloured background), then, on ONE thread (``torch.set_num_threads(1)``), times ``to_model_input(pipeline(img, rng))``
for each pipeline: ``abinet`` (nine constructions cycled, as over several training LMDBs: three
per frozen geometry type, each with deterioration parameters drawn once; the official side gets
the same types and parameters, see ``abinet_settings``), ``abinet-rotation`` / ``-affine`` /
``-perspective`` (the three constructions of one type), ``strong1``, ``strong2`` and ``none``
(decode-free floor: the resize + normalisation alone).
Best of ``--repeats`` runs. Writes benchmarks/results/augment_speed.json.

With ``--official-repo CLONE --official-python PY`` (an interpreter with the official code's
requirements: imgaug, opencv, numpy < 2) each of ``--rounds`` rounds times ours and then the
official pipelines (benchmarks/official_augment.py, a subprocess) on the same crops, so both see
the same machine load; the JSON holds every round's images/s and ratio.

Usage:

    python benchmarks/augment_speed.py [--crops DIR] [--images 400] [--calls 3000] [--repeats 3]
        [--official-repo CLONE --official-python PY --rounds 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semimtr_cli.core.fsutil import atomic_write_json
from semimtr_cli.core.runtime import machine_record
from semimtr_cli.data.augment.abinet import AbinetAugment
from semimtr_cli.data.augment.pipelines import build_pipeline
from semimtr_cli.data.image import to_model_input
from semimtr_cli.train.preview import dejavu_font

PIPELINES = ("none", "abinet", "abinet-rotation", "abinet-affine", "abinet-perspective", "strong1", "strong2")
GEOMETRY_TYPES = ("rotation", "affine", "perspective")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
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


def load_crops(folder: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` images (sorted by name) of ``folder`` as RGB uint8 arrays."""
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)[:count]
    if not files:
        raise SystemExit(f"--crops {folder}: no .jpg/.png/.bmp images in it")
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def abinet_settings(per_type: int = 3, seed: int = 0) -> list[dict]:
    """The frozen draws of ``per_type`` ABINet constructions per geometry type: geometry type,
    noise variance, blur size and angle, rescale factor and the order of the three, drawn the
    way the constructors draw them. Both sides run exactly these, since each construction
    freezes its own draws and a few constructions give a different mix on each side otherwise."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(per_type * len(GEOMETRY_TYPES)):
        d = AbinetAugment._draw_deterioration(rng)
        out.append({"geometry": GEOMETRY_TYPES[k % len(GEOMETRY_TYPES)]} | {key: d[key] for key in (
            "noise_var", "blur_size", "blur_angle", "rescale_factor", "order")})
    return out


def abinet_pipelines(settings: list[dict], kind: str | None = None) -> list[AbinetAugment]:
    """Our ABINet pipelines with ``settings``' draws (``kind``: only that geometry type)."""
    out = []
    for k, st in enumerate(settings):
        if kind is None or st["geometry"] == kind:
            p = AbinetAugment(seed=k, geometry_type=st["geometry"])
            p.deterioration = AbinetAugment.deterioration_settings(**{k2: v for k2, v in st.items() if k2 != "geometry"})
            out.append(p)
    return out


def time_ours(images, calls: int, repeats: int, settings: list[dict]) -> dict[str, float]:
    """{pipeline: best images/s} of our pipelines on one thread."""
    out = {}
    for name in PIPELINES:
        if name.startswith("abinet"):
            pipes = abinet_pipelines(settings, name.partition("-")[2] or None)
        else:
            pipes = [build_pipeline(name, seed=0)]
        for p in pipes:  # warm-up (caches, lazy imports)
            for img in images[:20]:
                p(img, np.random.default_rng(0))
        out[name] = round(time_pipeline(pipes, images, calls, repeats), 1)
    return out


def time_official(python: str, repo: Path, crops_npz: Path, settings_json: Path, calls: int,
                  repeats: int) -> dict[str, float]:
    """{pipeline: best images/s} of the official pipelines, timed inside a subprocess."""
    cmd = [python, str(Path(__file__).with_name("official_augment.py")), "--repo", str(repo), "--crops", str(crops_npz),
           "--abinet-settings", str(settings_json), "--calls", str(calls), "--repeats", str(repeats),
           "--pipelines", ",".join(PIPELINES)]
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"official pipelines failed ({python}): {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


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
    ap.add_argument("--crops", type=Path, default=None, help="folder of real word crops (default: rendered crops)")
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--official-repo", type=Path, default=None, help="local copy of the official SemiMTR code")
    ap.add_argument("--official-python", default=sys.executable, help="interpreter with imgaug, opencv and numpy < 2")
    ap.add_argument("--rounds", type=int, default=3, help="ours-then-official rounds (with --official-repo)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "augment_speed.json"))
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    images = load_crops(args.crops, args.images) if args.crops else make_crops(args.images)
    settings = abinet_settings()
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        crops_npz, settings_json = Path(tmp) / "crops.npz", Path(tmp) / "abinet_settings.json"
        np.savez(crops_npz, **{str(i): im for i, im in enumerate(images)})
        settings_json.write_text(json.dumps(settings))
        for r in range(args.rounds if args.official_repo else 1):
            ours = time_ours(images, args.calls, args.repeats, settings)
            row = {"semimtr": ours}
            if args.official_repo:
                off = time_official(args.official_python, args.official_repo, crops_npz, settings_json, args.calls,
                                    args.repeats)
                row["official"] = off
                row["ratio"] = {k: round(ours[k] / off[k], 3) for k in PIPELINES}
            rounds.append(row)
            print(f"round {r + 1}: " + "  ".join(
                f"{k} {ours[k]:.0f}" + (f"/{row['official'][k]:.0f} ({row['ratio'][k]:.2f}x)" if "ratio" in row else "")
                for k in PIPELINES), flush=True)
    results = {}
    for name in PIPELINES:
        ips = statistics.median(r["semimtr"][name] for r in rounds)
        results[name] = {"images_per_s": round(ips, 1), "us_per_image": round(1e6 / ips, 1)}
        if args.official_repo:
            results[name]["official_images_per_s"] = round(statistics.median(r["official"][name] for r in rounds), 1)
            results[name]["ratio_by_round"] = [r["ratio"][name] for r in rounds]
            results[name]["ratio_median"] = statistics.median(results[name]["ratio_by_round"])
    mean_hw = np.mean([im.shape[:2] for im in images], axis=0)
    report = {
        "benchmark": "augment_speed",
        "threads": 1,
        "crops": str(args.crops) if args.crops else "rendered",
        "images": len(images),
        "rounds": rounds,
        "mean_image_hw": [round(float(v), 1) for v in mean_hw],
        "calls": args.calls,
        "repeats": args.repeats,
        "abinet_settings": settings,
        "includes": "pipeline + to_model_input (resize to 32x128, normalise)",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pillow": Image.__version__,
        "machine": machine_record(),
        "results": results,
    }
    atomic_write_json(Path(args.out), report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
