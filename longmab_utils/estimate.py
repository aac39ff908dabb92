"""How long a GPU profile's notebooks 03-06 take on its target GPU, and whether its batches fit: estimates with inputs.

Measured inputs come from the device check on an H200 (`benchmarks/results/gpu_check-h200*.json`, random weights of
the real shapes; tests/test_estimate.py checks the constants below against those files). A GPU that was not
measured is reached by ratios of its published figures: prefill by dense fp16/bf16 tensor throughput, the weight
and cache reads of a decode step by memory bandwidth, a DPO step by tensor throughput; the per-step host overhead of
the transformers backend (launches, its per-row sampling) is kept as measured, times a host factor. vLLM was never
measured (its wheel is too large for the device check): its decode is a bandwidth bound at a stated efficiency.
Every figure is an upper bound in one respect: each response is counted at its full token limit.

`python -m longmab_utils estimate --profile NAME` prints the table; `reproduce` prints it before it starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .builddata import BuildSettings, built_token_range
from .config import Profile, project_path
from .prompts import COT_ANSWER_TEMPLATE, PROBE_TEMPLATE
from .specs import GPU, GPUS, HubModel, hub_model

GIB = 2**30


MEASURED_ON = "h200"

# Measured on the H200 at the Qwen2.5-3B shape, bf16, 12,000-token prompts, 256 new tokens (gpu_check-h200.json,
# stages generate:gpu-16gb:gen_batch_size=2 and generate:gpu-16gb:gen_batch_size=4, probe).
HF_MEASURED = {"shape": "Qwen/Qwen2.5-3B-Instruct", "prompt": 12000, "new": 256, "seconds": {2: 16.39, 4: 22.45}}
# Peak GiB of the same two runs: the weights plus a per-token cost (cache and prefill activations) linear in the
# tokens in flight (batch x prompt), the base of ACTIVATION_BYTES_PER_HIDDEN.
HF_MEASURED_PEAK_GIB = {2: 8.47, 4: 11.15}
# Evaluation keeps the adapter switchable (PEFT layers on every linear): 11.38 GiB at batch 2 of 15,392-token
# contexts, 32 new tokens (evaluate:gpu-16gb:gen_batch_size=2), the base of adapter_factor; batch 4 ran out of memory.
EVAL_MEASURED = {"batch": 2, "context": 15392, "new": 32, "peak_gib": 11.38}
# QLoRA DPO seconds per step at the profiles' shapes (gpu_check-h200.json and -rerun.json, qlora:* stages).
DPO_MEASURED = {
    "Qwen/Qwen2.5-3B-Instruct": {"max_length": 6800, "seconds": 1.63},  # fp16 (the T4 path); bf16 gave 1.61
    "meta-llama/Llama-3.1-8B-Instruct": {"max_length": 8500, "seconds": 3.60},
}
PREFILL_EFFICIENCY = 0.5  # share of peak tensor throughput a long prefill reaches (assumed)
VLLM_BANDWIDTH_EFFICIENCY = 0.5  # share of the bandwidth bound vLLM's decode reaches (assumed, not measured)
VLLM_MAX_SEQS = 256  # vLLM's default max_num_seqs
MODEL_LOAD_SECONDS = 120  # one download-or-load of the policy; notebooks 03-06 load it four times (assumed)
ANSWER_TOKENS = 300  # the chat template, the question and the instructions around a context (upper bound)


def activation_bytes_per_hidden() -> float:
    """Prefill working memory per prompt token per unit of hidden size, from the two measured HF peaks."""
    model = hub_model(HF_MEASURED["shape"])
    tokens = {b: b * HF_MEASURED["prompt"] for b in HF_MEASURED_PEAK_GIB}
    slope = (HF_MEASURED_PEAK_GIB[4] - HF_MEASURED_PEAK_GIB[2]) * GIB / (tokens[4] - tokens[2])
    return (slope - model.kv_bytes_per_token()) / model.hidden


def row_bytes(model: HubModel, prompt: int, new: int) -> float:
    """Bytes one row of a transformers generate call holds: its cache and its prefill activations."""
    return (prompt + new) * model.kv_bytes_per_token() + prompt * activation_bytes_per_hidden() * model.hidden


def adapter_factor() -> float:
    """How much more a row holds with a switchable (unmerged) adapter, from the measured evaluation peak."""
    model, measured = hub_model(HF_MEASURED["shape"]), EVAL_MEASURED
    rows = measured["batch"] * row_bytes(model, measured["context"] - measured["new"], measured["new"])
    return (measured["peak_gib"] * GIB - model.weight_bytes()) / rows


def hf_memory_gib(model: HubModel, batch: int, prompt: int, new: int, adapter: bool = False) -> float:
    """Peak GiB of one transformers generate call: bf16 weights plus every row's cache and activations."""
    factor = adapter_factor() if adapter else 1.0
    return (model.weight_bytes() + batch * row_bytes(model, prompt, new) * factor) / GIB


