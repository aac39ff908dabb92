"""build-data on hand-made files in the published formats: lengths, evidence, determinism, the card, errors;
the GPU profiles' built-data default; LongBench and InfiniteBench files through `evaluate`."""

import json
import random
from pathlib import Path

import pandas as pd
import pytest
from test_data import INFINITEBENCH_LINE, LONGBENCH_LINE

from longmab_utils import __main__ as cli
from longmab_utils import generation, models, pipeline
from longmab_utils.builddata import (
    DROPPED_MISSING,
    DROPPED_TOO_SHORT,
    BuildSettings,
    build_command,
    build_data,
    card_path,
    default_output,
)
from longmab_utils.config import PROFILES, get_profile
from longmab_utils.course import reproduce
from longmab_utils.data import DataError, read_samples
from longmab_utils.errors import UserError
from longmab_utils.sources import normalize_title

WORDS = "amber basalt cedar delta ember fjord granite harbor island juniper kestrel lagoon meadow".split()


def words(text: str) -> int:
    """A stand-in tokenizer: one token per whitespace-separated word."""
    return len(text.split())


def prose(rng: random.Random, count: int) -> str:
    """`count` words of filler text ending with a period."""
    return " ".join(rng.choice(WORDS) for _ in range(count)) + "."


def musique_line(index: int, rng: random.Random, titles: list[str]) -> dict:
    """One question in MuSiQue's published format: 20 paragraphs, two of them supporting."""
    paragraphs = [
        {
            "idx": i,
            "title": titles[i],
            "paragraph_text": f"Fact {index}-{i}: {prose(rng, rng.randint(15, 30))}",
            "is_supporting": i in (3, 11),
        }
        for i in range(20)
    ]
    return {
        "id": f"2hop__{index}",
        "paragraphs": paragraphs,
        "question": f"Which harbor is tied to question {index}?",
        "question_decomposition": [{"id": 1, "question": "q", "answer": "a", "paragraph_support_idx": 3}],
        "answer": f"Harbor {index}",
        "answer_aliases": [f"The Harbor {index}"],
        "answerable": True,
    }


def title(index: int, paragraph: int) -> str:
    """Paragraph titles with periods and dashes, as MuSiQue's and Wikipedia's spellings differ."""
    return f"St. Place\u2013{index}-{paragraph}" if paragraph % 5 == 0 else f"Topic {index} {paragraph}"


@pytest.fixture
def musique(tmp_path) -> Path:
    """Six answerable questions and one unanswerable, JSONL as published."""
    rng = random.Random(7)
    lines = [musique_line(i, rng, [title(i, p) for p in range(20)]) for i in range(7)]
    lines[6]["answerable"] = False
    path = tmp_path / "musique_ans_v1.0_train.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture
def wikipedia(tmp_path, musique) -> Path:
    """A Wikipedia dump (`id`, `url`, `title`, `text`) with an article for every title but one supporting one."""
    rng = random.Random(8)
    rows, missing = [], title(5, 11)
    for line in musique.read_text().splitlines():
        for paragraph in json.loads(line)["paragraphs"]:
            if paragraph["title"] == missing:
                continue
            spelled = paragraph["title"].replace(".", "").replace("\u2013", "-").upper()  # matched when normalised
            text = f"{prose(rng, rng.randint(20, 60))}\n\n{paragraph['paragraph_text']}\n\n{prose(rng, 10)}"
            url = f"https://en.wikipedia.org/wiki/{len(rows)}"
            rows.append({"id": str(len(rows)), "url": url, "title": spelled, "text": text})
    path = tmp_path / "wiki.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


SMALL = {"samples": 10, "min_tokens": 300, "max_tokens": 600}


def build(musique, out, recipe="paragraphs", wiki=None, seed=42, **changes) -> dict:
    """build-data with the word counter."""
    settings = BuildSettings(recipe=recipe, seed=seed, **{**SMALL, **changes})
    return build_data(str(musique), wiki and str(wiki), settings, lambda: words, "words", out)


def supporting(musique: Path) -> dict[str, list[dict]]:
    """Each question's supporting paragraphs."""
    records = [json.loads(line) for line in musique.read_text().splitlines()]
    return {r["id"]: [p for p in r["paragraphs"] if p["is_supporting"]] for r in records}


