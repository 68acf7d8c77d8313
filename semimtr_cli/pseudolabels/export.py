"""What ``semimtr pseudo-labels`` hands on: a self-training LMDB, a labeling queue, a label audit.

* :func:`write_pseudo_lmdb`: the crops whose word confidence reaches a threshold, with their
  predicted labels, as a standard LMDB (the images' original bytes), with counts of what was
  kept and dropped and why -- the pseudo-label rounds of ABINet's self-training, ready for
  ``finetune`` or ``pretrain-vision`` as labeled data.
* :func:`write_queue`: the crops most worth a person's time (lowest confidence, or the vision
  and alignment heads disagreeing) as ``images/`` plus a ``labels.tsv`` prefilled with the
  predictions; the corrected TSV goes through ``semimtr build-lmdb`` unchanged.
* :func:`suspect_labels`: on labeled crops, the ones where the model confidently disagrees with
  the label (likely label errors), most confident first.

Rows are :func:`pseudolabels.run_teacher`'s (``lmdb``, ``key`` = ``image-%09d``, ``text``,
``confidence``, ``label``, ``correct``).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

from PIL import Image

from semimtr_cli.core.errors import SemimtrError, UsageError, check_unit_interval
from semimtr_cli.core.fsutil import atomic_dir
from semimtr_cli.data.lmdb.io import LmdbReader, LmdbWriter, key_index

QUEUE_RULES = ("confidence", "heads")


class _Images:
    """Original image bytes of ``(lmdb, key)`` rows, one reader per LMDB."""

    def __init__(self) -> None:
        self.readers: dict[str, LmdbReader] = {}

    def bytes_of(self, row: dict) -> bytes:
        reader = self.readers.get(row["lmdb"]) or self.readers.setdefault(row["lmdb"], LmdbReader(row["lmdb"]))
        return reader.image_bytes(key_index(row["key"]) - 1)


def write_pseudo_lmdb(rows: Sequence[dict], bad: Sequence[tuple[str, str]], out: str | Path, min_confidence: float) -> dict:
    """Write the rows with ``confidence >= min_confidence`` and a non-empty prediction to the LMDB
    ``out`` (which must not exist), labels = predictions, images byte-identical.

    Returns ``{"path", "min_confidence", "kept", "dropped": {reason: n}}``.
    """
    check_unit_interval(min_confidence, "min_confidence")
    images = _Images()
    dropped = {"below threshold": 0, "empty prediction": 0, "unreadable image": len(bad)}
    with LmdbWriter(out) as writer:
        for row in rows:
            if row["confidence"] < min_confidence:
                dropped["below threshold"] += 1
            elif not row["text"]:
                dropped["empty prediction"] += 1
            else:
                writer.add(images.bytes_of(row), row["text"])
    return {"path": str(out), "min_confidence": min_confidence, "kept": writer.count, "dropped": dropped}


def check_queue_rule(rule: str) -> str:
    if rule not in QUEUE_RULES:
        raise UsageError(f"must be one of {', '.join(QUEUE_RULES)}, got {rule!r}", param="queue_rule")
    return rule


def queue_order(rows: Sequence[dict], rule: str, other_text: Sequence[str] | None = None) -> list[int]:
    """Row positions, most worth labeling first. ``confidence``: lowest confidence first.
    ``heads``: rows whose prediction differs from ``other_text`` (the other head's, same order)
    first, each group by lowest confidence."""
    if check_queue_rule(rule) == "heads":
        if other_text is None or len(other_text) != len(rows):
            raise SemimtrError("the heads rule needs the second head's prediction of every row")
        return sorted(range(len(rows)), key=lambda i: (rows[i]["text"] == other_text[i], rows[i]["confidence"]))
    return sorted(range(len(rows)), key=lambda i: rows[i]["confidence"])


def _extension(data: bytes) -> str:
    try:
        fmt = (Image.open(io.BytesIO(data)).format or "png").lower()
    except Exception:  # noqa: BLE001 - rows come from readable crops; fall back to a neutral name
        fmt = "bin"
    return {"jpeg": "jpg"}.get(fmt, fmt)


def write_queue(rows: Sequence[dict], order: Sequence[int], n: int, out: str | Path,
                other_text: Sequence[str] | None = None) -> dict:
    """Write the first ``n`` rows of ``order`` to the new folder ``out``: ``images/NNNNN.ext``
    (original bytes), ``labels.tsv`` (``images/NNNNN.ext<TAB>prediction``, the `build-lmdb`
    TSV format) and ``queue.tsv`` (where each came from: LMDB, key, confidence, the other head)."""
    if n < 1:
        raise UsageError(f"must be >= 1, got {n}", param="queue")
    out = Path(out)
    if out.exists():
        raise SemimtrError(f"{out}: exists; the queue goes to a new folder (remove it or choose another)")
    images = _Images()
    picked = list(order)[:n]
    with atomic_dir(out) as tmp:
        (tmp / "images").mkdir()
        labels, origin = [], ["file\tlmdb\tkey\tprediction\tconfidence" + ("\tother_head" if other_text else "")]
        for k, i in enumerate(picked):
            row = rows[i]
            data = images.bytes_of(row)
            name = f"images/{k:05d}.{_extension(data)}"
            (tmp / name).write_bytes(data)
            text = row["text"].replace("\t", " ").replace("\n", " ")
            labels.append(f"{name}\t{text}")
            origin.append(f"{name}\t{row['lmdb']}\t{row['key']}\t{text}\t{row['confidence']:.6f}"
                          + (f"\t{other_text[i]}" if other_text else ""))
        (tmp / "labels.tsv").write_text("\n".join(labels) + "\n", encoding="utf-8")
        (tmp / "queue.tsv").write_text("\n".join(origin) + "\n", encoding="utf-8")
    return {"path": str(out), "written": len(picked)}


def suspect_labels(rows: Sequence[dict], min_confidence: float) -> list[dict]:
    """Labeled rows whose prediction differs from the label at ``confidence >= min_confidence``,
    most confident first (the likely label errors)."""
    check_unit_interval(min_confidence, "audit_min_confidence")
    hits = [r for r in rows if r.get("label") is not None and r.get("correct") is False and r["confidence"] >= min_confidence]
    return sorted(hits, key=lambda r: -r["confidence"])
