"""GPU-path behaviour a CPU can check: one model at a time, lengths that fit, remote code on request, adapters."""

import json
import subprocess
import sys

import pytest
from test_rollout import priors_records

from longmab_utils import generation, models, pipeline
from longmab_utils.config import PROFILES, get_profile
from longmab_utils.dpo import last_checkpoint
from longmab_utils.errors import UserError
from longmab_utils.evaluation import CHAT_TEMPLATE_ALLOWANCE, eval_context
from longmab_utils.generation import fit_context, lora_engine_kwargs
from longmab_utils.models import ModelNotAvailable, check_remote_code, needs_remote_code


class WordTokenizer:
    """A whitespace tokenizer: one id per word, enough for budgets and truncation."""

    eos_token_id, pad_token = 0, "<pad>"

    def __call__(self, text, add_special_tokens=False):
        if isinstance(text, list):
            return {"input_ids": [self(t)["input_ids"] for t in text]}
        return {"input_ids": [len(word) for word in text.split()]}

    def decode(self, ids, skip_special_tokens=True):
        return " ".join("w" * max(1, i) for i in ids)


class Ledger:
    """Counts the fake models alive and remembers the most at once."""

    def __init__(self):
        self.alive, self.most, self.events = 0, 0, []

    def born(self, name):
        self.alive += 1
        self.most = max(self.most, self.alive)
        self.events.append(f"load {name}")

    def died(self, name):
        self.alive -= 1
        self.events.append(f"free {name}")


class FakeGenerator:
    """A generator that answers from a script and reports its life to a ledger."""

    def __init__(self, ledger, answer="Reasoning: so.\nAnswer: x"):
        self.ledger, self.answer, self.adapter_on = ledger, answer, None
        self.tokenizer = WordTokenizer()
        self.calls = []
        ledger.born("policy")

    def use_adapter(self, enabled):
        self.adapter_on = enabled

    def generate(self, prompts, sampling, desc="generate", seeds=None):
        self.calls.append((desc, self.adapter_on, len(prompts)))
        return [self.answer] * len(prompts)

    def close(self):
        self.ledger.died("policy")


def test_evaluation_serves_base_and_adapter_from_one_engine(tmp_path, monkeypatch):
    ledger, built = Ledger(), []

    def build(profile, extra_adapter=None, max_model_len=None, batch_size=None):
        built.append((extra_adapter, max_model_len, batch_size, FakeGenerator(ledger)))
        return built[-1][3]

    monkeypatch.setattr(generation, "build_generator", build)
    monkeypatch.setattr(models, "model_limit", lambda profile: 8192)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    profile = get_profile("smoke")
    scores = pipeline.evaluate(profile, tmp_path, str(adapter), "data/sample/tiny/eval")
    assert set(scores) == {"base", "trained"} and len(built) == 1 and ledger.most == 1 and ledger.alive == 0
    # smoke: a 512-token prompt, the chat template's headers and a 16-token answer, well under the 8,192 limit
    assert (profile.eval_max_input_len, profile.eval_max_new_tokens) == (512, 16)
    assert built[0][1] == 512 + CHAT_TEMPLATE_ALLOWANCE + 16
    assert built[0][2] == profile.eval_batch_size
    assert ledger.events == ["load policy", "free policy"]
    assert [(label, adapter_on) for label, adapter_on, _ in built[0][3].calls] == [("base", False), ("trained", True)]


def test_the_embedder_loads_only_after_the_policy_is_freed(tmp_path, monkeypatch):
    ledger = Ledger()
    probe = "Reasoning: the text says so. So the answer is {}"
    samples = pipeline.load_samples(get_profile("smoke"))
    answers = iter(s["answer"] for s in samples)

    class ProbeGenerator(FakeGenerator):
        def generate(self, prompts, sampling, desc="generate", seeds=None):
            assert len(set(seeds)) == len(prompts)  # one seed per sample
            return [probe.format(next(answers)) for _ in prompts]

    def embedder(name, trust_remote_code=False):
        assert ledger.alive == 0, "the embedder must not load while the policy holds the GPU"
        ledger.born("embedder")
        return object()

    monkeypatch.setattr(generation, "build_generator", lambda profile: ProbeGenerator(ledger))
    monkeypatch.setattr(models, "load_embedder", embedder)
    summary = pipeline.probe(get_profile("smoke", {"prior": "random"}), tmp_path)
    assert summary["valid_probes"] == len(samples) and ledger.events == ["load policy", "free policy", "load embedder"]


class InterruptedGenerator(FakeGenerator):
    """Ctrl-C arrives during the first generation."""

    def generate(self, prompts, sampling, desc="generate", seeds=None):
        raise KeyboardInterrupt


def interrupted_step(name, run_dir):
    """Run one pipeline step on the smoke profile (rollout over written priors, evaluation with an adapter)."""
    profile = get_profile("smoke", {"prior": "random"})
    if name == "probe":
        return pipeline.probe(profile, run_dir)
    if name == "rollout":
        (run_dir / "priors.jsonl").write_text("".join(json.dumps(r) + "\n" for r in priors_records(2)))
        return pipeline.rollout(profile, run_dir)
    (run_dir / "adapter").mkdir()
    return pipeline.evaluate(profile, run_dir, str(run_dir / "adapter"), "data/sample/tiny/eval")


