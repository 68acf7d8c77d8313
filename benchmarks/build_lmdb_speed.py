"""Throughput of `build-lmdb` on ~4000 word-crop-like images (about 31x69 px, JPEG + PNG).

Generates the images (text rendered with PIL onto noisy backgrounds) and a labels TSV in a
temporary folder, reads every file once (warm file cache), then times `build_lmdb` with 1 and
2 worker threads (best of --repeats). For reference it also times, on the same files:

- ``full_decode``: build_lmdb with every image validated by the complete training decode
  (decode_image: load, EXIF transpose, RGB conversion) instead of the fast path;
- ``clovaai_style``: a minimal loop doing what the field's create_lmdb_dataset.py does (read
  bytes, decode to greyscale as the only check, put in an LMDB committed every 1000 samples).
  cv2 is not a dependency, so the greyscale decode uses PIL here.

Writes benchmarks/results/build_lmdb_speed.json. Usage:

    python benchmarks/build_lmdb_speed.py [--count 4000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

WORDS = (
    "the of and to in is you that it he was for on are as with his they at be this have from or one had by "
    "word but not what all were we when your can said there use an each which she do how their if will up "
    "other about out many then them these so some her would make like him into time has look two more write "
    "go see number no way could people my than first water been call who oil its now find long down day did "
    "get come made may part STOP EXIT Coffee HOTEL 2014 Sale OPEN 24h London Bar PIZZA"
).split()


def _font_path() -> str | None:
    from semimtr_cli.data.synth.fonts import bundled_font_dir

    p = bundled_font_dir() / "DejaVuSans.ttf"
    return str(p) if p.is_file() else None


def make_dataset(root: Path, count: int, seed: int = 0) -> Path:
    """Write ``count`` word crops (~31x69 px, half JPEG, half PNG) and labels.tsv under ``root``."""
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    font_file = _font_path()
    fonts = [ImageFont.truetype(font_file, s) if font_file else ImageFont.load_default() for s in (16, 18, 20, 22)]
    (root / "crops").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(count):
        word = pick.choice(WORDS)
        h = int(rng.integers(24, 40))
        w = int(rng.integers(45, 95))
        bg = rng.integers(0, 256, size=3)
        noise = rng.normal(0, 18, size=(h, w, 3))
        arr = np.clip(bg + noise, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, "RGB")
        draw = ImageDraw.Draw(img)
        fg = tuple(int(255 - c) for c in bg)
        draw.text((int(rng.integers(0, 6)), int(rng.integers(0, 6))), word, fill=fg, font=pick.choice(fonts))
        if rng.random() < 0.3:
            img = img.filter(ImageFilter.GaussianBlur(0.7))
        if i % 2:
            name = f"crops/word_{i}.jpg"
            img.save(root / name, "JPEG", quality=int(rng.integers(75, 96)))
        else:
            name = f"crops/word_{i}.png"
            img.save(root / name, "PNG")
        lines.append(f"{name}\t{word}")
    labels = root / "labels.tsv"
    labels.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return labels


def warm_cache(labels: Path) -> int:
    total = 0
    for line in labels.read_text(encoding="utf-8").splitlines():
        total += len((labels.parent / line.split("\t", 1)[0]).read_bytes())
    return total


def clovaai_style(labels: Path, out: Path) -> int:
    """Read, grey-decode as the only check, write; commit every 1000 (the field's usual script)."""
    import lmdb

    env = lmdb.open(str(out), map_size=1 << 30)
    cache: dict[bytes, bytes] = {}
    n = 1
    for line in labels.read_text(encoding="utf-8").splitlines():
        rel, label = line.split("\t", 1)
        with open(labels.parent / rel, "rb") as f:
            data = f.read()
        try:
            img = Image.open(io.BytesIO(data)).convert("L")
            if img.size[0] * img.size[1] == 0:
                continue
        except Exception:
            continue
        cache[b"image-%09d" % n] = data
        cache[b"label-%09d" % n] = label.encode()
        if n % 1000 == 0:
            with env.begin(write=True) as txn:
                for k, v in cache.items():
                    txn.put(k, v)
            cache = {}
        n += 1
    cache[b"num-samples"] = str(n - 1).encode()
    with env.begin(write=True) as txn:
        for k, v in cache.items():
            txn.put(k, v)
    env.close()
    return n - 1


def best_of(repeats: int, fn) -> tuple[float, int]:
    best, written = float("inf"), 0
    for _ in range(repeats):
        t = time.perf_counter()
        written = fn()
        best = min(best, time.perf_counter() - t)
    return best, written


def main(argv=None) -> int:
    from semimtr_cli.core.runtime import machine_record

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=4000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "build_lmdb_speed.json"))
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)  # build-lmdb does not use torch; keep it from spinning threads
    from semimtr_cli.data.lmdb import build as build_mod
    from semimtr_cli.data.lmdb.build import build_lmdb

    results: dict = {
        "count": args.count,
        "repeats": args.repeats,
        "python": platform.python_version(),
        "pillow": Image.__version__,
        "cpu_count": os.cpu_count(),
        "machine": machine_record(),
        "timing": "best of repeats, wall clock of build_lmdb (listing + validation + LMDB write)",
        "runs": {},
    }
    with tempfile.TemporaryDirectory(prefix="build-lmdb-bench-") as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        labels = make_dataset(tmp / "data", args.count)
        results["generate_s"] = round(time.perf_counter() - t, 2)
        results["dataset_bytes"] = warm_cache(labels)
        warm_cache(labels)

        def run(workers: int):
            def go():
                r = build_lmdb([str(labels)], tmp / "out", workers=workers, overwrite=True)
                assert r.written == args.count, r.to_dict(include_skipped=False)
                return r.written

            return go

        for workers in (1, 2):
            sec, n = best_of(args.repeats, run(workers))
            results["runs"][f"build_lmdb_workers_{workers}"] = {"seconds": round(sec, 3), "images_per_s": round(n / sec, 1)}
            print(f"build_lmdb, {workers} worker(s): {n / sec:,.0f} images/s", file=sys.stderr)

        saved = build_mod._FAST_FORMATS
        build_mod._FAST_FORMATS = frozenset()  # every image through decode_image
        try:
            for workers in (1, 2):
                sec, n = best_of(args.repeats, run(workers))
                results["runs"][f"full_decode_workers_{workers}"] = {"seconds": round(sec, 3), "images_per_s": round(n / sec, 1)}
                print(f"full decode_image, {workers} worker(s): {n / sec:,.0f} images/s", file=sys.stderr)
        finally:
            build_mod._FAST_FORMATS = saved

        def clova():
            import shutil

            shutil.rmtree(tmp / "clova", ignore_errors=True)
            return clovaai_style(labels, tmp / "clova")

        sec, n = best_of(args.repeats, clova)
        results["runs"]["clovaai_style_pil_grey"] = {"seconds": round(sec, 3), "images_per_s": round(n / sec, 1)}
        print(f"clovaai-style loop (PIL grey decode): {n / sec:,.0f} images/s", file=sys.stderr)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
