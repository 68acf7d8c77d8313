"""Stage 3, ``finetune``: the full recognizer (vision + language + fusion) trained with
supervised CE and the consistency of a strong-view student with a weak-view teacher (the same
network, or an EMA copy that is validated beside it and can be the one ``best.pt`` keeps)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.model.outputs import HEADS
from semimtr_cli.train import losses
from semimtr_cli.train.distributed import gather, gather_output
from semimtr_cli.train.stage_base import Stage
from semimtr_cli.train.wrappers import PerView, unwrap


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

    @property
    def supervise_teacher(self) -> bool:
        """Whether the teacher view learns (CE on labeled crops, official); an EMA teacher never does."""
        return self.recipe.consistency.supervise_teacher and not self.recipe.consistency.ema

    def wrap(self, model):
        if not self.consistency or self.recipe.consistency.ema:
            return model
        if not self.supervise_teacher:
            return PerView(model, no_grad_views=(0,))
        labeled_only = self.recipe.consistency.teacher_grad == "labeled"
        return PerView(model, row_grad_views=(0,) if labeled_only else ())

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
            # (without supervise_teacher the teacher view runs without gradient: FixMatch-like)
            # (teacher_grad=labeled: only the labeled rows of the teacher view keep autograd)
            teacher, student = (gather_output(o, dist) for o in model(images, grad_rows=batch["length"] > 0))
        total, parts = losses.finetune_objective(
            teacher, student, target, lengths, consistency_weight=cfg.weight, supervise_teacher=self.supervise_teacher,
            pairing=cfg.pairing, student_heads=cfg.student_heads, one_hot=cfg.one_hot, kl=cfg.kl,
            threshold=cfg.threshold, threshold_scope=cfg.threshold_scope, stop_gradient=cfg.stop_gradient,
            iteration_reduction=cfg.iteration_reduction)
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
