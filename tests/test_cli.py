"""The probe and rollout commands end to end with the real bundled models (`smoke` profile)."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from longmab_utils import __main__ as cli
from longmab_utils import generation, pipeline
from longmab_utils.config import PROFILES, get_profile
from longmab_utils.course import reproduce
from longmab_utils.data import read_json, read_records

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}


# The resume and run-folder tests need no pairs: a cheaper smoke (the course test runs `smoke` as it is).
CHEAP = ("--set", "max_samples=3", "--set", "rounds=2", "--set", "max_new_tokens=16")


def command(step: str, run_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "longmab_utils",
        step,
        "--profile",
        "smoke",
        "--run-dir",
        str(run_dir),
        *CHEAP,
        *extra,
    ]


# Runs the CLI in a fresh interpreter, then reports on its last stdout line which heavy modules it imported.
TRACED_CLI = """
import json, sys
from longmab_utils.__main__ import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
print(json.dumps(sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules)))
sys.exit(code)
"""


def traced(*argv: str) -> tuple[int, str, str, list[str]]:
    """Exit status, stdout, stderr and the heavy modules imported by `python -m longmab_utils ARGV`."""
    done = subprocess.run([sys.executable, "-c", TRACED_CLI, *argv], cwd=ROOT, env=ENV, capture_output=True, text=True)
    *lines, heavy = done.stdout.splitlines()
    return done.returncode, "\n".join(lines), done.stderr, json.loads(heavy)


def test_help_and_settings_do_not_import_torch():
    code, out, _, heavy = traced("--help")
    assert code == 0 and "settings" in out and heavy == []
    code, out, _, heavy = traced("settings", "--profile", "smoke", "--set", "dpo.beta=0.25", "--set", "rounds=3")
    assert code == 0 and heavy == []
    assert "rounds = 3\n    Rollout rounds per sample" in out and "dpo.beta = 0.25\n    DPO temperature" in out


@pytest.mark.parametrize(
    ("kind", "setting", "expected"),
    [
        ("choice", "policy=ucbb", ["policy=ucbb", "'ucb', 'greedy'"]),
        ("choice", "dtype=float33", ["dtype=float33", "'auto', 'float32', 'float16' or 'bfloat16'"]),
        ("range", "top_k=0", ["top_k=0", "greater than or equal to 1"]),
        ("range", "max_samples=0", ["max_samples=0", "none for all"]),
        ("type", "rounds=many", ["rounds=many", "valid integer"]),
        ("unknown key", "roundz=3", ["'roundz'", "did you mean rounds?"]),
        ("unknown key", "dpo.nope=1", ["'dpo.nope'", "dpo.seed"]),
        ("bad nesting", "dpo=3", ["dpo=3", "group of settings", "dpo.beta"]),
        ("bad nesting", "beta=0.1", ["'beta'", "did you mean dpo.beta?"]),
    ],
)
def test_bad_settings_exit_2_with_one_line_before_any_model_loads(tmp_path, kind, setting, expected):
    code, _, err, heavy = traced("probe", "--profile", "smoke", "--run-dir", str(tmp_path), "--set", setting)
    assert code == 2, kind
    assert heavy == [], f"{kind}: {heavy} imported before the settings were checked"
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert all(part in err for part in expected), err


@pytest.fixture
def no_models(monkeypatch):
    """Every way the CLI loads a model or tokenizer raises instead."""
    import transformers

    from longmab_utils import models

    def refuse(*_args, **_kwargs):
        raise AssertionError("a model or tokenizer was loaded before the input was checked")

    for owner, name in [
        (generation, "build_generator"),
        (models, "load_policy"),
        (models, "load_embedder"),
        (models, "load_tokenizer"),
        (transformers.AutoTokenizer, "from_pretrained"),
        (transformers.AutoModelForCausalLM, "from_pretrained"),
    ]:
        monkeypatch.setattr(owner, name, refuse)


def test_bad_data_is_rejected_before_any_model_loads(tmp_path, no_models, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "question": "q?", "answer": "x", "context": "c."}\n{"id": "b", "question": "q?"}\n')
    assert cli.main(["probe", "--profile", "smoke", "--run-dir", str(tmp_path / "run"), "--data", str(bad)]) == 2
    error = capsys.readouterr().err
    assert "bad.jsonl" in error and "line 2" in error and "answer" in error


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["rollout"], "priors.jsonl is missing; run the probe step first"),
        (["pairs"], "rollout.jsonl is missing; run the rollout step first"),
        (["train"], "pairs.jsonl is missing; run the pairs step first"),
        (["merge", "--shards", "0"], "--shards 0: give the N of the `rollout --shard I/N` runs"),
        (["evaluate", "--data", "/nonexistent"], "/nonexistent does not exist; pass --data"),
    ],
)
def test_missing_artifacts_and_bad_arguments_are_one_line_user_errors(tmp_path, no_models, capsys, argv, expected):
    assert cli.main([*argv, "--profile", "smoke", "--run-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert expected in error and error.count("\n") == 1


def test_other_errors_keep_their_traceback(tmp_path, monkeypatch):
    def broken(*_args):
        raise ValueError("a bug deep inside a library")

    monkeypatch.setattr(pipeline, "pairs", broken)
    with pytest.raises(ValueError, match="a bug deep inside"):
        cli.main(["pairs", "--profile", "smoke", "--run-dir", str(tmp_path)])


def test_reproduce_cell_timeout_defaults_to_the_profile(tmp_path, monkeypatch):
    timeouts = []
    monkeypatch.setattr(reproduce, "check_kernel", lambda: None)
    monkeypatch.setattr(reproduce, "execute", lambda step, parameters, timeout: timeouts.append(timeout) or 0.0)
    assert cli.main(["reproduce", "--profile", "smoke", "--run-dir", str(tmp_path / "a")]) == 0
    assert cli.main(["reproduce", "--profile", "smoke", "--run-dir", str(tmp_path / "b"), "--cell-timeout", "7"]) == 0
    assert set(timeouts) == {PROFILES["smoke"].cell_timeout, 7} and len(timeouts) == 2 * len(reproduce.COURSE)
    assert read_json(tmp_path / "b" / "manifest.json")["parameters"]["cell_timeout"] == 7
    assert cli.main(["reproduce", "--profile", "smoke", "--cell-timeout", "0"]) == 2


@pytest.fixture(scope="module")
def probed(tmp_path_factory) -> Path:
    """A smoke probe of a copy of the training file, deleted afterwards: later steps read only the run folder."""
    run_dir, data = tmp_path_factory.mktemp("probe"), tmp_path_factory.mktemp("data") / "train.jsonl"
    shutil.copy(ROOT / PROFILES["smoke"].data, data)
    subprocess.run(command("probe", run_dir, "--data", str(data)), cwd=ROOT, env=ENV, check=True, capture_output=True)
    data.unlink()
    return run_dir


@pytest.mark.models
def test_probe_writes_priors_for_every_kept_sample(probed):
    records = read_records(probed / "priors.jsonl")
    assert len(records) == 3
    for record in records:
        assert len(record["priors"]) == len(record["chunks"]) > 1
        assert all(-1 <= p <= 1 for p in record["priors"])
        assert record["probe"] and record["evidence_chunks"]


# Runs the CLI with a JSONL appender that writes the first record whole, then half of the second, and dies there.
DIES_IN_SECOND_RECORD = """
import os, signal, sys
from longmab_utils import data
from longmab_utils.__main__ import main
append, written = data.JsonlAppender.append, []
def append_then_die(self, record):
    if written:
        line = data._dumps(record)
        self._handle.write(line[: len(line) // 2])
        self._handle.flush()
        os.fsync(self._handle.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    append(self, record)
    written.append(record)
data.JsonlAppender.append = append_then_die
sys.exit(main(sys.argv[1:]))
"""


def rollout_into(probed: Path, run_dir: Path, *extra: str, runner: str | None = None) -> subprocess.Popen:
    """Start a rollout of the probed samples in a new run folder (with `runner`: that script instead of the CLI)."""
    run_dir.mkdir()
    for artifact in ("samples.jsonl", "priors.jsonl"):
        shutil.copy(probed / artifact, run_dir / artifact)
    args = command("rollout", run_dir, *extra)
    if runner:
        args[1:3] = ["-c", runner]
    out = subprocess.DEVNULL
    return subprocess.Popen(args, cwd=ROOT, env=ENV, stdout=out, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen) -> None:
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err.decode()


@pytest.fixture(scope="module")
def rolled(probed, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("rolled") / "run"
    finish(rollout_into(probed, run_dir))
    return run_dir


@pytest.mark.models
def test_rollout_is_deterministic_and_survives_sigkill(probed, rolled, tmp_path):
    reference = (rolled / "rollout.jsonl").read_bytes()
    assert len(reference.splitlines()) == 3
    finish(rollout_into(probed, tmp_path / "again"))
    assert (tmp_path / "again" / "rollout.jsonl").read_bytes() == reference

    # One sample per batch, so that the samples finish one by one (smoke's batch of 6 writes all three at once);
    # the resumed run takes the other two in one batch: the batch changes nothing that is recorded.
    # The process kills itself (SIGKILL) half-way through writing the second sample: no race with a poller.
    killed = rollout_into(probed, tmp_path / "killed", "--set", "rollout_batch=1", runner=DIES_IN_SECOND_RECORD)
    _, err = killed.communicate(timeout=600)
    assert killed.returncode == -signal.SIGKILL, err.decode()
    partial = tmp_path / "killed" / "rollout.jsonl"
    first, torn = partial.read_bytes().split(b"\n")
    whole = reference.split(b"\n")
    assert first == whole[0] and whole[1].startswith(torn) and 0 < len(torn) < len(whole[1])  # one line and a half
    resumed = subprocess.run(command("rollout", tmp_path / "killed"), cwd=ROOT, env=ENV, capture_output=True)
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert partial.read_bytes() == reference


@pytest.mark.models
def test_pairs_step_reads_only_the_run_folder_from_another_directory(rolled, tmp_path):
    relative = os.path.relpath(rolled, tmp_path)
    done = subprocess.run(command("pairs", Path(relative)), cwd=tmp_path, env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout[done.stdout.index("{") :])
    assert summary["samples"] == 3 and summary["pairs"] + sum(summary["skipped"].values()) == 3
    for name in ("pairs.jsonl", "pairs_trl.jsonl", "pairs_summary.json", "llamafactory/train_dpo.yaml"):
        assert (rolled / name).exists(), name


MEASURED = {"trainable_params": 1, "total_params": 2, "peak_memory_gb": 0.1, "peak_memory_of": "test"}
"""What a real `train_dpo` measures, for the fakes."""


def test_train_without_a_logged_loss_says_why(tmp_path, monkeypatch, capsys):
    from longmab_utils import dpo

    def trained(*args):
        (tmp_path / "adapter").mkdir()
        (tmp_path / "adapter" / "dpo_settings.json").write_text(json.dumps(dataclasses.asdict(args[3])))
        return {"log": [{"step": 2, "train_loss": 0.69}], "train_pairs": 2, "val_pairs": 0, "checks": {}, **MEASURED}

    (tmp_path / "pairs.jsonl").write_text("{}\n")
    monkeypatch.setattr(dpo, "train_dpo", trained)
    summary = pipeline.train(get_profile("smoke", {"dpo.logging_steps": "50"}), tmp_path)
    assert summary["steps"] == 0 and summary["first_loss"] is None and summary["last_loss"] is None
    assert "dpo.logging_steps=50 exceeds the training steps" in capsys.readouterr().out
