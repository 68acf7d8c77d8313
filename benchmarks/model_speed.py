"""Model throughput (images/s) on CPU: vision-only and full iterative model, eval forward and
train forward+backward, per batch size and precision variant; plus word agreement between
fp32 and the faster variants. Writes JSON (default benchmarks/results/model_speed.json).

Variants: ``fp32``, ``bf16`` (bfloat16 autocast), ``fp32-cl`` / ``bf16-cl`` (channels-last),
``onnx`` (the fp32 graph of ``semimtr export`` on onnxruntime, eval only) and ``onnx-int8``
(ONNX Runtime's dynamic int8 quantisation of that graph, eval only; measured here because the
tool dropped int8 on these numbers). Timings of one
(model, mode, batch) group are interleaved round-robin across variants so that load from
other processes hits every variant alike; the median of ``--repeats`` runs is reported.

With ``--official-repo PATH`` (a local clone of amazon-science/semimtr-text-recognition, only
imported, never copied) the official modules are timed in the same rounds as variant
``official-fp32``, loaded with the same weights, and their fp32 predictions are compared too.

Example (about 10 minutes at paper size on 2 cores):
    python benchmarks/model_speed.py --threads 2 --repeats 3 --official-repo /tmp/official
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.fsutil import atomic_write_json
from semimtr_cli.core.runtime import machine_record
from semimtr_cli.model.checkpoint import model_from_checkpoint
from semimtr_cli.model.config import ModelConfig
from semimtr_cli.model.decoding import decode_logits
from semimtr_cli.model.factory import build_model
from semimtr_cli.model.outputs import HeadOutput, RecognizerOutput

REFERENCE = {
    "source": "OFFICIAL-FACTS.md section 11 (official modules, this 2-core machine, 2 threads)",
    "full_eval_fp32_b8": 10.3, "full_eval_fp32_b32": 10.5, "full_train_fp32_b8": 2.7, "full_train_fp32_b32": 2.9,
    "vision_eval_fp32": 14.9, "full_eval_bf16_b32": 16.6,
}


# ---------------------------------------------------------------------------------- models
def load_official(repo: Path, charset_path: Path):
    """(ABINetIterModel class, BaseVision class, config) from a local official clone."""
    sys.path.insert(0, str(repo))
    sys.modules.setdefault("cv2", types.ModuleType("cv2"))
    mpl = types.ModuleType("matplotlib")
    mpl.colors, mpl.pyplot = types.ModuleType("colors"), types.ModuleType("pyplot")
    for name, mod in (("matplotlib", mpl), ("matplotlib.colors", mpl.colors), ("matplotlib.pyplot", mpl.pyplot)):
        sys.modules.setdefault(name, mod)
    from official_config import official_config
    from semimtr.modules.model_abinet_iter import ABINetIterModel
    from semimtr.modules.model_vision import BaseVision

    cfg = official_config(str(charset_path))
    return ABINetIterModel, BaseVision, cfg


class Variant:
    """One way of running a model: precision, memory layout, quantisation, or the official code."""

    def __init__(self, name: str, model: torch.nn.Module, precision: str = "fp32", channels_last: bool = False,
                 official: bool = False) -> None:
        self.name, self.model, self.precision = name, model, precision
        self.channels_last, self.official = channels_last, official
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def prep(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def logits(self, out) -> list[torch.Tensor]:
        """Every logits tensor of an output (for the training loss)."""
        if isinstance(out, HeadOutput):
            return [out.logits]
        if isinstance(out, RecognizerOutput):
            return [out.vision.logits] + [h.logits for h in out.language + out.alignment]
        if isinstance(out, dict):
            return [out["logits"]]
        a, l, v = out
        a = a if isinstance(a, list) else [a]
        l = l if isinstance(l, list) else [l]
        return [v["logits"]] + [d["logits"] for d in l + a]

    def final_logits(self, out) -> torch.Tensor:
        if torch.is_tensor(out):
            return out
        if isinstance(out, HeadOutput):
            return out.logits
        if isinstance(out, RecognizerOutput):
            return out.alignment[-1].logits
        if isinstance(out, dict):
            return out["logits"]
        a = out[0]
        return (a[-1] if isinstance(a, list) else a)["logits"]

    def eval_step(self, x: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        with torch.no_grad(), self.autocast():
            return self.final_logits(self.model(self.prep(x))).float()

    def train_step(self, x: torch.Tensor, target: torch.Tensor) -> None:
        self.model.train()
        with self.autocast():
            outs = self.logits(self.model(self.prep(x)))
            loss = sum(F.cross_entropy(o.float().flatten(0, 1), target.repeat(o.shape[0] // target.shape[0], 1).flatten())
                       for o in outs)
        loss.backward()
        self.model.zero_grad(set_to_none=True)


def rule_weights(model: torch.nn.Module, seed: int = 11) -> None:
    """Fill ``model`` in place with the parity fixture's weights rule (tests/fixtures/official_parity/README.md):
    untrained but sharper than a fresh init, so word agreement between precisions is less dominated by ties."""
    import zlib

    norm_types = (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d, torch.nn.LayerNorm)
    norms = {name for name, m in model.named_modules() if isinstance(m, norm_types)}
    new = {}
    for key, t in model.state_dict().items():
        rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
        shape = tuple(t.shape)
        if key.endswith(("num_batches_tracked", ".pe")):
            v = t.clone().numpy()
        elif key.endswith("running_mean"):
            v = 0.1 * rng.standard_normal(shape)
        elif key.endswith("running_var"):
            v = rng.uniform(0.5, 1.5, shape)
        elif t.dim() == 1 and key.endswith(".weight") and key.rsplit(".", 1)[0] in norms:
            v = 1 + 0.1 * rng.standard_normal(shape)
        elif t.dim() == 1:
            v = 0.1 * rng.standard_normal(shape)
        else:
            v = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
            if key.startswith("vision.attention.project."):
                v = v * 8
        new[key] = torch.as_tensor(np.asarray(v)).to(t.dtype)
    model.load_state_dict(new)


class OrtGraph(torch.nn.Module):
    """The exported ONNX graph of a model on onnxruntime (``semimtr export``), eval only: the final
    logits as a tensor. ``int8``: ONNX Runtime's dynamic int8 quantisation of the graph (MatMul
    weights; the tool does not offer it, this benchmark shows why)."""

    def __init__(self, model: torch.nn.Module, charset: Charset, kind: str, threads: int, int8: bool = False):
        import logging
        import tempfile

        from semimtr_cli.infer.export import export_onnx
        from semimtr_cli.infer.onnx_predictor import OnnxPredictor
        from semimtr_cli.model.checkpoint import save_checkpoint

        super().__init__()
        self.folder = tempfile.TemporaryDirectory(prefix="model-speed-onnx-")
        ckpt = save_checkpoint(Path(self.folder.name) / "m.pt", model, charset)
        onnx = Path(self.folder.name) / "m.onnx"
        export_onnx(ckpt, onnx, vision_only=kind == "vision", check=0)
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            q = onnx.with_name("m.int8.onnx")
            logging.disable(logging.WARNING)  # the quantiser logs advice on the root logger
            try:
                quantize_dynamic(str(onnx), str(q), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
            finally:
                logging.disable(logging.NOTSET)
            onnx = q
        self.backend, self.head = OnnxPredictor(onnx, threads=threads), "vision" if kind == "vision" else "alignment"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backend.forward(x.contiguous()).heads[self.head].logits


# ---------------------------------------------------------------------------------- data
def word_images(n: int, charset: Charset, seed: int, size=(128, 32)) -> list[Image.Image]:
    """Synthetic word crops: random words drawn with PIL's default font on random backgrounds."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        word = "".join(rng.choice(list(charset.symbols), size=int(rng.integers(3, 10))))
        bg = tuple(int(v) for v in rng.integers(120, 256, 3))
        fg = tuple(int(v) for v in rng.integers(0, 100, 3))
        img = Image.new("RGB", (int(rng.integers(60, 200)), int(rng.integers(20, 48))), bg)
        ImageDraw.Draw(img).text((int(rng.integers(1, 10)), int(rng.integers(1, 8))), word, fill=fg)
        arr = np.asarray(img).astype(np.int16) + rng.integers(-12, 13, (img.height, img.width, 3))
        out.append(Image.fromarray(arr.clip(0, 255).astype(np.uint8)))
    return out


