import sys
from types import ModuleType, SimpleNamespace

import pytest
import torch

from longmab_utils import generation
from longmab_utils.errors import UserError
from longmab_utils.generation import (
    HFGenerator,
    PresencePenalty,
    SamplingConfig,
    capped_model_len,
    resolve_backend,
    stop_token_ids,
    vllm_sampling_kwargs,
)
from longmab_utils.models import BUNDLED_POLICY, load_policy


def test_presence_penalty_subtracts_once_per_generated_token_and_ignores_the_prompt():
    ids = torch.tensor([[5, 1, 2, 2, 2], [5, 3, 0, 0, 4]])
    scores = torch.zeros(2, 6)
    out = PresencePenalty(1.5, prompt_length=1)(ids, scores.clone())
    expected = torch.zeros(2, 6)
    expected[0, [1, 2]] = -1.5
    expected[1, [0, 3, 4]] = -1.5
    assert torch.equal(out, expected)


def test_presence_penalty_before_any_generated_token_is_a_no_op():
    scores = torch.randn(1, 4)
    assert torch.equal(PresencePenalty(1.0, prompt_length=3)(torch.tensor([[1, 2, 3]]), scores), scores)


def test_vllm_kwargs_keep_only_what_the_installed_version_accepts():
    accepted = {"n", "temperature", "top_p", "presence_penalty", "max_tokens", "stop_token_ids", "skip_special_tokens"}
    kwargs = vllm_sampling_kwargs(SamplingConfig(max_new_tokens=77, seed=3), accepted, [2, 9])
    assert kwargs == {
        "n": 1,
        "temperature": 1.0,
        "top_p": 0.95,
        "presence_penalty": 1.0,
        "max_tokens": 77,
        "stop_token_ids": [2, 9],
        "skip_special_tokens": True,
    }
    assert not {"use_beam_search", "best_of", "early_stopping"} & set(kwargs)


def test_vllm_kwargs_greedy_disables_nucleus_and_passes_the_seed():
    kwargs = vllm_sampling_kwargs(SamplingConfig(temperature=0.0, seed=11), {"temperature", "top_p", "seed"}, [])
    assert kwargs == {"temperature": 0.0, "top_p": 1.0, "seed": 11}


class _Config:
    max_position_embeddings = 8192


@pytest.mark.parametrize(("requested", "expected"), [(30000, 8192), (4096, 4096), (None, 8192)])
def test_max_model_len_is_capped_by_the_model_config(requested, expected):
    assert capped_model_len(requested, _Config()) == expected


class _Vocab:
    eos_token_id = 7

    def get_vocab(self):
        return {"<|eot_id|>": 12, "<|end_of_text|>": 7, "hello": 3}


def test_stop_tokens_include_llama3_end_of_turn():
    assert stop_token_ids(_Vocab()) == [7, 12]


def test_vllm_starts_only_after_the_cached_gpu_memory_is_returned(monkeypatch):
    events = []
    vllm, request = ModuleType("vllm"), ModuleType("vllm.lora.request")
    vllm.LLM, vllm.SamplingParams = lambda **kwargs: events.append("start vLLM"), lambda **kwargs: None
    request.LoRARequest = lambda *args: None
    for name, module in {"vllm": vllm, "vllm.lora": ModuleType("vllm.lora"), "vllm.lora.request": request}.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(generation, "free_gpu_memory", lambda: events.append("free cache"))
    tokenizer = SimpleNamespace(eos_token_id=0, get_vocab=dict)
    generation.VLLMGenerator("model", tokenizer, SimpleNamespace(max_position_embeddings=64))
    assert events == ["free cache", "start vLLM"]  # an embedder used before in the kernel left its cache behind


def test_auto_backend_follows_what_is_installed_and_vllm_is_refused_clearly(monkeypatch):
    from longmab_utils import generation

    monkeypatch.setattr(generation, "vllm_available", lambda: True)
    assert resolve_backend("auto") == "vllm" and resolve_backend("vllm") == "vllm" and resolve_backend("hf") == "hf"
    monkeypatch.setattr(generation, "vllm_available", lambda: False)
    assert resolve_backend("auto") == "hf"
    with pytest.raises(UserError, match="backend=hf"):
        resolve_backend("vllm")
    with pytest.raises(ValueError, match="unknown backend"):
        resolve_backend("tgi")


@pytest.fixture(scope="module")
def generator():
    model, tokenizer = load_policy(BUNDLED_POLICY, dtype="float32")
    return HFGenerator(model, tokenizer, batch_size=2)


PROMPTS = [
    [{"role": "user", "content": "Name a colour."}],
    [{"role": "user", "content": "Write one long sentence about rivers, bridges and the towns built beside them."}],
    [{"role": "user", "content": "Say hi."}],
]


@pytest.mark.models
def test_encoding_adds_no_second_bos_to_the_templated_prompt(generator):
    tokenizer = generator.tokenizer
    for messages, ids in zip(PROMPTS, generator.encode(PROMPTS)):
        templated = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
        assert ids == list(templated["input_ids"] if hasattr(templated, "keys") else templated)


@pytest.mark.models
def test_hf_generation_is_deterministic_for_a_seed_and_keeps_prompt_order(generator):
    sampling = SamplingConfig(max_new_tokens=8, seed=5)
    first = generator.generate(PROMPTS, sampling)
    assert first == generator.generate(PROMPTS, sampling)
    assert len(first) == 3 and all(isinstance(text, str) for text in first)
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=8)
    together = generator.generate(PROMPTS, greedy)
    alone = [generator.generate([prompt], greedy)[0] for prompt in PROMPTS]
    assert together == alone


