"""Long-context training samples from MuSiQue in one command: `python -m longmab_utils build-data`.

Introduced in docs/data.md ("Real training and evaluation data"); the GPU profiles read its output by default.
Two recipes:

- `sealong` follows SeaLong's `process_data.py` (the recipe behind the authors' data): answerable MuSiQue
  questions whose supporting titles all have a Wikipedia article; each supporting article in full, then the
  question's non-supporting titles' articles in random order, each added while the total stays within a
  target drawn uniformly from [min_tokens, max_tokens] policy tokens; shuffled; joined as "Passage i:" blocks.
- `paragraphs` needs no Wikipedia: the question's own MuSiQue paragraphs (supporting first, the others in
  random order), then paragraphs of other questions, to the same kind of target.

Every context stays within its own target (`num_tokens <= target_tokens`) and reaches `min_tokens`; a question
whose supporting passages alone exceed the target, or whose source runs out of text below `min_tokens`, is dropped
and counted. Seeded (the question order by the seed, each sample by the seed and
its question's id), so the same inputs and settings give byte-identical files. A data card is written next to
the output.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import statistics
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from tqdm.auto import tqdm

from .chunking import CountTokens, HFTokenCounter
from .config import Profile, project_path
from .data import DataError, atomic_write_text, write_jsonl
from .errors import UserError
from .sources import Question, Source, Wikipedia, normalize_title, parse_question

RECIPES = ("sealong", "paragraphs")
PATIENCE = 20
"""Consecutive passages that do not fit before a context stops growing."""
MUSIQUE_HUB_ID = "dgslibisey/MuSiQue"
"""A `datasets` id holding MuSiQue's published `musique_ans_v1.0_train.jsonl`."""
WIKIPEDIA_HUB_ID = "wikimedia/wikipedia:20231101.en"
"""The Wikipedia dump SeaLong's code loads (id:config)."""
LICENCES = {
    "MuSiQue": "CC BY 4.0 (github.com/StonyBrookNLP/musique)",
    "Wikipedia": "CC BY-SA 3.0 and GFDL (the wikimedia/wikipedia dataset card)",
}
DROPPED_UNANSWERABLE = "not answerable"
DROPPED_MISSING = "a supporting title has no Wikipedia article"
DROPPED_TOO_LONG = "supporting passages alone exceed the drawn target"
DROPPED_TOO_SHORT = "too little other text to reach --min-tokens"
BUILT_NAME = re.compile(r"^train_(\d+)_(\d+k?)_(\d+k?)\.jsonl$")


@dataclass(frozen=True)
class BuildSettings:
    """What decides a built file besides its sources and tokenizer."""

    recipe: str = "paragraphs"
    """`sealong` (Wikipedia articles, SeaLong's recipe) or `paragraphs` (MuSiQue paragraphs only)."""
    samples: int = 2048
    """Samples to write (fewer when the source runs out)."""
    min_tokens: int = 8192
    """Lower end of the uniformly drawn target length, in policy tokens."""
    max_tokens: int = 16384
    """Upper end of the target length."""
    seed: int = 42
    """Seed of the question order and of every sample's draws."""

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise UserError(f"--recipe {self.recipe}: choose one of {', '.join(RECIPES)}")
        if self.samples < 1 or self.min_tokens < 1 or self.seed < 0:
            raise UserError("--samples and --min-tokens must be at least 1 and --seed at least 0")
        if self.max_tokens < self.min_tokens:
            raise UserError(f"--max-tokens {self.max_tokens} is below --min-tokens {self.min_tokens}")


def _k(tokens: int) -> str:
    """A token count as a file name writes it: `8k` for 8192, the plain number otherwise."""
    return f"{tokens // 1024}k" if tokens % 1024 == 0 else str(tokens)


def _tokens(text: str) -> int:
    """The inverse of `_k`."""
    return int(text[:-1]) * 1024 if text.endswith("k") else int(text)


def default_output(settings: BuildSettings) -> Path:
    """`data/built/train_<seed>_<min>_<max>.jsonl`, named like the authors' `raw_data_42_8k_16k.jsonl`."""
    return Path("data/built") / f"train_{settings.seed}_{_k(settings.min_tokens)}_{_k(settings.max_tokens)}.jsonl"


