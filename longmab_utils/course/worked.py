"""The exercises' worked answers, kept out of the learners' cells: each notebook's exercise passes one of these,
wrapped in a `lambda`, as `solution=`, and `Exercises.check` calls it only with `solutions=True`.

Each answer takes another route than the exercise's expected value (a hand formula or walk against the kit's
function), so a batch run checks both. Read one when an exercise has you stuck; the notebook and exercise it
answers are in its docstring.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

# Notebook 01: chunking


def chunks_by_walk(counts: Sequence[int], chunk_size: int, overlap: int) -> int:
    """01, exercises 1 and 5: chunks of a walk over the pieces' token counts, as section 2 walks them (no merge)."""
    chunks, new_tokens, overlap_tokens = 0, 0, 0
    for i, n in enumerate(counts):
        new_tokens += n
        if new_tokens >= chunk_size - overlap_tokens or i == len(counts) - 1:  # equation (1), or the last piece
            chunks += 1
            overlap_tokens, new_tokens = sum(counts[max(0, i + 1 - overlap) : i + 1]), 0
    return chunks


def budget_after_overlap(chunk_size: int, previous_chunk: str, overlap: int, count_tokens: Any) -> int:
    """01, exercise 2: new tokens the next chunk may collect, after carrying the previous chunk's last pieces."""
    from ..chunking import split_sentences

    return chunk_size - sum(count_tokens(piece) for piece in split_sentences(previous_chunk)[-overlap:])


def toy_chunks(merge: bool) -> int:
    """01, exercises 3 and 4: the toy's walk at chunk_size 4, overlap 1 (pieces of 5, 5, 3 and 8 words).

    Every piece overflows the budget alone, so every piece closes a chunk: [0], [0, 1], [1, 2], [2, 3], each after
    the first carrying one piece. With min_sentences 3 the last chunk [2, 3] has 2 pieces and merges into [1, 2].
    """
    walk = [[0], [0, 1], [1, 2], [2, 3]]
    return len(walk) - 1 if merge else len(walk)


# Notebook 02: the bandit's formulas, transcribed from the reference


def ucb_score(value: float, count: float, t: int) -> float:
    """02, exercise 1: an arm's score, value + sqrt(2 ln t / (count + 1e-6)) (equation (2))."""
    return float(value) + math.sqrt(2 * math.log(t) / (float(count) + 1e-6))


def ucb_pick(values: Sequence[float], counts: Sequence[float], t: int) -> int:
    """02, exercise 2: the arm with the highest score at round t (the first of a tie)."""
    scores = [ucb_score(v, c, t) for v, c in zip(values, counts)]
    return scores.index(max(scores))


def sweep_length(arms: int, k: int) -> int:
    """02 exercise 3, 03 exercises 4 and 5: rounds until every arm has been shown, k new arms a round."""
    return math.ceil(arms / k)


def value_after(prior: float, rewards: Sequence[float]) -> float:
    """02, exercise 4: the prior counts as one observation, so the value is the mean of it and the rewards."""
    return (prior + sum(rewards)) / (1 + len(rewards))


def regret_with_every_arm() -> float:
    """02, exercise 5: showing all arms leaves one k-subset, the best one, so no round loses anything."""
    return 0.0


# Notebook 03: the rollout


def rescored_leaks(rollouts: Sequence[dict], has_answer_line: Any) -> dict[tuple[str, int], float]:
    """03, exercise 1: every 0.5 round without an answer line scores 0 on the (absent) extracted answer."""
    return {
        (sample["id"], r["round"]): 0.0
        for sample in rollouts
        for r in sample["rounds"]
        if r["reward"] == 0.5 and not has_answer_line(r["response"])
    }


def ucb_selection(values: Sequence[float], pulls: Sequence[int], t: int, k: int) -> list[int]:
    """03, exercise 2: the k highest scores at round t, in index order (ties to the lower index)."""
    scores = [ucb_score(v, c, t) for v, c in zip(values, pulls)]
    ranked = sorted(range(len(scores)), key=lambda i: -scores[i])
    return sorted(ranked[:k])


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """03, exercise 3: a @ b / (|a| |b|), in plain Python."""
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def query_similarity(embedder: Any, question: str, chunk: str) -> float:
    """03, exercise 3: the cosine of the question's and the chunk's unnormalised embeddings."""
    q, c = embedder.encode([question, chunk], normalize_embeddings=False, show_progress_bar=False).tolist()
    return cosine(q, c)


# Notebook 04: preference pairs


