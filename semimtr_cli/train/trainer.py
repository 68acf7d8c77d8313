"""The training loop shared by the three stages: :func:`train` reads on one screen; each step it
takes (set-up, resume, forward/backward, optimizer step, logging, validation, saving, summary)
is a named method of :class:`Run`.

Run folder layout (``out``)::

    config.yaml     the resolved recipe (every default filled in)
    synth_sources.json  each streamed synthetic source: settings, font files (names + hashes)
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
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import DataLoader

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.config.loader import save_config, to_dict
from semimtr_cli.core.errors import SemimtrError, option
from semimtr_cli.core.fsutil import atomic_write_json
from semimtr_cli.core.runtime import choose_precision, cpu_info, pick_device
from semimtr_cli.data.datasets import collate
from semimtr_cli.data.synth.stream import source_manifest
from semimtr_cli.model.checkpoint import load_checkpoint, make_checkpoint, write_checkpoint
from semimtr_cli.train import distributed as ddp
from semimtr_cli.train.recipe import Recipe
from semimtr_cli.train.schedule import make_optimizer, make_scheduler
from semimtr_cli.train.stage_base import StageContext
from semimtr_cli.train.stages import STAGE_CLASSES
from semimtr_cli.train.state import LoopState, MetricsLog, capture_rng, restore_rng, seed_all

Progress = Callable[[int, int, dict], None]


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
    if recipe.train.threads:
        torch.set_num_threads(recipe.train.threads)
    device = pick_device(recipe.train.device, int(os.environ.get("LOCAL_RANK", "0")))
    info = ddp.init_distributed(device)
    try:
        run = Run(recipe, out, resume, log if info.is_main else (lambda m: None), device, info)
        run.train_loop(progress if info.is_main else None)
        return run.finish()
    finally:
        ddp.shutdown(info)


def write_synth_manifest(recipe: Recipe, charset: Charset, path: Path) -> None:
    """The streamed synthetic sources of ``recipe`` with the exact font files they draw with (none: no file)."""
    d = recipe.data
    sources = [*d.labeled_synth, *d.unlabeled_synth, *d.valid_synth]
    if sources:
        atomic_write_json(path, [source_manifest(s, charset) for s in sources])


def prepare_run_dir(out: Path, resume: bool, info: ddp.DistInfo) -> None:
    """Refuse to start over an existing run (or to resume a folder without last.pt)."""
    last = out / "last.pt"
    if resume and not last.is_file():
        raise SemimtrError(f"{out}: no last.pt in that folder", param="resume")
    if not resume and out.exists() and (last.is_file() or (out / "metrics.jsonl").exists()):
        raise SemimtrError(f"run folder {out} already holds a run; use {option('resume')} {out} to continue it "
                           f"or choose another {option('out')}")
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)


class Run:
    """One stage's training run: set up in ``__init__``, stepped by :meth:`train_loop`.

    The order of set-up matters for exact resume and for equal initial weights on every rank:
    seed, stage, model, data, optimizer, scheduler, then the checkpoint (resume) or the per-rank
    dropout seed (fresh run), then the wrappers and the loader.
    """

    def __init__(self, recipe: Recipe, out: Path, resume: bool, log, device: torch.device, info: ddp.DistInfo):
        self.recipe, self.cfg, self.out, self.log, self.device, self.info = recipe, recipe.train, out, log, device, info
        prepare_run_dir(out, resume, info)
        self.precision = choose_precision(self.cfg.precision, device)
        self.charset = Charset.from_spec(recipe.data.charset, max_length=recipe.model.max_length,
                                         unknown=recipe.data.charset_unknown)
        log(self.charset.describe())
        seed_all(self.cfg.seed)
        self.stage = STAGE_CLASSES[recipe.stage](StageContext(recipe, self.charset, info, device, log))
        self.stage.check_data()
        self.model = self.stage.build_model().to(device)
        self.train_set, self.sampler = self.stage.train_dataset()
        self._plan_steps()
        self.optimizer = make_optimizer(self.model, recipe.optim)
        self.scheduler = make_scheduler(self.optimizer, recipe.optim, self.steps_per_epoch, self.total_steps)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision.needs_scaler else None
        self.state = LoopState()
        if resume:
            self._resume()
        else:
            # distinct dropout streams per rank; identical initial weights came from the shared seed
            torch.manual_seed(self.cfg.seed + 1000 * info.rank + 1)
            if info.is_main:
                save_config(recipe, out / "config.yaml")
                write_synth_manifest(recipe, self.charset, out / "synth_sources.json")
        self.wrapped = self._wrap()
        self.loader = DataLoader(
            self.train_set, batch_size=self.micro, sampler=self.sampler, collate_fn=collate, drop_last=True,
            num_workers=recipe.data.num_workers, pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(self.cfg.seed),  # keeps the global RNG untouched
        )
        self.metrics = MetricsLog(out / "metrics.jsonl", info.is_main, truncate_after=self.state.step if resume else None)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.t_resumed = time.time()
        self.window = self._new_window()
        self.last_values: dict = {}
        self.last_parts: dict = {}
        self.micro_in_step = 0

    # ---------------------------------------------------------------- set-up steps
    def _plan_steps(self) -> None:
        cfg, world = self.cfg, self.info.world_size
        if cfg.batch_size % (world * cfg.grad_accum):
            raise SemimtrError(f"train.batch_size {cfg.batch_size} must be divisible by world size {world} x "
                               f"grad_accum {cfg.grad_accum}")
        self.micro = cfg.batch_size // (world * cfg.grad_accum)
        self.steps_per_epoch = len(self.sampler) // self.micro // cfg.grad_accum
        if self.steps_per_epoch == 0:
            raise SemimtrError(f"one epoch ({len(self.sampler) * world} samples) is smaller than one batch "
                               f"({cfg.batch_size}); lower train.batch_size")
        self.total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * self.steps_per_epoch))
        self.log(f"{self.recipe.stage}: {self.total_steps} steps of batch {cfg.batch_size} ({self.steps_per_epoch} "
                 f"steps per epoch), device {self.device}, world size {world}")
        self.log(f"precision {self.precision.describe()}")

    def _resume(self) -> None:
        """Model, optimizer, scheduler, scaler, loop position, stage state and RNGs from last.pt."""
        path = self.out / "last.pt"
        ckpt = load_checkpoint(path)
        for key in ("optimizer", "scheduler", "loop_state", "rng"):
            if key not in ckpt:
                raise SemimtrError(f"{path}: has no {key!r} entry, so it cannot be resumed (a best.pt or an export?)")
        self.model.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.state = LoopState(**ckpt["loop_state"])
        self.stage.load_extra_state(ckpt)
        restore_rng(ckpt["rng"], self.info)
        self.log(f"resumed from {path} at step {self.state.step}")

    def _wrap(self) -> torch.nn.Module:
        """The stage's training module, then SyncBN / DDP / torch.compile as the recipe says."""
        wrapped = self.stage.wrap(self.model)
        if self.cfg.sync_bn:
            if self.device.type != "cuda":
                raise SemimtrError("train.sync_bn needs CUDA (PyTorch's SyncBatchNorm has no CPU kernel)")
            wrapped = torch.nn.SyncBatchNorm.convert_sync_batchnorm(wrapped)
        if self.info.enabled:
            wrapped = torch.nn.parallel.DistributedDataParallel(
                wrapped, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if self.cfg.compile:
            wrapped = torch.compile(wrapped)
        return wrapped

    # ---------------------------------------------------------------- the loop
    def train_loop(self, progress: Progress | None) -> None:
        """Steps until ``total_steps``; Ctrl-C saves last.pt at the last completed step."""
        state = self.state
        self.wrapped.train()
        try:
            while state.step < self.total_steps:
                self.sampler.set_epoch(state.epoch, start=state.batches_in_epoch * self.micro)
                for batch in self.loader:
                    if not self.accumulate(batch):
                        continue
                    self.optimizer_step()
                    self.after_step(progress)
                    if state.step >= self.total_steps:
                        break
                else:
                    state.epoch += 1
                    state.batches_in_epoch = 0
        except KeyboardInterrupt:
            self.optimizer.zero_grad(set_to_none=True)  # discard a half-accumulated step
            self.save_last()
            self.log(f"interrupted: saved {self.out / 'last.pt'} at step {state.step}; continue with --resume {self.out}")
            raise

    def accumulate(self, batch: dict) -> bool:
        """Forward + backward of one micro-batch; True once a whole step's gradients are in."""
        sync = contextlib.nullcontext()
        if self.info.enabled and self.micro_in_step + 1 < self.cfg.grad_accum:
            sync = self.wrapped.no_sync()
        with sync:
            with self.precision.autocast():
                loss, parts = self.stage.loss(self.wrapped, batch)
            scaled = loss / self.cfg.grad_accum
            (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
        if not torch.isfinite(loss):
            raise SemimtrError(f"loss became {float(loss)} at step {self.state.step + 1}; lower optim.lr or use fp32")
        self.micro_in_step += 1
        self.window["loss"] += loss.detach()
        self.window["n"] += 1
        self.window["images"] += len(batch["label"]) * self.info.world_size
        self.last_parts = parts
        if "substituted" in batch:
            self.state.substituted += int(batch["substituted"].sum())
        if self.micro_in_step < self.cfg.grad_accum:
            return False
        self.micro_in_step = 0
        return True

    def optimizer_step(self) -> None:
        """Unscale, clip, step (with the GradScaler in fp16), zero, schedule, stage hook (EMA)."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.recipe.optim.clip_grad:
            torch.nn.utils.clip_grad_norm_(self.params, self.recipe.optim.clip_grad)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.stage.after_step(self.wrapped)
        self.state.step += 1
        self.state.batches_in_epoch += self.cfg.grad_accum
        self.state.images_seen += self.cfg.batch_size

    def after_step(self, progress: Progress | None) -> None:
        """Log, validate and save at their intervals (the final step's are done by :meth:`finish`)."""
        step, cfg = self.state.step, self.cfg
        if step % max(cfg.log_every, 1) == 0 or step == self.total_steps:
            event = self.log_train()
            if progress:
                progress(step, self.total_steps, event)
        if cfg.eval_every and step % cfg.eval_every == 0 and step < self.total_steps:
            self.last_values = self.validate()
        if cfg.save_every and step % cfg.save_every == 0 and step < self.total_steps:
            self.save_last()

    # ---------------------------------------------------------------- logging, validation, saving
    @staticmethod
    def _new_window() -> dict:
        return {"loss": 0.0, "n": 0, "images": 0, "t": time.time()}

    def run_seconds(self) -> float:
        """Wall seconds of training so far, across resumes."""
        return self.state.seconds + time.time() - self.t_resumed

    def log_train(self) -> dict:
        """Write the train event of the steps since the last one (mean loss, lr, images/s)."""
        w, state = self.window, self.state
        event = {"step": state.step, "epoch": state.epoch, "event": "train", "seconds": round(self.run_seconds(), 2),
                 "loss": float(w["loss"]) / max(w["n"], 1), "lr": self.scheduler.get_last_lr()[0],
                 "images_per_s": w["images"] / max(time.time() - w["t"], 1e-9), "substituted": state.substituted,
                 **{k: float(v) for k, v in self.last_parts.items()}}
        self.metrics.write(event)
        self.window = self._new_window()
        return event

    def validate(self) -> dict:
        """Validate on the main rank; log; write best.pt when the selection metric improves."""
        values = self.stage.validate(self.model, self.precision.autocast) if self.info.is_main else {}
        ddp.barrier(self.info)
        if values and self.info.is_main:
            state = self.state
            value = values.get(self.stage.selection_key())
            self.metrics.write({"step": state.step, "epoch": state.epoch, "event": "valid",
                                "seconds": round(self.run_seconds(), 2), **values})
            self.log("valid step %d: %s" % (state.step, ", ".join(f"{k} {v:.2f}" for k, v in values.items() if "/" not in k)))
            if value is not None and (state.best_value is None or value > state.best_value):
                state.best_value, state.best_step = value, state.step
                write_checkpoint(self.out / "best.pt", self.checkpoint(False, values, self.stage.selected_model(self.model)))
        return values

    def checkpoint(self, with_training_state: bool, values: dict | None = None,
                   weights: torch.nn.Module | None = None) -> dict:
        """A checkpoint dict; ``weights``: the network saved (default the trained model; best.pt: the selected one)."""
        extra = {"stage": self.recipe.stage, "recipe": to_dict(self.recipe)}
        if with_training_state:
            extra.update(optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                         scaler=self.scaler.state_dict() if self.scaler is not None else {},
                         loop_state=asdict(self.state), rng=capture_rng(self.info), **self.stage.extra_state())
        return make_checkpoint(weights or self.model, self.charset, step=self.state.step, metrics=values or {}, extra=extra)

    def save_last(self) -> None:
        """last.pt with everything a resume needs (collective: every rank takes part in the RNG gather)."""
        self.state.seconds = self.run_seconds()
        self.t_resumed = time.time()
        ckpt = self.checkpoint(True)
        if self.info.is_main:
            write_checkpoint(self.out / "last.pt", ckpt)

    # ---------------------------------------------------------------- the end
    def finish(self) -> dict:
        """Final validation and last.pt, best.pt when validation never ran, summary.json, curves.png."""
        self.last_values = self.validate() or self.last_values
        self.save_last()
        selected = self.stage.selected_model(self.model)
        if self.info.is_main and self.state.best_step is None:
            write_checkpoint(self.out / "best.pt", self.checkpoint(False, self.last_values, selected))
        summary = self.summary(selected)
        self.metrics.close()
        if self.info.is_main:
            atomic_write_json(self.out / "summary.json", summary)
            try:
                from semimtr_cli.train.plots import plot_run

                plot_run(self.out)
            except Exception as exc:  # a plot must never fail a finished run
                self.log(f"could not draw curves.png: {exc}")
        return summary

    def summary(self, selected: torch.nn.Module) -> dict:
        state, wall = self.state, self.run_seconds()  # across resumes, like images_seen
        machine = cpu_info()
        return {
            "stage": self.recipe.stage,
            "steps": state.step,
            "epochs": state.step / self.steps_per_epoch,
            "wall_seconds": wall,
            "images_per_s": state.images_seen / wall if wall > 0 else 0.0,
            "substituted_images": state.substituted,
            "final_loss": self.last_parts and {k: float(v) for k, v in self.last_parts.items()},
            "last_validation": self.last_values,
            "best": {"metric": self.stage.selection_key(),
                     "weights": "EMA teacher" if selected is not self.model else "model",
                     "value": state.best_value, "step": state.best_step,
                     "selected_by": "validation" if state.best_step is not None else "final weights (no validation data)"},
            "device": str(self.device),
            "precision": self.precision.name,
            "precision_reason": self.precision.reason,
            "machine": {"cpu": machine["model"], "cpu_flags": machine["flags"], "threads": torch.get_num_threads()},
            "world_size": self.info.world_size,
            "init": [line for r in self.stage.init_reports for line in r.lines()],
            "checkpoints": {"last": str(self.out / "last.pt"), "best": str(self.out / "best.pt")},
        }
