"""The six-arm study at the downstream comparison's scale (benchmarks/ablation_arms.py): the arms it adds, rolled
out apart, give what one six-arm study gives."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import ablation_arms  # noqa: E402
from test_ablation import FakeEmbedder  # noqa: E402
from test_rollout import fake, priors_records  # noqa: E402

from longmab_utils import ablation  # noqa: E402
from longmab_utils.artifacts import ABLATION, PRIORS, ROLLOUT  # noqa: E402
from longmab_utils.config import get_profile  # noqa: E402
from longmab_utils.data import read_records  # noqa: E402

SMALL = {"rounds": 3, "top_k": 2, "ablation_samples": None}


def study_in(folder: Path, records: list[dict], monkeypatch, arms: dict | None = None) -> None:
    """Notebook 07's study (or the given arms) with a fake policy over `records`, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PRIORS).write_text("".join(json.dumps(r) + "\n" for r in records))
    monkeypatch.setattr("longmab_utils.generation.build_generator", lambda profile: fake(records))
    ablation.run_study(get_profile("smoke", SMALL), folder, None, arms or ablation.STUDY)


def test_the_added_arms_are_the_ones_the_downstream_study_lacks():
    added = ablation_arms.missing_arms()
    assert set(added) | set(ablation_arms.ARMS) == set(ablation.STUDY)
    assert not set(added) & set(ablation_arms.ARMS)
    assert list(added) == [arm for arm in ablation.STUDY if arm in added]  # the study's order


def test_two_studies_together_equal_one_six_arm_study(tmp_path, monkeypatch):
    records = priors_records(4)
    downstream = tmp_path / "downstream"
    study_in(downstream, records, monkeypatch, {arm: ablation.STUDY[arm] for arm in ablation_arms.ARMS})
    monkeypatch.setattr(ablation_arms, "get_profile", lambda name: get_profile("smoke", SMALL))
    added = ablation_arms.roll_out_others("smoke", downstream)
    assert {r["id"].split("/")[0] for r in added} == set(ablation_arms.missing_arms())
    merged = ablation_arms.six_arms(downstream)

    whole = tmp_path / "whole"
    study_in(whole, records, monkeypatch)
    assert merged == read_records(whole / ABLATION / ROLLOUT)  # the same records in the same order

    embedder = FakeEmbedder()
    assert ablation.measure(merged, embedder) == ablation.measure(read_records(whole / ABLATION / ROLLOUT), embedder)
    calls = []
    monkeypatch.setattr("longmab_utils.rollout.roll_batch", lambda *a, **k: calls.append(1))
    ablation_arms.roll_out_others("smoke", downstream)
    assert calls == []  # a finished roll-out of the other arms is reused
