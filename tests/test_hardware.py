"""Dtypes by compute capability, an unusable GPU as an error, per-rank device maps, library-version switches."""

import dataclasses

import pytest
import torch

from longmab_utils import hardware
from longmab_utils.compat import checkpointing_kwargs
from longmab_utils.hardware import GPUUnusable, cuda_capability, device_map, precision


@pytest.mark.parametrize(
    ("name", "capability", "expected"),
    [
        ("auto", None, (torch.float32, False, False)),
        ("auto", (7, 5), (torch.float16, False, True)),  # T4: bf16 only emulated
        ("auto", (8, 0), (torch.bfloat16, True, False)),
        ("auto", (9, 0), (torch.bfloat16, True, False)),
        ("float16", (9, 0), (torch.float16, False, True)),
        ("float32", (9, 0), (torch.float32, False, False)),
        ("bfloat16", None, (torch.bfloat16, False, False)),  # a CPU trainer takes no mixed-precision flag
    ],
)
def test_precision_follows_the_capability(name, capability, expected):
    chosen = precision(name, capability)
    assert (chosen.dtype, chosen.bf16, chosen.fp16) == expected


def test_unknown_dtype_names_the_choices():
    with pytest.raises(ValueError, match="bfloat16"):
        precision("float33", None)


def test_a_gpu_that_torch_cannot_use_stops_the_run(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hardware, "nvidia_gpu_present", lambda: True)
    monkeypatch.delenv("LONGMAB_ALLOW_CPU", raising=False)
    with pytest.raises(GPUUnusable, match="driver"):
        cuda_capability()
    monkeypatch.setenv("LONGMAB_ALLOW_CPU", "1")
    assert cuda_capability() is None
    monkeypatch.setattr(hardware, "nvidia_gpu_present", lambda: False)
    monkeypatch.delenv("LONGMAB_ALLOW_CPU")
    assert cuda_capability() is None


def test_each_rank_loads_onto_its_own_device(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert device_map(cuda=True) == "auto" and device_map(cuda=False) is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert device_map(cuda=True) == {"": 1} and device_map(cuda=False) is None


def test_checkpointing_uses_the_name_the_release_knows():
    @dataclasses.dataclass
    class Before523:
        gradient_checkpointing: bool = False

    @dataclasses.dataclass
    class From523:
        activation_checkpointing: bool = False
        gradient_checkpointing: bool = False

    assert checkpointing_kwargs(Before523, True) == {"gradient_checkpointing": True}
    assert checkpointing_kwargs(From523, False) == {"activation_checkpointing": False}


def test_trainable_weights_become_fp32_for_fp16_mixed_precision():
    from longmab_utils.compat import fp32_trainable

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)).to(torch.bfloat16)
    model[0].weight.requires_grad_(False)
    assert fp32_trainable(model) == 3  # one frozen weight stays as it is
    assert model[0].weight.dtype == torch.bfloat16 and model[1].weight.dtype == torch.float32
    assert fp32_trainable(model) == 0


def test_peak_memory_is_positive_and_says_what_it_measured():
    from longmab_utils.hardware import peak_memory_gb

    gigabytes, measured = peak_memory_gb()
    assert 0 < gigabytes < 10_000 and "peak" in measured
