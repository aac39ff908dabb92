"""Read, validate and write the kit's files (training samples, LongBench/InfiniteBench sets, run artifacts).

Introduced in notebook 01. Every validation error names the file, the line and the field, and every
write is atomic or appends whole lines, so a crash never leaves a half-written artifact.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from .errors import UserError


class DataError(UserError):
    """Bad input: carries the file, the 1-based line (a parquet file's row) number and the field at fault."""

    def __init__(self, path: str | os.PathLike, line: int | None, field: str | None, problem: str):
        self.path, self.line, self.field, self.problem = str(path), line, field, problem
        unit = "row" if self.path.endswith(".parquet") else "line"
        where = self.path if line is None else f"{self.path}, {unit} {line}"
        what = problem if field is None else f"field '{field}': {problem}"
        super().__init__(f"{where}: {what}")


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line of a UTF-8 JSONL file (a BOM is allowed)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, None, "file not found")
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            record = parse_jsonl_line(path, number, raw)
            if record is not None:
                yield number, record


def parse_jsonl_line(path: str | os.PathLike, number: int, raw: bytes) -> dict[str, Any] | None:
    """One raw line of a JSONL file as an object (None for a blank line), or a DataError naming file and line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(path, number, None, f"not valid UTF-8 (byte {error.start})") from None
    if number == 1:
        text = text.removeprefix("\ufeff")
    if not text.strip():
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(path, number, None, f"invalid JSON ({error.msg}, column {error.colno})") from None
    if not isinstance(record, dict):
        raise DataError(path, number, None, f"expected a JSON object, got {type(record).__name__}")
    return record


def text_field(path: str | os.PathLike, line: int, record: dict, field: str, *, allow_empty: bool = False) -> str:
    """Return record[field] as a string, or raise a DataError naming the field."""
    if field not in record:
        raise DataError(path, line, field, "missing")
    value = record[field]
    if not isinstance(value, str):
        raise DataError(path, line, field, f"expected a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise DataError(path, line, field, "empty")
    return value


def _id_field(path: Path, line: int, record: dict, seen: dict[str, int], field: str = "id") -> str:
    """Return the record's id (`field`) as a string (ints allowed), rejecting duplicates."""
    if field not in record:
        raise DataError(path, line, field, "missing")
    value = record[field]
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DataError(path, line, field, f"expected an int or a string, got {type(value).__name__}")
    key = str(value)
    if key in seen:
        raise DataError(path, line, field, f"duplicate id {key!r} (first seen on line {seen[key]})")
    seen[key] = line
    return key


