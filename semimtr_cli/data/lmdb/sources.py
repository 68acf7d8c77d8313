"""Turn build-lmdb sources (label files, image folders) into records: source, line, path, label.

A *source* is a label file or a folder. Label-file formats (one sample per line):

- ``tsv``   ``path<TAB>label`` (the first tab splits; paths may hold spaces)
- ``space`` ``path label`` (the first space splits)
- ``icdar`` ``word_1.png, "label"`` (ICDAR 2013/2015 GT; ``\\"``, ``""`` and ``\\\\`` unescaped)
- ``csv``   a header with ``path`` and ``label`` columns (or two headerless columns)
- ``jsonl`` one object per line with ``path`` and ``label`` keys

Paths are relative to the label file's folder, or to ``images_root`` when given; a path that
resolves (lexically, symlinks not followed) outside that root is rejected. Lines are decoded one
by one as UTF-8 (a BOM and CRLF endings are accepted), so a bad line costs only that line.
Labels are kept exactly as written (only the line ending is removed).

A folder source uses a label file found directly inside it (:data:`FOLDER_LABEL_FILES`);
without one, every image below it is listed, unlabeled or with a label taken from the file
name by a regex with a ``label`` group.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from semimtr_cli.core.errors import SemimtrError, UsageError, option
from semimtr_cli.data.files import list_images

# Skip reasons: the fixed vocabulary of the build report.
MISSING = "missing file"
NOT_IMAGE = "unreadable or not an image"
ZERO_BYTES = "zero bytes"
EMPTY_LABEL = "empty label"
DUPLICATE = "duplicate entry"
ESCAPES_ROOT = "path escapes the source root"
TOO_LARGE = "image larger than the pixel limit"
BAD_LINE = "undecodable label line"
REASONS = (MISSING, NOT_IMAGE, ZERO_BYTES, EMPTY_LABEL, DUPLICATE, ESCAPES_ROOT, TOO_LARGE, BAD_LINE)

FORMATS = ("auto", "tsv", "space", "icdar", "csv", "jsonl")
FOLDER_LABEL_FILES = ("labels.tsv", "gt.txt", "labels.txt", "labels.csv", "labels.jsonl", "gt.tsv")

_PATH_COLUMNS = ("path", "image", "filename", "file", "img")
_LABEL_COLUMNS = ("label", "text", "transcription", "word")
_ICDAR_LINE = re.compile(r'^(?P<path>[^,]*?)\s*,\s*(?P<rest>.*)$')


@dataclass
class Record:
    """One input sample as listed by a source.

    Attributes:
        source: the label file or folder it came from (as given).
        line: 1-based line number in the label file; None for folder scans.
        path: the image path as written (relative to the source root when scanned).
        file: the resolved absolute path (lexically normalised); None if unusable.
        label: the label exactly as given; None = unlabeled.
        reason: a skip reason from :data:`REASONS` if the record is already bad, else None.
        detail: a human explanation of ``reason``.
    """

    source: str
    line: int | None
    path: str
    file: str | None
    label: str | None
    reason: str | None = None
    detail: str = ""


@dataclass
class SourceOptions:
    """How to read sources (see the module docstring)."""

    fmt: str = "auto"
    images_root: Path | None = None
    unlabeled: bool = False
    label_from_name: re.Pattern | None = None


def compile_name_pattern(pattern: str | None) -> re.Pattern | None:
    """Compile the ``label_from_name`` regex; it must have a named group ``label``."""
    if pattern is None:
        return None
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"{pattern!r} is not a valid regex: {exc}", param="label_from_name") from None
    if "label" not in rx.groupindex:
        raise UsageError(f"{pattern!r} needs a named group 'label', e.g. ^\\d+_(?P<label>.+)_\\d+$", param="label_from_name")
    return rx


# ----------------------------------------------------------------------------- lines and formats
def read_lines(path: Path) -> list[tuple[int, str | None, bytes]]:
    """(line number, decoded text or None if not UTF-8, raw bytes) of every non-blank line.

    A UTF-8 BOM at the start and ``\\r\\n`` / ``\\r`` endings are removed.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SemimtrError(f"cannot read label file {path}: {exc.strerror or exc}") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    out = []
    for n, raw in enumerate(data.split(b"\n"), 1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        out.append((n, text, raw))
    return out


def detect_format(path: Path, lines: list[tuple[int, str | None, bytes]]) -> str:
    """Guess the format of a label file from its extension and first lines."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    sample = [t for _, t, _ in lines[:50] if t is not None]
    if not sample:
        return "tsv"
    votes = {"jsonl": 0, "tsv": 0, "icdar": 0, "space": 0}
    for t in sample:
        if t.lstrip().startswith("{"):
            votes["jsonl"] += 1
        elif "\t" in t:
            votes["tsv"] += 1
        elif re.match(r'^[^,"]+,\s*".*"\s*$', t):
            votes["icdar"] += 1
        else:
            votes["space"] += 1
    return max(votes, key=lambda k: (votes[k], k == "tsv"))


def unquote_icdar(field: str) -> str | None:
    """The label of an ICDAR GT field: ``"a \\"b\\""`` -> ``a "b"``; None if badly quoted.

    Unquoted fields are returned as they are (trailing spaces removed).
    """
    field = field.rstrip()
    if not field.startswith('"'):
        return field
    if len(field) < 2 or not field.endswith('"'):
        return None
    body = field[1:-1]
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        nxt = body[i + 1] if i + 1 < len(body) else ""
        if ch == "\\" and nxt in ('"', "\\"):
            out.append(nxt)
            i += 2
        elif ch == '"' and nxt == '"':
            out.append('"')
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _split_line(fmt: str, text: str) -> tuple[str, str | None] | str:
    """(path, label) of one line, or an error string. ``label`` None = absent."""
    if fmt == "tsv":
        if "\t" not in text:
            return "no tab between path and label"
        path, _, label = text.partition("\t")
        return path, label
    if fmt == "space":
        path, sep, label = text.partition(" ")
        return (path, label) if sep else (path, None)
    if fmt == "icdar":
        m = _ICDAR_LINE.match(text)
        if not m:
            return "expected 'path, \"label\"'"
        label = unquote_icdar(m.group("rest"))
        if label is None:
            return "unbalanced quotes in the label"
        return m.group("path").strip(), label
    if fmt == "jsonl":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            return f"invalid JSON ({exc.msg})"
        if not isinstance(obj, dict):
            return "a JSON object with 'path' and 'label' is expected"
        path = next((obj[k] for k in _PATH_COLUMNS if k in obj), None)
        label = next((obj[k] for k in _LABEL_COLUMNS if k in obj), None)
        if not isinstance(path, str) or not path:
            return "no 'path' string"
        if label is not None and not isinstance(label, str):
            label = str(label)
        return path, label
    raise UsageError(f"unknown label format {fmt!r}; choose one of {', '.join(FORMATS)}")


# ----------------------------------------------------------------------------- paths
def _norm(path: str | Path) -> str:
    return os.path.normpath(os.path.abspath(path))


def resolve_path(root: str, written: str) -> tuple[str | None, str]:
    """(absolute normalised path, '') or (None, why) when ``written`` escapes ``root``.

    ``root`` must be normalised. Absolute paths are accepted only inside ``root``.
    """
    full = _norm(os.path.join(root, written))
    try:
        inside = os.path.commonpath([root, full]) == root
    except ValueError:  # different drives
        inside = False
    if not inside:
        return None, f"resolves outside {root}"
    return full, ""


def _make_record(source: str, line: int | None, written: str, label: str | None, root: str, opts: SourceOptions) -> Record:
    file, why = resolve_path(root, written)
    if opts.unlabeled:
        label = None
    rec = Record(source, line, written, file, label)
    if file is None:
        rec.reason, rec.detail = ESCAPES_ROOT, why
    elif not opts.unlabeled and (label is None or not label.strip()):
        rec.reason, rec.detail = EMPTY_LABEL, "no label text"
    return rec


# ----------------------------------------------------------------------------- sources
def records_from_label_file(path: Path, opts: SourceOptions, *, source: str | None = None) -> list[Record]:
    """Records of one label file (see the module docstring for formats and paths)."""
    path = Path(path)
    source = source or str(path)
    lines = read_lines(path)
    fmt = opts.fmt if opts.fmt != "auto" else detect_format(path, lines)
    if fmt not in FORMATS:
        raise UsageError(f"unknown label format {fmt!r}; choose one of {', '.join(FORMATS)}")
    root = _norm(opts.images_root if opts.images_root is not None else path.parent)
    if fmt == "csv":
        return _records_from_csv(source, lines, root, opts)
    out = []
    for n, text, raw in lines:
        if text is None:
            out.append(Record(source, n, raw.decode("utf-8", "replace"), None, None, BAD_LINE, "not UTF-8"))
            continue
        parsed = _split_line(fmt, text)
        if isinstance(parsed, str):
            out.append(Record(source, n, text, None, None, BAD_LINE, f"{fmt}: {parsed}"))
            continue
        written, label = parsed
        if not written.strip():
            out.append(Record(source, n, text, None, None, BAD_LINE, f"{fmt}: empty path"))
            continue
        out.append(_make_record(source, n, written, label, root, opts))
    return out


def _records_from_csv(source: str, lines, root: str, opts: SourceOptions) -> list[Record]:
    out: list[Record] = []
    good = [(n, t) for n, t, _ in lines if t is not None]
    for n, t, raw in lines:
        if t is None:
            out.append(Record(source, n, raw.decode("utf-8", "replace"), None, None, BAD_LINE, "not UTF-8"))
    rows = []
    for n, t in good:
        try:
            fields = next(csv.reader([t]))
        except csv.Error as exc:
            out.append(Record(source, n, t, None, None, BAD_LINE, f"csv: {exc}"))
            continue
        rows.append((n, t, fields))
    if not rows:
        return sorted(out, key=lambda r: r.line or 0)
    header = [h.strip().lower() for h in rows[0][2]]
    pcol = next((header.index(c) for c in _PATH_COLUMNS if c in header), None)
    lcol = next((header.index(c) for c in _LABEL_COLUMNS if c in header), None)
    if pcol is not None:
        rows = rows[1:]
    else:
        pcol, lcol = 0, 1
    for n, t, fields in rows:
        if len(fields) <= pcol or not fields[pcol].strip():
            out.append(Record(source, n, t, None, None, BAD_LINE, "csv: no path column"))
            continue
        label = fields[lcol] if lcol is not None and len(fields) > lcol else None
        out.append(_make_record(source, n, fields[pcol], label, root, opts))
    return sorted(out, key=lambda r: r.line or 0)


def find_folder_label_file(folder: Path) -> Path | None:
    """The label file directly inside ``folder`` (names in :data:`FOLDER_LABEL_FILES`), if any.

    Raises:
        SemimtrError: if several candidates exist (ambiguous).
    """
    found = [folder / n for n in FOLDER_LABEL_FILES if (folder / n).is_file()]
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise SemimtrError(f"{folder}: several label files ({names}); pass the one to use as the source")
    return found[0] if found else None


def records_from_folder(folder: Path, opts: SourceOptions, *, source: str | None = None) -> list[Record]:
    """Records of a folder: its label file, or every image (unlabeled / label from the name)."""
    folder = Path(folder)
    source = source or str(folder)
    if not (opts.unlabeled or opts.label_from_name):
        label_file = find_folder_label_file(folder)
        if label_file is None:
            raise UsageError(
                f"{folder}: no label file ({', '.join(FOLDER_LABEL_FILES)}) inside; "
                f"pass {option('unlabeled')} or {option('label_from_name')} REGEX, or give the label file itself"
            )
        return records_from_label_file(label_file, opts, source=str(label_file))
    root = _norm(folder)
    out = []
    for p in list_images(folder):
        written = p.relative_to(folder).as_posix()
        label = None
        if opts.label_from_name is not None and not opts.unlabeled:
            m = opts.label_from_name.search(p.stem)
            label = m.group("label") if m else None
            if not label:
                why = f"name {p.stem!r} does not match --label-from-name" if not m else "the 'label' group is empty"
                out.append(Record(source, None, written, _norm(p), None, EMPTY_LABEL, why))
                continue
        out.append(Record(source, None, written, os.path.join(root, *p.relative_to(folder).parts), label))
    return out


def collect_records(sources: Iterable[str | Path], opts: SourceOptions) -> list[Record]:
    """Records of every source, in order.

    Raises:
        SemimtrError/UsageError: for a missing source or a folder that cannot be listed.
    """
    if opts.unlabeled and opts.label_from_name is not None:
        raise UsageError(f"{option('unlabeled')} and {option('label_from_name')} exclude each other")
    if opts.fmt not in FORMATS:
        raise UsageError(f"unknown label format {opts.fmt!r}; choose one of {', '.join(FORMATS)}", param="format")
    if opts.images_root is not None and not Path(opts.images_root).is_dir():
        raise SemimtrError(f"{opts.images_root} is not a folder", param="images_root")
    out: list[Record] = []
    for src in sources:
        p = Path(src)
        if p.is_dir():
            out.extend(records_from_folder(p, opts, source=str(src)))
        elif p.is_file():
            if opts.label_from_name is not None:
                raise UsageError(f"{option('label_from_name')} applies to image folders, but {src} is a label file")
            out.extend(records_from_label_file(p, opts, source=str(src)))
        else:
            raise SemimtrError(f"source not found: {src}")
    return out


def mark_duplicates(records: list[Record]) -> int:
    """Mark later repeats of (resolved path, label) as :data:`DUPLICATE`.

    The same image listed with a different label is not a duplicate (both are kept).
    Returns how many images appear with more than one distinct label.
    """
    seen: dict[tuple[str, str | None], Record] = {}
    labels_per_file: dict[str, set] = {}
    for rec in records:
        if rec.reason is not None or rec.file is None:
            continue
        key = (rec.file, rec.label)
        first = seen.get(key)
        if first is not None:
            rec.reason = DUPLICATE
            where = f"{first.source}:{first.line}" if first.line is not None else first.source
            rec.detail = f"same image and label as {where}"
            continue
        seen[key] = rec
        labels_per_file.setdefault(rec.file, set()).add(rec.label)
    return sum(1 for s in labels_per_file.values() if len(s) > 1)


def iter_ok(records: Iterable[Record]) -> Iterator[Record]:
    return (r for r in records if r.reason is None)
