"""semimtr: semi-supervised scene-text recognition (SemiMTR / ABINet) toolkit."""

__version__ = "0.1.0"
