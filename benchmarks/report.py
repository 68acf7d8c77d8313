"""Rebuild docs/performance.md (and docs/performance/*.png) from benchmarks/results/*.json.

    python benchmarks/report.py [--results benchmarks/results] [--page docs/performance.md]

Every number on the page is read from the JSON files the benchmark scripts wrote; a missing
file gives a "not measured yet" line with the command that measures it. Nothing is timed here.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = {
    "model_speed": "python benchmarks/model_speed.py --threads 2",
    "train_speed": "python benchmarks/train_speed.py --threads 2",
    "loader_speed": "python benchmarks/loader_speed.py",
    "eval_speed": "python benchmarks/eval_speed.py --threads 2",
    "build_lmdb_speed": "python benchmarks/build_lmdb_speed.py",
    "augment_speed": "python benchmarks/augment_speed.py --crops IC15_TRAIN_CROPS --official-repo CLONE "
                     "--official-python OFFICIAL_PY --rounds 5",
    "memory": "python benchmarks/memory.py",
    "convergence": "python benchmarks/convergence.py --from-runs runs/tiny-vision runs/tiny-lm runs/tiny-finetune",
    "model_speed_onnx": "python benchmarks/model_speed.py --threads 1 --models full --modes eval --batch-sizes 32 "
                        "--variants fp32 onnx onnx-int8 --official-repo CLONE --agreement-images 0 "
                        "--out benchmarks/results/model_speed_onnx.json",
    "model_agreement_trained_tiny": "python benchmarks/model_speed.py --checkpoint CKPT --agreement-images 600 "
                                    "--out benchmarks/results/model_agreement_trained_tiny.json",
    "int8_sensitivity": "python benchmarks/int8_sensitivity.py --checkpoint CKPT [CKPT ...] --lmdb LMDB [LMDB ...]",
    "gpu_check": "python benchmarks/gpu_check.py  (on a GPU machine; --dry-run on a CPU checks the plumbing)",
    "synth_speed": "python benchmarks/synth_speed.py --crops 300 --rounds 3",
    "compare_ocr": "python benchmarks/compare_ocr.py --data data/benchmarks --threads 2",
    "read_speed": "python benchmarks/read_speed.py --data data/benchmarks --limit 1000 --threads 2 "
                  "--checkpoints default default.onnx",
    "adapt_gain": "python benchmarks/adapt_gain.py --seeds 0 1 2 --page docs/results.md",
    "quickstart_runs": "(kept by hand: each README quickstart run in a fresh clone, with its wall time)",
}


def load(results: Path, name: str) -> dict | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def missing(name: str) -> list[str]:
    return [f"*Not measured yet* -- run `{COMMANDS[name]}` then `python benchmarks/report.py`.", ""]


def threads_phrase(threads: int) -> str:
    """``"1 torch thread"`` / ``"2 torch threads"``."""
    return f"{threads} torch thread{'' if threads == 1 else 's'}"


def machine_line(d: dict) -> str:
    m = d.get("machine")
    parts = []
    if isinstance(m, dict):
        if m.get("cpu"):  # runtime.machine_record
            flags = ", ".join(m.get("cpu_flags") or []) or "none of the bf16/AMX/AVX-512 flags"
            parts.append(f"{m['cpu']} ({m.get('cores')} cores; flags {flags})")
        cpus = m.get("cpus", m.get("cpu_count")) or d.get("cpu_count")  # the record's count, else the run's
        if cpus:
            parts.append(f"{cpus} CPUs")
        if m.get("platform"):
            parts.append(m["platform"])
        if m.get("torch"):
            parts.append(f"torch {m['torch']}")
        if m.get("cuda") or m.get("gpu"):
            parts.append(f"GPU {m.get('cuda') or m.get('gpu')}")
        threads = d.get("threads") or m.get("threads") or m.get("torch_threads")  # the run's setting first
        if threads:
            parts.append(threads_phrase(threads))
        if m.get("load_average"):
            parts.append("load average " + " / ".join(f"{x:.1f}" for x in m["load_average"]) + " (1/5/15 min)")
        if m.get("load_average_1min_at_end") is not None:
            parts.append(f"1-minute load average {m['load_average_1min_at_end']:.1f} at the end (other jobs running)")
    else:
        if isinstance(m, str):
            parts.append(m)
        if "cpu_count" in d:
            parts.append(f"{d['cpu_count']} CPUs")
        if d.get("threads"):
            parts.append(threads_phrase(d["threads"]))
    cmd = d.get("command")
    return "Machine: " + (", ".join(map(str, parts)) or "not recorded") + (f". Command: `{cmd}`." if cmd else ".")


def fmt(v, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, (int, float)):
        return f"{v:,.{digits}f}"
    return str(v)


# ------------------------------------------------------------------------------ sections
def model_section(d: dict | None, name: str = "model_speed",
                  title: str = "Model forward / training step (paper-size model)") -> list[str]:
    L = [f"## {title}", ""]
    if d is None:
        return L + missing(name)
    s = d.get("settings", {})
    L += [machine_line(d), "",
          f"Preset `{s.get('preset', '?')}`; statistic: {s.get('statistic', 'images/s')}; train = {s.get('train_step', 'forward + backward')}.",
          "Variants: fp32; bf16 autocast; `-cl` channels-last; `onnx` = the exported fp32 graph on onnxruntime; "
          "`onnx-int8` = its dynamic int8 quantisation (not offered by the tool); older files: int8 = torch.ao "
          "dynamic int8 Linear layers; `official-fp32` = the official modules timed in the same process.", ""]
    rows = d["results"]
    variants = sorted({r["variant"] for r in rows}, key=lambda v: (v.startswith("official"), v))
    keys = sorted({(r["model"], r["mode"], r["batch"]) for r in rows}, key=lambda k: (k[0] != "vision", k[1], k[2]))
    L.append("| model | mode | batch | " + " | ".join(variants) + " |")
    L.append("|---|---|---|" + "---|" * len(variants))
    for model, mode, batch in keys:
        cells = []
        for v in variants:
            hit = [r for r in rows if (r["model"], r["mode"], r["batch"], r["variant"]) == (model, mode, batch, v)]
            cells.append(fmt(hit[0]["images_per_s"]) if hit else "-")
        L.append(f"| {model} | {mode} | {batch} | " + " | ".join(cells) + " |")
    L += ["", "Images/s; higher is better."]
    ratios = {k: v for k, v in d.get("ratio_vs_official_fp32", {}).items() if not k.endswith("/official-fp32")}
    if any(r["variant"] == "official-fp32" for r in rows) and ratios:
        L += ["", "Against official-fp32 timed in the same rounds: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()) + "."]
    agree = d.get("agreement_vs_fp32")
    if agree:
        L += ["", "Same predicted words as fp32: " + "; ".join(
            f"{model}: " + ", ".join(f"{k} {v['fraction'] * 100:.0f}%" for k, v in a.items() if isinstance(v, dict))
            for model, a in agree.items()) + "."]
    L.append("")
    return L


def agreement_section(d: dict | None) -> list[str]:
    L = ["## Reduced precision on a trained model: same words as fp32?", ""]
    if d is None:
        return L + missing("model_agreement_trained_tiny")
    ckpt = d.get("settings", {}).get("checkpoint")
    crops = d.get("settings", {}).get("agreement_images", "PIL default-font strings")
    L += [machine_line(d), "", f"Checkpoint: `{ckpt}`; crops: {crops}. Command: `{d.get('command', '')}`.", "",
          "| model | variant | same words as fp32 | images | images/s (batch 32, eval) |", "|---|---|---|---|---|"]
    speed = {(r["model"], r["variant"]): r["images_per_s"] for r in d.get("results", [])}
    for model, a in d.get("agreement_vs_fp32", {}).items():
        for variant, v in a.items():
            if isinstance(v, dict):
                L.append(f"| {model} | {variant} | {v['fraction'] * 100:.1f}% | {v['images']} | {fmt(speed.get((model, variant)))} |")
        if "fp32_distinct_words" in a:
            L.append(f"| {model} | (fp32 distinct predicted words: {a['fp32_distinct_words']}) | | | {fmt(speed.get((model, 'fp32')))} |")
    L.append("")
    return L


def int8_section(d: dict | None) -> list[str]:
    L = ["## int8 on trained models: which layers keep the words?", ""]
    if d is None:
        return L + missing("int8_sensitivity")
    L += [machine_line(d), "", f"{d.get('quantisation', '')}; head: {d.get('head', '')}.", ""]
    first = (d.get("results") or [{}])[0].get("groups", {})
    noise = [k for k in first if k.startswith("fp32, input")]
    if noise:
        cols = ["all"] + [k for k in first if k.startswith("all, ")] + ["language+alignment"] + noise
        L += ["Same words as the fp32 graph: int8 (every weight MatMul, under each weight scheme; the language and "
              "alignment MatMuls only) against the fp32 graph's own stability under input noise at the scale of the "
              "crop's own 8-bit rounding (uniform, +-0.5 and +-1 grey level of 0..255):", "",
              "| checkpoint | crops | " + " | ".join(c if c.startswith("fp32") else f"int8 {c}" for c in cols) + " |",
              "|---|---|" + "---|" * len(cols)]
        for r in d["results"]:
            g = r["groups"]
            L.append(f"| `{r['checkpoint']}` | {r['images']} of `{r['lmdb']}` | "
                     + " | ".join(f"{g[c]['fraction'] * 100:.1f}%" if c in g else "-" for c in cols) + " |")
        L += ["", "Per group of quantised MatMuls:", ""]
    L += ["| checkpoint | crops | quantised | weight MatMuls | same words as fp32 |", "|---|---|---|---|---|"]
    for r in d.get("results", []):
        for name, g in r["groups"].items():
            if not name.startswith(("fp32, input", "all, ")):
                L.append(f"| `{r['checkpoint']}` | {r['images']} of `{r['lmdb']}` | {name} | {g['nodes']} | "
                         f"{g['fraction'] * 100:.1f}% |")
    L += ["", "The speed of the int8 graph is model_speed's `onnx-int8` row above; the tool ships no int8 path.", ""]
    return L


def train_section(d: dict | None) -> list[str]:
    L = ["## Training throughput per stage", ""]
    if d is None:
        return L + missing("train_speed")
    L += [machine_line(d) + f" Loader workers: {d.get('loader_workers')}.", "",
          "| stage | model | batch | images/s | s/step | precision | device |", "|---|---|---|---|---|---|---|"]
    for r in d["results"]:
        L.append(f"| {r['stage']} | {r['size']} | {r['batch_size']} | {fmt(r.get('images_per_s'))} | "
                 f"{fmt(r.get('seconds_per_step'), 3)} | {r.get('precision', '-')} | {r.get('device', '-')} |")
    L += ["", "Stages 1 and 3 read two views of every crop (a crop counts once); stage 2 counts words.", ""]
    return L


def loader_section(d: dict | None) -> list[str]:
    L = ["## Data loader per augmentation pipeline", ""]
    if d is None:
        return L + missing("loader_speed")
    L += [machine_line(d) + f" Batch {d.get('batch_size')}, crops about {d.get('image_size_px')} px, "
          f"{d.get('main_process_threads', '?')} thread in the main process.", ""]
    workers = sorted({r["workers"] for r in d["results"]})
    pipes = list(dict.fromkeys(r["pipeline"] for r in d["results"]))
    L.append("| pipeline | views | " + " | ".join(f"{w} workers" for w in workers) + " |")
    L.append("|---|---|" + "---|" * len(workers))
    for p in pipes:
        hits = {r["workers"]: r for r in d["results"] if r["pipeline"] == p}
        views = next(iter(hits.values()))["views"]
        L.append(f"| {p} | {' + '.join(views)} | " + " | ".join(fmt(hits[w]['images_per_s']) if w in hits else "-" for w in workers) + " |")
    L += ["", "Images/s through LMDB read, decode, augmentation, resize and collate.", ""]
    return L


def augment_section(d: dict | None) -> list[str]:
    L = ["## Augmentation alone (one thread)", ""]
    if d is None:
        return L + missing("augment_speed")
    L += [machine_line(d) + f" Python {d.get('python')}, Pillow {d.get('pillow')}, {d.get('threads')} thread; "
          f"{d.get('includes')}; mean crop {d.get('mean_image_hw')} px.", "",
          f"Crops: {d.get('crops', 'rendered')}.", "",
          "| pipeline | semimtr images/s | µs/image | official images/s | ratio per round | median ratio |",
          "|---|---|---|---|---|---|"]
    for name, r in d["results"].items():
        rounds = ", ".join(f"{x:.2f}" for x in r.get("ratio_by_round", []))
        L.append(f"| {name} | {fmt(r['images_per_s'])} | {fmt(r['us_per_image'])} | {fmt(r.get('official_images_per_s'), 0)} | "
                 f"{rounds} | {fmt(r.get('ratio_median'), 2)} |")
    L += ["", "Official: the official imgaug/OpenCV pipelines (benchmarks/official_augment.py) on the same crops, "
          "timed right after ours in each round; resize to 32x128 and tensor conversion included on both sides."]
    if d.get("abinet_settings"):
        L += ["`abinet` cycles the constructions of the three `abinet-<type>` rows; every construction freezes "
              "its geometry type and deterioration draws, and both sides run the same ones "
              "(`abinet_settings` in the JSON)."]
    return L + [""]


def eval_section(d: dict | None) -> list[str]:
    L = ["## `semimtr eval` end to end", ""]
    if d is None:
        return L + missing("eval_speed")
    L += [machine_line(d) + f" {d.get('images')} images, mean width "
          f"{fmt(d.get('mean_width'))} px; {d.get('what', '')}.", "",
          "| model | workers | batch | precision | images/s (median) | runs | official images/s | ratio per repeat |",
          "|---|---|---|---|---|---|---|---|"]
    for r in d["results"]:
        L.append(f"| {r['model']} | {r['workers']} | {r['batch_size']} | {r['precision']} | {fmt(r['images_per_s'])} | "
                 + ", ".join(fmt(x) for x in r.get("runs", [])) + f" | {fmt(r.get('official_images_per_s'))} | "
                 + ", ".join(f"{x:.2f}" for x in r.get("ratio_by_repeat", [])) + " |")
    if any("official_images_per_s" in r for r in d["results"]):
        L += ["", "Official: the official evaluation path (benchmarks/official_eval.py: the official consistency dataset, "
              "the teacher-student fusion model on two identical views, greedy decoding) on the same LMDB, weights, "
              "batch, workers and threads, timed right after ours in each repeat."]
    L.append("")
    return L


def build_section(d: dict | None) -> list[str]:
    L = ["## `semimtr build-lmdb` throughput", ""]
    if d is None:
        return L + missing("build_lmdb_speed")
    L += [machine_line(d) + f" Python {d.get('python')}, Pillow {d.get('pillow')}; "
          f"{d.get('count')} synthetic PNG crops ({d.get('dataset_bytes', 0) / 1e6:.1f} MB); {d.get('timing')}.", "",
          "| variant | seconds | images/s |", "|---|---|---|"]
    for name, r in d["runs"].items():
        L.append(f"| {name} | {fmt(r['seconds'], 3)} | {fmt(r['images_per_s'])} |")
    L += ["", "`full_decode` fully decodes every image (the default only verifies headers and size); "
          "`clovaai_style_pil_grey` is the field's usual create_lmdb_dataset approach, for comparison.", ""]
    return L


def convergence_section(d: dict | None, page: Path) -> list[str]:
    L = ["## Convergence of the quickstart stages (CPU)", ""]
    if d is None:
        return L + missing("convergence")
    m = d["machine"]
    L += [f"Machine: {m['cpu']} ({m['cores']} cores; flags {', '.join(m['cpu_flags']) or 'none recorded'}), "
          f"torch {m['torch']}. Total training time {d['total_training_seconds'] / 60:.1f} min.", "",
          "| stage | precision | steps | wall s | main metric at the end | first >= 10 % | first >= 50 % | first >= 90 % |",
          "|---|---|---|---|---|---|---|---|"]
    for st in d["stages"]:
        firsts = [("-" if v is None else f"step {v['step']} / {v['seconds']:.0f} s") for v in st["first_passing"].values()]
        final = st["final"].get(st["main_metric"])
        L.append(f"| {st['stage']} | {st['precision']} | {st['steps']} | {st['wall_seconds']:.0f} | "
                 f"{st['main_metric']} {fmt(final)} % | " + " | ".join(firsts) + " |")
    img = page.parent / "performance" / "convergence.png"
    if img.is_file():
        L += ["", f"![validation accuracy against steps and seconds]({os.path.relpath(img, page.parent)})"]
    L += ["", "Validation sets: the recipes' streamed held-out crops (vision, fine-tune: 200 clean + 200 wild; "
          "LM: 1000 held-out occurrences with one random edit each).", ""]
    return L


def memory_section(docs: dict) -> list[str]:
    L = ["## Peak memory", ""]
    found = []
    for name, d in docs.items():
        if d is None:
            continue
        for r in d.get("results", []) if isinstance(d.get("results"), list) else []:
            for key in ("peak_rss_mb", "peak_memory_mb", "max_rss_mb", "peak_cuda_mb"):
                if key in r:
                    found.append((name, r, key))
    if not found:
        return L + ["None of the benchmark JSON files records peak memory yet. Rough figures seen while running "
                    "them: not recorded here, so not quoted.", ""]
    L += ["| benchmark | setting | peak MB |", "|---|---|---|"]
    for name, r, key in found:
        setting = ", ".join(f"{k}={v}" for k, v in r.items() if k in ("model", "mode", "batch", "stage", "size", "batch_size", "pipeline", "workers"))
        L.append(f"| {name} | {setting} | {fmt(r[key], 0)} ({key}) |")
    L.append("")
    return L


# ------------------------------------------------------------------------------ plot
def plot_scaling(model: dict | None, evald: dict | None, train: dict | None, path: Path) -> bool:
    """Seconds per batch vs batch size (model_speed), images/s vs setting (eval/train)."""
    if model is None and evald is None:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    ax = axes[0]
    if model is not None:
        rows = [r for r in model["results"] if r["variant"] == "fp32"]
        for (m, mode) in sorted({(r["model"], r["mode"]) for r in rows}):
            pts = sorted((r["batch"], r["batch"] / r["images_per_s"]) for r in rows if (r["model"], r["mode"]) == (m, mode))
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{m} {mode}")
        ax.set(xlabel="batch size (images)", ylabel="seconds per batch", title="paper-size model, fp32: cost vs batch size")
        ax.set_xticks(sorted({r["batch"] for r in rows}))
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    ax = axes[1]
    labels, values = [], []
    if evald is not None:
        for r in evald["results"]:
            labels.append(f"eval {r['model']}\nw{r['workers']} b{r['batch_size']}")
            values.append(r["images_per_s"])
    if train is not None:
        for r in train["results"]:
            if r.get("images_per_s"):
                labels.append(f"train {r['stage'].replace('pretrain-', '')}\n{r['size']} b{r['batch_size']}")
                values.append(r["images_per_s"])
    if values:
        ax.barh(range(len(values)), values, color="tab:green")
        ax.set_yticks(range(len(values)))
        ax.set_yticklabels([lbl.replace("\n", " ") for lbl in labels], fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set(xlabel="images/s (log; language model: words/s)", title="end-to-end eval and training throughput")
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return True


def gpu_section(d: dict | None) -> list[str]:
    """benchmarks/gpu_check.py's JSON: one table per section (a dry run is labelled as such)."""
    L = ["## One GPU (benchmarks/gpu_check.py)", ""]
    if d is None or d.get("dry_run"):
        return L + ["*Not measured yet*: no session has had a GPU lent to it. `python benchmarks/gpu_check.py` "
                    "(one command, <= 8 minutes on one GPU) writes `benchmarks/results/gpu_check.json`; "
                    "`--dry-run` runs the same sections on a CPU (the tests do).", ""]
    L += [machine_line(d), "", "Each stage through the real trainer (recipes/semimtr, loader workers and augmentation included), "
          "images/s as the trainer logs them, median after the first two steps:", "",
          "| stage | precision | batch | images/s | peak memory MB |", "|---|---|---|---|---|"]
    for r in (d["train"].get("result") or []):
        L.append(f"| {r['stage']} | {r['precision']} | {r['batch']} | {fmt(r['images_per_s'])} | {fmt(r['peak_memory_mb'])} |")
    L.append("")
    sections = {name: d.get(name) or {} for name in ("official", "eval", "compile", "loader", "ddp")}
    for name, sec in sections.items():
        if "result" not in sec:
            L += [f"- **{name}** failed: {sec.get('error')}", ""]
    off = sections["official"].get("result") or {}
    if "ratio_fp32" in off:
        L += ["Train step of the full model at batch 232 (forward, CE on every head and iteration, backward), "
              "same weights, same run:", "", "| precision | semimtr images/s | official images/s | ratio |",
              "|---|---|---|---|"]
        for p in ("fp32", "bf16"):
            if f"ratio_{p}" in off:
                L.append(f"| {p} | {fmt(off[f'semimtr_{p}_images_per_s'])} | {fmt(off[f'official_{p}_images_per_s'])} "
                         f"| {off[f'ratio_{p}']:.2f} |")
        L.append("")
    ev = sections["eval"].get("result")
    if ev:
        L += [f"Eval (full model, batch {ev['batch']}): " + ", ".join(
            f"{p} {fmt(v)} images/s" for p, v in ev["images_per_s"].items()) + ".", ""]
    co = sections["compile"].get("result")
    if co:
        L += [f"torch.compile ({co['backend']}) on the vision model's bf16 train step: {fmt(co['eager_images_per_s'])} "
              f"-> {fmt(co['compiled_images_per_s'])} images/s ({co['speedup']:.2f}x; compiling took "
              f"{co['compile_seconds']} s).", ""]
    lo = sections["loader"].get("result")
    if lo:
        by = ", ".join(f"{w} workers {fmt(v)}" for w, v in lo["loader_images_per_s_by_workers"].items())
        L += [f"Loader (two views, strong augmentation, LMDB crops, batch {lo['batch']}): {by} images/s; fine-tuning "
              f"trains at {fmt(lo['finetune_training_images_per_s'])} images/s, so the best loader is "
              f"{lo['loader_over_training']}x the training rate.", ""]
    dd = sections["ddp"].get("result")
    if dd:
        L += [f"DDP, one process on {dd['backend']}: {dd['ddp_s_per_step']} s per vision step against "
              f"{dd['bare_s_per_step']} s bare ({dd['overhead']:.3f}x).", ""]
    return L


