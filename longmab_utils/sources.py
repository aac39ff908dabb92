"""Read the sources of `build-data`: MuSiQue questions and Wikipedia articles, from local files or `datasets` ids.

Introduced with `python -m longmab_utils build-data` (docs/data.md, "Real training data"). A local JSONL file is
streamed once and read back by byte offset; a parquet file or a Hugging Face id goes through `datasets`
(memory-mapped Arrow, read back by row). Every error names the file (or id), the line (row) and the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .data import DataError, parse_jsonl_line, text_field
from .errors import UserError

LOCAL_SUFFIXES = (".jsonl", ".parquet")


def normalize_title(title: str) -> str:
    """SeaLong's title key: lower case, no periods, en and em dashes as hyphens, runs of spaces as one."""
    title = title.lower().replace(".", "").replace("\u2013", "-").replace("\u2014", "-")
    return re.sub(r"\s+", " ", title).strip()


def check_json_lines(path: Path) -> None:
    """Refuse an empty file and a JSON array (how some projects ship MuSiQue) with errors that say so."""
    with path.open("rb") as handle:
        head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        raise DataError(path, None, None, "empty file (expected JSON Lines: one MuSiQue record per line)")
    if head.startswith(b"["):
        raise DataError(
            path,
            1,
            None,
            'a JSON array, not JSON Lines: write one record per line, e.g. python -c "import json, sys; '
            '[print(json.dumps(r)) for r in json.load(open(sys.argv[1]))]" FILE > FILE.jsonl',
        )


class Source:
    """Records of a local JSONL or parquet file or a `datasets` id (`owner/name[:config]`), read once in order and
    fetched again by locator (a byte offset or a row)."""

    def __init__(self, spec: str, split: str = "train"):
        self.spec, self.path = spec, Path(spec).expanduser()
        self.dataset = None
        if self.path.suffix == ".parquet":
            if not self.path.is_file():
                raise DataError(self.path, None, None, "file not found")
            self.dataset = _load(self.spec, "parquet", data_files=str(self.path), split="train")
        elif self.path.suffix in (".jsonl", ".json") or self.path.exists():
            if not self.path.is_file():
                raise DataError(self.path, None, None, "file not found (a .jsonl or .parquet file)")
            check_json_lines(self.path)
        else:
            name, _, config = spec.partition(":")
            self.dataset = _load(self.spec, name, config or None, split=split)

    def __str__(self) -> str:
        return self.spec

    def records(self, columns: list[str] | None = None) -> Iterator[tuple[int, int, dict[str, Any]]]:
        """Yield (line or row number, locator, record), reading only `columns` where the format allows."""
        if self.dataset is None:
            with self.path.open("rb") as handle:
                offset = 0
                for number, raw in enumerate(handle, start=1):
                    record = parse_jsonl_line(self.path, number, raw)
                    if record is not None:
                        yield number, offset, record
                    offset += len(raw)
            return
        missing = [c for c in columns or () if c not in self.dataset.column_names]
        if missing:
            raise DataError(self.spec, None, missing[0], f"missing (columns: {', '.join(self.dataset.column_names)})")
        table = self.dataset.select_columns(columns) if columns else self.dataset
        row = 0
        for batch in table.iter(batch_size=1000):
            keys = list(batch)
            for values in zip(*(batch[k] for k in keys)):
                yield row + 1, row, dict(zip(keys, values))
                row += 1

    def fetch(self, line: int, locator: int) -> dict[str, Any]:
        """The record that `records` yielded with this line number and locator."""
        if self.dataset is not None:
            return self.dataset[locator]
        with self.path.open("rb") as handle:
            handle.seek(locator)
            return parse_jsonl_line(self.path, line, handle.readline()) or {}


