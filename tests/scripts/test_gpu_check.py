"""benchmarks/gpu_check.py --dry-run: the one GPU check script runs every section on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_dry_run_fills_every_section(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["dry_run"] and report["machine"]["cpu"] and "load_average" in report["machine"]
    stages = {r["stage"] for r in report["train"]["result"]}
    assert stages == {"pretrain-vision", "pretrain-lm", "finetune"}
    assert all(r["images_per_s"] > 0 for r in report["train"]["result"])
    assert set(report["eval"]["result"]["images_per_s"]) == {"fp32", "bf16"}
    assert report["compile"]["result"]["compiled_images_per_s"] > 0
    assert report["loader"]["result"]["loader_over_training"] > 0
    assert report["ddp"]["result"]["backend"] == "gloo" and report["ddp"]["result"]["ddp_s_per_step"] > 0
    assert "skipped" in report["official"]["result"]


def test_a_dry_run_never_writes_over_the_committed_gpu_figures():
    from helpers import load_script

    module = load_script("benchmarks/gpu_check.py")
    committed = ROOT / "benchmarks" / "results" / "gpu_check.json"
    assert module.default_out(dry_run=False) == committed
    assert module.default_out(dry_run=True) != committed
    assert "benchmarks" not in module.default_out(dry_run=True).parts
