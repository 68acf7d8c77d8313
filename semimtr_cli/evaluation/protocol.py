"""The evaluation protocol: which labels count, how predictions are normalised, which heads.

:class:`Protocol` names the charset labels are normalised with (default preset ``36``:
lower-cased, symbols outside a-z0-9 removed) and the image pipeline; predictions are normalised
the same way (:func:`normalize_prediction`); :func:`check_charset_fit` refuses a model whose
charset cannot produce the protocol's symbols; :func:`resolve_heads` expands ``--head``.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import SemimtrError, option
from semimtr_cli.infer.backend import FINAL_HEAD
from semimtr_cli.model.outputs import HEADS


# ------------------------------------------------------------------------------ protocol
@dataclass
class Protocol:
    """How samples are filtered, normalised and scored (stated in every result)."""

    name: str = "paper"
    charset: Charset = field(default_factory=lambda: Charset.preset("36"))
    rotate_tall: bool = False
    confidence: str = "product"
    weights: str = "num_samples"
    min_side: int = 1  # every decodable crop is scored (IIIT5K test holds a 6x12 px one); the official loader's 7 on request
    subsets: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        cs = self.charset
        return {
            "name": self.name,
            "charset": cs.name,
            "symbols": "".join(cs.symbols),
            "case_sensitive": cs.case_sensitive,
            "max_length": cs.max_length,
            "unknown_symbols": cs.unknown,
            "normalisation": cs.describe(),
            "skipped": "samples whose normalised label is empty or longer than max_length",
            "bad_images": (f"images that cannot be decoded{' or are smaller than %d px' % self.min_side if self.min_side > 1 else ''}"
                           " count as wrong words and are listed"),
            "predictions": "case-folded like labels, symbols outside the charset removed",
            "rotate_tall": self.rotate_tall,
            "confidence": self.confidence,
            "weighted_average_weights": (
                "LMDB num-samples per set, skipped samples included (official)" if self.weights == "num_samples"
                else "evaluated samples per set"),
            "subsets": dict(self.subsets),
        }


def normalize_prediction(text: str, charset: Charset) -> str:
    """A prediction as the protocol compares it: Unicode form, case folding, out-of-set symbols removed."""
    if charset.unicode_form != "none":
        text = unicodedata.normalize(charset.unicode_form, text)
    if not charset.case_sensitive:
        text = text.lower()
    allowed = set(charset.symbols)
    return "".join(ch for ch in text if ch in allowed)


def check_charset_fit(model_charset: Charset, protocol: Charset, source: str) -> None:
    """The protocol must not require symbols the model can never produce.

    Raises:
        SemimtrError: naming the checkpoint and the missing symbols.
    """
    producible = set(normalize_prediction("".join(model_charset.symbols), protocol))
    missing = [s for s in protocol.symbols if s not in producible]
    if missing:
        shown = "".join(missing[:20]) + ("..." if len(missing) > 20 else "")
        raise SemimtrError(
            f"{source}: the model's charset '{model_charset.name}' ({len(model_charset.symbols)} symbols) cannot "
            f"produce {len(missing)} symbol(s) of the protocol charset '{protocol.name}' ({shown!r}); "
            f"evaluate with {option('charset')} {model_charset.name if model_charset.name in ('36', '62', '94') else '36'} "
            "or a charset the model covers"
        )


def resolve_heads(predictor, head: str) -> list[str]:
    """``all`` -> every head the model has; ``final`` -> the model's answer head; otherwise the
    one head (checked)."""
    if head == "all":
        return list(predictor.heads)
    return [predictor.resolve_head(head)]


HEAD_CHOICES = (FINAL_HEAD,) + HEADS + ("all",)
