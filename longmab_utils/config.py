"""Typed run profiles: every knob of a run, with its docstring, validated when a profile is built.

Introduced in notebook 01. `get_profile(name, overrides)` returns a profile with `--set key=value`
overrides applied (`--set dpo.beta=0.2` reaches the DPO settings); a bad value, an unknown key or a
wrong nesting raises `SettingsError` naming the field, the value and what is allowed, before any model
loads. `python -m longmab_utils settings --profile NAME` prints every key with its value and docstring.
The run directory records the effective settings.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass
from pydantic.fields import FieldInfo

from .bandit import POLICIES
from .bundled import BUNDLED_EMBEDDER, BUNDLED_POLICY
from .embeddings import PRIOR_KINDS
from .errors import UserError
from .specs import GPUS

# Lax parsing turns `--set` strings into each field's type; unknown keys and inf/nan are refused.
SETTINGS = ConfigDict(extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False)


class SettingsError(UserError):
    """A profile name, a `--set` item or a setting's value that is not allowed."""


def _count_or_all(value: int | None) -> int | None:
    """Reject 0 for a sample limit: None already means all of them."""
    if value is not None and value < 1:
        raise ValueError("should be >= 1, or none for all (0 is not a limit)")
    return value


Count = Annotated[int, Field(ge=1)]
Limit = Annotated[int | None, AfterValidator(_count_or_all)]
Seed = Annotated[int, Field(ge=0, lt=2**63)]
Share = Annotated[float, Field(ge=0, lt=1)]
Backend = Literal["auto", "hf", "vllm"]
Dtype = Literal["auto", "float32", "float16", "bfloat16"]
Prior = Literal[PRIOR_KINDS]
Policy = Literal[POLICIES]
TargetGPU = Literal[tuple(GPUS)]


@dataclass(frozen=True, config=SETTINGS)
class DPOSettings:
    """The training knobs; defaults are the reference's (METHOD.md section 6)."""

    beta: Annotated[float, Field(gt=0)] = 0.1
    """DPO temperature on the log-ratio margin."""
    sft_weight: Annotated[float, Field(ge=0)] = 0.1
    """Weight of the NLL term on chosen responses (ftx: 0.1 for Llama-3.1, 0.2 for Qwen2.5)."""
    learning_rate: Annotated[float, Field(gt=0)] = 2e-5
    """AdamW peak learning rate."""
    epochs: Annotated[float, Field(gt=0)] = 2.0
    """Passes over the training pairs."""
    warmup: Annotated[float, Field(ge=0, le=1)] = 0.1
    """Share of steps with linear warmup, then cosine decay."""
    batch_size: Count = 1
    """Pairs per device per step."""
    grad_accum: Count = 1
    """Gradient accumulation steps."""
    max_length: Count = 8500
    """Cutoff in tokens for prompt plus response."""
    val_size: Share = 0.1
    """Share of pairs held out for evaluation during training."""
    lora_rank: Count = 8
    """LoRA rank on every linear layer."""
    lora_alpha: Count = 16
    """LoRA scaling numerator."""
    lora_dropout: Share = 0.0
    """Dropout on the LoRA path."""
    quantization: Literal["4bit", "none"] = "4bit"
    """`4bit` (QLoRA, NF4, double quantization, bf16 compute; needs CUDA) or `none` (plain LoRA)."""
    gradient_checkpointing: bool = True
    """Recompute activations in the backward pass (memory for time)."""
    precompute_ref: bool = True
    """Compute the frozen reference's log-probs once before training (the same loss, one forward less per step)."""
    logging_steps: Count = 1
    """Steps between logged losses."""
    eval_steps: Count | None = None
    """Steps between evaluations on the held-out pairs (None: about 10 evaluations over the run)."""
    save_steps: Count | None = None
    """Steps between checkpoints that a crashed run resumes from (None: about 10 over the run)."""
    deepspeed: str | None = None
    """DeepSpeed config for multi-GPU runs under `accelerate launch` (configs/deepspeed_zero2.json), or None."""
    report_to: Literal["none", "tensorboard"] = "none"
    """Where TRL's trainer also logs (its `report_to`): `tensorboard` keeps event files in `adapter/runs/` (needs
    the `tensorboard` or `tensorboardX` package)."""
    seed: Annotated[int | None, Field(ge=0, lt=2**32)] = None
    """Seed of the split, the data order and the LoRA initialisation (None: derived from the run's seed)."""


