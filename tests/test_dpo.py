"""DPO settings mapping, drift against the pinned libraries, pair checks, and a one-step CPU smoke run."""

import dataclasses
import inspect
import json
import math

import pytest
import torch

from longmab_utils.config import SettingsError, get_profile
from longmab_utils.dpo import (
    DPOSettings,
    check_pairs,
    dpo_config_kwargs,
    dpo_settings,
    leading_bos,
    llamafactory_yaml,
    lora_config,
    quantization_config,
    split_pairs,
    total_steps,
    train_dpo,
)
from longmab_utils.errors import UserError
from longmab_utils.hardware import precision
from longmab_utils.models import BUNDLED_POLICY, load_policy


def tiny_llama(vocab_size: int):
    """A one-layer random Llama in eval mode: the shapes of a causal LM, in milliseconds."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    return LlamaForCausalLM(config).eval()


def real_config(tmp_path, settings: DPOSettings, steps: int = 100, has_eval: bool = True):
    """A real TRL DPOConfig built from our settings, as a CPU run builds it."""
    from trl import DPOConfig

    kwargs = dpo_config_kwargs(settings, str(tmp_path), precision("auto", None), False, has_eval, steps)
    return DPOConfig(**kwargs)


def test_settings_mean_what_they_say_in_a_real_dpo_config(tmp_path):
    config = real_config(tmp_path, DPOSettings(sft_weight=0.2), steps=100)
    assert config.loss_type == ["sigmoid", "sft"] and config.loss_weights == [1.0, 0.2]
    assert config.get_warmup_steps(100) == 10  # 10% warmup of a 100-step run
    assert config.lr_scheduler_type == "cosine" and config.learning_rate == 2e-5 and config.num_train_epochs == 2
    assert config.gradient_checkpointing is True  # whichever name the installed transformers knows
    assert config.eval_steps == 10 and config.save_steps == 10 and config.save_total_limit == 2  # ~10 per run
    assert config.per_device_train_batch_size == 1 and config.max_length == 8500 and config.use_cpu
    assert not config.bf16 and not config.fp16 and config.precompute_ref_log_probs
    paper = real_config(tmp_path, dpo_settings(get_profile("paper")), steps=4000)
    assert paper.eval_steps == 250 and paper.save_steps == 400  # the authors evaluate every 250 steps
    quiet = real_config(tmp_path, DPOSettings(gradient_checkpointing=False), has_eval=False)
    assert quiet.gradient_checkpointing is False and quiet.eval_strategy == "no"


def test_trainer_precision_follows_the_device_capability():
    t4 = dpo_config_kwargs(DPOSettings(), "out", precision("auto", (7, 5)), True, False, 10)
    a100 = dpo_config_kwargs(DPOSettings(), "out", precision("auto", (8, 0)), True, False, 10)
    assert (t4["fp16"], t4["bf16"], t4["use_cpu"]) == (True, False, False)
    assert (a100["fp16"], a100["bf16"]) == (False, True)


def test_total_steps_counts_like_the_trainer():
    assert total_steps(10, DPOSettings(epochs=2.0, batch_size=1, grad_accum=1)) == 20
    assert total_steps(10, DPOSettings(epochs=1.0, batch_size=2, grad_accum=2)) == 3
    assert total_steps(10, DPOSettings(epochs=1.0), world_size=4) == 3


def test_every_argument_we_pass_is_accepted_by_the_installed_libraries():
    from peft import LoraConfig
    from transformers import BitsAndBytesConfig
    from trl import DPOConfig

    accepted = {f.name for f in dataclasses.fields(DPOConfig)}
    assert set(dpo_config_kwargs(DPOSettings(), "out", precision("auto", (8, 0)), True, True, 10)) <= accepted
    lora = lora_config(DPOSettings(lora_rank=4, lora_alpha=8, lora_dropout=0.05))
    assert (lora.r, lora.lora_alpha, lora.lora_dropout, lora.target_modules) == (4, 8, 0.05, "all-linear")
    assert isinstance(lora, LoraConfig)
    bnb = set(inspect.signature(BitsAndBytesConfig.__init__).parameters)
    assert {"load_in_4bit", "bnb_4bit_quant_type", "bnb_4bit_use_double_quant", "bnb_4bit_compute_dtype"} <= bnb


def test_qlora_without_cuda_is_an_error_not_a_fallback():
    with pytest.raises(UserError, match="quantization=none"):
        quantization_config(DPOSettings(quantization="4bit"), None)
    assert quantization_config(DPOSettings(quantization="none"), None) is None
    config = quantization_config(DPOSettings(), torch.bfloat16)
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16
    assert quantization_config(DPOSettings(), precision("auto", (7, 5)).dtype).bnb_4bit_compute_dtype == torch.float16


def test_profiles_carry_the_reference_sft_weights():
    assert dpo_settings(get_profile("paper")).sft_weight == 0.1
    assert dpo_settings(get_profile("gpu-16gb")).sft_weight == 0.2
    assert dpo_settings(get_profile("cpu-tiny")).quantization == "none"


def test_split_is_seeded_and_holds_out_a_tenth():
    pairs = [{"id": str(i)} for i in range(20)]
    train, val = split_pairs(pairs, 0.1, 1)
    assert len(val) == 2 and len(train) == 18 and split_pairs(pairs, 0.1, 1) == (train, val)
    assert {p["id"] for p in train} | {p["id"] for p in val} == {str(i) for i in range(20)}
    assert split_pairs(pairs[:3], 0.1, 1) == (split_pairs(pairs[:3], 0.1, 1)[0], [])


def test_leading_bos_counts_repeated_openers():
    assert leading_bos([1, 1, 5], 1) == 2 and leading_bos([1, 5, 1], 1) == 1 and leading_bos([5], None) == 0


PAIRS = [
    {
        "id": f"p{i}",
        "prompt": f"Document: Mira lives in Oldtown {i}.\nQuestion: Where does Mira live?",
        "chosen": f"Reasoning: The document says so.\nAnswer: Oldtown {i}",
        "rejected": "Reasoning: I guess.\nAnswer: Newport",
        "chosen_score": 1.0,
        "rejected_score": 0.0,
    }
    for i in range(2)
]


@pytest.fixture(scope="module")
def tokenizer():
    return load_policy(BUNDLED_POLICY, dtype="float32")[1]


@pytest.mark.models
def test_check_pairs_reports_broken_pairs(tokenizer):
    broken = [dict(PAIRS[0], rejected=PAIRS[0]["chosen"], rejected_score=1.0)]
    report = check_pairs(PAIRS + broken, tokenizer, max_length=20)
    assert report["identical_responses"] == 1 and report["non_positive_gap"] == 1
    assert report["over_max_length"] == 3 and report["double_bos"] == 0
    assert report["prompt_fills_max_length"] == sum(n >= 20 for n in report["prompt_tokens"]) > 0
    assert all(p < t for p, t in zip(report["prompt_tokens"], report["token_lengths"]))
    with pytest.raises(UserError, match="no preference pairs"):
        check_pairs([], tokenizer, 100)


@pytest.mark.models
def test_training_stops_with_the_lengths_when_every_prompt_fills_max_length(tmp_path):
    pairs_path = tmp_path / "pairs.jsonl"
    pairs_path.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    settings = DPOSettings(max_length=8, quantization="none", batch_size=1, grad_accum=1, epochs=1)
    with pytest.raises(UserError, match=r"pairs.jsonl: every pair's prompt has at least dpo.max_length=8 tokens"):
        train_dpo(pairs_path, BUNDLED_POLICY, tmp_path / "out", settings, dtype="float32")
    assert not (tmp_path / "out").exists()


@pytest.mark.models
def test_one_dpo_step_with_gradient_checkpointing_saves_an_adapter_that_changes_the_logits_and_tb_events(tmp_path):
    pairs_path = tmp_path / "pairs.jsonl"
    pairs_path.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    settings = DPOSettings(
        quantization="none",
        gradient_checkpointing=True,  # as the GPU profiles train; the notebook smoke run covers False
        epochs=1,
        batch_size=2,
        learning_rate=1e-3,
        warmup=0.0,  # with warmup the only step would run at learning rate 0
        max_length=256,
        report_to="tensorboard",
    )
    result = train_dpo(pairs_path, BUNDLED_POLICY, tmp_path, settings, dtype="float32")
    losses = [entry["loss"] for entry in result["log"] if "loss" in entry]
    assert losses and all(math.isfinite(float(loss)) for loss in losses)
    adapter = tmp_path / "adapter"
    assert (adapter / "adapter_model.safetensors").exists() and (adapter / "dpo_settings.json").exists()
    assert list((adapter / "runs").rglob("events.out.tfevents.*"))  # TRL's report_to, kept when _trainer goes
    base, tokenizer = load_policy(BUNDLED_POLICY, dtype="float32")
    ids = tokenizer("Where does Mira live?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = base(ids).logits
        trained, _ = load_policy(BUNDLED_POLICY, adapter=str(adapter), dtype="float32")
        after = trained(ids).logits
    assert not torch.allclose(before, after)


def test_llamafactory_yaml_names_a_loadable_folder_for_the_bundled_policy(tmp_path, monkeypatch):
    import yaml

    from longmab_utils import models

    folder = tmp_path / "smollm2-135m-instruct"
    monkeypatch.setattr(models, "resolve_model", lambda name: str(folder))
    text = llamafactory_yaml(dpo_settings(get_profile("cpu-tiny")), BUNDLED_POLICY, "d")
    config = yaml.safe_load(text)
    assert config["model_name_or_path"] == str(folder) and config["template"] == "chatml"
    assert "Hugging Face id or local folder" in text.split("model_name_or_path:")[0]


def test_llamafactory_yaml_mirrors_the_settings():
    import yaml

    text = llamafactory_yaml(dpo_settings(get_profile("paper")), "meta-llama/Llama-3.1-8B-Instruct", "/data/lf")
    config = yaml.safe_load(text)
    assert config["stage"] == "dpo" and config["template"] == "llama3" and config["pref_ftx"] == 0.1
    assert config["pref_beta"] == 0.1 and config["cutoff_len"] == 8500 and config["quantization_bit"] == 4
    assert config["dataset"] == "longmab_dpo" and config["dataset_dir"] == "/data/lf"
    qwen = yaml.safe_load(llamafactory_yaml(dpo_settings(get_profile("gpu-16gb")), "Qwen/Qwen2.5-3B-Instruct", "d"))
    assert qwen["template"] == "qwen" and qwen["pref_ftx"] == 0.2


def test_quiet_training_silences_datasets_bars_and_the_peft_deprecation_only():
    import warnings

    import datasets

    from longmab_utils.dpo import quiet_training

    datasets.enable_progress_bars()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_training():
            assert not datasets.is_progress_bar_enabled()
            warnings.warn("`is_gradient_checkpointing` is deprecated, use ...", FutureWarning, stacklevel=1)
            warnings.warn("something else", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["something else"]
    assert datasets.is_progress_bar_enabled()


def test_plain_progress_replaces_the_metric_table_with_a_silent_step_bar():
    from transformers.trainer_callback import (
        CallbackHandler,
        DefaultFlowCallback,
        PrinterCallback,
        ProgressCallback,
        TrainerCallback,
        TrainerState,
    )

    from longmab_utils.dpo import plain_progress

    class NotebookProgressCallback(TrainerCallback):
        """Stands in for transformers' notebook table (its module needs IPython, which the GPU library set lacks)."""

    handler = CallbackHandler([DefaultFlowCallback, NotebookProgressCallback, PrinterCallback], None, None, None, None)
    plain_progress(handler)
    kept = handler.callbacks
    assert [type(c) for c in kept][:1] == [DefaultFlowCallback] and len(kept) == 2
    assert isinstance(kept[1], ProgressCallback)

    class Bar:
        written: list[str] = []

        def write(self, text: str) -> None:
            self.written.append(text)

    for callback in (ProgressCallback(), kept[1]):
        callback.training_bar = Bar()
        callback.on_log(None, TrainerState(), None, logs={"loss": 0.69})
    assert len(Bar.written) == 1  # the stock bar writes the log line; ours does not
    state = TrainerState(max_steps=3, is_world_process_zero=True)
    kept[1].on_train_begin(None, state, None)
    assert kept[1].training_bar.total == 3  # the kit's bar over the steps (its text is off under TQDM_DISABLE)
    kept[1].on_prediction_step(None, state, None, eval_dataloader=[1])
    assert kept[1].prediction_bar is None  # no bar for the held-out pairs
    kept[1].training_bar.close()


