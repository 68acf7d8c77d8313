"""Learning-rate schedules (train/schedule.py): warm-up, piecewise (official), cosine, constant, Adam groups."""

from __future__ import annotations

import math

import pytest
import torch

from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.train.recipe import OptimConfig
from semimtr_cli.train.schedule import lr_multiplier, make_optimizer, make_scheduler, phase_boundaries


def factors(cfg: OptimConfig, steps, boundaries=(), total_steps=100):
    return [lr_multiplier(s, cfg, list(boundaries), total_steps) for s in steps]


# --------------------------------------------------------------------------- phases (official multistep)

def test_phase_boundaries_are_cumulative_epochs_in_steps():
    assert phase_boundaries([17, 5, 3], 100) == [1700, 2200]  # the last phase runs to the end
    assert phase_boundaries([1.26, 0.5, 2], 10) == [13, 18]  # fractional epochs round to the nearest step
    assert phase_boundaries([4], 10) == []


@pytest.mark.parametrize("periods", [[3, 0, 1], [2, -1]])
def test_phase_boundaries_reject_non_positive_periods(periods):
    with pytest.raises(SemimtrError, match="optim.periods must be positive"):
        phase_boundaries(periods, 10)


def test_multistep_multiplies_by_gamma_at_each_boundary():
    cfg = OptimConfig(schedule="multistep", gamma=0.1)
    got = factors(cfg, [0, 1699, 1700, 2199, 2200, 10**6], boundaries=[1700, 2200], total_steps=3000)
    assert got == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01, 0.01])
    assert factors(OptimConfig(schedule="multistep", gamma=0.5), [0, 50, 99]) == [1.0, 1.0, 1.0]  # no periods


def test_multistep_warmup_multiplies_the_phase_factor():
    cfg = OptimConfig(schedule="multistep", gamma=0.5, warmup_steps=10)
    assert factors(cfg, [0, 4, 9, 10, 30], boundaries=[5]) == pytest.approx([0.1, 0.5, 0.5, 0.5, 0.5])


# --------------------------------------------------------------------------- warm-up, constant, cosine

def test_linear_warmup_reaches_the_base_lr_on_its_last_step():
    cfg = OptimConfig(schedule="constant", warmup_steps=4)
    assert factors(cfg, [0, 1, 2, 3, 4, 1000]) == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    assert factors(OptimConfig(schedule="constant", warmup_steps=1), [0, 1]) == [1.0, 1.0]
    assert factors(OptimConfig(schedule="constant"), [0, 10**6]) == [1.0, 1.0]  # no warm-up: never 0 at step 0


def test_cosine_values_after_warmup():
    cfg = OptimConfig(schedule="cosine", warmup_steps=10, min_lr_ratio=0.1)
    steps = [0, 9, 10, 35, 60, 85, 110, 500]
    half = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.25))
    expected = [0.1, 1.0, 1.0, half, 0.55, 0.1 + 0.9 - (half - 0.1), 0.1, 0.1]
    assert factors(cfg, steps, total_steps=110) == pytest.approx(expected)


def test_cosine_decays_monotonically_to_min_lr_ratio():
    for ratio in (0.0, 0.05, 0.5):
        cfg = OptimConfig(schedule="cosine", min_lr_ratio=ratio)
        got = factors(cfg, range(0, 201), total_steps=200)
        assert got[0] == pytest.approx(1.0) and got[100] == pytest.approx((1 + ratio) / 2)
        assert got[-1] == pytest.approx(ratio) and min(got) == pytest.approx(ratio)
        assert all(a >= b for a, b in zip(got, got[1:]))


@pytest.mark.parametrize("total", [0, 5, 10])
def test_cosine_with_no_steps_after_warmup_ends_at_the_floor(total):
    cfg = OptimConfig(schedule="cosine", warmup_steps=10, min_lr_ratio=0.2)
    got = factors(cfg, [0, 9, 10, 11, 50], total_steps=total)
    assert all(math.isfinite(x) for x in got)
    assert got[0] == pytest.approx(0.1) and got[1] == pytest.approx(1.0)  # the warm-up still runs
    assert got[3:] == pytest.approx([0.2, 0.2])


# --------------------------------------------------------------------------- the torch objects

def _model():
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))


def test_scheduler_sets_the_optimizer_lr_per_step_and_resumes():
    cfg = OptimConfig(lr=0.01, schedule="cosine", warmup_steps=5, min_lr_ratio=0.1)
    opt = make_optimizer(_model(), cfg)
    sched = make_scheduler(opt, cfg, steps_per_epoch=10, total_steps=50)
    seen = []
    for _ in range(20):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.01 * lr_multiplier(s, cfg, [], 50) for s in range(20)])
    assert all(g["lr"] == opt.param_groups[0]["lr"] for g in opt.param_groups)
    # resume as the trainer does it: build both, then load the optimizer (its lr) and the scheduler
    # (building a LambdaLR sets the lr of step 0, so the optimizer state must come after it)
    opt2 = make_optimizer(_model(), cfg)
    sched2 = make_scheduler(opt2, cfg, steps_per_epoch=10, total_steps=50)
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(sched.state_dict())
    for _ in range(5):
        assert opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])
        for o, s in ((opt, sched), (opt2, sched2)):
            o.step()
            s.step()
    assert sched2.last_epoch == sched.last_epoch == 25


def test_scheduler_builds_phase_boundaries_from_epochs():
    cfg = OptimConfig(lr=1.0, schedule="multistep", periods=[1, 2], gamma=0.1)
    opt = make_optimizer(_model(), cfg)
    sched = make_scheduler(opt, cfg, steps_per_epoch=3, total_steps=20)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1.0, 1.0, 1.0, 0.1, 0.1, 0.1])
    with pytest.raises(SemimtrError):
        make_scheduler(opt, OptimConfig(schedule="multistep", periods=[1, 0]), steps_per_epoch=3, total_steps=20)


def test_optimizer_exempts_norm_weights_and_biases_from_decay():
    model = _model()
    model[2].weight.requires_grad_(False)  # frozen parameters are not optimised at all
    opt = make_optimizer(model, OptimConfig(lr=0.1, weight_decay=0.01, betas=(0.8, 0.9), eps=1e-6))
    decay, no_decay = opt.param_groups
    assert [id(p) for p in decay["params"]] == [id(model[0].weight)]
    assert {id(p) for p in no_decay["params"]} == {id(model[0].bias), id(model[1].weight), id(model[1].bias),
                                                   id(model[2].bias)}
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.01, 0.0)
    assert decay["betas"] == (0.8, 0.9) and decay["eps"] == 1e-6 and decay["lr"] == 0.1
    one = make_optimizer(_model(), OptimConfig(weight_decay=0.01, decay_norm_and_bias=True)).param_groups
    assert len(one) == 1 and len(one[0]["params"]) == 6 and one[0]["weight_decay"] == 0.01
