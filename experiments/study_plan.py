"""What the reproduction study runs: its data, its arms and the job list of one plan.

Regime A (the paper's setting): labeled and unlabeled crops from one distribution, clean and
wild styles mixed half and half (``semimtr synth`` LMDBs, the renderer the source model streams
from, with other seeds). Regime B (adapting to real crops): the LMDBs of
``experiments/prepare_real_crops.py`` (labeled / valid / test / unlabeled / unlabeled_truth).

The source model (``teacher``) is a vision model trained with CE on streamed synthetic crops and
selected on regime-A validation; with the language model (``lm``) it starts every fine-tuning
arm of both regimes. The vision arms pre-train from scratch at equal steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes" / "study"
STYLES = ("clean", "wild")
GATE = 70.0  # the source model must read this share of regime-A validation words (percent)
PSEUDO_THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)

# fine-tuning arms: name -> (label, overrides). Equal labeled crops per step: the supervised
# batch (16) is the labeled half of the consistency arms' batch of 32.
FINETUNE_ARMS = {
    "supervised": ("supervised only", ["consistency.enabled=false", "train.batch_size=16", "data.unlabeled=[]",
                                       "data.weights=[1.0]"]),
    "semimtr": ("SemiMTR as shipped (all-to-all, one-hot, no threshold)", []),
    "semimtr_t09": ("SemiMTR, threshold 0.9", ["consistency.threshold=0.9"]),
    "v2v_t09": ("vision-to-vision, threshold 0.9", ["consistency.pairing=vision", "consistency.student_heads=vision",
                                                    "consistency.threshold=0.9"]),
}
# vision pre-training arms, from scratch: CE on 16 streamed labeled crops per step, against
# CE + SeqCLR on a batch of 32 drawn half from the same stream and half from the regime-A pool
VISION_ARMS = {
    "vis_ce": ("CE only", ["train.batch_size=16"]),
    "vis_seqclr": ("CE + SeqCLR", ["seqclr.mode=semimtr", "train.batch_size=32", "data.weights=[0.5,0.5]"]),
}
PLANS = ("finetune", "sources", "vision")  # each plan is one run_study.py command with its own budget


def finetune_kind(arm: str, regime: str) -> str:
    """Step-time class of a fine-tuning run: real crops (regime B) decode slower than the synthetic ones."""
    return f"ft_{'supervised' if arm == 'supervised' else 'consistency'}_{regime}"


def calibration_kinds(plan: str, regimes: list["Regime"]) -> dict[str, tuple[str, list[str], str | None]]:
    """The step-time classes one plan runs: ``kind -> (recipe, overrides with the kind's data, LMDB
    to score or None)``. Scoring the regime's validation set with the consistency kind's model
    measures the seconds per scored crop of a full model on that regime's crops."""
    if plan == "vision":
        a = regimes[0]
        return {"vis_ce": ("pretrain_vision.yaml", VISION_ARMS["vis_ce"][1], None),
                "vis_seqclr": ("pretrain_vision.yaml", VISION_ARMS["vis_seqclr"][1]
                               + [f"data.unlabeled=[{','.join(a.unlabeled)}]"], a.valid[0])}
    kinds = {"teacher": ("pretrain_vision.yaml", [], None), "lm": ("pretrain_lm.yaml", [], None)}
    if plan == "sources":
        kinds["teacher"] = ("pretrain_vision.yaml", [], regimes[0].valid[0])
        return kinds
    # consistency kinds first, so that with two lanes they calibrate beside each other, as 18 of the
    # 24 fine-tuning runs run: calibrated beside a supervised run, they ran 20-25 % faster than in
    # the study itself (two consistency runs share the memory bandwidth of the two cores)
    for arm in ("semimtr", "supervised"):
        for r in regimes:
            kinds[finetune_kind(arm, r.name)] = ("finetune.yaml", r.data_overrides() + FINETUNE_ARMS[arm][1],
                                                 r.valid[0] if arm == "semimtr" else None)
    return kinds


