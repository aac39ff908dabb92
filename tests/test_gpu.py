"""CUDA smoke checks for a GPU box: `.venv/bin/python -m pytest -m gpu -s` (deselected by `make test`).

They run the paths a CPU cannot: QLoRA DPO with bitsandbytes 4-bit and bf16 generation on CUDA,
with the bundled policy so that nothing is downloaded, and print peak GPU memory and speed.
"""

import json
import math
import time

import pytest
import torch
from test_dpo import PAIRS

from longmab_utils.config import get_profile
from longmab_utils.dpo import DPOSettings, train_dpo
from longmab_utils.generation import SamplingConfig, build_generator
from longmab_utils.models import BUNDLED_POLICY
from longmab_utils.pipeline import load_samples
from longmab_utils.prompts import cot_answer_prompt, user_message

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_qlora_dpo_steps_in_4bit_on_cuda(tmp_path):
    pairs_path = tmp_path / "pairs.jsonl"
    pairs_path.write_text("".join(json.dumps(p) + "\n" for p in PAIRS * 4))
    settings = DPOSettings(epochs=1, batch_size=2, warmup=0.0, learning_rate=1e-4, max_length=256, val_size=0.0)
    torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    result = train_dpo(pairs_path, BUNDLED_POLICY, tmp_path, settings)
    seconds = time.perf_counter() - began
    losses = [entry["loss"] for entry in result["log"] if "loss" in entry]
    print(
        f"QLoRA: {len(losses)} steps, {seconds / len(losses):.2f} s/step (incl. load), "
        f"peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
    )
    assert losses and all(math.isfinite(float(loss)) for loss in losses)
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["r"] == settings.lora_rank


def test_hf_generation_in_bf16_on_cuda():
    profile = get_profile("cpu-tiny", {"dtype": "auto", "gen_batch_size": 16})
    generator = build_generator(profile)
    assert next(generator.model.parameters()).dtype == torch.bfloat16
    prompts = [user_message(cot_answer_prompt(s["context"], s["question"])) for s in load_samples(profile)[:16]]
    began = time.perf_counter()
    texts = generator.generate(prompts, SamplingConfig(max_new_tokens=64, seed=0))
    seconds = time.perf_counter() - began
    print(f"HF bf16 generation: {16 * 64 / seconds:.0f} new tokens/s at batch 16")
    assert len(texts) == 16 and all(texts)
