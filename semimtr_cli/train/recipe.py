"""The training recipe: one typed schema for the three SemiMTR stages.

A recipe is a YAML file whose keys are exactly these dataclass fields (unknown keys are
errors); ``--set a.b=value`` overrides any field. The defaults are the paper's settings where
one exists (OFFICIAL-FACTS §9); the stage-specific values (batch size, epochs, LR periods,
weight decay) live in the recipe files under ``recipes/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from semimtr_cli.core.config.loader import load_config
from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.core.runtime import TRAINING_PRECISIONS
from semimtr_cli.data.augment.pipelines import PIPELINE_NAMES
from semimtr_cli.data.image import MIN_SIDE
from semimtr_cli.data.synth.stream import SynthSource
from semimtr_cli.model.config import ModelConfig
from semimtr_cli.model.outputs import HEADS

STAGES = ("pretrain-vision", "pretrain-lm", "finetune")
Pipeline = Literal[PIPELINE_NAMES]


@dataclass
class DataConfig:
    """Where the data comes from and how it is read.

    labeled / unlabeled / valid: LMDB folders, or roots searched recursively for LMDBs.
    labeled_synth / unlabeled_synth: synthetic sources rendered on the fly by the loader
        workers (no files; a new crop at every draw, reproducible from (seed, draw)); they join
        the LMDBs of the same part, in proportion to their ``crops_per_epoch``.
    valid_synth: fixed synthetic validation sets (sample i of each seed, ``crops_per_epoch`` crops).
    weights: sampling weights of (labeled, unlabeled) when both are given (paper 0.3 / 0.7).
    corpus / valid_corpus: text files for ``pretrain-lm`` (word list, running text, CSV/TSV).
    valid_split: held-out words taken from ``corpus`` when no ``valid_corpus`` is given (removed
        from training: on a word list, words the model never saw).
    corpus_weighting: ``none`` (each line/token once) or ``zipf``: the corpus is a word list
        ordered by frequency (the packaged list, wordfreq) turned into ``corpus_size``
        occurrences by Zipf's law, so that it reads like running text (WikiText-103 for the
        paper's LM) and ``valid_split`` holds out occurrences, as the official eval set does.
    valid_sample: also report ``exact_vocab`` / ``top5_vocab`` on this many distinct training
        words drawn uniformly (they stay in training): how well the rare words are spelled too.
    """

    labeled: list[str] = field(default_factory=list)
    unlabeled: list[str] = field(default_factory=list)
    weights: list[float] = field(default_factory=lambda: [0.3, 0.7])
    valid: list[str] = field(default_factory=list)
    labeled_synth: list[SynthSource] = field(default_factory=list)
    unlabeled_synth: list[SynthSource] = field(default_factory=list)
    valid_synth: list[SynthSource] = field(default_factory=list)
    charset: str = "36"
    charset_unknown: Literal["remove", "reject"] = "remove"
    min_side: int = MIN_SIDE
    num_workers: int = 2
    valid_max_samples: int | None = None
    corpus: str | None = None
    corpus_format: Literal["auto", "lines", "text", "csv", "tsv"] = "auto"
    corpus_column: str | None = None
    valid_corpus: str | None = None
    valid_split: int = 2000
    valid_sample: int = 0
    corpus_weighting: Literal["none", "zipf"] = "none"
    corpus_size: int = 400_000


@dataclass
class AugmentConfig:
    """Augmentation pipeline per view (names of ``data.augment.build_pipeline``).

    supervised: the single view of CE-only vision training (ABINet baseline).
    seqclr: both views of SemiMTR vision pre-training (paper: severity 1, no geometry).
    teacher / student: the weak and strong views of fine-tuning (paper: abinet / strong1).
    ramp_start / ramp_steps: CPU-recipe option, off (0 / 0) in the paper recipes: no crop is
        augmented before optimizer step ``ramp_start``, then the augmented share grows linearly
        to 1 over ``ramp_steps`` steps, so a model from scratch locks onto characters on clean
        crops first (measured: docs/training.md).
    """

    supervised: Pipeline = "abinet"
    seqclr: Pipeline = "strong1"
    teacher: Pipeline = "abinet"
    student: Pipeline = "strong1"
    ramp_start: int = 0
    ramp_steps: int = 0


def training_views(recipe: Recipe) -> tuple[tuple[str, str], ...]:
    """``(role, pipeline name)`` of every view the recipe's stage draws per crop, in batch order.

    The one stage -> views map: ``pretrain-vision`` draws two ``augment.seqclr`` views
    (``view A``, ``view B``; one ``augment.supervised`` view in ``seqclr.mode: ce_only``),
    ``finetune`` the ``augment.teacher`` and ``augment.student`` views (one ``augment.teacher``
    view without consistency), ``pretrain-lm`` none. The training stages build their views
    from it and ``semimtr show-aug`` previews it; the paper's views are those of
    ``Recipe(stage=...)``, whose ``AugmentConfig`` defaults are the paper's pipelines.
    """
    aug = recipe.augment
    if recipe.stage == "pretrain-vision":
        if recipe.seqclr.mode == "ce_only":
            return (("supervised", aug.supervised),)
        return (("view A", aug.seqclr), ("view B", aug.seqclr))
    if recipe.stage == "finetune":
        if not recipe.consistency.enabled:
            return (("supervised", aug.teacher),)
        return (("teacher", aug.teacher), ("student", aug.student))
    return ()


@dataclass
class OptimConfig:
    """Adam with the official schedule (piecewise constant, x gamma per phase).

    periods: phase lengths in epochs (e.g. [17, 5, 3]); the last phase runs to the end.
    weight_decay: Adam's coupled L2 (official ``true_wd: False``); ``decay_norm_and_bias``
    False exempts norm weights and biases (official ``bn_wd: False``).
    """

    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    decay_norm_and_bias: bool = False
    clip_grad: float | None = 20.0
    schedule: Literal["multistep", "cosine", "constant"] = "multistep"
    periods: list[float] = field(default_factory=list)
    gamma: float = 0.1
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0


@dataclass
class TrainConfig:
    """The loop.

    batch_size: the GLOBAL batch (all ranks together, as in the paper's recipes).
    epochs / max_steps: length; ``max_steps`` (optimizer steps) wins when set.
    precision: ``auto`` = bf16/fp16 AMP on CUDA, fp32 on CPU; ``bf16`` also works on CPU.
    eval_every / save_every / log_every: in optimizer steps (0 = only at the end).
    """

    batch_size: int = 32
    epochs: float = 1.0
    max_steps: int | None = None
    grad_accum: int = 1
    precision: Literal[TRAINING_PRECISIONS] = "auto"
    device: str = "auto"
    seed: int = 0
    log_every: int = 10
    eval_every: int = 1000
    save_every: int = 1000
    select_metric: Literal[("auto",) + HEADS] = "auto"
    sync_bn: bool = False
    compile: bool = False
    threads: int | None = None


@dataclass
class SeqCLRConfig:
    """Vision pre-training objective. mode: semimtr (CE + SeqCLR), ce_only, seqclr_only."""

    mode: Literal["semimtr", "ce_only", "seqclr_only"] = "semimtr"
    temperature: float = 0.1
    ce_weight: float = 1.0
    contrastive_weight: float = 1.0


@dataclass
class ConsistencyConfig:
    """Fine-tuning consistency regularization (defaults = the official shipped settings).

    enabled False gives the supervised-only (ABINet-style) fine-tuning on one view.
    pairing: ``all_to_all`` (each student head learns from the teacher's same head) or one
    teacher head; student_heads: which student heads learn in that case.
    threshold: per-slot teacher confidence cut (None = off; the paper's option is 0.9).
    threshold_scope: ``slot`` (official: each slot against the cut) or ``word`` (a word's slots
        are kept only when every one passes; otherwise the whole word is dropped).
    supervise_teacher: the teacher (weak) view's CE on labeled crops, as the official; False
        runs the teacher view without gradient (labels supervise the student view only), which
        saves the teacher view's backward pass (measured: a SemiMTR step 1.2x faster, 1.3 points
        lower on the quickstart's tuning set; docs/recipes.md).
    teacher_grad: with ``supervise_teacher``, which teacher-view rows keep autograd: ``all``
        (official) or ``labeled``, the only rows with a teacher-view loss: the unlabeled rows
        run in a second pass without gradient (the consistency targets are detached anyway),
        which saves their backward pass; their batch-norm statistics are then their own.
    ema: a separate exponential-moving-average teacher (decay ``ema_decay``).
    select: with ``ema``, which network validation picks ``best.pt`` from (both are validated
        and logged; the teacher's keys carry a ``teacher_`` prefix). ``teacher`` is the official
        choice: its validation scores the EMA teacher. Ignored without ``ema``.
    """

    enabled: bool = True
    weight: float = 1.0
    pairing: Literal[("all_to_all",) + HEADS] = "all_to_all"
    student_heads: Literal[("all",) + HEADS] = "all"
    one_hot: bool = True
    kl: bool = False
    threshold: float | None = None
    threshold_scope: Literal["slot", "word"] = "slot"
    stop_gradient: bool = True
    iteration_reduction: Literal["official", "sum", "mean"] = "official"
    supervise_teacher: bool = True
    teacher_grad: Literal["all", "labeled"] = "all"
    ema: bool = False
    ema_decay: float = 0.9999
    select: Literal["teacher", "student"] = "teacher"


@dataclass
class LanguageConfig:
    """Language-model pre-training: input noise options (off by default, as the official)."""

    spelling_mutation: bool = False
    label_smoothing: float = 0.0


@dataclass
class InitConfig:
    """Checkpoints to start from (our format; official files go through ``semimtr convert``)."""

    vision: str | None = None
    language: str | None = None
    full: str | None = None


@dataclass
class Recipe:
    stage: Literal["pretrain-vision", "pretrain-lm", "finetune"]
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seqclr: SeqCLRConfig = field(default_factory=SeqCLRConfig)
    consistency: ConsistencyConfig = field(default_factory=ConsistencyConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)
    init: InitConfig = field(default_factory=InitConfig)
    description: str = ""


def load_recipe(path: str | Path | None, overrides: list[str] = (), *, stage: str | None = None) -> Recipe:
    """Read a recipe file, apply ``--set`` overrides, check it fits ``stage``."""
    if path is not None and not Path(path).is_file():
        raise SemimtrError(f"recipe file not found: {path}")
    raw_overrides = list(overrides)
    if path is None and stage is not None:
        raw_overrides.insert(0, f"stage={stage}")
    recipe = load_config(Recipe, path, raw_overrides)
    recipe.model.validate()
    if stage is not None and recipe.stage != stage:
        raise SemimtrError(f"{path}: this recipe is for `semimtr {recipe.stage}`, not `semimtr {stage}`")
    return recipe
