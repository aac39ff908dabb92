"""What changes between the library versions the kit supports: the one place that knows.

CI runs the CPU pins (constraints/cpu.txt) and the GPU pins' transformers/TRL/PEFT (constraints/cuda.txt);
code that depends on a name that exists in one release and not another asks here.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def field_names(config_class: type) -> set[str]:
    """The dataclass fields of a (TrainingArguments-derived) config class."""
    return {f.name for f in dataclasses.fields(config_class)}


def checkpointing_kwargs(config_class: type, enabled: bool) -> dict[str, Any]:
    """Activation checkpointing for a trainer config: `activation_checkpointing` from transformers 5.23 on, the
    older `gradient_checkpointing` before (TRL chooses the reentrant mode itself)."""
    names = field_names(config_class)
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": enabled}
