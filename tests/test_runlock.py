"""One writer per run folder: a second process is refused at once naming the holder; a killed holder's lock is
taken over; rollout shards share a folder."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from longmab_utils import __main__ as cli
from longmab_utils import runlock
from longmab_utils.runlock import RunDirBusy, hold

ROOT = Path(__file__).resolve().parents[1]


def holder(run_dir: Path, step: str, shard: str | None = None) -> subprocess.Popen:
    """Another process holding `run_dir` for `step` until it is killed; returns once it holds it."""
    code = textwrap.dedent(
        f"""
        import sys, time
        from longmab_utils.runlock import hold
        with hold({str(run_dir)!r}, {step!r}, {shard!r}):
            print("held", flush=True)
            time.sleep(120)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


@pytest.fixture
def processes():
    """Holder processes, killed after the test."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


def test_a_second_writer_stops_with_exit_2_naming_the_holder_and_touches_nothing(tmp_path, processes, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "priors.jsonl").write_text("the holder's priors\n")
    processes.append(holder(run, "rollout"))
    argv = ["pairs", "--profile", "smoke", "--run-dir", str(run)]
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert f"{run.resolve()} is busy: pid {processes[0].pid} on " in error and "runs rollout there since 20" in error
    assert sorted(p.name for p in run.iterdir()) == [".writer.lock", "priors.jsonl"]
    assert (run / "priors.jsonl").read_text() == "the holder's priors\n"


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path, processes):
    run = tmp_path / "run"
    process = holder(run, "probe")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert json.loads((run / runlock.LOCK_FILE).read_text())["pid"] == process.pid  # it died holding it
    with hold(run, "probe"):
        assert json.loads((run / runlock.LOCK_FILE).read_text())["pid"] == os.getpid()
    assert (run / runlock.LOCK_FILE).read_text() == ""  # released: it names nobody


def test_rollout_shards_share_the_folder_and_keep_every_other_step_out(tmp_path, processes):
    run = tmp_path / "run"
    processes.append(holder(run, "rollout", "0/2"))
    with hold(run, "rollout", "1/2"):  # the other shard runs beside it
        pass
    with pytest.raises(RunDirBusy, match=f"pid {processes[0].pid} .* runs rollout shard 0/2 there"):
        with hold(run, "merge"):
            pass
    with pytest.raises(RunDirBusy, match="runs rollout shard 0/2"):
        with hold(run, "rollout", "0/2"):  # the same shard twice
            pass


def test_a_step_inside_a_step_of_the_same_process_holds_nothing_again(tmp_path):
    with hold(tmp_path, "evaluate"):
        with hold(tmp_path, "train"):
            assert runlock.HELD == {tmp_path.resolve(): "evaluate"}
    assert runlock.HELD == {}


def test_a_step_that_stops_before_writing_leaves_no_folder(tmp_path):
    with pytest.raises(ValueError):
        with hold(tmp_path / "new", "probe"):
            raise ValueError("bad data")
    assert not (tmp_path / "new").exists()


def test_ranks_other_than_0_hold_nothing(tmp_path, processes, monkeypatch):
    processes.append(holder(tmp_path, "train"))
    monkeypatch.setenv("RANK", "1")
    with hold(tmp_path, "train"):  # rank 0 of the launch holds the folder for every rank
        assert runlock.HELD == {}
