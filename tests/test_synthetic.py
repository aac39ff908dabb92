"""The synthetic QA generator: deterministic, answerable from verbatim evidence, sized, pool-disjoint, reproducible."""

import re
from pathlib import Path

import pytest

from longmab_utils import synthetic
from longmab_utils.chunking import HFTokenCounter, chunk_text
from longmab_utils.config import get_profile
from longmab_utils.data import read_longbench, read_samples

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample"
EVAL_NAMES = ("synth_bridge", "synth_comparison", "synth_lookup")
FILES = ("train.jsonl", *(f"eval/{name}.jsonl" for name in EVAL_NAMES))
BUNDLED = tuple(f"{folder}{name}" for folder in ("", "tiny/", "long/") for name in FILES)
BUNDLED += tuple(f"heldout/{name}" for name in FILES if name != "train.jsonl")  # evaluation only
OVERSHOOT = 50  # the last sentence added may pass the target by less than this (approximate tokens)
GPU_PROFILES = ("paper", "gpu-16gb")
MIN_ARMS = 6  # DESIGN.md: every profile gives the bandit at least this many chunks per sample


@pytest.fixture(scope="module")
def by_hops():
    """A few samples of every hop count (lookup, bridge + comparison, 3-hop bridge + comparison)."""
    return {hops: synthetic.generate_samples(8, seed=11, target_tokens=1200, hops=hops) for hops in (1, 2, 3)}


def test_same_seed_same_samples_and_other_seed_other_samples():
    first = synthetic.generate_samples(4, seed=3, target_tokens=800)
    assert synthetic.generate_samples(4, seed=3, target_tokens=800) == first
    other = synthetic.generate_samples(4, seed=4, target_tokens=800)
    assert [s["context"] for s in other] != [s["context"] for s in first]
    assert [s["question"] for s in other] != [s["question"] for s in first]


def test_sample_i_does_not_depend_on_n():
    assert (
        synthetic.generate_samples(2, seed=5, target_tokens=600)
        == synthetic.generate_samples(4, seed=5, target_tokens=600)[:2]
    )


def test_schema_and_ids(by_hops):
    samples = by_hops[2]
    assert [s["id"] for s in samples] == [f"sample-{i:04d}" for i in range(8)]
    for sample in samples:
        assert set(sample) == {"id", "type", "hops", "question", "answer", "evidence", "context"}
        assert sample["question"].endswith("?") and sample["answer"].strip() and sample["hops"] == 2
        assert sample["context"].endswith(".")


@pytest.mark.parametrize("hops", [1, 2, 3])
def test_evidence_is_verbatim_unique_and_in_document_order(by_hops, hops):
    for sample in by_hops[hops]:
        context = sample["context"]
        assert len(sample["evidence"]) == hops
        starts = [context.find(sentence) for sentence in sample["evidence"]]
        assert all(start >= 0 for start in starts), sample["id"]
        assert starts == sorted(starts), sample["id"]
        assert all(context.count(sentence) == 1 for sentence in sample["evidence"])
        assert sample["answer"] in context


def assert_evidence_apart(record):
    """Consecutive evidence sentences sit in different paragraphs with a whole paragraph between them."""
    context, evidence = record["context"], record["evidence"]
    for before, after in zip(evidence, evidence[1:]):
        gap = context[context.index(before) + len(before) : context.index(after)]
        assert gap.count("\n\n") >= 2, (record["id"], gap)
        assert re.search(r"[A-Z][^.]{20,}\.", gap), (record["id"], gap)


@pytest.mark.parametrize("hops", [2, 3])
def test_multi_hop_evidence_sits_in_separate_paragraphs_with_text_between(by_hops, hops):
    for sample in by_hops[hops]:
        assert_evidence_apart(sample)


