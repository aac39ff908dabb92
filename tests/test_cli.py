"""The probe and rollout commands end to end with the real bundled models (`smoke` profile)."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from longmab_utils import __main__ as cli
from longmab_utils import generation, pipeline
from longmab_utils.config import get_profile
from longmab_utils.data import read_records

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}


def command(step: str, run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "longmab_utils", step, "--profile", "smoke", "--run-dir", str(run_dir), *extra]


def no_models(*_args, **_kwargs):
    raise AssertionError("a model was loaded before the input was checked")


def test_bad_data_is_rejected_before_any_model_loads(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(generation, "build_generator", no_models)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "question": "q?", "answer": "x", "context": "c."}\n{"id": "b", "question": "q?"}\n')
    assert cli.main(["probe", "--profile", "smoke", "--run-dir", str(tmp_path / "run"), "--data", str(bad)]) == 2
    error = capsys.readouterr().err
    assert "bad.jsonl" in error and "line 2" in error and "answer" in error


def test_unknown_setting_and_missing_priors_are_clear_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(generation, "build_generator", no_models)
    assert cli.main(["rollout", "--profile", "smoke", "--run-dir", str(tmp_path), "--set", "roundz=3"]) == 2
    assert "roundz" in capsys.readouterr().err
    assert cli.main(["rollout", "--profile", "smoke", "--run-dir", str(tmp_path)]) == 2
    assert "priors.jsonl is missing" in capsys.readouterr().err


@pytest.fixture(scope="module")
def probed(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("probe")
    subprocess.run(command("probe", run_dir), cwd=ROOT, env=ENV, check=True, capture_output=True)
    return run_dir


@pytest.mark.models
def test_probe_writes_priors_for_every_kept_sample(probed):
    records = read_records(probed / "priors.jsonl")
    assert len(records) == 3
    for record in records:
        assert len(record["priors"]) == len(record["chunks"]) > 1
        assert all(-1 <= p <= 1 for p in record["priors"])
        assert record["probe"] and record["evidence_chunks"]


def rollout_into(probed: Path, run_dir: Path) -> subprocess.Popen:
    run_dir.mkdir()
    shutil.copy(probed / "priors.jsonl", run_dir / "priors.jsonl")
    out = subprocess.DEVNULL
    return subprocess.Popen(command("rollout", run_dir), cwd=ROOT, env=ENV, stdout=out, stderr=subprocess.PIPE)


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

    killed = rollout_into(probed, tmp_path / "killed")
    partial = tmp_path / "killed" / "rollout.jsonl"
    while killed.poll() is None and not (partial.exists() and partial.read_bytes().count(b"\n") >= 1):
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, "the rollout finished before it could be killed"
    assert partial.read_bytes() != reference
    resumed = subprocess.run(command("rollout", tmp_path / "killed"), cwd=ROOT, env=ENV, capture_output=True)
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert partial.read_bytes() == reference


@pytest.mark.models
def test_pairs_step_reads_the_rollout_and_writes_every_export(rolled):
    summary = pipeline.pairs(get_profile("smoke"), rolled)
    assert summary["samples"] == 3 and summary["pairs"] + sum(summary["skipped"].values()) == 3
    for name in ("pairs.jsonl", "pairs_trl.jsonl", "pairs_summary.json", "llamafactory/train_dpo.yaml"):
        assert (rolled / name).exists(), name
