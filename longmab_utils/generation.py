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
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm
from transformers import LogitsProcessor, LogitsProcessorList

from .errors import UserError

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
    """Chat messages in, generated texts out, in order."""

    def generate(self, prompts: Sequence[Messages], sampling: SamplingConfig, desc: str = "generate") -> list[str]: ...


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


def stop_token_ids(tokenizer: Any) -> list[int]:
    """EOS plus every end-of-turn token the vocabulary knows (Llama-3 stops only on <|eot_id|>)."""
    vocab = tokenizer.get_vocab()
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    ids += [vocab[token] for token in END_OF_TURN_TOKENS if token in vocab]
    return sorted(set(ids))


def render_chat(tokenizer: Any, messages: Messages) -> str:
    """The chat template applied as text, ready for generation."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


class HFGenerator:
    """Batched generation with transformers: left padding, length-sorted batches, seeded per batch."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 8):
        self.model, self.tokenizer, self.batch_size = model.eval(), tokenizer, batch_size
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.stop_ids = stop_token_ids(tokenizer)

    def encode(self, prompts: Sequence[Messages]) -> list[list[int]]:
        """Token ids of each templated prompt; the template already holds any BOS, so none is added again."""
        texts = [render_chat(self.tokenizer, messages) for messages in prompts]
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    @torch.inference_mode()
    def generate(self, prompts: Sequence[Messages], sampling: SamplingConfig, desc: str = "generate") -> list[str]:
        """Generate one response per prompt, in prompt order."""
        encoded = self.encode(prompts)
        order = sorted(range(len(encoded)), key=lambda i: (-len(encoded[i]), i))
        outputs: list[str] = [""] * len(encoded)
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        # One batch: the caller's bar says enough. Passing disable=False would override TQDM_DISABLE.
        quiet = {"disable": True} if len(batches) < 2 else {}
        for number, batch in enumerate(tqdm(batches, desc=desc, unit="batch", leave=False, **quiet)):
            padded = self.tokenizer.pad({"input_ids": [encoded[i] for i in batch]}, return_tensors="pt")
            padded = {k: v.to(self.model.device) for k, v in padded.items()}
            torch.manual_seed(sampling.seed * 1_000_003 + number)
            prompt_length = padded["input_ids"].shape[1]
            sample = sampling.temperature > 0
            generated = self.model.generate(
                **padded,
                do_sample=sample,
                temperature=sampling.temperature if sample else None,
                top_p=sampling.top_p if sample else None,
                top_k=None,
                max_new_tokens=sampling.max_new_tokens,
                logits_processor=LogitsProcessorList([PresencePenalty(sampling.presence_penalty, prompt_length)]),
                eos_token_id=self.stop_ids,
                pad_token_id=self.tokenizer.pad_token_id,
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
        from vllm import LLM, SamplingParams
        from vllm.lora.request import LoRARequest

        self._sampling_params = SamplingParams
        self._accepted = set(getattr(SamplingParams, "__struct_fields__", ())) or set(
            inspect.signature(SamplingParams).parameters
        )
        self.tokenizer = tokenizer
        self.stop_ids = stop_token_ids(tokenizer)
        self.llm = LLM(
            model=model_path,
            tokenizer=model_path,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=capped_model_len(max_model_len, config),
            enable_prefix_caching=enable_prefix_caching,
            enable_lora=adapter is not None,
        )
        self.lora_request = LoRARequest("adapter", 1, adapter) if adapter else None

    def generate(self, prompts: Sequence[Messages], sampling: SamplingConfig, desc: str = "generate") -> list[str]:
        """Generate one response per prompt, in prompt order."""
        params = self._sampling_params(**vllm_sampling_kwargs(sampling, self._accepted, self.stop_ids))
        token_prompts = [
            {"prompt_token_ids": self.tokenizer(render_chat(self.tokenizer, m), add_special_tokens=False)["input_ids"]}
            for m in prompts
        ]
        outputs = self.llm.generate(token_prompts, params, use_tqdm=True, lora_request=self.lora_request)
        return [output.outputs[0].text for output in outputs]


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


def build_generator(profile: Any, extra_adapter: str | None = None) -> HFGenerator | VLLMGenerator:
    """The profile's policy (plus a trained adapter) behind its backend: merged on HF, served as LoRA on vLLM."""
    from transformers import AutoConfig, AutoTokenizer

    from .config import project_path
    from .models import load_policy, resolve_model

    adapters = [str(project_path(a)) for a in (profile.policy_adapter, extra_adapter) if a]
    if resolve_backend(profile.backend) == "hf":
        model, tokenizer = load_policy(profile.policy_model, adapters, profile.dtype, profile.trust_remote_code)
        return HFGenerator(model, tokenizer, batch_size=profile.gen_batch_size)
    if len(adapters) > 1:
        raise UserError("vLLM serves one LoRA adapter at a time; merge the policy adapter into the base model first")
    path = resolve_model(profile.policy_model)
    return VLLMGenerator(
        path,
        AutoTokenizer.from_pretrained(path, trust_remote_code=profile.trust_remote_code),
        AutoConfig.from_pretrained(path, trust_remote_code=profile.trust_remote_code),
        max_model_len=profile.max_model_len,
        tensor_parallel_size=profile.tensor_parallel_size,
        gpu_memory_utilization=profile.gpu_memory_utilization,
        enable_prefix_caching=profile.enable_prefix_caching,
        dtype=profile.dtype,
        trust_remote_code=profile.trust_remote_code,
        adapter=adapters[0] if adapters else None,
    )