def indices_of(responses: Sequence[str], response: str) -> list[int]:
    """04, exercise 1: a tie for chosen can go to any copy of the best response."""
    return [i for i, r in enumerate(responses) if r == response]


def samples_without_a_pair(score_lists: Sequence[Sequence[float]]) -> int:
    """04, exercise 2: samples whose responses all score the same leave nothing to prefer."""
    return sum(len(set(scores)) == 1 for scores in score_lists)


def kept_tokens(length: int, budget: int) -> int:
    """04, exercises 3 and 4: all tokens if they fit, else budget // 2 from each end (an odd budget loses one)."""
    return length if length <= budget else 2 * (budget // 2)


def evidence_kept(spans: Sequence[tuple[int, int]], length: int, budget: int) -> int:
    """04, exercise 5: sentences (token spans) that lie whole in the head or tail middle truncation keeps."""
    if length <= budget:
        return len(spans)
    half = budget // 2
    return sum(end <= half or start >= length - half for start, end in spans)


# Notebook 05: DPO


def dpo_term(margin: float, beta: float) -> float:
    """05, exercise 1: -log sigmoid(beta m) = log(1 + exp(-beta m)) (equation (2)'s DPO term)."""
    return math.log(1 + math.exp(-beta * margin))


def rescaled_margin(logged_margin: float, beta: float, new_beta: float) -> float:
    """05, exercise 2: the logged reward margin is beta m, so another beta rescales it."""
    return logged_margin / beta * new_beta


def mean_nll(token_logps: Sequence[float]) -> float:
    """05, exercise 3: the chosen response's mean negative log-likelihood per token."""
    return -sum(token_logps) / len(token_logps)


def lora_parameters(in_features: int, out_features: int, rank: int) -> int:
    """05, exercise 4: A is rank x in_features, B is out_features x rank."""
    return rank * (in_features + out_features)


def first_step_loss(sft_weight: float, nll: float) -> float:
    """05, exercise 5: at step 1 the policy is the reference, m = 0, and the DPO term is log 2 whatever beta."""
    return math.log(2) + sft_weight * nll


# Notebook 06: evaluation


def f1_from_counts(right: int, answer_words: int, gold_words: int) -> float:
    """06, exercise 1: precision = right / answer words, recall = right / gold words, F1 their harmonic mean."""
    precision, recall = right / answer_words, right / gold_words
    return 2 * precision * recall / (precision + recall)


def em_and_subem(normalised_answer: str, gold: str) -> tuple[float, float]:
    """06, exercise 2: EM needs equality, SubEM only containment (both after normalisation)."""
    return float(normalised_answer == gold), float(gold in normalised_answer)


def points_per_item(sets: int, items: int) -> float:
    """06, exercise 3: one item of a set moves that set by 1 / items and the average by 1 / sets of that."""
    return 100 / sets / items


def sign_test_by_enumeration(wins: int, losses: int) -> float:
    """06, exercise 4: the share of all fair-coin sequences of the decided items at least as uneven as observed."""
    n, observed = wins + losses, abs(wins - losses)
    uneven = sum(abs(2 * sum(flips) - n) >= observed for flips in itertools.product((0, 1), repeat=n))
    return uneven / 2**n


def average_of_first(rows_by_set: dict[str, Sequence[dict]], items: int, metric: str = "f1") -> float:
    """06, exercise 5: the average over sets, in points, of each set's mean over its first `items` rows."""
    means = [sum(r[metric] for r in rows[:items]) / len(rows[:items]) for rows in rows_by_set.values()]
    return 100 * sum(means) / len(means)


# Notebook 07: the ablation


def distinct_bigrams(texts: Sequence[str]) -> float:
    """07, exercise 1: distinct bigrams over all bigrams, the words of each text paired in order."""
    bigrams = [pair for text in texts for pair in itertools.pairwise(text.split())]
    return len(set(bigrams)) / len(bigrams)


def coverage(selections: Sequence[Sequence[int]], evidence: set[int]) -> float:
    """07, exercise 2: the share of rounds whose selection holds every evidence chunk."""
    return sum(evidence <= set(s) for s in selections) / len(selections)


def mean_difference(first: Sequence[float], second: Sequence[float]) -> float:
    """07, exercises 3 and 5: the mean over samples of first minus second, sample by sample."""
    return sum(a - b for a, b in zip(first, second)) / len(first)


def best_arm(means: dict[str, float]) -> str:
    """07, exercise 4: the arm with the highest mean (the first of a tie, to 9 decimals)."""
    return max(means, key=lambda arm: round(means[arm], 9))
