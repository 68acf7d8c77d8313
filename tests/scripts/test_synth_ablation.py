"""experiments/synth_ablation.py: every variant is a valid recipe source list, and each ``no-*``
variant differs from ``all`` in its own part only."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml
from helpers import load_script

from semimtr_cli.core.config.types import build
from semimtr_cli.data.synth.scene import SceneSpec
from semimtr_cli.train.recipe import DataConfig

ROOT = Path(__file__).resolve().parents[2]


def _module():
    return load_script("experiments/synth_ablation.py")


def _sources(text: str):
    return build(DataConfig, {"labeled_synth": yaml.safe_load(text)}, "data").labeled_synth


def test_variants_are_recipe_sources_that_change_one_part_each():
    variants = _module().VARIANTS
    assert list(variants)[:3] == ["today", "fonts", "all"]
    today, fonts, full = (_sources(variants[n]) for n in ("today", "fonts", "all"))
    assert [s.style for s in today] == [s.style for s in fonts] == ["clean", "wild"]
    assert [s.fonts for s in today] == [None, None] and [s.fonts for s in fonts] == ["system", "system"]
    assert [s.style for s in full] == ["clean", "scene"] and full[1].scene is None
    default = dataclasses.asdict(SceneSpec())
    changed = {}
    for name in [n for n in variants if n.startswith("no-")]:
        sources = _sources(variants[name])
        assert [dataclasses.replace(s, scene=None) for s in sources] == full  # only the scene spec differs
        spec = dataclasses.asdict(sources[1].scene)
        changed[name] = {k for k in spec if spec[k] != default[k]}
    assert changed["no-colours"] == {"measured_colours"}
    assert changed["no-surface"] == {"textures", "border_prob", "shadow_prob", "extrusion_prob"}
    assert changed["no-distractors"] == {"neighbour_prob", "line_prob", "pad_x"}
    assert {"curve_prob", "jpeg_prob", "noise_sigma", "blur_prob"} <= changed["no-camera"]
    assert all(not (changed[a] & changed[b]) for a in changed for b in changed if a < b)  # parts do not overlap


def test_target_rows_load_as_recipes_with_synthetic_crops_only():
    from semimtr_cli.train.recipe import load_recipe

    module = _module()
    (wide,) = module.TARGETS["all-wide"]
    recipe = load_recipe(wide[0], wide[1])
    assert recipe.data.labeled_synth == _sources(module.VARIANTS["all"]) and recipe.data.labeled == []
    assert recipe.model.d_model == 256 and recipe.train.max_steps == 6000
    first, second = module.TARGETS["shipped-synth"]
    steps = 0
    for recipe_path, sets in (first, second):
        recipe = load_recipe(recipe_path, [s.replace("{prev}", "/runs/x") for s in sets])
        assert recipe.data.labeled == [] and recipe.data.unlabeled == []  # no real crop is trained on
        assert recipe.model.d_model == 256
        steps += recipe.train.max_steps
    assert steps == 6000 and recipe.init.vision == "/runs/x/last.pt"
    start, rest = (load_recipe(r, [s.replace("{prev}", "/runs/y") for s in sets]) for r, sets in module.TARGETS["tiny-clean-start"])
    assert [s.style for s in start.data.labeled_synth] == ["clean"] and rest.data.labeled_synth == _sources(module.VARIANTS["all"])
    assert start.train.max_steps + rest.train.max_steps == 6000 and rest.init.vision == "/runs/y/last.pt"
    assert start.model == rest.model == load_recipe(module.RECIPE).model  # the ablation's model
    old_start, old_rest = (load_recipe(r, [s.replace("{prev}", "/runs/z") for s in sets])
                           for r, sets in module.TARGETS["today-clean-start"])
    assert [s.fonts for s in old_start.data.labeled_synth] == [None]  # the bundled fonts, as today's
    assert old_rest.data.labeled_synth == _sources(module.VARIANTS["today"]) and old_rest.model == rest.model


def test_per_source_scores_split_the_test_keys_in_source_order(tmp_path):
    import json

    report = {"per_source": {"iiit5k": {"test": 4}, "svt": {"test": 2}, "ic15": {"test": 4}}}
    (tmp_path / "report.json").write_text(json.dumps(report))
    # keys 1-4 iiit5k, 5-6 svt, 7-10 ic15: one iiit5k crop wrong, both svt crops, three ic15 crops
    scores = _module().per_source([2, 5, 6, 7, 8, 10], tmp_path)
    assert scores == {"iiit5k": 75.0, "svt": 0.0, "ic15": 25.0}


def test_tilt_and_language_model_rows_stay_synthetic_and_change_what_they_say():
    from semimtr_cli.train.recipe import load_recipe

    module = _module()
    stages = [f"/runs/s{k}" for k in range(1, 5)]
    names = {"{prev}": "/runs/prev", **{f"{{stage{k}}}": s for k, s in enumerate(stages, 1)}}

    def recipes(row: str) -> list:
        return [load_recipe(r, [module._fill(s, names) for s in sets]) for r, sets in module.TARGETS[row]]

    vision_b = module.DEFAULT / "pretrain_vision_b.yaml"  # the helper's mix is the shipped recipe's own
    assert load_recipe(vision_b, [module._scene_mix(2201, "")]).data.labeled_synth == load_recipe(vision_b).data.labeled_synth
    plain, tilt = recipes("shipped-synth")[1], recipes("shipped-synth-tilt")[1]
    assert [dataclasses.replace(s, scene=None) for s in tilt.data.labeled_synth] == plain.data.labeled_synth
    spec = tilt.data.labeled_synth[0].scene
    assert (spec.tilt_prob, spec.low_res_prob) == (0.2, 0.35) and dataclasses.replace(
        spec, tilt_prob=0.0, low_res_prob=0.25) == SceneSpec()
    for row in ("shipped-synth-lm", "shipped-synth-lm-low-lr"):
        a, b, lm, full = recipes(row)
        assert (lm.stage, full.stage) == ("pretrain-lm", "finetune")
        assert all(r.data.labeled == [] and r.data.unlabeled == [] and r.data.unlabeled_synth == [] for r in (a, b, full))
        assert not full.consistency.enabled and full.init.vision == "/runs/s2/last.pt" and full.init.language == "/runs/s3/last.pt"
        assert a.train.max_steps + b.train.max_steps + full.train.max_steps == 7000
    assert [recipes(row)[3].optim.lr for row in ("shipped-synth-lm", "shipped-synth-lm-low-lr")] == [5e-4, 1e-4]
