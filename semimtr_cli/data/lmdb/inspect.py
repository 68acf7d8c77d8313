"""Statistics of existing LMDBs for ``semimtr inspect`` (and ``semimtr build-lmdb --inspect``).

Labels are read for every sample (cheap); images are decoded for the first ``limit`` samples
(evenly spaced over the database) to measure sizes, formats and modes.
"""

from __future__ import annotations

import io
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from PIL import Image

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.data.lmdb.io import LmdbReader, find_lmdbs, is_unlabeled_marker


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


@dataclass
class _LabelCounts:
    """What the labels of one LMDB add up to (coverage fields stay 0 without a charset)."""

    lengths: Counter = field(default_factory=Counter)
    labeled: int = 0
    legacy: int = 0
    covered: int = 0
    unusable: int = 0
    unknown: Counter = field(default_factory=Counter)


def _count_labels(reader: LmdbReader, charset: Charset | None) -> _LabelCounts:
    c = _LabelCounts()
    for i in range(len(reader)):
        raw = reader.raw_label(i)
        if raw is None:
            continue
        if is_unlabeled_marker(raw):
            c.legacy += 1
            continue
        c.labeled += 1
        c.lengths[len(raw)] += 1
        if charset is not None:
            missing = charset.unknown_symbols(raw)
            if missing:
                c.unknown.update(missing)
            else:
                c.covered += 1
            if charset.normalize(raw) is None:
                c.unusable += 1
    return c


def _coverage(c: _LabelCounts, charset: Charset | None) -> dict | None:
    if charset is None:
        return None
    return {
        "charset": charset.name,
        "labels_fully_covered": c.covered,
        "labels_with_unknown_symbols": c.labeled - c.covered,
        "labels_unusable_for_training": c.unusable,
        "unknown_symbols": dict(c.unknown.most_common(30)),
    }


def _image_stats(reader: LmdbReader, limit: int) -> dict:
    """Sizes, formats and modes of ``limit`` decoded images (evenly spread); failures listed."""
    widths: list[int] = []
    heights: list[int] = []
    formats: Counter = Counter()
    modes: Counter = Counter()
    failures = []
    for i in _spread(len(reader), limit):
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
    return {
        "decoded": len(widths),
        "failed": len(failures),
        "failures": failures[:20],
        "width": _summary(widths),
        "height": _summary(heights),
        "formats": dict(formats.most_common()),
        "modes": dict(modes.most_common()),
    }


def _samples(reader: LmdbReader, samples: int) -> list[dict]:
    """``samples`` evenly spread samples: index, label, encoded size, and size/format/mode if readable."""
    shown = []
    for i in _spread(len(reader), samples) if samples > 0 else []:
        data, label = reader.sample(i)
        entry = {"index": i, "label": label, "bytes": len(data)}
        try:
            img = Image.open(io.BytesIO(data))
            entry.update(size=f"{img.size[0]}x{img.size[1]}", format=img.format, mode=img.mode)
        except Exception:
            entry.update(size=None, format=None, mode=None)
        shown.append(entry)
    return shown


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
    c = _count_labels(reader, charset)
    images = _image_stats(reader, limit)
    shown = _samples(reader, samples)
    return {
        "path": str(path),
        "count": n,
        "labeled": c.labeled,
        "unlabeled": n - c.labeled,
        "legacy_markers": c.legacy,
        "label_length_histogram": {str(k): c.lengths[k] for k in sorted(c.lengths)},
        "label_length": _histogram_summary(c.lengths),
        "charset_coverage": _coverage(c, charset),
        "images": images,
        "samples": shown,
    }


def inspect_lmdbs(
    roots: Sequence[str | Path], *, charset: Charset | None = None, limit: int = 2000, samples: int = 5
) -> list[dict]:
    """:func:`inspect_lmdb` of every LMDB at or below each of ``roots``, in order.

    Raises:
        SemimtrError: a root that does not exist or holds no LMDB (nothing is inspected then).
    """
    paths = [p for root in roots for p in find_lmdbs(root)]
    return [inspect_lmdb(p, charset=charset, limit=limit, samples=samples) for p in paths]