@pytest.mark.models
def test_each_row_samples_from_its_own_seed_whatever_its_batch(generator):
    sampling = SamplingConfig(max_new_tokens=12, seed=0)
    seeds = [2**40, 7, 2**62 + 3]
    together = generator.generate(PROMPTS, sampling, seeds=seeds)
    alone = [generator.generate([prompt], sampling, seeds=[seed])[0] for prompt, seed in zip(PROMPTS, seeds)]
    assert together == alone
    other = generator.generate(PROMPTS, sampling, seeds=[seed + 1 for seed in seeds])
    assert other != together


@pytest.mark.models
def test_hf_generation_config_is_the_kits_whatever_the_model_sets(generator, monkeypatch):
    greedy = SamplingConfig(temperature=0.0, presence_penalty=0.0, max_new_tokens=12)
    plain = generator.generate(PROMPTS, greedy)
    own = generator.model.generation_config
    for name, value in {"repetition_penalty": 10.0, "no_repeat_ngram_size": 1, "min_length": 40}.items():
        monkeypatch.setattr(own, name, value)  # what a hub model's generation_config.json may hold
    effective = []
    prepare = generator.model._prepare_generation_config

    def spy(*args, **kwargs):
        config, model_kwargs = prepare(*args, **kwargs)
        effective.append(config)
        return config, model_kwargs

    monkeypatch.setattr(generator.model, "_prepare_generation_config", spy)
    assert generator.generate(PROMPTS, greedy) == plain
    assert effective and all(
        (c.repetition_penalty, c.no_repeat_ngram_size, c.min_length, c.min_new_tokens, c.do_sample, c.max_new_tokens)
        == (1.0, 0, 0, None, False, 12)
        for c in effective
    )
    for name, value in {"suppress_tokens": [5], "min_new_tokens": 12}.items():
        monkeypatch.setattr(own, name, value)
        with pytest.raises(UserError, match=f"generation_config sets .*{name}"):
            generator.generate(PROMPTS, greedy)


@pytest.fixture(scope="module")
def fast(generator):
    """The fast path on the same model, with a chunk small enough that every prompt is padded and prefilled in
    several pieces (transformers compiles nothing on a CPU, so this checks the cache, padding and chunking)."""
    return HFGenerator(generator.model, generator.tokenizer, batch_size=2, prefill_chunk=16)


@pytest.mark.models
def test_fast_path_gives_the_same_greedy_and_sampled_outputs_as_the_default_path(generator, fast):
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=12)
    sampled = SamplingConfig(max_new_tokens=12, seed=3)
    assert fast.generate(PROMPTS, greedy) == generator.generate(PROMPTS, greedy)
    assert fast.generate(PROMPTS, sampled) == generator.generate(PROMPTS, sampled)
    effective = []
    prepare = fast.model._prepare_generation_config

    def spy(*args, **kwargs):
        config, model_kwargs = prepare(*args, **kwargs)
        effective.append((config.cache_implementation, config.prefill_chunk_size))
        return config, model_kwargs

    fast.model._prepare_generation_config = spy
    try:
        fast.generate(PROMPTS[:1], greedy)
    finally:
        del fast.model._prepare_generation_config
    assert effective == [("static", 16)]


@pytest.mark.models
def test_fast_path_samples_each_row_from_its_own_seed_whatever_its_batch(fast):
    sampling = SamplingConfig(max_new_tokens=12, seed=0)
    seeds = [2**40, 7, 2**62 + 3]
    together = fast.generate(PROMPTS, sampling, seeds=seeds)
    alone = [fast.generate([prompt], sampling, seeds=[seed])[0] for prompt, seed in zip(PROMPTS, seeds)]
    assert together == alone


def test_fast_generation_reaches_the_generator_and_changes_no_recorded_setting(monkeypatch):
    from longmab_utils.config import get_profile
    from longmab_utils.runfolder import NOT_RECORDED

    monkeypatch.setattr("longmab_utils.models.load_policy", lambda *args: ("model", "tokenizer"))
    monkeypatch.setattr(generation, "HFGenerator", lambda model, tokenizer, **kwargs: kwargs)
    assert generation.build_generator(get_profile("cpu-tiny"))["prefill_chunk"] is None
    fast_profile = get_profile("cpu-tiny", {"fast_generation": "true"})
    assert generation.build_generator(fast_profile)["prefill_chunk"] == generation.PREFILL_CHUNK
    assert "fast_generation" in NOT_RECORDED


def test_row_sampler_draws_from_the_softmax_with_each_rows_own_seed():
    from longmab_utils.generation import RowSampler

    scores = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])).repeat(2000, 1)
    picks = RowSampler(list(range(4000)), "cpu")(None, scores).argmax(dim=1)
    first, second = picks[0::2], picks[1::2]
    assert (
        abs((first == 0).float().mean().item() - 0.7) < 0.04 and abs((second == 2).float().mean().item() - 0.8) < 0.04
    )
    one = RowSampler([11, 12], "cpu")(None, scores[:2].clone())
    assert torch.equal(one[1], RowSampler([12], "cpu")(None, scores[1:2].clone())[0])
