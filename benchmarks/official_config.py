"""The official code's config object for the paper model, without its YAML loader (shared by the
benchmarks that import the official modules: model_speed.py, official_eval.py)."""

from __future__ import annotations


class OfficialConfig:
    """Attribute bag that answers None for keys it lacks, as the official ``Config`` does."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __getattr__(self, k):
        return None


def official_config(charset_path: str) -> OfficialConfig:
    """The paper model's settings (ABINet iterative model, 3 iterations, 4 LM layers)."""
    return OfficialConfig(dataset_max_length=25, dataset_charset_path=str(charset_path), model_vision_attention="position",
                          model_vision_backbone="transformer", model_vision_backbone_ln=3, model_language_num_layers=4,
                          model_language_detach=True, model_language_use_self_attn=False, model_iter_size=3)
