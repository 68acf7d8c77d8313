"""`semimtr build-lmdb`: every input written or skipped with a reason, atomic output, --inspect."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from semimtr_cli.cli.app import app
from semimtr_cli.core.errors import UsageError
from semimtr_cli.data.lmdb import build as build_mod
from semimtr_cli.data.lmdb import sources as S
from semimtr_cli.data.lmdb.build import build_lmdb, validate_image_bytes
from semimtr_cli.data.lmdb.io import LmdbReader, LmdbWriter, write_lmdb

runner = CliRunner()
MAX_PIXELS = 5000  # good images below, the "huge" one above


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _good_images() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (16, 40, 3), dtype=np.uint8), "RGB")
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 on display
    return {
        "rgb.png": _encode(rgb, "PNG"),
        "photo.jpg": _encode(rgb, "JPEG", quality=90),
        "grey.png": _encode(rgb.convert("L"), "PNG"),
        "rgba.png": _encode(rgb.convert("RGBA"), "PNG"),
        "palette.png": _encode(pal, "PNG", transparency=0),
        "deep16.png": _encode(Image.fromarray(rng.integers(0, 65535, (16, 40), dtype=np.uint16)), "PNG"),
        "cmyk.jpg": _encode(rgb.convert("CMYK"), "JPEG"),
        "rotated.jpg": _encode(rgb, "JPEG", exif=exif.tobytes()),
        "with space.png": _encode(rgb.rotate(180), "PNG"),
        "Straße_ü.png": _encode(rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "PNG"),
    }


GOOD_LABELS = {
    "rgb.png": "Hello",
    "photo.jpg": "World!",
    "grey.png": "grey",
    "rgba.png": "RGBA",
    "palette.png": "pal ette",
    "deep16.png": "16bit",
    "cmyk.jpg": "CMYK",
    "rotated.jpg": "Rotated",
    "with space.png": "a label with spaces",
    "Straße_ü.png": "Straße",
}


@pytest.fixture()
def mixed(tmp_path):
    """A folder with good images of every kind and one bad input of every kind; labels.tsv lists all."""
    root = tmp_path / "data"
    (root / "imgs").mkdir(parents=True)
    good = _good_images()
    for name, data in good.items():
        (root / "imgs" / name).write_bytes(data)
    (root / "imgs" / "zero.png").write_bytes(b"")
    (root / "imgs" / "text.png").write_text("not an image")
    (root / "imgs" / "truncated.png").write_bytes(good["rgb.png"][:60])
    (root / "imgs" / "huge.png").write_bytes(_encode(Image.new("L", (100, 100)), "PNG"))
    (tmp_path / "outside.png").write_bytes(good["rgb.png"])
    lines = [f"imgs/{n}\t{GOOD_LABELS[n]}".encode() for n in good]
    bad = [
        (b"imgs/missing.png\tgone", S.MISSING),
        (b"imgs/text.png\ttext", S.NOT_IMAGE),
        (b"imgs/truncated.png\ttrunc", S.NOT_IMAGE),
        (b"imgs/zero.png\tzero", S.ZERO_BYTES),
        (b"imgs/rgb.png\t", S.EMPTY_LABEL),
        (b"imgs/rgb.png\tHello", S.DUPLICATE),
        (b"../outside.png\tout", S.ESCAPES_ROOT),
        (str(tmp_path / "outside.png").encode() + b"\tabs", S.ESCAPES_ROOT),
        (b"imgs/huge.png\thuge", S.TOO_LARGE),
        (b"imgs/rgb.png\tbad \xff\xfe bytes", S.BAD_LINE),
        (b"imgs/no-tab-here.png", S.BAD_LINE),
        (b"imgs", S.BAD_LINE),
        (b"imgs\tfolder", S.NOT_IMAGE),
    ]
    content = b"\xef\xbb\xbf" + b"\r\n".join(lines + [b for b, _ in bad]) + b"\r\n"
    (root / "labels.tsv").write_bytes(content)
    expected_skips = [(len(lines) + 1 + i, reason) for i, (_, reason) in enumerate(bad)]
    return root, good, expected_skips


def _read_all(path: Path) -> list[tuple[bytes, str | None]]:
    r = LmdbReader(path)
    return [r.sample(i) for i in range(len(r))]


def test_mixed_folder_writes_exactly_the_good_samples(mixed, tmp_path):
    root, good, expected_skips = mixed
    out, report = tmp_path / "out", tmp_path / "report.json"
    res = runner.invoke(
        app, ["build-lmdb", str(root), "--out", str(out), "--report", str(report), "--max-pixels", str(MAX_PIXELS)]
    )
    assert res.exit_code == 0, res.output
    assert _read_all(out) == [(good[n], GOOD_LABELS[n]) for n in good]  # byte-identical, in order
    rep = json.loads(report.read_text(encoding="utf-8"))
    assert rep["written"] == len(good)
    assert [(s["line"], s["reason"]) for s in rep["skipped"]] == expected_skips
    assert all(s["source"].endswith("labels.tsv") and s["path"] for s in rep["skipped"])
    assert sum(rep["skipped_by_reason"].values()) == len(expected_skips)
    assert set(rep["skipped_by_reason"]) == set(S.REASONS)
    assert rep["inputs"] == len(good) + len(expected_skips)
    assert rep["images_per_s"] > 0 and rep["elapsed_s"] > 0
    assert "written" in res.output and "duplicate entry" in res.output


def test_strict_writes_nothing(mixed, tmp_path):
    root, _, expected_skips = mixed
    out, report = tmp_path / "out", tmp_path / "report.json"
    res = runner.invoke(
        app,
        ["build-lmdb", str(root), "--out", str(out), "--strict", "--report", str(report), "--max-pixels", str(MAX_PIXELS)],
    )
    assert res.exit_code == 1
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    assert len(json.loads(report.read_text())["skipped"]) == len(expected_skips)


def test_strict_with_clean_input_writes_everything(tmp_path):
    good = _good_images()
    lines = []
    for n, data in good.items():
        (tmp_path / n).write_bytes(data)
        lines.append(f"{n}\t{GOOD_LABELS[n]}")
    (tmp_path / "gt.txt").write_text("\n".join(lines), encoding="utf-8")
    rep = build_lmdb([tmp_path / "gt.txt"], tmp_path / "db", strict=True, threads=1)
    assert rep.created and rep.written == len(good) and rep.exit_code == 0
    assert _read_all(tmp_path / "db") == [(good[n], GOOD_LABELS[n]) for n in good]


def test_existing_lmdb_untouched_without_overwrite(tmp_path):
    out = tmp_path / "db"
    write_lmdb(out, [(b"old-bytes", "old")])
    img = tmp_path / "imgs"
    img.mkdir()
    (img / "a.png").write_bytes(_good_images()["rgb.png"])
    res = runner.invoke(app, ["build-lmdb", str(img), "--unlabeled", "--out", str(out)])
    assert res.exit_code == 1 and "--overwrite" in res.output
    assert "Traceback" not in res.output
    assert _read_all(out) == [(b"old-bytes", "old")]
    res = runner.invoke(app, ["build-lmdb", str(img), "--unlabeled", "--out", str(out), "--overwrite"])
    assert res.exit_code == 0, res.output
    assert _read_all(out) == [((img / "a.png").read_bytes(), None)]


def test_exception_mid_build_leaves_previous_lmdb(tmp_path, monkeypatch):
    out = tmp_path / "db"
    write_lmdb(out, [(b"old-bytes", "old")])
    src = tmp_path / "imgs"
    src.mkdir()
    for i in range(6):
        (src / f"{i}.png").write_bytes(_good_images()["rgb.png"])
    real_add = LmdbWriter.add

    def failing_add(self, image, label):
        if self.count == 3:
            raise KeyboardInterrupt  # what Ctrl-C raises
        return real_add(self, image, label)

    monkeypatch.setattr(LmdbWriter, "add", failing_add)
    with pytest.raises(KeyboardInterrupt):
        build_lmdb([src], out, unlabeled=True, overwrite=True)
    assert _read_all(out) == [(b"old-bytes", "old")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db", "imgs"]


def test_nothing_written_exits_1_and_creates_nothing(tmp_path):
    (tmp_path / "labels.tsv").write_text("missing.png\tx\n")
    res = runner.invoke(app, ["build-lmdb", str(tmp_path / "labels.tsv"), "--out", str(tmp_path / "db")])
    assert res.exit_code == 1
    assert not (tmp_path / "db").exists()


def test_label_from_name_and_unlabeled_and_multiple_sources(tmp_path):
    good = _good_images()
    mj = tmp_path / "mj"
    (mj / "1").mkdir(parents=True)
    (mj / "1" / "1_Pontifically_58805.jpg").write_bytes(good["photo.jpg"])
    (mj / "2_Carnival_17.png").write_bytes(good["rgb.png"])
    un = tmp_path / "un"
    un.mkdir()
    (un / "x.png").write_bytes(good["grey.png"])
    out = tmp_path / "db"
    rep = build_lmdb([mj], out, label_from_name=r"^\d+_(?P<label>.+)_\d+$")
    assert rep.written == 2
    assert _read_all(out) == [(good["photo.jpg"], "Pontifically"), (good["rgb.png"], "Carnival")]
    rep = build_lmdb([un], tmp_path / "db2", unlabeled=True)
    assert rep.unlabeled == 1 and _read_all(tmp_path / "db2") == [(good["grey.png"], None)]
    # several sources into one LMDB: a folder with its labels.tsv, and a space-separated list
    (mj / "labels.tsv").write_text("2_Carnival_17.png\tCarnival\n", encoding="utf-8")
    (un / "list.txt").write_text("x.png Über alles\n", encoding="utf-8")
    rep = build_lmdb([mj, un / "list.txt"], tmp_path / "db3")
    assert rep.written == 2 and not rep.skipped
    assert _read_all(tmp_path / "db3") == [(good["rgb.png"], "Carnival"), (good["grey.png"], "Über alles")]


def test_icdar_gt_with_images_root_and_shuffle(tmp_path):
    good = _good_images()
    images = tmp_path / "Challenge2_Test_Task3_Images"
    images.mkdir()
    names = list(good)
    lines = []
    for i, n in enumerate(names, 1):
        (images / f"word_{i}.png").write_bytes(good[n])
        lines.append(f'word_{i}.png, "w\\"{i}"')
    gt = tmp_path / "gt.txt"
    gt.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8-sig")
    a = build_lmdb([gt], tmp_path / "a", images_root=images, shuffle=True, seed=3)
    build_lmdb([gt], tmp_path / "b", images_root=images, shuffle=True, seed=3)
    sa, sb = _read_all(tmp_path / "a"), _read_all(tmp_path / "b")
    assert a.written == len(names) and sa == sb
    assert sorted(lbl for _, lbl in sa) == sorted(f'w"{i}' for i in range(1, len(names) + 1))
    assert [lbl for _, lbl in sa] != [f'w"{i}' for i in range(1, len(names) + 1)]  # order changed


def test_charset_and_length_reporting_keeps_labels(tmp_path):
    png = _good_images()["rgb.png"]
    for n in "abc":
        (tmp_path / f"{n}.png").write_bytes(png)
    (tmp_path / "labels.tsv").write_text("a.png\tHELLO\nb.png\tcafé!\nc.png\t" + "x" * 30 + "\n", encoding="utf-8")
    rep = build_lmdb([tmp_path], tmp_path / "db", charset=None, max_length=25)
    assert rep.too_long == 1 and rep.out_of_charset == 0
    from semimtr_cli.core.charset import Charset

    rep = build_lmdb([tmp_path], tmp_path / "db", charset=Charset.preset("36"), overwrite=True)
    assert rep.out_of_charset == 1 and rep.unknown_symbols == {"é": 1, "!": 1} and rep.too_long == 1
    assert rep.unusable_for_training == 1
    assert [lbl for _, lbl in _read_all(tmp_path / "db")] == ["HELLO", "café!", "x" * 30]


def test_validation_fast_path_agrees_with_full_decode():
    for name, data in _good_images().items():
        assert validate_image_bytes(data, MAX_PIXELS)[0] is None, name
    assert validate_image_bytes(b"", MAX_PIXELS)[0] == S.ZERO_BYTES
    assert validate_image_bytes(b"GIF89a junk", MAX_PIXELS)[0] == S.NOT_IMAGE
    big = _encode(Image.new("RGB", (100, 100)), "JPEG")
    assert validate_image_bytes(big, MAX_PIXELS)[0] == S.TOO_LARGE
    jpg = _good_images()["photo.jpg"]
    assert validate_image_bytes(jpg[: len(jpg) // 2], MAX_PIXELS)[0] == S.NOT_IMAGE
    assert build_mod._FAST_MODES >= {"RGB", "L"}


def test_inspect_prints_and_writes_json(mixed, tmp_path):
    root, good, _ = mixed
    out = tmp_path / "lmdbs" / "train"
    build_lmdb([root], out, max_pixels=MAX_PIXELS)
    stats_file = tmp_path / "stats.json"
    res = runner.invoke(app, ["build-lmdb", "--inspect", str(tmp_path / "lmdbs"), "--json", str(stats_file)])
    assert res.exit_code == 0, res.output
    assert "samples" in res.output
    stats = json.loads(stats_file.read_text(encoding="utf-8"))
    assert stats["count"] == stats["labeled"] == len(good)
    assert stats["images"]["decoded"] == len(good) and stats["images"]["failed"] == 0
    hist = {int(k): v for k, v in stats["label_length_histogram"].items()}
    assert hist[len("Hello")] >= 1 and sum(hist.values()) == len(good)
    assert stats["charset_coverage"]["unknown_symbols"]["ß"] == 1
    assert len(stats["samples"]) == 5


def test_json_summary_to_stdout(tmp_path):
    (tmp_path / "a.png").write_bytes(_good_images()["rgb.png"])
    res = runner.invoke(app, ["build-lmdb", str(tmp_path), "--unlabeled", "--out", str(tmp_path / "db"), "--json", "-"])
    assert res.exit_code == 0
    start = res.stdout.index("{")
    summary = json.loads(res.stdout[start : res.stdout.rindex("}") + 1])
    assert summary["written"] == 1 and "skipped" not in summary


def test_usage_errors_are_one_line(tmp_path):
    res = runner.invoke(app, ["build-lmdb", str(tmp_path / "nope"), "--out", str(tmp_path / "db")])
    assert res.exit_code == 1 and "source not found" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["build-lmdb", str(tmp_path)])
    assert res.exit_code == 2 and "--out" in res.output
    res = runner.invoke(app, ["build-lmdb", str(tmp_path), "--out", str(tmp_path / "db")])
    assert res.exit_code == 2 and "--unlabeled or --label-from-name" in res.output


def test_threads_flag_and_deprecated_workers_alias(tmp_path):
    (tmp_path / "a.png").write_bytes(_good_images()["rgb.png"])
    res = runner.invoke(app, ["build-lmdb", str(tmp_path), "--unlabeled", "--out", str(tmp_path / "db"), "--threads", "1", "--json", "-"])
    assert res.exit_code == 0, res.output
    assert "deprecated" not in res.output and '"workers": 1' in res.stdout
    res = runner.invoke(app, ["build-lmdb", str(tmp_path), "--unlabeled", "--out", str(tmp_path / "db2"), "--workers", "2"])
    assert res.exit_code == 0, res.output
    warnings = [line for line in res.output.splitlines() if "deprecated" in line]
    assert len(warnings) == 1 and "--threads" in warnings[0]
    res = runner.invoke(app, ["build-lmdb", str(tmp_path), "--unlabeled", "--out", str(tmp_path / "db3"), "--threads", "0"])
    assert res.exit_code == 2 and "--threads: must be >= 1" in res.output
    with pytest.raises(UsageError, match="^threads: must be >= 1"):
        build_lmdb([tmp_path], tmp_path / "db4", unlabeled=True, threads=0)
