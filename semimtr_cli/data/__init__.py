"""Data path: LMDB I/O, label sources, datasets, augmentation, synthetic crops."""