def test_completion_logps_are_the_per_token_log_likelihood_of_the_completion():
    from longmab_utils.dpo import completion_logps

    torch.manual_seed(0)
    model = tiny_llama(vocab_size=40)
    ids, prompt_length = [3, 17, 5, 9, 22, 31, 8], 4
    logps = completion_logps(model, ids, prompt_length)
    assert logps.shape == (len(ids) - prompt_length,) and bool((logps < 0).all())
    labels = torch.tensor([[-100] * prompt_length + ids[prompt_length:]])
    with torch.no_grad():
        mean_nll = model(torch.tensor([ids]), labels=labels).loss  # transformers' own shifted cross-entropy
    assert torch.isclose(-logps.mean(), mean_nll, atol=1e-5)


@pytest.mark.models
def test_two_ranks_share_the_precomputed_reference_log_probs(tmp_path):
    import socket
    import subprocess
    import sys

    from transformers import AutoTokenizer

    from longmab_utils.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(BUNDLED_POLICY))
    tiny_llama(len(tokenizer)).save_pretrained(tmp_path / "model")  # random weights: only the data path matters here
    tokenizer.save_pretrained(tmp_path / "model")
    pairs = [{**PAIRS[0], "id": f"p{i}", "chosen": f"Answer: Oldtown {i}"} for i in range(10)]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    with socket.socket() as free:  # torchrun's static rendezvous wants a real port, not 0
        free.bind(("127.0.0.1", 0))
        port = str(free.getsockname()[1])
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port]
    done = subprocess.run([*launch, "tests/dpo_rank.py", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]  # main: FileNotFoundError for rank 0's cache file on rank 1
    assert done.stdout.count('trained on {"train_pairs": 9, "val_pairs": 1}') == 2
    assert (tmp_path / "out" / "adapter" / "adapter_model.safetensors").exists()


def test_completion_logps_asks_for_logits_at_the_completion_positions_only():
    from longmab_utils.dpo import completion_logps

    model = tiny_llama(vocab_size=40)
    shapes = []
    model.register_forward_hook(lambda module, args, output: shapes.append(tuple(output.logits.shape)))
    ids, prompt_length = list(range(3, 23)), 16
    completion_logps(model, ids, prompt_length)
    assert shapes == [(1, len(ids) - prompt_length + 1, 40)]  # not one row per prompt token (8 GB on a long prompt)


def test_tensorboard_without_its_package_is_refused_before_any_model_loads(tmp_path, monkeypatch):
    from longmab_utils import dpo

    monkeypatch.setattr("transformers.integrations.integration_utils.is_tensorboard_available", lambda: False)
    monkeypatch.setattr(dpo, "load_for_training", lambda *a: pytest.fail("the model loaded"))
    pairs_path = tmp_path / "pairs.jsonl"
    pairs_path.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    with pytest.raises(UserError, match="dpo.report_to=tensorboard needs"):
        train_dpo(pairs_path, BUNDLED_POLICY, tmp_path, DPOSettings(quantization="none", report_to="tensorboard"))
    dpo.check_report_to("none")  # the default needs nothing


def test_every_run_seed_the_settings_accept_gives_the_trainer_a_seed_it_takes():
    from transformers import set_seed

    seeds = set()
    for seed in (0, 42, 2**32 - 1, 2**32, 2**40):
        settings = dpo_settings(get_profile("smoke", {"seed": str(seed)}))
        set_seed(settings.seed)  # numpy refuses seeds of 2**32 and above
        seeds.add(settings.seed)
    assert len(seeds) == 5  # derived, not cut: 2**32 and 0 do not train alike
    chosen = dpo_settings(get_profile("smoke", {"seed": "2", "dpo.seed": "7"}))
    assert chosen.seed == 7  # a dpo.seed the user sets is the one used
    with pytest.raises(SettingsError, match="dpo.seed"):
        get_profile("smoke", {"dpo.seed": str(2**32)})


def test_the_trainer_seed_is_the_set_one_or_derived_from_the_run_seed():
    from longmab_utils.dpo import TRAINER_SEEDS, seeded
    from longmab_utils.seeds import derive_seed

    assert seeded(DPOSettings(seed=7), 42).seed == 7  # dpo.seed is used when set
    derived = seeded(DPOSettings(), 2**40).seed
    assert derived == derive_seed(2**40, "dpo") % TRAINER_SEEDS and 0 <= derived < TRAINER_SEEDS
    assert seeded(DPOSettings()).seed == seeded(DPOSettings(), 42).seed != seeded(DPOSettings(), 43).seed
