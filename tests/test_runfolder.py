"""The run folder stands alone: every step reads only its artifacts, records what it read, and replaces nothing
silently (fake policy, embedder and trainer; the real-model check is in test_cli)."""

import dataclasses
import json
import shutil
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_ablation import FakeEmbedder
from test_gpu_path import WordTokenizer

from longmab_utils import __main__ as cli
from longmab_utils import ablation, dpo, generation, models, rollout, runfolder
from longmab_utils.config import PROFILES, get_profile, settings_items
from longmab_utils.data import read_json, read_records, read_samples

ROOT = Path(__file__).resolve().parents[1]


class Policy:
    """Answers right or wrong by a hash of the prompt and seed; the same text then states and gives the answer."""

    tokenizer = WordTokenizer()

    def __init__(self, answers):
        self.answers = answers

    def generate(self, prompts, sampling, desc="", seeds=None):
        texts = []
        for messages, seed in zip(prompts, seeds or [0] * len(prompts)):
            content = messages[0]["content"]
            question = content.split("Question: ")[1].split("\n")[0]
            right = zlib.crc32(f"{content}{seed}".encode()) % 2 == 0
            answer = self.answers.get(question, "?") if right else "Nobody"
            texts.append(f"Reasoning: I read it, so the answer is {answer}\nAnswer: {answer}")
        return texts

    def use_adapter(self, enabled):
        pass

    def close(self):
        pass


@pytest.fixture
def fakes(monkeypatch):
    """Every model of the pipeline replaced; `built` and `trained` list what was loaded and trained."""
    answers = {s["question"]: s["answer"] for s in read_samples(ROOT / PROFILES["smoke"].data)}
    seen = SimpleNamespace(built=[], trained=[])

    def build(profile, extra_adapter=None, max_model_len=None, batch_size=None):
        seen.built.append(profile)
        return Policy(answers)

    def train_dpo(pairs_path, policy_model, out_dir, settings, adapter=None, dtype="auto"):
        seen.trained.append(settings)
        folder = Path(out_dir) / "adapter"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "adapter_model.safetensors").write_text(f"weights for beta {settings.beta}")
        (folder / "adapter_config.json").write_text("{}")
        (folder / "dpo_settings.json").write_text(json.dumps(dataclasses.asdict(settings)))  # as train_dpo
        measured = {"trainable_params": 1, "total_params": 2, "peak_memory_gb": 0.1, "peak_memory_of": "test"}
        return {"log": [{"step": 1, "loss": 0.69}], "train_pairs": 1, "val_pairs": 0, "checks": {}, **measured}

    monkeypatch.setattr(generation, "build_generator", build)
    monkeypatch.setattr(models, "load_embedder", lambda name, trust_remote_code=False: FakeEmbedder())
    monkeypatch.setattr(models, "load_tokenizer", lambda profile: WordTokenizer())
    monkeypatch.setattr(models, "model_limit", lambda profile: 8192)
    monkeypatch.setattr(dpo, "train_dpo", train_dpo)
    return seen


def step(name, run_dir, *extra):
    """Run one CLI step with the smoke profile (4 rounds, so that samples yield pairs); returns the exit status."""
    return cli.main([name, "--profile", "smoke", "--run-dir", str(run_dir), "--set", "rounds=4", *extra])


def data_copy(tmp_path):
    """A copy of the smoke profile's training file."""
    copy = tmp_path / "data" / "train.jsonl"
    copy.parent.mkdir()
    shutil.copy(ROOT / PROFILES["smoke"].data, copy)
    return copy