def test_paragraphs_recipe_fits_every_target_and_holds_every_supporting_paragraph(tmp_path, musique):
    summary = build(musique, tmp_path / "out.jsonl", min_tokens=700, max_tokens=1200)
    samples = read_samples(tmp_path / "out.jsonl")
    assert summary["samples"] == len(samples) == 6 and summary["dropped"] == {"not answerable": 1}
    gold = supporting(musique)
    for sample in samples:
        assert 700 <= sample["target_tokens"] <= 1200 and sample["num_tokens"] <= sample["target_tokens"]
        assert sample["num_tokens"] == words(sample["context"])
        assert sample["num_tokens"] > sample["target_tokens"] - 50  # filled up to about one paragraph short
        own = sample["id"].removeprefix("2hop__")
        assert any(f"Fact {i}-" in sample["context"] for i in range(7) if str(i) != own)  # other questions' too
        assert sample["context"].startswith("Passage 1:\n")
        texts = [p["paragraph_text"] for p in gold[sample["id"]]]
        assert all(text in sample["context"] for text in texts) and sample["evidence"] == texts
        assert sample["supporting_titles"] == [p["title"] for p in gold[sample["id"]]]
        assert sample["answer_aliases"] == [f"The {sample['answer']}"]


def test_sealong_recipe_holds_every_supporting_article_and_counts_missing_titles(tmp_path, musique, wikipedia):
    summary = build(musique, tmp_path / "out.jsonl", "sealong", wikipedia, min_tokens=200, max_tokens=900)
    samples = read_samples(tmp_path / "out.jsonl")
    assert summary["dropped"][DROPPED_MISSING] == 1 and "2hop__5" not in {s["id"] for s in samples}
    articles = {normalize_title(r["title"]): r["text"] for r in map(json.loads, wikipedia.read_text().splitlines())}
    gold = supporting(musique)
    assert len(samples) + sum(summary["dropped"].values()) == 7
    for sample in samples:
        assert sample["num_tokens"] <= sample["target_tokens"] and sample["num_tokens"] == words(sample["context"])
        for paragraph in gold[sample["id"]]:
            assert articles[normalize_title(paragraph["title"])] in sample["context"]
        assert len(sample["evidence"]) == 2  # the mini articles hold their MuSiQue paragraph verbatim
        assert sample["context"].count("\nPassage ") >= 2  # a non-supporting article joined the two supporting


def test_sealong_reads_a_parquet_dump_like_the_jsonl_one(tmp_path, musique, wikipedia):
    rows = [json.loads(line) for line in wikipedia.read_text().splitlines()]
    pd.DataFrame(rows).to_parquet(tmp_path / "wiki.parquet")
    build(musique, tmp_path / "a.jsonl", "sealong", wikipedia)
    build(musique, tmp_path / "b.jsonl", "sealong", tmp_path / "wiki.parquet")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_same_seed_same_bytes_other_seed_other_samples(tmp_path, musique):
    for name in ("a", "b"):
        build(musique, tmp_path / name / "train.jsonl")
    assert (tmp_path / "a" / "train.jsonl").read_bytes() == (tmp_path / "b" / "train.jsonl").read_bytes()
    cards = [card_path(tmp_path / name / "train.jsonl").read_bytes() for name in ("a", "b")]
    assert cards[0] == cards[1]
    build(musique, tmp_path / "c.jsonl", seed=7)
    assert (tmp_path / "c.jsonl").read_bytes() != (tmp_path / "a" / "train.jsonl").read_bytes()


def test_the_data_card_names_sources_licences_counts_and_lengths(tmp_path, musique, wikipedia):
    out = tmp_path / "train_42_8k_16k.jsonl"
    build(musique, out, "sealong", wikipedia, samples=3)
    card = (tmp_path / "train_42_8k_16k.card.md").read_text()
    assert "CC BY 4.0" in card and "CC BY-SA 3.0" in card and "SHA-256" in card and str(wikipedia) in card
    assert "samples written: 3" in card and "| not answerable | 1 |" in card and f"| {DROPPED_MISSING} | 1 |" in card
    assert "- `seed`: 42" in card and "- `recipe`: sealong" in card and "policy tokens | samples" in card


def test_questions_whose_support_exceeds_the_target_are_dropped_and_counted(tmp_path, musique):
    with pytest.raises(UserError, match="no sample could be built"):
        build(musique, tmp_path / "out.jsonl", min_tokens=10, max_tokens=20)
    summary = build(musique, tmp_path / "out.jsonl", min_tokens=40, max_tokens=80)
    assert summary["samples"] + summary["dropped"].get("supporting passages alone exceed the drawn target", 0) == 6


