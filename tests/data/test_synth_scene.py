"""The scene style and what it draws from: fonts screened and hashed, the system's font folders,
colours measured on real crops, words by frequency, the preview beside real crops."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fontTools.subset import Subsetter
from fontTools.ttLib import TTFont
from PIL import Image
from typer.testing import CliRunner

from semimtr_cli.cli.app import app
from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.data.synth import fonts as fonts_mod
from semimtr_cli.data.synth.colors import LUMA, estimate_pair, otsu_threshold, packaged_pairs, sample_pair
from semimtr_cli.data.synth.fonts import bundled_font_dir, font_manifest, resolve_fonts, screen_fonts
from semimtr_cli.data.synth.generate import draw_sample, plan_synth
from semimtr_cli.data.synth.scene import SceneSpec, render_scene
from semimtr_cli.data.synth.stream import SynthCropDataset, SynthSource, source_manifest
from semimtr_cli.data.synth.texts import draw_text, rank_cdf, sign_case

runner = CliRunner()
SANS = str(bundled_font_dir() / "DejaVuSans.ttf")


def test_screen_fonts_keeps_writing_fonts_and_says_why_it_skips(tmp_path):
    copy = tmp_path / "MySans.ttf"
    shutil.copy(SANS, copy)
    symbol = tmp_path / "StandardSymbolsPS.ttf"
    shutil.copy(SANS, symbol)
    digits = tmp_path / "DigitsOnly.ttf"  # a display font that carries no letters
    subset = Subsetter()
    subset.populate(text="0123456789")
    font = TTFont(SANS)
    subset.subset(font)
    font.save(digits)
    broken = tmp_path / "Broken.ttf"
    broken.write_bytes(b"not a font")
    cmex = bundled_font_dir() / "cmex10.ttf"  # TeX's big operators sit at the letters' codes
    kept, skipped = screen_fonts([SANS, copy, symbol, digits, broken, cmex])
    assert kept == [SANS]
    assert skipped[str(copy)] == "a copy of a font already kept"
    assert skipped[str(symbol)] == skipped[str(cmex)] == "a symbol font (by its name)"
    assert skipped[str(digits)] == "draws no abcdefgh..."
    assert skipped[str(broken)] == "cannot be loaded"


def test_system_fonts_come_from_the_system_folders(tmp_path, monkeypatch):
    (tmp_path / "truetype" / "dejavu").mkdir(parents=True)
    shutil.copy(SANS, tmp_path / "truetype" / "dejavu" / "DejaVuSans.ttf")
    monkeypatch.setattr(fonts_mod, "SYSTEM_FONT_DIRS", (str(tmp_path), str(tmp_path / "missing")))
    assert [p.name for p in resolve_fonts("system")] == ["DejaVuSans.ttf"]
    monkeypatch.setattr(fonts_mod, "SYSTEM_FONT_DIRS", (str(tmp_path / "missing"),))
    with pytest.raises(SemimtrError, match="no system font folder"):
        resolve_fonts("system")


def test_font_manifest_names_and_hashes_the_files():
    (entry,) = font_manifest([SANS])
    assert entry["file"] == "DejaVuSans.ttf"
    assert entry["sha256"] == hashlib.sha256(Path(SANS).read_bytes()).hexdigest()[:16]


def test_colour_estimate_finds_text_and_background():
    crop = np.full((24, 60, 3), (230, 220, 200), np.uint8)
    crop[8:16, 10:50] = (20, 30, 90)  # dark blue text on a cream sign
    bg, fg = estimate_pair(crop)
    assert np.allclose(bg, (230, 220, 200)) and np.allclose(fg, (20, 30, 90))
    assert estimate_pair(np.full((24, 60, 3), 128, np.uint8)) is None  # one tone: nothing to learn
    grey = np.array([[10] * 50 + [200] * 50], np.uint8)
    assert 10 <= otsu_threshold(grey) < 200


def test_packaged_colours_and_their_draws_keep_text_legible():
    table = packaged_pairs()
    assert table.ndim == 2 and table.shape[1] == 6 and len(table) > 1000 and table.dtype == np.uint8
    rng = np.random.default_rng(0)
    gaps = [abs(float((fg - bg) @ LUMA)) for bg, fg in (sample_pair(rng) for _ in range(300))]
    assert min(gaps) >= 0.245  # the asked 0.25, up to the last step of the clipped shift


def test_words_by_frequency_keep_a_long_tail():
    cdf = rank_cdf(20000)
    assert np.all(np.diff(cdf) > 0) and cdf[-1] == pytest.approx(1.0)
    assert 0.1 < cdf[99] < 0.2  # the 100 most frequent words are common, not everything
    assert cdf[999] < 0.45  # words beyond rank 1000 keep more than half of the draws
    rng = np.random.default_rng(1)
    assert {sign_case(rng, "open") for _ in range(60)} == {"open", "Open", "OPEN"}
    words = tuple(f"w{i}" for i in range(100))
    others = [draw_text(rng, words, rank_cdf(100), 1.0) for _ in range(200)]
    assert sum(any(c.isdigit() for c in t) for t in others) > 120  # numbers, prices, codes, dates
    assert any(c in "$€£" for t in others for c in t)


def test_scene_crops_are_deterministic_word_shaped_and_labelled():
    plan, facts = plan_synth(7, fonts=[SANS], style="scene", words=["open", "market", "street"])
    a = [draw_sample(plan, i) for i in range(12)]
    b = [draw_sample(plan, i) for i in range(12)]
    assert all(np.array_equal(np.asarray(x[0]), np.asarray(y[0])) and x[1] == y[1] for x, y in zip(a, b))
    assert not np.array_equal(np.asarray(a[0][0]), np.asarray(a[1][0]))
    for img, text, _ in a:
        assert img.mode == "RGB" and img.height == 32 and img.width >= 16 and text
        assert np.asarray(img).std() > 3  # something is drawn
    assert facts["fonts_skipped"] == {}


def test_streamed_scene_source_and_its_manifest():
    cs = Charset.preset("36")
    source = SynthSource(style="scene", seed=3, crops_per_epoch=8, fonts=str(bundled_font_dir()), font_set="DejaVuSans.ttf")
    ds = SynthCropDataset(source, cs, image_size=(32, 96), fresh=False)
    item = ds[0]
    assert item["image"].shape == (3, 32, 96) and int(item["length"]) >= 2
    manifest = source_manifest(source, cs)
    assert manifest["style"] == "scene" and [f["file"] for f in manifest["fonts_used"]] == ["DejaVuSans.ttf"]



def test_scene_overrides_switch_one_part_off_and_leave_the_rest_alone():
    """A recipe's ``scene:`` key (the ablation's variants): the default spec draws the same crops
    as no override; switching the camera off draws different ones; other styles refuse it."""
    cs = Charset.preset("36")
    base = dict(style="scene", seed=5, crops_per_epoch=8, fonts=str(bundled_font_dir()), font_set="DejaVuSans.ttf")
    plain, same = (SynthCropDataset(SynthSource(**base, scene=s), cs, fresh=False) for s in (None, SceneSpec()))
    quiet = SynthCropDataset(SynthSource(**base, scene=SceneSpec(
        curve_prob=0, low_res_prob=0, blur_prob=0, motion_prob=0, noise_sigma=(0, 0), jpeg_prob=0)), cs, fresh=False)
    grey = SynthCropDataset(SynthSource(**base, scene=SceneSpec(textures=False, measured_colours=False)), cs, fresh=False)
    crops = [[ds.sample(i) for i in range(6)] for ds in (plain, same, quiet, grey)]
    assert all(np.array_equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(crops[0], crops[1]))
    assert [c[1] for c in crops[2]] == [c[1] for c in crops[0]]  # same words, another look
    for other in crops[2:]:  # a crop that drew no camera effect anyway may stay the same
        assert sum(not np.array_equal(a[0], b[0]) for a, b in zip(crops[0], other)) >= 4
    with pytest.raises(SemimtrError, match="need style: scene"):
        SynthCropDataset(SynthSource(**{**base, "style": "wild"}, scene=SceneSpec()), cs)

def test_synth_cli_scene_preview_beside_real_crops_and_font_metadata(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    for i in range(3):
        Image.new("RGB", (40 + 10 * i, 20), (200, 50 * i, 30)).save(real / f"{i}.png")
    out, grid = tmp_path / "words", tmp_path / "grid.png"
    res = runner.invoke(app, ["synth", "--style", "scene", "--out", str(out), "--count", "6", "--seed", "2",
                              "--preview", str(grid), "--compare", str(real), "--fonts", str(bundled_font_dir()),
                              "--font-set", "DejaVuSans.ttf,DejaVuSerif.ttf"])
    assert res.exit_code == 0, res.output
    assert Image.open(grid).width > 640  # two panels: synthetic and real
    meta = json.loads((out / "synth.json").read_text())
    assert {f["file"] for f in meta["fonts"]} == {"DejaVuSans.ttf", "DejaVuSerif.ttf"}
    assert all(len(f["sha256"]) == 16 for f in meta["fonts"])
    assert "2 kept" in res.output
    res = runner.invoke(app, ["synth", "--count", "3"])
    assert res.exit_code == 2 and "--out" in res.output and "--preview" in res.output


def test_steep_tilt_draws_the_axis_aligned_box_of_a_rotated_word():
    """``tilt_prob``: the word turns by up to ``tilt_deg`` whatever its length, and the crop is the
    box around it (incidental text as detectors cut it): a long word's crop gets far less wide."""
    def widths(spec: SceneSpec) -> list[int]:
        return [render_scene("internationally", SANS, np.random.default_rng(seed), spec=spec).width for seed in range(12)]

    level, steep = widths(SceneSpec(curve_prob=0)), widths(SceneSpec(curve_prob=0, tilt_prob=1.0, tilt_deg=40.0))
    assert min(level) > 100  # a 15-letter word at 32 px stays wide when it barely turns
    assert np.median(steep) < 0.6 * np.median(level)
