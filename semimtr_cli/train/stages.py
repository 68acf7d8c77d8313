"""The three SemiMTR training stages by name: ``STAGE_CLASSES`` maps a recipe's ``stage`` to
the class the trainer drives.

Where each part lives:

- :mod:`.stage_base` -- ``StageContext`` and the ``Stage`` base class: the stage interface,
  model initialisation from ``init.*``, the labeled/unlabeled training mix, validation on images;
- :mod:`.pretrain_vision` -- ``PretrainVision`` (CE + SeqCLR on two views);
- :mod:`.pretrain_lm` -- ``PretrainLanguage`` (BCN cloze pre-training on a word corpus);
- :mod:`.finetune` -- ``Finetune`` (supervised CE + teacher/student consistency, EMA teacher);
- :mod:`.wrappers` -- ``PerView``, ``unwrap``, ``eval_mode``.

Every name above can also be imported from here.
"""

from __future__ import annotations

from semimtr_cli.train.finetune import Finetune
from semimtr_cli.train.pretrain_lm import PretrainLanguage
from semimtr_cli.train.pretrain_vision import PretrainVision
from semimtr_cli.train.stage_base import Stage, StageContext
from semimtr_cli.train.wrappers import PerView, eval_mode, unwrap

STAGE_CLASSES: dict[str, type[Stage]] = {cls.name: cls for cls in (PretrainVision, PretrainLanguage, Finetune)}

__all__ = ["STAGE_CLASSES", "Finetune", "PerView", "PretrainLanguage", "PretrainVision", "Stage", "StageContext",
           "eval_mode", "unwrap"]