def synth_section(d: dict | None) -> list[str]:
    L = ["## Streaming synthetic crops", ""]
    if not d:
        return L + missing("synth_speed")
    L += ["What one loader worker renders per second for a streamed source (render + model input), one",
          "process, one thread (median of the rounds); docs/synth.md describes the styles.", "",
          "| setting | crops/s | fonts |", "|---|---|---|"]
    for name, r in d["results"].items():
        L.append(f"| {name} | {fmt(r.get('crops_per_s'), 0) if 'crops_per_s' in r else r.get('skipped')} | {r.get('fonts', '')} |")
    return L + ["", machine_line(d), ""]


def compare_section(d: dict | None) -> list[str]:
    L = ["## The shipped model beside RapidOCR", ""]
    if not d:
        return L + missing("compare_ocr")
    names = [k for k, v in d["semimtr"].items() if isinstance(v, dict) and "accuracy" in v and k != "weighted"]
    L += ["Word accuracy (%) on the six benchmark test sets under the paper protocol and crops/s on the same",
          "crops and cores, in one run (docs/model-card.md).", "",
          "| system | " + " | ".join(names) + " | weighted | crops/s |", "|" + "---|" * (len(names) + 3)]
    for system in ("semimtr", "rapidocr"):
        if system in d:
            r = d[system]
            L.append(f"| {system} | " + " | ".join(fmt(r[n]["accuracy"]) for n in names)
                     + f" | {fmt(r['weighted']['accuracy'])} | {fmt(r['weighted']['crops_per_s'], 0)} |")
    return L + ["", machine_line(d), ""]


