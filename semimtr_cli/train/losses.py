"""Training losses: sequence cross-entropy over true lengths, SeqCLR NT-Xent, consistency.

Shapes: N batch, T decoding slots (max_length + 1), C classes (class 0 = null/stop), K SeqCLR
instances per image, D instance width. Lengths always *include* the stop slot, so a word of L
characters keeps L + 1 slots; a length of 0 marks an unlabeled sample (it contributes nothing).

Reductions follow the official SemiMTR code ("batchmean" = mean over every kept slot of the
whole batch, not per sample). Where the official code has a quirk we keep it as the default and
name it in the docstring:

* supervised CE over the iterative heads is *averaged* over iterations;
* consistency CE over the student's iterations is *summed* (``iteration_reduction="official"``).

Every loss is computed in at least float32 (half inputs are upcast; safe under autocast) and returns a 0-dim tensor that stays
connected to the inputs' graph even when nothing is kept (then its value is 0).
"""

from __future__ import annotations

from typing import Literal, Mapping, Sequence

import torch
import torch.nn.functional as F

from semimtr_cli.model.decoding import kept_slots, teacher_targets, upcast
from semimtr_cli.model.outputs import HEADS, HeadOutput, RecognizerOutput

"""Head names in the official output order (alignment, language, vision)."""

DEFAULT_WEIGHTS: Mapping[str, float] = {"alignment": 1.0, "language": 1.0, "vision": 1.0}

IterationReduction = Literal["official", "sum", "mean"]


# --------------------------------------------------------------------------- sequence CE


def _zero_like_graph(*tensors: torch.Tensor) -> torch.Tensor:
    """A float32 zero that is part of the tensors' graphs (so ``backward()`` still works)."""
    floats = [t for t in tensors if t.is_floating_point()]
    if not floats:
        return torch.zeros(())
    total = (upcast(floats[0]) * 0.0).sum()
    for t in floats[1:]:
        total = total + (upcast(t) * 0.0).sum()
    return total