def scored_crops(spec: dict, sizes: dict[str, int], valid_max: int = 500) -> int:
    """Crops one run's model reads outside training: its validations, its test sets (one pass for
    every head) and the pools it labels (one pass per head). ``sizes``: LMDB path -> samples."""
    n = 0
    valid = [o.split("=", 1)[1].strip("[]").split(",") for o in spec["overrides"] if o.startswith("data.valid=")]
    every = [int(o.split("=", 1)[1]) for o in spec["overrides"] if o.startswith("train.eval_every=")]
    if valid and valid[-1] != [""] and every and every[-1] > 0:
        n += (spec["steps"] // every[-1] + 1) * min(valid_max, sum(sizes.get(v, 0) for v in valid[-1]))
    for key in ("eval", "unseen"):
        if spec.get(key):
            n += sum(sizes.get(v, 0) for v in spec[key]["sets"].values())
    for pool in (spec.get("pseudo") or {}).values():
        n += len(pool["heads"]) * sum(sizes.get(v, 0) for v in pool["paths"])
    return n


@dataclass(frozen=True)
class Sizes:
    """Crops per style in regime A (the labeled, unlabeled, ... sets hold this many of each style)."""

    labeled: int = 500
    unlabeled: int = 5000
    valid: int = 250
    test: int = 500
    truth: int = 500  # the first crops of each unlabeled pool, with labels (pseudo-label accuracy)

    @classmethod
    def quick(cls) -> "Sizes":
        return cls(labeled=32, unlabeled=64, valid=16, test=24, truth=32)


def regime_a_sets(sizes: Sizes) -> dict[str, dict]:
    """``name -> generate() arguments`` of every regime-A LMDB (seeds 2001...; styles mixed)."""
    sets = {}
    for k, style in enumerate(STYLES):
        base = 2001 + 10 * k
        sets[f"labeled_{style}"] = dict(count=sizes.labeled, seed=base, style=style, unlabeled=False)
        sets[f"unlabeled_{style}"] = dict(count=sizes.unlabeled, seed=base + 1, style=style, unlabeled=True)
        # per-index generators: these are the first `truth` crops of the unlabeled pool, labeled
        sets[f"truth_{style}"] = dict(count=min(sizes.truth, sizes.unlabeled), seed=base + 1, style=style, unlabeled=False)
        sets[f"valid_{style}"] = dict(count=sizes.valid, seed=base + 2, style=style, unlabeled=False)
        sets[f"test_{style}"] = dict(count=sizes.test, seed=base + 3, style=style, unlabeled=False)
    return sets


@dataclass
class Regime:
    """The LMDB paths of one regime's splits (lists: one LMDB per style or source)."""

    name: str
    labeled: list[str]
    unlabeled: list[str]
    valid: list[str]
    test: dict[str, str]
    truth: list[str]
    unseen: dict[str, str] = field(default_factory=dict)  # benchmark test splits: scored after training only

    def data_overrides(self) -> list[str]:
        return [f"data.labeled=[{','.join(self.labeled)}]", f"data.unlabeled=[{','.join(self.unlabeled)}]",
                f"data.valid=[{','.join(self.valid)}]"]


def regime_a(data: Path) -> Regime:
    p = lambda kind: [str(data / f"{kind}_{s}") for s in STYLES]  # noqa: E731
    return Regime("A", p("labeled"), p("unlabeled"), p("valid"), {f"A_test_{s}": str(data / f"test_{s}") for s in STYLES},
                  p("truth"))


def regime_b(real: Path) -> Regime:
    missing = [s for s in ("labeled", "valid", "test", "unlabeled", "unlabeled_truth") if not (real / s).is_dir()]
    if missing:
        raise SystemExit(f"--real {real}: missing {', '.join(missing)} (make it with experiments/prepare_real_crops.py)")
    return Regime("B", [str(real / "labeled")], [str(real / "unlabeled")], [str(real / "valid")],
                  {"B_test": str(real / "test")}, [str(real / "unlabeled_truth")])


@dataclass(frozen=True)
class Steps:
    """Steps per run kind in one plan."""

    teacher: int
    lm: int
    vision: int
    finetune: int


def set_steps(spec: dict, steps: int, eval_every: int) -> None:
    """Give a planned job ``steps`` training steps, validating every ``eval_every``."""
    spec["steps"] = steps
    spec["overrides"] = [o for o in spec["overrides"] if not o.startswith(("train.max_steps=", "train.eval_every="))]
    spec["overrides"] += [f"train.max_steps={steps}", f"train.eval_every={eval_every}"]


def plan_jobs(plan: str, steps: Steps, seeds: list[int], regimes: list[Regime], runs: Path,
              eval_every: dict[str, int]) -> list[dict]:
    """One plan's jobs in start order: ``{name, kind, steps, deps, recipe, overrides, eval, pseudo}``.

    ``sources``: the source model and the LM side by side. ``finetune``: the same two (reused
    when a ``sources`` run left them), then per seed and regime the four fine-tuning arms. ``vision``: per seed the two from-scratch vision arms, SeqCLR first (the
    longer runs start first, so the two lanes end together).
    """
    a = regimes[0]
    seed_ov = lambda s, kind, n: [f"train.seed={s}", f"train.max_steps={n}", f"train.eval_every={eval_every[kind]}",  # noqa: E731
                                  "train.save_every=0"]
    valid_a = [f"data.valid=[{','.join(a.valid)}]"]
    if plan == "vision":
        jobs = []
        for arm in ("vis_seqclr", "vis_ce"):
            for s in seeds:
                extra = [f"data.unlabeled=[{','.join(a.unlabeled)}]"] if arm == "vis_seqclr" else []
                jobs.append(dict(name=f"{arm}_s{s}", kind=arm, steps=steps.vision, deps=[], recipe="pretrain_vision.yaml",
                                 overrides=VISION_ARMS[arm][1] + extra + seed_ov(s, "vision", steps.vision) + valid_a,
                                 eval={"sets": a.test, "heads": ["vision"]}, pseudo=None, arm=arm, seed=s, regime="A"))
        return jobs
    all_tests = {k: v for r in regimes for k, v in r.test.items()}
    unseen = {k: v for r in regimes for k, v in r.unseen.items()}
    scored_unseen = lambda sets, heads: {"sets": sets, "heads": heads} if sets else None  # noqa: E731
    jobs = [
        dict(name="teacher", kind="teacher", steps=steps.teacher, deps=[], recipe="pretrain_vision.yaml",
             overrides=seed_ov(1000, "teacher", steps.teacher) + valid_a,
             eval={"sets": all_tests, "heads": ["vision"]}, unseen=scored_unseen(unseen, ["vision"]),
             pseudo={r.name: {"paths": r.truth, "heads": ["vision"]} for r in regimes}),
        dict(name="lm", kind="lm", steps=steps.lm, deps=[], recipe="pretrain_lm.yaml",
             overrides=seed_ov(2000, "lm", steps.lm), eval=None, pseudo=None),
    ]
    if plan == "sources":
        return jobs
    init = [f"init.vision={runs / 'teacher' / 'run' / 'best.pt'}", f"init.language={runs / 'lm' / 'run' / 'last.pt'}"]
    for s in seeds:
        for r in regimes:
            for arm, (_, ov) in FINETUNE_ARMS.items():
                jobs.append(dict(name=f"{r.name}_{arm}_s{s}", kind=finetune_kind(arm, r.name), steps=steps.finetune,
                                 deps=["teacher", "lm"], recipe="finetune.yaml",
                                 overrides=r.data_overrides() + ov + seed_ov(s, "finetune", steps.finetune) + init,
                                 eval={"sets": r.test, "heads": ["alignment", "language", "vision"]},
                                 unseen=scored_unseen(r.unseen, ["alignment", "language", "vision"]),
                                 pseudo={r.name: {"paths": r.truth, "heads": ["alignment", "vision"]}},
                                 arm=arm, seed=s, regime=r.name))
    return jobs
