"""Progress bars that stay readable when nobody watches them: in the executed copy of a notebook.

Introduced in notebook 03 (the probe and rollout bars). `reproduce` sets `BATCH_RUN` for the notebooks it
executes: there each bar's every redraw becomes a line of the executed copy, and a bar drawn inside another
moves the cursor with escape codes that a saved notebook shows raw. So in a batch run a bar opened while
another is open stays off, and the others redraw at most once a minute. Interactive use is unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

BATCH_RUN = "LONGMAB_BATCH_RUN"
"""Environment variable that marks a batch run (set by `reproduce` around each notebook it executes)."""

BATCH_INTERVAL = 60.0
"""Seconds between redraws of a bar in a batch run."""


def in_batch_run() -> bool:
    """True inside a notebook that `reproduce` executes."""
    return bool(os.environ.get(BATCH_RUN))


def progress(iterable: Iterable[Any] | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar; in a batch run, off when another bar is open, else redrawn at most every BATCH_INTERVAL s."""
    if in_batch_run():
        if any(not bar.disable for bar in list(tqdm._instances)):
            kwargs["disable"] = True
        kwargs.setdefault("mininterval", BATCH_INTERVAL)
    return tqdm(iterable, **kwargs)
