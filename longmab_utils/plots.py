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


def running_mean(values: Sequence[float], window: int) -> list[float]:
    """Mean of each value and up to `window - 1` values before it (a short start uses what there is)."""
    return [sum(values[max(0, i + 1 - window) : i + 1]) / (i + 1 - max(0, i + 1 - window)) for i in range(len(values))]


def training_curves(log_history: Sequence[dict], path: str | os.PathLike) -> Any:
    """Loss, reward margin and reward accuracy per step, training and held-out.

    One pair per step makes the training accuracy a 0/1 series, so it is drawn as a running mean over one
    epoch's steps, with the raw points faint behind it.
    """
    train = [e for e in log_history if "loss" in e]
    window = max(1, sum(e.get("epoch", 0.0) <= 1 for e in train))  # a log without epochs is one epoch
    fig, axes = plt.subplots(1, len(TRAINING_CURVES), figsize=(4 * len(TRAINING_CURVES), 3.2))
    for ax, (key, title) in zip(axes, TRAINING_CURVES):
        for prefix, style in (("", "-o"), ("eval_", "--s")):
            points = [(e["step"], float(e[prefix + key])) for e in log_history if prefix + key in e]
            if not points:
                continue
            steps, values = zip(*points)
            label = "held-out" if prefix else "train"
            if key == "rewards/accuracies" and not prefix:
                ax.plot(steps, values, "o", markersize=2, color="C0", alpha=0.3, label="train, per step")
                values, style = running_mean(values, window), "-"
                label = f"train, mean of last {window} steps (one epoch)"
            ax.plot(steps, values, style, markersize=3, label=label)
        if key == "loss":
            ax.axhline(0.6931, color="grey", lw=0.8, ls=":", label="log 2: the DPO term at margin 0")
        ax.set(title=title, xlabel="step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save(fig, path)


def dpo_loss_curves(betas: Sequence[float], path: str | os.PathLike, span: float = 40.0) -> Any:
    """The DPO loss -log sigmoid(beta * margin) against the log-ratio margin, one curve per beta."""
    import numpy as np

    margin = np.linspace(-span, span, 401)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for beta in betas:
        ax.plot(margin, np.logaddexp(0.0, -beta * margin), label=f"beta = {beta}")
    ax.axhline(np.log(2), color="grey", lw=0.8, ls=":", label="log 2 (margin 0)")
    ax.set(
        xlabel="margin: log-ratio of chosen minus log-ratio of rejected (nats)",
        ylabel="DPO loss",
        ylim=(0, 3),
        title="DPO loss against the margin",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def evaluation_bars(table: Any, path: str | os.PathLike, metric: str = "f1") -> Any:
    """Grouped bars of one metric per evaluation set (rows of the comparison table), one bar per model."""
    data = table.xs(metric, axis=1, level=1)
    ax = data.plot.bar(figsize=(1.6 * len(data) + 2, 3.2), rot=0)
    for bars in ax.containers:  # a 0 shows as "0", not as a missing bar
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
    ax.set(ylabel=f"{metric.upper()} (%)", ylim=(0, 110), title=f"{metric.upper()} by evaluation set")
    ax.figure.tight_layout()
    return save(ax.figure, path)


def paired_outcomes(paired: dict, path: str | os.PathLike) -> Any:
    """Per evaluation set and over all items: how many items the trained model wins, ties and loses against the
    base (by F1), with the sign test's p and the bootstrap interval of the mean F1 difference."""
    return outcome_bars({**paired["sets"], "all items": paired["all"]}, path, "trained vs base, item by item (F1)")


def outcome_bars(rows: dict[str, dict], path: str | os.PathLike, title: str) -> Any:
    """One bar per paired comparison (a row of `evaluation.paired_comparison`): items won, tied and lost, labelled
    with the sign test's p and the bootstrap interval of the mean F1 difference."""
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(rows) + 1.4))
    positions = range(len(rows))[::-1]
    left = [0] * len(rows)
    for outcome, color in (("wins", "C2"), ("ties", "0.75"), ("losses", "C3")):
        counts = [row[outcome] for row in rows.values()]
        bars = ax.barh(positions, counts, left=left, color=color, label=outcome)
        ax.bar_label(bars, labels=[str(c) if c else "" for c in counts], label_type="center", fontsize=8)
        left = [a + b for a, b in zip(left, counts)]
    labels = [
        f"{name}  p={row['p']:.2g}, dF1 {100 * row['f1_difference']['mean']:+.1f} "
        f"[{100 * row['f1_difference']['low']:+.1f}, {100 * row['f1_difference']['high']:+.1f}]"
        for name, row in rows.items()
    ]
    ax.set_yticks(list(positions), labels, fontsize=8)
    ax.set(xlabel="items", title=title)
    ax.legend(fontsize=7, ncol=3, loc="lower right", bbox_to_anchor=(1, 1.08))
    fig.tight_layout()
    return save(fig, path)