def prefill_seconds(model: HubModel, tokens: int, gpu: GPU) -> float:
    """Seconds to prefill one prompt: weight FLOPs plus causal attention FLOPs at PREFILL_EFFICIENCY."""
    flops = 2 * model.params * tokens + 2 * model.layers * model.hidden * tokens**2
    return flops / (gpu.flops * PREFILL_EFFICIENCY)


def hf_overhead() -> tuple[float, float]:
    """(fixed, per row) host seconds of one transformers decode step, fitted to the two measured batches."""
    model, measured, gpu = hub_model(HF_MEASURED["shape"]), HF_MEASURED, GPUS[MEASURED_ON]
    steps = {}
    for batch, seconds in measured["seconds"].items():
        reads = model.weight_bytes() + batch * (measured["prompt"] + measured["new"] / 2) * model.kv_bytes_per_token()
        decode = seconds - batch * prefill_seconds(model, measured["prompt"], gpu)
        steps[batch] = decode / measured["new"] - reads / gpu.bandwidth
    per_row = (steps[4] - steps[2]) / 2
    return steps[2] - 2 * per_row, per_row


def hf_seconds(model: HubModel, rows: int, batch: int, prompt: int, new: int, gpu: GPU) -> float:
    """Seconds for `rows` transformers generations in batches: prefill, then `new` decode steps per batch."""
    fixed, per_row = hf_overhead()
    total = 0.0
    for start in range(0, rows, batch):
        size = min(batch, rows - start)
        reads = model.weight_bytes() + size * (prompt + new / 2) * model.kv_bytes_per_token()
        step = (fixed + per_row * size) * gpu.host_factor + reads / gpu.bandwidth
        total += size * prefill_seconds(model, prompt, gpu) + new * step
    return total


