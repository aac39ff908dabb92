"""Evaluation: template truncation, per-item metrics against hand-computed values, metrics.json, the table."""

import json
import random
import shutil
from pathlib import Path

import pandas as pd
import pytest

from longmab_utils import generation, models, pipeline
from longmab_utils.config import get_profile
from longmab_utils.data import read_longbench
from longmab_utils.errors import UserError
from longmab_utils.evaluation import (
    EvalSettings,
    bootstrap_interval,
    comparison_table,
    evaluate,
    fit_prompt,
    head_to_head,
    paired_comparison,
    read_eval_file,
    record_metrics,
    sha256,
    sign_test,
)
from longmab_utils.prompts import cot_answer_prompt

EVAL = Path(__file__).resolve().parents[1] / "data" / "sample" / "eval"


class CharTokenizer:
    """One token per character."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) for c in text]}

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids)


def test_short_prompts_are_untouched_and_long_ones_keep_first_and_last_halves():
    prompt, truncated = fit_prompt("ctx", "q?", CharTokenizer(), 10_000)
    assert prompt == cot_answer_prompt("ctx", "q?") and not truncated
    full = cot_answer_prompt("x" * 500, "q?")
    cut, truncated = fit_prompt("x" * 500, "q?", CharTokenizer(), 100)
    assert truncated and cut == full[:50] + full[-50:]


class ScriptedGenerator:
    """Answers each question with a scripted response, recording the sampling settings."""

    def __init__(self, script):
        self.script, self.sampling = script, None

    def generate(self, prompts, sampling, desc=""):
        self.sampling = sampling
        return [self.script(p[0]["content"]) for p in prompts]


def test_metrics_on_bundled_items_equal_hand_computed_values(tmp_path):
    data = tmp_path / "eval"
    data.mkdir()
    shutil.copy(EVAL / "synth_lookup.jsonl", data)
    items = read_longbench(data / "synth_lookup.jsonl")[:3]
    gold = [item["answers"][0] for item in items]
    replies = {
        items[0]["input"]: f"Reasoning: found it.\nAnswer: {gold[0]}",
        items[1]["input"]: f"Reasoning: hm.\nAnswer: {gold[1]} and more words",
        items[2]["input"]: f"Reasoning: {gold[2]} but no marker",
    }
    generator = ScriptedGenerator(lambda content: replies[content.split("Question: ")[1].split("\n")[0]])
    settings = EvalSettings(max_input_len=100_000, max_new_tokens=12, max_items=3)
    result = evaluate(generator, CharTokenizer(), data, settings, tmp_path, "base")
    n_gold = len(gold[1].split())
    f1_second = 2 * (n_gold / (n_gold + 3)) / (1 + n_gold / (n_gold + 3))
    assert result["scores"]["synth_lookup"] == pytest.approx(
        {"em": 1 / 3, "f1": (1 + f1_second) / 3, "subem": 2 / 3, "answered": 2 / 3, "n": 3}
    )
    assert generator.sampling.temperature == 0.0 and generator.sampling.max_new_tokens == 12
    rows = [json.loads(line) for line in (tmp_path / "predictions" / "base" / "synth_lookup.jsonl").open()]
    assert [r["prediction"] for r in rows[:2]] == [gold[0].lower(), f"{gold[1]} and more words".lower()]
    document = record_metrics(tmp_path, {"base": result}, settings, {"policy": "p"})
    assert "paired" not in document  # nothing to pair with
    assert document["files_sha256"] == {"synth_lookup.jsonl": sha256(data / "synth_lookup.jsonl")}
    assert document["settings"]["max_new_tokens"] == 12 and "Reasoning:" in document["settings"]["template"]


def test_all_sets_share_one_generate_call_and_predictions_return_to_their_set(tmp_path):
    data = tmp_path / "eval"
    data.mkdir()
    for name in ("synth_bridge.jsonl", "synth_lookup.jsonl"):
        shutil.copy(EVAL / name, data)
    lookup = {item["input"]: item["answers"][0] for item in read_longbench(data / "synth_lookup.jsonl")}
    calls = []

    class CountingGenerator(ScriptedGenerator):
        def generate(self, prompts, sampling, desc=""):
            calls.append(len(prompts))
            return super().generate(prompts, sampling, desc)

    def reply(content):
        question = content.split("Question: ")[1].split("\n")[0]
        return f"Answer: {lookup.get(question, 'nobody')}"

    settings = EvalSettings(max_input_len=100_000, max_new_tokens=8, max_items=3)
    result = evaluate(CountingGenerator(reply), CharTokenizer(), data, settings, tmp_path, "base")
    assert calls == [6]
    assert result["scores"]["synth_lookup"]["em"] == 1.0 and result["scores"]["synth_bridge"]["em"] == 0.0
    bridge = [json.loads(line) for line in (tmp_path / "predictions" / "base" / "synth_bridge.jsonl").open()]
    assert [r["id"] for r in bridge] == [i["id"] for i in read_longbench(data / "synth_bridge.jsonl")[:3]]


def test_parquet_files_read_like_jsonl(tmp_path):
    items = read_longbench(EVAL / "synth_bridge.jsonl")[:2]
    pd.DataFrame([{k: i[k] for k in ("input", "context", "answers")} for i in items]).to_parquet(tmp_path / "b.parquet")
    assert [i["input"] for i in read_eval_file(tmp_path / "b.parquet")] == [i["input"] for i in items]


def test_comparison_table_has_an_average_row_in_percent():
    scores = {
        "base": {"a": {"em": 0.0, "f1": 0.5, "subem": 0.5}, "b": {"em": 1.0, "f1": 1.0, "subem": 1.0}},
        "trained": {"a": {"em": 0.5, "f1": 0.5, "subem": 1.0}, "b": {"em": 1.0, "f1": 1.0, "subem": 1.0}},
    }
    table = comparison_table(scores)
    assert table.loc["average", ("base", "f1")] == 75.0 and table.loc["a", ("trained", "subem")] == 100.0


def test_infinitebench_file_is_evaluated_as_published(tmp_path):
    data = tmp_path / "eval"
    data.mkdir()
    lines = [
        {
            "id": 0,
            "context": "Mara left Vell at dawn.",
            "input": "Where did Mara leave?",
            "answer": ["Vell"],
            "options": [],
        },
        {
            "id": 1,
            "context": "Ilse sailed to Dorn.",
            "input": "Where did Ilse sail?",
            "answer": ["Dorn"],
            "options": [],
        },
    ]
    (data / "longbook_qa_eng.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    generator = ScriptedGenerator(lambda content: "Reasoning: read it.\nAnswer: Vell")
    result = evaluate(generator, CharTokenizer(), data, EvalSettings(max_new_tokens=8), tmp_path, "base")
    assert result["scores"]["longbook_qa_eng"] == pytest.approx(
        {"em": 0.5, "f1": 0.5, "subem": 0.5, "answered": 1.0, "n": 2}
    )
    rows = [json.loads(line) for line in (tmp_path / "predictions" / "base" / "longbook_qa_eng.jsonl").open()]
    assert [r["id"] for r in rows] == ["0", "1"]


def test_head_to_head_counts_wins_losses_and_ties_by_item():
    base = [{"id": "a", "f1": 0.0}, {"id": "b", "f1": 1.0}, {"id": "c", "f1": 0.5}, {"id": "d", "f1": 0.5}]
    trained = [{"id": "d", "f1": 1.0}, {"id": "c", "f1": 0.5}, {"id": "b", "f1": 0.4}, {"id": "a", "f1": 1.0}]
    assert head_to_head(base, trained) == {"wins": 2, "losses": 1, "ties": 1}
    with pytest.raises(UserError, match="different items"):
        head_to_head(base, trained[:3])


def rows(f1s: list[float], ems: list[float] | None = None, prefix: str = "") -> list[dict]:
    return [{"id": f"{prefix}{i}", "f1": f1, "em": (ems or f1s)[i]} for i, f1 in enumerate(f1s)]


def test_paired_comparison_counts_by_item_and_brackets_the_mean_difference():
    base = rows([0.0, 0.5, 1.0, 0.2, 0.0, 0.0], [0, 0, 1, 0, 0, 0])
    trained = rows([1.0, 0.5, 0.0, 0.6, 1.0, 1.0], [1, 0, 0, 0, 1, 1])
    paired = paired_comparison(base, trained)
    assert (paired["wins"], paired["losses"], paired["ties"], paired["n"]) == (4, 1, 1, 6)
    assert paired["p"] == sign_test(4, 1) == pytest.approx(2 * 6 / 32)
    f1 = paired["f1_difference"]
    assert f1["mean"] == pytest.approx((1 - 1 + 0.4 + 1 + 1) / 6)
    assert -1 <= f1["low"] < f1["mean"] < f1["high"] <= 1
    assert paired["em_difference"]["mean"] == pytest.approx(2 / 6)
    assert paired_comparison(base, trained) == paired  # the bootstrap has its own fixed seed


def test_bootstrap_interval_narrows_with_more_items_and_covers_the_true_mean():
    rng = random.Random(1)
    few = [rng.choice([-1.0, 0.0, 1.0, 1.0]) for _ in range(12)]
    many = [rng.choice([-1.0, 0.0, 1.0, 1.0]) for _ in range(480)]
    low_few, high_few = bootstrap_interval(few)
    low_many, high_many = bootstrap_interval(many)
    assert high_many - low_many < (high_few - low_few) / 3  # about 1/sqrt(40) as wide
    assert low_many < 0.25 < high_many  # the mean of the distribution drawn from
    assert bootstrap_interval([0.5] * 5) == (0.5, 0.5)


def test_metrics_json_pairs_base_and_trained_per_set_and_over_all_items(tmp_path):
    results = {
        label: {"scores": {}, "files": {}, "rows": {"a": rows(f1s[:2]), "b": rows(f1s[2:])}}
        for label, f1s in (("base", [0.0, 1.0, 0.0, 0.0]), ("trained", [1.0, 1.0, 1.0, 0.0]))
    }
    document = record_metrics(tmp_path, results, EvalSettings(), {})
    paired = json.loads((tmp_path / "metrics.json").read_text())["paired"]
    assert paired == json.loads(json.dumps(document["paired"]))
    assert (paired["sets"]["a"]["wins"], paired["sets"]["b"]["wins"], paired["all"]["wins"]) == (1, 1, 2)
    assert paired["all"]["ties"] == 2 and paired["all"]["n"] == 4  # ids from two sets are not mixed up
    assert paired["all"]["f1_difference"]["mean"] == pytest.approx(0.5)


def test_sign_test_is_the_two_sided_exact_binomial():
    assert sign_test(0, 0) == 1.0 and sign_test(1, 0) == 1.0  # one decided item cannot be significant
    assert sign_test(5, 0) == pytest.approx(2 / 32)  # all five decided items go one way
    assert sign_test(1, 3) == pytest.approx(2 * (1 + 4) / 16)  # P(at most 1 of 4) on each side
    assert sign_test(7, 3) == sign_test(3, 7)
    binomtest = pytest.importorskip("scipy.stats").binomtest
    assert sign_test(9, 2) == pytest.approx(binomtest(9, 11, 0.5).pvalue)


def test_evaluation_is_reused_while_settings_sets_and_adapter_match(tmp_path, monkeypatch):
    built = []

    class Generator(ScriptedGenerator):
        tokenizer = CharTokenizer()

        def close(self):
            pass

    def build(profile, extra_adapter=None, max_model_len=None, batch_size=None):
        built.append(Generator(lambda content: "Answer: 1486"))
        return built[-1]

    monkeypatch.setattr(generation, "build_generator", build)
    monkeypatch.setattr(models, "model_limit", lambda profile: 8192)
    profile = get_profile("smoke")
    first = pipeline.evaluate(profile, tmp_path, None, "data/sample/tiny/eval")
    assert pipeline.evaluate(profile, tmp_path, None, "data/sample/tiny/eval") == first and len(built) == 1
    assert (tmp_path / "evaluation.png").exists()
    pipeline.evaluate(profile, tmp_path, None, "data/sample/tiny/eval", force=True)
    assert len(built) == 2