def chunk_offsets(context: str, chunks: Sequence[str]) -> list[tuple[int, int]]:
    """Character (start, end) of each chunk in its context; overlapping chunks share text."""
    spans, cursor = [], 0
    for chunk in chunks:
        start = context.find(chunk, cursor)
        if start < 0:
            raise ValueError("a chunk is not a substring of the context")
        spans.append((start, start + len(chunk)))
        cursor = start + 1
    return spans


def chunk_html(context: str, chunks: Sequence[str], evidence: Sequence[str] = ()) -> str:
    """The context as HTML: chunks in alternating colours, overlaps underlined, evidence sentences in bold red."""
    spans = chunk_offsets(context, chunks)
    palette = ("#dbeafe", "#fef3c7", "#dcfce7", "#fce7f3")
    marks = [(context.find(e), context.find(e) + len(e)) for e in evidence if e in context]
    bounds = sorted({0, len(context), *(p for span in spans + marks for p in span)})
    html = []
    for start, end in zip(bounds, bounds[1:]):
        owners = [i for i, (a, b) in enumerate(spans) if a <= start and end <= b]
        style = f"background:{palette[owners[-1] % len(palette)]};" if owners else ""
        style += "text-decoration:underline double;" if len(owners) > 1 else ""
        style += "color:#b91c1c;font-weight:bold;" if any(a <= start and end <= b for a, b in marks) else ""
        text = context[start:end].replace("&", "&amp;").replace("<", "&lt;")
        html.append(f'<span style="{style}" title="chunk {owners}">{text}</span>')
    return '<div style="font-family:serif;line-height:1.6">' + "".join(html) + "</div>"


def chunk_map(
    context: str, chunks: Sequence[str], evidence: Sequence[str], path: str | os.PathLike, title: str = ""
) -> Any:
    """Each chunk as a bar over the context's characters, overlaps visible, evidence sentences as red bands."""
    spans = chunk_offsets(context, chunks)
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(spans) + 1.2))
    for i, (start, end) in enumerate(spans):
        ax.barh(i, end - start, left=start, color=f"C{i % 2}", alpha=0.7)
    for sentence in evidence:
        at = context.find(sentence)
        if at >= 0:
            ax.axvspan(at, at + len(sentence), color="red", alpha=0.25)
    ax.invert_yaxis()
    ax.set(xlabel="character position in the context", ylabel="chunk", title=title or "chunks (red: evidence)")
    fig.tight_layout()
    return save(fig, path)


def length_histogram(lengths: Sequence[int], limit: int, limit_name: str, what: str, path: str | os.PathLike) -> Any:
    """Histogram of token lengths against a limit (the chunk budget, the DPO cutoff, ...).

    The bins span the lengths and the limit together, so lengths in a narrow range still draw a visible bar.
    """
    import numpy as np

    low, high = min(*lengths, limit), max(*lengths, limit)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(lengths, bins=np.linspace(low, high, 21) if high > low else [low - 0.5, low + 0.5], color="C0")
    ax.axvline(limit, color="red", ls="--", label=f"{limit_name} = {limit}")
    ax.set(xlabel=f"tokens per {what}", ylabel=f"{what}s", title=f"{what} lengths")
    ax.legend()
    fig.tight_layout()
    return save(fig, path)