def card_path(out: str | os.PathLike) -> Path:
    """The data card written next to a built file."""
    return Path(out).with_suffix(".card.md")


def built_token_range(path: str | os.PathLike) -> tuple[int, int] | None:
    """(min, max) target tokens of a file with build-data's default name, None for another name."""
    match = BUILT_NAME.match(Path(path).name)
    return (_tokens(match.group(2)), _tokens(match.group(3))) if match else None


def build_command(path: str | os.PathLike, profile_name: str) -> str | None:
    """The `build-data` command that writes a file with the default name, or None for another name."""
    match = BUILT_NAME.match(Path(path).name)
    if match is None:
        return None
    seed, low, high = match.groups()
    return (
        f"python -m longmab_utils build-data --profile {profile_name} --musique {MUSIQUE_HUB_ID} "
        f"--min-tokens {_tokens(low)} --max-tokens {_tokens(high)} --seed {seed} --out {path}"
    )


def check_training_data(data: str | os.PathLike, profile_name: str) -> None:
    """Raise a UserError naming a missing built file and the `build-data` command that makes it."""
    command = build_command(data, profile_name)
    if command is None or project_path(data).exists():
        return
    raise UserError(
        f"training data {data} does not exist: the {profile_name} profile trains on MuSiQue built by build-data. "
        f"From the repository root run `{command}` (a local musique_ans_v1.0_train.jsonl works for --musique; add "
        f"--wikipedia {WIKIPEDIA_HUB_ID} for the SeaLong recipe), or pass --data FILE / --set data=FILE"
    )


class Passage(NamedTuple):
    """One block of a context: a cache key for its token cost and its text (without the "Passage i:" line)."""

    key: str
    body: str


class PassageCost:
    """Token cost of a passage as a context block (its text plus a "Passage i:" line), cached by key."""

    def __init__(self, count_tokens: CountTokens):
        self.count_tokens = count_tokens
        self.header = count_tokens("Passage 10:\n")
        self.cache: dict[str, int] = {}

    def __call__(self, passage: Passage) -> int:
        if passage.key not in self.cache:
            self.cache[passage.key] = self.count_tokens(passage.body) + self.header
        return self.cache[passage.key]


def join_passages(bodies: Sequence[str]) -> str:
    """SeaLong's context: "Passage i:" and the text of each passage, one block after another."""
    return "\n".join(f"Passage {i}:\n{body}" for i, body in enumerate(bodies, start=1))


def fill(required: list[Passage], optional: Iterable[Passage], target: int, cost: PassageCost) -> list[Passage] | None:
    """The required passages, then each optional one that keeps the total within target; None if required exceed it."""
    total = sum(map(cost, required))
    if total > target:
        return None
    chosen, misses = list(required), 0
    for passage in optional:
        tokens = cost(passage)
        if total + tokens <= target:
            chosen.append(passage)
            total, misses = total + tokens, 0
        else:
            misses += 1
        if misses >= PATIENCE or total == target:
            break
    return chosen


def assemble(
    required: list[Passage], optional: Iterable[Passage], target: int, rng: random.Random, cost: PassageCost
) -> tuple[str, int] | None:
    """A shuffled context within target tokens and its exact count (the last optional passages go if the joined
    text counts more than its parts); None when the required passages alone do not fit."""
    chosen = fill(required, optional, target, cost)
    if chosen is None:
        return None
    removable = chosen[len(required) :]
    rng.shuffle(chosen)
    while True:
        context = join_passages([p.body for p in chosen])
        tokens = cost.count_tokens(context)
        if tokens <= target:
            return context, tokens
        if not removable:
            return None
        chosen.remove(removable.pop())


@dataclass(frozen=True)
class Entry:
    """Where an answerable question lies in its source, and its normalised titles."""

    line: int
    locator: int
    support: tuple[str, ...]
    others: tuple[str, ...]


