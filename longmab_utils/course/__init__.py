"""The course's plumbing, apart from the method: checked exercises, fast-forward, Colab set-up and the runner.

- `exercises.py`: the notebooks' checked exercises (`Exercises.check`: a hint on a wrong answer);
- `fastforward.py`: copies the shipped cpu-tiny artifacts into a run folder (the notebooks' `fast_forward`);
- `colab.py`: the repository address, the notebooks' Colab badge and set-up cell, and what that cell does;
- `reproduce.py`: the papermill runner behind `python -m longmab_utils reproduce`.
"""