@dataclass(frozen=True, config=SETTINGS)
class Profile:
    """Every knob of a run; the defaults are the paper's (METHOD.md), profiles below change what they must."""

    name: str = "paper"
    """Profile name, recorded in run folders and manifests."""
    policy_model: str = "meta-llama/Llama-3.1-8B-Instruct"
    """Policy: a Hugging Face id, a local folder, or `bundled:smollm2-135m-instruct`."""
    policy_adapter: str | None = None
    """LoRA adapter merged into the policy before generation (the CPU warm-start adapter), or None."""
    embedding_model: str = "BAAI/bge-m3"
    """Embedder for probe/query priors: a Hugging Face id, a local folder, or `bundled:all-minilm-l6-v2` (the
    authors' MiniCPM-Embedding runs its repository's code: deviation 16)."""
    trust_remote_code: bool = False
    """Allow the policy model's repository to run its own code; off unless set."""
    embedder_trust_remote_code: bool = False
    """Allow the embedding model's repository code (MiniCPM-Embedding needs it); off unless set."""
    backend: Backend = "auto"
    """Generation backend: `auto` (vLLM when importable and CUDA is present, else HF), `hf` or `vllm`."""
    dtype: Dtype = "auto"
    """Model dtype: `auto` (bf16 on CUDA compute capability >= 8, fp16 on older GPUs, fp32 on CPU) or a dtype name."""
    data: str = "data/built/train_42_8k_16k.jsonl"
    """Training samples (JSONL: id, question or input, answer, context); the GPU profiles' is made by `build-data`."""
    max_samples: Limit = None
    """Use only the first N samples (None: all)."""
    chunk_size: Count = 1500
    """Chunk budget in policy tokens."""
    overlap: Annotated[int, Field(ge=0)] = 2
    """Pieces shared between consecutive chunks."""
    min_sentences: Count = 2
    """A final chunk with fewer pieces (overlap included) is merged into the previous one."""
    prior: Prior = "probe_similarity"
    """Arm priors: `probe_similarity`, `query_similarity` or `random`."""
    keep_invalid_probes: bool = False
    """Keep samples without a valid probe, with query-similarity priors (the reference drops them)."""
    probe_max_new_tokens: Count = 1024
    """Token limit of the probe chain of thought."""
    rounds: Count = 30
    """Rollout rounds per sample (responses per sample)."""
    top_k: Count = 4
    """Chunks shown to the policy per round."""
    policy: Policy = "ucb"
    """Chunk-selection policy: `ucb` (the paper) or a baseline from bandit.POLICIES."""
    reward_subem_on: Literal["response", "answer"] = "response"
    """Rollout reward's SubEM over the whole `response` (reference) or the extracted `answer`."""
    temperature: Annotated[float, Field(ge=0, le=2)] = 1.0
    """Sampling temperature of probe and rollout (vLLM's range, 0 to 2)."""
    top_p: Annotated[float, Field(gt=0, le=1)] = 0.95
    """Nucleus sampling mass."""
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] = 1.0
    """Subtracted once from the logit of every token already generated (vLLM's range, -2 to 2)."""
    max_new_tokens: Count = 1024
    """Token limit of each rollout response."""
    rollout_batch: Count = 50
    """Samples that advance one round together per batched generate call."""
    gen_batch_size: Count = 16
    """Sequences per forward pass of the HF backend (probe and rollout)."""
    eval_batch_size: Count | None = None
    """Sequences per forward pass of the HF backend in evaluation, whose prompts are longer (None: gen_batch_size)."""
    fast_generation: bool = False
    """HF backend: static KV cache, compiled decoding on CUDA, prefill in 1,024-token chunks (unmeasured on a GPU
    yet, so off; the device check measures it)."""
    max_model_len: Count | None = 30000
    """Probe/rollout context of vLLM, capped at the model's limit (None: that limit); evaluation derives its own."""
    tensor_parallel_size: Count = 1
    """vLLM tensor parallelism (GPUs per model)."""
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] = 0.9
    """Fraction of GPU memory vLLM may take."""
    enable_prefix_caching: bool = True
    """vLLM prefix caching (the long shared document prefix)."""
    max_prompt_length: Count = 8192
    """DPO prompt budget in tokens (METHOD.md section 5)."""
    dpo: DPOSettings = field(default_factory=DPOSettings)
    """DPO and LoRA settings (METHOD.md section 6); override with `--set dpo.beta=0.2`."""
    eval_data: str = "data/sample/long/eval"
    """Evaluation folder (or file) in LongBench format: `input`, `context`, `answers` (JSONL or parquet)."""
    eval_max_input_len: Count = 100_000
    """Token limit of the filled evaluation template (first and last halves kept); capped to fit the model's context."""
    eval_max_new_tokens: Count = 1024
    """Token limit of each evaluation answer (greedy)."""
    eval_max_items: Limit = None
    """Evaluate only the first N items of each file (None: all)."""
    ablation_samples: Limit = None
    """Probed samples rolled out under every policy of the ablation study, notebook 07 (None: all)."""
    target_gpu: TargetGPU | None = None
    """GPU the profile's sizes are planned for: its time estimate and memory checks (`estimate`); None on a CPU."""
    cell_timeout: Count | None = 3600
    """Seconds one notebook cell may run under `reproduce` (None: no limit)."""
    seed: Seed = 42
    """The one seed of the run."""


