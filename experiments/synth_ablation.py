#!/usr/bin/env python
"""What each part of the synthetic-crop generator buys on real words: the ablation of docs/synth.md.

    python experiments/synth_ablation.py [--runs runs/synth_ablation] [--only all fonts ...]
        [--steps 6000] [--threads 1] [--real data/real] [--json experiments/results/synth_ablation.json]

Every variant trains the same model the same way: the study's source model
(``recipes/study/pretrain_vision.yaml``: cpu-tiny vision, 6000 steps of 32 crops, CE only, the
augmentation ramp), on streamed synthetic crops only; only the generator changes. Variants:

* ``today``: the generator before the scene style: clean + wild crops, the 21 bundled fonts;
* ``fonts``: the same, with the system fonts (``bash scripts/install_training_fonts.sh``);
* ``all``: ``fonts`` with the scene style in place of the wild one, every part on (the clean half
  stays: on scene crops alone this model from scratch was still on the letter-frequency plateau,
  loss 2.82, real-crop accuracy 0.2 %, after 1200 steps);
* ``no-colours``, ``no-surface``, ``no-distractors``, ``no-camera``: ``all`` with one part off
  (``SceneSpec`` overrides, a recipe's ``scene:`` key): random colours instead of the measured
  pairs; plain backgrounds without border, shadow or extrusion; no neighbouring text and no crop
  that cuts into a letter; no curve, resolution loss, blur, noise or JPEG.

More rows, run only when named in ``--only``, ask what the full generator's crops teach
when the model leaves the plateau sooner or is larger, in the same 6000 x 32 crops (the
synthetic-data issue's target; :data:`TARGETS`), with tilted crops, or with a language model:

* ``all-wide``: ``all``'s crops and recipe, the shipped model's vision size (2.26 M parameters,
  4x the ablation's 0.56 M);
* ``tiny-clean-start``: the ablation's model and ``all``'s crops after 1000 steps of clean crops alone;
* ``today-clean-start``: the same start and steps with the generator before the scene style
  (``today``'s crops), to see whether the generator still matters once the plateau is gone;
* ``shipped-synth``: the shipped model's own vision stages, 1a (1500 steps of clean crops) then 1b
  (4500 steps of scene + clean crops), without the real training splits 1b also reads;
* ``tiny-clean-start-tilt``, ``shipped-synth-tilt``: those two with scene crops closer to
  incidental text (one in five steeply rotated inside its axis-aligned box; the wide row also
  loses resolution on 35 % of the crops instead of 25 %);
* ``shipped-synth-lm``, ``shipped-synth-lm-low-lr``: the vision
  stages, the shipped language model (text only, no image: ``pretrain-lm`` on wordfreq English),
  then 1000 supervised steps of the full model on synthetic crops (7000 x 32 crops in all), at the
  shipped stage 3's learning rate or the official recipes' 1e-4; scored on the alignment head, every head
  recorded. A stage that names ``{stageN}`` reads the N-th stage's run folder.

Real crops (``experiments/prepare_real_crops.py``) are only scored: ``REAL/valid`` every
``eval_every`` steps (the curve), ``REAL/test`` once with the run's last checkpoint (the table);
no checkpoint is chosen on either. A variant whose folder holds ``summary.json`` is done, one
with ``last.pt`` is resumed, so the script can be stopped and run again at any point.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))  # the sibling scripts imported below

from semimtr_cli.core.charset import Charset  # noqa: E402
from semimtr_cli.core.config.types import build  # noqa: E402
from semimtr_cli.core.fsutil import atomic_path, atomic_write_json  # noqa: E402
from semimtr_cli.core.runtime import machine_record  # noqa: E402
from semimtr_cli.data.lmdb.io import key_index  # noqa: E402
from semimtr_cli.data.synth.preview import crops_panel  # noqa: E402
from semimtr_cli.data.synth.stream import SynthCropDataset  # noqa: E402
from semimtr_cli.train.recipe import DataConfig  # noqa: E402
from prepare_real_crops import source_ranges  # noqa: E402
from train_default_model import WORDS, write_words  # noqa: E402

RECIPE = ROOT / "recipes" / "study" / "pretrain_vision.yaml"
OLD = "[{style: clean, seed: 1001, crops_per_epoch: 200000%s}, {style: wild, seed: 1002, crops_per_epoch: 200000%s}]"
SCENE = ("[{style: clean, seed: 1001, crops_per_epoch: 200000, fonts: system}, "
         "{style: scene, seed: 1002, crops_per_epoch: 200000, fonts: system%s}]")
PARTS = {  # part switched off -> SceneSpec overrides
    "colours": "{measured_colours: false}",
    "surface": "{textures: false, border_prob: 0, shadow_prob: 0, extrusion_prob: 0}",
    "distractors": "{neighbour_prob: 0, line_prob: 0, pad_x: [0.05, 0.3]}",
    "camera": "{curve_prob: 0, low_res_prob: 0, blur_prob: 0, motion_prob: 0, noise_sigma: [0, 0], jpeg_prob: 0}",
}
VARIANTS = {
    "today": OLD % ("", ""),
    "fonts": OLD % (", fonts: system", ", fonts: system"),
    "all": SCENE % "",
    **{f"no-{part}": SCENE % f", scene: {spec}" for part, spec in PARTS.items()},
}


# The target rows: 6000 x 32 synthetic crops in all, a different start or model size. Each is a
# list of stages (recipe, --set overrides); a stage starts from the previous stage's last.pt
# ("{prev}") and the last stage's last.pt is scored. They fix their own steps (not --steps).
DEFAULT = ROOT / "recipes" / "default"
WIDE = ["model.resnet_stem_channels=16", "model.resnet_channels=[16,32,64,128,256]", "model.d_model=256",
        "model.nhead=4", "model.d_inner=512", "model.attention_channels=64"]  # the shipped model's vision size
TILT = "{tilt_prob: 0.2, low_res_prob: 0.35}"
# the ablation's model on 1000 steps of clean crops alone (system fonts): the clean-start rows' first stage
CLEAN_START = (RECIPE, ["data.labeled_synth=[{style: clean, seed: 1001, crops_per_epoch: 200000, fonts: system}]",
                        "data.weights=[1.0]", "train.max_steps=1000"])


def _scene_mix(seed: int, scene: str = "") -> str:
    """The shipped recipes' scene + clean mix (17000 : 5000 crops per epoch), scene spec overrides."""
    extra = f", scene: {scene}" if scene else ""
    return (f"data.labeled_synth=[{{style: scene, seed: {seed}, crops_per_epoch: 17000, fonts: system, case: mixed, "
            f"digits_fraction: 0.15{extra}}}, {{style: clean, seed: {seed + 1}, crops_per_epoch: 5000, fonts: system, case: mixed}}]")


