"""Published figures of the GPU profiles' hub models (shape, context limit, access) and of the GPUs they plan for.

A model's figures are those of its `config.json` and model card; a GPU's, its maker's data sheet. They feed the
checks that run
before a GPU profile starts (`preflight.py`: remote code, gated access, context limits, memory per batch) and the
time estimates (`estimate.py`), also under `reproduce --stand-ins`, where small stand-in models do the work but
the checks still see the real names and shapes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HubModel:
    """One hub model's published facts (config.json, model card)."""

    params: float
    """Parameters (all of them, embeddings included)."""
    max_positions: int | None
    """`max_position_embeddings`: the longest context the model takes, in its tokens (None: not recorded)."""
    layers: int = 0
    """Decoder layers (0 for an embedder)."""
    hidden: int = 0
    """Hidden size."""
    kv_heads: int = 0
    """Key/value heads (grouped-query attention)."""
    head_dim: int = 0
    """Size of one attention head."""
    gated: bool = False
    """The hub asks for accepted terms and a token (HF_TOKEN) before it serves the weights."""
    remote_code: bool = False
    """Its config maps classes to the repository's own code (`auto_map`): needs trust_remote_code."""

    def weight_bytes(self, bytes_per_param: float = 2.0) -> float:
        """Bytes of the weights at a precision (2 for bf16/fp16)."""
        return self.params * bytes_per_param

    def kv_bytes_per_token(self, bytes_per_value: int = 2) -> int:
        """Bytes of the key/value cache for one token over all layers (bf16/fp16)."""
        return 2 * self.layers * self.kv_heads * self.head_dim * bytes_per_value


HUB_MODELS: dict[str, HubModel] = {
    "meta-llama/Llama-3.1-8B-Instruct": HubModel(
        params=8.03e9, max_positions=131072, layers=32, hidden=4096, kv_heads=8, head_dim=128, gated=True
    ),
    "Qwen/Qwen2.5-3B-Instruct": HubModel(
        params=3.09e9, max_positions=32768, layers=36, hidden=2048, kv_heads=2, head_dim=128
    ),
    "BAAI/bge-m3": HubModel(params=0.568e9, max_positions=8192),
    "openbmb/MiniCPM-Embedding": HubModel(params=2.72e9, max_positions=None, remote_code=True),
}


def hub_model(name: str) -> HubModel | None:
    """The facts of a known hub model, or None for a local folder, a bundled model or an unknown id."""
    return HUB_MODELS.get(name)


@dataclass(frozen=True)
class GPU:
    """A GPU's published figures, as the estimates and memory checks use them."""

    label: str
    memory_gib: float
    """Memory a run may use (a 16 GB T4 shows 15 GiB; 80 GB cards were measured capped at 79 GiB)."""
    bandwidth: float
    """Memory bandwidth, bytes/s."""
    flops: float
    """Dense fp16/bf16 tensor throughput, FLOP/s."""
    host_factor: float = 1.0
    """The transformers backend's per-step host overhead relative to the measured H200 host (assumed)."""


GPUS: dict[str, GPU] = {
    "t4": GPU("NVIDIA T4 16 GB (Colab)", 15.0, 320e9, 65e12, host_factor=1.5),  # Colab's two slow vCPUs
    "a100-80gb": GPU("NVIDIA A100 80 GB SXM", 79.0, 2039e9, 312e12),
    "h100-80gb": GPU("NVIDIA H100 80 GB SXM", 79.0, 3350e9, 989e12),
    "h200": GPU("NVIDIA H200 141 GB", 139.8, 4800e9, 989e12),
}
