"""Typed run profiles: one dataclass whose fields every CLI command and notebook reads.

Introduced in notebook 01. `get_profile(name, overrides)` returns a profile with `--set key=value`
overrides applied and type-checked; the run directory records the effective settings.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .models import BUNDLED_EMBEDDER, BUNDLED_POLICY


@dataclass(frozen=True)
class DPOSettings:
    """The training knobs; defaults are the reference's (METHOD.md section 6)."""

    beta: float = 0.1
    """DPO temperature on the log-ratio margin."""
    sft_weight: float = 0.1
    """Weight of the NLL term on chosen responses (ftx: 0.1 for Llama-3.1, 0.2 for Qwen2.5)."""
    learning_rate: float = 2e-5
    """AdamW peak learning rate."""
    epochs: float = 2.0
    """Passes over the training pairs."""
    warmup: float = 0.1
    """Share of steps with linear warmup, then cosine decay."""
    batch_size: int = 1
    """Pairs per device per step."""
    grad_accum: int = 1
    """Gradient accumulation steps."""
    max_length: int = 8500
    """Cutoff in tokens for prompt plus response."""
    val_size: float = 0.1
    """Share of pairs held out for evaluation during training."""
    lora_rank: int = 8
    """LoRA rank on every linear layer."""
    lora_alpha: int = 16
    """LoRA scaling numerator."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA path."""
    quantization: str = "4bit"
    """`4bit` (QLoRA, NF4, double quantization, bf16 compute; needs CUDA) or `none` (plain LoRA)."""
    gradient_checkpointing: bool = True
    """Recompute activations in the backward pass (memory for time)."""
    precompute_ref: bool = True
    """Compute the frozen reference's log-probs once before training (the same loss, one forward less per step)."""
    logging_steps: int = 1
    """Steps between logged losses."""
    deepspeed: str | None = None
    """DeepSpeed config for multi-GPU runs under `accelerate launch` (configs/deepspeed_zero2.json), or None."""
    seed: int = 42
    """Seed of the split, the data order and the LoRA initialisation (training takes the run's seed)."""