def read_samples(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read training samples (`id`, `question` or its alias `input`, `answer`, `context`); extra fields are kept."""
    path = Path(path)
    samples, seen = [], {}
    for line, record in iter_jsonl(path):
        sample = dict(record)
        sample["id"] = _id_field(path, line, record, seen)
        if "question" not in record and "input" in record:
            sample["question"] = text_field(path, line, record, "input")
            del sample["input"]
        else:
            sample["question"] = text_field(path, line, record, "question")
        sample["answer"] = text_field(path, line, record, "answer")
        sample["context"] = text_field(path, line, record, "context")
        samples.append(sample)
    if not samples:
        raise DataError(path, None, None, "no samples")
    return samples


def iter_parquet(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (row number, object) for each row of a parquet file, with list columns as plain lists."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, None, "file not found")
    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a damaged or foreign file
        raise DataError(path, None, None, f"not a readable parquet file ({error})") from None
    rows = frame.to_json(orient="records", lines=True, force_ascii=False).splitlines() if len(frame) else []
    for number, text in enumerate(rows, start=1):
        yield number, json.loads(text)


def _answers_field(path: Path, line: int, record: dict) -> list[str]:
    """The gold answers: LongBench's `answers` list, or InfiniteBench's `answer` (a list, or one string)."""
    field = "answers" if "answers" in record or "answer" not in record else "answer"
    if field not in record:
        raise DataError(path, line, field, "missing (LongBench `answers` or InfiniteBench `answer`)")
    answers = record[field]
    if field == "answer" and isinstance(answers, str):
        answers = [answers]
    if not isinstance(answers, list) or not answers or not all(isinstance(a, str) and a.strip() for a in answers):
        raise DataError(path, line, field, "expected a non-empty list of non-empty strings")
    return answers


def _check_options(path: Path, line: int, record: dict) -> None:
    """InfiniteBench's `options` must be empty: the kit scores free-form answers, not multiple choice."""
    options = record.get("options") or []  # a parquet export may hold null for "no options"
    if not isinstance(options, list):
        raise DataError(path, line, "options", f"expected a list, got {type(options).__name__}")
    if options:
        raise DataError(
            path, line, "options", "multiple-choice items are not supported (free-form QA such as longbook_qa_eng is)"
        )


def read_longbench(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read an evaluation file as published, JSONL or parquet: LongBench or InfiniteBench free-form QA.

    LongBench items have `input`, `context` and `answers` (a list); InfiniteBench's `longbook_qa_eng`
    items have `id`, `input`, `context`, `answer` (a list) and `options` (empty). Every item comes back
    with `id` (the source's `id`, else LongBench's `_id`, else its position), `input`, `context` and `answers`;
    other fields are kept. Chinese items (LongBench's `language: zh`) are refused: they need LongBench's Chinese
    scoring, which the kit does not implement.
    """
    path = Path(path)
    records = iter_parquet(path) if path.suffix == ".parquet" else iter_jsonl(path)
    items, seen = [], {}
    for line, record in records:
        item = dict(record)
        field = next((name for name in ("id", "_id") if name in record), None)
        item["id"] = _id_field(path, line, record if field else {"id": str(len(items))}, seen, field or "id")
        if record.get("language") == "zh":
            raise DataError(
                path,
                line,
                "language",
                "zh: Chinese items need LongBench's Chinese F1 (qa_f1_zh_score), which the "
                "kit does not implement; evaluate English sets only",
            )
        item["input"] = text_field(path, line, record, "input")
        item["context"] = text_field(path, line, record, "context")
        item["answers"] = _answers_field(path, line, record)
        _check_options(path, line, record)
        items.append(item)
    if not items:
        raise DataError(path, None, None, "no items")
    return items


def import_samples(source: str | os.PathLike, target: str | os.PathLike) -> int:
    """Validate a training file and write it in the kit's spelling (`question`, string ids); returns the count.

    Nothing is written unless the whole source file is valid.
    """
    samples = read_samples(source)
    write_jsonl(target, samples)
    return len(samples)


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a run artifact (JSONL written by the kit) without schema checks beyond valid JSON objects."""
    return [record for _, record in iter_jsonl(path)]


def _dumps(record: Any) -> str:
    """Serialize one record on one line, keeping non-ASCII text readable."""
    return json.dumps(record, ensure_ascii=False)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write text to path through a temporary file and a rename, so readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False)
    try:
        with handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def write_jsonl(path: str | os.PathLike, records: Iterable[Any]) -> None:
    """Atomically write records as JSONL (one object per line, UTF-8, trailing newline)."""
    atomic_write_text(path, "".join(_dumps(record) + "\n" for record in records))


def read_json(path: str | os.PathLike) -> Any:
    """Read one JSON document, naming the file in any error."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(path, error.lineno, None, f"invalid JSON: {error.msg}") from None


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write one indented JSON document."""
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


class JsonlAppender:
    """Append whole records to a JSONL file; each record is one write, flushed and fsynced.

    A process killed between records leaves only complete lines; a torn last line from a crash
    mid-write is cut off when the appender reopens the file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_torn_tail()
        self._handle: TextIO = self.path.open("a", encoding="utf-8")

    def _drop_torn_tail(self) -> None:
        """Truncate the file after its last newline, removing a partial record left by a crash."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep != len(data):
            with self.path.open("r+b") as handle:
                handle.truncate(keep)

    def append(self, record: Any) -> None:
        """Write one record as a single line and force it to disk."""
        self._handle.write(_dumps(record) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        """Close the file."""
        self._handle.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
