"""Which layers of a trained model survive int8? Word agreement of ONNX Runtime's dynamic int8 with fp32.

For each ``--checkpoint`` (a trained full model), exports the fp32 ONNX graph (``semimtr export``),
then quantises with ``onnxruntime.quantization.quantize_dynamic`` (int8 weights, activations
quantised per batch at run time) the MatMul nodes that multiply by a weight (linear layers;
activation-by-activation products such as attention scores stay fp32), in these groups:

* ``all``: every weight MatMul; ``vision``: those of the vision model; ``language+alignment``:
  the rest; ``vision:<node>``: each vision weight MatMul alone (which layer costs the words).

plus ``all`` under the other weight schemes of quantize_dynamic (``all, per-channel weights``,
``all, uint8 weights``, ``all, reduced range``: the usual remedies for accuracy loss and for the
int16 saturation of AVX2 kernels without VNNI), and reports, per group, the fraction of
``--images`` crops (the first of ``--lmdb``) whose greedy alignment-head word equals the fp32
graph's. Agreement only: nothing is timed (speed is
model_speed.py's ``onnx-int8`` variant). Writes benchmarks/results/int8_sensitivity.json.

For scale, the same fraction for the fp32 graph itself on inputs perturbed by uniform noise of
+-0.5 and +-1 grey level (``fp32, input +-L grey``): changes at the scale of the crop's own 8-bit
rounding. Words that flip under that noise are near-ties no int8 scheme can be expected to keep.

    python benchmarks/int8_sensitivity.py --checkpoint runs/tiny-finetune/best.pt --lmdb data/synth/test_wild
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from model_speed import lmdb_images  # noqa: E402

from semimtr_cli.core.fsutil import atomic_write_json
from semimtr_cli.core.runtime import machine_record
from semimtr_cli.data.image import IMAGENET_STD, to_model_input
from semimtr_cli.infer.export import export_onnx
from semimtr_cli.infer.onnx_predictor import OnnxPredictor
from semimtr_cli.model.decoding import decode_logits

HEAD = "alignment"
NOISE_GREY_LEVELS = (0.5, 1.0)


def weight_matmuls(onnx_path: Path) -> list[str]:
    """Names of the MatMul nodes with a constant (initializer or Constant-node) input."""
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    consts = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in graph.node if n.op_type == "MatMul" and any(i in consts for i in n.input)]


#: quantize_dynamic settings besides the default (int8 weights, one scale per weight tensor)
SCHEMES = {"per-channel weights": {"per_channel": True}, "uint8 weights": {"weight_type": "QUInt8"},
           "reduced range": {"reduce_range": True}}


def quantize(src: Path, dst: Path, nodes: list[str], scheme: dict | None = None) -> Path:
    """``src`` with the MatMul ``nodes`` quantised dynamically (int8 weights unless ``scheme``, one of
    :data:`SCHEMES`, says otherwise) written to ``dst``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    kw = {"weight_type": "QInt8"} | (scheme or {})
    kw["weight_type"] = getattr(QuantType, kw["weight_type"])
    logging.disable(logging.WARNING)  # the quantiser logs advice on the root logger
    try:
        quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul"], nodes_to_quantize=nodes, **kw)
    finally:
        logging.disable(logging.NOTSET)
    return dst


def words(source: Path | OnnxPredictor, images: torch.Tensor, batch: int = 32) -> list[str]:
    """Greedy alignment-head words of an ONNX file (or an open predictor) on ``images``."""
    predictor = source if isinstance(source, OnnxPredictor) else OnnxPredictor(source, threads=torch.get_num_threads())
    out = []
    for i in range(0, len(images), batch):
        logits = predictor.forward(images[i:i + batch]).heads[HEAD].logits
        out += [d.text for d in decode_logits(logits, predictor.charset)]
    return out


def perturbed(images: torch.Tensor, grey_levels: float, seed: int = 0) -> torch.Tensor:
    """``images`` (N, 3, H, W, model input units) plus uniform noise of +-``grey_levels`` / 255 in
    [0, 1] pixel units, i.e. divided by each channel's normalisation std."""
    g = torch.Generator().manual_seed(seed)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return images + (torch.rand(images.shape, generator=g) * 2 - 1) * (grey_levels / 255) / std


def sensitivity(checkpoint: Path, lmdb: Path, n_images: int) -> dict:
    """{group: {"nodes", "same_words", "fraction"}} for one checkpoint on the first ``n_images`` crops
    of ``lmdb``, plus the fp32 graph's number of distinct words."""
    with tempfile.TemporaryDirectory(prefix="int8-sensitivity-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_onnx(checkpoint, fp32, check=0)
        predictor = OnnxPredictor(fp32, threads=torch.get_num_threads())
        cfg = predictor.config
        images = torch.stack([to_model_input(im, cfg.image_h, cfg.image_w) for im in lmdb_images(lmdb, n_images)])
        ref = words(predictor, images)
        nodes = weight_matmuls(fp32)
        vision = [n for n in nodes if n.startswith("/model/vision/")]
        groups = {"all": nodes, "vision": vision, "language+alignment": [n for n in nodes if n not in vision]}
        groups |= {f"vision:{n}": [n] for n in vision}
        runs = [(name, group, None) for name, group in groups.items()] + [(f"all, {s}", nodes, kw) for s, kw in SCHEMES.items()]
        out = {"checkpoint": str(checkpoint), "lmdb": str(lmdb), "images": len(ref), "fp32_distinct_words": len(set(ref)), "groups": {}}

        def record(name: str, got: list[str], n_nodes: int) -> None:
            same = sum(a == b for a, b in zip(ref, got))
            out["groups"][name] = {"nodes": n_nodes, "same_words": same, "fraction": round(same / len(ref), 4)}
            print(f"{checkpoint} {name}: {same}/{len(ref)} same words", flush=True)

        for k, (name, group, scheme) in enumerate(runs):
            record(name, words(quantize(fp32, Path(tmp) / f"q{k}.onnx", group, scheme), images), len(group))
        for level in NOISE_GREY_LEVELS:
            record(f"fp32, input +-{level:g} grey", words(predictor, perturbed(images, level)), 0)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, nargs="+", required=True, help="trained full-model checkpoints")
    ap.add_argument("--lmdb", type=Path, nargs="+", required=True,
                    help="crops for the agreement (the models' own distribution): one LMDB, or one per checkpoint")
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "int8_sensitivity.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    lmdbs = args.lmdb * len(args.checkpoint) if len(args.lmdb) == 1 else args.lmdb
    if len(lmdbs) != len(args.checkpoint):
        raise SystemExit(f"--lmdb: give one LMDB or one per checkpoint ({len(args.checkpoint)}), got {len(args.lmdb)}")
    for c in args.checkpoint:
        if not c.is_file():
            raise SystemExit(f"--checkpoint {c}: no such file")
    for lmdb in lmdbs:
        if not (lmdb / "data.mdb").is_file():
            raise SystemExit(f"--lmdb {lmdb}: not an LMDB folder (no data.mdb)")
    results = [sensitivity(c, lmdb, args.images) for c, lmdb in zip(args.checkpoint, lmdbs)]
    atomic_write_json(args.out, {
        "benchmark": "int8_sensitivity",
        "command": "python benchmarks/int8_sensitivity.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "head": HEAD, "quantisation": "onnxruntime quantize_dynamic of the weight MatMuls: int8 weights, one scale "
                                      "per tensor, unless the group names another scheme",
        "machine": machine_record(), "results": results,
    })
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