@dataclass(frozen=True)
class Profile:
    """Every knob of a run; the defaults are the paper's (METHOD.md), profiles below change what they must."""

    name: str = "paper"
    """Profile name, recorded in run folders and manifests."""
    policy_model: str = "meta-llama/Llama-3.1-8B-Instruct"
    """Policy: a Hugging Face id, a local folder, or `bundled:smollm2-135m-instruct`."""
    policy_adapter: str | None = None
    """LoRA adapter merged into the policy before generation (the CPU warm-start adapter), or None."""
    embedding_model: str = "openbmb/MiniCPM-Embedding"
    """Embedder for probe/query priors: a Hugging Face id, a local folder, or `bundled:all-minilm-l6-v2`."""
    trust_remote_code: bool = False
    """Allow model repositories to run their own code (MiniCPM-Embedding needs it); off unless a profile opts in."""
    backend: str = "auto"
    """Generation backend: `auto` (vLLM when importable and CUDA is present, else HF), `hf` or `vllm`."""
    dtype: str = "auto"
    """Model dtype: `auto` (bf16 on CUDA compute capability >= 8, fp16 on older GPUs, fp32 on CPU) or a dtype name."""
    data: str = "data/sample/long/train.jsonl"
    """Training samples (JSONL: id, question or input, answer, context)."""
    max_samples: int | None = None
    """Use only the first N samples (None: all)."""
    chunk_size: int = 1500
    """Chunk budget in policy tokens."""
    overlap: int = 2
    """Pieces shared between consecutive chunks."""
    min_sentences: int = 2
    """A final chunk with fewer pieces (overlap included) is merged into the previous one."""
    prior: str = "probe_similarity"
    """Arm priors: `probe_similarity`, `query_similarity` or `random`."""
    keep_invalid_probes: bool = False
    """Keep samples without a valid probe, with query-similarity priors (the reference drops them)."""
    probe_max_new_tokens: int = 1024
    """Token limit of the probe chain of thought."""
    rounds: int = 30
    """Rollout rounds per sample (responses per sample)."""
    top_k: int = 4
    """Chunks shown to the policy per round."""
    policy: str = "ucb"
    """Chunk-selection policy: `ucb` (the paper) or a baseline from bandit.POLICIES."""
    reward_subem_on: str = "response"
    """Rollout reward's SubEM over the whole `response` (reference) or the extracted `answer`."""
    temperature: float = 1.0
    """Sampling temperature of probe and rollout."""
    top_p: float = 0.95
    """Nucleus sampling mass."""
    presence_penalty: float = 1.0
    """Subtracted once from the logit of every token already generated."""
    max_new_tokens: int = 1024
    """Token limit of each rollout response."""
    rollout_batch: int = 50
    """Samples that advance one round together per batched generate call."""
    gen_batch_size: int = 16
    """Sequences per forward pass of the HF backend."""
    max_model_len: int | None = 30000
    """vLLM context length (capped at the model's own limit); None: the model's limit."""
    tensor_parallel_size: int = 1
    """vLLM tensor parallelism (GPUs per model)."""
    gpu_memory_utilization: float = 0.9
    """Fraction of GPU memory vLLM may take."""
    enable_prefix_caching: bool = True
    """vLLM prefix caching (the long shared document prefix)."""
    max_prompt_length: int = 8192
    """DPO prompt budget in tokens (METHOD.md section 5)."""
    dpo: DPOSettings = field(default_factory=DPOSettings)
    """DPO and LoRA settings (METHOD.md section 6); override with `--set dpo.beta=0.2`."""
    eval_data: str = "data/sample/long/eval"
    """Evaluation folder (or file) in LongBench format: `input`, `context`, `answers` (JSONL or parquet)."""
    eval_max_input_len: int = 100_000
    """Token limit of the filled evaluation template; longer prompts keep their first and last halves."""
    eval_max_new_tokens: int = 1024
    """Token limit of each evaluation answer (greedy)."""
    eval_max_items: int | None = None
    """Evaluate only the first N items of each file (None: all)."""
    ablation_samples: int | None = None
    """Probed samples rolled out under every policy of the ablation study, notebook 07 (None: all)."""
    seed: int = 42
    """The one seed of the run."""


CPU_TINY = Profile(
    name="cpu-tiny",
    policy_model=BUNDLED_POLICY,
    policy_adapter="data/warmstart_adapter",
    embedding_model=BUNDLED_EMBEDDER,
    backend="hf",
    dtype="float32",
    data="data/sample/tiny/train.jsonl",
    max_samples=24,
    chunk_size=100,
    top_k=2,
    rounds=6,
    probe_max_new_tokens=96,
    max_new_tokens=64,
    rollout_batch=16,
    gen_batch_size=16,
    max_prompt_length=256,
    dpo=DPOSettings(quantization="none", gradient_checkpointing=False, learning_rate=1e-4, max_length=540),
    eval_data="data/sample/tiny/eval",
    eval_max_input_len=1024,
    eval_max_new_tokens=64,
    eval_max_items=4,
    ablation_samples=5,
)

CPU_LONG = replace(
    CPU_TINY,
    name="cpu-long",
    data="data/sample/train.jsonl",
    max_samples=None,
    chunk_size=160,
    top_k=4,
    rounds=8,
    max_prompt_length=1024,
    dpo=replace(CPU_TINY.dpo, learning_rate=5e-5, max_length=1200),
    eval_data="data/sample/eval",
    eval_max_items=None,
)

