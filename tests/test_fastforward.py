"""Fast-forward: a notebook opened first gets the shipped cpu-tiny artifacts of the steps before it, never a mix."""

import shutil

import pytest

from longmab_utils.config import get_profile
from longmab_utils.course import fastforward
from longmab_utils.data import read_json, write_json
from longmab_utils.errors import UserError
from longmab_utils.runfolder import SETTINGS, STEPS, adapter_sha256, sha256


@pytest.fixture
def shipped(tmp_path):
    """A small stand-in for data/cpu-tiny-run with one file per artifact and the step records."""
    folder = tmp_path / "shipped"
    (folder / "adapter").mkdir(parents=True)
    for name in ("samples.jsonl", "priors.jsonl", "probe_summary.json", "rollout.jsonl", "pairs.jsonl"):
        (folder / name).write_text(f"{name}\n")
    (folder / "adapter" / "adapter_model.safetensors").write_bytes(b"weights")
    model = get_profile("cpu-tiny").policy_model
    records = {step: {"settings": {"policy_model": model}, "inputs": {}} for step in fastforward.MAIN_ARTIFACT}
    write_json(folder / SETTINGS, {**records, "stale": {}})
    return folder


def test_an_empty_run_folder_gets_every_step_up_to_the_one_asked_for(tmp_path, shipped, capsys):
    run = tmp_path / "run"
    assert fastforward.ensure(run, "rollout", True, "cpu-tiny", shipped) == ["probe", "rollout"]
    assert (run / "rollout.jsonl").read_text() == "rollout.jsonl\n"
    assert not (run / "pairs.jsonl").exists()
    assert set(read_json(run / SETTINGS)) == {"probe", "rollout", "stale"}
    assert "copied probe, rollout" in capsys.readouterr().out
    assert fastforward.ensure(run, "train", True, "smoke", shipped) == ["pairs", "train"]
    assert adapter_sha256(run / "adapter") == adapter_sha256(shipped / "adapter")
    assert fastforward.ensure(run, "train", False, "smoke", shipped) == []


def test_without_fast_forward_the_first_missing_step_names_its_notebook(tmp_path, shipped):
    with pytest.raises(UserError, match=r"priors\.jsonl is missing: run notebook 03_rollout first.*fast_forward"):
        fastforward.ensure(tmp_path, "pairs", False, "cpu-tiny", shipped)
    fastforward.ensure(tmp_path, "rollout", True, "cpu-tiny", shipped)
    with pytest.raises(UserError, match=r"pairs\.jsonl is missing: run notebook 04_preference_pairs"):
        fastforward.ensure(tmp_path, "pairs", False, "cpu-tiny", shipped)


def test_a_folder_with_its_own_earlier_step_is_not_mixed_with_shipped_later_ones(tmp_path, shipped):
    run = tmp_path / "run"
    run.mkdir()
    (run / "priors.jsonl").write_text("my own priors\n")
    with pytest.raises(UserError, match="has its own probe but no rollout"):
        fastforward.ensure(run, "pairs", True, "cpu-tiny", shipped)
    assert sorted(p.name for p in run.iterdir()) == ["priors.jsonl"]
    shutil.copy(shipped / "priors.jsonl", run / "priors.jsonl")  # the shipped probe itself may go on
    assert fastforward.ensure(run, "rollout", True, "cpu-tiny", shipped) == ["rollout"]


def test_a_profile_with_another_policy_is_refused(tmp_path, shipped):
    with pytest.raises(UserError, match="uses meta-llama"):
        fastforward.ensure(tmp_path, "probe", True, "paper", shipped)


def test_the_shipped_run_is_whole_and_its_records_match_its_files():
    shipped = fastforward.SHIPPED
    records = read_json(shipped / SETTINGS)
    assert records["stale"] == {}
    for step, main in fastforward.MAIN_ARTIFACT.items():
        assert (shipped / main).exists() and step in records
        assert set(records[step]["settings"]) == set(STEPS[step].settings)
    assert records["rollout"]["inputs"] == {"priors.jsonl": sha256(shipped / "priors.jsonl")}
    assert records["pairs"]["inputs"]["rollout.jsonl"] == sha256(shipped / "rollout.jsonl")
    assert records["train"]["inputs"] == {"pairs.jsonl": sha256(shipped / "pairs.jsonl")}
    assert records["probe"]["settings"]["policy_model"] == get_profile("cpu-tiny").policy_model


def test_ship_keeps_the_artifacts_and_records_of_a_finished_run_and_nothing_else(tmp_path):
    run = tmp_path / "run"
    (run / "adapter" / "checkpoint-1").mkdir(parents=True)
    (run / "llamafactory").mkdir()
    for name in fastforward.SHIPPED_FILES:
        (run / name).write_text(f"{name}\n")
    write_json(run / "manifest.json", {"profile": "cpu-tiny", "git_commit": "abc", "versions": {}})
    for name in fastforward.SHIPPED_ADAPTER:
        (run / "adapter" / name).write_text(f"{name}\n")
    model = get_profile("cpu-tiny").policy_model
    records = {step: {"settings": {"policy_model": model}, "inputs": {}} for step in [*fastforward.MAIN_ARTIFACT]}
    records["probe"]["data"] = str(fastforward.PROJECT_ROOT / "data" / "sample" / "tiny" / "train.jsonl")
    write_json(run / SETTINGS, {**records, "evaluate": {}, "stale": {}})
    target = fastforward.ship(run, tmp_path / "shipped")
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [*fastforward.SHIPPED_FILES, "adapter", SETTINGS, "provenance.json"]
    )
    assert sorted(p.name for p in (target / "adapter").iterdir()) == sorted(fastforward.SHIPPED_ADAPTER)
    shipped_records = read_json(target / SETTINGS)
    assert read_json(target / "provenance.json")["git_commit"] == "abc"
    assert "evaluate" not in shipped_records and shipped_records["probe"]["data"] == "data/sample/tiny/train.jsonl"
    assert fastforward.ensure(tmp_path / "new", "train", True, "cpu-tiny", target) == list(fastforward.MAIN_ARTIFACT)
    write_json(run / SETTINGS, {**records, "stale": {"train": "made before pairs was redone"}})
    with pytest.raises(UserError, match="not a finished, fresh cpu-tiny run"):
        fastforward.ship(run, tmp_path / "again")