CPU_TINY = Profile(
    name="cpu-tiny",
    policy_model=BUNDLED_POLICY,
    policy_adapter="data/warmstart_adapter",
    embedding_model=BUNDLED_EMBEDDER,
    backend="hf",
    dtype="float32",
    data="data/sample/tiny/train.jsonl",
    max_samples=None,  # all 48 samples of the short set: 24 left fewer than 10 pairs after the seeding change
    chunk_size=100,
    top_k=2,
    rounds=6,
    probe_max_new_tokens=96,
    max_new_tokens=64,
    rollout_batch=16,
    gen_batch_size=16,
    max_prompt_length=768,  # covers every context of the tiny set (at most 717 with question, slack and response)
    # One epoch and 4 evaluations (not one per step) keep `make reproduce` within 15 minutes with the uncut prompts.
    dpo=DPOSettings(
        quantization="none", gradient_checkpointing=False, learning_rate=1e-4, max_length=900, epochs=1.0, eval_steps=4
    ),
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
    max_prompt_length=2176,  # covers every context of the 1-2k set (at most 2,163 with question, slack and response)
    dpo=replace(CPU_TINY.dpo, learning_rate=5e-5, max_length=2400, epochs=2.0, eval_steps=None),
    eval_data="data/sample/eval",
    eval_max_items=None,
)