def sequence_ce(
    logits: torch.Tensor,
    target: torch.Tensor,
    lengths: torch.Tensor,
    slot_weight: torch.Tensor | None = None,
    *,
    kl: bool = False,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy (or KL divergence) over the first ``lengths[i]`` slots of every sample.

    Args:
        logits: (N, T, C) unnormalised scores.
        target: (N, T) int class ids, or (N, T, C) target probabilities (e.g. one-hot or soft
            teacher labels). Ids beyond a sample's length are ignored (any value allowed).
        lengths: (N,) slots to keep per sample, stop slot included; 0 = sample ignored.
        slot_weight: optional (N, T) per-slot multiplier (e.g. a confidence mask). It scales the
            per-slot losses but does *not* change the divisor (official behaviour).
        kl: KL(target || softmax(logits)) instead of CE; equal to CE for one-hot targets.
        label_smoothing: eps in ``(1 - eps) * target + eps / C`` (uniform smoothing).

    Returns:
        0-dim tensor (float32 or float64): sum of (weighted) per-slot losses / number of kept slots.
    """
    if logits.dim() != 3:
        raise ValueError(f"logits must be (N, T, C), got {tuple(logits.shape)}")
    n, t, c = logits.shape
    if target.shape[:2] != (n, t) or target.dim() not in (2, 3):
        raise ValueError(f"target {tuple(target.shape)} does not match logits {tuple(logits.shape)}")
    if lengths.shape != (n,):
        raise ValueError(f"lengths must be ({n},), got {tuple(lengths.shape)}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")

    keep = kept_slots(lengths, t).to(logits.device)
    num_kept = keep.sum().clamp(min=1)  # a tensor: no host sync; 0 kept slots -> loss 0

    log_prob = F.log_softmax(upcast(logits), dim=-1)
    if target.dim() == 2 and not kl and label_smoothing == 0.0:
        ids = torch.where(keep, target.long(), torch.zeros_like(target, dtype=torch.long))
        per_slot = -log_prob.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    else:
        if target.dim() == 2:
            ids = torch.where(keep, target.long(), torch.zeros_like(target, dtype=torch.long))
            probs = F.one_hot(ids, c).to(log_prob.dtype)
        else:
            probs = upcast(target)
        if label_smoothing:
            probs = probs * (1.0 - label_smoothing) + label_smoothing / c
        per_slot = -(probs * log_prob).sum(-1)
        if kl:
            per_slot = per_slot + torch.xlogy(probs, probs).sum(-1)

    if slot_weight is not None:
        if slot_weight.shape != (n, t):
            raise ValueError(f"slot_weight must be ({n}, {t}), got {tuple(slot_weight.shape)}")
        per_slot = per_slot * slot_weight.to(per_slot.dtype)
    per_slot = torch.where(keep, per_slot, torch.zeros_like(per_slot))
    return per_slot.sum() / num_kept


def _as_iterations(output: HeadOutput | Sequence[HeadOutput]) -> list[HeadOutput]:
    return [output] if isinstance(output, HeadOutput) else list(output)


def head_ce(
    outputs: HeadOutput | Sequence[HeadOutput],
    target: torch.Tensor,
    lengths: torch.Tensor,
    slot_weight: torch.Tensor | None = None,
    *,
    kl: bool = False,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """CE of one head whose iterations are concatenated along the batch (official MultiCE).

    With the same lengths for every iteration this is the mean of the per-iteration CEs. Any
    number of iterations works (the official code hard-codes 3).
    """
    iterations = _as_iterations(outputs)
    if not iterations:
        raise ValueError("head_ce needs at least one HeadOutput")
    k = len(iterations)
    logits = torch.cat([o.logits for o in iterations], dim=0) if k > 1 else iterations[0].logits
    rep = (k,) + (1,) * (target.dim() - 1)
    weight = None if slot_weight is None else slot_weight.repeat(k, 1)
    return sequence_ce(logits, target.repeat(rep), lengths.repeat(k), weight,
                       kl=kl, label_smoothing=label_smoothing)


def supervised_loss(
    output: RecognizerOutput | HeadOutput,
    target: torch.Tensor,
    target_lengths: torch.Tensor,
    weights: Mapping[str, float] | None = None,
    *,
    label_smoothing: float = 0.0,
    head_name: str = "vision",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Supervised sequence CE of a full model or of a single head (official ``MultiCELosses``).

    Args:
        output: a RecognizerOutput (alignment/language lists are averaged over iterations) or a
            single HeadOutput (a vision-only or language-only model).
        target: (N, T) ids or (N, T, C) probabilities; target_lengths: (N,) incl. stop slot,
            0 for unlabeled samples.
        weights: per head multiplier (default 1 each); a head with weight <= 0 is skipped, as
            is a head with no iterations.
        head_name: the key under which a single HeadOutput's loss is reported.

    Returns:
        (total, parts): total = sum of weight * CE per head; parts maps head name -> its
        unweighted CE (detached).
    """
    weights = DEFAULT_WEIGHTS if weights is None else {**DEFAULT_WEIGHTS, **weights}
    if isinstance(output, HeadOutput):
        heads: dict[str, list[HeadOutput]] = {head_name: [output]}
    else:
        heads = {"alignment": list(output.alignment), "language": list(output.language),
                 "vision": [output.vision]}
    total: torch.Tensor | None = None
    parts: dict[str, torch.Tensor] = {}
    for name, iterations in heads.items():
        weight = float(weights.get(name, 1.0))
        if weight <= 0 or not iterations:
            continue
        loss = head_ce(iterations, target, target_lengths, label_smoothing=label_smoothing)
        parts[name] = loss.detach()
        total = weight * loss if total is None else total + weight * loss
    if total is None:
        total = _zero_like_graph(*(o.logits for its in heads.values() for o in its))
    return total, parts


# --------------------------------------------------------------------------- SeqCLR

def seqclr_loss(
    instances_a: torch.Tensor,
    instances_b: torch.Tensor,
    temperature: float = 0.1,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """SeqCLR NT-Xent between two views (official ``SeqCLRLoss``, reduction 'batchmean').

    The N*K instances of each view are stacked into 2M = 2*N*K rows, L2-normalised, and every
    row is contrasted against all other 2M - 1 rows (other instances of the same image and of
    the same view are negatives too). The positive of instance k of image i in one view is
    instance k of image i in the other view.

    Args:
        instances_a, instances_b: (N, K, D) instance embeddings of view 0 and view 1.
        temperature: tau (paper 0.1).
        keep: optional (N,) bool; images to include (e.g. to drop padding). Not in the
            official code, where every image of the batch takes part.

    Returns:
        0-dim tensor: mean over the 2M rows of ``logsumexp_{j != i}(s_ij / tau) - s_pos / tau``
        (identical to ``-log(exp(s_pos/tau) / sum_{j != i} exp(s_ij/tau))`` but overflow-free).
    """
    if instances_a.dim() != 3 or instances_a.shape != instances_b.shape:
        raise ValueError(f"instances must both be (N, K, D), got {tuple(instances_a.shape)} "
                         f"and {tuple(instances_b.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    a, b = instances_a, instances_b
    if keep is not None:
        a, b = a[keep], b[keep]
    m = a.shape[0] * a.shape[1]
    if m == 0:
        return _zero_like_graph(instances_a, instances_b)
    z = upcast(torch.cat([a.reshape(m, -1), b.reshape(m, -1)], dim=0))
    z = F.normalize(z, dim=1)
    scores = (z @ z.T) / temperature
    self_mask = torch.eye(2 * m, dtype=torch.bool, device=z.device)
    scores = scores.masked_fill(self_mask, float("-inf"))
    rows = torch.arange(2 * m, device=z.device)
    positives = scores[rows, (rows + m) % (2 * m)]
    return (torch.logsumexp(scores, dim=1) - positives).mean()


# --------------------------------------------------------------------------- consistency


def _student_iterations(student: RecognizerOutput, name: str) -> list[HeadOutput]:
    if name == "vision":
        return [student.vision]
    if name in ("alignment", "language"):
        return list(getattr(student, name))
    raise ValueError(f"unknown head {name!r}; expected one of {', '.join(HEADS)}")


def consistency_loss(
    teacher: RecognizerOutput,
    student: RecognizerOutput,
    *,
    pairing: str = "all_to_all",
    student_heads: str = "all",
    one_hot: bool = True,
    kl: bool = False,
    threshold: float | None = None,
    threshold_scope: str = "slot",
    stop_gradient: bool = True,
    iteration_reduction: IterationReduction = "official",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Character-level consistency between a teacher (weak view) and a student (strong view).

    Teacher labels come from the teacher's *last* iteration of a head; the student's loss is
    kept on the first ``teacher.lengths[i]`` slots (teacher's stop slot included).

    Args:
        pairing: ``"all_to_all"`` (official default: alignment -> alignment, language ->
            language, vision -> vision) or a teacher head name that teaches ``student_heads``.
        student_heads: ``"all"`` or one of alignment | language | vision (ignored for
            all_to_all, which always uses all three).
        one_hot: argmax teacher labels (default) vs soft probabilities.
        kl: KL divergence instead of CE.
        threshold: if set (paper option 0.9), slots whose teacher max prob is not above it
            contribute 0, while the divisor still counts them.
        threshold_scope: ``"slot"`` (official: the cut applies slot by slot) or ``"word"`` (a
            word's slots count only if all of them pass the cut).
        stop_gradient: detach the teacher logits (always effectively true when ``one_hot``).
        iteration_reduction: how a student head's iterations are combined. ``"official"``
            reproduces the official code: the per-iteration CEs are *summed* (so alignment and
            language weigh 3x vision at 3 iterations) except when one teacher head teaches
            ``student_heads="all"``, where the official code concatenates the iterations and so
            *averages* them. ``"sum"`` / ``"mean"`` force one rule everywhere.

    Returns:
        (total, parts): total = sum over pairs; parts maps ``"<teacher>_to_<student>"`` to the
        term (detached). Heads with no iterations on either side are skipped.
    """
    if iteration_reduction not in ("official", "sum", "mean"):
        raise ValueError(f"iteration_reduction must be official, sum or mean, got {iteration_reduction!r}")
    if pairing == "all_to_all":
        pairs = [(h, h) for h in HEADS]
        official_rule = "sum"
    elif pairing in HEADS:
        if student_heads == "all":
            pairs = [(pairing, h) for h in HEADS]
            official_rule = "mean"
        elif student_heads in HEADS:
            pairs = [(pairing, student_heads)]
            official_rule = "sum"
        else:
            raise ValueError(f"student_heads must be 'all' or one of {', '.join(HEADS)}, got {student_heads!r}")
    else:
        raise ValueError(f"pairing must be 'all_to_all' or one of {', '.join(HEADS)}, got {pairing!r}")
    rule = official_rule if iteration_reduction == "official" else iteration_reduction

    cached: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = {}
    total: torch.Tensor | None = None
    parts: dict[str, torch.Tensor] = {}
    for teacher_name, student_name in pairs:
        iterations = _student_iterations(student, student_name)
        teacher_its = _student_iterations(teacher, teacher_name)
        if not iterations or not teacher_its:
            continue
        if teacher_name not in cached:
            cached[teacher_name] = teacher_targets(teacher_its[-1], one_hot=one_hot,
                                                   threshold=threshold, threshold_scope=threshold_scope,
                                                   stop_gradient=stop_gradient)
        target, lengths, mask = cached[teacher_name]
        if rule == "mean":
            term = head_ce(iterations, target, lengths, mask, kl=kl)
        else:
            term = sum(sequence_ce(o.logits, target, lengths, mask, kl=kl) for o in iterations)
        parts[f"{teacher_name}_to_{student_name}"] = term.detach()
        total = term if total is None else total + term
    if total is None:
        total = _zero_like_graph(student.vision.logits)
    return total, parts


# --------------------------------------------------------------------------- stage objectives

def pretrain_vision_objective(
    view0: HeadOutput,
    view1: HeadOutput,
    instances0: torch.Tensor,
    instances1: torch.Tensor,
    target: torch.Tensor,
    target_lengths: torch.Tensor,
    *,
    temperature: float = 0.1,
    ce_weight: float = 1.0,
    contrastive_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """SemiMTR stage 1: CE(view0) + CE(view1) on labeled samples + SeqCLR on all samples.

    Unlabeled samples carry length 0 and so add nothing to the CE terms. A weight of 0 drops a
    term (CE-only baseline: ``contrastive_weight=0``; SeqCLR-only: ``ce_weight=0``).

    Returns:
        (total, parts) with parts ``ce`` (mean of the two views, as the official log shows;
        the optimised value is their sum) and ``seqclr``.
    """
    total = _zero_like_graph(view0.logits, view1.logits, instances0, instances1)
    parts: dict[str, torch.Tensor] = {}
    if ce_weight > 0:
        ce0 = sequence_ce(view0.logits, target, target_lengths)
        ce1 = sequence_ce(view1.logits, target, target_lengths)
        total = total + ce_weight * (ce0 + ce1)
        parts["ce"] = ((ce0 + ce1) / 2).detach()
    if contrastive_weight > 0:
        clr = seqclr_loss(instances0, instances1, temperature)
        total = total + contrastive_weight * clr
        parts["seqclr"] = clr.detach()
    return total, parts


def finetune_objective(
    teacher: RecognizerOutput,
    student: RecognizerOutput,
    target: torch.Tensor,
    target_lengths: torch.Tensor,
    *,
    consistency_weight: float = 1.0,
    supervised_weights: Mapping[str, float] | None = None,
    supervise_teacher: bool = True,
    **consistency_options,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """SemiMTR stage 3: supervised CE on both views (labeled) + consistency (all samples).

    ``consistency_options`` go to :func:`consistency_loss`. ``supervise_teacher=False`` drops
    the teacher-view CE (an EMA teacher computed without gradients has nothing to learn).
    Returns (total, parts) with parts
    ``sup_teacher_<head>``, ``sup_student_<head>``, ``cons_<teacher>_to_<student>`` and the
    three sums ``sup_teacher``, ``sup_student``, ``consistency``.
    """
    sup_s, parts_s = supervised_loss(student, target, target_lengths, supervised_weights)
    parts = {f"sup_student_{k}": v for k, v in parts_s.items()}
    parts["sup_student"] = sup_s.detach()
    total = sup_s
    if supervise_teacher:
        sup_t, parts_t = supervised_loss(teacher, target, target_lengths, supervised_weights)
        parts.update({f"sup_teacher_{k}": v for k, v in parts_t.items()})
        parts["sup_teacher"] = sup_t.detach()
        total = sup_t + sup_s
    if consistency_weight > 0:
        cons, parts_c = consistency_loss(teacher, student, **consistency_options)
        parts.update({f"cons_{k}": v for k, v in parts_c.items()})
        parts["consistency"] = cons.detach()
        total = total + consistency_weight * cons
    return total, parts
