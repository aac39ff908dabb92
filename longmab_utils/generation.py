"""Generate chat responses: one interface over Hugging Face transformers (CPU or GPU) and vLLM.

Introduced in notebook 03. Prompts go in as chat messages and texts come out in the same order.
The sampling settings are the reference's (METHOD.md section 2): temperature 1.0, top-p 0.95,
presence penalty 1.0. transformers has only a multiplicative repetition penalty, so the additive
presence penalty that vLLM applies is implemented here as a logits processor.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from .artifacts import ADAPTER_CONFIG
from .errors import UserError
from .hardware import free_gpu_memory
from .progress import progress
from .seeds import derive_seed

Messages = list[dict[str, str]]

END_OF_TURN_TOKENS = ("<|eot_id|>", "<|im_end|>", "<|end_of_text|>", "<|endoftext|>", "<end_of_turn>")


@dataclass(frozen=True)
class SamplingConfig:
    """Decoding settings shared by every backend (temperature 0 means greedy)."""

    temperature: float = 1.0
    top_p: float = 0.95
    presence_penalty: float = 1.0
    max_new_tokens: int = 1024
    seed: int = 0


class Generator(Protocol):
    """Chat messages in, generated texts out, in order; `seeds` gives each prompt its own sampling seed."""

    def generate(
        self,
        prompts: Sequence[Messages],
        sampling: SamplingConfig,
        desc: str = "generate",
        seeds: Sequence[int] | None = None,
    ) -> list[str]: ...


def prompt_seeds(sampling: SamplingConfig, count: int, seeds: Sequence[int] | None) -> list[int]:
    """One seed per prompt: the caller's, or derived from the sampling seed and the prompt's position."""
    if seeds is None:
        return [derive_seed(sampling.seed, index) for index in range(count)]
    if len(seeds) != count:
        raise ValueError(f"{len(seeds)} seeds for {count} prompts")
    return list(seeds)


class PresencePenalty(LogitsProcessor):
    """Subtract `penalty` once from the logit of every token already generated in that sequence (not the prompt)."""

    def __init__(self, penalty: float, prompt_length: int):
        self.penalty, self.prompt_length = penalty, prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids[:, self.prompt_length :]
        if self.penalty == 0 or generated.shape[1] == 0:
            return scores
        seen = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, generated, True)
        return scores - self.penalty * seen.to(scores.dtype)


class RowSampler(LogitsProcessor):
    """Sampling with one random generator per row (Gumbel-max): adds Gumbel noise to the processed logits, so
    that the greedy pick is a draw from their softmax, and a row's draws depend only on its own seed, never on
    the batch it shares."""

    def __init__(self, seeds: Sequence[int], device: torch.device | str):
        self.generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.float()
        exponential = [torch.empty_like(scores[0]).exponential_(generator=g) for g in self.generators]
        return scores - torch.stack(exponential).log()


def sampling_processors(sampling: SamplingConfig, prompt_length: int, seeds: Sequence[int], device: Any) -> list:
    """Presence penalty, then (when sampling) temperature, nucleus and the per-row draw, in vLLM's order."""
    processors: list = [PresencePenalty(sampling.presence_penalty, prompt_length)]
    if sampling.temperature > 0:
        processors += [
            TemperatureLogitsWarper(sampling.temperature),
            TopPLogitsWarper(sampling.top_p),
            RowSampler(seeds, device),
        ]
    return processors


def stop_token_ids(tokenizer: Any) -> list[int]:
    """EOS plus every end-of-turn token the vocabulary knows (Llama-3 stops only on <|eot_id|>)."""
    vocab = tokenizer.get_vocab()
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    ids += [vocab[token] for token in END_OF_TURN_TOKENS if token in vocab]
    return sorted(set(ids))


def render_chat(tokenizer: Any, messages: Messages) -> str:
    """The chat template applied as text, ready for generation."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def encode_chats(tokenizer: Any, prompts: Sequence[Messages]) -> list[list[int]]:
    """Token ids of each templated prompt; the template already holds any BOS, so none is added again."""
    return tokenizer([render_chat(tokenizer, messages) for messages in prompts], add_special_tokens=False)["input_ids"]


def fit_context(ids: list[int], context: int | None, new_tokens: int) -> list[int]:
    """Prompt ids that leave room for `new_tokens` in a `context`-token window: the middle goes, never the item."""
    from .pairs import middle_truncate

    if context is None or len(ids) + new_tokens <= context:
        return ids
    return middle_truncate(ids, max(2, context - new_tokens))


NEUTRAL_GENERATION = {
    "do_sample": False,  # the draw happens in RowSampler, one generator per row
    "num_beams": 1,
    "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0,
    "min_length": 0,
    "guidance_scale": 1.0,
    "remove_invalid_values": False,
    # transformers' own defaults of its sampling warpers, inert with do_sample off (the model's would draw a warning)
    "temperature": 1.0,
    "top_k": 50,
    "top_p": 1.0,
    "typical_p": 1.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
}
"""Every transformers setting that changes the logits, at the value that leaves them alone: `generate` fills each
setting a config leaves unset from the model's own `generation_config` (Qwen2.5-Instruct: repetition penalty 1.05)."""

