"""Progress bars: unchanged when someone watches; one bar at a time, redrawn rarely, in a batch run."""

import os

from longmab_utils import progress as bars
from longmab_utils.course.reproduce import batch_run


def test_interactive_bars_nest_as_tqdm_does(monkeypatch):
    monkeypatch.delenv(bars.BATCH_RUN, raising=False)
    with bars.progress(total=2) as outer, bars.progress(total=3, leave=False) as inner:
        assert not outer.disable and not inner.disable and outer.mininterval < bars.BATCH_INTERVAL


def test_in_a_batch_run_a_bar_inside_another_is_off_and_the_outer_one_redraws_rarely(monkeypatch):
    monkeypatch.setenv(bars.BATCH_RUN, "1")
    with bars.progress(total=2, desc="rollout") as outer:
        with bars.progress(total=3, desc="rounds", leave=False) as inner:
            assert inner.disable
        assert not outer.disable and outer.mininterval == bars.BATCH_INTERVAL
    with bars.progress(total=1, desc="next step") as alone:  # the outer bar is closed: a new one may show
        assert not alone.disable


def test_reproduce_marks_a_batch_run_only_while_it_executes(monkeypatch):
    monkeypatch.delenv(bars.BATCH_RUN, raising=False)
    with batch_run():
        assert bars.in_batch_run() and os.environ[bars.BATCH_RUN] == "1"
    assert not bars.in_batch_run()
