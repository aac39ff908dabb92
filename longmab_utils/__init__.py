"""longmab_utils: the tested package behind the LongMab-PO notebook course.

One module per concern (see the layout in docs/cli.md): data and synthetic data, chunking, the bandit,
metrics, prompts, models and generation, probe and rollout, pairs, DPO, evaluation, plots, and the
pipeline steps that the CLI (`python -m longmab_utils`) and the notebooks both call.

What the course teaches is importable from here (`from longmab_utils import UCBChunkSampler, chunk_text`);
each name is loaded from its module on first use, so `import longmab_utils` stays free of numpy, torch and
matplotlib.
"""

import importlib
import warnings
from typing import Any

__version__ = "0.1.0"

# Without ipywidgets, tqdm.auto falls back to text bars in notebooks; that is intended, so no warning.
warnings.filterwarnings("ignore", message="IProgress not found")

API: dict[str, tuple[str, ...]] = {
    "config": ("Profile", "DPOSettings", "get_profile", "notebook_profile"),  # settings, every notebook
    "chunking": ("split_sentences", "chunk_text"),  # 01
    "bandit": ("ucb_bonus", "UCBChunkSampler", "BatchUCB", "make_policy", "simulate_regret"),  # 02
    "prompts": ("probe_prompt", "cot_answer_prompt"),  # 03
    "probe": ("is_valid_probe",),  # 03
    "embeddings": ("cosine_priors", "random_priors"),  # 03
    "metrics": (
        "normalize_answer",
        "extract_answer",
        "exact_match",
        "f1_score",
        "substring_exact_match",
        "rollout_reward",
        "pair_score",
    ),  # 03, 04, 06
    "seeds": ("derive_seed",),  # 03
    "pairs": ("select_pair", "middle_truncate", "context_budget"),  # 04
    "evaluation": ("head_to_head", "sign_test", "bootstrap_interval"),  # 06
    "measures": ("distinct_n", "evidence_coverage"),  # 07
    "ablation": ("paired_differences",),  # 07
}
"""Module -> the names it exports here, grouped by the notebook that teaches them."""

_HOME = {name: module for module, names in API.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use."""
    if name not in _HOME:
        raise AttributeError(f"module 'longmab_utils' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names with the module's own."""
    return sorted(set(globals()) | set(__all__))