def test_no_sample_is_written_below_min_tokens_when_the_source_runs_out_of_text(tmp_path, musique):
    with pytest.raises(UserError, match=f"no sample could be built.*{DROPPED_TOO_SHORT}"):
        build(musique, tmp_path / "out.jsonl", min_tokens=20_000, max_tokens=30_000)  # the file has ~3k words
    summary = build(musique, tmp_path / "out.jsonl", min_tokens=1_500, max_tokens=4_000)
    samples = read_samples(tmp_path / "out.jsonl")
    assert samples and all(1_500 <= s["num_tokens"] <= s["target_tokens"] for s in samples)
    assert summary["samples"] + summary["dropped"].get(DROPPED_TOO_SHORT, 0) == 6


@pytest.mark.parametrize(
    ("suffix", "text", "message"),
    [
        (".json", "", r"empty.json: empty file \(expected JSON Lines"),
        (".jsonl", " \n", r"empty.jsonl: empty file"),
        (".json", '[{"id": "2hop__0"}]', r"array.json, line 1: a JSON array, not JSON Lines"),
    ],
)
def test_an_empty_file_or_a_json_array_gets_its_own_error(tmp_path, suffix, text, message):
    name = "empty" if not text.strip() else "array"
    path = tmp_path / f"{name}{suffix}"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        build(path, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_musique_lines_in_a_json_named_file_are_read_as_json_lines(tmp_path, musique):
    renamed = musique.rename(musique.with_suffix(".json"))
    assert build(renamed, tmp_path / "out.jsonl", min_tokens=700, max_tokens=1200)["samples"] == 6


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["paragraphs"][3].pop("is_supporting"), r"line 2: field 'paragraphs\[3\].is_supporting'"),
        (lambda r: r["paragraphs"][0].update(title=None), r"line 2: field 'paragraphs\[0\].title': expected a str"),
        (lambda r: r.update(answer=""), r"line 2: field 'answer': empty"),
        (lambda r: r.update(answerable="yes"), r"line 2: field 'answerable': expected true or false"),
        (lambda r: r.update(id="2hop__0"), r"line 2: field 'id': duplicate id '2hop__0' \(first seen on line 1\)"),
    ],
)
def test_musique_errors_name_file_line_and_field(tmp_path, musique, change, message):
    lines = musique.read_text().splitlines()
    record = json.loads(lines[1])
    change(record)
    lines[1] = json.dumps(record)
    musique.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"musique_ans_v1.0_train.jsonl, " + message):
        build(musique, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_wikipedia_errors_name_file_line_and_field(tmp_path, musique, wikipedia):
    lines = wikipedia.read_text().splitlines()
    lines[2] = json.dumps({k: v for k, v in json.loads(lines[2]).items() if k != "title"})
    wikipedia.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"wiki.jsonl, line 3: field 'title': missing"):
        build(musique, tmp_path / "out.jsonl", "sealong", wikipedia)
    (tmp_path / "broken.jsonl").write_text('{"title": "a", "text": "b"}\n{"title": \n')
    with pytest.raises(DataError, match=r"broken.jsonl, line 2: invalid JSON"):
        build(musique, tmp_path / "out.jsonl", "sealong", tmp_path / "broken.jsonl")


def test_recipe_and_source_mistakes_exit_2_before_the_tokenizer_loads(tmp_path, musique, wikipedia, capsys):
    base = ["build-data", "--musique", str(musique), "--out", str(tmp_path / "o.jsonl")]
    assert cli.main([*base, "--recipe", "sealong"]) == 2
    assert "the sealong recipe needs --wikipedia" in capsys.readouterr().err
    assert cli.main([*base, "--recipe", "paragraphs", "--wikipedia", str(wikipedia)]) == 2
    assert "--wikipedia is read only by --recipe sealong" in capsys.readouterr().err
    assert cli.main([*base[:2], str(tmp_path / "nope.jsonl")]) == 2
    assert "nope.jsonl: file not found" in capsys.readouterr().err
    assert cli.main([*base, "--min-tokens", "900", "--max-tokens", "800"]) == 2
    assert "--max-tokens 800 is below --min-tokens 900" in capsys.readouterr().err


@pytest.mark.models
def test_the_command_counts_policy_tokens_with_the_profiles_tokenizer(tmp_path, musique):
    out = tmp_path / "built.jsonl"
    argv = ["build-data", "--profile", "cpu-tiny", "--musique", str(musique), "--out", str(out)]
    assert cli.main([*argv, "--min-tokens", "500", "--max-tokens", "900"]) == 0
    tokenizer = models.load_tokenizer(get_profile("cpu-tiny"))
    for sample in read_samples(out):
        count = len(tokenizer(sample["context"], add_special_tokens=False)["input_ids"])
        assert count == sample["num_tokens"] <= sample["target_tokens"] <= 900
    assert "bundled:smollm2-135m-instruct" in card_path(out).read_text()