def scan(source: Source) -> tuple[list[Entry], int, Counter]:
    """Validate every MuSiQue record; the answerable ones' entries, the count of records read and the drops."""
    entries, seen, dropped, read = [], {}, Counter(), 0
    for line, locator, record in tqdm(source.records(), desc="read MuSiQue", unit=" q"):
        question = parse_question(source, line, record)
        read += 1
        if question.id in seen:
            first = seen[question.id]
            raise DataError(source, line, "id", f"duplicate id {question.id!r} (first seen on line {first})")
        seen[question.id] = line
        if not question.answerable:
            dropped[DROPPED_UNANSWERABLE] += 1
            continue
        entries.append(Entry(line, locator, tuple(question.titles(True)), tuple(question.titles(False))))
    if not entries:
        raise DataError(source, None, None, "no answerable questions")
    return entries, read, dropped


def paragraph_passage(question: Question, index: int) -> Passage:
    """A MuSiQue paragraph as a passage: its title line, then its text."""
    paragraph = question.paragraphs[index]
    return Passage(f"{question.id}#{index}", f"{paragraph.title}\n{paragraph.text}")


def other_questions(count: int, own: int, rng: random.Random, load: Callable[[int], Question]) -> Iterator[Question]:
    """Questions other than `own` (indices below `count`), in random order, loaded one at a time."""
    seen = {own}
    while len(seen) < count:
        index = rng.randrange(count)
        if index not in seen:
            seen.add(index)
            yield load(index)


def paragraphs_recipe(
    question: Question, others: Iterator[Question], rng: random.Random
) -> tuple[list[Passage], Iterator[Passage]]:
    """Supporting paragraphs; then the question's other paragraphs in random order, then other questions'
    paragraphs (none twice, none under one of the question's supporting titles)."""
    indices = range(len(question.paragraphs))
    required = [paragraph_passage(question, i) for i in indices if question.paragraphs[i].supporting]
    own = [paragraph_passage(question, i) for i in indices if not question.paragraphs[i].supporting]
    support = set(question.titles(True))

    def optional() -> Iterator[Passage]:
        bodies = {p.body for p in required}
        for passage in rng.sample(own, len(own)):
            if passage.body not in bodies:
                bodies.add(passage.body)
                yield passage
        for other in others:
            for i in rng.sample(range(len(other.paragraphs)), len(other.paragraphs)):
                passage = paragraph_passage(other, i)
                if passage.body not in bodies and normalize_title(other.paragraphs[i].title) not in support:
                    bodies.add(passage.body)
                    yield passage

    return required, optional()


def sealong_recipe(
    question: Question, wikipedia: Wikipedia, rng: random.Random
) -> tuple[list[Passage], Iterator[Passage]]:
    """Each supporting title's article; then the non-supporting titles' articles (those the dump has) in random
    order, as SeaLong's `create_dataset_musique`."""
    support = question.titles(True)
    others = [key for key in question.titles(False) if key in wikipedia and key not in support]
    required = [Passage(key, wikipedia.text(key)) for key in support]
    optional = (Passage(key, wikipedia.text(key)) for key in rng.sample(others, len(others)))
    return required, optional


def sample_record(question: Question, context: str, tokens: int, target: int) -> dict[str, Any]:
    """One training sample in the kit's format, with what MuSiQue says about its evidence."""
    supporting = [p for p in question.paragraphs if p.supporting]
    return {
        "id": question.id,
        "question": question.question,
        "answer": question.answer,
        "answer_aliases": list(question.aliases),
        "context": context,
        "num_tokens": tokens,
        "target_tokens": target,
        "supporting_titles": list(dict.fromkeys(p.title for p in supporting)),
        "evidence": list(dict.fromkeys(p.text for p in supporting if p.text in context)),
    }


@dataclass
class Report:
    """What a build read, dropped and wrote (the data card's numbers)."""

    read: int
    answerable: int
    usable: int
    examined: int
    dropped: Counter


