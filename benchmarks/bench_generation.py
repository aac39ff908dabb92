"""Batched HF generation against one prompt at a time, and the fast path, bundled SmolLM2-135M on CPU: 16 cpu-tiny
rollout prompts."""

from __future__ import annotations

from timing import best_of

from longmab_utils.config import get_profile
from longmab_utils.generation import PREFILL_CHUNK, SamplingConfig, build_generator
from longmab_utils.pipeline import load_samples
from longmab_utils.prompts import cot_answer_prompt, user_message

GOAL = 2.0
PROMPTS, NEW_TOKENS, CONTEXT_CHARS = 16, 64, 1800


def main() -> dict[str, float]:
    """Time both ways of generating the same prompts and print tokens per second and the ratio."""
    profile = get_profile("cpu-tiny")
    generator = build_generator(profile)
    samples = load_samples(profile)[:PROMPTS]
    prompts = [user_message(cot_answer_prompt(s["context"][:CONTEXT_CHARS], s["question"])) for s in samples]
    sampling = SamplingConfig(max_new_tokens=NEW_TOKENS, seed=0)
    batch_size = generator.batch_size
    batched_s, _ = best_of(1, lambda: generator.generate(prompts, sampling))
    generator.batch_size = 1
    single_s, _ = best_of(1, lambda: generator.generate(prompts, sampling))
    generator.batch_size = batch_size
    generator.prefill_chunk = PREFILL_CHUNK
    fast_s, _ = best_of(1, lambda: generator.generate(prompts, sampling))
    ratio = single_s / batched_s
    tokens = PROMPTS * NEW_TOKENS
    print(
        f"generation: {PROMPTS} prompts x {NEW_TOKENS} new tokens; one at a time {tokens / single_s:.1f} tok/s, "
        f"batched ({batch_size}) {tokens / batched_s:.1f} tok/s; ratio {ratio:.1f}x (goal >= {GOAL:.0f}x); "
        f"fast path (static cache, {PREFILL_CHUNK}-token prefill chunks, off on CPUs) {tokens / fast_s:.1f} tok/s"
    )
    return {"ratio": ratio, "goal": GOAL, "fast_vs_batched": batched_s / fast_s}


if __name__ == "__main__":
    main()
