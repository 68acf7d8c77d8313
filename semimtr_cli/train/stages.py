"""The three SemiMTR training stages: what each builds, feeds, optimises and validates.

A stage owns the model-specific parts of training; :mod:`.trainer` owns the loop. Each stage
provides:

- ``build_model()`` -> the nn.Module to optimise (already initialised from ``init.*``);
- ``train_dataset()`` -> (dataset, sampler) yielding batches for ``loss``;
- ``loss(model, batch)`` -> (scalar loss on the global batch, {name: detached 0-d tensor}
  for logging; turned into numbers only when a log line is written, so GPUs are not synced
  every step);
- ``validate(model)`` -> {metric: value} (percentages), ``selection_key()`` (the metric that
  picks ``best.pt``) and ``selected_model(model)`` (the network whose weights ``best.pt`` holds);
- ``after_step(model)`` (EMA teacher update) and ``extra_state()`` / ``load_extra_state()``.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .. import losses
from ..charset import Charset
from ..data.augment import PerSourcePipeline
from ..data.datasets import ConcatCrops, CropDataset, MixedDataset, MixedSampler, collate, n_sources
from ..data.synth_stream import SynthCropDataset, SynthSource
from ..data.text_corpus import TextCorpusDataset, read_corpus_words, zipf_occurrences
from ..data.text_noise import disturb_word, spelling_mutation
from ..errors import SemimtrError
from ..metrics import TextMetrics
from ..model.checkpoint import load_checkpoint
from ..model.factory import build_model
from ..model.outputs import HEADS, HeadOutput
from ..model.transfer import TransferReport, load_part
from ..predict import decode_logits
from .distributed import DistInfo, gather, gather_output
from .recipe import Recipe, training_views


class PerView(nn.Module):
    """Runs the wrapped model separately on each view of (N, V, 3, H, W) images.

    Separate passes keep batch-norm statistics per view, as the official two-view models do;
    wrapping them in one module gives DDP a single forward per step.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> list:
        return [self.model(images[:, v]) for v in range(images.shape[1])]


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Run a block with ``model`` in eval mode, restoring its previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def unwrap(model: nn.Module) -> nn.Module:
    """The user model inside DDP / PerView / torch.compile wrappers."""
    while True:
        if hasattr(model, "module"):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, PerView):
            model = model.model
        else:
            return model


@dataclass
class StageContext:
    recipe: Recipe
    charset: Charset
    dist: DistInfo
    device: torch.device
    log: Callable[[str], None]


