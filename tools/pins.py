"""Pin files: read constraints, record the pinned packages' metadata, and check that the pins agree.

`python tools/pins.py refresh constraints/cuda.txt constraints/cuda.metadata.json` asks the package
registry for each pin's metadata (pip's dry-run report with HTTP range requests, about 1 MB per wheel, no
wheel downloaded) for every target Python, and writes it next to the pins; `make test` runs it, and it only
touches the network when the pins changed. The checks read that committed file and run offline.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

TARGET_PYTHONS = ("3.11", "3.12")
# Wheel platforms pip may choose for Linux x86-64 (a glibc 2.28 or newer system).
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
MIN_PIP = Version("24.0")  # older pips download whole wheels for a dry-run report instead of their metadata


class PinError(ValueError):
    """A pin file line that is not `name==version`."""


def read_pins(path: str | Path, bounds: bool = False) -> dict[str, str]:
    """The `name==version` lines of a constraints file, keyed by canonical name; `bounds` skips lines that bound a
    version instead (colab.txt's `torchao>=0.16.0`) where they would be an error."""
    pins = {}
    for number, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name.strip() or not version.strip() or any(c in version for c in "<>=!,;"):
            if bounds and any(c in line for c in "<>!~"):
                continue
            raise PinError(f"{path}:{number}: expected 'name==version', got {raw.strip()!r}")
        pins[canonicalize_name(name)] = version.strip()
    return pins


def digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (the report records which pin file it was made from)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def marker_environment(python: str) -> dict[str, str]:
    """PEP 508 marker values of CPython `python` (e.g. "3.12") on Linux x86-64, no extra requested."""
    full = f"{python}.0"
    return {
        "implementation_name": "cpython",
        "implementation_version": full,
        "os_name": "posix",
        "platform_machine": "x86_64",
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": full,
        "python_version": python,
        "sys_platform": "linux",
        "extra": "",
    }


def _dry_run(requirement: str, python: str | None) -> dict:
    """pip's dry-run report for one requirement: binary for `python` on Linux x86-64, or the source build."""
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed", "--quiet"]
    command += ["--disable-pip-version-check", "--use-feature=fast-deps", "--report", "-"]
    if python is not None:
        command += ["--python-version", python, "--only-binary=:all:"]
        command += [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    done = subprocess.run([*command, requirement], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pip could not resolve {requirement} for Python {python or 'source'}:\n{done.stderr}")
    return json.loads(done.stdout[done.stdout.index("{") :])


def fetch_metadata(pins: dict[str, str], python: str) -> dict[str, dict]:
    """Version, Requires-Python, Requires-Dist and file of every pin, as the registry serves them for `python`."""
    records = {}
    for name, version in pins.items():
        try:
            report = _dry_run(f"{name}=={version}", python)
        except RuntimeError:  # no wheel for this Python and platform: read the source distribution's metadata
            report = _dry_run(f"{name}=={version}", None)
        (item,) = report["install"]
        metadata = item["metadata"]
        records[name] = {
            "version": metadata["version"],
            "requires_python": metadata.get("requires_python") or "",
            "requires_dist": metadata.get("requires_dist") or [],
            "file": item["download_info"]["url"].rsplit("/", 1)[-1].split("#")[0],
        }
    return records


def write_report(pins_path: str | Path, report_path: str | Path) -> None:
    """Record every pin's metadata for each target Python in `report_path`."""
    import pip

    if Version(pip.__version__) < MIN_PIP:
        raise RuntimeError(f"pip {pip.__version__} downloads whole wheels for this; use pip >= {MIN_PIP} (make pins)")
    pins = read_pins(pins_path)
    report = {
        "pins": Path(pins_path).name,
        "sha256": digest(pins_path),
        "pythons": {python: fetch_metadata(pins, python) for python in TARGET_PYTHONS},
    }
    Path(report_path).write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")


def report_is_current(pins_path: str | Path, report_path: str | Path) -> bool:
    """Whether the report was made from the pin file as it is now."""
    path = Path(report_path)
    return path.exists() and json.loads(path.read_text()).get("sha256") == digest(pins_path)


def project_requirements(pyproject: str | Path) -> tuple[str, list[str]]:
    """Requires-Python and every requirement (all extras included) that pyproject.toml declares."""
    project = tomllib.loads(Path(pyproject).read_text())["project"]
    extras = [req for group in project.get("optional-dependencies", {}).values() for req in group]
    return project.get("requires-python", ""), [*project.get("dependencies", []), *extras]


def check(pins: dict[str, str], metadata: dict[str, dict], python: str) -> list[str]:
    """Every disagreement between the pins, their declared requirements and Python `python` on Linux x86-64."""
    problems = []
    for name, pinned in pins.items():
        record = metadata.get(name)
        if record is None or Version(record["version"]) != Version(pinned):
            problems.append(f"{name}=={pinned}: no metadata for this version in the report (make pins)")
            continue
        owner = f"{name} {pinned}"
        problems += requirement_problems(owner, record["requires_python"], record["requires_dist"], pins, python)
    return problems


def requirement_problems(owner: str, requires_python: str, requires: list[str], pins: dict, python: str) -> list[str]:
    """Where `owner`'s Requires-Python rejects `python` or one of its requirements rejects a pinned version."""
    problems = []
    if requires_python and not SpecifierSet(requires_python).contains(f"{python}.0", prereleases=True):
        problems.append(f"{owner} requires Python {requires_python}, not {python}")
    environment = marker_environment(python)
    for text in requires:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is not None and not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{owner} requires {requirement.name}{requirement.specifier}, pinned {pinned}")
    return problems


def check_files(pins_path: str | Path, report_path: str | Path, pyproject: str | Path) -> list[str]:
    """Problems of a pin file against its committed report and the project's own requirements, per target Python."""
    if not report_is_current(pins_path, report_path):
        return [f"{report_path} was not made from {pins_path} as it is now: run `make pins`"]
    pins = read_pins(pins_path)
    metadata = json.loads(Path(report_path).read_text())["pythons"]
    requires_python, requires = project_requirements(pyproject)
    problems = []
    for python in TARGET_PYTHONS:
        found = check(pins, metadata[python], python)
        found += requirement_problems("longmab_utils", requires_python, requires, pins, python)
        problems += [f"Python {python}: {problem}" for problem in found]
    return problems


def overlay(top: dict[str, str], base: dict[str, str]) -> dict[str, str]:
    """`base`'s pins with `top`'s taking precedence."""
    return {**base, **top}


def main(argv: list[str] | None = None) -> int:
    """Command line: refresh a pin file's metadata report, check it, or overlay two pin files."""
    parser = argparse.ArgumentParser(prog="python tools/pins.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    refresh = commands.add_parser("refresh", help="rewrite the report if the pins changed (network)")
    refresh.add_argument("pins")
    refresh.add_argument("report")
    verify = commands.add_parser("check", help="check pins against their report and pyproject.toml (offline)")
    verify.add_argument("pins")
    verify.add_argument("report")
    verify.add_argument("--pyproject", default="pyproject.toml")
    layer = commands.add_parser("overlay", help="print TOP's pins over BASE's as one constraints file (no bounds)")
    layer.add_argument("top")
    layer.add_argument("base")
    args = parser.parse_args(argv)
    if args.command == "refresh":
        if not report_is_current(args.pins, args.report):
            print(f"{args.pins} changed: reading its packages' metadata from the registry into {args.report}")
            write_report(args.pins, args.report)
        return 0
    if args.command == "check":
        problems = check_files(args.pins, args.report, args.pyproject)
        print("\n".join(problems) or f"{args.pins}: every pin accepts the others on Python {', '.join(TARGET_PYTHONS)}")
        return 1 if problems else 0
    pins = overlay(read_pins(args.top, bounds=True), read_pins(args.base))
    print(f"# {args.top} over {args.base}")
    print("\n".join(f"{name}=={version}" for name, version in sorted(pins.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
