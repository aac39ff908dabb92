"""Reading, validating and writing JSONL: every bad input names file, line and field, and writes nothing."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from longmab_utils.data import (
    DataError,
    JsonlAppender,
    import_samples,
    read_longbench,
    read_records,
    read_samples,
    write_json,
    write_jsonl,
)

GOOD = {"id": 1, "question": "Who?", "answer": "Ann", "context": "Ann wrote it."}


def write_lines(path, lines, encoding="utf-8"):
    path.write_bytes("\n".join(lines).encode(encoding) + b"\n")
    return path


def good_line(**changes):
    record = dict(GOOD, **changes)
    return json.dumps({k: v for k, v in record.items() if v is not ...})


MALFORMED = {
    "missing field": ([good_line(), good_line(id=2, answer=...)], 2, "answer", "missing"),
    "wrong type": ([good_line(), good_line(id=2, context=["a"])], 2, "context", "expected a string, got list"),
    "empty context": ([good_line(context="  ")], 1, "context", "empty"),
    "empty question": ([good_line(question="")], 1, "question", "empty"),
    "bad id type": ([good_line(id=1.5)], 1, "id", "expected an int or a string"),
    "duplicate id": ([good_line(), good_line(id="1")], 2, "id", "duplicate id '1' (first seen on line 1)"),
    "invalid json": ([good_line(), "{not json"], 2, None, "invalid JSON"),
    "not an object": (["[1, 2]"], 1, None, "expected a JSON object, got list"),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_malformed_input_names_file_line_field_and_writes_nothing(tmp_path, case):
    lines, line, field, problem = MALFORMED[case]
    source = write_lines(tmp_path / "train.jsonl", lines)
    existing = tmp_path / "existing.jsonl"
    existing.write_text("keep me\n")
    with pytest.raises(DataError) as info:
        import_samples(source, existing)
    with pytest.raises(DataError):
        import_samples(source, tmp_path / "new.jsonl")
    error = info.value
    assert (error.path, error.line, error.field) == (str(source), line, field)
    assert str(source) in str(error) and f"line {line}" in str(error) and problem in str(error)
    if field:
        assert f"field '{field}'" in str(error)
    assert existing.read_text() == "keep me\n"
    assert not (tmp_path / "new.jsonl").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.jsonl", "train.jsonl"], "no temp files left"


def test_non_utf8_bytes_are_reported_with_their_line(tmp_path):
    source = tmp_path / "train.jsonl"
    source.write_bytes(
        good_line().encode() + b"\n" + b'{"id": 2, "question": "Q", "answer": "A", "context": "caf\xe9"}' + b"\n"
    )
    with pytest.raises(DataError, match=r"line 2: not valid UTF-8"):
        read_samples(source)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_samples(tmp_path / "absent.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(DataError, match="no samples"):
        read_samples(tmp_path / "empty.jsonl")


def test_bom_blank_lines_input_alias_and_string_ids(tmp_path):
    source = tmp_path / "train.jsonl"
    alias = json.dumps({"id": 7, "input": "Why?", "answer": "So", "context": "Because.", "evidence": ["Because."]})
    source.write_bytes(b"\xef\xbb\xbf" + good_line().encode() + b"\n\n   \n" + alias.encode() + b"\n")
    samples = read_samples(source)
    assert [s["id"] for s in samples] == ["1", "7"]
    assert samples[1]["question"] == "Why?" and "input" not in samples[1]
    assert samples[1]["evidence"] == ["Because."], "extra fields are kept"
    assert import_samples(source, tmp_path / "out.jsonl") == 2
    assert read_records(tmp_path / "out.jsonl") == samples


def test_longbench_files(tmp_path):
    source = write_lines(
        tmp_path / "musique.jsonl",
        [
            json.dumps({"input": "Q1", "context": "C1", "answers": ["A"]}),
            json.dumps({"input": "Q2", "context": "C2", "answers": ["B", "b"], "_id": "x"}),
        ],
    )
    items = read_longbench(source)
    assert [i["id"] for i in items] == ["0", "x"]  # LongBench's `_id` is kept, a line without one gets its position
    assert items[1]["answers"] == ["B", "b"]
    bad = write_lines(tmp_path / "bad.jsonl", [json.dumps({"input": "Q", "context": "C", "answers": "A"})])
    with pytest.raises(DataError, match=r"bad.jsonl, line 1: field 'answers': expected a non-empty list of non-empty"):
        read_longbench(bad)


# One line of each published format, with the fields the publishers' files carry.
LONGBENCH_LINE = {
    "input": "Which river flows through Vell?",
    "context": "Passage 1: Vell stands on the Pava.",
    "answers": ["Pava"],
    "length": 7,
    "dataset": "hotpotqa",
    "language": "en",
    "all_classes": None,
    "_id": "3f1c",
}
INFINITEBENCH_LINE = {
    "id": 7,
    "context": "Chapter 1. Mara left Vell at dawn.",
    "input": "Where did Mara leave at dawn?",
    "answer": ["Vell"],
    "options": [],
}


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
@pytest.mark.parametrize(
    ("record", "answers", "ids"), [(LONGBENCH_LINE, ["Pava"], ["3f1c"]), (INFINITEBENCH_LINE, ["Vell"], ["7"])]
)
def test_published_evaluation_formats_read_without_conversion(tmp_path, suffix, record, answers, ids):
    path = tmp_path / f"set{suffix}"
    if suffix == ".parquet":
        pd = pytest.importorskip("pandas")
        pd.DataFrame([record]).to_parquet(path)
    else:
        write_lines(path, [json.dumps(record)])
    (item,) = read_longbench(path)
    assert [item["id"]] == ids and item["answers"] == answers
    assert item["input"] == record["input"] and item["context"] == record["context"]


def test_a_chinese_longbench_set_is_refused_naming_file_line_and_field(tmp_path):
    lines = [json.dumps(LONGBENCH_LINE), json.dumps({**LONGBENCH_LINE, "_id": "9a", "language": "zh"})]
    with pytest.raises(DataError, match=r"zh.jsonl, line 2: field 'language': zh: Chinese items need LongBench"):
        read_longbench(write_lines(tmp_path / "zh.jsonl", lines))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"answer": None}, r"line 1: field 'answer': expected a non-empty list"),
        ({"answer": []}, r"line 1: field 'answer': expected a non-empty list"),
        ({"options": ["A", "B"]}, r"line 1: field 'options': multiple-choice items are not supported"),
        ({"options": "A"}, r"line 1: field 'options': expected a list, got str"),
        ({"input": ""}, r"line 1: field 'input': empty"),
    ],
)
def test_infinitebench_errors_name_file_line_and_field(tmp_path, changes, message):
    path = write_lines(tmp_path / "ib.jsonl", [json.dumps({**INFINITEBENCH_LINE, **changes})])
    with pytest.raises(DataError, match=r"ib.jsonl, " + message):
        read_longbench(path)
    missing = write_lines(tmp_path / "none.jsonl", [json.dumps({"input": "Q", "context": "C"})])
    with pytest.raises(DataError, match=r"none.jsonl, line 1: field 'answers': missing \(LongBench"):
        read_longbench(missing)


def test_infinitebench_string_answer_becomes_a_list_and_parquet_errors_name_the_row(tmp_path):
    path = write_lines(tmp_path / "ib.jsonl", [json.dumps({**INFINITEBENCH_LINE, "answer": "Vell"})])
    assert read_longbench(path)[0]["answers"] == ["Vell"]
    pd = pytest.importorskip("pandas")
    rows = [INFINITEBENCH_LINE, {**INFINITEBENCH_LINE, "id": 8, "context": " "}]
    pd.DataFrame(rows).to_parquet(tmp_path / "ib.parquet")
    with pytest.raises(DataError, match=r"ib.parquet, row 2: field 'context': empty"):
        read_longbench(tmp_path / "ib.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match=r"junk.parquet: not a readable parquet file"):
        read_longbench(tmp_path / "junk.parquet")


def test_atomic_write_keeps_the_old_file_when_serialization_fails(tmp_path):
    target = tmp_path / "out.jsonl"
    write_jsonl(target, [{"a": 1}])
    with pytest.raises(TypeError):
        write_jsonl(target, [{"a": 2}, {"b": object()}])
    assert read_records(target) == [{"a": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]
    write_json(tmp_path / "m.json", {"é": 1})
    assert json.loads((tmp_path / "m.json").read_text(encoding="utf-8")) == {"é": 1}


def test_appender_survives_a_kill_and_drops_a_torn_line(tmp_path):
    target = tmp_path / "rollout.jsonl"
    script = (
        "import sys, time\nfrom longmab_utils.data import JsonlAppender\n"
        f"with JsonlAppender({str(target)!r}) as out:\n"
        "    for i in range(10**6):\n        out.append({'i': i, 'pad': 'x' * 500})\n        time.sleep(0.001)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while not target.exists() or target.stat().st_size < 20_000:
        assert time.monotonic() < deadline and child.poll() is None, "the writer never got going"
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    records = read_records(target)
    assert [r["i"] for r in records] == list(range(len(records)))
    with target.open("a") as handle:
        handle.write('{"i": "torn')
    with JsonlAppender(target) as out:
        out.append({"i": len(records)})
    assert [r["i"] for r in read_records(target)] == list(range(len(records) + 1))
