"""Train the shipped model with the toolkit's own commands, resumably, and put it in the package.

    bash scripts/install_training_fonts.sh                       # the system fonts the crops use
    python experiments/prepare_real_crops.py --enctc ENCTC --ic15 IC15 --out data/real \
        --labeled 100000 --valid-fraction 0.06 --test-fraction 0.12 --skip ic03
    python experiments/train_default_model.py [--runs runs/default] [--threads 2] [--ship]

Stages (recipes/default/), each one ``semimtr`` command; a stage whose run folder holds
``summary.json`` is done and skipped, one that holds ``last.pt`` is continued with ``--resume``
(so the script can be killed and started again at any point, also in a later session):

1. ``1a-vision``: pretrain-vision from scratch on clean crops (leaves the plateau);
2. ``1b-vision``: pretrain-vision from 1a on scene crops + the real training splits;
3. ``2-lm``: pretrain-lm on wordfreq English (writes ``data/wordfreq_200k.txt`` first);
4. ``3-finetune``: finetune from 1b + 2 with SemiMTR consistency on unlabeled scene crops.

Model selection is on ``data/real/valid`` (6 % of the training splits), never on a benchmark.
``--ship`` copies the finetuned ``best.pt`` into ``semimtr_cli/resources/default_model.pt`` with
its weights in float16 (half the bytes; loaded back into float32 models) and nothing else but
what a checkpoint needs. ``--only STAGE`` runs one stage; ``--set`` overrides go to every stage.

A later session whose machine lost the run folders continues from the committed weights (a
documented warm restart): ``--warm NAME --steps N [--lr LR]`` runs stage 3's recipe again from
``default`` (the packaged model) for N steps into ``RUNS/NAME`` (resumed if its ``last.pt`` is
there), and ``--ship`` then takes ``RUNS/NAME/best.pt``; the model card lists every segment.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from semimtr_cli.core.fsutil import atomic_path  # noqa: E402
from semimtr_cli.model.checkpoint import load_checkpoint, packaged_model_path  # noqa: E402

STAGES = (  # (run folder, command, recipe)
    ("1a-vision", "pretrain-vision", "pretrain_vision_a.yaml"),
    ("1b-vision", "pretrain-vision", "pretrain_vision_b.yaml"),
    ("2-lm", "pretrain-lm", "pretrain_lm.yaml"),
    ("3-finetune", "finetune", "finetune.yaml"),
)
WORDS = ROOT / "data" / "wordfreq_200k.txt"  # the corpus recipes/default/pretrain_lm.yaml names


def write_words() -> None:
    """The language model's corpus: wordfreq's top 200k English words, filtered like the packaged list."""
    if WORDS.is_file():
        return
    from semimtr_cli.data.text.words import wordfreq_words

    WORDS.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(WORDS, suffix=".txt") as tmp:
        tmp.write_text("\n".join(wordfreq_words(top=200_000).words) + "\n", encoding="utf-8")


def run_stage(runs: Path, name: str, command: str, recipe: str, threads: int, sets: list[str],
              extra: tuple[str, ...] | list[str] = ()) -> None:
    out = runs / name
    if (out / "summary.json").is_file():
        print(f"{name}: done ({out / 'summary.json'})", flush=True)
        return
    args = ["semimtr", command]
    if (out / "last.pt").is_file():
        args += ["--resume", str(out)]
    else:
        args += ["--recipe", str(ROOT / "recipes" / "default" / recipe), "--out", str(out), "--threads", str(threads)]
        for s in sets:
            args += ["--set", s]
        args += list(extra)
    print(" ".join(args), flush=True)
    subprocess.run(args, check=True)


def ship(checkpoint: Path, dest: Path) -> dict:
    """``checkpoint`` as the packaged model: float16 weights, the optimizer-free checkpoint keys."""
    ckpt = load_checkpoint(checkpoint)
    ckpt["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    with atomic_path(dest, suffix=".pt") as tmp:
        torch.save(ckpt, tmp)
    return {"from": str(checkpoint), "to": str(dest), "bytes": dest.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, default=Path("runs/default"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=[s[0] for s in STAGES], default=None)
    ap.add_argument("--set", dest="sets", action="append", default=[], help="override for every stage (repeatable)")
    ap.add_argument("--ship", action="store_true", help="copy the finetuned best.pt into the package")
    ap.add_argument("--warm", metavar="NAME", default=None,
                    help="warm restart: stage 3's recipe from the packaged model into RUNS/NAME (instead of the stages)")
    ap.add_argument("--steps", type=int, default=1000, help="steps of the warm restart")
    ap.add_argument("--lr", type=float, default=3e-4, help="peak learning rate of the warm restart")
    args = ap.parse_args(argv)
    if args.warm:
        warm = ["init.vision=null", "init.language=null", f"train.max_steps={args.steps}", f"optim.lr={args.lr}",
                "train.eval_every=250"]
        run_stage(args.runs, args.warm, "finetune", "finetune.yaml", args.threads, [*warm, *args.sets],
                  extra=["--init", "default"])
    else:
        write_words()
        for name, command, recipe in STAGES:
            if args.only in (None, name):
                run_stage(args.runs, name, command, recipe, args.threads, args.sets)
    if args.ship:
        print(ship(args.runs / (args.warm or "3-finetune") / "best.pt", packaged_model_path()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
