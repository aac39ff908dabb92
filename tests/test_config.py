"""Profiles: validated settings, `--set` overrides with nested keys, clear errors, project-relative paths."""

import dataclasses

import pytest
from pydantic import ValidationError

from longmab_utils.bandit import POLICIES
from longmab_utils.builddata import build_command
from longmab_utils.config import (
    PROFILES,
    PROJECT_ROOT,
    DPOSettings,
    Profile,
    SettingsError,
    as_dict,
    describe,
    get_profile,
    notebook_profile,
    parse_overrides,
    project_path,
    settings_items,
)
from longmab_utils.errors import UserError


def test_overrides_are_parsed_to_each_field_type():
    before = PROFILES["cpu-tiny"].rounds
    items = ["rounds=40", "keep_invalid_probes=yes", "max_samples=none", "top_p=0.5", f"seed={2**40}"]
    profile = get_profile("cpu-tiny", parse_overrides(items))
    assert (profile.rounds, profile.keep_invalid_probes, profile.max_samples) == (40, True, None)
    assert (profile.top_p, profile.seed) == (0.5, 2**40)
    assert PROFILES["cpu-tiny"].rounds == before != 40


def test_nested_dpo_settings_are_reachable_with_a_dot():
    profile = get_profile("paper", {"dpo.sft_weight": "0.2", "dpo.quantization": "none", "dpo.eval_steps": "none"})
    assert profile.dpo.sft_weight == 0.2 and profile.dpo.quantization == "none" and profile.dpo.beta == 0.1
    assert profile.dpo.eval_steps is None and PROFILES["paper"].dpo.eval_steps == 250
    assert as_dict(profile)["dpo"]["sft_weight"] == 0.2


@pytest.mark.parametrize(
    ("overrides", "named", "allowed"),
    [
        ({"backend": "cuda"}, "backend=cuda", "'auto', 'hf' or 'vllm'"),
        ({"dtype": "float33"}, "dtype=float33", "'bfloat16'"),
        ({"prior": "probe"}, "prior=probe", "'probe_similarity', 'query_similarity' or 'random'"),
        ({"policy": "ucbb"}, "policy=ucbb", "'thompson'"),
        ({"reward_subem_on": "answr"}, "reward_subem_on=answr", "'response' or 'answer'"),
        ({"dpo.quantization": "8bit"}, "dpo.quantization=8bit", "'4bit' or 'none'"),
        ({"top_k": "0"}, "top_k=0", "greater than or equal to 1"),
        ({"rounds": "-3"}, "rounds=-3", "greater than or equal to 1"),
        ({"top_p": "0"}, "top_p=0", "greater than 0"),
        ({"top_p": "1.5"}, "top_p=1.5", "less than or equal to 1"),
        ({"temperature": "-0.1"}, "temperature=-0.1", "greater than or equal to 0"),
        ({"presence_penalty": "inf"}, "presence_penalty=inf", "finite"),
        ({"temperature": "2.5"}, "temperature=2.5", "less than or equal to 2"),
        ({"presence_penalty": "2.1"}, "presence_penalty=2.1", "less than or equal to 2"),
        ({"presence_penalty": "-3"}, "presence_penalty=-3", "greater than or equal to -2"),
        ({"dpo.val_size": "1"}, "dpo.val_size=1", "less than 1"),
        ({"dpo.warmup": "1.5"}, "dpo.warmup=1.5", "less than or equal to 1"),
        ({"dpo.beta": "0"}, "dpo.beta=0", "greater than 0"),
        ({"gpu_memory_utilization": "0"}, "gpu_memory_utilization=0", "greater than 0"),
        ({"seed": "-1"}, "seed=-1", "greater than or equal to 0"),
        ({"seed": str(2**63)}, f"seed={2**63}", f"less than {2**63}"),
        ({"max_samples": "0"}, "max_samples=0", "none for all"),
        ({"eval_max_items": "0"}, "eval_max_items=0", "none for all"),
        ({"ablation_samples": "0"}, "ablation_samples=0", "none for all"),
        ({"rounds": "many"}, "rounds=many", "valid integer"),
        ({"keep_invalid_probes": "maybe"}, "keep_invalid_probes=maybe", "valid boolean"),
        ({"dpo.epochs": "two"}, "dpo.epochs=two", "valid number"),
    ],
)
def test_bad_values_name_the_field_the_value_and_what_is_allowed(overrides, named, allowed):
    with pytest.raises(SettingsError) as error:
        get_profile("smoke", overrides)
    message = str(error.value)
    assert named in message and allowed in message and "\n" not in message