def read_section(d: dict | None) -> list[str]:
    L = ["## `semimtr read` on a folder, beside RapidOCR", ""]
    if not d:
        return L + missing("read_speed")
    L += [f"{d['crops']} crops of {d['set']} written to a folder as files; each reader runs in a fresh process and is",
          "timed from start to exit (start-up, model load, decoding and output included).", "",
          "| reader | seconds | crops/s | x RapidOCR | word accuracy % |", "|---|---|---|---|---|"]
    for name, r in d["results"].items():
        L.append(f"| {name} | {fmt(r['seconds'])} | {fmt(r['crops_per_s'])} | {fmt(r.get('speed_vs_rapidocr'), 2)} | "
                 f"{fmt(r['accuracy'])} |")
    return L + ["", machine_line(d), ""]


def adapt_section(d: dict | None) -> list[str]:
    L = ["## The quickstart's adaptation over seeds", ""]
    if not d:
        return L + missing("adapt_gain")
    s = d["summary"]
    oracle = "oracle_gain" in s
    cells = [s["accuracy"]["default"]["alignment"], s["accuracy"]["supervised"]["alignment"],
             s["accuracy"]["semimtr"]["alignment"], s["unlabeled_gain"]["alignment"]]
    if oracle:
        cells += [s["accuracy"]["oracle"]["alignment"], s["oracle_gain"]["alignment"]]
    reused = any(r.get("reused") for r in d["per_seed"])
    L += [f"`{d['command']}`: the README quickstart's steps 2-4 per seed ({d['minutes_per_seed']:.1f} min per seed"
          f"{' for what ran this time, the rest reused' if reused else ''}, "
          f"{d['threads']} thread{'s' if d['threads'] != 1 else ''}); alignment-head word accuracy (%) on the held-out dot-matrix crops, mean ± 95 % "
          "interval over seeds (docs/results.md has every head)"
          + ("; the oracle has the 5000 unlabeled crops' labels too, 48 crops per step" if oracle else "") + ".", "",
          "| default | supervised | SemiMTR | SemiMTR - supervised |" + (" oracle | oracle - supervised |" if oracle else ""),
          "|---|---|---|---|" + ("---|---|" if oracle else ""),
          "| " + " | ".join(f"{x['mean']:.1f} ± {x['ci95'] or 0:.1f}" for x in cells) + " |"]
    seconds: dict[str, list[float]] = {}
    for r in d["per_seed"]:
        for name, v in r["seconds"].items():
            seconds.setdefault(name, []).append(v)
    L += ["", "Seconds per command (mean over seeds): " + ", ".join(f"{k} {sum(v) / len(v):.0f}" for k, v in seconds.items()) + "."]
    return L + ["", machine_line(d), ""]