UNNEUTRAL_SETTINGS = (
    "min_new_tokens",  # 0 is neutral, but transformers warns when it and min_length are both set
    "forced_bos_token_id",
    "forced_eos_token_id",
    "bad_words_ids",
    "sequence_bias",
    "exponential_decay_length_penalty",
    "suppress_tokens",
    "begin_suppress_tokens",
)
"""Logit-changing settings that have no neutral value but unset, which `generate` would take from the model."""


PREFILL_CHUNK = 1024
"""Prompt tokens per forward pass of the fast path's prefill: a 12k-token probe row holds a twelfth of its
activations at a time, and every chunk has the same shape, so the compiled forward is not recompiled per prompt."""


def fast_generation_settings(prefill_chunk: int) -> dict[str, Any]:
    """transformers' settings of the fast path: a static KV cache (whose decoding transformers compiles on CUDA)
    and prefill in `prefill_chunk`-token pieces."""
    return {"cache_implementation": "static", "prefill_chunk_size": prefill_chunk}


def neutral_generation_config(
    model: Any, max_new_tokens: int, stop_ids: list[int], pad_id: int, **speed: Any
) -> GenerationConfig:
    """The kit's decoding settings and nothing of the model's `generation_config`, plus the `speed` settings
    (`fast_generation_settings`), which change no logit; a model whose config sets a logit-changing setting that
    cannot be neutralised is refused."""
    own = getattr(model, "generation_config", None)
    inherited = [name for name in UNNEUTRAL_SETTINGS if getattr(own, name, None) not in (None, [], {})]
    if inherited:
        raise UserError(
            f"the model's generation_config sets {', '.join(inherited)}, which the kit's sampling does not include; "
            "set them to None in model.generation_config"
        )
    return GenerationConfig(
        **NEUTRAL_GENERATION, **speed, max_new_tokens=max_new_tokens, eos_token_id=stop_ids, pad_token_id=pad_id
    )


class HFGenerator:
    """Batched generation with transformers: left padding, length-sorted batches, each row seeded on its own.

    A model with an unmerged PEFT adapter (`models.attach_adapter(..., merge=False)`) serves base and adapter
    predictions from one copy of the weights: `use_adapter(False)` switches the adapter off.
    With `prefill_chunk` set (the profile's `fast_generation`), prompts are left-padded to a multiple of it and
    generated on the fast path (`fast_generation_settings`); the outputs are meant to stay the same.
    """

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 8, prefill_chunk: int | None = None):
        self.model, self.tokenizer, self.batch_size = model.eval(), tokenizer, batch_size
        self.prefill_chunk = prefill_chunk
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.stop_ids = stop_token_ids(tokenizer)
        self.context = getattr(model.config, "max_position_embeddings", None)

    @property
    def has_adapter(self) -> bool:
        """True when the model carries a switchable (unmerged) adapter."""
        return hasattr(self.model, "disable_adapter_layers")

    def use_adapter(self, enabled: bool) -> None:
        """Generate with the unmerged adapter on, or off (the exact base weights: nothing is merged and unmerged)."""
        if not self.has_adapter:
            if enabled:
                raise ValueError("this generator has no switchable adapter; attach one with merge=False")
            return
        if enabled:
            self.model.enable_adapter_layers()
        else:
            self.model.disable_adapter_layers()

    def close(self) -> None:
        """Drop the model and free its GPU memory (the generator cannot be used afterwards)."""
        self.model = None
        free_gpu_memory()

    def encode(self, prompts: Sequence[Messages]) -> list[list[int]]:
        """Token ids of each templated prompt (`encode_chats`)."""
        return encode_chats(self.tokenizer, prompts)

    @torch.inference_mode()
    def generate(
        self,
        prompts: Sequence[Messages],
        sampling: SamplingConfig,
        desc: str = "generate",
        seeds: Sequence[int] | None = None,
    ) -> list[str]:
        """Generate one response per prompt, in prompt order; each row samples from its own seed."""
        encoded = [fit_context(ids, self.context, sampling.max_new_tokens) for ids in self.encode(prompts)]
        speed = fast_generation_settings(self.prefill_chunk) if self.prefill_chunk else {}
        config = neutral_generation_config(
            self.model, sampling.max_new_tokens, self.stop_ids, self.tokenizer.pad_token_id, **speed
        )
        row_seeds = prompt_seeds(sampling, len(encoded), seeds)
        order = sorted(range(len(encoded)), key=lambda i: (-len(encoded[i]), i))
        outputs: list[str] = [""] * len(encoded)
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        # One batch: the caller's bar says enough. Passing disable=False would override TQDM_DISABLE.
        quiet = {"disable": True} if len(batches) < 2 else {}
        for batch in progress(batches, desc=desc, unit="batch", leave=False, **quiet):
            padded = self.tokenizer.pad(
                {"input_ids": [encoded[i] for i in batch]}, return_tensors="pt", pad_to_multiple_of=self.prefill_chunk
            )
            padded = {k: v.to(self.model.device) for k, v in padded.items()}
            prompt_length = padded["input_ids"].shape[1]
            processors = sampling_processors(sampling, prompt_length, [row_seeds[i] for i in batch], self.model.device)
            generated = self.model.generate(
                **padded, generation_config=config, logits_processor=LogitsProcessorList(processors)
            )
            texts = self.tokenizer.batch_decode(generated[:, prompt_length:], skip_special_tokens=True)
            for i, text in zip(batch, texts):
                outputs[i] = text
        return outputs


