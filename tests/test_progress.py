"""Progress bars: unchanged when someone watches; one bar at a time, redrawn rarely, in a batch run.

The bars that must show pass `disable=False`: CI sets TQDM_DISABLE, which tqdm reads once, at import.
"""

import os

from longmab_utils import progress as bars
from longmab_utils.course.reproduce import batch_run


def test_interactive_bars_nest_as_tqdm_does(monkeypatch):
    monkeypatch.delenv(bars.BATCH_RUN, raising=False)
    with bars.progress(total=2, disable=False) as outer, bars.progress(total=3, leave=False, disable=False) as inner:
        assert not outer.disable and not inner.disable and outer.mininterval < bars.BATCH_INTERVAL


def test_in_a_batch_run_a_bar_inside_another_is_off_and_the_outer_one_redraws_rarely(monkeypatch):
    monkeypatch.setenv(bars.BATCH_RUN, "1")
    with bars.progress(total=2, desc="rollout", disable=False) as outer:
        with bars.progress(total=3, desc="rounds", leave=False) as inner:
            assert inner.disable
        assert not outer.disable and outer.mininterval == bars.BATCH_INTERVAL
    with bars.progress(total=1, desc="next step", disable=False) as alone:  # the outer one is closed: it may show
        assert not alone.disable


def test_reproduce_marks_a_batch_run_only_while_it_executes(monkeypatch):
    monkeypatch.delenv(bars.BATCH_RUN, raising=False)
    with batch_run():
        assert bars.in_batch_run() and os.environ[bars.BATCH_RUN] == "1"
    assert not bars.in_batch_run()
