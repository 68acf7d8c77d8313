"""benchmarks/adapt_gain.py runs the README quickstart's lines (so its numbers are the README's),
and summarises seeds into means and intervals."""

from __future__ import annotations

import sys
from pathlib import Path

from helpers import load_script

ROOT = Path(__file__).resolve().parents[2]


def _module():
    sys.path.insert(0, str(ROOT / "experiments"))
    return load_script("benchmarks/adapt_gain.py")


def _quickstart_lines() -> list[str]:
    """The README quickstart block, one string per command (continuation lines joined)."""
    block = (ROOT / "README.md").read_text().split("## Quickstart")[1].split("```bash\n")[1].split("```")[0]
    joined = block.replace("\\\n", " ")
    return [" ".join(line.split("#")[0].split()) for line in joined.splitlines() if line.strip().startswith("semimtr")]


def test_seed_zero_runs_the_readme_commands():
    lines = _quickstart_lines()
    for name, argv, _ in _module().commands(0, threads=2):
        core = [a for a in argv if not a.startswith(str(ROOT))]
        if name.startswith("finetune"):  # the README names the recipe by its relative path
            arm = name.split()[1]
            expected = f"semimtr finetune --recipe recipes/adapt/{arm}.yaml --out runs/adapt-{arm}"
        else:  # the benchmark's own extras (--threads, --json) come after the README's words
            cut = core.index("--threads") if "--threads" in core else len(core)
            expected = " ".join(core[:cut])
        assert any(line.startswith(expected) for line in lines), f"{name}: {expected!r} is not in the README quickstart"


def test_summary_gives_means_intervals_and_gains():
    mod = _module()
    acc = [{m: {h: base + d for h in mod.HEADS} for m, d in (("default", 0), ("supervised", 2), ("semimtr", 5))}
           for base in (60.0, 62.0, 64.0)]
    s = mod.summarise([{"seed": i, "accuracy": a} for i, a in enumerate(acc)])
    assert s["accuracy"]["semimtr"]["alignment"]["mean"] == 67.0
    assert s["unlabeled_gain"]["alignment"] == {"mean": 3.0, "ci95": 0.0, "values": [3.0, 3.0, 3.0]}
    assert s["labels_gain"]["vision"]["mean"] == 2.0 and s["accuracy"]["default"]["vision"]["ci95"] > 0


def test_oracle_trains_on_the_unlabeled_crops_with_their_labels():
    mod = _module()
    plain = mod.commands(0, threads=1)
    oracle = {name: (argv, out) for name, argv, out in mod.commands(0, threads=1, oracle=True)}
    unlabeled = next(argv for name, argv, _ in plain if name == "synth unlabeled")
    labeled_copy, out = oracle["synth unlabeled-with-labels"]
    assert labeled_copy[labeled_copy.index("--seed") + 1] == unlabeled[unlabeled.index("--seed") + 1]  # the same crops
    assert "--unlabeled" in unlabeled and "--unlabeled" not in labeled_copy
    argv, out = oracle["finetune oracle"]
    assert out == "runs/adapt-oracle" and "train.batch_size=48" in argv
    assert f"data.labeled=[data/dotmatrix/labeled,{labeled_copy[labeled_copy.index('--out') + 1]}]" in argv
    assert "runs/adapt-oracle/best.pt" in oracle["eval"][0] and len(plain) == len(oracle) - 2


def test_oracle_gain_and_reuse_of_finished_outputs(tmp_path):
    mod = _module()
    acc = [{m: {h: base + d for h in mod.HEADS} for m, d in (("default", 0), ("supervised", 2), ("semimtr", 3), ("oracle", 6))}
           for base in (60.0, 62.0)]
    s = mod.summarise([{"seed": i, "accuracy": a} for i, a in enumerate(acc)])
    assert s["oracle_gain"]["alignment"]["mean"] == 4.0 and s["unlabeled_gain"]["alignment"]["mean"] == 1.0
    assert "oracle_gain" not in mod.summarise([{"seed": 0, "accuracy": {m: acc[0][m] for m in mod.MODELS[:3]}}])
    (tmp_path / "lmdb").mkdir()
    (tmp_path / "run").mkdir()
    assert not mod.finished(tmp_path / "lmdb") and not mod.finished(tmp_path / "run")
    (tmp_path / "lmdb" / "data.mdb").write_bytes(b"")
    (tmp_path / "run" / "summary.json").write_text("{}")
    assert mod.finished(tmp_path / "lmdb") and mod.finished(tmp_path / "run")