def vllm_sampling_kwargs(sampling: SamplingConfig, accepted: set[str], stop_ids: list[int]) -> dict[str, Any]:
    """vLLM SamplingParams arguments for our settings, keeping only those the installed vLLM accepts."""
    wanted = {
        "n": 1,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p if sampling.temperature > 0 else 1.0,
        "presence_penalty": sampling.presence_penalty,
        "max_tokens": sampling.max_new_tokens,
        "seed": sampling.seed,
        "stop_token_ids": stop_ids,
        "skip_special_tokens": True,
    }
    return {key: value for key, value in wanted.items() if key in accepted}


def capped_model_len(requested: int | None, config: Any) -> int | None:
    """The vLLM context length: the request, capped at what the model's config allows."""
    limit = getattr(config, "max_position_embeddings", None)
    if requested is None or limit is None:
        return requested or limit
    return min(requested, limit)


class VLLMGenerator:
    """Generation with vLLM (CUDA): tensor parallelism, memory fraction, context length and prefix caching exposed."""

    def __init__(
        self,
        model_path: str,
        tokenizer: Any,
        config: Any,
        *,
        max_model_len: int | None = None,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        enable_prefix_caching: bool = True,
        dtype: str = "auto",
        trust_remote_code: bool = False,
        adapter: str | None = None,
    ):
        """Start one engine; with `adapter`, LoRA is enabled at the adapter's rank and requests use it by default."""
        from vllm import LLM, SamplingParams
        from vllm.lora.request import LoRARequest

        self._sampling_params = SamplingParams
        self._accepted = set(getattr(SamplingParams, "__struct_fields__", ())) or set(
            inspect.signature(SamplingParams).parameters
        )
        self.tokenizer = tokenizer
        self.stop_ids = stop_token_ids(tokenizer)
        self.context = capped_model_len(max_model_len, config)
        free_gpu_memory()  # vLLM wants its share of the GPU free: an embedder used before may still hold its cache
        self.llm = LLM(
            model=model_path,
            tokenizer=model_path,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=self.context,
            enable_prefix_caching=enable_prefix_caching,
            **lora_engine_kwargs(adapter),
        )
        self.adapter_request = LoRARequest("adapter", 1, adapter) if adapter else None
        self.lora_request = self.adapter_request

    @property
    def has_adapter(self) -> bool:
        """True when the engine serves a LoRA adapter."""
        return self.adapter_request is not None

    def use_adapter(self, enabled: bool) -> None:
        """Send requests with the adapter's LoRARequest, or none (the base model, same engine)."""
        if enabled and not self.has_adapter:
            raise ValueError("this engine was started without an adapter")
        self.lora_request = self.adapter_request if enabled else None

    def close(self) -> None:
        """Shut the engine down and free its GPU memory."""
        del self.llm
        try:
            from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel

            destroy_model_parallel()
            destroy_distributed_environment()
        except ImportError:
            pass
        free_gpu_memory()

    def generate(
        self,
        prompts: Sequence[Messages],
        sampling: SamplingConfig,
        desc: str = "generate",
        seeds: Sequence[int] | None = None,
    ) -> list[str]:
        """Generate one response per prompt, in prompt order; each request carries its own seed."""
        params = [
            self._sampling_params(**vllm_sampling_kwargs(replace(sampling, seed=seed), self._accepted, self.stop_ids))
            for seed in prompt_seeds(sampling, len(prompts), seeds)
        ]
        token_prompts = [
            {"prompt_token_ids": fit_context(ids, self.context, sampling.max_new_tokens)}
            for ids in encode_chats(self.tokenizer, prompts)
        ]
        outputs = self.llm.generate(token_prompts, params, use_tqdm=True, lora_request=self.lora_request)
        return [output.outputs[0].text for output in outputs]


VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The `max_lora_rank` values vLLM's engine accepts (it refuses any other)."""


def vllm_lora_rank(rank: int) -> int:
    """The smallest `max_lora_rank` vLLM accepts that holds an adapter of `rank` (at least 16, vLLM's default)."""
    fitting = [allowed for allowed in VLLM_LORA_RANKS if allowed >= max(16, rank)]
    if not fitting:
        raise UserError(f"LoRA rank {rank} is above vLLM's largest max_lora_rank {VLLM_LORA_RANKS[-1]}; use backend=hf")
    return fitting[0]


def lora_engine_kwargs(adapter: str | None) -> dict[str, Any]:
    """vLLM engine arguments that serve `adapter`: LoRA on, with a rank cap vLLM allows that holds the adapter's."""
    if adapter is None:
        return {}
    import json
    from pathlib import Path

    rank = json.loads((Path(adapter) / ADAPTER_CONFIG).read_text())["r"]
    return {"enable_lora": True, "max_lora_rank": vllm_lora_rank(rank), "max_loras": 1}


def vllm_available() -> bool:
    """True when vLLM is importable and a CUDA device is present."""
    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


def resolve_backend(backend: str) -> str:
    """`auto` becomes `vllm` when vLLM and CUDA are present, else `hf`; explicit choices are checked."""
    if backend == "auto":
        return "vllm" if vllm_available() else "hf"
    if backend == "vllm" and not vllm_available():
        raise UserError("backend 'vllm' needs CUDA and `pip install .[cuda]`; use --set backend=hf on this machine")
    if backend not in ("hf", "vllm"):
        raise ValueError(f"unknown backend {backend!r}; choose auto, hf or vllm")
    return backend


def build_generator(
    profile: Any, extra_adapter: str | None = None, max_model_len: int | None = None, batch_size: int | None = None
) -> HFGenerator | VLLMGenerator:
    """The profile's policy behind its backend, with a trained adapter that stays switchable (`use_adapter`):
    unmerged on HF, a LoRA request on vLLM. `max_model_len` overrides the profile's vLLM context, `batch_size` its
    HF batch."""
    from transformers import AutoConfig, AutoTokenizer

    from .config import project_path
    from .models import attach_adapter, from_hub, load_policy, resolve_model

    base_adapter = str(project_path(profile.policy_adapter)) if profile.policy_adapter else None
    extra = str(project_path(extra_adapter)) if extra_adapter else None
    if resolve_backend(profile.backend) == "hf":
        model, tokenizer = load_policy(profile.policy_model, base_adapter, profile.dtype, profile.trust_remote_code)
        if extra:
            model = attach_adapter(model, extra, merge=False)
        chunk = PREFILL_CHUNK if profile.fast_generation else None
        return HFGenerator(model, tokenizer, batch_size=batch_size or profile.gen_batch_size, prefill_chunk=chunk)
    if base_adapter and extra:
        raise UserError("vLLM serves one LoRA adapter at a time; merge the policy adapter into the base model first")
    path = resolve_model(profile.policy_model)
    with from_hub(path):
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=profile.trust_remote_code)
        config = AutoConfig.from_pretrained(path, trust_remote_code=profile.trust_remote_code)
    return VLLMGenerator(
        path,
        tokenizer,
        config,
        max_model_len=max_model_len or profile.max_model_len,
        tensor_parallel_size=profile.tensor_parallel_size,
        gpu_memory_utilization=profile.gpu_memory_utilization,
        enable_prefix_caching=profile.enable_prefix_caching,
        dtype=profile.dtype,
        trust_remote_code=profile.trust_remote_code,
        adapter=base_adapter or extra,
    )
