import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(2)
# `precision: auto` must not depend on the CPU the suite runs on: force the no-native-bf16 answer
os.environ.setdefault("SEMIMTR_CPU_BF16", "0")
