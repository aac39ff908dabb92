"""Profiles: overrides from the command line, nested DPO settings, clear errors, project-relative paths."""

import pytest

from longmab_utils.config import PROFILES, PROJECT_ROOT, as_dict, get_profile, parse_overrides, project_path


def test_overrides_are_parsed_to_each_field_type():
    before = PROFILES["cpu-tiny"].rounds
    profile = get_profile("cpu-tiny", parse_overrides(["rounds=40", "keep_invalid_probes=yes", "max_samples=none"]))
    assert (profile.rounds, profile.keep_invalid_probes, profile.max_samples) == (40, True, None)
    assert PROFILES["cpu-tiny"].rounds == before != 40


def test_nested_dpo_settings_are_reachable_with_a_dot():
    profile = get_profile("paper", {"dpo.sft_weight": "0.2", "dpo.quantization": "none"})
    assert profile.dpo.sft_weight == 0.2 and profile.dpo.quantization == "none" and profile.dpo.beta == 0.1
    assert as_dict(profile)["dpo"]["sft_weight"] == 0.2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"roundz": "3"}, "--set roundz: unknown setting"),
        ({"dpo.betta": "1"}, "--set dpo.betta: unknown setting"),
        ({"rounds.x": "1"}, "--set rounds.x: unknown setting"),
        ({"rounds": "many"}, "expected int"),
        ({"keep_invalid_probes": "maybe"}, "expected true or false"),
    ],
)
def test_bad_overrides_name_the_setting(overrides, message):
    with pytest.raises(ValueError, match=message):
        get_profile("smoke", overrides)


def test_malformed_set_items_and_unknown_profiles_are_refused():
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["rounds"])
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("tiny")


def test_relative_paths_fall_back_to_the_project_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert project_path("data/sample/train.jsonl") == PROJECT_ROOT / "data/sample/train.jsonl"
    (tmp_path / "mine.jsonl").write_text("")
    assert project_path("mine.jsonl").resolve() == tmp_path / "mine.jsonl"


def test_notebook_profile_applies_knobs_over_overrides_and_ignores_none():
    from longmab_utils.config import notebook_profile

    profile = notebook_profile("cpu-tiny", 7, {"rounds": "4", "top_k": "2"}, rounds=6, prior=None, **{"dpo.beta": 0.3})
    assert (profile.seed, profile.rounds, profile.top_k, profile.prior) == (7, 6, 2, "probe_similarity")
    assert profile.dpo.beta == 0.3 and PROFILES["cpu-tiny"].dpo.beta == 0.1


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_names_data_that_exists(name):
    profile = PROFILES[name]
    assert profile.name == name
    if not profile.data.startswith("/"):
        assert project_path(profile.data).exists() and project_path(profile.eval_data).exists()
