"""The dotmatrix style: text made of separate dots (LED signs, inkjet codes), deterministic per
(seed, index), written by `semimtr synth --style dotmatrix`."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from semimtr_cli.cli.app import app
from semimtr_cli.data.lmdb.io import LmdbReader
from semimtr_cli.data.synth.dotmatrix import CELL, dot_grid, dot_mask
from semimtr_cli.data.synth.fonts import bundled_font_dir
from semimtr_cli.data.synth.generate import draw_sample, plan_synth

runner = CliRunner()
SANS = str(bundled_font_dir() / "DejaVuSans.ttf")


def test_dot_mask_stamps_one_dot_per_on_cell():
    grid = np.zeros((3, 4), bool)
    grid[0, 0] = grid[1, 2] = True
    mask = dot_mask(grid, np.random.default_rng(0), radius=0.8, square=False, jitter=0.0, dropout=0.0)
    assert mask.shape == (3 * CELL, 4 * CELL)
    cells = mask.reshape(3, CELL, 4, CELL).sum(axis=(1, 3))
    assert (cells > 0).tolist() == grid.tolist()  # dots exactly where the grid is on
    assert cells[0, 0] == cells[1, 2] < CELL * CELL  # equal dots that do not fill their cells
    square = dot_mask(grid, np.random.default_rng(0), radius=0.8, square=True, jitter=0.0, dropout=0.0)
    assert square.sum() > mask.sum()  # a square of the same half-width covers more than a disc
    gone = dot_mask(grid, np.random.default_rng(0), radius=0.8, square=False, jitter=0.0, dropout=1.0)
    assert gone.sum() == 0


def test_dot_grid_follows_the_text_height():
    small, large = dot_grid("Hello", SANS, 7), dot_grid("Hello", SANS, 10)
    assert small.any() and large.sum() > small.sum()
    assert 7 <= small.shape[0] < large.shape[0]


def test_dotmatrix_crops_are_deterministic_word_shaped_and_made_of_dots():
    plan, _ = plan_synth(3, fonts=[SANS], style="dotmatrix", words=["exit", "platform", "delayed"])
    a = [draw_sample(plan, i) for i in range(10)]
    b = [draw_sample(plan, i) for i in range(10)]
    assert all(np.array_equal(np.asarray(x[0]), np.asarray(y[0])) and x[1] == y[1] for x, y in zip(a, b))
    for img, text, _ in a:
        assert img.mode == "RGB" and img.height == 32 and img.width >= 16 and text
        assert np.asarray(img).std() > 3


def test_synth_cli_writes_a_dotmatrix_lmdb(tmp_path):
    out = tmp_path / "dm"
    result = runner.invoke(app, ["synth", "--style", "dotmatrix", "--out", str(out), "--count", "6", "--seed", "1", "--lmdb"])
    assert result.exit_code == 0, result.output
    reader = LmdbReader(out)
    assert len(reader) == 6 and all(reader.label(i) for i in range(6))
