"""Label-file parsing and folder scanning for build-lmdb (semimtr_cli.data.lmdb.sources)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from semimtr_cli.core.errors import SemimtrError, UsageError
from semimtr_cli.data.lmdb import sources as S
from semimtr_cli.data.lmdb.sources import SourceOptions, collect_records, mark_duplicates


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def _records(src, **kw):
    return collect_records([str(src)], SourceOptions(**kw))


def test_tsv_crlf_bom_spaces_non_ascii_and_exact_labels(tmp_path):
    f = _write(
        tmp_path / "labels.tsv",
        "\ufeffimgs/a b.png\tHello World\r\n\r\nimgs/ünï.jpg\tStraße \r\nimgs/t.png\ttab\tinside\r\n",
    )
    recs = _records(f)
    assert [(r.line, r.path, r.label) for r in recs] == [
        (1, "imgs/a b.png", "Hello World"),
        (3, "imgs/ünï.jpg", "Straße "),
        (4, "imgs/t.png", "tab\tinside"),
    ]
    assert all(r.reason is None for r in recs)
    assert recs[0].file == os.path.join(str(tmp_path), "imgs", "a b.png")


def test_space_format_first_space_splits(tmp_path):
    f = _write(tmp_path / "gt.txt", "word_1.png Hello there\nword_2.png\n")
    recs = _records(f, fmt="space")
    assert (recs[0].path, recs[0].label, recs[0].reason) == ("word_1.png", "Hello there", None)
    assert recs[1].reason == S.EMPTY_LABEL


def test_icdar_quotes_and_escapes(tmp_path):
    text = (
        'word_1.png, "Tiredness"\n'
        'word_2.png, "\\"HOT\\""\n'
        'word_3.png, "say ""hi"""\n'
        'word_4.png, "a\\\\b"\n'
        'word_5.png, "1,000"\n'
        'word_6.png, "unterminated\n'
    )
    f = _write(tmp_path / "gt.txt", "\ufeff" + text.replace("\n", "\r\n"))
    recs = _records(f)  # auto-detected as icdar
    got = [(r.path, r.label, r.reason) for r in recs]
    assert got[:5] == [
        ("word_1.png", "Tiredness", None),
        ("word_2.png", '"HOT"', None),
        ("word_3.png", 'say "hi"', None),
        ("word_4.png", "a\\b", None),
        ("word_5.png", "1,000", None),
    ]
    assert got[5][2] == S.BAD_LINE and recs[5].line == 6


def test_csv_with_header_and_headerless(tmp_path):
    f = _write(tmp_path / "labels.csv", 'path,label\r\nimgs/a.png,"x, y"\r\nimgs/b.png,"say ""no"""\r\n')
    recs = _records(f)
    assert [(r.line, r.path, r.label) for r in recs] == [(2, "imgs/a.png", "x, y"), (3, "imgs/b.png", 'say "no"')]
    g = _write(tmp_path / "other.csv", "a.png,first\nb.png,second\n")
    assert [(r.path, r.label) for r in _records(g)] == [("a.png", "first"), ("b.png", "second")]


def test_jsonl_and_bad_lines(tmp_path):
    f = _write(
        tmp_path / "labels.jsonl",
        b'{"path": "a.png", "label": "Caf\xc3\xa9"}\n{not json}\n{"path": "c.png", "label": "\\u00fc"}\n[1, 2]\n',
    )
    recs = _records(f)
    assert [(r.line, r.label, r.reason) for r in recs] == [
        (1, "Café", None),
        (2, None, S.BAD_LINE),
        (3, "ü", None),
        (4, None, S.BAD_LINE),
    ]


def test_non_utf8_line_is_reported_with_its_number(tmp_path):
    f = _write(tmp_path / "labels.tsv", b"a.png\tgood\nb.png\tbad\xff\xfe\nc.png\tfine\nno-tab-here\n")
    recs = _records(f)
    assert [(r.line, r.reason) for r in recs] == [(1, None), (2, S.BAD_LINE), (3, None), (4, S.BAD_LINE)]
    assert "UTF-8" in recs[1].detail


