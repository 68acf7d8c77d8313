"""Losses: sequence CE over true lengths, supervised multi-head CE, SeqCLR, consistency."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from semimtr_cli.model.decoding import kept_slots, teacher_targets
from semimtr_cli.model.outputs import HeadOutput, RecognizerOutput
from semimtr_cli.train.losses import (
    consistency_loss, finetune_objective, head_ce, pretrain_vision_objective, seqclr_loss, sequence_ce,
    supervised_loss,
)

torch.set_num_threads(1)


def head(logits: torch.Tensor, lengths) -> HeadOutput:
    lengths = torch.as_tensor(lengths, dtype=torch.long)
    return HeadOutput(logits=logits, lengths=lengths, feature=torch.zeros(*logits.shape[:2], 2))


def recognizer(vision, language, alignment, lengths) -> RecognizerOutput:
    return RecognizerOutput(
        vision=head(vision, lengths),
        language=[head(x, lengths) for x in language],
        alignment=[head(x, lengths) for x in alignment],
    )


def manual_ce(logits, ids, lengths):
    """Reference: loop over kept slots, -log_softmax at the target, divided by the slot count."""
    total, count = 0.0, 0
    for i in range(logits.shape[0]):
        for t in range(int(lengths[i])):
            total += -torch.log_softmax(logits[i, t].double(), -1)[int(ids[i, t])].item()
            count += 1
    return total / max(count, 1)


# --------------------------------------------------------------------------- sequence_ce

def test_ce_uniform_logits_is_log_num_classes():
    logits = torch.zeros(2, 4, 5)
    ids = torch.tensor([[1, 2, 0, 0], [3, 0, 0, 0]])
    loss = sequence_ce(logits, ids, torch.tensor([3, 2]))
    assert loss.item() == pytest.approx(math.log(5), rel=1e-6)


def test_ce_matches_manual_log_softmax():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 7, generator=g)
    ids = torch.randint(0, 7, (3, 5), generator=g)
    lengths = torch.tensor([2, 5, 1])
    assert sequence_ce(logits, ids, lengths).item() == pytest.approx(manual_ce(logits, ids, lengths), rel=1e-5)


def test_ce_one_hot_target_equals_ids_and_kl_of_one_hot_equals_ce():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 6, generator=g)
    ids = torch.randint(0, 6, (2, 4), generator=g)
    lengths = torch.tensor([4, 2])
    by_ids = sequence_ce(logits, ids, lengths)
    by_probs = sequence_ce(logits, F.one_hot(ids, 6).float(), lengths)
    by_kl = sequence_ce(logits, ids, lengths, kl=True)
    assert by_probs.item() == pytest.approx(by_ids.item(), rel=1e-6)
    assert by_kl.item() == pytest.approx(by_ids.item(), rel=1e-6)


def test_kl_soft_target_is_ce_minus_entropy_and_zero_at_match():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(1, 3, 4, generator=g)
    probs = torch.softmax(torch.randn(1, 3, 4, generator=g), -1)
    lengths = torch.tensor([3])
    ce = sequence_ce(logits, probs, lengths)
    kl = sequence_ce(logits, probs, lengths, kl=True)
    entropy = -(probs * probs.log()).sum(-1).mean()
    assert kl.item() == pytest.approx((ce - entropy).item(), rel=1e-5)
    assert sequence_ce(logits, torch.softmax(logits, -1), lengths, kl=True).item() == pytest.approx(0.0, abs=1e-6)


def test_length_masking_ignores_slots_beyond_length():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 6, 5, generator=g)
    ids = torch.randint(0, 5, (2, 6), generator=g)
    lengths = torch.tensor([2, 4])
    base = sequence_ce(logits, ids, lengths)
    changed = logits.clone()
    changed[0, 2:] = 100 * torch.randn(4, 5, generator=g)
    changed[1, 4:] = -1e4
    garbage_ids = ids.clone()
    garbage_ids[0, 2:] = 999  # padding ids outside the class range are never looked up
    assert sequence_ce(changed, garbage_ids, lengths).item() == pytest.approx(base.item(), rel=1e-6)
    assert sequence_ce(changed, ids, torch.tensor([3, 4])).item() != pytest.approx(base.item(), rel=1e-3)


def test_batchmean_divides_by_kept_slots_not_samples():
    # sample 0 keeps one slot with loss log(2)-ish; sample 1 keeps three uniform slots (log 4).
    logits = torch.zeros(2, 3, 4)
    logits[0, 0] = torch.tensor([0.0, 0.0, -1e9, -1e9])  # loss log 2 for class 0
    ids = torch.zeros(2, 3, dtype=torch.long)
    loss = sequence_ce(logits, ids, torch.tensor([1, 3]))
    expected = (math.log(2) + 3 * math.log(4)) / 4
    per_sample_mean = (math.log(2) + math.log(4)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert loss.item() != pytest.approx(per_sample_mean, rel=1e-3)


def test_slot_weight_scales_but_keeps_divisor():
    logits = torch.zeros(1, 4, 3)
    ids = torch.zeros(1, 4, dtype=torch.long)
    weight = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    loss = sequence_ce(logits, ids, torch.tensor([4]), weight)
    assert loss.item() == pytest.approx(2 * math.log(3) / 4, rel=1e-6)


def test_no_kept_slot_gives_connected_zero():
    logits = torch.randn(2, 3, 4, requires_grad=True)
    loss = sequence_ce(logits, torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 0]))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and torch.all(logits.grad == 0)


def test_label_smoothing_matches_manual():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(1, 2, 5, generator=g)
    ids = torch.tensor([[2, 0]])
    eps = 0.1
    target = F.one_hot(ids, 5).float() * (1 - eps) + eps / 5
    manual = -(target * torch.log_softmax(logits, -1)).sum(-1).mean()
    got = sequence_ce(logits, ids, torch.tensor([2]), label_smoothing=eps)
    assert got.item() == pytest.approx(manual.item(), rel=1e-6)


def test_lengths_longer_than_slots_are_clamped_and_kept_slots_mask():
    mask = kept_slots(torch.tensor([0, 2, 9]), 3)
    assert mask.tolist() == [[False, False, False], [True, True, False], [True, True, True]]
    logits = torch.zeros(1, 3, 4)
    assert sequence_ce(logits, torch.zeros(1, 3, dtype=torch.long), torch.tensor([9])).item() == \
        pytest.approx(math.log(4))


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        sequence_ce(torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.long), torch.tensor([1, 1]))
    with pytest.raises(ValueError):
        sequence_ce(torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long), torch.tensor([1]))


def test_half_precision_inputs_are_upcast():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 3, 4, generator=g)
    ids = torch.randint(0, 4, (2, 3), generator=g)
    lengths = torch.tensor([3, 2])
    loss = sequence_ce(logits.bfloat16(), ids, lengths)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(sequence_ce(logits, ids, lengths).item(), rel=2e-2)


# --------------------------------------------------------------------------- supervised

@pytest.mark.parametrize("iterations", [1, 2, 3, 4])
def test_supervised_loss_averages_iterations_and_sums_heads(iterations):
    g = torch.Generator().manual_seed(10 + iterations)
    n, t, c = 3, 5, 6
    ids = torch.randint(0, c, (n, t), generator=g)
    lengths = torch.tensor([3, 0, 5])  # the middle sample is unlabeled
    vis = torch.randn(n, t, c, generator=g)
    lang = [torch.randn(n, t, c, generator=g) for _ in range(iterations)]
    align = [torch.randn(n, t, c, generator=g) for _ in range(iterations)]
    total, parts = supervised_loss(recognizer(vis, lang, align, lengths), ids, lengths)
    mean_iter = lambda xs: sum(manual_ce(x, ids, lengths) for x in xs) / len(xs)  # noqa: E731
    assert parts["vision"].item() == pytest.approx(manual_ce(vis, ids, lengths), rel=1e-5)
    assert parts["language"].item() == pytest.approx(mean_iter(lang), rel=1e-5)
    assert parts["alignment"].item() == pytest.approx(mean_iter(align), rel=1e-5)
    assert total.item() == pytest.approx(sum(p.item() for p in parts.values()), rel=1e-6)


def test_supervised_loss_weights_and_single_head():
    g = torch.Generator().manual_seed(20)
    ids = torch.randint(0, 4, (2, 3), generator=g)
    lengths = torch.tensor([2, 3])
    out = recognizer(torch.randn(2, 3, 4, generator=g), [torch.randn(2, 3, 4, generator=g)],
                     [torch.randn(2, 3, 4, generator=g)], lengths)
    total, parts = supervised_loss(out, ids, lengths, {"language": 0.0, "vision": 2.0})
    assert set(parts) == {"alignment", "vision"}
    assert total.item() == pytest.approx(parts["alignment"].item() + 2 * parts["vision"].item(), rel=1e-6)
    single, parts1 = supervised_loss(out.vision, ids, lengths, head_name="language")
    assert set(parts1) == {"language"}
    assert single.item() == pytest.approx(manual_ce(out.vision.logits, ids, lengths), rel=1e-5)


def test_head_ce_concatenation_equals_mean_of_iterations():
    g = torch.Generator().manual_seed(21)
    ids = torch.randint(0, 4, (2, 3), generator=g)
    lengths = torch.tensor([1, 3])
    its = [head(torch.randn(2, 3, 4, generator=g), lengths) for _ in range(3)]
    mean = sum(sequence_ce(o.logits, ids, lengths) for o in its) / 3
    assert head_ce(its, ids, lengths).item() == pytest.approx(mean.item(), rel=1e-6)


# --------------------------------------------------------------------------- SeqCLR

def brute_force_seqclr(a, b, tau):
    """The official formula, written as explicit loops over the 2M rows (float64)."""
    z = torch.cat([a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])]).double()
    z = z / z.norm(dim=1, keepdim=True)
    m2 = z.shape[0]
    m = m2 // 2
    total = 0.0
    for i in range(m2):
        denom = 0.0
        for j in range(m2):
            if j != i:
                denom += math.exp(float(z[i] @ z[j]) / tau)
        pos = (i + m) % m2
        total += -math.log(math.exp(float(z[i] @ z[pos]) / tau) / denom)
    return total / m2


def test_seqclr_identical_orthogonal_instances_hand_value():
    eye = torch.eye(4, dtype=torch.float64)
    a = eye[:2].reshape(1, 2, 4)  # one image, two orthogonal instances
    loss = seqclr_loss(a, a.clone(), temperature=0.1)
    # each row: positive cos 1, the other two rows cos 0 -> log(1 + 2 e^-10)
    assert loss.item() == pytest.approx(math.log1p(2 * math.exp(-10)), rel=1e-4)


def test_seqclr_matches_brute_force_and_is_symmetric():
    g = torch.Generator().manual_seed(30)
    a = torch.randn(3, 5, 8, generator=g)
    b = torch.randn(3, 5, 8, generator=g)
    for tau in (0.1, 0.5):
        assert seqclr_loss(a, b, tau).item() == pytest.approx(brute_force_seqclr(a, b, tau), rel=1e-5)
    assert seqclr_loss(a, b).item() == pytest.approx(seqclr_loss(b, a).item(), rel=1e-6)


def test_seqclr_negatives_include_same_image_and_same_view():
    # two instances of one image that are identical make each other strong negatives
    a = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    loss = seqclr_loss(a, a.clone(), temperature=0.1)
    # every row: 3 others all with cos 1 -> -log(1/3)
    assert loss.item() == pytest.approx(math.log(3), rel=1e-6)


def test_seqclr_finite_with_large_norms_and_scale_invariant():
    g = torch.Generator().manual_seed(31)
    a = torch.randn(4, 5, 16, generator=g)
    b = torch.randn(4, 5, 16, generator=g)
    big = seqclr_loss(a * 1e6, b * 1e6, 0.1)
    assert torch.isfinite(big)
    assert big.item() == pytest.approx(seqclr_loss(a, b, 0.1).item(), rel=1e-4)
    tiny_tau = seqclr_loss(a, b, 1e-3)  # exp(1000) would overflow in the naive formula
    assert torch.isfinite(tiny_tau)


def test_seqclr_keep_mask_equals_slicing():
    g = torch.Generator().manual_seed(32)
    a = torch.randn(4, 3, 6, generator=g)
    b = torch.randn(4, 3, 6, generator=g)
    keep = torch.tensor([True, False, True, True])
    assert seqclr_loss(a, b, keep=keep).item() == pytest.approx(seqclr_loss(a[keep], b[keep]).item(), rel=1e-6)
    none = seqclr_loss(a, b, keep=torch.zeros(4, dtype=torch.bool))
    assert none.item() == 0.0


def test_seqclr_gradcheck():
    g = torch.Generator().manual_seed(33)
    a = torch.randn(2, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: seqclr_loss(x, y, 0.5), (a, b))


# --------------------------------------------------------------------------- consistency

def confident_logits(ids: torch.Tensor, c: int, margin: float = 30.0) -> torch.Tensor:
    return F.one_hot(ids, c).float() * margin


def make_pair(seed=40, n=2, t=5, c=6, iterations=3, teacher_lengths=(3, 5)):
    g = torch.Generator().manual_seed(seed)
    rand = lambda: torch.randn(n, t, c, generator=g)  # noqa: E731
    lengths = torch.tensor(teacher_lengths)
    teacher = recognizer(rand(), [rand() for _ in range(iterations)], [rand() for _ in range(iterations)], lengths)
    student = recognizer(rand(), [rand() for _ in range(iterations)], [rand() for _ in range(iterations)],
                         torch.tensor([1, 1]))
    return teacher, student


def test_consistency_near_zero_when_student_equals_confident_teacher():
    g = torch.Generator().manual_seed(41)
    ids = torch.randint(0, 6, (2, 5), generator=g)
    x = confident_logits(ids, 6)
    out = recognizer(x, [x, x], [x, x], torch.tensor([3, 5]))
    total, parts = consistency_loss(out, out)
    assert set(parts) == {"alignment_to_alignment", "language_to_language", "vision_to_vision"}
    assert total.item() < 1e-9
    teacher, student = make_pair()
    assert consistency_loss(teacher, student)[0].item() > 0.5


def test_consistency_all_to_all_matches_manual_and_sums_iterations():
    teacher, student = make_pair()
    total, parts = consistency_loss(teacher, student)
    for name in ("alignment", "language"):
        labels = teacher.head(name).logits.argmax(-1)
        lengths = teacher.head(name).lengths
        expected = sum(manual_ce(o.logits, labels, lengths) for o in getattr(student, name))
        assert parts[f"{name}_to_{name}"].item() == pytest.approx(expected, rel=1e-5)
    v_expected = manual_ce(student.vision.logits, teacher.vision.logits.argmax(-1), teacher.vision.lengths)
    assert parts["vision_to_vision"].item() == pytest.approx(v_expected, rel=1e-5)
    assert total.item() == pytest.approx(sum(p.item() for p in parts.values()), rel=1e-6)


def test_consistency_three_identical_iterations_is_three_times_one():
    teacher, student = make_pair()
    x = student.alignment[0].logits
    lengths = student.vision.lengths
    three = RecognizerOutput(student.vision, [head(x, lengths)] * 3, [head(x, lengths)] * 3)
    one = RecognizerOutput(student.vision, [head(x, lengths)], [head(x, lengths)])
    _, p3 = consistency_loss(teacher, three)
    _, p1 = consistency_loss(teacher, one)
    _, p3_mean = consistency_loss(teacher, three, iteration_reduction="mean")
    assert p3["alignment_to_alignment"].item() == pytest.approx(3 * p1["alignment_to_alignment"].item(), rel=1e-6)
    assert p3_mean["alignment_to_alignment"].item() == pytest.approx(p1["alignment_to_alignment"].item(), rel=1e-6)
    assert p3["vision_to_vision"].item() == pytest.approx(p1["vision_to_vision"].item(), rel=1e-6)


def test_consistency_uses_teacher_last_iteration():
    teacher, student = make_pair()
    _, before = consistency_loss(teacher, student)
    teacher.alignment[0].logits.mul_(-1)  # earlier iterations do not matter
    _, same = consistency_loss(teacher, student)
    teacher.alignment[-1].logits.mul_(-1)
    _, after = consistency_loss(teacher, student)
    key = "alignment_to_alignment"
    assert same[key].item() == pytest.approx(before[key].item(), rel=1e-7)
    assert after[key].item() != pytest.approx(before[key].item(), rel=1e-3)


def test_consistency_stop_gradient():
    teacher, student = make_pair()
    for h in [teacher.vision, *teacher.language, *teacher.alignment, student.vision, *student.language,
              *student.alignment]:
        h.logits.requires_grad_(True)
    total, _ = consistency_loss(teacher, student, one_hot=False)
    total.backward()
    assert teacher.head("vision").logits.grad is None
    assert student.vision.logits.grad is not None and student.vision.logits.grad.abs().sum() > 0
    student.vision.logits.grad = None
    total, _ = consistency_loss(teacher, student, one_hot=False, stop_gradient=False)
    total.backward()
    assert teacher.vision.logits.grad is not None and teacher.vision.logits.grad.abs().sum() > 0


def test_consistency_threshold_mask_reduces_loss_and_keeps_divisor():
    teacher, student = make_pair()
    # make teacher vision slot 0 of sample 0 confident, everything else uncertain
    teacher.vision.logits.zero_()
    teacher.vision.logits[0, 0, 2] = 20.0
    _, full = consistency_loss(teacher, student, pairing="vision", student_heads="vision")
    _, masked = consistency_loss(teacher, student, pairing="vision", student_heads="vision", threshold=0.9)
    key = "vision_to_vision"
    assert masked[key].item() < full[key].item()
    kept = int(teacher.vision.lengths.sum())
    expected = -torch.log_softmax(student.vision.logits[0, 0], -1)[2].item() / kept
    assert masked[key].item() == pytest.approx(expected, rel=1e-5)
    target, lengths, mask = teacher_targets(teacher.vision, threshold=0.9)
    assert mask.sum().item() == 1 and target[0, 0].item() == 2 and lengths.tolist() == [3, 5]


def test_word_threshold_keeps_only_words_confident_in_every_slot():
    teacher, _ = make_pair()  # lengths [3, 5] (stop slot included)
    teacher.vision.logits.zero_()
    teacher.vision.logits[0, :3, 2] = 20.0   # word 0: its three slots confident, slots past its end not
    teacher.vision.logits[1, :4, 2] = 20.0   # word 1: four of its five slots confident
    _, _, slot_mask = teacher_targets(teacher.vision, threshold=0.9)
    _, _, word_mask = teacher_targets(teacher.vision, threshold=0.9, threshold_scope="word")
    assert slot_mask[1, :4].sum().item() == 4
    assert word_mask[0].all() and not word_mask[1].any()
    with pytest.raises(ValueError, match="threshold_scope"):
        teacher_targets(teacher.vision, threshold=0.9, threshold_scope="sentence")


def test_consistency_pairing_selects_heads():
    teacher, student = make_pair()
    _, parts = consistency_loss(teacher, student, pairing="vision", student_heads="alignment")
    assert list(parts) == ["vision_to_alignment"]
    labels = teacher.vision.logits.argmax(-1)
    expected = sum(manual_ce(o.logits, labels, teacher.vision.lengths) for o in student.alignment)
    assert parts["vision_to_alignment"].item() == pytest.approx(expected, rel=1e-5)

    _, parts_all = consistency_loss(teacher, student, pairing="language", student_heads="all")
    assert set(parts_all) == {"language_to_alignment", "language_to_language", "language_to_vision"}
    labels = teacher.head("language").logits.argmax(-1)
    lengths = teacher.head("language").lengths
    # official: teacher -> 'all' concatenates the student's iterations, i.e. averages them
    expected = sum(manual_ce(o.logits, labels, lengths) for o in student.alignment) / 3
    assert parts_all["language_to_alignment"].item() == pytest.approx(expected, rel=1e-5)
    _, parts_sum = consistency_loss(teacher, student, pairing="language", iteration_reduction="sum")
    assert parts_sum["language_to_alignment"].item() == pytest.approx(3 * expected, rel=1e-5)
    with pytest.raises(ValueError):
        consistency_loss(teacher, student, pairing="fusion")
    with pytest.raises(ValueError):
        consistency_loss(teacher, student, pairing="vision", student_heads="decoder")


def test_consistency_teacher_length_masks_student():
    teacher, student = make_pair(teacher_lengths=(2, 3))
    _, base = consistency_loss(teacher, student, pairing="vision", student_heads="vision")
    student.vision.logits[0, 2:] += 50 * torch.randn(3, 6)
    student.vision.logits[1, 3:] -= 50
    _, same = consistency_loss(teacher, student, pairing="vision", student_heads="vision")
    assert same["vision_to_vision"].item() == pytest.approx(base["vision_to_vision"].item(), rel=1e-6)
    teacher.vision.lengths = torch.tensor([5, 5])
    _, longer = consistency_loss(teacher, student, pairing="vision", student_heads="vision")
    assert longer["vision_to_vision"].item() != pytest.approx(base["vision_to_vision"].item(), rel=1e-3)


def test_consistency_kl_soft_equals_ce_minus_teacher_entropy():
    teacher, student = make_pair()
    _, ce = consistency_loss(teacher, student, pairing="vision", student_heads="vision", one_hot=False)
    _, kl = consistency_loss(teacher, student, pairing="vision", student_heads="vision", one_hot=False, kl=True)
    p = torch.softmax(teacher.vision.logits, -1)
    ent = -(p * p.log()).sum(-1)
    keep = kept_slots(teacher.vision.lengths, 5)
    expected = ce["vision_to_vision"] - ent[keep].sum() / keep.sum()
    assert kl["vision_to_vision"].item() == pytest.approx(expected.item(), rel=1e-5)


# --------------------------------------------------------------------------- objectives, gradients

def test_losses_backpropagate_and_gradcheck():
    g = torch.Generator().manual_seed(50)
    logits = torch.randn(2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    ids = torch.randint(0, 4, (2, 3), generator=g)
    lengths = torch.tensor([2, 3])
    assert torch.autograd.gradcheck(lambda x: sequence_ce(x, ids, lengths), (logits,))
    soft = torch.softmax(torch.randn(2, 3, 4, generator=g, dtype=torch.float64), -1)
    assert torch.autograd.gradcheck(lambda x: sequence_ce(x, soft, lengths, kl=True, label_smoothing=0.1),
                                    (logits,))


def test_pretrain_vision_objective_parts():
    g = torch.Generator().manual_seed(51)
    ids = torch.randint(0, 5, (3, 4), generator=g)
    lengths = torch.tensor([2, 0, 4])
    v0 = head(torch.randn(3, 4, 5, generator=g, requires_grad=True), lengths)
    v1 = head(torch.randn(3, 4, 5, generator=g, requires_grad=True), lengths)
    i0 = torch.randn(3, 5, 8, generator=g, requires_grad=True)
    i1 = torch.randn(3, 5, 8, generator=g, requires_grad=True)
    total, parts = pretrain_vision_objective(v0, v1, i0, i1, ids, lengths)
    ce0, ce1 = manual_ce(v0.logits.detach(), ids, lengths), manual_ce(v1.logits.detach(), ids, lengths)
    assert parts["ce"].item() == pytest.approx((ce0 + ce1) / 2, rel=1e-5)
    assert total.item() == pytest.approx(ce0 + ce1 + parts["seqclr"].item(), rel=1e-5)
    total.backward()
    assert i0.grad.abs().sum() > 0 and v1.logits.grad.abs().sum() > 0
    only_ce, parts_ce = pretrain_vision_objective(v0, v1, i0, i1, ids, lengths, contrastive_weight=0)
    assert "seqclr" not in parts_ce and only_ce.item() == pytest.approx(ce0 + ce1, rel=1e-5)


def test_finetune_objective_combines_supervised_and_consistency():
    teacher, student = make_pair()
    g = torch.Generator().manual_seed(52)
    ids = torch.randint(0, 6, (2, 5), generator=g)
    lengths = torch.tensor([0, 4])
    total, parts = finetune_objective(teacher, student, ids, lengths, consistency_weight=0.5)
    sup_t, _ = supervised_loss(teacher, ids, lengths)
    sup_s, _ = supervised_loss(student, ids, lengths)
    cons, _ = consistency_loss(teacher, student)
    assert total.item() == pytest.approx((sup_t + sup_s + 0.5 * cons).item(), rel=1e-6)
    assert {"sup_teacher_alignment", "sup_student_vision", "cons_vision_to_vision", "consistency"} <= set(parts)
    mean_teacher, parts = finetune_objective(teacher, student, ids, lengths, consistency_weight=0.5, supervise_teacher=False)
    assert mean_teacher.item() == pytest.approx((sup_s + 0.5 * cons).item(), rel=1e-6)
    assert "sup_teacher" not in parts and "sup_student" in parts