def test_questions_are_distinct_and_exclusions_are_honoured():
    samples = synthetic.generate_samples(40, seed=6, target_tokens=300, hops=1)
    questions = [s["question"] for s in samples]
    assert len(set(questions)) == len(questions)
    again = synthetic.generate_samples(40, seed=6, target_tokens=300, hops=1, exclude_questions=questions[:20])
    assert not set(questions[:20]) & {s["question"] for s in again}


def test_question_types_follow_hops(by_hops):
    assert {s["type"] for s in by_hops[1]} == {"lookup"}
    assert {s["type"] for s in by_hops[2]} == {"bridge", "comparison"}
    assert {s["type"] for s in by_hops[3]} == {"bridge", "comparison"}
    only = synthetic.generate_samples(3, seed=1, target_tokens=500, question_types=["comparison"])
    assert {s["type"] for s in only} == {"comparison"}


def test_bridge_answer_comes_from_the_last_hop(by_hops):
    for sample in by_hops[2]:
        if sample["type"] == "bridge":
            assert any(sample["answer"] in sentence for sentence in sample["evidence"])
            assert sample["answer"] not in sample["question"]


def test_comparison_answer_is_one_of_the_compared_entities(by_hops):
    for sample in by_hops[2]:
        if sample["type"] == "comparison":
            assert sample["answer"] in sample["question"]
            assert len(re.findall(r"\b1\d{3}\b", " ".join(sample["evidence"]))) >= 2


@pytest.mark.parametrize("target", [300, 1000, 2500, 6000])
def test_fixed_length_target_is_met_within_one_sentence(target):
    for sample in synthetic.generate_samples(4, seed=2, target_tokens=target):
        assert target <= synthetic.approx_tokens(sample["context"]) <= target + OVERSHOOT


def test_length_range_varies_per_sample_within_the_range():
    samples = synthetic.generate_samples(8, seed=9, target_tokens=(400, 900))
    lengths = [synthetic.approx_tokens(s["context"]) for s in samples]
    assert all(400 <= n <= 900 + OVERSHOOT for n in lengths)
    assert max(lengths) - min(lengths) > 100


def test_approx_tokens_is_a_quarter_of_the_characters():
    assert synthetic.approx_tokens("") == 0
    assert synthetic.approx_tokens("x" * 400) == 100
    assert synthetic.approx_tokens("x" * 10) == 2


def test_pools_are_disjoint_by_construction():
    main, warm = synthetic.pool_names("main"), synthetic.pool_names("warmstart")
    assert len(main) > 200 and len(warm) > 200
    assert not set(main) & set(warm)
    assert not {name[0] for name in main} & {name[0] for name in warm}


def test_generated_samples_use_only_their_own_pool():
    texts = {
        pool: "\n".join(
            s["question"] + "\n" + s["context"]
            for s in synthetic.generate_samples(6, seed=4, target_tokens=1500, pool=pool)
        )
        for pool in synthetic.POOLS
    }
    for pool, other in (("main", "warmstart"), ("warmstart", "main")):
        foreign = [name for name in synthetic.pool_names(other) if name in texts[pool]]
        assert foreign == [], (pool, foreign[:5])
        words = set(re.findall(r"\b[A-Z][a-z]+\b", texts[pool]))
        assert len(words & set(synthetic.pool_names(pool))) > 30


@pytest.mark.parametrize(
    "bad",
    [
        dict(hops=0),
        dict(hops=4),
        dict(pool="other"),
        dict(question_types=["trivia"]),
        dict(hops=2, question_types=["lookup"]),
        dict(hops=1, question_types=["bridge"]),
    ],
)
def test_invalid_arguments_are_rejected(bad):
    with pytest.raises(ValueError):
        synthetic.generate_samples(1, seed=0, **bad)


def test_to_longbench_keeps_question_answer_and_evidence(by_hops):
    sample = by_hops[2][0]
    (item,) = synthetic.to_longbench([sample])
    assert item["input"] == sample["question"] and item["answers"] == [sample["answer"]]
    assert item["context"] == sample["context"] and item["evidence"] == sample["evidence"]
    assert item["id"] == sample["id"] and item["type"] == sample["type"]


