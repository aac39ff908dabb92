"""The small-scale claim's runner (benchmarks/effect.py): what it reads from a run and the power it reports."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import effect  # noqa: E402


def test_items_for_power_by_hand():
    # 15 wins, 5 losses: win share 0.75; decided items needed ((1.96 x 0.5 + 0.8416 x sqrt(0.75 x 0.25)) / 0.25)^2
    decided = ((1.959964 * 0.5 + 0.841621 * (0.75 * 0.25) ** 0.5) / 0.25) ** 2
    assert decided == pytest.approx(28.9, abs=0.05)
    assert effect.items_for_power(15, 5, 144) == int(decided * 144 / 20) + 1  # 20 of 144 items were decided
    assert effect.items_for_power(5, 5, 144) is None and effect.items_for_power(0, 0, 144) is None  # not ahead


def test_outcome_reads_the_paired_section_and_the_answered_shares(tmp_path):
    paired = {"wins": 12, "losses": 2, "ties": 130, "p": 0.013, "n": 144}
    metrics = {
        "paired": {"all": paired, "sets": {"synth_lookup": paired}},
        "scores": {m: {"synth_lookup": {"answered": share}} for m, share in (("base", 0.9), ("trained", 1.0))},
    }
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    result = effect.outcome(tmp_path)
    assert result["adapter_ahead"] and result["answered"] == {
        "base": {"synth_lookup": 0.9},
        "trained": {"synth_lookup": 1.0},
    }
    assert result["items_for_80pct_power"] == effect.items_for_power(12, 2, 144)
    (tmp_path / "metrics.json").write_text(json.dumps({**metrics, "paired": {"all": {**paired, "p": 0.2}, "sets": {}}}))
    assert not effect.outcome(tmp_path)["adapter_ahead"]  # ahead, but not significantly


def test_a_paired_line_gives_the_outcomes_p_and_the_f1_difference_in_points():
    difference = {"mean": 0.017, "low": -0.01, "high": 0.049}
    row = {"wins": 4, "losses": 2, "ties": 138, "p": 0.6875, "f1_difference": difference}
    assert effect.paired_line(row) == "4 wins, 2 losses, 138 ties, p = 0.688, F1 difference +1.7 [-1.0, +4.9] points"
