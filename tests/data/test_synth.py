"""`semimtr synth` and the rendering library: outputs, determinism, options, errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from semimtr_cli.cli.app import app
from semimtr_cli.core.errors import SemimtrError, UsageError
from semimtr_cli.data.lmdb.io import LmdbReader
from semimtr_cli.data.synth.fonts import BUNDLED_FONT_SETS, resolve_fonts
from semimtr_cli.data.synth.generate import generate
from semimtr_cli.data.synth.render import render_word
from semimtr_cli.data.text.words import FREQUENCY_WORD, packaged_words, read_words_file

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["synth", *args])


def read_tsv(folder: Path) -> list[tuple[str, str]]:
    lines = (folder / "labels.tsv").read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("\t")) for line in lines]


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_folder_output_has_images_and_labels_from_the_word_list(tmp_path):
    out = tmp_path / "s"
    res = run("--out", str(out), "--count", "60", "--seed", "3", "--case", "lower", "--digits-fraction", "0")
    assert res.exit_code == 0, res.output
    rows = read_tsv(out)
    assert len(rows) == 60
    images = sorted((out / "images").glob("*.png"))
    assert len(images) == 60
    assert {r[0] for r in rows} == {f"images/{p.name}" for p in images}
    vocab = set(packaged_words().words)
    assert all(label in vocab for _, label in rows)
    assert len({label for _, label in rows}) > 30  # words vary
    manifest = json.loads((out / "synth.json").read_text())
    assert manifest["seed"] == 3 and manifest["count"] == 60


def test_lmdb_output_labeled_and_unlabeled(tmp_path):
    res = run("--out", str(tmp_path / "lab"), "--count", "50", "--seed", "1", "--lmdb")
    assert res.exit_code == 0, res.output
    reader = LmdbReader(tmp_path / "lab")
    assert len(reader) == 50
    for i in range(50):
        data, label = reader.sample(i)
        assert label and Image.open(io.BytesIO(data)).mode == "RGB"

    res = run("--out", str(tmp_path / "unl"), "--count", "40", "--seed", "1", "--lmdb", "--unlabeled")
    assert res.exit_code == 0, res.output
    reader = LmdbReader(tmp_path / "unl")
    assert len(reader) == 40
    assert all(reader.label(i) is None for i in range(40))
    # Same seed: the unlabeled images are the labeled ones.
    assert reader.image_bytes(7) == LmdbReader(tmp_path / "lab").image_bytes(7)


def test_unlabeled_folder_has_no_labels_file(tmp_path):
    out = tmp_path / "u"
    assert run("--out", str(out), "--count", "12", "--unlabeled").exit_code == 0
    assert not (out / "labels.tsv").exists()
    assert len(list((out / "images").glob("*.png"))) == 12


def test_same_seed_identical_bytes_different_seed_differs(tmp_path):
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        res = run("--out", str(tmp_path / name), "--count", "40", "--seed", seed, "--style", "wild")
        assert res.exit_code == 0, res.output
    a, b, c = (folder_bytes(tmp_path / n) for n in "abc")
    assert a == b
    assert a["labels.tsv"] != c["labels.tsv"]
    assert sum(a[k] != c[k] for k in a if k.startswith("images/")) >= 35


def test_samples_do_not_depend_on_count_or_workers(tmp_path):
    small = generate(tmp_path / "small", 20, seed=9, words=["alpha", "beta", "gamma"], workers=1)
    big = generate(tmp_path / "big", 140, seed=9, words=["alpha", "beta", "gamma"], workers=2)
    assert small["count"] == 20 and big["count"] == 140
    for i in range(1, 21):
        name = f"images/{i:09d}.png"
        assert (tmp_path / "small" / name).read_bytes() == (tmp_path / "big" / name).read_bytes()
    assert read_tsv(tmp_path / "small") == read_tsv(tmp_path / "big")[:20]


def test_words_file_is_honoured(tmp_path):
    words = tmp_path / "words.txt"
    words.write_bytes("\ufeffZebra\r\nquartz\r\n\r\nnaïve\r\n".encode("utf-8"))
    out = tmp_path / "w"
    res = run("--out", str(out), "--count", "50", "--words", str(words), "--case", "as-is", "--digits-fraction", "0")
    assert res.exit_code == 0, res.output
    labels = {label for _, label in read_tsv(out)}
    assert labels == {"Zebra", "quartz", "naïve"}


def test_digits_fraction_one_gives_numbers(tmp_path):
    out = tmp_path / "d"
    assert run("--out", str(out), "--count", "30", "--digits-fraction", "1").exit_code == 0
    assert all(label.isdigit() for _, label in read_tsv(out))


def test_images_rgb_with_requested_height_and_minimum_width(tmp_path):
    words = tmp_path / "short.txt"
    words.write_text("i\nl\nwonderful\n", encoding="utf-8")
    for style in ("clean", "wild"):
        out = tmp_path / style
        res = run("--out", str(out), "--count", "40", "--height", "24", "--words", str(words), "--style", style)
        assert res.exit_code == 0, res.output
        for path in (out / "images").glob("*.png"):
            img = Image.open(path)
            assert img.mode == "RGB"
            assert img.height == 24
            assert img.width >= 12


def test_render_word_api():
    fonts = resolve_fonts(font_set="sans")
    img = render_word("Hello", fonts[0], np.random.default_rng(0), "clean", height=40)
    assert isinstance(img, Image.Image) and img.mode == "RGB" and img.height == 40
    assert img.width > 40  # a five-letter word is wider than tall
    arr = np.asarray(img, np.float32)
    assert arr.std() > 10  # text is visible against the background
    again = render_word("Hello", fonts[0], np.random.default_rng(0), "clean", height=40)
    assert np.array_equal(np.asarray(again), np.asarray(img))


def test_font_sets_are_distinct_and_selectable():
    sans = {p.name for p in resolve_fonts(font_set="sans")}
    serif = {p.name for p in resolve_fonts(font_set="serif")}
    assert sans and serif and not sans & serif
    assert sans <= set(BUNDLED_FONT_SETS["sans"])
    wild_default = {p.name for p in resolve_fonts(style="wild")}
    assert not wild_default & sans
    picked = [p.name for p in resolve_fonts(font_set="DejaVuSansMono,cmr10")]
    assert picked == ["DejaVuSansMono.ttf", "cmr10.ttf"]
    with pytest.raises(UsageError):
        resolve_fonts(font_set="nope")


def test_custom_fonts_folder(tmp_path):
    fonts = tmp_path / "fonts" / "nested"
    fonts.mkdir(parents=True)
    src = resolve_fonts(font_set="DejaVuSerif")[0]
    (fonts / "MyFont.ttf").write_bytes(src.read_bytes())
    out = tmp_path / "f"
    res = run("--out", str(out), "--count", "10", "--fonts", str(tmp_path / "fonts"), "--json", str(tmp_path / "s.json"))
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["fonts_used"] == {"MyFont.ttf": 10}
    assert summary["count"] == 10 and summary["images_per_s"] > 0


def test_fonts_folder_without_fonts_is_a_one_line_error(tmp_path):
    empty = tmp_path / "nofonts"
    empty.mkdir()
    (empty / "readme.txt").write_text("no fonts here")
    res = run("--out", str(tmp_path / "x"), "--count", "5", "--fonts", str(empty))
    assert res.exit_code == 1
    assert "no font files" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_existing_output_needs_overwrite(tmp_path):
    out = tmp_path / "o"
    assert run("--out", str(out), "--count", "5", "--seed", "1").exit_code == 0
    before = folder_bytes(out)
    res = run("--out", str(out), "--count", "5", "--seed", "2")
    assert res.exit_code == 1 and "--overwrite" in res.output
    assert folder_bytes(out) == before
    assert run("--out", str(out), "--count", "7", "--seed", "2", "--overwrite").exit_code == 0
    assert len(read_tsv(out)) == 7
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_overwrite_refuses_a_foreign_folder(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    res = run("--out", str(foreign), "--count", "5", "--overwrite")
    assert res.exit_code == 1
    assert (foreign / "thesis.tex").read_text() == "precious"


@pytest.mark.parametrize(
    "args",
    [
        ["--style", "fancy"],
        ["--case", "title"],
        ["--format", "gif"],
        ["--count", "0"],
        ["--height", "4"],
        ["--digits-fraction", "1.5"],
        ["--wordfreq", "--words", "x.txt"],
    ],
)
def test_bad_options_exit_2(tmp_path, args):
    base = ["--out", str(tmp_path / "b"), "--count", "5"]
    res = run(*base, *args)  # a repeated option: the last value wins
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output


def test_missing_words_file_is_an_error(tmp_path):
    res = run("--out", str(tmp_path / "m"), "--count", "5", "--words", str(tmp_path / "none.txt"))
    assert res.exit_code == 1 and "word list not found" in res.output


def test_packaged_word_list():
    words = packaged_words().words
    assert len(words) > 19000
    assert words[:3] == ["the", "to", "and"]
    assert all(FREQUENCY_WORD.fullmatch(w) for w in words)


def test_read_words_file_rejects_bad_utf8(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\n\xff\xfe\n")
    with pytest.raises(SemimtrError, match="UTF-8"):
        read_words_file(bad)


def test_library_errors_name_parameters_and_the_cli_shows_flags(tmp_path):
    with pytest.raises(UsageError) as info:
        generate(tmp_path / "z", 0)
    assert str(info.value) == "count: must be at least 1, got 0"
    res = run("--out", str(tmp_path / "z"), "--count", "0")
    assert res.exit_code == 2 and "--count: must be at least 1, got 0" in res.output
    assert run("--out", str(tmp_path / "z"), "--count", "5").exit_code == 0
    with pytest.raises(SemimtrError, match="pass overwrite to replace it"):
        generate(tmp_path / "z", 5)


def test_text_masks_draw_the_pixels_of_imagedraw_text():
    """text_masks rasterises through getmask2 directly; its masks must stay ImageDraw.text's."""
    from PIL import Image, ImageDraw

    from semimtr_cli.data.synth.fonts import load_font
    from semimtr_cli.data.synth.render import text_masks

    for font_path in resolve_fonts(font_set="all")[:6]:
        for text, size, stroke in (("Hello", 24, 0), ("$12.99", 17, 2), ("quay", 31, 1), (" ", 20, 0)):
            fill, outline, box = text_masks(text, font_path, size, stroke)
            font, ref_top, _ = load_font(font_path, size)
            left, top, right, _ = font.getbbox(text, anchor="ls", stroke_width=stroke)
            top = min(top, ref_top - stroke)
            origin = (1 - left, 1 - top)
            expected = Image.new("L", fill.size, 0)
            ImageDraw.Draw(expected).text(origin, text, font=font, fill=255, anchor="ls")
            assert fill.tobytes() == expected.tobytes(), (font_path, text)
            assert box == (1, 1, fill.width - 1, fill.height - 1)
            if stroke:
                ring = Image.new("L", fill.size, 0)
                ImageDraw.Draw(ring).text(origin, text, font=font, fill=255, anchor="ls", stroke_width=stroke, stroke_fill=255)
                assert outline.tobytes() == ring.tobytes() and outline.getbbox() is not None
            else:
                assert outline is None