def _load(spec: str, *args: Any, **kwargs: Any) -> Any:
    """`datasets.load_dataset`, with a failure (no network, unknown id) turned into a UserError."""
    import datasets

    try:
        return datasets.load_dataset(*args, **kwargs)
    except Exception as error:  # datasets raises many types: connection, missing config, bad file
        raise UserError(
            f"could not load {spec!r} through `datasets` ({type(error).__name__}: {error}); give a local "
            f".jsonl or .parquet file, or an id such as owner/name[:config] with network access"
        ) from None


@dataclass(frozen=True)
class Paragraph:
    """One MuSiQue paragraph."""

    title: str
    text: str
    supporting: bool


@dataclass(frozen=True)
class Question:
    """One MuSiQue question, validated."""

    id: str
    question: str
    answer: str
    aliases: tuple[str, ...]
    answerable: bool
    paragraphs: tuple[Paragraph, ...]

    def titles(self, supporting: bool) -> list[str]:
        """Normalised titles of the supporting (or the other) paragraphs, each once, in paragraph order."""
        keys = [normalize_title(p.title) for p in self.paragraphs if p.supporting == supporting]
        return list(dict.fromkeys(keys))


def _flag(source: Any, line: int, record: dict, field: str, default: bool | None = None) -> bool:
    """record[field] as a bool, or a DataError naming the field."""
    if field not in record and default is not None:
        return default
    value = record.get(field)
    if not isinstance(value, bool):
        raise DataError(source, line, field, f"expected true or false, got {type(value).__name__}")
    return value


def parse_question(source: Any, line: int, record: dict) -> Question:
    """A MuSiQue record (`id`, `question`, `answer`, `answer_aliases`, `answerable`, `paragraphs` with `title`,
    `paragraph_text`, `is_supporting`) as a Question, or a DataError naming file, line and field."""
    ident = text_field(source, line, record, "id")
    aliases = record.get("answer_aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise DataError(source, line, "answer_aliases", "expected a list of strings")
    paragraphs = record.get("paragraphs")
    if not isinstance(paragraphs, list) or not paragraphs:
        raise DataError(source, line, "paragraphs", "expected a non-empty list of paragraphs")
    parsed = []
    for i, paragraph in enumerate(paragraphs):
        if not isinstance(paragraph, dict):
            raise DataError(source, line, f"paragraphs[{i}]", f"expected an object, got {type(paragraph).__name__}")
        try:
            title = text_field(source, line, paragraph, "title").strip()
            text = text_field(source, line, paragraph, "paragraph_text").strip()
            supporting = _flag(source, line, paragraph, "is_supporting")
        except DataError as error:
            raise DataError(error.path, line, f"paragraphs[{i}].{error.field}", error.problem) from None
        parsed.append(Paragraph(title, text, supporting))
    question = Question(
        ident,
        text_field(source, line, record, "question").strip(),
        text_field(source, line, record, "answer").strip(),
        tuple(aliases),
        _flag(source, line, record, "answerable", default=True),
        tuple(parsed),
    )
    if question.answerable and not any(p.supporting for p in parsed):
        raise DataError(source, line, "paragraphs", "an answerable question needs at least one is_supporting paragraph")
    return question


class Wikipedia:
    """Articles (`title`, `text`) of a Wikipedia dump, indexed by normalised title for the titles asked for."""

    def __init__(self, spec: str, wanted: set[str]):
        self.source = Source(spec)
        self.where: dict[str, tuple[int, int]] = {}
        for line, locator, record in tqdm(self.source.records(["title"]), desc="index Wikipedia titles", unit=" art"):
            key = normalize_title(text_field(self.source, line, record, "title"))
            if key in wanted and key not in self.where:  # the first article of a title wins
                self.where[key] = (line, locator)

    def __contains__(self, key: str) -> bool:
        return key in self.where

    def text(self, key: str) -> str:
        """The article text of a normalised title that the index holds."""
        line, locator = self.where[key]
        return text_field(self.source, line, self.source.fetch(line, locator), "text").strip()