class Stage:
    name = ""
    model_kind = ""
    select_key = ""

    def __init__(self, ctx: StageContext):
        self.ctx = ctx
        self.recipe = ctx.recipe
        self.charset = ctx.charset
        self.init_reports: list[TransferReport] = []

    # -- model -----------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        model = build_model(self.model_kind, self.recipe.model, self.charset)
        self.apply_init(model)
        return model

    def _init_from(self, module: nn.Module, path: str, part: str) -> None:
        ckpt = load_checkpoint(path)
        report = load_part(module, ckpt, part, self.charset, source=str(path))
        self.init_reports.append(report)
        for line in report.lines():
            self.ctx.log(line)

    def apply_init(self, model: nn.Module) -> None:  # overridden per stage
        pass

    def wrap(self, model: nn.Module) -> nn.Module:
        """What the trainer hands to DDP (default: the model itself)."""
        return model

    # -- data ------------------------------------------------------------------------
    def labeled_set(self, views, *, required: bool) -> Dataset | None:
        d = self.recipe.data
        if not d.labeled and not d.labeled_synth:
            if required:
                raise SemimtrError(f"{self.name}: no labeled data; give data.labeled LMDBs or data.labeled_synth sources "
                                   "in the recipe or with --set data.labeled=PATH")
            return None
        return self._crop_part(d.labeled, d.labeled_synth, views, labeled=True, seed=self.recipe.train.seed)

    def unlabeled_set(self, views, *, first_source: int = 0) -> Dataset | None:
        """``first_source``: the number of labeled sources before it (see :meth:`crop_parts`)."""
        d = self.recipe.data
        if not d.unlabeled and not d.unlabeled_synth:
            return None
        return self._crop_part(d.unlabeled, d.unlabeled_synth, views, labeled=False, seed=self.recipe.train.seed + 1,
                               first_source=first_source)

    def crop_parts(self, views, *, labeled_required: bool) -> list[Dataset]:
        """The labeled then the unlabeled part of a two-view mix (the parts that exist).

        Every LMDB and stream of the mix gets its own source index, hence its own frozen draw of
        each per-source pipeline: the official loader builds one transform per LMDB dataset, for
        the labeled and the unlabeled ones alike.
        """
        labeled = self.labeled_set(views, required=labeled_required)
        unlabeled = self.unlabeled_set(views, first_source=n_sources(labeled))
        return [p for p in (labeled, unlabeled) if p is not None]

    def _crop_part(self, lmdbs: list[str], synth: list[SynthSource], views, *, labeled: bool, seed: int,
                   first_source: int = 0) -> Dataset:
        """One part of the training mix: the LMDBs, then the streamed synthetic sources."""
        kind = "labeled" if labeled else "unlabeled"
        members: list[Dataset] = []
        source = first_source
        if lmdbs:
            ds = CropDataset(lmdbs, self.charset, labeled=labeled, views=views, image_size=self.image_size,
                             seed=seed, min_side=self.recipe.data.min_side, first_source=source)
            if len(ds) == 0:
                detail = f" ({ds.stats.to_dict()})" if labeled else ""
                raise SemimtrError(f"{self.name}: no usable {kind} sample in {lmdbs}{detail}")
            members.append(ds)
            source += len(ds.readers)
        for k, spec in enumerate(synth):
            members.append(SynthCropDataset(spec, self.charset, labeled=labeled, views=views, image_size=self.image_size,
                                            seed=seed, fresh=True, source_id=source + k))
        return members[0] if len(members) == 1 else ConcatCrops(members)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.recipe.model.image_h, self.recipe.model.image_w

    def mix(self, parts: list[Dataset]) -> tuple[Dataset, MixedSampler]:
        d = self.recipe.data
        weights = list(d.weights[: len(parts)]) if len(parts) > 1 else [1.0]
        if len(parts) > 1 and len(d.weights) < len(parts):
            raise SemimtrError(f"data.weights {d.weights} needs one weight per dataset (labeled, unlabeled)")
        sampler = MixedSampler([len(p) for p in parts], weights, seed=self.recipe.train.seed,
                               rank=self.ctx.dist.rank, world_size=self.ctx.dist.world_size)
        return MixedDataset(parts), sampler

    def views(self) -> tuple:
        """One transform per view of :func:`recipe.training_views` (offsets 0, 1, ...)."""
        return tuple(self.pipeline(name, k) for k, (_, name) in enumerate(training_views(self.recipe)))

    def pipeline(self, name: str, offset: int):
        """The view transform for pipeline ``name`` (one frozen instance per LMDB, as official)."""
        aug, batch = self.recipe.augment, self.recipe.train.batch_size
        ramp = (aug.ramp_start * batch, aug.ramp_steps * batch)
        return None if name == "none" else PerSourcePipeline(name, seed=self.recipe.train.seed * 10 + offset, ramp=ramp)

    def valid_sets(self) -> list[tuple[str, Dataset]]:
        d = self.recipe.data
        out: list[tuple[str, Dataset]] = []
        for path in d.valid:
            ds = CropDataset(path, self.charset, labeled=True, image_size=self.image_size, min_side=d.min_side, on_bad="skip")
            out.append((str(path), ds))
        for source in d.valid_synth:
            name = f"synth-{source.style}-{source.seed}"
            out.append((name, SynthCropDataset(source, self.charset, image_size=self.image_size, fresh=False)))
        return out

    def check_data(self) -> None:
        """Open every data source once so bad paths fail before training starts."""
        self._valid = self.valid_sets()

    # -- validation on images --------------------------------------------------------
    heads: tuple[str, ...] = ("vision",)

    def predict_heads(self, model: nn.Module, images: torch.Tensor) -> dict[str, HeadOutput]:
        raise NotImplementedError

    def selection_key(self) -> str:
        """The validation value that picks ``best.pt`` (``train.select_metric``, else the stage's)."""
        metric = self.recipe.train.select_metric
        return self.select_key if metric == "auto" else metric

    def selected_model(self, model: nn.Module) -> nn.Module:
        """The network validated by :meth:`selection_key`, whose weights ``best.pt`` keeps."""
        return model

    @torch.no_grad()
    def validate(self, model: nn.Module, autocast) -> dict[str, float]:
        """Word accuracy per head (percent) on each validation set and overall."""
        if not getattr(self, "_valid", None):
            return {}
        d = self.recipe.data
        out: dict[str, float] = {}
        totals = {h: TextMetrics() for h in self.heads}
        with eval_mode(unwrap(model)) as model:
            for name, ds in self._valid:
                limit = d.valid_max_samples or len(ds)
                subset = torch.utils.data.Subset(ds, range(min(limit, len(ds))))
                loader = DataLoader(subset, batch_size=max(1, self.recipe.train.batch_size), collate_fn=collate, num_workers=0,
                                    generator=torch.Generator())  # never draw from the global RNG (exact resume)
                per_set = {h: TextMetrics() for h in self.heads}
                for batch in loader:
                    if "image" not in batch:
                        continue
                    with autocast():
                        preds = self.predict_heads(model, batch["image"].to(self.ctx.device))
                    gts = [self.charset.decode(row) for row in batch["label"].tolist()]
                    for head, h in preds.items():
                        for dec, gt in zip(decode_logits(h.logits, self.charset), gts):
                            per_set[head].update(dec.text, gt)
                short = name.rstrip("/").rsplit("/", 1)[-1]
                for head, m in per_set.items():
                    out[f"{short}/{head}"] = m.accuracy
                    totals[head].merge(m)
        for head, m in totals.items():
            out[head] = m.accuracy
        return out

    # -- hooks -----------------------------------------------------------------------
    def after_step(self, model: nn.Module) -> None:
        pass

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass


# ==================================================================================== stage 1
class PretrainVision(Stage):
    """SemiMTR vision pre-training: CE on labeled crops + SeqCLR on two views of every crop.

    ``seqclr.mode``: ``semimtr`` (both terms), ``ce_only`` (the ABINet vision baseline: one
    view with the ABINet augmentation, labeled data only), ``seqclr_only``.
    """

    name = "pretrain-vision"
    model_kind = "seqclr"
    heads = ("vision",)
    select_key = "vision"

    def apply_init(self, model):
        if self.recipe.init.vision:
            self._init_from(model.vision, self.recipe.init.vision, "vision")

    @property
    def mode(self) -> str:
        return self.recipe.seqclr.mode

    def wrap(self, model):
        return model if self.mode == "ce_only" else PerView(model)

    def train_dataset(self):
        views = self.views()
        if self.mode == "ce_only":
            return self.mix([self.labeled_set(views, required=True)])
        parts = self.crop_parts(views, labeled_required=self.mode == "semimtr" and not self.recipe.data.unlabeled)
        if not parts:
            raise SemimtrError(f"{self.name}: give data.labeled and/or data.unlabeled LMDBs")
        return self.mix(parts)

    def loss(self, model, batch):
        dist, cfg = self.ctx.dist, self.recipe.seqclr
        images = batch["image"].to(self.ctx.device, non_blocking=True)
        target = gather(batch["label"].to(self.ctx.device), dist)
        lengths = gather(batch["length"].to(self.ctx.device), dist)
        if self.mode == "ce_only":
            out = gather_output(model(images), dist)
            ce = losses.sequence_ce(out.logits, target, lengths)
            return ce, {"ce": ce.detach()}
        v0, v1 = (gather_output(o, dist) for o in model(images))
        total, parts = losses.pretrain_vision_objective(
            v0, v1, v0.extras["instances"], v1.extras["instances"], target, lengths,
            temperature=cfg.temperature,
            ce_weight=0.0 if self.mode == "seqclr_only" else cfg.ce_weight,
            contrastive_weight=cfg.contrastive_weight,
        )
        return total, parts

    def predict_heads(self, model, images):
        return {"vision": model(images)}