def shipped_vision(scene: str = "") -> list:
    """The shipped vision stages 1a (1500 clean steps) and 1b (4500 scene + clean steps), no real crops."""
    return [(DEFAULT / "pretrain_vision_a.yaml", []),
            (DEFAULT / "pretrain_vision_b.yaml", ["data.labeled=[]", "train.max_steps=4500", "train.eval_every=500",
                                                   "init.vision={prev}/last.pt", *([_scene_mix(2201, scene)] if scene else [])])]


def full_model(lr: float = 5e-4) -> list:
    """The shipped language model (text only), then 1000 supervised full-model steps on synthetic
    crops from stage 2's vision weights (no consistency, no real crop), peak learning rate ``lr``
    (the shipped stage 3's 5e-4; the official recipes use 1e-4)."""
    return [(DEFAULT / "pretrain_lm.yaml", []),
            (DEFAULT / "finetune.yaml", ["data.labeled=[]", "data.unlabeled_synth=[]", "data.weights=[1.0]",
                                         "consistency.enabled=false", _scene_mix(3101), "train.max_steps=1000",
                                         "train.eval_every=250", f"optim.lr={lr}", "init.vision={stage2}/last.pt",
                                         "init.language={stage3}/last.pt"])]


TARGETS = {
    # the study recipe and all's crops, the shipped model's vision size (2.26 M parameters) from scratch
    "all-wide": [(RECIPE, [f"data.labeled_synth={VARIANTS['all']}", "data.weights=[1.0]", "train.max_steps=6000", *WIDE])],
    # the ablation's model and crops, started on clean crops alone (1000 steps), then all's mix (5000)
    "tiny-clean-start": [CLEAN_START,
                         (RECIPE, [f"data.labeled_synth={VARIANTS['all']}", "data.weights=[1.0]", "train.max_steps=5000",
                                   "init.vision={prev}/last.pt"])],
    # tiny-clean-start with one scene crop in five steeply rotated inside its axis-aligned box
    # (SceneSpec.tilt_prob), as the boxes of incidental text (IC15) cut words
    "tiny-clean-start-tilt": [CLEAN_START,
                              (RECIPE, [f"data.labeled_synth={SCENE % ', scene: {tilt_prob: 0.2}'}", "data.weights=[1.0]",
                                        "train.max_steps=5000", "init.vision={prev}/last.pt"])],
    # the same start with the generator before the scene style (bundled fonts; clean, then clean + wild)
    "today-clean-start": [(RECIPE, ["data.labeled_synth=[{style: clean, seed: 1001, crops_per_epoch: 200000}]",
                                    "data.weights=[1.0]", "train.max_steps=1000"]),
                          (RECIPE, [f"data.labeled_synth={VARIANTS['today']}", "data.weights=[1.0]", "train.max_steps=5000",
                                    "init.vision={prev}/last.pt"])],
    # the shipped model's vision stages 1a (1500 steps of clean crops) and 1b (4500 of scene + clean),
    # without the real training splits 1b adds
    "shipped-synth": shipped_vision(),
    # the same with scene crops closer to incidental text: one in five steeply rotated inside its
    # axis-aligned box (SceneSpec.tilt_prob), resolution loss on 35 % (the share of real training
    # crops under 27 px high) instead of 25 %
    "shipped-synth-tilt": shipped_vision(TILT),
    # shipped-synth's vision stages, the shipped language model (stage 2: text only, no image), then
    # 1000 steps of the full model (vision + language + alignment) on a scene + clean mix:
    # 7000 x 32 crops in all, synthetic only; scored on its alignment head, the vision head beside it
    "shipped-synth-lm": [*shipped_vision(), *full_model()],
    # the same at the official recipes' learning rate (1e-4): at 5e-4 the vision head fell from 43.2 to
    # 33.5 % on REAL/valid in the first 250 steps and ended below where it started
    "shipped-synth-lm-low-lr": [*shipped_vision(), *full_model(lr=1e-4)],
}