def test_detect_format():
    lines = lambda *ts: [(i + 1, t, t.encode()) for i, t in enumerate(ts)]  # noqa: E731
    assert S.detect_format(Path("x.txt"), lines("a.png\tb", "c.png\td")) == "tsv"
    assert S.detect_format(Path("x.txt"), lines('a.png, "b"', 'c.png, "d e"')) == "icdar"
    assert S.detect_format(Path("x.txt"), lines("a.png b", "c.png d")) == "space"
    assert S.detect_format(Path("x.txt"), lines('{"path": "a"}')) == "jsonl"
    assert S.detect_format(Path("x.csv"), lines("a.png\tb")) == "csv"


def test_paths_escaping_the_root(tmp_path):
    outside = tmp_path / "elsewhere.png"
    inside = tmp_path / "d" / "in.png"
    f = _write(
        tmp_path / "d" / "labels.tsv",
        f"../elsewhere.png\tx\n{outside}\ty\n{inside}\tz\nsub/../in.png\tw\n",
    )
    recs = _records(f)
    assert [r.reason for r in recs] == [S.ESCAPES_ROOT, S.ESCAPES_ROOT, None, None]
    assert recs[2].file == recs[3].file == str(inside)


def test_images_root(tmp_path):
    f = _write(tmp_path / "gt" / "gt.txt", 'word_1.png, "A"\n')
    root = tmp_path / "images"
    root.mkdir()
    recs = _records(f, images_root=root)
    assert recs[0].file == str(root / "word_1.png")


def test_folder_with_label_file_and_ambiguity(tmp_path):
    _write(tmp_path / "labels.tsv", "x.png\tX\n")
    recs = _records(tmp_path)
    assert recs[0].label == "X" and recs[0].source.endswith("labels.tsv")
    _write(tmp_path / "gt.txt", "x.png\tX\n")
    with pytest.raises(SemimtrError, match="several label files"):
        _records(tmp_path)


def test_folder_without_labels_needs_a_flag(tmp_path):
    _write(tmp_path / "a.png", b"x")
    with pytest.raises(UsageError, match="pass unlabeled or label_from_name"):
        _records(tmp_path)
    recs = _records(tmp_path, unlabeled=True)
    assert [(r.path, r.label, r.line) for r in recs] == [("a.png", None, None)]


def test_label_from_name_mjsynth(tmp_path):
    for name in ("1_Pontifically_58805.jpg", "sub/23_New_York_7.png", "noise.png"):
        _write(tmp_path / name, b"x")
    rx = S.compile_name_pattern(r"^\d+_(?P<label>.+)_\d+$")
    recs = collect_records([str(tmp_path)], SourceOptions(label_from_name=rx))
    by_path = {r.path: r for r in recs}
    assert by_path["1_Pontifically_58805.jpg"].label == "Pontifically"
    assert by_path["sub/23_New_York_7.png"].label == "New_York"
    assert by_path["noise.png"].reason == S.EMPTY_LABEL
    with pytest.raises(UsageError, match="named group 'label'"):
        S.compile_name_pattern(r"^\d+_(.+)_\d+$")
    with pytest.raises(UsageError, match="not a valid regex"):
        S.compile_name_pattern(r"(")


def test_unlabeled_label_file_drops_labels(tmp_path):
    f = _write(tmp_path / "list.txt", "a.png\tA\nb.png\t\n")
    recs = _records(f, unlabeled=True)
    assert [(r.label, r.reason) for r in recs] == [(None, None), (None, None)]


def test_duplicates(tmp_path):
    f = _write(tmp_path / "labels.tsv", "a.png\tA\nb.png\tB\n./a.png\tA\na.png\tother\n")
    recs = _records(f)
    conflicts = mark_duplicates(recs)
    assert [r.reason for r in recs] == [None, None, S.DUPLICATE, None]
    assert "labels.tsv:1" in recs[2].detail
    assert conflicts == 1


def test_missing_source_and_bad_options(tmp_path):
    with pytest.raises(SemimtrError, match="source not found"):
        _records(tmp_path / "nope.tsv")
    f = _write(tmp_path / "labels.tsv", "a.png\tA\n")
    with pytest.raises(UsageError, match="format: unknown label format"):
        _records(f, fmt="xml")
    with pytest.raises(UsageError, match="applies to image folders"):
        collect_records([str(f)], SourceOptions(label_from_name=S.compile_name_pattern("(?P<label>.+)")))