def ucb_bonus_curves(bonus: Any, path: str | os.PathLike, counts: int = 30) -> Any:
    """The exploration bonus against an arm's pull count, for a few values of t."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    pulls = list(range(1, counts + 1))
    for t in (10, 100, 1000):
        ax.plot(pulls, [bonus(t, c) for c in pulls], label=f"t = {t}")
    ax.set(xlabel="pulls of the arm (c)", ylabel="bonus sqrt(2 ln t / c)", title="exploration bonus")
    ax.legend()
    fig.tight_layout()
    return save(fig, path)


def regret_curves(curves: dict[str, Any], path: str | os.PathLike, title: str) -> Any:
    """Mean cumulative regret per round for each policy, with a band of one standard error."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, runs in curves.items():
        runs = np.asarray(runs)
        mean, se = runs.mean(axis=0), runs.std(axis=0) / np.sqrt(len(runs))
        rounds = np.arange(1, runs.shape[1] + 1)
        ax.plot(rounds, mean, label=name)
        ax.fill_between(rounds, mean - se, mean + se, alpha=0.2)
    ax.set(xlabel="round", ylabel="cumulative regret", title=title)
    ax.legend(fontsize=8, title="shading: mean ± 1 standard error", title_fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def priors_vs_evidence(
    priors: Sequence[float], evidence_chunks: Sequence[Sequence[int]], path: str | os.PathLike
) -> Any:
    """Arm priors per chunk, evidence chunks in red."""
    gold = {i for group in evidence_chunks for i in group}
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(range(len(priors)), priors, color=["C3" if i in gold else "C0" for i in range(len(priors))])
    ax.set(xlabel="chunk", ylabel="prior (cosine)", title="priors (red: chunks holding evidence)")
    fig.tight_layout()
    return save(fig, path)


def rollout_trajectory(record: dict, priors: Sequence[float], path: str | os.PathLike) -> Any:
    """One sample's rollout: value per chunk from its prior (round 0) on, the chunks pulled, the reward per round."""
    import numpy as np

    gold = {i for group in record["evidence_chunks"] for i in group}
    rounds = record["rounds"]
    values = np.array([list(priors)] + [r["values"] for r in rounds])
    pulled = np.zeros((record["n_chunks"], len(rounds)))
    for j, r in enumerate(rounds):
        pulled[r["selected"], j] = 1
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    for i in range(record["n_chunks"]):
        evidence = i in gold
        axes[0].plot(
            range(len(rounds) + 1),
            values[:, i],
            "-o" if evidence else "--.",
            lw=2.2 if evidence else 1,
            color=f"C{i % 10}",
            label=f"chunk {i}" + (" (evidence)" if evidence else ""),
        )
    axes[0].set(xlabel="round (0: the prior)", ylabel="value estimate", title="values per chunk")
    axes[0].legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    axes[1].imshow(pulled, aspect="auto", cmap="Blues", extent=(0.5, len(rounds) + 0.5, record["n_chunks"] - 0.5, -0.5))
    axes[1].set(xlabel="round", ylabel="chunk", title=f"pulled chunks (evidence: {sorted(gold)})")
    axes[2].bar(range(1, len(rounds) + 1), [r["reward"] for r in rounds])
    axes[2].set(xlabel="round", ylabel="reward", ylim=(0, 1.05), title="reward per round")
    fig.tight_layout()
    return save(fig, path)


def reward_by_round(mean_by_round: Sequence[float], path: str | os.PathLike, sweep: Sequence[int] = ()) -> Any:
    """Mean rollout reward over samples, per round; round 1 (priors alone) and the `sweep` rounds shaded."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.axvspan(0.5, 1.5, color="C2", alpha=0.15, label="round 1: priors alone (bonus 0 at t = 1)")
    if sweep:
        band = (min(sweep) - 0.5, max(sweep) + 0.5)
        ax.axvspan(*band, color="C1", alpha=0.2, label="forced sweep: unpulled chunks first (bonus > 1,000)")
    ax.plot(range(1, len(mean_by_round) + 1), mean_by_round, "-o", color="C0", label="mean reward")
    ax.set(xlabel="round", ylabel="mean reward", ylim=(0, 1), title="mean reward by round")
    ax.set_xticks(range(1, len(mean_by_round) + 1))
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return save(fig, path)


def pair_distributions(summary: dict, path: str | os.PathLike) -> Any:
    """Chosen and rejected pair scores, and the token lengths of prompts and responses."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
    bins = [i / 10 for i in range(11)]
    axes[0].hist([summary["chosen_scores"], summary["rejected_scores"]], bins=bins, label=["chosen", "rejected"])
    axes[0].set(xlabel="pair score ((SubEM + F1) / 2 of the extracted answer)", ylabel="pairs", title="pair scores")
    axes[0].legend()
    tokens = summary["tokens"]
    axes[1].hist([tokens["chosen"], tokens["rejected"]], bins=15, label=["chosen", "rejected"])
    axes[1].set(xlabel="response tokens", ylabel="pairs", title="response lengths")
    axes[1].legend()
    fig.tight_layout()
    return save(fig, path)


def truncation_map(rows: Sequence[dict], path: str | os.PathLike) -> Any:
    """One bar per pair prompt over its context's tokens: the kept head and tail, the cut middle, the evidence.

    Each row: `tokens` (context length), `head` and `tail` (tokens kept at each end), `evidence` (a list of
    (first token, last token, kept whole) for each evidence sentence), and optionally a `label`.
    """
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(rows) + 1.8))
    for i, row in enumerate(rows):
        ax.barh(i, row["head"], color="C0", alpha=0.5)
        ax.barh(i, row["tokens"] - row["head"] - row["tail"], left=row["head"], color="lightgrey")
        ax.barh(i, row["tail"], left=row["tokens"] - row["tail"], color="C0", alpha=0.5)
        for start, end, kept in row["evidence"]:
            ax.plot([start, end], [i, i], color="C2" if kept else "C3", lw=5, solid_capstyle="butt")
    handles = [
        plt.Rectangle((0, 0), 1, 1, color="C0", alpha=0.5, label="kept (first and last halves of the budget)"),
        plt.Rectangle((0, 0), 1, 1, color="lightgrey", label="cut by middle truncation"),
        plt.Line2D([], [], color="C2", lw=5, label="evidence sentence kept whole"),
        plt.Line2D([], [], color="C3", lw=5, label="evidence sentence lost or cut"),
    ]
    fig.legend(handles=handles, fontsize=7, loc="lower center", ncol=2)
    ax.set_yticks(range(len(rows)), [row.get("label", str(i)) for i, row in enumerate(rows)], fontsize=7)
    ax.invert_yaxis()
    ax.set(xlabel="context token", title="what middle truncation keeps of each pair's context")
    fig.tight_layout(rect=(0, 0.6 / (0.32 * len(rows) + 1.8), 1, 1))
    return save(fig, path)