def build_samples(
    musique: Source, wikipedia: str | None, settings: BuildSettings, tokenizer: Callable[[], CountTokens]
) -> tuple[list[dict[str, Any]], Report]:
    """The samples of a build in seeded question order; `tokenizer` loads the counter once the sources are valid."""
    entries, read, dropped = scan(musique)
    answerable = len(entries)
    articles = None
    if settings.recipe == "sealong":
        if not wikipedia:
            raise UserError(f"the sealong recipe needs --wikipedia (a local JSONL/parquet dump or {WIKIPEDIA_HUB_ID})")
        articles = Wikipedia(wikipedia, {key for e in entries for key in e.support + e.others})
        kept = [e for e in entries if all(key in articles for key in e.support)]
        dropped[DROPPED_MISSING] = len(entries) - len(kept)
        entries = kept
    cost = PassageCost(tokenizer())
    order = list(range(len(entries)))
    random.Random(settings.seed).shuffle(order)

    def load(index: int) -> Question:
        entry = entries[index]
        return parse_question(musique, entry.line, musique.fetch(entry.line, entry.locator))

    samples, examined = [], 0
    with tqdm(total=min(settings.samples, len(entries)), desc=f"build ({settings.recipe})", unit=" sample") as bar:
        for index in order:
            if len(samples) == settings.samples:
                break
            examined += 1
            question = load(index)
            rng = random.Random(f"{settings.seed}:{question.id}")
            target = rng.randint(settings.min_tokens, settings.max_tokens)
            if articles is not None:
                required, optional = sealong_recipe(question, articles, rng)
            else:
                required, optional = paragraphs_recipe(question, other_questions(len(entries), index, rng, load), rng)
            made = assemble(required, optional, target, rng, cost)
            if made is None:
                dropped[DROPPED_TOO_LONG] += 1
                continue
            if made[1] < settings.min_tokens:  # the source ran out of passages before the target was reached
                dropped[DROPPED_TOO_SHORT] += 1
                continue
            samples.append(sample_record(question, *made, target))
            bar.update()
    return samples, Report(read, answerable, len(entries), examined, dropped)


def _source_line(name: str, spec: str) -> str:
    """A source as the card names it: the path or id, its SHA-256 when it is a local file, and its licence."""
    path = Path(spec).expanduser()
    digest = ""
    if path.is_file():
        sha = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sha.update(block)
        digest = f" (SHA-256 `{sha.hexdigest()}`)"
    return f"| {name} | `{spec}`{digest} | {LICENCES[name]} |"


def length_table(lengths: Sequence[int], low: int, high: int, bins: int = 8) -> list[str]:
    """A Markdown histogram of context lengths over [min(low, shortest), high] in equal-width bins."""
    counts, edges = np.histogram(lengths, bins=bins, range=(min(low, *lengths), high))
    widest = max(counts.max(), 1)
    rows = ["| policy tokens | samples | |", "|---|---|---|"]
    for count, start, stop in zip(counts, edges[:-1], edges[1:]):
        rows.append(f"| {start:,.0f}-{stop:,.0f} | {count} | {'#' * round(20 * count / widest)} |")
    return rows


RECIPE_TEXT = {
    "sealong": (
        "SeaLong's `process_data.py` (github.com/SihengLi99/SEALONG): each supporting title's full Wikipedia "
        "article, then the question's non-supporting titles' articles in random order, each added while the total "
        "stays within the drawn target; shuffled; joined as `Passage i:` blocks. Titles are matched after SeaLong's "
        "normalisation (lower case, no periods, dashes as hyphens, single spaces). Differences: the target is any "
        "whole token count in the range (SeaLong draws whole multiples of 1,024 from 4k-31k), every context stays "
        "within its target (SeaLong keeps over-long supporting articles), and `evidence` holds the supporting MuSiQue "
        "paragraphs only where the article contains them verbatim."
    ),
    "paragraphs": (
        "No Wikipedia: the question's supporting MuSiQue paragraphs, then its other paragraphs in random order, then "
        "paragraphs of randomly drawn other questions (none under one of the question's supporting titles, none "
        "twice), each added while the total stays within the drawn target; shuffled; joined as `Passage i:` blocks "
        "of a title line and the paragraph. `evidence` holds every supporting paragraph (each is in the context)."
    ),
}


