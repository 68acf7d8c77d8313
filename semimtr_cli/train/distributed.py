"""torchrun / DDP plumbing: process-group setup, device choice, and gathering for the loss.

Losses are computed on the GLOBAL batch, as the official multi-GPU training did (DataParallel
gathers outputs on one device): every rank all-gathers the loss inputs with gradient
support, computes the same global loss, and DDP's gradient averaging then yields exactly the
single-process gradient of that batch. Contrastive negatives therefore span all ranks too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from semimtr_cli.model.outputs import HeadOutput, RecognizerOutput


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (nccl on CUDA, gloo otherwise)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def gather(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate ``t`` from every rank along dim 0 (differentiable for float tensors)."""
    if not info.enabled:
        return t
    if t.requires_grad:
        import torch.distributed.nn.functional as dist_fn

        return torch.cat(dist_fn.all_gather(t))
    parts = [torch.empty_like(t) for _ in range(info.world_size)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


def gather_head(h: HeadOutput, info: DistInfo) -> HeadOutput:
    """Gather what losses read (logits, lengths, SeqCLR instances); features stay local."""
    if not info.enabled:
        return h
    extras = {k: gather(v, info) for k, v in h.extras.items() if k == "instances"}
    return HeadOutput(logits=gather(h.logits, info), lengths=gather(h.lengths, info), feature=h.feature, extras=extras)


def gather_output(out, info: DistInfo):
    """:func:`gather_head` over a HeadOutput or every head/iteration of a RecognizerOutput."""
    if not info.enabled:
        return out
    if isinstance(out, HeadOutput):
        return gather_head(out, info)
    return RecognizerOutput(
        vision=gather_head(out.vision, info),
        language=[gather_head(h, info) for h in out.language],
        alignment=[gather_head(h, info) for h in out.alignment],
    )


def all_reduce_sum(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Sum scalars over ranks (for logging)."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist()))