# ==================================================================================== stage 2
class PretrainLanguage(Stage):
    """BCN pre-training on clean words (cloze task through the diagonal mask).

    Validation feeds a disturbed copy of held-out words (one random edit, the official eval
    set's rule) and reports exact and top-5 accuracy.
    """

    name = "pretrain-lm"
    model_kind = "language"
    heads = ("language",)
    select_key = "exact"

    def apply_init(self, model):
        if self.recipe.init.language:
            self._init_from(model, self.recipe.init.language, "language")

    def _load_words(self) -> tuple[list[str], list[str]]:
        d = self.recipe.data
        if not d.corpus:
            raise SemimtrError("pretrain-lm: data.corpus is not set; give a word list / text / CSV file")
        words = read_corpus_words(d.corpus, fmt=d.corpus_format, column=d.corpus_column)
        if d.corpus_weighting == "zipf":
            words = zipf_occurrences(words, d.corpus_size)
        if d.valid_corpus:
            return words, read_corpus_words(d.valid_corpus, fmt=d.corpus_format, column=d.corpus_column)
        rng = np.random.default_rng(self.recipe.train.seed)
        n_valid = min(d.valid_split, len(words) // 10)
        order = rng.permutation(len(words))
        held = set(order[:n_valid].tolist())
        return [w for i, w in enumerate(words) if i not in held], [words[i] for i in sorted(held)]

    def check_data(self):
        train_words, held_out = self._load_words()
        noise = spelling_mutation if self.recipe.language.spelling_mutation else None
        self._train = TextCorpusDataset(train_words, self.charset, source=self.recipe.data.corpus, noise=noise,
                                        seed=self.recipe.train.seed)
        self._valid_sets = {"": self._encodable(held_out)}
        n_sample = self.recipe.data.valid_sample
        if n_sample:  # distinct training words, uniformly: the rare ones count as much as the frequent
            vocab = self._train.distinct_words()
            rng = np.random.default_rng(self.recipe.train.seed + 7)
            picks = rng.choice(len(vocab), size=min(n_sample, len(vocab)), replace=False)
            self._valid_sets["_vocab"] = [vocab[int(i)] for i in sorted(picks)]
        self.ctx.log(f"corpus: {self._train.stats.kept} training words ({self._train.stats.skipped or 'none'} skipped), "
                     f"{len(self._valid_sets[''])} held-out validation words"
                     + (f", {len(self._valid_sets['_vocab'])} distinct training words (exact_vocab)" if n_sample else ""))

    def _encodable(self, words: list[str]) -> list[str]:
        if not words:
            return []
        valid = TextCorpusDataset(words, self.charset, source="validation words")
        return [valid.word(i) for i in range(len(valid))]

    def train_dataset(self):
        return self.mix([self._train])

    def _one_hot(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(ids, self.charset.num_classes).float()

    def loss(self, model, batch):
        dev, dist = self.ctx.device, self.ctx.dist
        out = model(self._one_hot(batch["input"].to(dev)), batch["input_length"].to(dev))
        out = gather_output(out, dist)
        target, lengths = gather(batch["label"].to(dev), dist), gather(batch["length"].to(dev), dist)
        ce = losses.sequence_ce(out.logits, target, lengths, label_smoothing=self.recipe.language.label_smoothing)
        return ce, {"ce": ce.detach()}

    @torch.no_grad()
    def validate(self, model, autocast):
        """exact / top5 (percent) on each validation set of disturbed words (suffix per set)."""
        out: dict[str, float] = {}
        with eval_mode(unwrap(model)) as model:
            for suffix, words in self._valid_sets.items():
                if words:
                    exact, top5 = self._spelling(model, autocast, words)
                    out[f"exact{suffix}"], out[f"top5{suffix}"] = exact, top5
        return out

    def _spelling(self, model, autocast, words: list[str]) -> tuple[float, float]:
        """Exact and top-5 correction of ``words`` after one random edit each (official eval rule)."""
        rng = np.random.default_rng(12345)
        # an inserted letter can push a max-length word one past the limit: cut it back
        noisy = [disturb_word(w, rng)[: self.charset.max_length] for w in words]
        exact = top5 = 0
        bs = 512
        for start in range(0, len(noisy), bs):
            clean = words[start:start + bs]
            inp = [self.charset.encode_padded(w) for w in noisy[start:start + bs]]
            ids = torch.tensor([p for p, _ in inp], device=self.ctx.device)
            lengths = torch.tensor([n for _, n in inp], device=self.ctx.device)
            with autocast():
                out = model(self._one_hot(ids), lengths)
            logits = out.logits.float()
            top = logits.topk(5, dim=-1).indices
            for row, gt, dec in zip(top, clean, decode_logits(logits, self.charset)):
                exact += dec.text == gt
                gt_ids, gt_len = self.charset.encode_padded(gt)
                gt_t = torch.tensor(gt_ids[:gt_len], device=row.device)
                slots_ok = bool((row[:gt_len] == gt_t.unsqueeze(-1)).any(-1).all())
                top5 += slots_ok and dec.length == gt_len
        n = len(noisy)
        return 100.0 * exact / n, 100.0 * top5 / n


# ==================================================================================== stage 3
class Finetune(Stage):
    """The full model trained with supervised CE on both views + teacher/student consistency.

    Teacher view: ABINet augmentation (weak); student view: severity-1 (strong). With
    ``consistency.enabled: false`` this is supervised fine-tuning on one view (ABINet's
    recipe). With ``consistency.ema`` a separate EMA copy of the model is the teacher.
    """

    name = "finetune"
    model_kind = "full"
    heads = HEADS
    select_key = "alignment"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.ema_model: nn.Module | None = None

    @property
    def consistency(self) -> bool:
        return self.recipe.consistency.enabled

    def apply_init(self, model):
        init = self.recipe.init
        if init.full and (init.vision or init.language):
            raise SemimtrError("init.full excludes init.vision/init.language; give either a full checkpoint or the parts")
        if init.full:
            self._init_from(model, init.full, "full")
        if init.vision:
            self._init_from(model.vision, init.vision, "vision")
        if init.language:
            self._init_from(model.language, init.language, "language")

    def build_model(self):
        model = super().build_model()
        if self.consistency and self.recipe.consistency.ema:
            self.ema_model = copy.deepcopy(model).to(self.ctx.device)
            for p in self.ema_model.parameters():
                p.requires_grad_(False)
        return model

    def wrap(self, model):
        return PerView(model) if self.consistency and not self.recipe.consistency.ema else model

    def train_dataset(self):
        views = self.views()
        if not self.consistency:
            return self.mix([self.labeled_set(views, required=True)])
        parts = self.crop_parts(views, labeled_required=True)
        return self.mix(parts)

    def loss(self, model, batch):
        dev, dist, cfg = self.ctx.device, self.ctx.dist, self.recipe.consistency
        images = batch["image"].to(dev, non_blocking=True)
        target = gather(batch["label"].to(dev), dist)
        lengths = gather(batch["length"].to(dev), dist)
        if not self.consistency:
            out = gather_output(model(images), dist)
            total, parts = losses.supervised_loss(out, target, lengths)
            return total, parts
        if self.ema_model is not None:  # separate mean teacher: no gradient, no teacher-view CE
            with torch.no_grad():
                teacher = gather_output(self.ema_model(images[:, 0]), dist)
            student = gather_output(model(images[:, 1]), dist)
        else:  # one network on both views, as the official ConsistencyRegularizationFusionModel
            teacher, student = (gather_output(o, dist) for o in model(images))
        total, parts = losses.finetune_objective(
            teacher, student, target, lengths, consistency_weight=cfg.weight, supervise_teacher=self.ema_model is None,
            pairing=cfg.pairing, student_heads=cfg.student_heads, one_hot=cfg.one_hot, kl=cfg.kl,
            threshold=cfg.threshold, stop_gradient=cfg.stop_gradient, iteration_reduction=cfg.iteration_reduction)
        return total, parts

    def predict_heads(self, model, images):
        out = model(images)
        return {h: out.head(h) for h in self.heads}

    @property
    def selects_teacher(self) -> bool:
        return self.ema_model is not None and self.recipe.consistency.select == "teacher"

    def validate(self, model, autocast):
        """The student's values and, with an EMA teacher, the teacher's (keys ``teacher_*``)."""
        values = super().validate(model, autocast)
        if self.ema_model is not None:
            values.update({f"teacher_{k}": v for k, v in super().validate(self.ema_model, autocast).items()})
        return values

    def selection_key(self) -> str:
        key = super().selection_key()
        return f"teacher_{key}" if self.selects_teacher else key

    def selected_model(self, model):
        return self.ema_model if self.selects_teacher else model

    @torch.no_grad()
    def after_step(self, model):
        if self.ema_model is None:
            return
        d = self.recipe.consistency.ema_decay
        student = dict(unwrap(model).named_parameters())
        for name, p in self.ema_model.named_parameters():
            p.mul_(d).add_(student[name].detach(), alpha=1 - d)

    def extra_state(self):
        return {"ema_state_dict": self.ema_model.state_dict()} if self.ema_model is not None else {}

    def load_extra_state(self, state):
        if self.ema_model is not None and "ema_state_dict" in state:
            self.ema_model.load_state_dict(state["ema_state_dict"])


STAGE_CLASSES = {cls.name: cls for cls in (PretrainVision, PretrainLanguage, Finetune)}
