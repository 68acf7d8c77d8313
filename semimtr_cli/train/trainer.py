"""The training loop shared by the three stages: one readable function, no callbacks maze.

Run folder layout (``out``)::

    config.yaml     the resolved recipe (every default filled in)
    metrics.jsonl   one JSON object per log / validation event
    summary.json    written at the end: steps, time, throughput, best and last metrics
    last.pt         model + optimizer + scheduler + scaler + sampler position + RNG states
    best.pt         model only, best validation metric (final weights if there is no validation)
    curves.png      loss and validation curves

Exact resume: augmentation randomness is keyed by (seed, draw number, sample) rather than by
worker state, the sampler sequence by (seed, epoch), and the checkpoint stores the position in
the epoch and every RNG state, so ``resume=True`` after a kill continues with the same
batches and dropout masks and ends with the same weights as an uninterrupted run (CPU).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..charset import Charset
from ..config import save_config, to_dict
from ..data.datasets import collate
from ..errors import SemimtrError
from ..fsutil import atomic_write_json, atomic_write_text
from ..model.checkpoint import make_checkpoint, write_checkpoint
from ..runtime import choose_precision, cpu_info, pick_device
from . import distributed as ddp
from .recipe import Recipe
from .schedule import make_optimizer, make_scheduler
from .stages import STAGE_CLASSES, StageContext, unwrap

Progress = Callable[[int, int, dict], None]


@dataclass
class LoopState:
    """Where the loop is; saved in last.pt."""

    step: int = 0  # optimizer steps done
    epoch: int = 0
    batches_in_epoch: int = 0  # micro-batches of this epoch consumed by completed steps
    best_value: float | None = None
    best_step: int | None = None
    images_seen: int = 0
    substituted: int = 0  # unreadable/too-small training images replaced by the next good one
    seconds: float = 0.0  # wall seconds of training so far (validation included), across resumes


# ------------------------------------------------------------------------------- helpers
def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng(info: ddp.DistInfo) -> dict:
    """RNG states as tensors/plain data (weights_only-loadable); torch states of every rank."""
    torch_state = torch.get_rng_state()
    if info.enabled:
        states = [torch.empty_like(torch_state) for _ in range(info.world_size)]
        torch.distributed.all_gather(states, torch_state)
    else:
        states = [torch_state]
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    out = {
        "torch": states,
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng(state: dict, info: ddp.DistInfo) -> None:
    torch_states = state["torch"]
    torch.set_rng_state(torch_states[info.rank if len(torch_states) > info.rank else 0])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class MetricsLog:
    """Appends JSON lines to metrics.jsonl (main rank only)."""

    def __init__(self, path: Path, enabled: bool, truncate_after: int | None = None):
        self.path, self.enabled = path, enabled
        if enabled and truncate_after is not None and path.exists():
            # drop events a killed run logged after its last checkpoint: they are redone
            kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= truncate_after]
            atomic_write_text(path, "".join(line + "\n" for line in kept))

    def write(self, event: dict) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")


# ------------------------------------------------------------------------------- the loop
def train(
    recipe: Recipe,
    out: str | Path,
    *,
    resume: bool = False,
    log: Callable[[str], None] = lambda msg: None,
    progress: Progress | None = None,
) -> dict:
    """Run one stage's training as the recipe says; returns the summary dict.

    Raises SemimtrError for bad data, recipes or run folders before any step is taken.
    """
    out = Path(out)
    cfg = recipe.train
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    info = ddp.init_distributed(device)
    try:
        return _train(recipe, out, resume, log if info.is_main else (lambda m: None), progress if info.is_main else None, device, info)
    finally:
        ddp.shutdown(info)


def _prepare_run_dir(out: Path, resume: bool, info: ddp.DistInfo) -> None:
    last = out / "last.pt"
    if resume and not last.is_file():
        raise SemimtrError(f"--resume {out}: no last.pt in that folder")
    if not resume and out.exists() and (last.is_file() or (out / "metrics.jsonl").exists()):
        raise SemimtrError(f"run folder {out} already holds a run; use --resume {out} to continue it or choose another --out")
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)


def _train(recipe: Recipe, out: Path, resume: bool, log, progress, device: torch.device, info: ddp.DistInfo) -> dict:
    cfg = recipe.train
    _prepare_run_dir(out, resume, info)
    precision = choose_precision(cfg.precision, device)
    autocast = precision.autocast
    charset = Charset.from_spec(recipe.data.charset, max_length=recipe.model.max_length, unknown=recipe.data.charset_unknown)
    log(charset.describe())

    seed_all(cfg.seed)
    stage = STAGE_CLASSES[recipe.stage](StageContext(recipe, charset, info, device, log))
    stage.check_data()
    model = stage.build_model().to(device)
    train_set, sampler = stage.train_dataset()

    world = info.world_size
    if cfg.batch_size % (world * cfg.grad_accum):
        raise SemimtrError(f"train.batch_size {cfg.batch_size} must be divisible by world size {world} x grad_accum {cfg.grad_accum}")
    micro = cfg.batch_size // (world * cfg.grad_accum)
    batches_per_epoch = len(sampler) // micro
    steps_per_epoch = batches_per_epoch // cfg.grad_accum
    if steps_per_epoch == 0:
        raise SemimtrError(f"one epoch ({len(sampler) * world} samples) is smaller than one batch ({cfg.batch_size}); lower train.batch_size")
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    log(f"{recipe.stage}: {total_steps} steps of batch {cfg.batch_size} ({steps_per_epoch} steps per epoch), "
        f"device {device}, world size {world}")
    log(f"precision {precision.describe()}")

    optimizer = make_optimizer(model, recipe.optim)
    scheduler = make_scheduler(optimizer, recipe.optim, steps_per_epoch, total_steps)
    scaler = torch.amp.GradScaler("cuda") if precision.needs_scaler else None
    state = LoopState()
    if resume:
        ckpt = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        state = LoopState(**ckpt["loop_state"])
        stage.load_extra_state(ckpt)
        restore_rng(ckpt["rng"], info)
        log(f"resumed from {out / 'last.pt'} at step {state.step}")
    else:
        # distinct dropout streams per rank; identical initial weights came from the shared seed
        torch.manual_seed(cfg.seed + 1000 * info.rank + 1)
        if info.is_main:
            save_config(recipe, out / "config.yaml")

    wrapped = stage.wrap(model)
    if cfg.sync_bn:
        if device.type != "cuda":
            raise SemimtrError("train.sync_bn needs CUDA (PyTorch's SyncBatchNorm has no CPU kernel)")
        wrapped = torch.nn.SyncBatchNorm.convert_sync_batchnorm(wrapped)
    if info.enabled:
        wrapped = torch.nn.parallel.DistributedDataParallel(
            wrapped, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        wrapped = torch.compile(wrapped)

    loader = DataLoader(
        train_set, batch_size=micro, sampler=sampler, collate_fn=collate, drop_last=True,
        num_workers=recipe.data.num_workers, pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(cfg.seed),  # keeps the global RNG untouched
    )
    metrics = MetricsLog(out / "metrics.jsonl", info.is_main, truncate_after=state.step if resume else None)
    params = [p for p in model.parameters() if p.requires_grad]

    def checkpoint_dict(with_training_state: bool, values: dict | None = None, weights: torch.nn.Module | None = None) -> dict:
        """``weights``: the network saved (default the trained model; best.pt: the selected one)."""
        extra = {"stage": recipe.stage, "recipe": to_dict(recipe)}
        if with_training_state:
            extra.update(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                         scaler=scaler.state_dict() if scaler is not None else {},
                         loop_state=asdict(state), rng=capture_rng(info), **stage.extra_state())
        return make_checkpoint(weights or model, charset, step=state.step, metrics=values or {}, extra=extra)

    def run_seconds() -> float:
        return state.seconds + time.time() - t_resumed

    def save_last() -> None:
        state.seconds = run_seconds()
        nonlocal t_resumed
        t_resumed = time.time()
        ckpt = checkpoint_dict(True)  # collective (RNG gather): every rank takes part
        if info.is_main:
            write_checkpoint(out / "last.pt", ckpt)

    def run_validation() -> dict:
        values = stage.validate(model, autocast) if info.is_main else {}
        ddp.barrier(info)
        if values and info.is_main:
            value = values.get(stage.selection_key())
            metrics.write({"step": state.step, "epoch": state.epoch, "event": "valid", "seconds": round(run_seconds(), 2), **values})
            log("valid step %d: %s" % (state.step, ", ".join(f"{k} {v:.2f}" for k, v in values.items() if "/" not in k)))
            if value is not None and (state.best_value is None or value > state.best_value):
                state.best_value, state.best_step = value, state.step
                write_checkpoint(out / "best.pt", checkpoint_dict(False, values, stage.selected_model(model)))
        return values

    t_start = t_resumed = time.time()
    window = {"loss": 0.0, "n": 0, "images": 0, "t": time.time()}
    last_values: dict = {}
    last_parts: dict = {}
    micro_in_step = 0
    wrapped.train()
    try:
        while state.step < total_steps:
            sampler.set_epoch(state.epoch, start=state.batches_in_epoch * micro)
            for batch in loader:
                sync = contextlib.nullcontext()
                if info.enabled and micro_in_step + 1 < cfg.grad_accum:
                    sync = wrapped.no_sync()
                with sync:
                    with autocast():
                        loss, parts = stage.loss(wrapped, batch)
                    scaled = loss / cfg.grad_accum
                    (scaler.scale(scaled) if scaler is not None else scaled).backward()
                if not torch.isfinite(loss):
                    raise SemimtrError(f"loss became {float(loss)} at step {state.step + 1}; lower optim.lr or use fp32")
                micro_in_step += 1
                n_images = len(batch["label"]) * world
                window["loss"] += loss.detach()
                window["n"] += 1
                window["images"] += n_images
                last_parts = parts
                if "substituted" in batch:
                    state.substituted += int(batch["substituted"].sum())
                if micro_in_step < cfg.grad_accum:
                    continue
                micro_in_step = 0
                if scaler is not None:
                    scaler.unscale_(optimizer)
                if recipe.optim.clip_grad:
                    torch.nn.utils.clip_grad_norm_(params, recipe.optim.clip_grad)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                stage.after_step(wrapped)
                state.step += 1
                state.batches_in_epoch += cfg.grad_accum
                state.images_seen += cfg.batch_size

                if state.step % max(cfg.log_every, 1) == 0 or state.step == total_steps:
                    elapsed = max(time.time() - window["t"], 1e-9)
                    event = {"step": state.step, "epoch": state.epoch, "event": "train", "seconds": round(run_seconds(), 2),
                             "loss": float(window["loss"]) / max(window["n"], 1), "lr": scheduler.get_last_lr()[0],
                             "images_per_s": window["images"] / elapsed, "substituted": state.substituted,
                             **{k: float(v) for k, v in last_parts.items()}}
                    metrics.write(event)
                    if progress:
                        progress(state.step, total_steps, event)
                    window = {"loss": 0.0, "n": 0, "images": 0, "t": time.time()}
                if cfg.eval_every and state.step % cfg.eval_every == 0 and state.step < total_steps:
                    last_values = run_validation()
                if cfg.save_every and state.step % cfg.save_every == 0 and state.step < total_steps:
                    save_last()
                if state.step >= total_steps:
                    break
            else:
                state.epoch += 1
                state.batches_in_epoch = 0
    except KeyboardInterrupt:
        # weights are at the last completed step; discard a half-accumulated step
        optimizer.zero_grad(set_to_none=True)
        save_last()
        log(f"interrupted: saved {out / 'last.pt'} at step {state.step}; continue with --resume {out}")
        raise

    last_values = run_validation() or last_values
    save_last()
    if info.is_main and state.best_step is None:
        write_checkpoint(out / "best.pt", checkpoint_dict(False, last_values, stage.selected_model(model)))
    wall = time.time() - t_start
    summary = {
        "stage": recipe.stage,
        "steps": state.step,
        "epochs": state.step / steps_per_epoch,
        "wall_seconds": wall,
        "images_per_s": state.images_seen / wall if wall > 0 else 0.0,
        "substituted_images": state.substituted,
        "final_loss": last_parts and {k: float(v) for k, v in last_parts.items()},
        "last_validation": last_values,
        "best": {"metric": stage.selection_key(), "weights": "EMA teacher" if stage.selected_model(model) is not model else "model",
                 "value": state.best_value, "step": state.best_step,
                 "selected_by": "validation" if state.best_step is not None else "final weights (no validation data)"},
        "device": str(device),
        "precision": precision.name,
        "precision_reason": precision.reason,
        "machine": {"cpu": cpu_info()["model"], "cpu_flags": cpu_info()["flags"], "threads": torch.get_num_threads()},
        "world_size": world,
        "init": [line for r in stage.init_reports for line in r.lines()],
        "checkpoints": {"last": str(out / "last.pt"), "best": str(out / "best.pt")},
    }
    if info.is_main:
        atomic_write_json(out / "summary.json", summary)
        try:
            from .plots import plot_run

            plot_run(out)
        except Exception as exc:  # a plot must never fail a finished run
            log(f"could not draw curves.png: {exc}")
    return summary
