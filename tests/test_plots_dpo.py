"""The figures of notebooks 04 and 05: lengths that draw a bar, accuracy as a running mean, the DPO loss curves."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("agg")

import matplotlib.pyplot as plt  # noqa: E402

from longmab_utils import plots  # noqa: E402


def test_running_mean_averages_the_last_window_values():
    assert plots.running_mean([1, 0, 1, 1], 2) == [1.0, 0.5, 0.5, 1.0]
    assert plots.running_mean([0, 1], 5) == [0.0, 0.5]


def test_narrow_lengths_far_below_the_limit_draw_a_visible_bar(tmp_path):
    lengths = [411, 412, 412, 413, 414] * 2 + [411]
    fig = plots.length_histogram(lengths, 540, "max_length", "DPO example", tmp_path / "h.png")
    bars = [p for p in fig.axes[0].patches if p.get_height() > 0]
    low, high = fig.axes[0].get_xlim()
    assert sum(p.get_height() for p in bars) == len(lengths)
    assert min(p.get_width() for p in bars) >= (high - low) / 25
    assert (tmp_path / "h.png").exists()
    plt.close(fig)


def test_training_accuracy_is_drawn_as_a_running_mean_over_one_epoch(tmp_path):
    log = [
        {"step": s, "epoch": s / 4, "loss": 0.7, "rewards/margins": 0.0, "rewards/accuracies": float(s % 2)}
        for s in range(1, 9)
    ]
    log.append({"step": 8, "epoch": 2.0, "eval_loss": 0.6, "eval_rewards/accuracies": 1.0})
    fig = plots.training_curves(log, tmp_path / "c.png")
    lines = {line.get_label(): line for line in fig.axes[2].get_lines()}
    mean = lines["train, mean of last 4 steps (one epoch)"]
    assert list(mean.get_ydata()) == plots.running_mean([float(s % 2) for s in range(1, 9)], 4)
    assert "held-out" in lines
    plt.close(fig)


def test_dpo_loss_curves_cross_log_2_at_margin_zero_and_steepen_with_beta(tmp_path):
    fig = plots.dpo_loss_curves([0.1, 0.5], tmp_path / "b.png", span=10)
    curves = [line for line in fig.axes[0].get_lines() if line.get_label().startswith("beta")]
    for line in curves:
        x, y = line.get_xdata(), line.get_ydata()
        assert math.isclose(y[len(x) // 2], math.log(2))
    assert curves[1].get_ydata()[-1] < curves[0].get_ydata()[-1]  # the larger beta is surer at the same margin
    plt.close(fig)


def test_truncation_map_draws_one_bar_set_per_pair(tmp_path):
    rows = [
        {"tokens": 100, "head": 30, "tail": 30, "evidence": [(5, 12, True), (50, 60, False)]},
        {"tokens": 80, "head": 30, "tail": 30, "evidence": []},
    ]
    fig = plots.truncation_map(rows, tmp_path / "t.png")
    assert len(fig.axes[0].patches) == 3 * len(rows)
    assert [line.get_color() for line in fig.axes[0].get_lines()] == ["C2", "C3"]
    plt.close(fig)