def data_card(
    out: Path, samples: list[dict], report: Report, settings: BuildSettings, sources: dict[str, str], tokenizer: str
) -> str:
    """The data card of a built file: sources and licences, settings, counts, drops and the length histogram."""
    lengths = [s["num_tokens"] for s in samples]
    rows = [_source_line(name, spec) for name, spec in sources.items()]
    drops = [f"| {reason} | {count:,} |" for reason, count in sorted(report.dropped.items()) if count]
    lines = [
        f"# Data card: {out.name}",
        "",
        f"Built by `python -m longmab_utils build-data` with the `{settings.recipe}` recipe: {len(samples):,} "
        f"samples of {settings.samples:,} asked, from MuSiQue's answerable training questions.",
        "",
        "## Sources and licences",
        "",
        "| source | given as | licence |",
        "|---|---|---|",
        *rows,
        "",
        "The built file is derived from these sources: keep their attribution, and share Wikipedia text under "
        "CC BY-SA. MuSiQue's paragraphs are themselves Wikipedia text.",
        "",
        "## Recipe",
        "",
        RECIPE_TEXT[settings.recipe],
        "",
        "## Settings",
        "",
        *[f"- `{key}`: {value}" for key, value in asdict(settings).items()],
        f"- tokenizer (policy tokens): `{tokenizer}`",
        "",
        "## Counts",
        "",
        f"- MuSiQue records read: {report.read:,}; answerable: {report.answerable:,}; usable: {report.usable:,}",
        f"- questions examined in seeded order: {report.examined:,}; samples written: {len(samples):,}",
        "",
        "| dropped because | questions |",
        "|---|---|",
        *(drops or ["| (none) | 0 |"]),
        "",
        "## Lengths",
        "",
        f"Context tokens min / median / mean / max: {min(lengths):,} / {statistics.median(lengths):,} / "
        f"{statistics.fmean(lengths):,.0f} / {max(lengths):,}; every context is within its own target "
        f"(`num_tokens <= target_tokens`), drawn from {settings.min_tokens:,}-{settings.max_tokens:,}.",
        "",
        *length_table(lengths, settings.min_tokens, settings.max_tokens),
        "",
        "## Fields",
        "",
        "`id` (MuSiQue's), `question`, `answer`, `answer_aliases`, `context`, `num_tokens` (the context's policy "
        "tokens), `target_tokens` (the drawn target), `supporting_titles`, `evidence` (supporting paragraphs found "
        "verbatim in the context; the kit maps them to chunks). Read it with `data.read_samples`.",
        "",
    ]
    return "\n".join(lines)


def build_data(
    musique: str,
    wikipedia: str | None,
    settings: BuildSettings,
    tokenizer: Callable[[], CountTokens],
    tokenizer_name: str,
    out: str | os.PathLike,
    split: str = "train",
) -> dict[str, Any]:
    """Build, write the samples and their data card (both atomically), and return a summary."""
    if settings.recipe == "paragraphs" and wikipedia:
        raise UserError("--wikipedia is read only by --recipe sealong (the paragraphs recipe uses MuSiQue alone)")
    out = Path(out)
    source = Source(musique, split)
    samples, report = build_samples(source, wikipedia, settings, tokenizer)
    if not samples:
        raise UserError(
            f"no sample could be built from {musique}: {dict(report.dropped)}; adjust --min-tokens/--max-tokens or "
            "check the sources"
        )
    sources = {"MuSiQue": musique, **({"Wikipedia": wikipedia} if settings.recipe == "sealong" else {})}
    write_jsonl(out, samples)
    atomic_write_text(card_path(out), data_card(out, samples, report, settings, sources, tokenizer_name))
    lengths = [s["num_tokens"] for s in samples]
    return {
        "output": str(out),
        "card": str(card_path(out)),
        "recipe": settings.recipe,
        "samples": len(samples),
        "examined": report.examined,
        "dropped": dict(sorted(report.dropped.items())),
        "num_tokens": {"min": min(lengths), "median": statistics.median(lengths), "max": max(lengths)},
    }


def policy_counter(profile: Profile, name: str | None = None) -> Callable[[], CountTokens]:
    """A loader of the token counter of the profile's policy tokenizer, or of the tokenizer `name` names."""

    def load() -> CountTokens:
        from .models import load_tokenizer

        tokenizer = load_tokenizer(replace(profile, policy_model=name or profile.policy_model))
        tokenizer.model_max_length = sys.maxsize  # counting a long context is not feeding it to the model
        return HFTokenCounter(tokenizer)

    return load