def test_every_policy_of_the_bandit_is_a_valid_choice():
    assert [get_profile("smoke", {"policy": name}).policy for name in POLICIES] == list(POLICIES)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"roundz": "3"}, "unknown setting 'roundz': did you mean rounds?"),
        ({"beta": "0.1"}, "unknown setting 'beta': did you mean dpo.beta?"),
        ({"dpo.nope": "1"}, "unknown setting 'dpo.nope': did you mean dpo.seed"),
        ({"dpo.xyzzy": "1"}, "unknown setting 'dpo.xyzzy': known: dpo.beta, dpo.sft_weight"),
        ({"xyzzy": "1"}, "unknown setting 'xyzzy': known: name, policy_model"),
        ({"dpo": {"xyzzy": 1}}, "unknown setting 'dpo.xyzzy'"),
        ({"dpo": "3"}, "dpo is a group of settings; set its keys one at a time: dpo.beta"),
        ({"rounds.x": "1"}, "rounds has no sub-settings; did you mean rounds=1?"),
        ({"dpo.beta.x": "1"}, "dpo.beta has no sub-settings"),
    ],
)
def test_unknown_keys_and_wrong_nesting_are_refused(overrides, expected):
    with pytest.raises(SettingsError) as error:
        get_profile("smoke", overrides)
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_settings_are_frozen_and_checked_when_built_directly():
    profile = PROFILES["smoke"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.rounds = 5
    with pytest.raises(ValidationError, match="top_k"):
        dataclasses.replace(profile, top_k=0)
    with pytest.raises(ValidationError, match="nope"):
        DPOSettings(nope=1)
    assert dataclasses.replace(profile.dpo, beta=0.3).beta == 0.3


def test_malformed_set_items_and_unknown_profiles_are_user_errors():
    with pytest.raises(UserError, match="key=value"):
        parse_overrides(["rounds"])
    with pytest.raises(UserError, match="unknown profile 'tiny'; choose one of paper"):
        get_profile("tiny")


def test_relative_paths_fall_back_to_the_project_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert project_path("data/sample/train.jsonl") == PROJECT_ROOT / "data/sample/train.jsonl"
    (tmp_path / "mine.jsonl").write_text("")
    assert project_path("mine.jsonl").resolve() == tmp_path / "mine.jsonl"


def test_notebook_profile_applies_knobs_over_overrides_and_ignores_none():
    profile = notebook_profile("cpu-tiny", 7, {"rounds": "4", "top_k": "2"}, rounds=6, prior=None, **{"dpo.beta": 0.3})
    assert (profile.seed, profile.rounds, profile.top_k, profile.prior) == (7, 6, 2, "probe_similarity")
    assert profile.dpo.beta == 0.3 and PROFILES["cpu-tiny"].dpo.beta == 0.1
    with pytest.raises(SettingsError, match="rounds=0"):
        notebook_profile("cpu-tiny", 7, rounds=0)


def test_every_key_is_listed_with_its_value_and_docstring():
    profile = get_profile("smoke", {"dpo.beta": "0.25"})
    items = {key: (value, doc) for key, value, doc in settings_items(profile)}
    assert len(items) == len(Profile.__pydantic_fields__) - 1 + len(DPOSettings.__pydantic_fields__)
    assert items["dpo.beta"] == (0.25, "DPO temperature on the log-ratio margin.")
    assert all(doc for _, doc in items.values()), [key for key, (_, doc) in items.items() if not doc]
    text = describe(profile)
    assert "dpo.beta = 0.25\n    DPO temperature" in text and "max_model_len = 30000" in text
    assert "policy_adapter = data/warmstart_adapter" in text and "eval_steps = none" in text


def test_cell_timeout_defaults_to_an_hour_and_none_on_gpu_profiles():
    assert PROFILES["smoke"].cell_timeout == 3600
    assert PROFILES["paper"].cell_timeout is None and PROFILES["gpu-16gb"].cell_timeout is None


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_names_data_that_exists(name):
    profile = PROFILES[name]
    assert profile.name == name
    if not profile.data.startswith("/"):
        assert project_path(profile.eval_data).exists()
        assert project_path(profile.data).exists() or build_command(profile.data, name)  # build-data makes it