PROFILES: dict[str, Profile] = {
    "paper": Profile(),
    "gpu-16gb": Profile(
        name="gpu-16gb",
        policy_model="Qwen/Qwen2.5-3B-Instruct",
        embedding_model=BUNDLED_EMBEDDER,
        backend="hf",
        rounds=16,
        max_new_tokens=512,
        probe_max_new_tokens=512,
        gen_batch_size=8,
        max_model_len=16384,
        max_prompt_length=6144,
        dpo=DPOSettings(sft_weight=0.2, max_length=6800),
    ),
    "cpu-tiny": CPU_TINY,
    "cpu-long": CPU_LONG,
    "cpu-ablation": replace(CPU_TINY, name="cpu-ablation", max_samples=None, ablation_samples=None),
    "smoke": replace(
        CPU_TINY,
        name="smoke",
        max_samples=3,
        keep_invalid_probes=True,  # 24-token probes rarely finish; tests still need samples to roll out
        top_k=2,
        rounds=2,
        probe_max_new_tokens=24,
        max_new_tokens=16,
        rollout_batch=2,
        gen_batch_size=4,
        eval_max_input_len=512,
        eval_max_new_tokens=16,
        eval_max_items=2,
    ),
}


def _coerce(name: str, annotation: Any, text: str) -> Any:
    """Parse a `--set` value for a field of the given type annotation."""
    hints = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    if type(None) in hints and text.lower() in ("none", "null"):
        return None
    for hint in (h for h in hints if h is not type(None)):
        if hint is bool:
            if text.lower() in ("true", "1", "yes", "false", "0", "no"):
                return text.lower() in ("true", "1", "yes")
            raise ValueError(f"--set {name}={text}: expected true or false")
        try:
            return hint(text)
        except ValueError:
            raise ValueError(f"--set {name}={text}: expected {hint.__name__}") from None
    raise ValueError(f"--set {name}={text}: unsupported type")


def _apply(settings: Any, overrides: dict[str, Any], prefix: str = "") -> Any:
    """A copy of a settings dataclass with overrides; `outer.inner` keys reach nested settings."""
    hints = typing.get_type_hints(type(settings))
    known = {f.name for f in fields(settings)}
    changes, nested = {}, {}
    for key, value in overrides.items():
        outer, dot, inner = key.partition(".")
        if outer not in known or (dot and not dataclasses.is_dataclass(getattr(settings, outer))):
            names = ", ".join(prefix + k for k in sorted(known))
            raise ValueError(f"--set {prefix}{key}: unknown setting; known: {names}")
        if dot:
            nested.setdefault(outer, {})[inner] = value
        elif isinstance(value, str) and hints[key] is not str:
            changes[key] = _coerce(prefix + key, hints[key], value)
        else:
            changes[key] = value
    for outer, inner in nested.items():
        changes[outer] = _apply(getattr(settings, outer), inner, f"{prefix}{outer}.")
    return replace(settings, **changes)


def get_profile(name: str, overrides: dict[str, Any] | None = None) -> Profile:
    """The named profile with overrides applied; strings (from `--set`) are parsed to the field's type."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    return _apply(PROFILES[name], overrides or {})


def notebook_profile(name: str, seed: int, overrides: dict[str, Any] | None = None, **knobs: Any) -> Profile:
    """The profile a notebook runs: its parameters seed, overrides and chapter knobs (None keeps the profile's)."""
    chosen = {key: value for key, value in knobs.items() if value is not None}
    return get_profile(name, {**(overrides or {}), **chosen, "seed": seed})


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """Turn ['key=value', ...] from the command line into a dict, rejecting malformed items."""
    result = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        result[key.strip()] = value
    return result


PROJECT_ROOT = Path(__file__).resolve().parents[1]


def project_path(path: str | Path) -> Path:
    """The path as given when it exists or is absolute, else under the project root (notebooks run in notebooks/)."""
    path = Path(path).expanduser()
    if path.is_absolute() or path.exists() or not (PROJECT_ROOT / path).exists():
        return path
    return PROJECT_ROOT / path


def as_dict(profile: Profile) -> dict[str, Any]:
    """The profile as a plain dict (for manifests and notebook parameters)."""
    return dataclasses.asdict(profile)