PROFILES: dict[str, Profile] = {
    "paper": Profile(
        target_gpu="h100-80gb",  # vLLM: 22.7 h estimated (README "Profiles"; `python -m longmab_utils estimate`)
        gen_batch_size=8,  # transformers backend on 79 GiB: 8 x 16k-token probes fit, 16 do not (preflight.py)
        eval_batch_size=1,  # 100k-token evaluation prompts: one at a time on 79 GiB
        cell_timeout=None,
        dpo=DPOSettings(eval_steps=250),
    ),
    "gpu-16gb": Profile(
        name="gpu-16gb",
        data="data/built/train_42_8k_12k.jsonl",  # probe prompts measured up to 12k tokens on 15 GiB (docs/results.md)
        policy_model="Qwen/Qwen2.5-3B-Instruct",
        embedding_model=BUNDLED_EMBEDDER,
        backend="hf",
        target_gpu="t4",
        # Sized for one Colab session: notebooks 03-06 in under 3 hours on a T4 (`python -m longmab_utils estimate`).
        max_samples=32,
        rounds=10,
        max_new_tokens=320,
        probe_max_new_tokens=384,
        eval_max_new_tokens=256,
        gen_batch_size=4,  # measured under a 15 GiB cap: 8 runs out of memory at 6k-token prompts, 4 fits (11.2 GiB)
        eval_batch_size=2,  # 15k-token evaluation prompts: 4 runs out of memory, 2 fits (11.4 GiB)
        max_model_len=16384,
        max_prompt_length=6144,
        dpo=DPOSettings(sft_weight=0.2, max_length=6800),
        eval_max_input_len=15360,
        cell_timeout=None,
    ),
    "cpu-tiny": CPU_TINY,
    "cpu-long": CPU_LONG,
    "cpu-ablation": replace(CPU_TINY, name="cpu-ablation", max_samples=None, ablation_samples=None),
    # The small-scale claim (README "What the kit demonstrates"): cpu-tiny's pipeline with two DPO epochs, then base
    # vs adapter on 48 fresh held-out items per set (benchmarks/effect.py, about 30 minutes a seed on 2 cores).
    "cpu-demo": replace(
        CPU_TINY,
        name="cpu-demo",
        dpo=replace(CPU_TINY.dpo, epochs=2.0, eval_steps=None),
        eval_data="data/sample/heldout/eval",
        eval_max_items=None,
    ),
    # The paper's downstream comparison at small scale (benchmarks/downstream.py, docs/results.md): every sample of the
    # tiny set (invalid probes kept), three policies on common random numbers, an adapter on each policy's pairs,
    # all evaluated on the 144 held-out items.
    "cpu-downstream": replace(
        CPU_TINY,
        name="cpu-downstream",
        keep_invalid_probes=True,
        ablation_samples=None,
        eval_data="data/sample/heldout/eval",
        eval_max_items=None,
    ),
    "smoke": replace(
        CPU_TINY,
        name="smoke",
        max_samples=6,
        keep_invalid_probes=True,  # 24-token probes rarely finish; tests still need samples to roll out
        max_prompt_length=256,  # a test profile: its short cut prompts keep the suite fast (cpu-tiny's are whole)
        # cpu-tiny's cutoff: the shipped (whole) pairs that `fast_forward` copies fit it; its own pairs are shorter.
        dpo=DPOSettings(quantization="none", gradient_checkpointing=False, learning_rate=1e-4, max_length=900),
        top_k=2,
        rounds=4,  # with 48-token answers: 2 pairs from 6 samples (fewer rounds or tokens yield none or one)
        probe_max_new_tokens=24,
        max_new_tokens=48,
        rollout_batch=6,  # all samples in one batch: the same rollout.jsonl as batches of 2 (deviation 11), 40% faster
        gen_batch_size=6,
        eval_max_input_len=512,
        eval_max_new_tokens=16,
        eval_max_items=2,
        ablation_samples=2,  # 07 runs every policy once per sample: 2 keep its checks meaningful in a third of 5's time
    ),
}


def shown(value: Any) -> str:
    """A value as `--set` writes it: `none`, `true`/`false`, or the plain text."""
    if value is None:
        return "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def settings_items(settings: Any, prefix: str = "") -> list[tuple[str, Any, str]]:
    """Every settable key (dotted for nested settings) with its value and docstring, in declaration order."""
    items = []
    for name, info in type(settings).__pydantic_fields__.items():
        value = getattr(settings, name)
        if dataclasses.is_dataclass(value):
            items += settings_items(value, f"{prefix}{name}.")
        else:
            items.append((prefix + name, value, info.description or ""))
    return items


def describe(profile: Profile) -> str:
    """The text of `python -m longmab_utils settings`: each key as `--set` takes it, then its docstring."""
    return "\n".join(f"{key} = {shown(value)}\n    {doc}" for key, value, doc in settings_items(profile))