@pytest.mark.parametrize("name", ["probe", "rollout", "evaluate"])
def test_a_step_interrupted_mid_generation_still_closes_its_engine(tmp_path, monkeypatch, name):
    ledger = Ledger()
    monkeypatch.setattr(generation, "build_generator", lambda profile, *args, **kwargs: InterruptedGenerator(ledger))
    monkeypatch.setattr(models, "model_limit", lambda profile: 8192)
    with pytest.raises(KeyboardInterrupt):
        interrupted_step(name, tmp_path)
    assert ledger.events == ["load policy", "free policy"]  # a rerun in the same kernel finds the GPU free


# The model's own context: Llama-3.1 131,072, Qwen2.5 32,768, SmolLM2 8,192.
LIMITS = {"paper": 131072, "gpu-16gb": 32768}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_evaluation_lengths_fit_the_engine_for_every_profile(name):
    profile = PROFILES[name]
    limit = LIMITS.get(name, 8192)
    budget, context = eval_context(profile.eval_max_input_len, profile.eval_max_new_tokens, limit)
    assert context <= limit and budget + CHAT_TEMPLATE_ALLOWANCE + profile.eval_max_new_tokens <= context
    assert budget >= min(profile.eval_max_input_len, limit // 2)  # capping never starves the prompt


def test_a_capped_context_shrinks_the_prompt_budget_not_the_answer():
    assert eval_context(100_000, 1024, 32768) == (32768 - 1024 - CHAT_TEMPLATE_ALLOWANCE, 32768)
    assert eval_context(1000, 24, None) == (1000, 1024 + CHAT_TEMPLATE_ALLOWANCE)  # uncapped: the budget as set
    with pytest.raises(UserError, match="no room"):
        eval_context(100, 4096, 4096)


def test_over_long_prompts_lose_their_middle_never_the_item():
    ids = list(range(100))
    assert fit_context(ids, 200, 50) == ids and fit_context(ids, None, 50) == ids
    fitted = fit_context(ids, 80, 30)
    assert len(fitted) == 50 and fitted[:25] == ids[:25] and fitted[-25:] == ids[-25:]


def test_vllm_serves_the_adapter_at_its_own_rank(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 64}))
    assert lora_engine_kwargs(str(tmp_path)) == {"enable_lora": True, "max_lora_rank": 64, "max_loras": 1}
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 8}))
    assert lora_engine_kwargs(str(tmp_path))["max_lora_rank"] == 16  # vLLM's default cap
    assert lora_engine_kwargs(None) == {}


@pytest.mark.parametrize(("rank", "cap"), [(1, 16), (16, 16), (24, 32), (48, 64), (300, 320), (321, 512), (512, 512)])
def test_vllm_gets_a_lora_rank_cap_it_allows(tmp_path, rank, cap):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": rank}))
    assert lora_engine_kwargs(str(tmp_path))["max_lora_rank"] == cap


def test_a_lora_rank_above_vllms_largest_cap_is_a_clear_error(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 513}))
    with pytest.raises(UserError, match="LoRA rank 513 is above vLLM's largest max_lora_rank 512"):
        lora_engine_kwargs(str(tmp_path))


def test_remote_code_needs_an_explicit_opt_in_before_anything_loads(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text(json.dumps({"auto_map": {"AutoModel": "modeling.Model"}}))
    assert needs_remote_code(str(tmp_path)) and not needs_remote_code("bundled:all-minilm-l6-v2")
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda repo, name: None)
    assert needs_remote_code("openbmb/MiniCPM-Embedding") and not needs_remote_code("some/plain-model")
    with pytest.raises(ModelNotAvailable, match="embedder_trust_remote_code=true"):
        check_remote_code({"embedder_trust_remote_code": ("openbmb/MiniCPM-Embedding", False)})
    check_remote_code({"embedder_trust_remote_code": ("openbmb/MiniCPM-Embedding", True)})
    monkeypatch.setattr(generation, "build_generator", lambda profile: pytest.fail("a model loaded"))
    with pytest.raises(ModelNotAvailable, match="embedder_trust_remote_code"):
        pipeline.probe(get_profile("smoke", {"embedding_model": str(tmp_path)}), tmp_path)


def test_a_crashed_training_resumes_from_its_newest_checkpoint(tmp_path):
    assert last_checkpoint(tmp_path) is None
    for step in (5, 40, 10):
        (tmp_path / f"checkpoint-{step}").mkdir()
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-40")


@pytest.mark.models
def test_training_under_accelerate_launch_finishes(tmp_path):
    from test_dpo import PAIRS

    run = tmp_path / "run"
    run.mkdir()
    (run / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2"]
    command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    command += ["-m", "longmab_utils", "train", "--profile", "smoke", "--run-dir", str(run), "--set", "dpo.epochs=1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((run / "adapter" / "train_summary.json").read_text())
    assert summary["steps"] >= 1 and (run / "adapter" / "adapter_model.safetensors").exists()
