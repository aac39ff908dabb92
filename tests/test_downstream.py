"""The downstream comparison's runner (benchmarks/downstream.py): the arms' run folders and the paired comparisons."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import downstream  # noqa: E402

from longmab_utils.artifacts import ABLATION, ROLLOUT, SAMPLES  # noqa: E402
from longmab_utils.config import get_profile  # noqa: E402
from longmab_utils.data import read_records, write_jsonl  # noqa: E402


def test_each_arm_gets_the_samples_and_its_own_rollout_with_plain_ids(tmp_path):
    samples = [{"id": "s1", "context": "a"}, {"id": "s2", "context": "b"}]
    write_jsonl(tmp_path / SAMPLES, samples)
    study = [{"id": f"{arm}/{s['id']}", "rounds": [arm]} for arm in (*downstream.ARMS, "greedy") for s in samples]
    write_jsonl(tmp_path / ABLATION / ROLLOUT, study)
    downstream.split_arms(tmp_path)
    for arm in downstream.ARMS:
        assert read_records(tmp_path / arm / SAMPLES) == samples
        assert read_records(tmp_path / arm / ROLLOUT) == [{"id": s["id"], "rounds": [arm]} for s in samples]
    assert not (tmp_path / "greedy").exists()  # only the arms that train an adapter


def rows(f1: list[float]) -> dict[str, list[dict]]:
    """One evaluation set's prediction rows with these F1 scores (EM equal to F1)."""
    return {"set": [{"id": str(i), "f1": v, "em": v} for i, v in enumerate(f1)]}


def test_comparisons_put_the_papers_adapter_first():
    paper, random_k, full = downstream.ARMS
    predictions = {
        "base": rows([0, 0, 0, 1]),
        paper: rows([1, 1, 0, 1]),  # wins items 0 and 1 against the base
        random_k: rows([1, 0, 0, 0]),  # wins item 0, loses item 3
        full: rows([0, 0, 0, 1]),  # ties everything with the base
    }
    result = downstream.compare(predictions)
    headline = downstream.headline(result)
    assert (headline[f"{paper} vs base"]["wins"], headline[f"{paper} vs base"]["losses"]) == (2, 0)
    assert (headline[f"{random_k} vs base"]["wins"], headline[f"{random_k} vs base"]["losses"]) == (1, 1)
    assert headline[f"{full} vs base"]["ties"] == 4
    assert (headline[f"{paper} vs {random_k}"]["wins"], headline[f"{paper} vs {random_k}"]["losses"]) == (2, 0)
    assert headline[f"{paper} vs {full}"]["f1_difference"]["mean"] == 0.5  # (1 + 1) / 4
    assert list(headline) == [f"{arm} vs base" for arm in downstream.ARMS] + [
        f"{paper} vs {random_k}",
        f"{paper} vs {full}",
    ]


def test_the_profile_rolls_out_every_sample_and_evaluates_on_the_held_out_items():
    profile = get_profile("cpu-downstream")
    assert profile.keep_invalid_probes and profile.ablation_samples is None and profile.max_samples is None
    assert profile.eval_data == "data/sample/heldout/eval" and profile.eval_max_items is None
    assert all(arm in downstream.STUDY for arm in downstream.ARMS) and downstream.ARMS[0] == next(
        iter(downstream.STUDY)
    )
