"""The trainer and the three stages on micro models and synthetic data (CPU, seconds each)."""

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from semimtr_cli.cli.app import app
from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.data.lmdb.io import write_lmdb
from semimtr_cli.data.synth.generate import generate
from semimtr_cli.model.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from semimtr_cli.model.decoding import kept_slots
from semimtr_cli.model.factory import build_model
from semimtr_cli.model.transfer import load_part
from semimtr_cli.train.losses import sequence_ce
from semimtr_cli.train.recipe import load_recipe
from semimtr_cli.train.trainer import train

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "recipes" / "cpu-tiny"
MICRO = [
    "seqclr.mode=semimtr",  # the cpu-tiny recipe trains CE-only from scratch; the tests cover the SemiMTR objective
    "model.resnet_stem_channels=4", "model.resnet_channels=[4,8,8,16,32]", "model.resnet_blocks=[1,1,1,1,1]",
    "model.d_model=32", "model.nhead=2", "model.d_inner=64", "model.vision_layers=1", "model.attention_channels=8",
    "model.lm_layers=1", "data.num_workers=0", "train.threads=2", "train.log_every=1", "train.batch_size=8",
    "train.eval_every=0", "train.save_every=0", "data.valid_max_samples=16",
]
runner = CliRunner()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    generate(root / "train", 48, seed=0, lmdb=True)
    generate(root / "unl", 48, seed=1, lmdb=True, unlabeled=True, style="wild")
    generate(root / "valid", 16, seed=2, lmdb=True)
    words = root / "words.txt"
    words.write_text("\n".join(["hello", "world", "text", "scene", "label", "model", "train", "token"] * 4), encoding="utf-8")
    return root


def data_sets(data):
    return [f"data.labeled=[{data / 'train'}]", f"data.unlabeled=[{data / 'unl'}]", f"data.valid=[{data / 'valid'}]",
            f"data.corpus={data / 'words.txt'}", f"data.valid_corpus={data / 'words.txt'}",
            "data.labeled_synth=[]", "data.unlabeled_synth=[]", "data.valid_synth=[]"]


def recipe(name, data, *extra):
    return load_recipe(TINY / f"{name}.yaml", MICRO + data_sets(data) + list(extra))


