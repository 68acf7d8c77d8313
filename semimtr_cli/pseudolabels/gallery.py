"""The pseudo-label gallery: a static HTML page (inline CSS and JavaScript, no network) with
one card per sample, lowest confidence first, and a threshold / kept / dropped filter."""

from __future__ import annotations

import html
import io
import json
from pathlib import Path
from typing import Sequence

from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.core.fsutil import atomic_dir
from semimtr_cli.data.datasets import CropDataset
from semimtr_cli.data.image import denormalize
from semimtr_cli.pseudolabels.stats import PseudoLabels

GALLERY_MARKER = "semimtr-pseudo-label-gallery"


def _gallery_image(crops: CropDataset, index: int, view: str) -> tuple[bytes, str]:
    """(encoded image, extension): the stored bytes for the clean view, the weak view (the
    32x128 model input the teacher saw) as PNG."""
    from PIL import Image

    if view == "clean":
        lmdb, key = crops.describe(index).rsplit(":", 1)
        reader = next(r for r in crops.readers if str(r.path) == lmdb)
        data = reader.image_bytes(int(key.split("-")[1]) - 1)
        try:
            fmt = (Image.open(io.BytesIO(data)).format or "png").lower()
        except Exception:  # unreadable images never reach the gallery; keep a safe default
            fmt = "png"
        return data, {"jpeg": "jpg"}.get(fmt, fmt)
    arr = denormalize(crops[index]["image"])
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue(), "png"


def check_gallery_target(out_dir: str | Path, *, param: str = "out_dir") -> None:
    """Refuse a gallery folder that would destroy something: ``out_dir`` must be missing, an
    empty folder or a previous gallery. ``param`` names the parameter in the error.

    Raises:
        SemimtrError: ``out_dir`` is a file, or a non-empty folder that is not a gallery.
    """
    out_dir = Path(out_dir)
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise SemimtrError(f"{out_dir}: exists and is not a folder", param=param)
    index = out_dir / "index.html"
    ours = index.is_file() and GALLERY_MARKER in index.read_text(encoding="utf-8", errors="replace")[:2000]
    if any(out_dir.iterdir()) and not ours:
        raise SemimtrError(f"{out_dir}: a non-empty folder that is not a pseudo-label gallery; refusing to replace it",
                           param=param)


def write_gallery(result: PseudoLabels, crops: CropDataset, out_dir: str | Path, *, limit: int | None = 2000,
                  first: Sequence[dict] = ()) -> dict:
    """A static HTML gallery: ``index.html`` + ``images/`` (copied files): the rows ``first`` (the
    suspected label errors of a label audit, in their order), then the rest lowest confidence first.

    ``crops``: the dataset the teacher ran over (its view: ``result.settings["view"]``), so the
    weak view shows the very input the teacher saw. Built in a temporary folder beside
    ``out_dir`` and renamed into place. A filter (inline JavaScript, no network) shows all
    samples, or those a threshold keeps or drops.

    Returns:
        {"path", "shown", "total"}.
    Raises:
        SemimtrError: ``out_dir`` exists and is neither empty nor a previous gallery.
    """
    out_dir = Path(out_dir)
    check_gallery_target(out_dir)
    view = result.settings.get("view", "clean")
    lead = {r["index"] for r in first}
    ordered = list(first) + sorted((r for r in result.rows if r["index"] not in lead),
                                   key=lambda r: (r["confidence"], r["index"]))
    shown = ordered if limit is None else ordered[:limit]
    with atomic_dir(out_dir) as tmp:
        (tmp / "images").mkdir()
        cards = []
        for rank, r in enumerate(shown, 1):
            data, ext = _gallery_image(crops, r["index"], view)
            name = f"images/{rank:06d}.{ext}"
            (tmp / name).write_bytes(data)
            cards.append(_card(r, name, result.thresholds))
        (tmp / "index.html").write_text(_page(result, cards, len(result.rows)), encoding="utf-8")
        (tmp / "rows.json").write_text(json.dumps(shown, ensure_ascii=False) + "\n", encoding="utf-8")
    return {"path": str(out_dir / "index.html"), "shown": len(shown), "total": len(result.rows)}


