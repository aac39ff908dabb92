"""longmab_utils: the tested package behind the LongMab-PO notebook course.

One module per concern (see the layout in docs/cli.md): data and synthetic data, chunking, the bandit,
metrics, prompts, models and generation, probe and rollout, pairs, DPO, evaluation, plots, and the
pipeline steps that the CLI (`python -m longmab_utils`) and the notebooks both call.
"""

import warnings

__version__ = "0.1.0"

# Without ipywidgets, tqdm.auto falls back to text bars in notebooks; that is intended, so no warning.
warnings.filterwarnings("ignore", message="IProgress not found")
