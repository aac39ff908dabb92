"""longmab_utils: the tested package behind the LongMab-PO notebook course.

Modules, one job each: `data` (JSONL in and out), `synthetic` (bundled data), `chunking`,
`bandit`, `metrics`, `prompts` and `pairs`. Notebooks import from here; see DESIGN in the README.
"""

__version__ = "0.1.0"