def _card(r: dict, image: str, thresholds: Sequence[float]) -> str:
    label = ""
    cls = "card"
    if r["label"] is not None:
        cls += " ok" if r["correct"] else " bad"
        label = f'<div class="gt">label: {html.escape(r["label"])}</div>'
    text = html.escape(r["text"]) if r["text"] else '<span class="empty">(empty)</span>'
    return (
        f'<div class="{cls}" data-min="{r["min_slot_prob"]:.6f}" data-conf="{r["confidence"]:.6f}">'
        f'<img src="{image}" alt="{html.escape(r["key"])}" loading="lazy">'
        f'<div class="pred">{text}</div>'
        f'<div class="meta">conf {r["confidence"]:.3f} &middot; min slot {r["min_slot_prob"]:.3f} &middot; len {r["length"]}</div>'
        f"{label}"
        f'<div class="key">{html.escape(Path(r["lmdb"]).name)}:{html.escape(r["key"])}</div>'
        "</div>"
    )


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:16px;background:#fafafa;color:#222}
h1{font-size:20px;margin:0 0 4px}
.sub{color:#555;font-size:13px;margin-bottom:10px}
.bar{position:sticky;top:0;background:#fff;border:1px solid #ddd;padding:8px 10px;margin-bottom:12px;
     display:flex;gap:14px;align-items:center;flex-wrap:wrap;font-size:14px;z-index:1}
.grid{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:6px;width:220px;font-size:12px}
.card.ok{border-left:5px solid #2a9d4b}.card.bad{border-left:5px solid #d1495b}
.card img{display:block;max-width:208px;max-height:80px;min-height:24px;margin:0 auto 4px;image-rendering:auto;
          background:#eee}
.pred{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:16px;font-weight:600;word-break:break-all}
.meta,.key{color:#666}.gt{color:#333}.empty{color:#999;font-weight:400}
.hidden{display:none}
"""

_SCRIPT = """
function applyFilter(){
  var t=parseFloat(document.getElementById('thr').value);
  var mode=document.querySelector('input[name=mode]:checked').value;
  var cards=document.querySelectorAll('.card'); var shown=0;
  for(var i=0;i<cards.length;i++){
    var kept=parseFloat(cards[i].getAttribute('data-min'))>t;
    var show=(mode==='all')||(mode==='kept'&&kept)||(mode==='dropped'&&!kept);
    cards[i].classList.toggle('hidden',!show); if(show){shown++;}
  }
  document.getElementById('count').textContent=shown+' of '+cards.length+' shown';
}
(function(){var h=location.hash.replace('#','').split('&');for(var i=0;i<h.length;i++){var kv=h[i].split('=');
  if(kv[0]==='t'){document.getElementById('thr').value=kv[1];}
  if(kv[0]==='mode'){var r=document.querySelector('input[name=mode][value='+kv[1]+']');if(r){r.checked=true;}}}})();
document.getElementById('thr').addEventListener('change',applyFilter);
var radios=document.querySelectorAll('input[name=mode]');
for(var i=0;i<radios.length;i++){radios[i].addEventListener('change',applyFilter);}
applyFilter();
"""


def _page(result: PseudoLabels, cards: list[str], total: int) -> str:
    s = result.settings
    options = "".join(f'<option value="{t:g}"{" selected" if abs(t - 0.9) < 1e-9 else ""}>{t:g}</option>'
                      for t in result.thresholds)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><meta name="generator" content="{GALLERY_MARKER}">'
        "<title>pseudo-labels</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>What the teacher would teach</h1>"
        f'<div class="sub">head {html.escape(str(s.get("head")))}, {html.escape(str(s.get("view")))} view, '
        f'seed {s.get("seed")}, confidence = {html.escape(str(s.get("confidence")))} of slot probabilities; '
        f"{len(cards)} of {total} samples, lowest confidence first. A sample is kept at a threshold when every "
        "supervised slot's probability is above it.</div>"
        '<div class="bar"><label>threshold <select id="thr">' + options + "</select></label>"
        '<label><input type="radio" name="mode" value="all" checked> all</label>'
        '<label><input type="radio" name="mode" value="kept"> kept</label>'
        '<label><input type="radio" name="mode" value="dropped"> dropped</label>'
        '<span id="count"></span></div>'
        '<div class="grid">' + "".join(cards) + "</div>"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )
