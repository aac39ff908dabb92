"""Warm-start the bundled CPU policy: a short LoRA SFT that teaches the answer format and single-fact lookups.

Introduced in notebook 03. SmolLM2-135M-Instruct cannot follow the chain-of-thought answer format
out of the box (no gold answers on a toy lookup task), so every CPU reward would be zero. This
trains a LoRA adapter with TRL on synthetic single-hop lookups whose entity names come from the
"warmstart" pool, disjoint from the bundled train and evaluation data, so multi-hop questions stay
partly unsolved and rollout rewards vary. Run: `python -m longmab_utils.warmstart --out data/warmstart_adapter`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .artifacts import ADAPTER_WEIGHTS, PROVENANCE
from .data import write_json
from .metrics import pair_score
from .models import BUNDLED_POLICY, load_policy
from .prompts import cot_answer_prompt, user_message
from .synthetic import generate_samples

TARGET_TOKENS = (100, 220)


def completion(sample: dict) -> str:
    """The target response: cite the evidence sentence, then the required 'Answer:' line."""
    evidence = " ".join(sample["evidence"])
    return (
        f'Reasoning: The document says: "{evidence}" So the answer is {sample["answer"]}.\nAnswer: {sample["answer"]}'
    )


def sft_records(n: int, seed: int) -> list[dict]:
    """Conversational prompt-completion records for TRL from warmstart-pool single-hop lookups."""
    samples = generate_samples(n, seed=seed, target_tokens=TARGET_TOKENS, hops=1, pool="warmstart", id_prefix="warm")
    return [
        {
            "prompt": user_message(cot_answer_prompt(s["context"], s["question"])),
            "completion": [{"role": "assistant", "content": completion(s)}],
            "answer": s["answer"],
        }
        for s in samples
    ]


def train_adapter(out: Path, steps: int, seed: int, rank: int, batch_size: int, learning_rate: float) -> dict:
    """Train the LoRA adapter with TRL's SFTTrainer and save it as fp16 safetensors; returns provenance."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(seed)
    model, tokenizer = load_policy(BUNDLED_POLICY, dtype="float32")
    records = sft_records(steps * batch_size, seed)
    config = SFTConfig(
        output_dir=str(out / "_trainer"),
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, steps // 10),
        logging_steps=max(1, steps // 16),
        save_strategy="no",
        report_to="none",
        seed=seed,
        max_length=1024,
        completion_only_loss=True,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        bf16=False,
        activation_checkpointing=False,  # TRL defaults both on; on a CPU they make steps minutes long
    )
    lora = LoraConfig(
        r=rank, lora_alpha=2 * rank, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    dataset = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in records])
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer, peft_config=lora)
    start = time.time()
    trainer.train()
    trainer.model.save_pretrained(out)
    weights = out / ADAPTER_WEIGHTS
    save_file({k: v.to(torch.float16).contiguous() for k, v in load_file(weights).items()}, weights)
    shutil.rmtree(out / "_trainer", ignore_errors=True)
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    return {
        "steps": steps,
        "seed": seed,
        "rank": rank,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "train_samples": len(records),
        "target_tokens": list(TARGET_TOKENS),
        "pool": "warmstart",
        "seconds": round(time.time() - start, 1),
        "loss_first": losses[0],
        "loss_last": losses[-1],
    }


def lookup_accuracy(adapter: str | None, n: int = 16, seed: int = 999) -> float:
    """Share of held-out warmstart-pool lookups answered exactly (greedy), with or without the adapter."""
    from .generation import HFGenerator, SamplingConfig

    model, tokenizer = load_policy(BUNDLED_POLICY, adapter=adapter, dtype="float32")
    records = sft_records(n, seed)
    texts = HFGenerator(model, tokenizer, batch_size=8).generate(
        [r["prompt"] for r in records], SamplingConfig(temperature=0.0, presence_penalty=0.0, max_new_tokens=96)
    )
    return sum(pair_score(text, r["answer"]) == 1.0 for text, r in zip(texts, records)) / n


def main(argv: Sequence[str] | None = None) -> None:
    """Train the warm-start adapter and record its provenance next to it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/warmstart_adapter"))
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=4e-4)
    args = parser.parse_args(argv)
    provenance = train_adapter(args.out, args.steps, args.seed, args.rank, args.batch_size, args.learning_rate)
    provenance["lookup_accuracy_base"] = lookup_accuracy(None)
    provenance["lookup_accuracy_adapter"] = lookup_accuracy(str(args.out))
    provenance["command"] = " ".join(["python -m longmab_utils.warmstart", *(sys.argv[1:] if argv is None else argv)])
    write_json(args.out / PROVENANCE, provenance)
    print(json.dumps(provenance, indent=2))


if __name__ == "__main__":
    main()
