"""One rank of a distributed DPO run (`python -m torch.distributed.run ... tests/dpo_rank.py FOLDER`).

FOLDER holds `model/` and `pairs.jsonl`; reference log-probs are precomputed, as the GPU profiles train.
"""

import json
import sys
from pathlib import Path

from longmab_utils.dpo import DPOSettings, train_dpo

folder = Path(sys.argv[1])
settings = DPOSettings(
    quantization="none", gradient_checkpointing=False, epochs=1, batch_size=1, warmup=0.0, max_length=128
)
result = train_dpo(folder / "pairs.jsonl", str(folder / "model"), folder / "out", settings, dtype="float32")
print("trained on", json.dumps({"train_pairs": result["train_pairs"], "val_pairs": result["val_pairs"]}))
