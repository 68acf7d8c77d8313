"""Run the study's jobs as subprocesses, a few at a time, within a wall-clock deadline.

A :class:`Job` is one training run (plus its evaluation) written as a spec file and executed by
``run_study.py --job SPEC`` in its own process, so threads, memory and a hard stop at the
deadline are per run. :func:`run_jobs` starts jobs in list order as their dependencies finish,
skips one whose estimated time would overrun the deadline (and its dependents), and kills one
still running at the deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


@dataclass
class Job:
    """One run of the study; ``kind`` names its step-time class (see run_study.KINDS)."""

    name: str
    kind: str
    spec: dict
    deps: list[str] = field(default_factory=list)
    steps: int = 0
    status: str = "pending"  # pending, running, done, failed, skipped
    started: float | None = None
    ended: float | None = None
    proc: subprocess.Popen | None = None
    note: str = ""

    @property
    def wall_s(self) -> float | None:
        return round(self.ended - self.started, 1) if self.started and self.ended else None


class Pool:
    """Runs :class:`Job` subprocesses, each logging to ``root/NAME/job.log``, 1 torch thread each."""

    def __init__(self, root: Path, lanes: int, deadline: float, script: Path):
        self.root, self.lanes, self.deadline, self.script = root, lanes, deadline, script

    def result_path(self, job: Job) -> Path:
        return self.root / job.name / "result.json"

    def start(self, job: Job) -> None:
        d = self.root / job.name
        d.mkdir(parents=True, exist_ok=True)
        job.spec["out"] = str(d)
        (d / "spec.json").write_text(json.dumps(job.spec, indent=1))
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        with open(d / "job.log", "w") as logf:
            job.proc = subprocess.Popen([sys.executable, str(self.script), "--job", str(d / "spec.json")],
                                        stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        job.status, job.started = "running", time.time()

    def poll(self, job: Job) -> bool:
        """True when the job has ended (done or failed); kills it past the deadline."""
        rc = job.proc.poll()
        if rc is None:
            if time.time() <= self.deadline:
                return False
            os.killpg(job.proc.pid, signal.SIGKILL)
            job.proc.wait()
            job.status, job.ended, job.note = "failed", time.time(), "killed at the budget deadline"
            return True
        job.ended = time.time()
        if rc == 0 and self.result_path(job).is_file():
            job.status = "done"
        else:
            tail = (self.root / job.name / "job.log").read_text(errors="replace").strip().splitlines()[-3:]
            job.status, job.note = "failed", f"exit {rc}: " + " | ".join(tail)
        return True


def run_jobs(pool: Pool, jobs: list[Job], estimate: Callable[[Job], float],
             on_end: Callable[[Job], None] | None = None) -> None:
    """Start jobs in list order as lanes free up and dependencies finish; returns when all ended.

    ``on_end(job)`` runs when a job ends, before anything else starts (the study re-plans there).
    """
    by_name = {j.name: j for j in jobs}
    running: list[Job] = []
    while True:
        for job in list(running):
            if pool.poll(job):
                running.remove(job)
                log(f"{job.name}: {job.status} in {job.wall_s:.0f} s {job.note}")
                if on_end:
                    on_end(job)
        for job in jobs:
            if job.status == "pending" and any(by_name[d].status in ("failed", "skipped") for d in job.deps):
                job.status, job.note = "skipped", "a run it starts from failed or was skipped"
                log(f"{job.name}: skipped ({job.note})")
        pending = [j for j in jobs if j.status == "pending"]
        if not pending and not running:
            return
        for job in pending:
            if len(running) >= pool.lanes:
                break
            if any(by_name[d].status != "done" for d in job.deps):
                continue
            est = estimate(job)
            if time.time() + est > pool.deadline:
                job.status, job.note = "skipped", f"would not finish within the budget (estimate {est:.0f} s)"
                log(f"{job.name}: skipped ({job.note})")
                continue
            pool.start(job)
            running.append(job)
            log(f"{job.name}: started ({job.steps} steps, estimate {est:.0f} s)")
        time.sleep(0.5)
