"""Times the official evaluation path on one LMDB; run by eval_speed.py in the official code's environment.

    OFFICIAL_PYTHON benchmarks/official_eval.py --repo CLONE --lmdb DIR --weights full.pt
        [--batch-size 64] [--workers 0] [--threads 2]

CLONE is a local copy of amazon-science/semimtr-text-recognition; OFFICIAL_PYTHON an interpreter
with its requirements (opencv, numpy < 2, torchvision; fastai is not needed). What runs is what
the official ``main.py --test`` runs for a SemiMTR fine-tuned model, minus fastai's bookkeeping:

* data: ``ImageDatasetConsistencyRegularization`` (test mode, ``data_aug`` and ``supervised_flag``
  on as the official config has them, so both views are the same image), ``collate_fn_filter_none``,
  a torch DataLoader, ImageNet normalisation of the batch (fastai's ``normalize(imagenet_stats)``);
* model: ``TeacherStudentFusionEMA`` (teacher and student ABINetIterModel, both loaded with the
  given weights), which runs the teacher on view 0 and the student on view 1;
* metric: greedy decoding of the teacher's alignment logits as ``TextAccuracy.decode`` does
  (softmax, argmax, cut at the null character), case-insensitive word accuracy.

Prints one JSON object: images/s of the whole pass (loader start to last metric), word accuracy and
the predicted words.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, required=True)
    ap.add_argument("--lmdb", type=Path, required=True)
    ap.add_argument("--weights", type=Path, required=True, help="state dict of the full model (official key names)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(args.repo))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch
    import torch.nn.functional as F
    from official_config import official_config
    from semimtr.dataset.dataset import collate_fn_filter_none
    from semimtr.dataset.dataset_consistency_regularization import ImageDatasetConsistencyRegularization
    from semimtr.modules.model_fusion_teacher_student_ema import TeacherStudentFusionEMA
    from torch.utils.data import DataLoader

    torch.set_num_threads(args.threads)
    charset_path = str(args.repo / "data" / "charset_36.txt")

    cfg = official_config(charset_path)
    model = TeacherStudentFusionEMA(cfg)
    state = torch.load(args.weights, map_location="cpu")
    model.student.load_state_dict(state)
    model.teacher.load_state_dict(state)
    model.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 1, 3, 1, 1)

    start = time.perf_counter()
    ds = ImageDatasetConsistencyRegularization(path=str(args.lmdb), is_training=False, img_h=32, img_w=128, max_length=25,
                                               case_sensitive=False, charset_path=charset_path, data_aug=True,
                                               multiscales=False, supervised_flag=True)
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=False, num_workers=args.workers,
                        collate_fn=collate_fn_filter_none)
    null = ds.charset.null_char
    words, correct, total = [], 0, 0
    with torch.no_grad():
        for images, target in loader:
            images = (torch.as_tensor(images) - mean) / std
            out = model(images)
            alignment = [r for r in out["teacher_outputs"] if r["name"] == "alignment"]
            logits = (alignment[0] if alignment else out["teacher_outputs"][0])["logits"]
            probs = F.softmax(logits, dim=2)
            for o, label in zip(probs, target["label"]):
                text = ds.charset.get_text(o.argmax(dim=1), padding=False, trim=False).split(null)[0]
                truth = ds.charset.get_text(label.argmax(dim=-1), trim=True)
                words.append(text.lower())
                correct += text.lower() == truth.lower()
                total += 1
    seconds = time.perf_counter() - start
    print(json.dumps({"images": total, "seconds": round(seconds, 3), "images_per_s": round(total / seconds, 2),
                      "word_accuracy": round(correct / max(total, 1), 4), "words": words}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