def test_cli_regenerates_the_bundled_files_byte_for_byte(tmp_path):
    synthetic.main(["--out", str(tmp_path)])
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted(BUNDLED)
    bundled = sorted(str(p.relative_to(SAMPLE_DIR)) for p in SAMPLE_DIR.rglob("*.jsonl"))
    assert bundled == sorted(BUNDLED)
    for name in BUNDLED:
        assert (tmp_path / name).read_bytes() == (SAMPLE_DIR / name).read_bytes(), name


@pytest.mark.parametrize(
    ("folder", "train_size", "eval_size", "low", "high"),
    [("", 64, 16, 1000, 2000), ("tiny", 48, 8, 350, 610), ("long", 24, 8, 8000, 11250), ("heldout", 0, 48, 350, 610)],
)
def test_bundled_files_validate_and_stay_in_their_length_range(folder, train_size, eval_size, low, high):
    train = read_samples(SAMPLE_DIR / folder / "train.jsonl") if train_size else []
    evals = {name: read_longbench(SAMPLE_DIR / folder / "eval" / f"{name}.jsonl") for name in EVAL_NAMES}
    assert len(train) == train_size and {s["type"] for s in train} <= {"bridge", "comparison"}
    assert not (SAMPLE_DIR / folder / "train.jsonl").exists() or train_size
    assert all(len(items) == eval_size for items in evals.values())
    assert {item["type"] for item in evals["synth_bridge"]} == {"bridge"}
    assert {item["type"] for item in evals["synth_comparison"]} == {"comparison"}
    assert {item["type"] for item in evals["synth_lookup"]} == {"lookup"}
    records = train + [item for items in evals.values() for item in items]
    assert all(low <= synthetic.approx_tokens(r["context"]) <= high for r in records)
    for record in records:
        answer = record.get("answer") or record["answers"][0]
        assert answer in record["context"]
        assert all(sentence in record["context"] for sentence in record["evidence"])
        assert_evidence_apart(record)


def test_no_question_or_id_repeats_across_all_bundled_files():
    records = [r for name in BUNDLED for r in read_longbench_or_samples(SAMPLE_DIR / name)]
    ids = [r["id"] for r in records]
    questions = [r.get("question") or r["input"] for r in records]
    assert len(ids) == len(set(ids)) and len(questions) == len(set(questions))


def read_longbench_or_samples(path: Path) -> list[dict]:
    """Training files as samples, evaluation files as LongBench records."""
    return read_longbench(path) if path.parent.name == "eval" else read_samples(path)


def long_records() -> list[dict]:
    """Every record of the bundled long set (training and evaluation files)."""
    return [r for name in BUNDLED if name.startswith("long/") for r in read_longbench_or_samples(SAMPLE_DIR / name)]


def test_gpu_profiles_evaluate_on_the_long_set_and_train_on_built_data():
    for name in GPU_PROFILES:
        profile = get_profile(name)
        assert profile.eval_data == "data/sample/long/eval" and profile.data.startswith("data/built/")


@pytest.mark.parametrize("name", GPU_PROFILES)
def test_long_set_gives_every_sample_six_arms_at_the_gpu_chunk_size_in_approximate_tokens(name):
    chunk_size = get_profile(name).chunk_size
    for record in long_records():
        chunks = chunk_text(record["context"], synthetic.approx_tokens, chunk_size)
        assert len(chunks) >= MIN_ARMS, (record["id"], len(chunks))


@pytest.mark.models
def test_long_set_gives_every_sample_six_arms_with_the_bundled_tokenizer():
    from longmab_utils.models import load_tokenizer

    count = HFTokenCounter(load_tokenizer(get_profile("cpu-tiny")))
    for record in long_records():
        assert 8000 <= count(record["context"]) <= 12000, record["id"]
        assert len(chunk_text(record["context"], count, 1500)) >= MIN_ARMS, record["id"]
