"""Build one standard LMDB from label files and image folders, accounting for every input.

Every record a source lists ends up written or skipped with a reason from
:data:`semimtr_cli.data.lmdb.sources.REASONS`. Images are stored as their original encoded bytes;
each is validated by decoding it the way training will (see :func:`validate_image_bytes`).
Reading + validation run in a thread pool (PIL releases the GIL while decoding; for small crops
threads beat processes, which must send the bytes back); the LMDB is
written by the calling thread through :class:`~semimtr_cli.data.lmdb.io.LmdbWriter` (temporary
folder + rename, so an interrupted build leaves any previous LMDB at the target intact).

Strict mode validates everything first and writes nothing if any input is bad. Labels are stored
exactly as given; the charset and max length only feed the report.
"""

from __future__ import annotations

import io
import os
import random
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from PIL import Image

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import SemimtrError, UsageError
from semimtr_cli.data.image import MAX_PIXELS_DEFAULT
from semimtr_cli.data.lmdb.io import LmdbWriter, check_writable_target
from semimtr_cli.data.lmdb.sources import (
    MISSING, NOT_IMAGE, REASONS, TOO_LARGE, ZERO_BYTES, Record, SourceOptions, collect_records, compile_name_pattern,
    mark_duplicates,
)

# Formats and modes whose plain ``Image.open(...).load()`` already proves that training's
# decode (load -> EXIF transpose -> RGB) succeeds: conversion to RGB from these modes cannot fail,
# and without EXIF data the transpose is a no-op. Anything else goes through decode_image.
_FAST_FORMATS = frozenset({"PNG", "JPEG"})
_FAST_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "RGBX"})
_CHUNK = 64

ProgressFn = Callable[[str, int, int], None]  # (phase, done, total)


def validate_image_bytes(data: bytes, max_pixels: int = MAX_PIXELS_DEFAULT, name: str = "image"):
    """Check that ``data`` decodes as training will decode it.

    Returns:
        ``(reason, detail, (width, height))``: reason None when the image is good, else one of
        zero bytes / unreadable or not an image / image larger than the pixel limit.
    """
    if not data:
        return ZERO_BYTES, "the file is empty", None
    try:
        img = Image.open(io.BytesIO(data))
        size = img.size
    except Image.DecompressionBombError as exc:
        return TOO_LARGE, str(exc), None
    except Image.UnidentifiedImageError:
        return NOT_IMAGE, "not a recognised image format", None
    except Exception as exc:  # PIL raises many types for non-images
        return NOT_IMAGE, f"{type(exc).__name__}: {exc}", None
    w, h = size
    if w * h > max_pixels:
        return TOO_LARGE, f"{w}x{h} = {w * h} pixels > {max_pixels}", size
    try:
        if img.format in _FAST_FORMATS and img.mode in _FAST_MODES:
            img.load()
            if "exif" not in img.info:
                return None, "", size
        from semimtr_cli.data.image import decode_image

        decode_image(data, max_pixels=max_pixels, name=name)
    except SemimtrError as exc:
        return NOT_IMAGE, str(exc), size
    except Exception as exc:
        return NOT_IMAGE, f"{type(exc).__name__}: {exc}", size
    return None, "", size


