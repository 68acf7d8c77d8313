"""What every training stage shares: its context, model initialisation, the training mix and
validation on images. The three stages subclass :class:`Stage` (:mod:`.pretrain_vision`,
:mod:`.pretrain_lm`, :mod:`.finetune`); :mod:`.trainer` owns the loop that drives them.

A stage provides:

- ``build_model()`` -> the nn.Module to optimise (already initialised from ``init.*``) and
  ``wrap(model)`` -> what the trainer hands to DDP;
- ``train_dataset()`` -> (dataset, sampler) yielding batches for ``loss``;
- ``loss(model, batch)`` -> (scalar loss on the global batch, {name: detached 0-d tensor}
  for logging; turned into numbers only when a log line is written, so GPUs are not synced
  every step);
- ``validate(model, autocast)`` -> {metric: value} (percentages), ``selection_key()`` (the
  metric that picks ``best.pt``) and ``selected_model(model)`` (the network whose weights
  ``best.pt`` holds);
- ``after_step(model)`` (EMA teacher update) and ``extra_state()`` / ``load_extra_state()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.core.metrics import TextMetrics
from semimtr_cli.data.augment.pipelines import PerSourcePipeline
from semimtr_cli.data.datasets import ConcatCrops, CropDataset, MixedDataset, MixedSampler, collate, n_sources
from semimtr_cli.data.synth.stream import SynthCropDataset, SynthSource
from semimtr_cli.model.checkpoint import load_checkpoint
from semimtr_cli.model.decoding import decode_logits
from semimtr_cli.model.factory import build_model
from semimtr_cli.model.outputs import HeadOutput
from semimtr_cli.model.transfer import TransferReport, load_part
from semimtr_cli.train.distributed import DistInfo
from semimtr_cli.train.recipe import Recipe, training_views
from semimtr_cli.train.wrappers import eval_mode, unwrap


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