@pytest.mark.slow
def test_three_stages_end_to_end(data, tmp_path):
    vis = train(recipe("pretrain_vision", data, "train.max_steps=3"), tmp_path / "vision")
    assert vis["steps"] == 3 and "vision" in vis["last_validation"]
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "last.pt", "best.pt", "curves.png"):
        assert (tmp_path / "vision" / name).is_file(), name
    events = [json.loads(x) for x in (tmp_path / "vision" / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["event"] == "train"] == [1, 2, 3]
    assert {"ce", "seqclr"} <= set(events[0])
    if importlib.util.find_spec("tensorboard"):  # the same numbers as TensorBoard scalars beside metrics.jsonl
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        board = EventAccumulator(str(tmp_path / "vision" / "tensorboard")).Reload()
        assert [(s.step, round(s.value, 4)) for s in board.Scalars("train/ce")] == \
            [(e["step"], round(e["ce"], 4)) for e in events if e["event"] == "train"]

    lm = train(recipe("pretrain_lm", data, "train.max_steps=3"), tmp_path / "lm")
    assert {"exact", "top5"} <= set(lm["last_validation"])

    logs = []
    ft = train(recipe("finetune", data, "train.max_steps=2", f"init.vision={tmp_path / 'vision' / 'best.pt'}",
                      f"init.language={tmp_path / 'lm' / 'best.pt'}"), tmp_path / "ft", log=logs.append)
    assert set(ft["last_validation"]) >= {"alignment", "language", "vision"}
    assert any("vision:" in line and "copied" in line for line in logs)
    model, charset, ckpt = model_from_checkpoint(tmp_path / "ft" / "best.pt")
    assert ckpt["kind"] == "full" and ckpt["stage"] == "finetune" and charset.num_classes == 37
    # initial weights came from the stage-1 checkpoint (same backbone stem before training moved it little)
    assert ft["init"] and "vision: " in ft["init"][0]


def test_lm_validation_handles_words_at_max_length(tmp_path):
    words = tmp_path / "long.txt"
    words.write_text("\n".join(["abcdefghijklmnopqrstuvwxy", "zyxwvutsrqponmlkjihgfedcb"] * 20), encoding="utf-8")
    r = load_recipe(TINY / "pretrain_lm.yaml", MICRO + [f"data.corpus={words}", f"data.valid_corpus={words}", "train.max_steps=1"])
    assert r.data.valid_corpus and len("abcdefghijklmnopqrstuvwxy") == Charset.preset("36").max_length
    summary = train(r, tmp_path / "run")  # an inserted letter pushes a 25-letter word past the limit: no crash
    v = summary["last_validation"]
    assert 0.0 <= v["exact"] <= v["top5"] <= 100.0  # an exact word has every letter in its slot's top 5


@pytest.mark.slow
def test_language_model_learns(data, tmp_path):
    r = recipe("pretrain_lm", data, "train.max_steps=150", "train.eval_every=150", "optim.lr=0.003",
               "optim.periods=[]", "optim.schedule=constant", "optim.warmup_steps=0", "data.corpus_weighting=none",
               "train.batch_size=32", "model.dropout=0.0")
    first = train(load_recipe(TINY / "pretrain_lm.yaml", MICRO + data_sets(data) + ["train.max_steps=1"]), tmp_path / "lm0")
    summary = train(r, tmp_path / "lm")
    events = [json.loads(x) for x in (tmp_path / "lm" / "metrics.jsonl").read_text().splitlines()]
    losses = [e["loss"] for e in events if e["event"] == "train"]
    assert sum(losses[-10:]) / 10 < 0.3 * sum(losses[:10]) / 10
    assert summary["last_validation"]["exact"] > first["last_validation"]["exact"] + 30


STREAMED = ["data.labeled=[]", "data.unlabeled=[]", "data.valid=[]", "data.valid_synth=[]", "data.num_workers=1",
            "data.labeled_synth=[{style: clean, seed: 5, crops_per_epoch: 64}]",
            "data.unlabeled_synth=[{style: wild, seed: 6, crops_per_epoch: 64}]", "augment.ramp_steps=12"]


@pytest.mark.slow
@pytest.mark.parametrize("source", ["lmdb", "streamed"])
def test_resume_in_process_matches_uninterrupted(data, tmp_path, source):
    """Resuming from last.pt redoes exactly the steps after it, from LMDBs or from streamed crops
    (whose place in the stream is part of the loop state)."""
    extra = ["train.save_every=3"] + (["data.num_workers=2"] if source == "lmdb" else STREAMED)
    full = train(recipe("finetune", data, "train.max_steps=6", *extra), tmp_path / "full")
    train(recipe("finetune", data, "train.max_steps=3", *extra), tmp_path / "part")
    shutil.copy(tmp_path / "part" / "last.pt", tmp_path / "part" / "kept.pt")
    last = torch.load(tmp_path / "part" / "last.pt", weights_only=False)
    last["loop_state"]["seconds"] = 3600.0  # as if the first part had taken an hour
    torch.save(last, tmp_path / "part" / "last.pt")
    resumed = train(recipe("finetune", data, "train.max_steps=6", *extra), tmp_path / "part", resume=True)
    assert full["steps"] == resumed["steps"] == 6
    assert resumed["wall_seconds"] > 3600  # the summary's time (and crops/s) spans the resume
    a = load_checkpoint(tmp_path / "full" / "last.pt")["state_dict"]
    b = load_checkpoint(tmp_path / "part" / "last.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def _run_cli(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "semimtr_cli.cli.app", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=REPO, **kw)


@pytest.mark.slow
def test_kill9_then_resume_gives_same_weights(data, tmp_path):
    """A run killed between checkpoints resumes to the uninterrupted run's weights, bit for bit
    (what the loop state covers, per data source, is tested in process above)."""
    sets = []
    for s in MICRO + data_sets(data) + ["train.max_steps=12", "train.save_every=4", "train.threads=1"]:
        sets += ["--set", s]
    base = ["pretrain-vision", "--recipe", str(TINY / "pretrain_vision.yaml"), *sets]
    one_thread = {"env": dict(os.environ, OMP_NUM_THREADS="1")}  # the two runs share the cores: no OpenMP spin
    ref = _run_cli(base + ["--out", str(tmp_path / "ref")], **one_thread)
    victim = _run_cli(base + ["--out", str(tmp_path / "victim")], **one_thread)
    metrics = tmp_path / "victim" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and victim.poll() is None:
        lines = metrics.read_text().splitlines() if metrics.exists() else []
        if len(lines) >= 6:  # a checkpoint exists at step 4; now somewhere between checkpoints
            victim.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    assert victim.wait(timeout=60) == -signal.SIGKILL, "the run finished before it could be killed"
    assert ref.wait(timeout=300) == 0, ref.stdout.read()
    assert load_checkpoint(tmp_path / "victim" / "last.pt")["loop_state"]["step"] < 12
    resumed = _run_cli(["pretrain-vision", "--resume", str(tmp_path / "victim")], **one_thread)
    assert resumed.wait(timeout=300) == 0, resumed.stdout.read()
    a = load_checkpoint(tmp_path / "ref" / "last.pt")
    b = load_checkpoint(tmp_path / "victim" / "last.pt")
    assert a["step"] == b["step"] == 12
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    steps = [json.loads(x)["step"] for x in (tmp_path / "victim" / "metrics.jsonl").read_text().splitlines()
             if json.loads(x)["event"] == "train"]
    assert steps == list(range(1, 13))  # events after the checkpoint were redone, not duplicated


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_gloo_ranks_match_single_process(data, tmp_path):
    sets = MICRO + data_sets(data) + ["train.max_steps=5", "train.batch_size=16", "model.dropout=0.0", "train.threads=1"]
    train(load_recipe(TINY / "pretrain_lm.yaml", sets), tmp_path / "single")
    args = []
    for s in sets:
        args += ["--set", s]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "semimtr_cli.cli.app", "pretrain-lm",
           "--recipe", str(TINY / "pretrain_lm.yaml"), "--out", str(tmp_path / "ddp"), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    # the logged loss is the global-batch loss on every rank: identical trajectories
    def losses(run):
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [json.loads(x)["loss"] for x in lines if json.loads(x)["event"] == "train"]

    assert losses("single") == pytest.approx(losses("ddp"), rel=1e-5)
    # weights: Adam turns float-summation-order noise into at most ~lr-sized steps on
    # parameters with near-zero gradients; anything beyond 1e-4 would be a real difference
    a = load_checkpoint(tmp_path / "single" / "last.pt")["state_dict"]
    b = load_checkpoint(tmp_path / "ddp" / "last.pt")["state_dict"]
    assert max(float((a[k].float() - b[k].float()).abs().max()) for k in a) < 1e-4
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["world_size"] == 2


def test_transfer_remaps_charset_and_reports(tmp_path):
    cfg = load_recipe(TINY / "finetune.yaml", MICRO).model
    src_cs, dst_cs = Charset.preset("36"), Charset.preset("94", max_length=30)
    src = build_model("full", cfg, src_cs)
    save_checkpoint(tmp_path / "src.pt", src, src_cs)
    import dataclasses

    dst = build_model("full", dataclasses.replace(cfg, max_length=30, num_classes=None), dst_cs)
    fresh_upper = dst.vision.cls.weight[dst_cs.encode("A")[0]].clone()
    report = load_part(dst, load_checkpoint(tmp_path / "src.pt"), "full", dst_cs, source="src.pt")
    a, b = src_cs.encode("q")[0], dst_cs.encode("q")[0]
    assert torch.equal(dst.vision.cls.weight[b], src.vision.cls.weight[a])
    assert torch.equal(dst.language.proj.weight[:, b], src.language.proj.weight[:, a])
    assert torch.equal(dst.alignment.cls.bias[0], src.alignment.cls.bias[0])  # null -> null
    assert torch.equal(dst.vision.cls.weight[dst_cs.encode("A")[0]], fresh_upper)  # new symbol keeps its init
    assert "A" in report.new_symbols and report.dropped_symbols == []
    assert report.regenerated  # position tables resized 26 -> 31
    bigger = build_model("full", dataclasses.replace(cfg, d_model=64, resnet_channels=[4, 8, 8, 16, 64], num_classes=None), src_cs)
    with pytest.raises(SemimtrError, match="shape mismatches"):
        load_part(bigger, load_checkpoint(tmp_path / "src.pt"), "full", src_cs)
    with pytest.raises(SemimtrError, match="cannot initialise the language model"):
        seqclr = build_model("seqclr", cfg, src_cs)
        save_checkpoint(tmp_path / "v.pt", seqclr, src_cs)
        load_part(dst.language, load_checkpoint(tmp_path / "v.pt"), "language", dst_cs)


def _invoke(args):
    return runner.invoke(app, args, terminal_width=300)


def _sets(items):
    out = []
    for s in items:
        out += ["--set", s]
    return out


@pytest.mark.parametrize("case", ["missing_lmdb", "empty_lmdb", "unknown_key", "wrong_stage_ckpt", "wrong_recipe_stage"])
def test_bad_inputs_fail_before_training(case, data, tmp_path):
    args = ["finetune", "--recipe", str(TINY / "finetune.yaml"), "--out", str(tmp_path / "run")]
    sets = MICRO + data_sets(data)
    expect = ""
    if case == "missing_lmdb":
        sets.append("data.labeled=[/no/such/lmdb]")
        expect = "not found: /no/such/lmdb"
    elif case == "empty_lmdb":
        write_lmdb(tmp_path / "empty", [])
        sets.append(f"data.labeled=[{tmp_path / 'empty'}]")
        expect = "no usable labeled sample"
    elif case == "unknown_key":
        bad = tmp_path / "bad.yaml"
        bad.write_text((TINY / "finetune.yaml").read_text() + "optim2:\n  lr: 1\n")
        args[2] = str(bad)
        expect = "unknown key 'optim2'"
    elif case == "wrong_stage_ckpt":
        cs = Charset.preset("36")
        save_checkpoint(tmp_path / "lm.pt", build_model("language", load_recipe(TINY / "finetune.yaml", MICRO).model, cs), cs)
        args += ["--init-vision", str(tmp_path / "lm.pt")]
        expect = "a 'language' checkpoint cannot initialise the vision model"
    elif case == "wrong_recipe_stage":
        args[0] = "pretrain-vision"
        expect = "this recipe is for `semimtr finetune`"
    result = _invoke(args + _sets(sets))
    assert result.exit_code != 0
    assert expect in result.output, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run" / "last.pt").exists()


SUP_STUDENT = {"sup_student", "sup_student_alignment", "sup_student_language", "sup_student_vision"}
SUP_TEACHER = {"sup_teacher", "sup_teacher_alignment", "sup_teacher_language", "sup_teacher_vision"}
CONS_FROM_VISION = {"consistency", "cons_vision_to_alignment", "cons_vision_to_language", "cons_vision_to_vision"}


@pytest.mark.parametrize(
    "name,options,parts",
    [  # the cpu-tiny finetune recipe sets consistency.pairing=vision
        ("finetune", ["consistency.ema=true"], SUP_STUDENT | CONS_FROM_VISION),  # an EMA teacher has no CE
        ("finetune", ["consistency.threshold=0.9", "consistency.one_hot=false"], SUP_STUDENT | SUP_TEACHER | CONS_FROM_VISION),
        ("finetune", ["consistency.pairing=vision", "consistency.student_heads=alignment", "consistency.kl=true"],
         SUP_STUDENT | SUP_TEACHER | {"consistency", "cons_vision_to_alignment"}),
        ("finetune", ["consistency.enabled=false"], {"alignment", "language", "vision"}),
        ("pretrain_vision", ["seqclr.mode=ce_only"], {"ce"}),
        ("pretrain_vision", ["seqclr.mode=seqclr_only", "data.labeled=[]"], {"seqclr"}),
        ("pretrain_lm", ["language.spelling_mutation=true", "language.label_smoothing=0.1"], {"ce"}),
    ],
    ids=["ema", "threshold_soft", "vision_to_alignment_kl", "supervised_only", "ce_only", "seqclr_only", "lm_noise"],
)
def test_stage_options_run(name, options, parts, data, tmp_path):
    """Two real training steps per option set: finite losses, and the logged loss parts are the
    terms the options select (the values each option produces: the probe tests at the end)."""
    summary = train(recipe(name, data, "train.max_steps=2", *options), tmp_path / "run")
    assert summary["steps"] == 2 and summary["final_loss"]
    assert all(v == v for v in summary["final_loss"].values())  # no NaN
    assert set(summary["final_loss"]) == parts
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    if "consistency.ema=true" in options:
        ema = ckpt["ema_state_dict"]
        assert set(ema) == set(ckpt["state_dict"])
        assert any(not torch.equal(ema[k], ckpt["state_dict"][k]) for k in ema if ema[k].is_floating_point())


def test_gradient_accumulation_counts_optimizer_steps(data, tmp_path):
    summary = train(recipe("pretrain_lm", data, "train.max_steps=3", "train.grad_accum=2"), tmp_path / "run")
    state = load_checkpoint(tmp_path / "run" / "last.pt")["loop_state"]
    assert summary["steps"] == 3 and state["batches_in_epoch"] == 6
    with pytest.raises(SemimtrError, match="divisible"):
        train(recipe("pretrain_lm", data, "train.grad_accum=3"), tmp_path / "bad")


def test_every_shipped_recipe_loads():
    paths = sorted((REPO / "recipes").rglob("*.yaml"))
    assert len(paths) >= 9
    for path in paths:
        r = load_recipe(path)
        assert r.stage in ("pretrain-vision", "pretrain-lm", "finetune")



def _stage(name, data, *extra):
    from semimtr_cli.train import distributed as ddp
    from semimtr_cli.train.stages import STAGE_CLASSES, StageContext

    r = recipe(name, data, *extra)
    charset = Charset.from_spec(r.data.charset, max_length=r.model.max_length)
    return STAGE_CLASSES[r.stage](StageContext(r, charset, ddp.DistInfo(), torch.device("cpu"), lambda *_: None))


@pytest.mark.parametrize("name", ["finetune", "pretrain_vision"])
def test_labeled_and_unlabeled_lmdbs_get_their_own_frozen_pipeline(name, data):
    """Official: one transform per LMDB dataset, labeled and unlabeled alike, so LMDB #0 of each
    part must not share the frozen ABINet geometry type and deterioration draw."""
    extra = ("augment.teacher=abinet",) if name == "finetune" else ("augment.seqclr=abinet",)
    dataset, _ = _stage(name, data, *extra).train_dataset()
    labeled, unlabeled = dataset.parts
    assert (labeled.first_source, unlabeled.first_source) == (0, 1)
    view = labeled.views[0]
    assert view is unlabeled.views[0]  # one lazily built pipeline object, one frozen draw per source
    assert view.for_source(0).describe() != view.for_source(1).describe()
    # each crop goes through its own source's pipeline (ramp off: every view is augmented)
    original, used = view.for_source, []
    view.for_source = lambda source: used.append(source) or original(source)
    labeled[(0, 10**6)]
    assert set(used) == {0}
    used.clear()
    unlabeled[(0, 10**6)]
    assert set(used) == {1}


@pytest.mark.parametrize("select", ["teacher", "student"])
def test_ema_teacher_is_validated_and_selected(select, data, tmp_path):
    """Both networks are validated; best.pt holds the one the recipe selects (official: the teacher)."""
    summary = train(recipe("finetune", data, "train.max_steps=2", "consistency.ema=true", "consistency.ema_decay=0.5",
                           f"consistency.select={select}"), tmp_path / "run")
    valid = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if '"valid"' in x]
    assert {"alignment", "vision", "teacher_alignment", "teacher_vision"} <= set(valid[-1])
    assert summary["best"]["metric"] == ("teacher_alignment" if select == "teacher" else "alignment")
    best, last = load_checkpoint(tmp_path / "run" / "best.pt"), load_checkpoint(tmp_path / "run" / "last.pt")
    expected = last["ema_state_dict"] if select == "teacher" else last["state_dict"]
    other = last["state_dict"] if select == "teacher" else last["ema_state_dict"]
    floats = [k for k in expected if expected[k].is_floating_point() and k in best["state_dict"]]
    assert all(torch.equal(best["state_dict"][k], expected[k]) for k in floats)
    assert any(not torch.equal(best["state_dict"][k], other[k]) for k in floats)


def test_stage_registry_names_every_stage_and_reexports_its_parts():
    from semimtr_cli.train import finetune, pretrain_lm, pretrain_vision, stage_base, stages, wrappers

    assert {name: cls.__module__ for name, cls in stages.STAGE_CLASSES.items()} == {
        "pretrain-vision": pretrain_vision.__name__, "pretrain-lm": pretrain_lm.__name__, "finetune": finetune.__name__}
    assert all(issubclass(cls, stage_base.Stage) for cls in stages.STAGE_CLASSES.values())
    assert (stages.StageContext, stages.PerView, stages.unwrap) == (stage_base.StageContext, wrappers.PerView, wrappers.unwrap)


# --------------------------------------------------------------------------- consistency options reach the loss
# The fine-tune stage's own loss (Finetune.loss, as the trainer calls it) on one fixed two-view
# batch with one set of fixed weights: each consistency.* option must change the terms the
# way its documentation says. Forward passes only (no optimizer step), a fraction of a second each.

PROBE_BASE = ("model.dropout=0.0", "consistency.pairing=all_to_all", "consistency.student_heads=all",
              "consistency.threshold=null", "consistency.one_hot=true", "consistency.kl=false")


@pytest.fixture(scope="module")
def probe(data):
    """Fixed weights, a fixed batch (2 labeled + 2 unlabeled crops, teacher view then student
    view) and the model's outputs on each view, computed here apart from the stage."""
    stage = _stage("finetune", data, *PROBE_BASE)
    torch.manual_seed(0)
    model = stage.build_model()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    cfg, cs = stage.recipe.model, stage.charset
    images = torch.randn(4, 2, 3, cfg.image_h, cfg.image_w, generator=torch.Generator().manual_seed(0))
    labeled = [cs.encode_padded(w) for w in ("hello", "text")]
    label = torch.tensor([ids for ids, _ in labeled] + [[0] * cs.max_slots] * 2)
    length = torch.tensor([n for _, n in labeled] + [0, 0])
    model.train()  # as in training: every fusion round, batch statistics per view
    with torch.no_grad():
        teacher, student = model(images[:, 0]), model(images[:, 1])
    return SimpleNamespace(weights=weights, batch={"image": images, "label": label, "length": length},
                           teacher=teacher, student=student)


def _ft_loss(data, probe, *options):
    """(total, parts) of Finetune.loss with ``options`` over PROBE_BASE, on the probe's weights and batch."""
    stage = _stage("finetune", data, *PROBE_BASE, *options)
    model = stage.build_model()
    model.load_state_dict(probe.weights)
    if stage.ema_model is not None:
        stage.ema_model.load_state_dict(probe.weights)
    with torch.no_grad():
        total, parts = stage.loss(stage.wrap(model).train(), probe.batch)
    return float(total), {k: float(v) for k, v in parts.items()}


def _cons(parts):
    return {k: v for k, v in parts.items() if k.startswith("cons_")}


def _sup(parts):
    return {k: v for k, v in parts.items() if k.startswith("sup_")}


def _teacher_mean_entropy(head):
    """Mean entropy of the teacher's softmax over its kept slots (its predicted lengths)."""
    p = head.logits.softmax(-1)
    entropy = -(p * p.log()).sum(-1)
    keep = kept_slots(head.lengths, p.shape[1])
    return float((entropy * keep).sum() / keep.sum())


def test_consistency_threshold_masks_teacher_slots(data, probe):
    _, free = _ft_loss(data, probe)
    _, none_kept = _ft_loss(data, probe, "consistency.threshold=0.999")  # an untrained teacher is never that sure
    assert set(_cons(free)) == set(_cons(none_kept)) == {
        "cons_alignment_to_alignment", "cons_language_to_language", "cons_vision_to_vision"}
    assert all(v > 0 for v in _cons(free).values()) and free["consistency"] > 0
    assert all(v == 0 for v in _cons(none_kept).values()) and none_kept["consistency"] == 0
    assert _sup(none_kept) == pytest.approx(_sup(free))  # the threshold touches only the consistency
    # a cut inside the teacher's confidence range keeps exactly the slots above it, divisor unchanged
    teacher = probe.teacher.vision
    confidence = teacher.logits.softmax(-1).max(-1).values
    cut = float(confidence.median())
    _, some_kept = _ft_loss(data, probe, f"consistency.threshold={cut!r}")
    mask = (confidence > cut).float()
    assert 0 < mask.mean() < 1
    expected = sequence_ce(probe.student.vision.logits, teacher.logits.argmax(-1), teacher.lengths, mask)
    assert some_kept["cons_vision_to_vision"] == pytest.approx(float(expected), rel=1e-5)
    assert 0 < some_kept["cons_vision_to_vision"] < free["cons_vision_to_vision"]


def test_consistency_pairing_chooses_the_teacher_head(data, probe):
    _, same = _ft_loss(data, probe)
    _, vision = _ft_loss(data, probe, "consistency.pairing=vision")
    _, alignment = _ft_loss(data, probe, "consistency.pairing=alignment")
    assert set(_cons(same)) == {"cons_alignment_to_alignment", "cons_language_to_language", "cons_vision_to_vision"}
    assert set(_cons(vision)) == {"cons_vision_to_alignment", "cons_vision_to_language", "cons_vision_to_vision"}
    assert set(_cons(alignment)) == {"cons_alignment_to_alignment", "cons_alignment_to_language",
                                     "cons_alignment_to_vision"}
    # the same teacher head teaching the same student head gives the same term under either pairing
    assert vision["cons_vision_to_vision"] == pytest.approx(same["cons_vision_to_vision"], rel=1e-6)
    assert alignment["cons_alignment_to_vision"] != pytest.approx(same["cons_vision_to_vision"], rel=1e-3)
    # the vision teacher's labels for the student's fusion rounds, averaged (one teacher, all heads)
    t = probe.teacher.vision
    rounds = [float(sequence_ce(o.logits, t.logits.argmax(-1), t.lengths)) for o in probe.student.alignment]
    assert vision["cons_vision_to_alignment"] == pytest.approx(sum(rounds) / len(rounds), rel=1e-5)
    assert vision["consistency"] != pytest.approx(same["consistency"], rel=1e-3)


def test_consistency_student_heads_restricts_the_terms(data, probe):
    _, every = _ft_loss(data, probe, "consistency.pairing=vision")
    _, one = _ft_loss(data, probe, "consistency.pairing=vision", "consistency.student_heads=alignment")
    assert set(_cons(one)) == {"cons_vision_to_alignment"}
    assert one["consistency"] == pytest.approx(one["cons_vision_to_alignment"])
    # official: one student head sums its fusion rounds, "all" averages them
    rounds = len(probe.student.alignment)
    assert rounds == 3
    assert one["cons_vision_to_alignment"] == pytest.approx(rounds * every["cons_vision_to_alignment"], rel=1e-5)
    _, mean = _ft_loss(data, probe, "consistency.pairing=vision", "consistency.student_heads=alignment",
                       "consistency.iteration_reduction=mean")
    assert mean["cons_vision_to_alignment"] == pytest.approx(every["cons_vision_to_alignment"], rel=1e-5)
    # all_to_all always pairs every head with itself (student_heads is documented as ignored there)
    assert _ft_loss(data, probe, "consistency.student_heads=alignment") == _ft_loss(data, probe)


def test_consistency_one_hot_or_soft_teacher_labels(data, probe):
    _, hard = _ft_loss(data, probe)
    _, soft = _ft_loss(data, probe, "consistency.one_hot=false")
    t, s = probe.teacher.vision, probe.student.vision.logits
    assert hard["cons_vision_to_vision"] == pytest.approx(
        float(sequence_ce(s, t.logits.argmax(-1), t.lengths)), rel=1e-5)
    assert soft["cons_vision_to_vision"] == pytest.approx(
        float(sequence_ce(s, t.logits.softmax(-1), t.lengths)), rel=1e-5)
    for name in _cons(hard):
        assert soft[name] != pytest.approx(hard[name], rel=1e-3), name
    assert _sup(soft) == pytest.approx(_sup(hard))


def test_consistency_kl_subtracts_the_teacher_entropy(data, probe):
    _, ce_hard = _ft_loss(data, probe)
    _, kl_hard = _ft_loss(data, probe, "consistency.kl=true")
    assert kl_hard == pytest.approx(ce_hard, rel=1e-5)  # one-hot teacher labels have zero entropy
    _, ce_soft = _ft_loss(data, probe, "consistency.one_hot=false")
    _, kl_soft = _ft_loss(data, probe, "consistency.one_hot=false", "consistency.kl=true")
    teacher, student = probe.teacher, probe.student
    for head in ("alignment", "language", "vision"):
        last = teacher.head(head)  # the teacher's last round labels every round of the student's head
        rounds = 1 if head == "vision" else len(getattr(student, head))
        gap = ce_soft[f"cons_{head}_to_{head}"] - kl_soft[f"cons_{head}_to_{head}"]
        assert gap == pytest.approx(rounds * _teacher_mean_entropy(last), rel=1e-4), head
        assert kl_soft[f"cons_{head}_to_{head}"] >= 0
    assert _sup(kl_soft) == pytest.approx(_sup(ce_soft))


def test_consistency_weight_and_ema_teacher_in_the_total(data, probe):
    _, shared = _ft_loss(data, probe)
    total, half = _ft_loss(data, probe, "consistency.weight=0.5")
    assert total == pytest.approx(half["sup_teacher"] + half["sup_student"] + 0.5 * half["consistency"], rel=1e-5)
    assert half == pytest.approx(shared)  # the weight scales the term in the total, not the logged term
    total, ema = _ft_loss(data, probe, "consistency.ema=true")
    assert not any(k.startswith("sup_teacher") for k in ema)  # no CE for a teacher without gradients
    assert _cons(ema) == pytest.approx(_cons(shared), rel=1e-5)  # same weights: same teacher labels
    assert total == pytest.approx(ema["sup_student"] + ema["consistency"], rel=1e-5)


def test_a_run_records_the_font_files_of_its_streamed_sources(tmp_path):
    from semimtr_cli.train.trainer import write_synth_manifest

    recipe = load_recipe(TINY / "pretrain_vision.yaml", MICRO)
    write_synth_manifest(recipe, Charset.preset("36"), tmp_path / "synth_sources.json")
    sources = json.loads((tmp_path / "synth_sources.json").read_text())
    assert [s["style"] for s in sources] == ["clean", "wild", "clean", "wild"]  # labeled, unlabeled, 2 valid
    assert all(s["fonts_used"] and all(len(f["sha256"]) == 16 for f in s["fonts_used"]) for s in sources)
    assert {f["file"] for f in sources[0]["fonts_used"]} >= {"DejaVuSans.ttf"}
    none = load_recipe(TINY / "pretrain_vision.yaml", MICRO + ["data.labeled_synth=[]", "data.unlabeled_synth=[]",
                                                              "data.valid_synth=[]", "data.labeled=[x]"])
    write_synth_manifest(none, Charset.preset("36"), tmp_path / "none.json")
    assert not (tmp_path / "none.json").exists()


def test_unsupervised_teacher_view_runs_without_gradient(data, probe):
    _, shared = _ft_loss(data, probe)
    total, free = _ft_loss(data, probe, "consistency.supervise_teacher=false")
    assert not any(k.startswith("sup_teacher") for k in free)
    assert _cons(free) == pytest.approx(_cons(shared), rel=1e-5)  # the same teacher labels
    assert total == pytest.approx(free["sup_student"] + free["consistency"], rel=1e-5)
    stage = _stage("finetune", data, *PROBE_BASE, "consistency.supervise_teacher=false")
    model = stage.build_model()
    teacher, student = stage.wrap(model).train()(probe.batch["image"])
    assert not teacher.vision.logits.requires_grad and student.vision.logits.requires_grad


def test_teacher_view_keeps_autograd_for_its_labeled_rows_only(data, probe):
    stage = _stage("finetune", data, *PROBE_BASE, "consistency.teacher_grad=labeled")
    model = stage.build_model()
    model.load_state_dict(probe.weights)
    wrapped = stage.wrap(model)
    images, labeled = probe.batch["image"], probe.batch["length"] > 0
    assert labeled.tolist() == [True, True, False, False]
    # eval mode: no batch statistics couple the rows, so the two passes joined equal one pass
    wrapped.eval()
    split, whole = wrapped(images, grad_rows=labeled.flip(0)), wrapped(images)
    for head in ("alignment", "language", "vision"):
        for a, b in zip(split, whole):
            assert torch.allclose(a.head(head).logits, b.head(head).logits, atol=1e-5), head
            assert torch.equal(a.head(head).lengths, b.head(head).lengths)
    # training: gradients reach the weights from the labeled teacher rows, none from the others
    wrapped.train()
    teacher, student = wrapped(images, grad_rows=labeled)
    weights = [p for p in model.parameters() if p.requires_grad]
    from_labeled = torch.autograd.grad(teacher.vision.logits[:2].sum(), weights, retain_graph=True, allow_unused=True)
    from_rest = torch.autograd.grad(teacher.vision.logits[2:].sum(), weights, retain_graph=True, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in from_labeled)
    assert all(g is None or g.abs().sum() == 0 for g in from_rest)
    assert student.vision.logits[2:].requires_grad
    total, parts = stage.loss(wrapped, probe.batch)
    total.backward()
    assert parts["sup_teacher"] > 0 and all(p.grad is not None for p in model.vision.parameters())