def lmdb_images(path: Path, n: int) -> list[Image.Image]:
    """The first ``n`` crops of an LMDB, decoded to RGB."""
    from semimtr_cli.data.image import decode_image
    from semimtr_cli.data.lmdb.io import LmdbReader

    reader = LmdbReader(path)
    return [decode_image(reader.image_bytes(i)) for i in range(min(n, len(reader)))]


def batch_tensor(images: list[Image.Image], cfg: ModelConfig) -> torch.Tensor:
    from semimtr_cli.data.image import to_model_input

    return torch.stack([to_model_input(im, cfg.image_h, cfg.image_w) for im in images])


# ---------------------------------------------------------------------------------- timing
def time_group(variants: list[Variant], mode: str, batch: int, repeats: int, warmup: int, cfg: ModelConfig,
               seed: int) -> dict[str, list[float]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, cfg.image_h, cfg.image_w, generator=g)
    target = torch.randint(0, cfg.num_classes, (batch, cfg.max_slots), generator=g)
    times: dict[str, list[float]] = {v.name: [] for v in variants}
    for r in range(warmup + repeats):
        for v in variants:
            t0 = time.perf_counter()
            if mode == "eval":
                v.eval_step(x)
            else:
                v.train_step(x, target)
            dt = time.perf_counter() - t0
            if r >= warmup:
                times[v.name].append(dt)
    return times