def test_gpu_profiles_default_to_built_data_and_name_the_command_when_it_is_missing(tmp_path, monkeypatch, capsys):
    for name in ("paper", "gpu-16gb"):
        assert build_command(PROFILES[name].data, name) is not None
    assert default_output(BuildSettings()) == Path(PROFILES["paper"].data)

    def refuse(*_args, **_kwargs):
        raise AssertionError("a model loaded before the training data was checked")

    monkeypatch.setattr(generation, "build_generator", refuse)
    missing = tmp_path / "data" / "built" / "train_42_8k_12k.jsonl"
    argv = ["probe", "--profile", "gpu-16gb", "--run-dir", str(tmp_path / "run"), "--set", f"data={missing}"]
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert f"training data {missing} does not exist" in error and error.count("\n") == 1
    assert "python -m longmab_utils build-data --profile gpu-16gb --musique dgslibisey/MuSiQue" in error
    assert f"--min-tokens 8192 --max-tokens 12288 --seed 42 --out {missing}" in error
    assert not (tmp_path / "run").exists()  # nothing is made for a run that cannot start
    with pytest.raises(UserError, match="build-data --profile paper"):
        pipeline.load_samples(get_profile("paper", {"data": str(missing)}))
    with pytest.raises(UserError, match="build-data --profile paper"):  # before any notebook starts
        reproduce.reproduce("paper", {"data": str(missing)}, tmp_path / "course")
    assert not (tmp_path / "course" / "manifest.json").exists()


def test_a_built_file_feeds_the_profile_that_names_it(tmp_path, musique):
    out = tmp_path / "data" / "built" / "train_42_300_600.jsonl"
    build(musique, out)
    assert len(pipeline.load_samples(get_profile("paper", {"data": str(out)}))) == 6


class CharTokenizer:
    """One token per character."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) for c in text]}

    def decode(self, ids, skip_special_tokens=True):
        return "".join(map(chr, ids))


class EchoGenerator:
    """Answers every evaluation prompt with the same line."""

    tokenizer = CharTokenizer()

    def generate(self, prompts, sampling, desc="", seeds=None):
        return ["Reasoning: it says so.\nAnswer: Pava"] * len(prompts)

    def use_adapter(self, enabled):
        pass

    def close(self):
        pass


def test_evaluate_reads_longbench_and_infinitebench_files_as_published(tmp_path, monkeypatch):
    infinitebench = {**INFINITEBENCH_LINE, "answer": ["Pava"]}  # EchoGenerator answers "Pava" everywhere
    data = tmp_path / "eval"
    data.mkdir()
    (data / "hotpotqa.jsonl").write_text(json.dumps(LONGBENCH_LINE) + "\n")
    pd.DataFrame([{**LONGBENCH_LINE, "_id": "3f1d"}]).to_parquet(data / "musique.parquet")
    (data / "longbook_qa_eng.jsonl").write_text(json.dumps(infinitebench) + "\n")
    monkeypatch.setattr(generation, "build_generator", lambda *args, **kwargs: EchoGenerator())
    monkeypatch.setattr(models, "model_limit", lambda profile: 8192)
    scores = pipeline.evaluate(get_profile("smoke"), tmp_path / "run", data=str(data))
    assert set(scores["base"]) == {"hotpotqa", "musique", "longbook_qa_eng"}
    assert all(score["em"] == 1.0 and score["n"] == 1 for score in scores["base"].values())


def test_a_hub_tokenizer_without_network_is_one_line_naming_the_model(tmp_path, musique, monkeypatch, capsys):
    import transformers

    def offline(*args, **kwargs):
        raise OSError(  # what transformers raises when the hub cannot be reached and nothing is cached
            "We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them in the cached "
            "files.\nCheck your internet connection or see how to run the library in offline mode at '...'."
        )

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", offline)
    argv = ["build-data", "--profile", "gpu-16gb", "--musique", str(musique), "--out", str(tmp_path / "o.jsonl")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    error = [line for line in err.splitlines() if line.strip() and not line.startswith("read MuSiQue")]
    assert len(error) == 1 and "Qwen/Qwen2.5-3B-Instruct" in error[0] and "couldn't connect" in error[0]
    assert "huggingface-cli download Qwen/Qwen2.5-3B-Instruct" in error[0]
    assert not (tmp_path / "o.jsonl").exists()
