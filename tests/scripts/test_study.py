"""The reproduction-study driver (experiments/run_study.py): its plan, its statistics, and a smoke run.

The smoke run goes through the real pipeline -- synth data, calibration subprocesses, plan, runs,
re-plan, report -- in --quick mode with a budget so small that most runs are skipped; what is
asserted is that the driver keeps to the budget, records every run with a reason and writes the
page, its plots and results.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "experiments"))

import study_plan  # noqa: E402
import study_report  # noqa: E402

from semimtr_cli.train.recipe import load_recipe

BUDGET_MIN = 0.5  # the driver runs to its budget: this is the test's length


def _override(arm_overrides: list[str], key: str):
    values = [o.split("=", 1)[1] for o in arm_overrides if o.startswith(key + "=")]
    return values[-1] if values else None


def test_arms_see_equal_labeled_crops_per_step_and_share_one_schedule(tmp_path):
    """Supervised batch = the labeled share of the consistency batch; one LR schedule for every arm."""
    regime = study_plan.regime_a(tmp_path)
    steps = study_plan.Steps(teacher=10, lm=10, vision=10, finetune=10)
    every = {"teacher": 5, "lm": 5, "vision": 5, "finetune": 5}
    jobs = study_plan.plan_jobs("finetune", steps, [0, 1], [regime], tmp_path / "runs", every)
    ft = [j for j in jobs if j["recipe"] == "finetune.yaml"]
    assert len(ft) == 2 * len(study_plan.FINETUNE_ARMS)
    recipes = {}
    for j in ft:
        r = load_recipe(study_plan.RECIPES / j["recipe"], [o for o in j["overrides"] if not o.startswith(("init.", "data."))]
                        + [o for o in j["overrides"] if o.startswith("data.weights")])
        recipes[j["arm"]] = r
    cons = recipes["semimtr"]
    labeled_share = cons.data.weights[0] / sum(cons.data.weights)
    assert recipes["supervised"].train.batch_size == cons.train.batch_size * labeled_share == 16
    assert not recipes["supervised"].consistency.enabled and cons.consistency.enabled
    assert cons.consistency.pairing == "all_to_all" and cons.consistency.one_hot and cons.consistency.threshold is None
    assert recipes["v2v_t09"].consistency.pairing == "vision" and recipes["v2v_t09"].consistency.threshold == 0.9
    assert len({(r.optim.lr, r.optim.schedule, r.optim.warmup_steps, r.train.max_steps) for r in recipes.values()}) == 1
    # every fine-tuning arm starts from the source model and the LM, after both
    assert all(j["deps"] == ["teacher", "lm"] and any(o.startswith("init.vision=") for o in j["overrides"]) for j in ft)
    # equal labeled crops per step for the vision arms too
    assert _override(study_plan.VISION_ARMS["vis_ce"][1], "train.batch_size") == "16"
    assert _override(study_plan.VISION_ARMS["vis_seqclr"][1], "data.weights") == "[0.5,0.5]"
    vision = study_plan.plan_jobs("vision", steps, [0, 1], [regime], tmp_path / "runs", every)
    assert [j["name"] for j in vision] == ["vis_seqclr_s0", "vis_seqclr_s1", "vis_ce_s0", "vis_ce_s1"]
    assert [j["name"] for j in study_plan.plan_jobs("sources", steps, [0], [regime], tmp_path, every)] == ["teacher", "lm"]


def test_scored_crops_counts_validations_tests_and_pool_passes(tmp_path):
    regime = study_plan.regime_a(tmp_path)
    steps = study_plan.Steps(teacher=10, lm=10, vision=10, finetune=100)
    every = {"teacher": 5, "lm": 5, "vision": 5, "finetune": 10}
    job = next(j for j in study_plan.plan_jobs("finetune", steps, [0], [regime], tmp_path, every)
               if j.get("arm") == "semimtr")
    sizes = {p: 300 for p in regime.valid} | {p: 1000 for p in regime.test.values()} | {p: 500 for p in regime.truth}
    # 11 validations of min(500, 600) crops + 2 test sets of 1000 + 2 heads x 2 pools of 500
    assert study_plan.scored_crops(job, sizes) == 11 * 500 + 2000 + 2 * 1000


def test_unseen_sets_score_the_regime_b_models_and_the_source_model_only(tmp_path):
    a = study_plan.regime_a(tmp_path / "a")
    b = study_plan.Regime("B", ["l"], ["u"], ["v"], {"B_test": "t"}, ["tr"], unseen={"U_IIIT5k": "iiit", "U_SVT": "svt"})
    steps = study_plan.Steps(teacher=10, lm=10, vision=10, finetune=10)
    every = {"teacher": 5, "lm": 5, "vision": 5, "finetune": 5}
    jobs = {j["name"]: j for j in study_plan.plan_jobs("finetune", steps, [0], [a, b], tmp_path / "runs", every)}
    assert jobs["teacher"]["unseen"] == {"sets": b.unseen, "heads": ["vision"]}
    assert jobs["B_semimtr_s0"]["unseen"]["sets"] == b.unseen and jobs["A_semimtr_s0"]["unseen"] is None
    assert "U_IIIT5k" not in jobs["B_semimtr_s0"]["eval"]["sets"]  # never mixed into the regime's test score
    sizes = {"iiit": 3000, "svt": 647}
    assert study_plan.scored_crops(jobs["B_semimtr_s0"], sizes) == 3647


def test_unseen_section_reports_each_set_and_the_paired_difference():
    def run(arm, seed, acc):
        return {"regime": "B", "arm": arm, "seed": seed, "status": "done",
                "unseen": {"U_IIIT5k": {"alignment": acc, "vision": acc, "evaluated": 300},
                           "U_SVT": {"alignment": acc + 10, "vision": acc, "evaluated": 100}}}
    runs = {f"{arm}_s{s}": run(arm, s, base + s) for arm, base in (("supervised", 40.0), ("semimtr_t09", 43.0))
            for s in (0, 1, 2)}
    runs["teacher"] = {"status": "done", "unseen": {"U_IIIT5k": {"vision": 20.0, "evaluated": 300},
                                                    "U_SVT": {"vision": 24.0, "evaluated": 100}}}
    study = {"runs": runs, "regimes": {"B": {"unseen": {"U_IIIT5k": "x", "U_SVT": "y"}}}}
    lines = []
    study_report.unseen_section(lines.append, study, "B")
    text = "\n".join(lines)
    assert "| IIIT5k | SVT | all |" in text
    assert "| source model (before fine-tuning) | vision | 20.0 | 24.0 | 21.0 |" in text
    assert "| supervised only | alignment | 41.0 ± 2.5 | 51.0 ± 2.5 | 43.5 ± 2.5 |" in text
    assert "| SemiMTR, threshold 0.9 | alignment | 3.0 ± 0.0 | +3.0, +3.0, +3.0 | better |" in text
    empty = []
    study_report.unseen_section(empty.append, {"runs": {}, "regimes": {"A": {}}}, "A")
    assert empty == []


def test_consistency_kinds_calibrate_beside_each_other(tmp_path):
    """With two lanes the first two kinds run together: the two consistency kinds, as in the study."""
    a = study_plan.regime_a(tmp_path / "a")
    b = study_plan.Regime("B", ["l"], ["u"], ["v"], {"B_test": "t"}, ["tr"])
    kinds = list(study_plan.calibration_kinds("finetune", [a, b]))
    assert kinds[2:4] == ["ft_consistency_A", "ft_consistency_B"]
    assert set(kinds[4:]) == {"ft_supervised_A", "ft_supervised_B"}


def test_set_steps_replaces_the_planned_step_count():
    spec = {"steps": 5, "overrides": ["train.seed=0", "train.max_steps=5", "train.eval_every=1"]}
    study_plan.set_steps(spec, 300, 30)
    assert spec["steps"] == 300
    assert [o for o in spec["overrides"] if "max_steps" in o or "eval_every" in o] == ["train.max_steps=300",
                                                                                      "train.eval_every=30"]


def test_paired_interval_and_verdicts():
    m, h = study_report.mean_ci([1.0, 2.0, 3.0])
    assert m == pytest.approx(2.0) and h == pytest.approx(4.303 * 1.0 / 3 ** 0.5, rel=1e-3)
    assert study_report.verdict([2.0, 2.5, 3.0]) == "better"
    assert study_report.verdict([-2.0, -2.5, -3.0]) == "worse"
    assert study_report.verdict([-1.0, 2.0, 0.5]) == "no detectable difference"
    assert study_report.verdict([1.0]) == "one seed, no interval"
    assert study_report.paired({0: 5.0, 1: 7.0, 2: 1.0}, {0: 4.0, 1: 9.0}) == [1.0, -2.0]


def test_flat_tail_fits_a_line_to_the_last_30_percent():
    flat = [(100, 50.0), (200, 60.0), (700, 70.0), (800, 70.5), (1000, 70.2)]
    rising = [(100, 50.0), (200, 60.0), (700, 65.0), (800, 68.0), (1000, 72.0)]
    assert study_report.flat_tail(flat) == (True, pytest.approx(0.107, abs=1e-3))
    assert study_report.flat_tail(rising) == (False, pytest.approx(6.9, abs=0.05))
    # one noisy high point is no trend (the highest point minus the first would say +2)
    noisy = [(100, 50.0), (700, 70.0), (800, 72.0), (900, 69.0), (1000, 70.0)]
    assert study_report.flat_tail(noisy)[0] is True
    assert study_report.flat_tail([(1, 1.0), (2, 2.0)]) is None


def test_fit_steps_fills_the_time_left():
    import run_study

    f = run_study.fit_steps(1000.0, 2, step_cost=2.0, side=400.0, overhead=100.0, cap=10_000)
    assert f == 750  # (1000 * 2 - 400 - 100) / 2
    assert run_study.fit_steps(10.0, 2, step_cost=2.0, side=400.0, overhead=100.0, cap=10_000) == 10
    assert run_study.fit_steps(1e6, 2, step_cost=2.0, side=0.0, overhead=0.0, cap=600) == 600


def test_plan_with_reused_sources_gives_fine_tuning_the_whole_budget():
    import argparse

    import run_study

    args = argparse.Namespace(plan="finetune", seeds=[0], lanes=2, teacher_steps=1000, lm_steps=1000,
                              vision_steps=100, max_finetune_steps=10_000)
    t = {"teacher": 1.0, "lm": 1.0, "ft_supervised_A": 0.5, "ft_consistency_A": 1.0}
    fresh = run_study.plan_steps(args, t, ["A"], 2000.0, True, overhead=0.0)
    reused = run_study.plan_steps(args, t, ["A"], 2000.0, False, overhead=0.0)
    assert fresh.finetune == 570  # (2000 - 1000 s of sources) x 2 lanes / 3.5 s per step of the four arms
    assert reused.finetune == 1140  # 2000 x 2 / 3.5
    args.plan = "sources"
    assert run_study.plan_steps(args, t, ["A"], 10.0, True, overhead=0.0) == run_study.Steps(1000, 1000, 0, 0)


def test_reuse_finished_takes_a_matching_run_and_refuses_another(tmp_path):
    import run_study
    from study_pool import Job

    spec = {"recipe": "pretrain_vision.yaml", "overrides": ["train.max_steps=10"]}
    (tmp_path / "teacher").mkdir()
    (tmp_path / "teacher" / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "teacher" / "result.json").write_text(json.dumps({"train_seconds": 12.5}))
    job = Job("teacher", "teacher", dict(spec))
    assert run_study.reuse_finished([job, Job("lm", "lm", dict(spec))], tmp_path) == {"teacher": 12.5}
    assert job.status == "done" and job.spec["out"] == str(tmp_path / "teacher")
    other = Job("teacher", "teacher", {"recipe": "pretrain_vision.yaml", "overrides": ["train.max_steps=20"]})
    with pytest.raises(SystemExit, match="other settings"):
        run_study.reuse_finished([other], tmp_path)


def test_thin_pool_keeps_evenly_spaced_crops(tmp_path):
    import run_study

    from semimtr_cli.data.lmdb.io import LmdbReader, write_lmdb

    write_lmdb(tmp_path / "pool", [(b"img%d" % i, f"w{i}") for i in range(10)])
    dst = run_study.thin_pool(tmp_path / "pool", tmp_path / "thin", 4)
    r = LmdbReader(dst)
    assert [r.label(i) for i in range(len(r))] == ["w0", "w2", "w5", "w7"]
    assert r.image_bytes(1) == b"img2"
    assert run_study.thin_pool(tmp_path / "pool", tmp_path / "thin", 4) == dst  # reused


def test_step_seconds_reads_the_median_step_time(tmp_path):
    import run_study

    events = [{"event": "train", "step": k, "seconds": 2.0 + 0.5 * k} for k in (1, 2, 3, 4, 5)]
    events.insert(3, {"event": "valid", "step": 3, "seconds": 9.0})
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    assert run_study.step_seconds(tmp_path) == (pytest.approx(0.5), pytest.approx(2.5))


@pytest.mark.slow
def test_replan_scales_observed_kinds_and_never_speeds_up_unseen_ones(tmp_path):
    """Finished runs ran at half their calibrated step time: fine-tuning (not yet seen) keeps its calibration."""
    import argparse

    import run_study
    from study_pool import Job

    def finished(name, kind, step_s):
        out = tmp_path / name
        (out / "run").mkdir(parents=True)
        lines = [json.dumps({"event": "train", "step": k, "seconds": step_s * k}) for k in range(1, 6)]
        (out / "run" / "metrics.jsonl").write_text("\n".join(lines) + "\n")
        job = Job(name, kind, {"out": str(out)}, status="done")
        job.started = time.time() - 100
        return job

    calibrated = {"teacher": 1.0, "lm": 1.0, "ft_supervised_A": 0.5, "ft_consistency_A": 1.0}
    ft = [Job(f"A_{a}_s0", study_plan.finetune_kind(a, "A"), {"steps": 0, "overrides": ["train.max_steps=10"]})
          for a in study_plan.FINETUNE_ARMS]
    jobs = [finished("teacher", "teacher", 0.5), finished("lm", "lm", 0.5)] + ft
    args = argparse.Namespace(seeds=[0], lanes=2, max_finetune_steps=10_000)
    step_s = dict(calibrated)
    replan = run_study.Replanner(args, jobs, step_s, lambda job: 0.0, ["A"], deadline=time.time() + 350.0)
    replan(jobs[1])
    assert replan.record["scale"] == pytest.approx(0.5)
    assert step_s["teacher"] == pytest.approx(0.5) and step_s["ft_consistency_A"] == pytest.approx(1.0)
    # 2 lanes x ~350 s / (0.5 + 3 x 1.0 s per step of the four arms together) ~ 200 steps, the same for every arm
    assert {j.steps for j in ft} == {replan.record["finetune_steps"]} and 180 <= ft[0].steps <= 200
    assert "train.max_steps=%d" % ft[0].steps in ft[0].spec["overrides"]


@pytest.mark.slow
def test_quick_study_keeps_budget_and_writes_page(tmp_path):
    out = tmp_path / "study"
    page = tmp_path / "docs" / "results.md"
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "run_study.py"), "--quick", "--budget-minutes", str(BUDGET_MIN),
         "--out", str(out), "--seeds", "0", "--page", str(page)],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
    )
    wall = time.time() - t0
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    study = json.loads((out / "results.json").read_text())
    assert study["timing"]["total_s"] <= BUDGET_MIN * 60 + 20
    assert wall <= BUDGET_MIN * 60 + 60
    assert set(study["calibration"]["step_seconds"]) == {"teacher", "lm", "ft_supervised_A", "ft_consistency_A"}
    runs = study["runs"]
    expected = {"teacher", "lm"} | {f"A_{a}_s0" for a in study_plan.FINETUNE_ARMS}
    assert set(runs) == expected
    for name, r in runs.items():
        assert r["status"] in ("done", "skipped", "failed"), name
        if r["status"] != "done":
            assert r["note"], name
    # fine-tuning waits for the source model: never done when that was not
    if runs["teacher"]["status"] != "done":
        assert all(runs[n]["status"] == "skipped" for n in expected if n.startswith("A_"))
    assert study["gate"]["threshold"] == study_plan.GATE
    text = page.read_text()
    assert "--quick smoke run" in text and "Teacher gate" in text and "results-vision.md" in text
    for png in ("accuracy.png", "pseudo_labels.png", "curves.png"):
        assert (page.parent / "results" / png).stat().st_size > 1000


def test_reused_runs_get_the_unseen_sets_they_lack(tmp_path, monkeypatch):
    """score_unseen_of_reused scores (all --unseen sets of) only the finished runs whose result.json
    lacks one of them, leaves complete, failed and not-asked runs untouched, and rewrites
    result.json in place keeping its other fields."""
    import run_study
    from study_pool import Job, Pool

    calls = []

    def fake_score(ckpt, sets, heads):
        calls.append((Path(ckpt).name, sorted(sets)))
        return {name: {h: 50.0 for h in heads} | {"evaluated": 3} for name in sets}

    monkeypatch.setattr(run_study, "score_sets", fake_score)
    want = {"sets": {"U_IIIT5k": "a", "U_SVT": "b"}, "heads": ["alignment"]}
    stored = {"U_IIIT5k": {"alignment": 1.0, "evaluated": 3}, "U_SVT": {"alignment": 2.0, "evaluated": 3}}
    cases = {  # name: (status, spec unseen, result "unseen" field)
        "lacks": ("done", want, None),
        "partial": ("done", want, {"U_IIIT5k": stored["U_IIIT5k"]}),
        "complete": ("done", want, stored),
        "failed": ("failed", want, None),
        "not_asked": ("done", None, None),
    }
    jobs = []
    for name, (status, unseen, have) in cases.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "result.json").write_text(json.dumps({"checkpoint": "best.pt", "unseen": have, "keep": name}))
        jobs.append(Job(name, "ft_sup", {"unseen": unseen}, status=status))
    import torch

    threads = torch.get_num_threads()
    try:
        done = run_study.score_unseen_of_reused(jobs, Pool(tmp_path, 1, 0.0, Path("unused")))
    finally:
        torch.set_num_threads(threads)  # the function sets the threads for its scoring
    assert done == ["lacks", "partial"]
    assert calls == [("best.pt", ["U_IIIT5k", "U_SVT"])] * 2
    for name in ("lacks", "partial"):
        result = json.loads((tmp_path / name / "result.json").read_text())
        assert result["keep"] == name and set(result["unseen"]) == {"U_IIIT5k", "U_SVT"}
        assert result["unseen"]["U_SVT"] == {"alignment": 50.0, "evaluated": 3}
    assert json.loads((tmp_path / "complete" / "result.json").read_text())["unseen"] == stored
    assert json.loads((tmp_path / "failed" / "result.json").read_text())["unseen"] is None
