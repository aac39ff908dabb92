"""Colab's GPU runtime on this CPU machine, for `make colab-sim`: its Python, its packages and the set-up cell's code.

  python tests/colab_sim.py build FREEZE VENV   a Python 3.13 venv from Google's pip freeze, then the set-up code
                                                (longmab_utils.course.colab.setup) on a copy of the kit, with `pip
                                                check` before and after it recorded in VENV (test_colab_sim.py reads it)
  python tests/colab_sim.py refresh VENV        copy the working tree over VENV's kit again (the code under test)

Not the whole freeze (about 700 packages, TensorFlow and JAX among them): the runtime is torch, what the kit and
papermill run on (RUNTIME, with their dependencies), and the packages of the freeze whose requirements name a library
the set-up installs or upgrades (DEPENDENTS, found from their metadata, without dependencies so that a version the
set-up breaks shows in `pip check`). Every version is the freeze's; torch is the registry's 2.11.0, a CUDA 13 build
(no CPU build of it is on the registry), so the freeze's CUDA 12 packages (nvidia-*, cuda-*) are left to its own.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = "3.13"  # Colab's (the freeze's os-info); tests/test_colab_sim.py checks the venv runs it
PIP = "pip==24.1.2"  # Colab's pip runs the set-up's installs
# Colab's packages the course runs on, installed with their dependencies; papermill and pytest-xdist (not Colab's)
# run the notebooks and spread the tests over the cores.
RUNTIME = [
    "torch",
    *("numpy", "pandas", "matplotlib", "pydantic", "tqdm", "packaging", "pytest", "pytest-xdist"),
    *("ipykernel", "ipython", "jupyter_client", "nbformat", "nbclient", "papermill"),
    *("transformers", "tokenizers", "huggingface_hub", "safetensors", "accelerate", "datasets", "peft", "torchao"),
    *("sentence-transformers", "pyarrow", "fsspec"),
]
# The freeze's packages that require what the set-up changes (huggingface_hub, pyarrow, fsspec, datasets, tokenizers):
DEPENDENTS = [
    *("diffusers", "gradio", "gradio_client", "timm", "torchtune"),  # huggingface_hub (diffusers and gradio: < 2)
    *("db-dtypes", "pandas-gbq", "bigframes", "tensorflow-datasets"),  # pyarrow
    "gcsfs",  # fsspec, exactly
]
KIT = "content/kit"  # the stand-in for /content/kit, inside the venv
SETUP_CELL = (
    "import sys; sys.path.insert(0, {kit!r}); from longmab_utils.course.colab import setup; setup({kit!r}, gpu=True)"
)
LOCAL = re.compile(r"\+[\w.]+$")  # torch==2.11.0+cu128: the local version of a CUDA build


def constraints(freeze: str) -> str:
    """The freeze as a constraints file: exact versions without local parts, no URL lines, no CUDA 12 packages."""
    lines = []
    for line in freeze.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or " @ " in line or "==" not in line:
            continue
        name = line.split("==")[0].lower()
        if not name.startswith(("nvidia-", "cuda-")):
            lines.append(LOCAL.sub("", line))
    return "\n".join(lines) + "\n"


def pip(venv: Path, *args: str) -> None:
    """Run the venv's pip, stopping the build when it fails."""
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", *args], check=True)


def pip_check(venv: Path, name: str) -> list[str]:
    """Record `pip check`'s lines in VENV/NAME and return them."""
    result = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "check"], capture_output=True, text=True)
    lines = sorted(line for line in result.stdout.splitlines() if line and not line.startswith("No broken"))
    (venv / name).write_text("".join(f"{line}\n" for line in lines))
    return lines


def refresh(venv: Path) -> Path:
    """Copy the working tree's files (tracked and untracked, not ignored) over VENV's kit; return the kit."""
    kit = venv / KIT
    shutil.rmtree(kit, ignore_errors=True)
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (kit / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, kit / name)
    return kit


def build(freeze: Path, venv: Path, python: str) -> None:
    """Make the runtime, run the set-up cell's code on a copy of the kit, record pip check around it."""
    start = time.perf_counter()
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    (venv / "colab-constraints.txt").write_text(constraints(freeze.read_text()))
    quiet = ["install", "--quiet", "--disable-pip-version-check"]
    pip(venv, *quiet, PIP)
    pip(venv, *quiet, "-c", str(venv / "colab-constraints.txt"), *RUNTIME)
    pip(venv, *quiet, "--no-deps", "-c", str(venv / "colab-constraints.txt"), *DEPENDENTS)
    before = pip_check(venv, "pip-check-before.txt")
    built = time.perf_counter()
    print(f"Colab runtime built in {built - start:.0f} s; pip check: {len(before)} lines (the runtime's own)")
    kit = refresh(venv)
    cell = SETUP_CELL.format(kit=str(kit))
    subprocess.run([str(venv / "bin" / "python"), "-c", cell], cwd=kit.parent, check=True)
    after = pip_check(venv, "pip-check-after.txt")
    new = sorted(set(after) - set(before))
    print(f"set-up ran in {time.perf_counter() - built:.0f} s; pip check: {len(after)} lines, {len(new)} new")
    print("".join(f"  {line}\n" for line in new), end="")


def main(argv: list[str] | None = None) -> int:
    """Command line: build or refresh."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("build")
    make.add_argument("freeze", type=Path)
    make.add_argument("venv", type=Path)
    make.add_argument("--python", default=f"python{PYTHON}", help=f"a Python {PYTHON} interpreter")
    again = commands.add_parser("refresh")
    again.add_argument("venv", type=Path)
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.freeze, args.venv.resolve(), args.python)
    else:
        print(f"kit copied to {refresh(args.venv.resolve())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
