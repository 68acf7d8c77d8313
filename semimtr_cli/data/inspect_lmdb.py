"""Statistics of an existing LMDB for ``semimtr build-lmdb --inspect``.

Labels are read for every sample (cheap); images are decoded for the first ``limit`` samples
(evenly spaced over the database) to measure sizes, formats and modes.
"""

from __future__ import annotations

import io
import statistics
from collections import Counter
from pathlib import Path

from PIL import Image

from ..charset import Charset
from ..errors import SemimtrError
from .lmdb_io import LmdbReader, is_unlabeled_marker


def _summary(values: list[int]) -> dict:
    if not values:
        return {}
    return {
        "min": min(values),
        "mean": round(statistics.fmean(values), 2),
        "median": statistics.median(values),
        "max": max(values),
    }


def _histogram_summary(hist: Counter) -> dict:
    """min/mean/median/max of values given as ``{value: count}``."""
    total = sum(hist.values())
    if not total:
        return {}
    keys = sorted(hist)
    mean = sum(k * hist[k] for k in keys) / total
    half, seen, median = (total + 1) // 2, 0, keys[-1]
    for k in keys:
        seen += hist[k]
        if seen >= half:
            median = k
            break
    return {"min": keys[0], "mean": round(mean, 2), "median": median, "max": keys[-1]}


def _spread(n: int, k: int) -> list[int]:
    """``k`` indices evenly spread over ``range(n)`` (all of them when k <= 0 or k >= n)."""
    if k <= 0 or k >= n:
        return list(range(n))
    return sorted({round(i * (n - 1) / max(k - 1, 1)) for i in range(k)})


def inspect_lmdb(path: str | Path, *, charset: Charset | None = None, limit: int = 2000, samples: int = 5) -> dict:
    """Stats of one LMDB.

    Args:
        charset: for coverage (labels whose symbols are all in it, unknown symbols, labels
            training would drop); None skips coverage.
        limit: images to decode for size stats (0 = all).
        samples: how many samples (index, label, size, format) to list.

    Returns:
        A JSON-ready dict: ``path, count, labeled, unlabeled, legacy_markers,
        label_length_histogram, label_length, charset_coverage, images, samples``.
    """
    reader = LmdbReader(path)
    n = len(reader)
    lengths: Counter = Counter()
    labeled = legacy = 0
    covered = unusable = 0
    unknown: Counter = Counter()
    for i in range(n):
        raw = reader.raw_label(i)
        if raw is None:
            continue
        if is_unlabeled_marker(raw):
            legacy += 1
            continue
        labeled += 1
        lengths[len(raw)] += 1
        if charset is not None:
            missing = charset.unknown_symbols(raw)
            if missing:
                unknown.update(missing)
            else:
                covered += 1
            if charset.normalize(raw) is None:
                unusable += 1

    widths: list[int] = []
    heights: list[int] = []
    formats: Counter = Counter()
    modes: Counter = Counter()
    failures = []
    for i in _spread(n, limit):
        try:
            data = reader.image_bytes(i)
            img = Image.open(io.BytesIO(data))
            img.load()
        except SemimtrError as exc:
            failures.append({"index": i, "error": str(exc)})
            continue
        except Exception as exc:
            failures.append({"index": i, "error": f"{type(exc).__name__}: {exc}"})
            continue
        widths.append(img.size[0])
        heights.append(img.size[1])
        formats[img.format or "?"] += 1
        modes[img.mode] += 1

    shown = []
    for i in _spread(n, samples) if samples > 0 else []:
        data, label = reader.sample(i)
        entry = {"index": i, "label": label, "bytes": len(data)}
        try:
            img = Image.open(io.BytesIO(data))
            entry.update(size=f"{img.size[0]}x{img.size[1]}", format=img.format, mode=img.mode)
        except Exception:
            entry.update(size=None, format=None, mode=None)
        shown.append(entry)

    coverage = None
    if charset is not None:
        coverage = {
            "charset": charset.name,
            "labels_fully_covered": covered,
            "labels_with_unknown_symbols": labeled - covered,
            "labels_unusable_for_training": unusable,
            "unknown_symbols": dict(unknown.most_common(30)),
        }
    return {
        "path": str(path),
        "count": n,
        "labeled": labeled,
        "unlabeled": n - labeled,
        "legacy_markers": legacy,
        "label_length_histogram": {str(k): lengths[k] for k in sorted(lengths)},
        "label_length": _histogram_summary(lengths),
        "charset_coverage": coverage,
        "images": {
            "decoded": len(widths),
            "failed": len(failures),
            "failures": failures[:20],
            "width": _summary(widths),
            "height": _summary(heights),
            "formats": dict(formats.most_common()),
            "modes": dict(modes.most_common()),
        },
        "samples": shown,
    }