def preview(name: str, path: Path, count: int = 40) -> Path:
    """A grid of the first ``count`` crops of the variant's last source (wild or scene), 160 colours."""
    source = build(DataConfig, {"labeled_synth": yaml.safe_load(VARIANTS[name])}, "data").labeled_synth[-1]
    ds = SynthCropDataset(source, Charset.preset("36"))
    crops = [Image.fromarray(ds.sample(i)[0]) for i in range(count)]
    grid = crops_panel(crops, f"{name}: {source.style} style, the first {count} training crops")
    with atomic_path(path, suffix=".png") as tmp:
        grid.quantize(160).save(tmp, "PNG")
    return path


def _run(out: Path, recipe: Path, sets: list[str], real: Path, threads: int) -> None:
    """One stage into ``out`` with the command its recipe's ``stage`` names (resumed when its
    last.pt exists, skipped when done); vision and full-model stages validate on ``REAL/valid``."""
    if (out / "summary.json").is_file():
        return
    command = yaml.safe_load(recipe.read_text())["stage"]
    if (out / "last.pt").is_file():
        args = ["--resume", str(out)]
    else:
        args = ["--recipe", str(recipe), "--out", str(out), "--threads", str(threads)]
        if command == "pretrain-lm":
            write_words()
            args += ["--set", f"data.corpus={WORDS}"]
        else:
            args += ["--set", f"data.valid=[{real / 'valid'}]"]
        for item in sets:
            args += ["--set", item]
    subprocess.run(["semimtr", command, *args], check=True)


def _fill(item: str, names: dict[str, str]) -> str:
    """``item`` with each placeholder of ``names`` ({prev}, {stage1}, ...) replaced by its run folder."""
    for key, value in names.items():
        item = item.replace(key, value)
    return item


def train(runs: Path, name: str, real: Path, steps: int, threads: int) -> list[Path]:
    """The variant's run folders, in order (one per stage); the last one's last.pt is scored."""
    if name in TARGETS:
        stages = [runs / f"{name}-{k + 1}" for k in range(len(TARGETS[name]))]
        for k, (recipe, sets) in enumerate(TARGETS[name]):
            names = {"{prev}": str(stages[k - 1]) if k else "", **{f"{{stage{j + 1}}}": str(f) for j, f in enumerate(stages)}}
            _run(stages[k], recipe, [_fill(item, names) for item in sets], real, threads)
        return stages
    _run(runs / name, RECIPE, [f"data.labeled_synth={VARIANTS[name]}", "data.weights=[1.0]",
                               f"train.max_steps={steps}"], real, threads)
    return [runs / name]