def vllm_seconds(model: HubModel, rows: int, prompt: int, new: int, gpu: GPU) -> float:
    """Seconds for `rows` vLLM generations: prefill at PREFILL_EFFICIENCY, decode as a bandwidth bound."""
    context = prompt + new
    cache = 0.9 * gpu.memory_gib * GIB - model.weight_bytes() - 2 * GIB
    seqs = max(1, min(VLLM_MAX_SEQS, rows, int(cache // (context * model.kv_bytes_per_token()))))
    reads = model.weight_bytes() + seqs * (prompt + new / 2) * model.kv_bytes_per_token()
    step = reads / (gpu.bandwidth * VLLM_BANDWIDTH_EFFICIENCY)
    return rows * prefill_seconds(model, prompt, gpu) + math.ceil(rows / seqs) * new * step


@dataclass(frozen=True)
class Stage:
    """One line of an estimate: what runs, how often, and its seconds."""

    name: str
    work: str
    seconds: float


def training_lengths(profile: Profile) -> tuple[int, int]:
    """(samples, mean context tokens) of the training data, from a built file's name or the file itself."""
    built = built_token_range(profile.data)
    if built:
        return profile.max_samples or BuildSettings.samples, sum(built) // 2
    from .data import read_records

    records = read_records(project_path(profile.data))[: profile.max_samples]
    return len(records), sum(len(r["context"]) for r in records) // (4 * len(records))


def eval_lengths(profile: Profile, budget: int) -> list[int]:
    """Prompt tokens of each evaluation item (about 4 characters a token, cut to the budget)."""
    from .data import read_records
    from .evaluation import eval_files

    tokens = []
    for path in eval_files(project_path(profile.eval_data)):
        items = read_records(path)[: profile.eval_max_items]
        tokens += [min(budget, len(item["context"]) // 4) + ANSWER_TOKENS for item in items]
    return tokens


def generate(profile: Profile, model: HubModel, rows: int, batch: int, prompt: int, new: int, gpu: GPU) -> float:
    """Seconds of one generation stage with the profile's backend (`auto` is vLLM on a CUDA box)."""
    if profile.backend == "hf":
        return hf_seconds(model, rows, batch, prompt, new, gpu)
    return vllm_seconds(model, rows, prompt, new, gpu)


def estimate(profile: Profile, gpu_name: str | None = None) -> list[Stage]:
    """The stages of notebooks 03-06 of a GPU profile on its target GPU (or `gpu_name`), with their seconds."""
    gpu = GPUS[gpu_name or profile.target_gpu]
    model = hub_model(profile.policy_model)
    samples, context = training_lengths(profile)
    probe = context + len(PROBE_TEMPLATE) // 4 + ANSWER_TOKENS
    rollout = profile.top_k * profile.chunk_size + len(COT_ANSWER_TEMPLATE) // 4 + ANSWER_TOKENS
    responses = samples * profile.rounds
    dpo = profile.dpo
    train_pairs = math.ceil(samples * (1 - dpo.val_size))  # at most one pair per sample
    steps = math.ceil(train_pairs / (dpo.batch_size * dpo.grad_accum)) * dpo.epochs
    measured = DPO_MEASURED[profile.policy_model]
    per_step = measured["seconds"] * dpo.max_length / measured["max_length"] * GPUS[MEASURED_ON].flops / gpu.flops
    evals = 10 * math.ceil(samples * dpo.val_size)  # about ten evaluations of the held-out pairs, forward only
    forward_only = (samples + evals) * per_step / 3
    budget = profile.eval_max_input_len
    items = eval_lengths(profile, budget)
    eval_batch = profile.eval_batch_size or profile.gen_batch_size
    evaluation = 2 * generate(profile, model, len(items), eval_batch, max(items), profile.eval_max_new_tokens, gpu)
    return [
        Stage("03 probe", f"{samples} x {probe:,} prompt + {profile.probe_max_new_tokens} new tokens",
              generate(profile, model, samples, profile.gen_batch_size, probe, profile.probe_max_new_tokens, gpu)),
        Stage("03 rollout", f"{samples} x {profile.rounds} rounds x {rollout:,} prompt + {profile.max_new_tokens} new",
              generate(profile, model, responses, profile.gen_batch_size, rollout, profile.max_new_tokens, gpu)),
        Stage("05 DPO", f"{steps:g} steps x {per_step:.1f} s + reference and held-out passes", steps * per_step
              + forward_only),
        Stage("06 evaluation", f"2 models x {len(items)} items x <= {budget:,} prompt + "
              f"{profile.eval_max_new_tokens} new tokens", evaluation),
        Stage("model loads", f"4 x {MODEL_LOAD_SECONDS} s (download or load, assumed)", 4 * MODEL_LOAD_SECONDS),
    ]  # fmt: skip


def hours(stages: list[Stage]) -> float:
    """The estimate's total in hours."""
    return sum(stage.seconds for stage in stages) / 3600


def format_estimate(profile: Profile, gpu_name: str | None = None) -> str:
    """The estimate as a few lines: the GPU, the backend, one line per stage, the total."""
    gpu = GPUS[gpu_name or profile.target_gpu]
    stages = estimate(profile, gpu_name)
    backend = "transformers" if profile.backend == "hf" else "vLLM"
    lines = [f"estimated time of notebooks 03-06, profile {profile.name}, on one {gpu.label} ({backend} generation):"]
    lines += [f"  {s.name:<14}{s.seconds / 60:>7.0f} min   {s.work}" for s in stages]
    lines.append(f"  {'total':<14}{hours(stages):>7.1f} h     every response counted at its token limit")
    return "\n".join(lines)