def read_and_validate(rec: Record, max_pixels: int) -> tuple[bytes | None, str | None, str]:
    """(bytes, reason, detail) for one record whose path is usable."""
    try:
        with open(rec.file, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None, MISSING, "no such file"
    except IsADirectoryError:
        return None, NOT_IMAGE, "is a folder"
    except OSError as exc:
        return None, NOT_IMAGE, f"cannot read: {exc.strerror or exc}"
    reason, detail, _ = validate_image_bytes(data, max_pixels, rec.path)
    return (None if reason else data), reason, detail


@dataclass
class SkippedInput:
    source: str
    line: int | None
    path: str
    reason: str
    detail: str = ""


@dataclass
class BuildReport:
    """What a build did. ``to_dict()`` is the ``--report`` JSON."""

    out: str
    sources: list[str]
    inputs: int = 0
    written: int = 0
    labeled: int = 0
    unlabeled: int = 0
    created: bool = False
    strict: bool = False
    skipped: list[SkippedInput] = field(default_factory=list)
    same_image_different_labels: int = 0
    charset: str | None = None
    max_length: int | None = None
    out_of_charset: int = 0
    too_long: int = 0
    unusable_for_training: int = 0
    unknown_symbols: dict[str, int] = field(default_factory=dict)
    bytes_written: int = 0
    shuffle: bool = False
    seed: int | None = None
    workers: int = 1
    max_pixels: int = MAX_PIXELS_DEFAULT
    elapsed_s: float = 0.0

    @property
    def images_per_s(self) -> float:
        """Written images per second of the whole build (listing + validation + writing)."""
        return self.written / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def skipped_by_reason(self) -> dict[str, int]:
        counts = Counter(s.reason for s in self.skipped)
        return {r: counts[r] for r in REASONS if counts[r]}

    @property
    def exit_code(self) -> int:
        """0 when an LMDB with at least one sample was written, else 1."""
        return 0 if self.created and self.written > 0 else 1

    def to_dict(self, include_skipped: bool = True) -> dict:
        d = asdict(self)
        skipped = d.pop("skipped")
        d["skipped_count"] = len(self.skipped)
        d["skipped_by_reason"] = self.skipped_by_reason
        d["images_per_s"] = round(self.images_per_s, 1)
        d["elapsed_s"] = round(self.elapsed_s, 3)
        if include_skipped:
            d["skipped"] = skipped
        return d


def _skip(report: BuildReport, rec: Record, reason: str, detail: str) -> None:
    report.skipped.append(SkippedInput(rec.source, rec.line, rec.path, reason, detail))


def _sort_skipped(report: BuildReport, records: Sequence[Record]) -> None:
    """Order skipped entries as their sources listed them."""
    pos = {(r.source, r.line, r.path): k for k, r in enumerate(records)}
    report.skipped.sort(key=lambda s: pos.get((s.source, s.line, s.path), len(pos)))


def _check_chunk(chunk: Sequence[Record], max_pixels: int) -> list[tuple[bytes | None, str | None, str]]:
    """(bytes, reason, detail) of each record of ``chunk`` (runs in a pool thread)."""
    return [read_and_validate(r, max_pixels) for r in chunk]


def _validated(records: Sequence[Record], threads: int, max_pixels: int) -> Iterator[tuple[Record, bytes | None, str | None, str]]:
    """(record, bytes, reason, detail) for every record, in order, validated in ``threads`` threads.

    Threads, not processes: PIL releases the GIL while decoding, and for small crops a process
    pool is slower (the bytes must be pickled back to the writing process).
    """
    chunks = [records[i : i + _CHUNK] for i in range(0, len(records), _CHUNK)]
    if threads <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield from zip(chunk, *zip(*_check_chunk(chunk, max_pixels)))
        return
    window = threads * 4  # chunks in flight: bounds memory while keeping the threads busy
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="build-lmdb") as pool:
        pending: list = []
        try:
            for chunk in chunks:
                pending.append((chunk, pool.submit(_check_chunk, chunk, max_pixels)))
                if len(pending) >= window:
                    chunk_done, fut = pending.pop(0)
                    yield from zip(chunk_done, *zip(*fut.result()))
            while pending:
                chunk_done, fut = pending.pop(0)
                yield from zip(chunk_done, *zip(*fut.result()))
        finally:
            for _, fut in pending:
                fut.cancel()


def _label_stats(report: BuildReport, labels: Iterable[str], charset: Charset | None, max_length: int | None) -> None:
    unknown: Counter = Counter()
    for label in labels:
        if charset is not None:
            missing = charset.unknown_symbols(label)
            if missing:
                report.out_of_charset += 1
                unknown.update(missing)
            if charset.normalize(label) is None:
                report.unusable_for_training += 1
        if max_length is not None and len(label) > max_length:
            report.too_long += 1
    report.unknown_symbols = dict(unknown.most_common(30))


class _Ticker:
    """Calls ``progress(phase, done, total)`` every 256 records and at the last one."""

    def __init__(self, progress: ProgressFn | None, total: int):
        self.progress, self.total = progress, total

    def __call__(self, phase: str, done: int) -> None:
        if self.progress is not None and (done % 256 == 0 or done == self.total):
            self.progress(phase, done, self.total)


def _check_options(sources: Sequence[str | Path], threads: int, max_pixels: int) -> None:
    if threads < 1:
        raise UsageError(f"must be >= 1, got {threads}", param="threads")
    if max_pixels < 1:
        raise UsageError(f"must be >= 1, got {max_pixels}", param="max_pixels")
    if not sources:
        raise UsageError("give at least one SOURCE (a label file or an image folder)")


def _write_strict(report: BuildReport, todo: Sequence[Record], out: Path, overwrite: bool, threads: int, tick: _Ticker) -> list[str] | None:
    """Validate everything, then write only if nothing is bad: the labels written, or None if nothing was."""
    checksums: list[tuple[int, int]] = []
    for i, (rec, data, reason, detail) in enumerate(_validated(todo, threads, report.max_pixels), 1):
        if reason is not None:
            _skip(report, rec, reason, detail)
        else:
            checksums.append((len(data), zlib.crc32(data)))
        tick("check", i)
    if report.skipped or not todo:
        return None
    labels: list[str] = []
    with LmdbWriter(out, overwrite=overwrite) as writer:
        for i, (rec, (size, crc)) in enumerate(zip(todo, checksums), 1):
            writer.add(_reread(rec, size, crc), rec.label)
            report.bytes_written += size
            if rec.label is not None:
                labels.append(rec.label)
            tick("write", i)
        report.written = writer.count
    report.created = True
    return labels


