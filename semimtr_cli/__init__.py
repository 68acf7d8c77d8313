"""semimtr: semi-supervised scene-text recognition (SemiMTR / ABINet) toolkit.

``load_model("default")`` (or a checkpoint / ``.onnx`` path) gives a :class:`Reader` whose
``read(images)`` returns each image's text and confidence.
"""

__version__ = "0.1.0"


def load_model(checkpoint="default", **options):
    """A :class:`semimtr_cli.infer.reading.Reader` for ``checkpoint`` (``default``: the shipped
    model); ``options``: ``head``, ``device``, ``precision``, ``batch_size``."""
    from semimtr_cli.infer.reading import Reader

    return Reader(checkpoint, **options)