def score(run: Path, real: Path, threads: int) -> dict:
    """Word accuracy, 1-NED and char accuracy (%) of the run's last checkpoint on ``REAL/test``
    (its final head: alignment for a full model), word accuracy per source (:func:`per_source`),
    and, for a full model, every head's word accuracy (``heads``)."""
    with tempfile.TemporaryDirectory() as tmp:
        path, errors = Path(tmp) / "eval.json", Path(tmp) / "errors.csv"
        subprocess.run(["semimtr", "eval", str(run / "last.pt"), "--bench", str(real / "test"), "--threads", str(threads),
                        "--head", "all", "--json", str(path), "--errors", str(errors)], check=True, stdout=subprocess.DEVNULL)
        results = json.loads(path.read_text())
        results = results if isinstance(results, list) else [results]
        heads = {r["head"]: r for r in results}
        final = "alignment" if "alignment" in heads else "vision"
        row = heads[final]["sets"][0]
        wrong = [key_index(r["key"]) for r in csv.DictReader(errors.open(encoding="utf-8")) if r["head"] == final]
    scores = {k: round(row[k], 2) if isinstance(row[k], float) else row[k]
              for k in ("evaluated", "accuracy", "one_minus_ned", "char_accuracy")}
    out = {**scores, "head": final, "per_source": per_source(wrong, real)}
    if len(heads) > 1:
        out["heads"] = {h: round(r["sets"][0]["accuracy"], 2) for h, r in heads.items()}
    return out


def per_source(wrong: list[int], real: Path) -> dict[str, float]:
    """Word accuracy (%) per source of ``REAL/test`` from the 1-based keys of the wrong crops."""
    out = {}
    for name, keys in source_ranges(real, "test").items():
        missed = sum(k in keys for k in wrong)
        out[name] = round(100.0 * (len(keys) - missed) / len(keys), 1) if len(keys) else None
    return out


def curve(runs: list[Path]) -> list[dict]:
    """[{step, vision[, alignment]}]: word accuracy (%) on REAL/valid at each evaluation of the
    image stages in order, a later stage's steps counted on from the end of the one before
    (a language-model stage reads no image and adds no step)."""
    points, offset = [], 0
    for run in runs:
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        if not any(r.get("event") == "valid" and "vision" in r for r in rows):
            continue
        points += [{"step": offset + r["step"], **{h: round(r[h], 2) for h in ("vision", "alignment") if h in r}}
                   for r in rows if r.get("event") == "valid"]
        offset += max(r["step"] for r in rows if "step" in r)
    return points


def table(report: dict) -> str:
    """The docs table: one row per variant run so far, in VARIANTS order."""
    lines = ["| variant | word acc. % (held-out real) | 1-NED % | validation curve (word acc. %, steps 1000, 2000, ...) |",
             "|---|---|---|---|"]
    for name in [*VARIANTS, *TARGETS]:
        v = report["variants"].get(name)
        if v:
            points = ", ".join(f"{p['vision']:.1f}" for p in v["curve"] if p["step"] % 1000 == 0)
            lines.append(f"| `{name}` | {v['test']['accuracy']:.1f} | {v['test']['one_minus_ned']:.1f} | {points} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, default=Path("runs/synth_ablation"), help="run folders (keep them outside the work tree)")
    ap.add_argument("--real", type=Path, default=ROOT / "data" / "real")
    ap.add_argument("--only", nargs="+", choices=[*VARIANTS, *TARGETS], default=list(VARIANTS),
                    help="variants to run (default: the generator ablation; the target rows %s only when named)" % ", ".join(TARGETS))
    ap.add_argument("--steps", type=int, default=6000, help="steps of the generator rows (the target rows fix theirs)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--previews", type=Path, default=None,
                    help="write DIR/ablation-NAME.png for each variant and stop (no training)")
    ap.add_argument("--json", type=Path, default=ROOT / "experiments" / "results" / "synth_ablation.json")
    args = ap.parse_args(argv)
    if args.previews:
        for name in [n for n in args.only if n in VARIANTS]:
            print(preview(name, args.previews / f"ablation-{name}.png"))
        return 0
    report = json.loads(args.json.read_text()) if args.json.is_file() else {"variants": {}}
    for name in args.only:
        runs = train(args.runs, name, args.real, args.steps, args.threads)
        recipe = (VARIANTS[name] if name in VARIANTS
                  else " then ".join(f"{r.relative_to(ROOT)} {' '.join(sets)}".strip() for r, sets in TARGETS[name]))
        points = curve(runs)
        report["variants"][name] = {"sources": recipe, "steps": points[-1]["step"],
                                    "test": score(runs[-1], args.real, args.threads),
                                    "curve": points, "machine": machine_record()}
        report["command"] = "python experiments/synth_ablation.py " + " ".join(sys.argv[1:] if argv is None else argv)
        atomic_write_json(args.json, report)
        print(name, json.dumps(report["variants"][name]["test"]), flush=True)
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