def quickstart_runs_section(d: dict | None) -> list[str]:
    L = ["## README quickstart runs", ""]
    if not d:
        return L + missing("quickstart_runs")
    L += [d["note"], "", "| quickstart | date | commit | machine | precision | wall | seconds per stage | table |",
          "|---|---|---|---|---|---|---|---|"]
    for r in d["runs"]:
        wall = " and ".join(f"{w // 60:.0f} min {w % 60:.0f} s" for w in r["wall_s"])
        stages = ", ".join(f"{k} {v}" for k, v in r.get("stages_s", {}).items())
        L.append(f"| {r['quickstart']} | {r['date']} | {r['commit'] or '-'} | {r['machine']} | {r['precision']} | {wall} | "
                 f"{stages} | {r['table']} |")
    return L + [""]


def build_page(results: Path, page: Path) -> str:
    docs = {name: load(results, name) for name in COMMANDS}
    img = page.parent / "performance" / "scaling.png"
    have_plot = plot_scaling(docs["model_speed"], docs["eval_speed"], docs["train_speed"], img)
    L = ["# Performance", "",
         "Generated by `python benchmarks/report.py` from `benchmarks/results/*.json`; re-run a benchmark",
         "script and then the report to refresh it. Every table says the machine and thread count it was",
         "measured with. The benchmarks of this page ran on a shared 2-core CPU machine without a GPU;",
         "other jobs were sometimes running, so treat differences below ~20% as noise.", "",
         "| what | script | result file |", "|---|---|---|"]
    for name, cmd in COMMANDS.items():
        L.append(f"| {name.replace('_', ' ')} | `{cmd}` | " + ("present" if docs[name] else "**missing**") + " |")
    L.append("")
    L += model_section(docs["model_speed"])
    L += model_section(docs["model_speed_onnx"], "model_speed_onnx",
                       "CPU inference paths against the official fp32 modules (paper-size model, eval)")
    L += agreement_section(docs["model_agreement_trained_tiny"])
    L += int8_section(docs["int8_sensitivity"])
    L += train_section(docs["train_speed"])
    L += loader_section(docs["loader_speed"])
    L += augment_section(docs["augment_speed"])
    L += eval_section(docs["eval_speed"])
    L += build_section(docs["build_lmdb_speed"])
    L += memory_section(docs)
    L += convergence_section(docs["convergence"], page)
    L += gpu_section(docs["gpu_check"])
    L += synth_section(docs["synth_speed"])
    L += compare_section(docs["compare_ocr"])
    L += read_section(docs["read_speed"])
    L += adapt_section(docs["adapt_gain"])
    L += quickstart_runs_section(docs["quickstart_runs"])
    L += ["## How cost grows", ""]
    if have_plot:
        L += [f"![cost vs batch size and throughput]({os.path.relpath(img, page.parent)})", "",
              "Left: seconds per batch of the paper-size model (fp32) against batch size -- on this CPU the",
              "cost grows in proportion to the number of images (images/s does not improve from batch 8 to",
              "32), so larger batches buy nothing on CPU. Right: end-to-end throughput of `eval` and of each",
              "training stage (log scale). Evaluation time grows linearly with the image count:", ""]
        ev = docs["eval_speed"]
        if ev:
            L += ["| images | " + " | ".join(f"{r['model']} w{r['workers']}" for r in ev["results"]) + " |",
                  "|---|" + "---|" * len(ev["results"])]
            for n in (1000, 7672, 100000):
                L.append(f"| {n:,} | " + " | ".join(f"{n / r['images_per_s'] / 60:,.1f} min" for r in ev["results"]) + " |")
            L += ["", "Projected eval wall time from the measured images/s (linear in the image count).", ""]
    else:
        L += ["No scaling data yet.", ""]
    L += ["## Small-scale study timing", "",
          "The reproduction study (`experiments/run_study.py`) measures its own step times before it",
          "plans; see [results.md](results.md) for the measured seconds per step of the tiny model.", ""]
    return "\n".join(L)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--page", type=Path, default=ROOT / "docs" / "performance.md")
    args = ap.parse_args()
    text = build_page(args.results, args.page)
    tmp = args.page.with_suffix(".md.tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, args.page)
    print(f"wrote {args.page}")


if __name__ == "__main__":
    main()
