"""Smoke test of the reproduction-study driver (experiments/run_study.py) with a tiny budget.

Runs the real pipeline end to end -- synth data, calibration subprocesses, planning, runs,
report -- in --quick mode with a 45-second budget, so most runs are skipped by the budget
check; what is asserted is that the driver keeps to the budget, records every run and writes
the page, the plots and results.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUDGET_MIN = 0.75


def test_quick_study_keeps_budget_and_writes_page(tmp_path):
    out = tmp_path / "study"
    page = tmp_path / "docs" / "results.md"
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "run_study.py"), "--quick", "--budget-minutes", str(BUDGET_MIN),
         "--out", str(out), "--seeds", "0", "--page", str(page)],
        capture_output=True, text=True, timeout=240, cwd=str(tmp_path),
    )
    wall = time.time() - t0
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    study = json.loads((out / "results.json").read_text())

    # the budget: runs that cannot finish are skipped, so the driver ends near the deadline
    assert study["timing"]["total_s"] <= BUDGET_MIN * 60 + 15
    assert wall <= BUDGET_MIN * 60 + 60

    # calibration measured every run kind before planning
    assert set(study["calibration"]["step_seconds"]) == {"lm", "vis1", "vis2", "ft1", "ft2"}
    assert all(v > 0 for v in study["calibration"]["step_seconds"].values())
    assert study["steps"] >= 2 and study["warmstart_steps"] == 3 * study["steps"]

    # every planned run is recorded with a status; skipped ones say why
    runs = study["runs"]
    expected = {"warmstart", "lm", "vis_seqclr_s0", "vis_ce_s0", "ft_supervised_s0", "ft_semimtr_s0", "ft_soft_s0",
                "ft_threshold_s0"}
    assert set(runs) == expected
    for name, r in runs.items():
        assert r["status"] in ("done", "skipped", "failed"), name
        if r["status"] != "done":
            assert r["note"], name
        if r["status"] == "failed":
            assert "deadline" in r["note"], (name, r["note"])
        if r["status"] == "done" and name != "lm":
            assert 0.0 <= r["test"]["test_wild"]["vision"] <= 100.0
    # fine-tuning waits for its vision run: never done when that was not
    if runs["vis_seqclr_s0"]["status"] != "done":
        assert all(runs[n]["status"] == "skipped" for n in expected if n.startswith("ft_"))

    # the page and its plots
    text = page.read_text()
    assert "Small-scale reproduction" in text and "--quick smoke run" in text
    assert "## 1. Fine-tuning" in text and "## 4. Fine-tuning options" in text
    for png in ("accuracy.png", "heads.png", "curves.png"):
        assert (page.parent / "results" / png).stat().st_size > 1000
