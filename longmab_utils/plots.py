"""The figures the notebooks show, each saved as a PNG into the run folder and returned for inline display.

Introduced in notebook 03; every plotting function takes plain data (records, dicts, DataFrames)
and a path, so the notebooks stay thin and the CLI can write the same pictures.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

TRAINING_CURVES = (
    ("loss", "DPO loss"),
    ("rewards/margins", "reward margin"),
    ("rewards/accuracies", "reward accuracy"),
)


def save(fig: Any, path: str | os.PathLike) -> Any:
    """Save a figure as PNG (creating the folder) and return it."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


def training_curves(log_history: Sequence[dict], path: str | os.PathLike) -> Any:
    """Loss, reward margin and reward accuracy per step, training and held-out."""
    fig, axes = plt.subplots(1, len(TRAINING_CURVES), figsize=(4 * len(TRAINING_CURVES), 3.2))
    for ax, (key, title) in zip(axes, TRAINING_CURVES):
        for prefix, style in (("", "-o"), ("eval_", "--s")):
            points = [(e["step"], float(e[prefix + key])) for e in log_history if prefix + key in e]
            if points:
                ax.plot(*zip(*points), style, markersize=3, label="held-out" if prefix else "train")
        if key == "loss":
            ax.axhline(0.6931, color="grey", lw=0.8, ls=":", label="log 2 (no learning)")
        ax.set(title=title, xlabel="step")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def evaluation_bars(table: Any, path: str | os.PathLike, metric: str = "f1") -> Any:
    """Grouped bars of one metric per evaluation set (rows of the comparison table), one bar per model."""
    data = table.xs(metric, axis=1, level=1)
    ax = data.plot.bar(figsize=(1.6 * len(data) + 2, 3.2), rot=0)
    ax.set(ylabel=f"{metric.upper()} (%)", title=f"{metric.upper()} by evaluation set")
    ax.figure.tight_layout()
    return save(ax.figure, path)
