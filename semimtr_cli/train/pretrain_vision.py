"""Stage 1, ``pretrain-vision``: the vision model trained with CE on labeled crops and SeqCLR's
contrastive loss between two views of every crop (``seqclr.mode`` picks the terms)."""

from __future__ import annotations

from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.train import losses
from semimtr_cli.train.distributed import gather, gather_output
from semimtr_cli.train.stage_base import Stage
from semimtr_cli.train.wrappers import PerView


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