def _group(info: FieldInfo) -> type | None:
    """The nested settings class of a field, or None for a plain value."""
    return info.annotation if dataclasses.is_dataclass(info.annotation) else None


def _keys(settings_type: type, prefix: str = "") -> list[str]:
    """Every settable key of a settings class, dotted for nested settings."""
    return [key for key, _, _ in settings_items(settings_type(), prefix)]


def _unknown(key: str, settings_type: type, prefix: str) -> SettingsError:
    """The error for a key the settings do not have, with the likely intended keys."""
    known = _keys(settings_type, prefix)
    leaf = key.rsplit(".", 1)[-1]
    guesses = [k for k in known if k.rsplit(".", 1)[-1] == leaf] or difflib.get_close_matches(key, known, n=3)
    infos = settings_type.__pydantic_fields__
    level = [prefix + name + (".*" if _group(info) else "") for name, info in infos.items()]
    allowed = f"did you mean {' or '.join(guesses)}?" if guesses else f"known: {', '.join(level)}"
    return SettingsError(f"unknown setting {key!r}: {allowed} (`python -m longmab_utils settings` explains each)")


def _merge(settings_type: type, values: dict, key: str, value: Any, prefix: str = "") -> None:
    """Put one override into a profile's nested values, refusing unknown keys and wrong nesting."""
    outer, dot, inner = key.partition(".")
    infos = settings_type.__pydantic_fields__
    if outer not in infos:
        raise _unknown(prefix + key, settings_type, prefix)
    group = _group(infos[outer])
    if dot and group is None:
        raise SettingsError(
            f"invalid setting {prefix}{key}={shown(value)}: {prefix}{outer} has no sub-settings; "
            f"did you mean {prefix}{outer}={shown(value)}?"
        )
    if dot:
        _merge(group, values[outer], inner, value, f"{prefix}{outer}.")
    elif group is not None:
        if not isinstance(value, dict | group):
            keys = ", ".join(_keys(group, f"{prefix}{outer}."))
            raise SettingsError(
                f"invalid setting {prefix}{key}={shown(value)}: {prefix}{outer} is a group of settings; "
                f"set its keys one at a time: {keys}"
            )
        for name, item in (value if isinstance(value, dict) else dataclasses.asdict(value)).items():
            _merge(group, values[outer], name, item, f"{prefix}{outer}.")
    else:
        optional = type(None) in typing.get_args(infos[outer].annotation)
        none = optional and isinstance(value, str) and value.strip().lower() in ("none", "null")
        values[outer] = None if none else value


def _problem(error: dict) -> str:
    """One validation error as `invalid setting key=value: what is allowed`."""
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "unexpected_keyword_argument":
        return f"unknown setting {key!r}"
    message = str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"]
    return f"invalid setting {key}={shown(error['input'])}: {message[0].lower()}{message[1:]}"


def get_profile(name: str, overrides: dict[str, Any] | None = None) -> Profile:
    """The named profile with overrides applied and validated; strings (from `--set`) are parsed to each type."""
    if name not in PROFILES:
        raise SettingsError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    if not overrides:
        return PROFILES[name]
    values = dataclasses.asdict(PROFILES[name])
    for key, value in overrides.items():
        _merge(Profile, values, key, value)
    try:
        return Profile(**values)
    except ValidationError as error:
        raise SettingsError("; ".join(_problem(e) for e in error.errors())) from None


def notebook_profile(name: str, seed: int, overrides: dict[str, Any] | None = None, **knobs: Any) -> Profile:
    """The profile a notebook runs: its parameters seed, overrides and chapter knobs (None keeps the profile's)."""
    chosen = {key: value for key, value in knobs.items() if value is not None}
    return get_profile(name, {**(overrides or {}), **chosen, "seed": seed})


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """Turn ['key=value', ...] from the command line into a dict, rejecting malformed items."""
    result = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"--set expects key=value (for example --set rounds=8), got {item!r}")
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