ABLATION_MEASURES = {
    "pair_yield": "pair yield (higher: more pairs)",
    "chosen_score": "chosen score",
    "rejected_score": "rejected score",
    "score_gap": "score gap (higher: clearer pairs)",
    "distinct_2": "distinct-2 (higher: more varied)",
    "embedding_distance": "embedding distance (higher: more varied)",
    "evidence_coverage": "evidence coverage (higher: sees the evidence)",
    "mean_reward": "mean reward",
}
"""Each ablation measure's panel title, saying which way is better where one way is."""


def ablation_bars(table: Any, path: str | os.PathLike) -> Any:
    """One panel per measure (table columns), one labelled bar per policy (rows); the first, the paper's, in red."""
    import numpy as np

    columns = list(table.columns)
    rows = (len(columns) + 2) // 3
    fig, axes = plt.subplots(rows, 3, figsize=(13, 2.3 * rows), sharey=True)
    positions = range(len(table))[::-1]  # the first policy on top
    for ax, column in zip(axes.flat, columns):
        values = table[column].to_numpy(dtype=float)
        ax.barh(positions, values, color=["C3"] + ["C0"] * (len(table) - 1))
        ax.bar_label(ax.containers[0], fmt="%.2f", fontsize=7, padding=2)
        for position in np.flatnonzero(np.isnan(values)):  # pair scores of a policy without pairs
            ax.text(0.02, positions[position], "no pairs", va="center", fontsize=7, color="grey")
        ax.set_yticks(list(positions), table.index, fontsize=8)
        ax.set_xlim(0, 1.2 * max(float(np.nanmax(values, initial=0.0)), 1.0))  # shares on one 0-1 scale
        ax.set_title(ABLATION_MEASURES.get(column, column.replace("_", " ")), fontsize=9)
    for ax in list(axes.flat)[len(columns) :]:
        ax.axis("off")
    fig.suptitle("the study's measures by policy (red: the paper's UCB with probe priors)", fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def ablation_differences(differences: dict[str, dict], path: str | os.PathLike) -> Any:
    """One panel per measure: the paper's arm minus each other arm, mean over samples with its 95% interval."""
    import numpy as np

    measures = list(dict.fromkeys(m for row in differences.values() for m in row))
    fig, axes = plt.subplots(
        1, len(measures), figsize=(2.6 * len(measures), 0.45 * len(differences) + 1.6), sharey=True
    )
    positions = range(len(differences))[::-1]
    for ax, measure in zip(np.atleast_1d(axes), measures):
        for position, row in zip(positions, differences.values()):
            if measure in row:
                cell = row[measure]
                ax.errorbar(
                    cell["mean"],
                    position,
                    xerr=[[cell["mean"] - cell["low"]], [cell["high"] - cell["mean"]]],
                    fmt="o",
                    color="C3" if cell["low"] > 0 or cell["high"] < 0 else "C0",
                    capsize=3,
                )
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(list(positions), list(differences), fontsize=8)
        ax.set_title(ABLATION_MEASURES.get(measure, measure).split(" (")[0], fontsize=9)
    fig.suptitle(
        "paper's arm minus each policy, per sample: mean and 95% bootstrap interval (red: excludes 0)", fontsize=10
    )
    fig.tight_layout()
    return save(fig, path)