def agreement(variants: list[Variant], images: torch.Tensor, charset: Charset, batch: int) -> dict[str, dict]:
    """Fraction of images whose final greedy word equals the fp32 word, per variant."""
    words: dict[str, list[str]] = {}
    for v in variants:
        texts = []
        for i in range(0, len(images), batch):
            texts += [d.text for d in decode_logits(v.eval_step(images[i:i + batch]), charset)]
        words[v.name] = texts
    ref = words["fp32"]
    res = {}
    for name, texts in words.items():
        if name == "fp32":
            continue
        same = sum(a == b for a, b in zip(ref, texts))
        res[name] = {"same_words": same, "images": len(ref), "fraction": same / len(ref)}
    res["fp32_distinct_words"] = len(set(ref))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--preset", default="paper", help="model size preset (paper, tiny)")
    ap.add_argument("--checkpoint", type=Path, help="semimtr checkpoint (kind full) to take weights from")
    ap.add_argument("--weights", choices=["rule", "init"], default="rule",
                    help="without --checkpoint: the parity fixture's weights rule (seed 11) or a seeded fresh init")
    ap.add_argument("--models", nargs="+", default=["vision", "full"], choices=["vision", "full"])
    ap.add_argument("--modes", nargs="+", default=["eval", "train"], choices=["eval", "train"])
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[8, 32])
    ap.add_argument("--variants", nargs="+", default=["fp32", "bf16", "fp32-cl", "onnx", "onnx-int8"],
                    choices=["fp32", "bf16", "fp32-cl", "bf16-cl", "onnx", "onnx-int8"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--agreement-images", type=int, default=200)
    ap.add_argument("--agreement-lmdb", type=Path, default=None,
                    help="take the agreement crops from this LMDB (the model's own distribution) instead of "
                         "PIL default-font strings, which a model trained on other fonts reads as a few words")
    ap.add_argument("--official-repo", type=Path, help="local clone of the official code, to time it alongside")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-flush-denormal", action="store_true",
                    help="keep denormal floats (the Predictor flushes them to zero on the CPU; this shows the cost)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/model_speed.json"))
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(not args.no_flush_denormal)
    torch.manual_seed(args.seed)
    charset = Charset.preset("36")
    if args.checkpoint:
        full, charset, _ = model_from_checkpoint(args.checkpoint)
        cfg = full.config
    else:
        cfg = ModelConfig.preset(args.preset).resolved(charset)
        full = build_model("full", cfg, charset)
        if args.weights == "rule":
            rule_weights(full)
    official = None
    if args.official_repo:
        if args.preset != "paper" and not args.checkpoint:
            raise SystemExit("--official-repo needs the paper preset")
        official = load_official(args.official_repo, args.official_repo / "data" / "charset_36.txt")

    results, agreements = [], {}
    for model_name in args.models:
        base = full if model_name == "full" else full.vision
        official_model = None
        if official is not None:
            iter_cls, vision_cls, ocfg = official
            official_model = (iter_cls if model_name == "full" else vision_cls)(ocfg)
            official_model.load_state_dict(base.state_dict())
        for mode in args.modes:
            names = [v for v in args.variants if not (mode == "train" and v.startswith("onnx"))]
            variants = []
            for name in names:
                import copy

                m = (OrtGraph(base, charset, model_name, args.threads, int8=name == "onnx-int8") if name.startswith("onnx")
                     else copy.deepcopy(base))
                variants.append(Variant(name, m, "bf16" if name.startswith("bf16") else "fp32", name.endswith("-cl")))
            if official_model is not None:
                variants.append(Variant("official-fp32", official_model, official=True))
            for batch in args.batch_sizes:
                times = time_group(variants, mode, batch, args.repeats, args.warmup, cfg, args.seed)
                for name, ts in times.items():
                    med = statistics.median(ts)
                    results.append({"model": model_name, "mode": mode, "batch": batch, "variant": name,
                                    "images_per_s": round(batch / med, 3), "seconds": [round(t, 4) for t in ts]})
                    print(f"{model_name:6s} {mode:5s} b{batch:<3d} {name:14s} {batch / med:7.2f} img/s", flush=True)
            if mode == "eval" and args.agreement_images > 0 and "fp32" in names:
                imgs = batch_tensor(lmdb_images(args.agreement_lmdb, args.agreement_images) if args.agreement_lmdb
                                    else word_images(args.agreement_images, charset, args.seed + 1), cfg)
                agreements[model_name] = agreement(variants, imgs, charset, 32)
                print(model_name, "agreement", json.dumps(agreements[model_name]), flush=True)

    by = {(r["model"], r["mode"], r["batch"], r["variant"]): r["images_per_s"] for r in results}
    ratios = {}
    for (model_name, mode, batch, variant), ips in by.items():
        ref = by.get((model_name, mode, batch, "official-fp32"))
        if ref is None and model_name == "full" and args.preset == "paper":
            ref = REFERENCE.get(f"full_{mode}_fp32_b{batch}")
        if ref:
            ratios[f"{model_name}/{mode}/b{batch}/{variant}"] = round(ips / ref, 3)
    report = {
        "command": " ".join(sys.argv),
        "machine": machine_record(),
        "settings": {"preset": args.preset, "checkpoint": str(args.checkpoint) if args.checkpoint else None,
                     "agreement_images": str(args.agreement_lmdb) if args.agreement_lmdb else "PIL default-font strings",
                     "weights": None if args.checkpoint else args.weights,
                     "repeats": args.repeats, "warmup": args.warmup, "statistic": "median images/s",
                     "flush_denormal": not args.no_flush_denormal,
                     "train_step": "train-mode forward + backward of CE over every head and iteration (no optimizer step)",
                     "official_timed_alongside": bool(official)},
        "results": results,
        "ratio_vs_official_fp32": ratios,
        "agreement_vs_fp32": agreements,
        "reference": REFERENCE,
    }
    atomic_write_json(args.out, report)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