def _reread(rec: Record, size: int, crc: int) -> bytes:
    """The bytes of an already validated file, checked to be the ones validated."""
    try:
        with open(rec.file, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise SemimtrError(f"{rec.path}: became unreadable during the build ({exc.strerror or exc})") from None
    if len(data) != size or zlib.crc32(data) != crc:
        raise SemimtrError(f"{rec.path}: the file changed during the build")
    return data


def _write_good(report: BuildReport, todo: Sequence[Record], out: Path, overwrite: bool, threads: int, tick: _Ticker) -> list[str]:
    """Write every good record while validating, skip the bad ones: the labels written."""
    labels: list[str] = []
    writer = LmdbWriter(out, overwrite=overwrite)
    try:
        for i, (rec, data, reason, detail) in enumerate(_validated(todo, threads, report.max_pixels), 1):
            if reason is not None:
                _skip(report, rec, reason, detail)
            else:
                writer.add(data, rec.label)
                report.bytes_written += len(data)
                if rec.label is not None:
                    labels.append(rec.label)
            tick("write", i)
        report.written = writer.count
        if writer.count > 0:
            writer.finish()
            report.created = True
        else:
            writer.abort()
    except BaseException:
        writer.abort()
        raise
    return labels


def build_lmdb(
    sources: Sequence[str | Path],
    out: str | Path,
    *,
    fmt: str = "auto",
    images_root: str | Path | None = None,
    unlabeled: bool = False,
    label_from_name: str | None = None,
    charset: Charset | None = None,
    max_length: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
    overwrite: bool = False,
    threads: int = 2,
    max_pixels: int = MAX_PIXELS_DEFAULT,
    strict: bool = False,
    progress: ProgressFn | None = None,
    workers: int | None = None,
) -> BuildReport:
    """Validate every input of ``sources`` and write the good ones to the LMDB ``out``.

    Args:
        sources: label files and/or folders (see :mod:`semimtr_cli.data.lmdb.sources`).
        charset, max_length: only for reporting labels with unknown symbols / too many characters
            (when ``charset`` is given and ``max_length`` None, the charset's max length is used).
        shuffle, seed: write the samples in a seeded random order instead of listing order.
        threads: threads reading and validating images (``workers``: its older name; the
            report keeps calling it ``workers``).
        max_pixels: images with more pixels (width x height) are skipped.
        strict: write nothing (and create no folder) if any input is bad.
        progress: called as ``progress(phase, done, total)``; phases "check", "write".

    Returns:
        The :class:`BuildReport`; ``report.created`` says whether ``out`` was (re)written.
        No LMDB is created when nothing is good (default mode) or anything is bad (strict).

    Raises:
        SemimtrError/UsageError: unusable options or sources, or an existing ``out`` without
            ``overwrite``. The previous LMDB at ``out`` is untouched in every failure.
    """
    t0 = time.perf_counter()
    threads = threads if workers is None else workers
    _check_options(sources, threads, max_pixels)
    out = Path(out)
    check_writable_target(out, overwrite)
    if max_length is None and charset is not None:
        max_length = charset.max_length
    opts = SourceOptions(
        fmt=fmt,
        images_root=Path(images_root) if images_root is not None else None,
        unlabeled=unlabeled,
        label_from_name=compile_name_pattern(label_from_name),
    )
    for src in sources:
        if _norm(src) == _norm(out):
            raise UsageError(f"the output {out} is also a source")
    records = collect_records(sources, opts)
    report = BuildReport(
        out=str(out), sources=[str(s) for s in sources], inputs=len(records), strict=strict,
        charset=charset.name if charset is not None else None, max_length=max_length,
        shuffle=shuffle, seed=seed if shuffle else None, workers=threads, max_pixels=max_pixels,
    )
    report.same_image_different_labels = mark_duplicates(records)
    for rec in records:
        if rec.reason is not None:
            _skip(report, rec, rec.reason, rec.detail)
    todo = [r for r in records if r.reason is None]
    if shuffle:
        random.Random(seed).shuffle(todo)
    write = _write_strict if strict else _write_good
    labels = write(report, todo, out, overwrite, threads, _Ticker(progress, len(todo)))
    if labels is not None:
        report.labeled = len(labels)
        report.unlabeled = report.written - report.labeled
        _label_stats(report, labels, charset, max_length)
    _sort_skipped(report, records)
    report.elapsed_s = time.perf_counter() - t0
    return report


def _norm(path: str | Path) -> str:
    return os.path.normpath(os.path.abspath(path))
