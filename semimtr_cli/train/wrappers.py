"""The wrappers a training model runs inside, and how to get the user model back out.

``PerView`` runs a network once per view of a two-view batch; DDP and ``torch.compile`` add
their own layers. ``unwrap`` peels all of them off (EMA updates, validation and checkpoints
need the plain network); ``eval_mode`` runs a block in eval mode and restores the old mode.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from semimtr_cli.model.outputs import join_rows


class PerView(nn.Module):
    """Runs the wrapped model separately on each view of (N, V, 3, H, W) images.

    Separate passes keep batch-norm statistics per view, as the official two-view models do;
    wrapping them in one module gives DDP a single forward per step. Views in ``no_grad_views``
    run without autograd: no graph is kept and no backward pass runs through them. In the views
    of ``row_grad_views`` only the rows ``grad_rows`` marks keep autograd: the other rows run in
    a second pass without it (their batch-norm statistics are then their own) and the outputs
    are joined back in batch order.
    """

    def __init__(self, model: nn.Module, no_grad_views: tuple[int, ...] = (), row_grad_views: tuple[int, ...] = ()):
        super().__init__()
        self.model = model
        self.no_grad_views = frozenset(no_grad_views)
        self.row_grad_views = frozenset(row_grad_views)

    def forward(self, images: torch.Tensor, grad_rows: torch.Tensor | None = None) -> list:
        """images (N, V, 3, H, W), grad_rows optional (N,) bool -> one model output per view."""
        outputs = []
        for v in range(images.shape[1]):
            grad = torch.is_grad_enabled() and v not in self.no_grad_views
            if grad and grad_rows is not None and v in self.row_grad_views:
                outputs.append(self._forward_rows(images[:, v], grad_rows.to(images.device)))
                continue
            with torch.set_grad_enabled(grad):
                outputs.append(self.model(images[:, v]))
        return outputs

    def _forward_rows(self, x: torch.Tensor, grad_rows: torch.Tensor):
        keep, rest = grad_rows.nonzero().flatten(), (~grad_rows).nonzero().flatten()
        if rest.numel() == 0:
            return self.model(x)
        if keep.numel() == 0:
            with torch.no_grad():
                return self.model(x)
        with_grad = self.model(x[keep])
        with torch.no_grad():
            without = self.model(x[rest])
        return join_rows([with_grad, without], [keep, rest])


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