def snapshot(folder):
    """Every file under a folder with its bytes."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_every_setting_is_recorded_by_some_step_or_said_to_change_no_artifact():
    keys = [key for key, _, _ in settings_items(PROFILES["paper"])]
    recorded = {key for spec in runfolder.STEPS.values() for key in spec.settings}
    assert recorded <= set(keys) and set(runfolder.NOT_RECORDED) <= set(keys)
    assert not recorded & set(runfolder.NOT_RECORDED)
    assert set(keys) == recorded | set(runfolder.NOT_RECORDED)
    assert "dpo.beta" not in runfolder.STEPS["pairs"].settings
    assert "eval_max_items" not in runfolder.STEPS["rollout"].settings


def test_after_probe_the_run_folder_needs_neither_the_data_nor_the_working_directory(tmp_path, monkeypatch, fakes):
    copy = data_copy(tmp_path)
    assert step("probe", tmp_path / "run", "--data", str(copy)) == 0
    samples = tmp_path / "run" / "samples.jsonl"
    assert read_records(samples) == read_samples(copy)
    record = read_json(tmp_path / "run" / "settings.json")["probe"]
    assert record["inputs"] == {"samples.jsonl": runfolder.sha256(samples)} and record["data"] == str(copy)
    copy.unlink()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    for name in ("rollout", "pairs", "train"):
        assert step(name, "../run") == 0, name
    assert read_records(tmp_path / "run" / "pairs.jsonl") and (tmp_path / "run" / "adapter").is_dir()
    settings = read_json(tmp_path / "run" / "settings.json")
    assert set(settings["pairs"]["settings"]) == {"policy_model", "max_prompt_length", "seed"}
    assert settings["pairs"]["inputs"]["samples.jsonl"] == record["inputs"]["samples.jsonl"]
    assert settings["train"]["settings"]["dpo.beta"] == 0.1 and "rounds" not in settings["train"]["settings"]


def test_edited_data_is_refused_before_any_model_loads_and_force_redoes_the_probe(tmp_path, fakes, capsys):
    copy, run = data_copy(tmp_path), tmp_path / "run"
    assert step("probe", run, "--data", str(copy)) == 0 and step("rollout", run) == 0
    priors, loads = (run / "priors.jsonl").read_bytes(), len(fakes.built)
    assert step("probe", run, "--data", str(copy)) == 0 and len(fakes.built) == loads  # same samples: reused
    lines = copy.read_text().splitlines(keepends=True)
    first = json.loads(lines[0])
    copy.write_text(json.dumps({**first, "answer": "Someone else"}) + "\n" + "".join(lines[1:]))
    capsys.readouterr()
    assert step("probe", run, "--data", str(copy)) == 2
    error = capsys.readouterr().err
    assert "samples.jsonl changed (sha256" in error and "--run-dir" in error and "--force" in error
    assert "mark rollout stale" in error and error.count("\n") == 1
    assert (run / "priors.jsonl").read_bytes() == priors and len(fakes.built) == loads
    assert read_records(run / "samples.jsonl")[0]["answer"] == first["answer"]

    assert step("probe", run, "--data", str(copy), "--force") == 0
    assert read_records(run / "samples.jsonl")[0]["answer"] == "Someone else" and len(fakes.built) == loads + 1
    assert "rollout" in runfolder.stale_steps(run) and "stale" in read_json(run / "rollout_summary.json")
    assert step("pairs", run) == 2
    error = capsys.readouterr().err
    assert "rollout.jsonl is stale (made before probe was redone" in error and "rerun rollout first" in error
    assert step("rollout", run) == 0 and runfolder.stale_steps(run) == {}  # a stale step is redone, no --force
    assert [r["answer"] for r in read_records(run / "rollout.jsonl")][0] == "Someone else"


def test_a_second_train_with_other_settings_is_refused_and_force_makes_the_metrics_stale(tmp_path, fakes, capsys):
    run = tmp_path / "run"
    for name in ("probe", "rollout", "pairs", "train", "evaluate"):
        assert step(name, run) == 0, name
    adapter, trained = snapshot(run / "adapter"), len(fakes.trained)
    assert step("train", run, "--set", "dpo.logging_steps=5") == 0  # a logging knob: the adapter is reused
    assert step("pairs", run, "--set", "dpo.beta=0.2") == 0  # pairs does not read dpo.beta
    capsys.readouterr()
    assert step("train", run, "--set", "dpo.beta=0.2") == 2
    error = capsys.readouterr().err
    assert "dpo.beta 0.1 -> 0.2" in error and "--force" in error and "mark evaluate stale" in error
    assert snapshot(run / "adapter") == adapter and len(fakes.trained) == trained

    assert step("train", run, "--set", "dpo.beta=0.2", "--force") == 0
    assert len(fakes.trained) == trained + 1 and snapshot(run / "adapter") != adapter
    assert "train was redone" in runfolder.stale_steps(run)["evaluate"]
    assert "train was redone" in read_json(run / "metrics.json")["stale"]
    capsys.readouterr()
    assert step("evaluate", run) == 0
    assert "were stale (made before train was redone" in capsys.readouterr().out
    assert "stale" not in read_json(run / "metrics.json") and runfolder.stale_steps(run) == {}
    assert step("evaluate", run, "--set", "eval_max_items=1") == 2  # metrics are not replaced silently either


def test_train_writes_the_model_card_and_evaluate_adds_the_paired_comparison(tmp_path, fakes):
    run = tmp_path / "run"
    for name in ("probe", "rollout", "pairs", "train"):
        assert step(name, run) == 0, name
    assert "Not evaluated yet" in (run / "adapter" / "README.md").read_text()
    assert step("evaluate", run) == 0
    overall = read_json(run / "metrics.json")["paired"]["all"]
    row = next(line for line in (run / "adapter" / "README.md").read_text().splitlines() if line.startswith("| all"))
    counts = [overall[key] for key in ("n", "wins", "ties", "losses")]
    assert row.split(" | ")[1:5] == [str(count) for count in counts]


def test_merge_refuses_shards_made_with_other_settings(tmp_path, fakes, capsys):
    run = tmp_path / "run"
    assert step("probe", run) == 0
    assert step("rollout", run, "--shard", "0/2") == 0
    assert step("rollout", run, "--shard", "1/2", "--set", "rounds=3") == 0
    capsys.readouterr()
    assert step("merge", run, "--shards", "2") == 2
    error = capsys.readouterr().err
    assert "rollout.shard-1-of-2.jsonl was made with other settings" in error and "rounds 3 -> 4" in error
    assert not (run / "rollout.jsonl").exists()
    assert step("rollout", run, "--shard", "1/2") == 2  # resuming a shard with other rounds is refused too
    assert "rollout.shard-1-of-2.jsonl made with other settings" in capsys.readouterr().err
    assert step("rollout", run, "--shard", "1/2", "--force") == 0 and step("merge", run, "--shards", "2") == 0
    assert {len(r["rounds"]) for r in read_records(run / "rollout.jsonl")} == {4}


def test_the_ablation_cache_follows_every_rollout_setting_and_survives_a_crash(tmp_path, monkeypatch, fakes):
    run = tmp_path / "run"
    assert step("probe", run) == 0
    profile, rolled, original = get_profile("smoke", {"rounds": 2}), [], rollout.roll_batch

    def counted(*args, **kwargs):
        rolled.append(args[2].temperature)
        return original(*args, **kwargs)

    monkeypatch.setattr(rollout, "roll_batch", counted)
    ablation.run_study(profile, run, 2)
    ablation.run_study(profile, run, 2)
    assert rolled == [1.0]
    ablation.run_study(get_profile("smoke", {"rounds": 2, "temperature": 0.5}), run, 2)
    assert rolled == [1.0, 0.5]
    assert read_json(run / "ablation" / "settings.json")["temperature"] == 0.5

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rollout, "roll_batch", crash)
    with pytest.raises(KeyboardInterrupt):
        ablation.run_study(profile, run, 2)
    assert not (run / "ablation" / "rollout.jsonl").exists()  # never an old rollout under new settings
    monkeypatch.setattr(rollout, "roll_batch", counted)
    (run / "ablation" / "settings.json").unlink()  # as a crash before this change could leave it
    assert len(ablation.run_study(profile, run, 2)) == 2 * len(ablation.STUDY)
